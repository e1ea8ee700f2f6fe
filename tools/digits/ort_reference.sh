#!/usr/bin/env bash
# Produces ONNX Runtime's reference outputs for the committed digits models (test data for
# tests/test_onnx_digits.cpp), so that CI needs neither node nor ONNX Runtime.
#
# Why this exists: fidelity is measured against ONNX Runtime itself; this runs it.
# Generator-only tools (not test dependencies): Debian python3-onnx (to expose intermediate
# values as graph outputs) and node with npm's onnxruntime-node, installed outside the repository:
#   mkdir -p /tmp/ort && cd /tmp/ort && npm init -y && npm install onnxruntime-node --ignore-scripts
# Usage (from anywhere): bash tools/digits/ort_reference.sh [ORT_DIR=/tmp/ort]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ort_dir=${1:-/tmp/ort}
data="$repo/tests/data/digits"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for model in digits_cnn digits_transformer; do
  [[ -f $data/$model.onnx ]] || continue
  # The debug copy: every node output that shape inference types becomes a graph output. ONNX's
  # shape inference does not know com.microsoft QLinearSoftmax; its output is typed as its input.
  /usr/bin/python3 - "$data/$model.onnx" "$tmp/$model.debug.onnx" <<'PY'
import sys, onnx
m = onnx.load(sys.argv[1])
for _ in range(2):
    m = onnx.shape_inference.infer_shapes(m)
    typed = {v.name: v for v in m.graph.value_info}
    for n in m.graph.node:
        if n.op_type == "QLinearSoftmax" and n.input[0] in typed and n.output[0] not in typed:
            v = m.graph.value_info.add()
            v.CopyFrom(typed[n.input[0]])
            v.name = n.output[0]
known = {o.name for o in m.graph.output}
types = {v.name: v for v in m.graph.value_info}
for n in m.graph.node:
    for o in n.output:
        if o not in known and o in types:
            m.graph.output.append(types[o])
            known.add(o)
onnx.save(m, sys.argv[2])
PY
  rm -rf "$data/ort/$model"
  NODE_PATH="$ort_dir/node_modules" node "$repo/tools/digits/ort_reference.js" \
    "$data/$model.onnx" "$tmp/$model.debug.onnx" "$data/test_images.pb" "$data/ort/$model" 4
  # ONNX Runtime's int8 accuracy (argmax of the logits, first maximum) on the test split.
  /usr/bin/python3 - "$data" "$model" <<'PY' | tee "$data/ort/$model/accuracy.txt"
import sys, onnx
from onnx import numpy_helper
data, model = sys.argv[1], sys.argv[2]
load = lambda p: numpy_helper.to_array(onnx.load_tensor(p))
logits, labels = load("%s/ort/%s/full_logits.pb" % (data, model)), load(data + "/test_labels.pb")
right = int((logits.argmax(1) == labels).sum())
print("%s: ONNX Runtime int8 accuracy %d / %d = %.4f" % (model, right, len(labels), right / len(labels)))
PY
done
