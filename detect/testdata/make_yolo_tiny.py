#!/usr/bin/python3
"""Writes the tiny YOLO-format models the detect tests use (run from detect/testdata):

  yolo_tiny.onnx          input `images` [1,3,64,64], output `output0` [1,7,7]
  yolo_tiny_dynamic.onnx  the same with dynamic height, width and anchors (size from `imgsz`)

Both answer a constant tensor whatever the image, laid out as an Ultralytics YOLOv8/YOLO11 export
([1, 4+classes, anchors]: centre x, centre y, width, height in input pixels, then a score per
class), with Ultralytics' metadata (`names` as a Python dict literal, `imgsz`). The expected
detections are worked out by hand in yolo_test.go. Needs python3-onnx and python3-numpy.
"""
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# One column per anchor: cx, cy, w, h, score(cat), score(dog), score(traffic light).
ANCHORS = [
    (32, 32, 32, 16, 0.90, 0.10, 0.00),  # cat, kept
    (33, 32, 32, 16, 0.80, 0.00, 0.00),  # cat overlapping the first by IoU 0.939: suppressed
    (32, 32, 32, 16, 0.05, 0.85, 0.00),  # dog on the same spot: kept (suppression is per class)
    (10, 50, 8, 8, 0.00, 0.30, 0.00),    # dog below the threshold
    (8, 18, 16, 8, 0.00, 0.00, 0.70),    # traffic light reaching into the top padding: clipped
    (56, 40, 8, 8, 0.60, 0.00, 0.00),    # small cat
    (16, 48, 8, 8, 0.55, 0.65, 0.00),    # best class is dog; reaches into the bottom padding
]
NAMES = "{0: 'cat', 1: 'dog', 2: 'traffic light'}"


def build(path, dynamic):
    out = np.array(ANCHORS, np.float32).T[None]  # [1, 7, anchors]
    h, w = ("height", "width") if dynamic else (64, 64)
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])
    output = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 7, "anchors" if dynamic else out.shape[2]])
    nodes = [
        # The image is read (so the runtime keeps the input) and multiplied by zero.
        helper.make_node("ReduceMean", ["images"], ["mean"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["table", "nothing"], ["output0"]),
    ]
    graph = helper.make_graph(nodes, "yolo_tiny", [images], [output], initializer=[
        numpy_helper.from_array(out, "table"),
        numpy_helper.from_array(np.array([0], np.float32), "zero"),
    ])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="imaged tests")
    model.ir_version = 7
    for k, v in {"task": "detect", "stride": "32", "imgsz": "[64, 64]", "names": NAMES}.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    with open(path, "wb") as f:
        f.write(model.SerializeToString(deterministic=True))


build("yolo_tiny.onnx", False)
build("yolo_tiny_dynamic.onnx", True)
