// Seeded fuzz driver for softmax and attention (issue 14): int8 / uint8 softmax (beta-derived and
// raw parameter triples), int16 softmax, attention over K and V views (masks, causal, int8 and
// uint8 probabilities, both exp evaluations) and decoding against a kv_cache grown by random
// appends, on scalar, simd at every level and the NPU emulator. Besides fuzz_support.hpp's
// checks, a refused append leaves the cache exactly as it was and an accepted one stores the
// appended positions. Usage: fuzz_attention [seconds] [seed].
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.hpp"

using namespace npuq;
using namespace npuq::fuzz;

namespace {

float random_beta(gen& g) { return g.chance(3) ? (g.chance(50) ? 0.0f : -1.0f) : static_cast<float>(g.in(1, 4000)) * 1e-3f; }

template <class I, class O>
void softmax_call(gen& g, driver& d) {
  const int rank = static_cast<int>(g.in(1, 3));
  std::int64_t dims[3];
  double size = 1;
  for (int i = 0; i < rank; ++i) {
    dims[i] = g.extent(0, i + 1 == rank ? 40 : 4);
    size = dims[i] < 0 || size < 0 ? -1 : size * double(dims[i]);
  }
  if (size > 1e5) return;  // valid views of 2^62 rows through a zero stride: too much work
  constexpr bool wide = std::is_same<I, std::int16_t>::value;
  pool pin(4096), pout(8192);
  pin.fill(g);
  pout.fill_canary();
  const float in_scale = static_cast<float>(g.in(1, 1000)) * (wide ? 1e-5f : 1e-3f);
  const TensorView<const I> in = random_view<const I>(g, pin, dims, rank, g.chance(90) ? Quant::per_tensor(in_scale, 0)
                                                                                       : random_quant(g, 0, 0, -128, 127));
  const Quant right = wide ? Quant::per_tensor(1.0f / 32768.0f, 0)
                           : Quant::per_tensor(1.0f / 256.0f, std::is_same<O, std::int8_t>::value ? -128 : 0);
  const bool alias = g.chance(5);
  pool& outp = alias ? pin : pout;
  const TensorView<O> out = random_view<O>(g, outp, dims, rank, g.chance(85) ? right : random_quant(g, 0, 0, -128, 255));
  const npu::emulator emu = random_emulator(g);
  if constexpr (wide) {
    softmax_int16_params p;
    if (!softmax_int16_params::from_beta(random_beta(g), in_scale, &p).ok()) return;
    if (g.chance(10)) p.input_shift = static_cast<int>(g.in(-40, 40));
    d.context = describe("in", in) + describe("out", out);
    check_call(d, "softmax int16", outp, {&pin}, &emu, [&](const auto& be) { return try_softmax(be, p, in, out); });
  } else {
    softmax_params p;
    if (g.chance(80)) {
      if (!softmax_params::from_beta(random_beta(g), in_scale, &p).ok()) return;
    } else {
      p.input_multiplier = static_cast<std::int32_t>(g.in(-5, (std::int64_t{1} << 31) - 1));
      p.input_left_shift = static_cast<int>(g.in(-2, 33));
      p.diff_min = static_cast<std::int32_t>(g.in(-100000, 10));
    }
    if (g.chance(50)) p.exp = softmax_exp::table;
    d.context = describe("in", in) + describe("out", out) + " params " + std::to_string(p.input_multiplier) + " " +
                std::to_string(p.input_left_shift) + " " + std::to_string(p.diff_min);
    check_call(d, "softmax", outp, {&pin}, &emu, [&](const auto& be) { return try_softmax(be, p, in, out); });
  }
}

attention_params random_attention_params(gen& g) {
  attention_params p;
  const numerics_profile profiles[] = {numerics_profile::tflite(), numerics_profile::tosa_single(), numerics_profile::onnx()};
  p.numerics = profiles[g.in(0, 2)];
  p.score = g.chance(95) ? Quant::per_tensor(static_cast<float>(g.in(1, 1000)) * 1e-3f, static_cast<std::int32_t>(g.in(-128, 127)))
                         : random_quant(g, 0, 0, -300, 300);
  p.beta = g.chance(50) ? 0.0f : random_beta(g);
  if (g.chance(10)) {
    softmax_params sm;
    sm.input_multiplier = static_cast<std::int32_t>(g.in(0, (std::int64_t{1} << 31) - 1));
    sm.input_left_shift = static_cast<int>(g.in(-1, 32));
    sm.diff_min = static_cast<std::int32_t>(g.in(-100000, 0));
    p.softmax = sm;
  }
  p.exp = g.chance(50) ? softmax_exp::table : softmax_exp::fixed_point;
  p.causal = g.chance(40);
  p.probabilities = g.chance(50) ? dtype::s8 : (g.chance(95) ? dtype::u8 : dtype::s32);
  return p;
}

Quant qkv_quant(gen& g) { return g.chance(95) ? Quant::per_tensor(static_cast<float>(g.in(1, 1000)) * 1e-3f, static_cast<std::int32_t>(g.in(-128, 127))) : random_quant(g, 0, 0, -128, 127); }

// A random mask of rank 1..3 broadcasting against [H, S, T] (sometimes not).
TensorView<const std::int32_t> random_mask(gen& g, pool& p, std::int64_t H, std::int64_t S, std::int64_t T) {
  if (!g.chance(40)) return {};
  for (auto& b : p.bytes) b = 0;
  auto* m = reinterpret_cast<std::int32_t*>(p.bytes.data());
  for (std::size_t i = 0; i < p.bytes.size() / 4; ++i) m[i] = static_cast<std::int32_t>(g.chance(20) ? attention_masked - g.in(0, 2) : g.in(-300, 300));
  const int rank = static_cast<int>(g.in(1, 3));
  const std::int64_t full[3] = {H, S, T};
  std::int64_t dims[3];
  for (int i = 0; i < rank; ++i) dims[i] = g.chance(30) ? 1 : (g.chance(3) ? g.extent(0, 9) : full[3 - rank + i]);
  return random_view<const std::int32_t>(g, p, dims, rank, {});
}

template <class O>
void attention_call(gen& g, driver& d) {
  const int rank = g.chance(80) ? 3 : 2;
  const std::int64_t H = rank == 3 ? g.extent(1, 3) : 1, S = g.extent(0, 6), T = g.extent(0, 12), D = g.extent(1, 20), DV = g.extent(0, 20);
  // Summed in double: D + DV in int64 overflows for the adversarial extents (INT64_MAX).
  if (H < 0 || S < 0 || T < 0 || D < 0 || DV < 0 ? false : double(H) * double(S) * double(T) * (double(D) + double(DV)) > 1e6) return;
  pool pq(4096), pk(4096), pv(4096), pm(1024), pout(8192);
  pq.fill(g);
  pk.fill(g);
  pv.fill(g);
  pout.fill_canary();
  const int o = rank == 3 ? 0 : 1;  // the first dim of rank-3 arrays is the heads
  const std::int64_t qd[3] = {H, S, D}, kd[3] = {H, T, g.chance(3) ? g.extent(1, 20) : D}, vd[3] = {H, T, DV};
  const std::int64_t od[3] = {H, g.chance(3) ? g.extent(0, 6) : S, DV};
  const TensorView<const std::int8_t> q = random_view<const std::int8_t>(g, pq, qd + o, rank, qkv_quant(g));
  const TensorView<const std::int8_t> k = random_view<const std::int8_t>(g, pk, kd + o, rank, qkv_quant(g));
  const TensorView<const std::int8_t> v = random_view<const std::int8_t>(g, pv, vd + o, rank, qkv_quant(g));
  const TensorView<const std::int32_t> mask = random_mask(g, pm, H, S, T);
  const int alias = g.chance(6) ? static_cast<int>(g.in(1, 3)) : 0;
  pool& outp = alias == 1 ? pq : (alias == 2 ? pk : (alias == 3 ? pv : pout));
  const TensorView<O> out = random_view<O>(g, outp, od + o, rank, qkv_quant(g));
  const attention_params p = random_attention_params(g);
  const npu::emulator emu = random_emulator(g);
  d.context = describe("q", q) + describe("k", k) + describe("v", v) + describe("mask", mask) + describe("out", out) +
              (p.causal ? " causal" : "");
  check_call(d, "attention", outp, {&pq, &pk, &pv, &pm}, &emu, [&](const auto& be) {
    return mask.rank() == 0 && mask.data() == nullptr ? try_attention(be, p, q, k, v, no_mask, out) : try_attention(be, p, q, k, v, mask, out);
  });
}

// Decoding: a kv_cache grown by random appends (some refused), then one query step against it.
void decode_call(gen& g, driver& d) {
  const std::int64_t H = g.in(1, 3), cap = g.in(0, 12), D = g.in(1, 16), DV = g.in(1, 16);
  const Quant kq = Quant::per_tensor(static_cast<float>(g.in(1, 100)) * 1e-2f, static_cast<std::int32_t>(g.in(-20, 20)));
  const Quant vq = Quant::per_tensor(static_cast<float>(g.in(1, 100)) * 1e-2f, static_cast<std::int32_t>(g.in(-20, 20)));
  kv_cache<std::int8_t> cache(H, cap, D, DV, kq, vq);
  for (int step = static_cast<int>(g.in(0, 4)); step > 0; --step) {
    pool pk(2048), pv(2048);
    pk.fill(g);
    pv.fill(g);
    const std::int64_t n = g.extent(0, 5);
    const std::int64_t kd[3] = {g.chance(3) ? g.extent(1, 3) : H, n, g.chance(3) ? g.extent(1, 16) : D};
    const std::int64_t vd[3] = {H, g.chance(3) ? g.extent(0, 5) : n, DV};
    const TensorView<const std::int8_t> kn = random_view<const std::int8_t>(g, pk, kd, 3, g.chance(90) ? kq : qkv_quant(g));
    const TensorView<const std::int8_t> vn = random_view<const std::int8_t>(g, pv, vd, 3, g.chance(90) ? vq : qkv_quant(g));
    const std::int64_t len0 = cache.length();
    const TensorView<const std::int8_t> all_k = cache.keys().with_layout(Layout::row_major({H, cap, D}));
    const TensorView<const std::int8_t> all_v = cache.values().with_layout(Layout::row_major({H, cap, DV}));
    const std::vector<std::int8_t> k0(all_k.data(), all_k.data() + H * cap * D), v0(all_v.data(), all_v.data() + H * cap * DV);
    const status s = cache.try_append(kn, vn);
    const std::vector<std::int8_t> k1(all_k.data(), all_k.data() + H * cap * D), v1(all_v.data(), all_v.data() + H * cap * DV);
    if (!s.ok()) {
      if (cache.length() != len0 || k1 != k0 || v1 != v0) d.fail("kv_cache::try_append failed (" + s.to_string() + ") after changing the cache");
      if (s.message().find(':') == std::string::npos) d.fail("kv_cache: message names no argument: " + s.to_string());
      continue;
    }
    if (cache.length() != len0 + n) d.fail("kv_cache::try_append: length " + std::to_string(cache.length()));
    for (std::int64_t h = 0; h < H; ++h)
      for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t j = 0; j < D; ++j)
          if (all_k(h, len0 + i, j) != kn(h, i, j)) d.fail("kv_cache::try_append stored another key");
        for (std::int64_t j = 0; j < DV; ++j)
          if (all_v(h, len0 + i, j) != vn(h, i, j)) d.fail("kv_cache::try_append stored another value");
      }
  }
  pool pq(1024), pm(1024), pout(4096);
  pq.fill(g);
  pout.fill_canary();
  const std::int64_t S = g.in(1, 2);
  const std::int64_t qd[3] = {H, S, D}, od[3] = {H, S, DV};
  const TensorView<const std::int8_t> q = random_view<const std::int8_t>(g, pq, qd, 3, qkv_quant(g));
  const TensorView<const std::int32_t> mask = random_mask(g, pm, H, S, cache.length());
  const TensorView<std::int8_t> out = random_view<std::int8_t>(g, pout, od, 3, qkv_quant(g));
  const attention_params p = random_attention_params(g);
  const npu::emulator emu = random_emulator(g);
  d.context = describe("q", q) + describe("k", cache.keys()) + describe("v", cache.values()) + describe("mask", mask) + describe("out", out);
  check_call(d, "attention decode", pout, {&pq, &pm}, &emu, [&](const auto& be) {
    return mask.rank() == 0 && mask.data() == nullptr ? try_attention(be, p, q, cache, no_mask, out) : try_attention(be, p, q, cache, mask, out);
  });
}

void one_call(gen& g, driver& d) {
  switch (d.call % 7) {
    case 0: return softmax_call<std::int8_t, std::int8_t>(g, d);
    case 1: return softmax_call<std::uint8_t, std::uint8_t>(g, d);
    case 2: return softmax_call<std::int16_t, std::int16_t>(g, d);
    case 3: return attention_call<std::int8_t>(g, d);
    case 4: return attention_call<std::uint8_t>(g, d);
    default: return decode_call(g, d);
  }
}

}  // namespace

NPUQ_FUZZ_MAIN("fuzz_attention", one_call)
