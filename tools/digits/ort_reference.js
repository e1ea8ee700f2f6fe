// Runs ONNX Runtime (onnxruntime-node) on a model and writes its int8 outputs as ONNX TensorProto
// files, the reference the npuq runner's test compares with bit for bit.
//
// Why this exists: the ctest test must not need node or ONNX Runtime, so ORT's outputs are
// produced once here and committed. Called by tools/digits/ort_reference.sh, which also makes
// the "debug" copy of the model whose graph outputs are every intermediate value.
//
//   NODE_PATH=/tmp/ort/node_modules node ort_reference.js <model.onnx> <debug.onnx> <images.pb> <out_dir> <layer_images>
//
// Writes <out_dir>/full_<output>.pb (every graph output of <model.onnx> for the whole split) and
// <out_dir>/layers_<value>.pb (every value of <debug.onnx> for the first <layer_images> images),
// with the default session options (all graph optimizations, as a user would run it).
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

// --- minimal TensorProto encoding (dims, data_type, name, raw_data) ---
function varint(n) {
  const out = [];
  let v = BigInt.asUintN(64, BigInt(n));
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v !== 0n) b |= 0x80;
    out.push(b);
  } while (v !== 0n);
  return out;
}
function field(num, wire) { return varint((num << 3) | wire); }
function lenDelim(num, bytes) { return [...field(num, 2), ...varint(bytes.length), ...bytes]; }
const TYPES = { int8: 3, uint8: 2, int32: 6, int64: 7, float32: 1 };
function encodeTensor(name, t) {
  if (!(t.type in TYPES)) throw new Error(`${name}: tensor type ${t.type} not handled`);
  const head = [];
  for (const d of t.dims) head.push(...field(1, 0), ...varint(d));
  head.push(...field(2, 0), ...varint(TYPES[t.type]));
  head.push(...lenDelim(8, [...Buffer.from(name, 'utf8')]));
  const raw = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  return Buffer.concat([Buffer.from(head), Buffer.from([...field(9, 2), ...varint(raw.length)]), raw]);
}
// --- minimal TensorProto decoding of the images file written by make_digits_models.py ---
function decodeTensor(buf) {
  let p = 0;
  const rv = () => { let v = 0n, s = 0n; for (;;) { const b = buf[p++]; v |= BigInt(b & 0x7f) << s; s += 7n; if (!(b & 0x80)) return v; } };
  const t = { dims: [], type: 0, raw: null };
  while (p < buf.length) {
    const tag = Number(rv()), num = tag >> 3, wire = tag & 7;
    if (wire === 0) { const v = rv(); if (num === 1) t.dims.push(Number(v)); else if (num === 2) t.type = Number(v); }
    else if (wire === 2) { const n = Number(rv()); const s = buf.subarray(p, p + n); p += n;
      if (num === 9) t.raw = s; else if (num === 1) { let q = 0; while (q < s.length) { let v = 0n, sh = 0n; for (;;) { const b = s[q++]; v |= BigInt(b & 0x7f) << sh; sh += 7n; if (!(b & 0x80)) break; } t.dims.push(Number(v)); } } }
    else if (wire === 5) p += 4; else if (wire === 1) p += 8; else throw new Error('bad wire type ' + wire);
  }
  if (t.type !== 3 || t.raw === null) throw new Error('images: expected INT8 raw_data tensor');
  return t;
}

async function main() {
  const [modelPath, debugPath, imagesPath, outDir, layerImagesArg] = process.argv.slice(2);
  if (!layerImagesArg) throw new Error('usage: ort_reference.js <model.onnx> <debug.onnx> <images.pb> <out_dir> <layer_images>');
  const layerImages = Number(layerImagesArg);
  const img = decodeTensor(fs.readFileSync(imagesPath));
  const data = new Int8Array(img.raw.buffer.slice(img.raw.byteOffset, img.raw.byteOffset + img.raw.byteLength));
  fs.mkdirSync(outDir, { recursive: true });
  const per = img.dims.slice(1).reduce((a, b) => a * b, 1);

  const full = await ort.InferenceSession.create(modelPath);
  const inputName = full.inputNames[0];
  const r = await full.run({ [inputName]: new ort.Tensor('int8', data, img.dims) });
  for (const name of full.outputNames) fs.writeFileSync(path.join(outDir, `full_${name}.pb`), encodeTensor(name, r[name]));

  const dbg = await ort.InferenceSession.create(debugPath);
  const dims = [layerImages, ...img.dims.slice(1)];
  const r2 = await dbg.run({ [inputName]: new ort.Tensor('int8', data.slice(0, layerImages * per), dims) });
  const written = [];
  for (const name of dbg.outputNames) {
    if (r2[name].type === 'float32') continue;  // float intermediates (DequantizeLinear -> Softmax) are not compared
    fs.writeFileSync(path.join(outDir, `layers_${name}.pb`), encodeTensor(name, r2[name]));
    written.push(name);
  }
  console.log(`ORT ${require('onnxruntime-node/package.json').version}: ${path.basename(modelPath)}: full outputs ` +
              `${full.outputNames.join(', ')} for ${img.dims[0]} images; layer outputs ${written.join(', ')} for ${layerImages}`);
}
main().catch((e) => { console.error(e.stack || String(e)); process.exit(1); });
