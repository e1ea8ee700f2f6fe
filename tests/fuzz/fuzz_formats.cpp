// Seeded fuzz driver for the formats and core types (issue 14): Layout arithmetic against exact
// 128-bit results, TensorView::validate, Tensor allocation, and the int4 importers (ggml Q4_0,
// ONNX Runtime MatMulNBits with float and fp16 scales). Checks:
//   - Layout: try_size / try_span succeed exactly when the 128-bit result fits, and equal it;
//     size() / span() saturate; fits() agrees; is_non_overlapping() never says yes when two
//     indices share an offset (brute force on small layouts);
//   - validate(): accepts exactly the views whose bytes lie inside the capacity;
//   - Tensor: holds span elements, zeroed, or throws npuq::error when the bytes do not fit;
//   - importers: refused calls leave the output untouched and read nothing (sources are exact
//     heap buffers, so ASan sees any read past them; huge shapes get a null source); imported
//     weights dequantize to exactly the source's values, and a grouped GEMM on them gives the
//     same bytes on every backend.
// Usage: fuzz_formats [seconds] [seed].
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "fuzz_support.hpp"

using namespace npuq;
using namespace npuq::fuzz;

namespace {

using i128 = __int128;
constexpr i128 kMax128 = int64_max;

void layout_call(gen& g, driver& d) {
  const int rank = static_cast<int>(g.in(0, 6));
  std::int64_t dims[6], strides[6];
  for (int i = 0; i < rank; ++i) {
    dims[i] = g.chance(80) ? g.in(0, 5) : g.extent(-1, 1 << 20);
    strides[i] = g.chance(80) ? g.in(0, 12) : g.extent(-1, 1 << 20);
  }
  const bool row_major = g.chance(30);
  const Layout l = row_major ? Layout::row_major(dims, rank) : strided_layout(dims, strides, rank);
  bool negative = false;
  for (int i = 0; i < rank; ++i) negative = negative || dims[i] < 0 || (!row_major && strides[i] < 0);
  if (l.well_formed() == negative) d.fail("Layout " + l.to_string() + ": well_formed() = " + std::to_string(l.well_formed()));
  if (negative) return;
  // Exact size and span (saturated at 2^100 so the 128-bit products cannot overflow).
  const i128 cap = i128{1} << 100;
  i128 size = 1, last = 0;
  bool empty = false;
  for (int i = 0; i < rank; ++i) {
    size = dims[i] != 0 && size > cap / dims[i] ? cap : size * dims[i];  // 2^100 * 2^62 would overflow 128 bits
    empty = empty || dims[i] == 0;
    last = std::min<i128>(last + i128{dims[i] > 0 ? dims[i] - 1 : 0} * l.stride(i), cap);
  }
  const i128 span = empty ? 0 : last + 1;
  std::int64_t got = 0;
  if (l.try_size(&got) != (size <= kMax128) || (size <= kMax128 && got != size)) d.fail("Layout " + l.to_string() + ": try_size");
  if (l.size() != (size <= kMax128 ? static_cast<std::int64_t>(size) : int64_max)) d.fail("Layout " + l.to_string() + ": size()");
  // A row-major layout also needs its computed strides to fit; the strided() ones are given.
  if (l.fits() && (size > kMax128 || span > kMax128)) d.fail("Layout " + l.to_string() + ": fits() but does not");
  if (!row_major && !l.fits() && size <= kMax128 && span <= kMax128) d.fail("Layout " + l.to_string() + ": fits() says no");
  if (l.fits()) {
    if (!l.try_span(&got) || got != span) d.fail("Layout " + l.to_string() + ": try_span");
    if (l.span() != static_cast<std::int64_t>(span)) d.fail("Layout " + l.to_string() + ": span()");
  } else if (l.try_span(&got) && got != span) {
    d.fail("Layout " + l.to_string() + ": try_span of a layout that does not fit");
  }
  if (span > kMax128 && l.span() != int64_max) d.fail("Layout " + l.to_string() + ": span() does not saturate");
  // Overlap, by brute force on small layouts.
  if (l.fits() && size > 0 && size <= 4096 && l.is_non_overlapping()) {
    std::set<std::int64_t> seen;
    std::int64_t idx[6] = {};
    for (std::int64_t e = 0; e < l.size(); ++e) {
      std::int64_t r = e;
      for (int i = rank - 1; i >= 0; --i) idx[i] = r % dims[i], r /= dims[i];
      if (!seen.insert(l.offset_of(idx)).second) d.fail("Layout " + l.to_string() + ": is_non_overlapping() but two indices share an offset");
    }
  }
  // validate(): exactly the views inside the capacity (int32 elements, so bytes can overflow too).
  static std::int32_t cell[4];
  const std::int64_t offset = g.chance(70) ? g.in(0, 8) : g.extent(-1, 64);
  const std::int64_t capacity = g.chance(30) ? TensorView<const std::int32_t>::unknown_capacity : g.extent(0, 4096);
  const bool null = g.chance(10);
  const TensorView<const std::int32_t> v(null ? nullptr : cell, offset, l, {}, capacity);
  const status s = v.validate("x");
  const i128 end = i128{offset} + span;
  const bool ok = l.fits() && (span == 0 || !null) && offset >= 0 && end * 4 <= kMax128 &&
                  (capacity == TensorView<const std::int32_t>::unknown_capacity || end <= capacity);
  if (s.ok() != ok) d.fail("validate(" + l.to_string() + " at " + std::to_string(offset) + ", capacity " + std::to_string(capacity) + "): " + s.to_string());
  if (!s.ok() && s.message().rfind("x:", 0) != 0) d.fail("validate: message does not start with the argument: " + s.to_string());
  // Tensor: allocates span elements, or refuses by throwing.
  if (!l.fits() || span * 4 > kMax128) {
    try {
      Tensor<std::int32_t> t(l);
      d.fail("Tensor over " + l.to_string() + " was constructed");
    } catch (const npuq::error&) {
    }
  } else if (span <= (1 << 16)) {
    Tensor<std::int32_t> t(l);
    if (t.capacity() != span || t.storage_bytes() != span * 4) d.fail("Tensor over " + l.to_string() + ": capacity");
    for (std::int64_t i = 0; i < t.capacity(); ++i)
      if (t.data()[i] != 0) d.fail("Tensor over " + l.to_string() + ": not zeroed");
    if (!t.view().validate("t").ok()) d.fail("Tensor over " + l.to_string() + ": its view is invalid");
  }
}

// The dequantized value of imported weight (k, n).
float dequantized(const int4_weights& w, std::int64_t k, std::int64_t n) {
  const std::int64_t g = w.quant.granularity == quant_granularity::per_group ? k / w.quant.group_size : 0;
  const std::size_t i = static_cast<std::size_t>(n * w.groups() + g);
  const std::int32_t zp = w.quant.zero_points.size() == 1 ? w.quant.zero_points[0] : w.quant.zero_points[i];
  return static_cast<float>(w.view()(k, n) - zp) * w.quant.scales[i];
}

// A grouped GEMM on imported weights, every backend against scalar.
void gemm_on(gen& g, driver& d, const int4_weights& w, const char* what) {
  const std::int64_t M = g.in(1, 3);
  // Imports of 2^40 empty rows (K = 0) or of no row over K = 2^40 are fine, but too large to multiply.
  if (double(M) * (double(w.N) + double(w.K) + double(w.N) * double(w.K)) > 200000) return;
  Tensor<std::int8_t> a(Layout::matrix(M, w.K), Quant::per_tensor(0.01f * static_cast<float>(g.in(1, 10)), static_cast<std::int32_t>(g.in(-5, 5))));
  for (std::int64_t i = 0; i < M * w.K; ++i) a.data()[i] = static_cast<std::int8_t>(g.in(-128, 127));
  pool pout(static_cast<std::size_t>(M * w.N * 4));
  pout.fill_canary();
  const TensorView<float> out(reinterpret_cast<float*>(pout.bytes.data()), Layout::matrix(M, w.N));
  const npu::emulator emu = random_emulator(g);
  check_call(d, what, pout, {}, &emu, [&](const auto& be) { return try_gemm_grouped(be, gemm_grouped_params{}, a, w.view(), no_bias, out); });
}

// A shape: mostly small, sometimes adversarial.
std::int64_t import_extent(gen& g, std::int64_t lo, std::int64_t hi, std::int64_t unit) {
  if (g.chance(90)) return g.in(lo, hi) * unit;
  const std::int64_t odd[] = {-unit, int64_max, int64_max / unit * unit, std::int64_t{1} << 32, std::int64_t{1} << 40, std::int64_t{1} << 62, unit + 1};
  return odd[g.in(0, 6)];
}

bool untouched(const int4_weights& w) { return w.K == 0 && w.N == 0 && w.data.data() == nullptr && !w.quant.present(); }

void ggml_call(gen& g, driver& d) {
  const std::int64_t N = import_extent(g, 0, 6, 1), K = import_extent(g, 0, 4, ggml_q4_0_block);
  const double bytes = double(N) * double(K) / 32.0 * 18.0;
  std::vector<std::uint8_t> src;
  const bool small = N >= 0 && K >= 0 && bytes <= 65536;
  if (small) src.resize(static_cast<std::size_t>(bytes));
  for (auto& b : src) b = static_cast<std::uint8_t>(g.in(0, 255));
  // Scales: mostly finite fp16 values of both signs, sometimes 0, inf or NaN.
  for (std::size_t i = 0; i + 18 <= src.size(); i += 18) {
    const int kind = static_cast<int>(g.in(0, 99));
    const std::uint16_t h = kind < 3 ? 0x7C00 : kind < 5 ? 0x7E00 : kind < 10 ? 0 : static_cast<std::uint16_t>(g.in(0x0400, 0x5BFF) | (g.chance(50) ? 0x8000 : 0));
    src[i] = static_cast<std::uint8_t>(h & 0xFF);
    src[i + 1] = static_cast<std::uint8_t>(h >> 8);
  }
  int4_weights w;
  const status s = import_ggml_q4_0(small ? src.data() : nullptr, N, K, &w);
  if (!s.ok()) {
    if (!untouched(w)) d.fail("import_ggml_q4_0 failed (" + s.to_string() + ") after writing its output");
    if (s.message().rfind("ggml_q4_0:", 0) != 0) d.fail("import_ggml_q4_0: message does not name the format: " + s.to_string());
    return;
  }
  ++d.successes;
  if (w.N != N || w.K != K) d.fail("import_ggml_q4_0: shape");
  // K = 0: no weight to check, however many rows (2^40 empty rows import; walking them did not end).
  for (std::int64_t n = 0; K > 0 && n < N; ++n)
    for (std::int64_t k = 0; k < K; ++k) {
      const std::uint8_t* blk = src.data() + (n * (K / 32) + k / 32) * 18;
      const std::int64_t j = k % 32;
      const int q = j < 16 ? blk[2 + j] & 0x0F : blk[2 + j - 16] >> 4;
      const float ref = static_cast<float>(q - 8) * fp16_to_float(static_cast<std::uint16_t>(blk[0] | (blk[1] << 8)));
      if (dequantized(w, k, n) != ref) d.fail("import_ggml_q4_0: weight (" + std::to_string(k) + ", " + std::to_string(n) + ") dequantizes to another value");
    }
  gemm_on(g, d, w, "gemm_grouped on ggml_q4_0");
}

void nbits_call(gen& g, driver& d) {
  const std::int64_t N = import_extent(g, 0, 6, 1), K = import_extent(g, 0, 80, 1);
  const std::int64_t bs = g.chance(95) ? (std::int64_t{1} << g.in(4, 7)) : g.extent(-1, 100);
  const bool fp16 = g.chance(50), with_zp = g.chance(50);
  const bool shape_ok = N >= 0 && K >= 0 && bs >= 16 && (bs & (bs - 1)) == 0;
  const std::int64_t blocks = shape_ok ? ceil_div(K, bs) : 0;
  const bool small = shape_ok && double(N) * double(blocks) * double(bs) <= 65536;
  std::vector<std::uint8_t> b, zp;
  std::vector<float> sc;
  std::vector<std::uint16_t> sc16;
  if (small) {
    b.resize(static_cast<std::size_t>(N * blocks * bs / 2));
    zp.resize(static_cast<std::size_t>(N * ((blocks + 1) / 2)));
    sc.resize(static_cast<std::size_t>(N * blocks));
    sc16.resize(sc.size());
  }
  for (auto& x : b) x = static_cast<std::uint8_t>(g.in(0, 255));
  for (auto& x : zp) x = static_cast<std::uint8_t>(g.in(0, 255));
  for (std::size_t i = 0; i < sc.size(); ++i) {
    const int kind = static_cast<int>(g.in(0, 99));
    sc16[i] = kind < 3 ? 0x7C00 : kind < 5 ? 0 : static_cast<std::uint16_t>(g.in(0x0400, 0x5BFF) | (kind < 8 ? 0x8000 : 0));
    sc[i] = fp16_to_float(sc16[i]);
  }
  int4_weights w;
  const std::uint8_t* zpp = with_zp ? (small ? zp.data() : nullptr) : nullptr;
  const std::uint8_t* bp = small ? b.data() : nullptr;
  const status s = fp16 ? import_matmul_nbits(bp, small ? sc16.data() : nullptr, zpp, N, K, bs, &w)
                        : import_matmul_nbits(bp, small ? sc.data() : nullptr, zpp, N, K, bs, &w);
  if (!s.ok()) {
    if (!untouched(w)) d.fail("import_matmul_nbits failed (" + s.to_string() + ") after writing its output");
    if (s.message().rfind("matmul_nbits:", 0) != 0) d.fail("import_matmul_nbits: message does not name the format: " + s.to_string());
    return;
  }
  ++d.successes;
  if (w.N != N || w.K != K) d.fail("import_matmul_nbits: shape");
  for (std::int64_t n = 0; K > 0 && n < N; ++n)  // K = 0: nothing to check (see ggml_call)
    for (std::int64_t k = 0; k < K; ++k) {
      const std::int64_t blk = k / bs, i = k % bs;
      const std::uint8_t byte = b[static_cast<std::size_t>((n * blocks + blk) * (bs / 2) + i / 2)];
      const int q = (i & 1) != 0 ? byte >> 4 : byte & 0x0F;
      int z = 8;
      if (with_zp) {
        const std::uint8_t zb = zp[static_cast<std::size_t>(n * ((blocks + 1) / 2) + blk / 2)];
        z = (blk & 1) != 0 ? zb >> 4 : zb & 0x0F;
      }
      const float ref = static_cast<float>(q - z) * sc[static_cast<std::size_t>(n * blocks + blk)];
      if (dequantized(w, k, n) != ref) d.fail("import_matmul_nbits: weight (" + std::to_string(k) + ", " + std::to_string(n) + ") dequantizes to another value");
    }
  gemm_on(g, d, w, "gemm_grouped on matmul_nbits");
}

void one_call(gen& g, driver& d) {
  switch (d.call % 4) {
    case 0:
    case 1: return layout_call(g, d);
    case 2: return ggml_call(g, d);
    default: return nbits_call(g, d);
  }
}

}  // namespace

NPUQ_FUZZ_MAIN("fuzz_formats", one_call)
