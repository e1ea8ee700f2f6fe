// ONNX Runtime's MatMulNBits (com.microsoft, 4-bit, group-wise scales) timed on one thread, the
// peer of npuq's int4 group-wise GEMM (issue 5). Run through scripts/bench-ort.sh.
//
//   node bench/ort/matmul_nbits.mjs <onnxruntime-node dir> [M] [N] [K] [block] [accuracy_level]
//
// Builds a one-node ONNX model in memory (a small protobuf writer below; field numbers from
// onnx.proto), runs it with intra/inter-op threads = 1, checks the output against a float
// reference computed here from the same dequantized weights (accuracy_level 4 quantizes A to
// int8 per block, so the check has a tolerance), and prints the median and best time of the runs
// and GOPS = 2*M*N*K / time.
import { createRequire } from 'node:module';

const [ortDir, Ms = '64', Ns = '4096', Ks = '4096', Bs = '32', ALs = '4'] = process.argv.slice(2);
if (!ortDir) {
  console.error('usage: node matmul_nbits.mjs <onnxruntime-node dir> [M N K block accuracy_level]');
  process.exit(2);
}
const ort = createRequire(import.meta.url)(ortDir);
const M = +Ms, N = +Ns, K = +Ks, block = +Bs, accuracy = +ALs;
const blocks = K / block, blob = block / 2;

// --- protobuf writer: varints, tags, length-delimited fields -------------------------------
function varint(v) {
  const out = [];
  let x = BigInt(v);
  if (x < 0n) x += 1n << 64n;
  do {
    let b = Number(x & 0x7fn);
    x >>= 7n;
    if (x) b |= 0x80;
    out.push(b);
  } while (x);
  return out;
}
const tag = (field, wire) => varint((field << 3) | wire);
const int = (field, v) => [...tag(field, 0), ...varint(v)];
const bytes = (field, buf) => [...tag(field, 2), ...varint(buf.length), ...buf];
const str = (field, s) => bytes(field, [...Buffer.from(s, 'utf8')]);
const msg = (field, parts) => bytes(field, parts.flat());

const FLOAT = 1, UINT8 = 2;
const valueInfo = (field, name, elem, dims) =>
  msg(field, [str(1, name), msg(2, [msg(1, [int(1, elem), msg(2, dims.map((d) => msg(1, [int(1, d)])))])])]);
const tensor = (name, elem, dims, raw) => msg(5, [...dims.map((d) => int(1, d)), int(2, elem), str(8, name), bytes(9, [...raw])]);
const attrInt = (name, v) => msg(5, [str(1, name), int(3, v), int(20, 2)]);

// --- weights: random 4-bit codes (zero point 8 by default), random positive scales ------------
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const codes = new Uint8Array(N * K);
for (let i = 0; i < codes.length; ++i) codes[i] = Math.floor(rand() * 16);
const packed = new Uint8Array(N * blocks * blob);  // [N][blocks][blob]: element 2j low nibble, 2j+1 high
for (let n = 0; n < N; ++n)
  for (let k = 0; k < K; k += 2) packed[(n * K + k) / 2] = codes[n * K + k] | (codes[n * K + k + 1] << 4);
const scales = new Float32Array(N * blocks);
for (let i = 0; i < scales.length; ++i) scales[i] = 0.001 + 0.01 * rand();
const a = new Float32Array(M * K);
for (let i = 0; i < a.length; ++i) a[i] = rand() * 2 - 1;

const node = msg(1, [str(1, 'A'), str(1, 'B'), str(1, 'scales'), str(2, 'Y'), str(3, 'mm'), str(4, 'MatMulNBits'),
  str(7, 'com.microsoft'), attrInt('K', K), attrInt('N', N), attrInt('bits', 4), attrInt('block_size', block),
  attrInt('accuracy_level', accuracy)]);
const graph = msg(7, [node, str(2, 'g'), tensor('B', UINT8, [N, blocks, blob], packed),
  tensor('scales', FLOAT, [N * blocks], new Uint8Array(scales.buffer)), valueInfo(11, 'A', FLOAT, [M, K]),
  valueInfo(12, 'Y', FLOAT, [M, N])]);
const model = Uint8Array.from([...int(1, 9), ...str(2, 'npuq-bench'), ...graph, ...msg(8, [str(1, ''), int(2, 21)]),
  ...msg(8, [str(1, 'com.microsoft'), int(2, 1)])]);

const session = await ort.InferenceSession.create(model, {
  intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: 'sequential', graphOptimizationLevel: 'all',
});
const feeds = { A: new ort.Tensor('float32', a, [M, K]) };

// --- correctness: a few outputs against the float reference --------------------------------
const y = (await session.run(feeds)).Y.data;
let maxRel = 0;
for (const [m, n] of [[0, 0], [M - 1, N - 1], [M >> 1, N >> 1], [1 % M, 7 % N], [M - 1, 0]]) {
  let ref = 0, mag = 0;
  for (let k = 0; k < K; ++k) {
    const w = (codes[n * K + k] - 8) * scales[n * blocks + Math.floor(k / block)];
    ref += a[m * K + k] * w;
    mag += Math.abs(a[m * K + k] * w);
  }
  maxRel = Math.max(maxRel, Math.abs(y[m * N + n] - ref) / mag);
}

// --- timing ----------------------------------------------------------------------------------
for (let i = 0; i < 3; ++i) await session.run(feeds);  // warm-up
const runs = [];
const deadline = Date.now() + 5000;
while (runs.length < 10 || (Date.now() < deadline && runs.length < 200)) {
  const t0 = process.hrtime.bigint();
  await session.run(feeds);
  runs.push(Number(process.hrtime.bigint() - t0) / 1e3);
}
runs.sort((x, z) => x - z);
const median = runs[runs.length >> 1], best = runs[0];
const gops = (t) => (2 * M * N * K) / (t * 1e3);
console.log(`ort ${ort.env.versions.common} MatMulNBits M=${M} N=${N} K=${K} block=${block} accuracy_level=${accuracy}: ` +
  `median ${median.toFixed(0)} us (${gops(median).toFixed(1)} GOPS), best ${best.toFixed(0)} us, ${runs.length} runs, ` +
  `max |error| / sum|a*w| = ${maxRel.toExponential(2)}`);
console.log(`ORT_MEDIAN_US=${median.toFixed(1)}`);
