#!/usr/bin/python3
"""Writes ONNX Runtime's QLinearSoftmax outputs on random rows: test data for npuq's
onnxruntime_qlinear softmax contract (tests/test_softmax_qlinear.cpp).

Why this exists: the contract is ORT's float-table arithmetic (include/npuq/ops/softmax_qlinear.hpp);
the test compares npuq with ORT itself on rows of many lengths, scales, zero points and both
8-bit types, without needing node in CI.

Needs (generator only): Debian python3-onnx, node with onnxruntime-node outside the repository:
    mkdir -p /tmp/ort && cd /tmp/ort && npm init -y && npm install onnxruntime-node --ignore-scripts
Usage (from the repository root):
    /usr/bin/python3 tools/digits/qlinear_softmax_reference.py [--ort /tmp/ort] [--cases 64] [--seed 17]
        [--out tests/data/qlinear_softmax/ort_rows.txt]
Cases whose parameters ORT leaves undefined (E[0] * floor(1 / y_scale) overflows float for short
rows, see softmax_qlinear.hpp) are not drawn: npuq refuses them, and the test checks that.
"""
import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile

import numpy as np


def make_models(out_dir):
    import onnx
    from onnx import TensorProto, helper
    for name, t in (("int8", TensorProto.INT8), ("uint8", TensorProto.UINT8)):
        inputs = [helper.make_tensor_value_info("x", t, ["N", "D"]),
                  helper.make_tensor_value_info("x_scale", TensorProto.FLOAT, []),
                  helper.make_tensor_value_info("x_zero_point", t, []),
                  helper.make_tensor_value_info("y_scale", TensorProto.FLOAT, []),
                  helper.make_tensor_value_info("y_zero_point", t, [])]
        node = helper.make_node("QLinearSoftmax", [i.name for i in inputs], ["y"], domain="com.microsoft", axis=-1, opset=13)
        graph = helper.make_graph([node], "qlinear_softmax_" + name, inputs, [helper.make_tensor_value_info("y", t, ["N", "D"])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)])
        onnx.save(model, os.path.join(out_dir, "qlinear_softmax_%s.onnx" % name))


def defined(D, x_scale, y_scale):
    """ORT's largest product E[0] * floor(1 / y_scale) is finite (softmax_qlinear.hpp)."""
    f = np.float32
    shift = max(0.0, float(np.log(f(np.finfo(f).max) / f(D))) - 5.0) / float(x_scale)
    e0 = f(math.exp(shift * float(x_scale)))
    with np.errstate(over="ignore"):
        return bool(np.isfinite(f(e0 * f(math.floor(f(1.0) / f(y_scale))))))


def draw_cases(rng, count):
    cases = []
    # The digits transformer's attention softmax: rows of 16, y_scale 1/256, zero point -128.
    shapes = [("int8", 16, 32, 0.040997297, 1 / 256, -128)]
    while len(cases) + len(shapes) < count:
        t = rng.choice(["int8", "uint8"])
        D = rng.choice([1, 2, 3, 7, 10, 16, 16, 33, 64, 100, 256, 1000])
        x_scale = float(np.float32(math.exp(rng.uniform(math.log(1e-3), math.log(2.0)))))
        y_scale = float(np.float32(rng.choice([1 / 256, 1 / 255, 1 / 128, 1 / 100, rng.uniform(0.001, 0.05)])))
        zp = rng.choice([-128, -128, 0, -100, 5]) if t == "int8" else rng.choice([0, 0, 10, 128])
        if defined(D, x_scale, y_scale):
            shapes.append((t, D, max(1, 128 // D), x_scale, y_scale, zp))
    for t, D, rows, x_scale, y_scale, zp in shapes:
        lo, hi = (-128, 127) if t == "int8" else (0, 255)
        x = []
        for r in range(rows):
            spread = rng.choice([3, 20, 255])
            centre = rng.randint(lo, hi)
            row = [min(hi, max(lo, centre + rng.randint(-spread, spread))) for _ in range(D)]
            if r % 4 == 1:  # one dominant element: the output saturates at the type's maximum
                row[rng.randrange(D)] = hi
                row = [v if v == hi else min(v, lo + 10) for v in row]
            x += row
        cases.append(dict(type=t, D=D, x_scale=float(np.float32(x_scale)), y_scale=float(np.float32(y_scale)), y_zero_point=zp, x=x))
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ort", default="/tmp/ort")
    ap.add_argument("--cases", type=int, default=64)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--out", default="tests/data/qlinear_softmax/ort_rows.txt")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    cases = draw_cases(random.Random(args.seed), args.cases)
    with tempfile.TemporaryDirectory() as tmp:
        make_models(tmp)
        with open(os.path.join(tmp, "cases.json"), "w") as f:
            json.dump(cases, f)
        env = dict(os.environ, NODE_PATH=os.path.join(args.ort, "node_modules"))
        subprocess.run(["node", os.path.join(here, "qlinear_softmax_reference.js"), tmp, os.path.join(tmp, "cases.json"),
                        os.path.join(tmp, "out.json")], check=True, env=env)
        with open(os.path.join(tmp, "out.json")) as f:
            outputs = json.load(f)
        version = json.load(open(os.path.join(args.ort, "node_modules", "onnxruntime-node", "package.json")))["version"]
    lines = ["# ONNX Runtime %s com.microsoft QLinearSoftmax (axis -1, opset 13) on random rows, seed %d." % (version, args.seed),
             "# Made by tools/digits/qlinear_softmax_reference.py. Per case: 'case <type> <row length> <rows> <x_scale> "
             "<y_scale> <y_zero_point>', then 'x' and 'y' lines of rows * length values."]
    for c, y in zip(cases, outputs):
        lines.append("case %s %d %d %.9g %.9g %d" % (c["type"], c["D"], len(c["x"]) // c["D"], c["x_scale"], c["y_scale"],
                                                    c["y_zero_point"]))
        lines.append("x " + " ".join(map(str, c["x"])))
        lines.append("y " + " ".join(map(str, y)))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("%s: %d cases, %d values" % (args.out, len(cases), sum(len(c["x"]) for c in cases)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
