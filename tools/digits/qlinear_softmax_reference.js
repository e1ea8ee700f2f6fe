// Runs ONNX Runtime's com.microsoft QLinearSoftmax on the rows qlinear_softmax_reference.py
// wrote, and writes ORT's outputs next to them.
//
// Why this exists: npuq's onnxruntime_qlinear softmax contract is tested against ORT itself on
// random rows; the generator needs python3-onnx to build the one-node models, this needs
// onnxruntime-node, and the committed text file lets CI need neither.
//
//   NODE_PATH=/tmp/ort/node_modules node qlinear_softmax_reference.js <model_dir> <cases.json> <out.json>
//
// cases.json: [{type: "int8"|"uint8", D, x_scale, y_scale, y_zero_point, x: [rows * D values]}];
// out.json: [[outputs of case 0], ...]. The models take x_scale, y_scale and the zero points as
// inputs, so one session per type serves every case (ORT then builds its table per run).
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

async function main() {
  const [modelDir, casesPath, outPath] = process.argv.slice(2);
  if (!outPath) throw new Error('usage: qlinear_softmax_reference.js <model_dir> <cases.json> <out.json>');
  const cases = JSON.parse(fs.readFileSync(casesPath, 'utf8'));
  const sessions = {};
  for (const t of ['int8', 'uint8'])
    sessions[t] = await ort.InferenceSession.create(path.join(modelDir, `qlinear_softmax_${t}.onnx`));
  const out = [];
  for (const c of cases) {
    const A = c.type === 'int8' ? Int8Array : Uint8Array;
    const scalar = (type, v) => new ort.Tensor(type, type === 'float32' ? Float32Array.from([v]) : A.from([v]), []);
    const r = await sessions[c.type].run({
      x: new ort.Tensor(c.type, A.from(c.x), [c.x.length / c.D, c.D]),
      x_scale: scalar('float32', c.x_scale), x_zero_point: scalar(c.type, 0),
      y_scale: scalar('float32', c.y_scale), y_zero_point: scalar(c.type, c.y_zero_point)});
    out.push(Array.from(r.y.data));
  }
  fs.writeFileSync(outPath, JSON.stringify(out));
  console.log(`ORT ${require('onnxruntime-node/package.json').version}: QLinearSoftmax on ${cases.length} cases`);
}
main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
