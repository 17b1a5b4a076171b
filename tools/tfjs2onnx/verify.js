// Checks the converted SSD model and imaged's TF1 resize against the original TensorFlow.js graph:
// for each photo written by the detect tests, runs the TF.js graph on the full-size pixels (it
// resizes inside the graph) and compares its scores and boxes with what Go's resize plus the ONNX
// model answered. Fails when any value differs by more than 0.02.
//
//   mkdir -p /tmp/ssd-dump && IMAGED_DETECT_TFJS_DUMP=/tmp/ssd-dump \
//     go test -run TestSSDWriteTFJSComparison ./detect/
//   npm install --no-save --ignore-scripts @tensorflow/tfjs-core@4 @tensorflow/tfjs-converter@4 \
//     @tensorflow/tfjs-backend-cpu@4
//   node tools/tfjs2onnx/verify.js PACKAGE/models/coco-ssd /tmp/ssd-dump
const tf = require('@tensorflow/tfjs-core');
require('@tensorflow/tfjs-backend-cpu');
const tfc = require('@tensorflow/tfjs-converter');
const fs = require('fs');
const path = require('path');

const TOLERANCE = 0.02;

async function main(modelDir, dumpDir) {
  await tf.setBackend('cpu');
  const mj = JSON.parse(fs.readFileSync(path.join(modelDir, 'model.json')));
  const weights = Buffer.concat(mj.weightsManifest.flatMap(g => g.paths.map(p => fs.readFileSync(path.join(modelDir, p)))));
  const model = await tfc.loadGraphModel(tf.io.fromMemory({
    modelTopology: mj.modelTopology,
    weightSpecs: mj.weightsManifest.flatMap(g => g.weights),
    weightData: weights.buffer.slice(weights.byteOffset, weights.byteOffset + weights.length),
  }));
  let worst = 0;
  for (const p of JSON.parse(fs.readFileSync(path.join(dumpDir, 'index.json')))) {
    if (p.bands !== 3) throw new Error(`${p.file}: only RGB photos are compared`);
    const rgb = fs.readFileSync(path.join(dumpDir, p.file + '.rgb'));
    const x = tf.tensor4d(Int32Array.from(rgb), [1, p.height, p.width, 3], 'int32');
    const [scores, boxes] = await model.executeAsync(x, ['Postprocessor/Slice', 'Postprocessor/ExpandDims_1']);
    const s = scores.dataSync(), b = boxes.dataSync();
    const raw = fs.readFileSync(path.join(dumpDir, p.file + '.onnx.f32'));
    const o = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
    let ds = 0, db = 0;
    for (let i = 0; i < s.length; i++) ds = Math.max(ds, Math.abs(s[i] - o[i]));
    for (let i = 0; i < b.length; i++) db = Math.max(db, Math.abs(b[i] - o[s.length + i]));
    console.log(`${p.file}: max |score difference| ${ds.toExponential(2)}, max |box difference| ${db.toExponential(2)}`);
    worst = Math.max(worst, ds, db);
  }
  if (worst > TOLERANCE) {
    console.error(`differences up to ${worst} exceed ${TOLERANCE}`);
    process.exit(1);
  }
}

if (process.argv.length !== 4) {
  console.error('usage: node verify.js MODEL_DIR DUMP_DIR');
  process.exit(2);
}
main(process.argv[2], process.argv[3]).catch(e => { console.error(e); process.exit(1); });
