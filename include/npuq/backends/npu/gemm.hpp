// GEMM on the NPU emulator: `npuq::gemm(emu, params, a, b, bias, out)`.
//
// Each batch of A is one instance of an (M x N x K) op; a rank-2 B is shared by every batch, so
// the weight DMA is skipped when consecutive tiles need the same weight block. A tile's sums come
// from the simd backend: a view of A's tile rows times the weight tile, packed once per op.
// int4 weights (W4A8) run the simd int4 kernels on nibble panels and are charged 4 bits per
// weight in every DMA, buffer and energy figure.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "npuq/backends/npu/emulator.hpp"
#include "npuq/ops/gemm.hpp"
#include "npuq/ops/gemm_problem.hpp"
#include "npuq/simd.hpp"

namespace npuq {
namespace npu {
namespace detail {

// Largest |x - zp| over a type's range.
template <class T>
std::int64_t max_abs_offset(std::int32_t zp) {
  const std::int64_t lo = element_traits<T>::min - std::int64_t{zp}, hi = element_traits<T>::max - std::int64_t{zp};
  return std::max(-lo, hi);
}
template <class T>
std::int64_t max_abs_offset(const std::vector<std::int32_t>& zps) {
  std::int64_t m = 0;
  for (std::int32_t z : zps) m = std::max(m, max_abs_offset<T>(z));
  return m;
}

// Writes n values to dst with element stride `step` (8-bit or int32 outputs; unit stride is a
// plain loop the compiler vectorizes).
#if defined(NPUQ_NPU_PPU_AVX2)
// 32 values a step narrowed to 8 bits (the PPU clamped them to the output type's range, so the
// saturating packs equal the casts); returns how many it wrote.
template <class O>
NPUQ_TARGET_AVX2 std::int64_t narrow_8bit_avx2(O* dst, const std::int32_t* v, std::int64_t n) {
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  std::int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    const auto* p = reinterpret_cast<const __m256i*>(v + j);
    const __m256i ab = _mm256_packs_epi32(_mm256_loadu_si256(p), _mm256_loadu_si256(p + 1));
    const __m256i cd = _mm256_packs_epi32(_mm256_loadu_si256(p + 2), _mm256_loadu_si256(p + 3));
    const __m256i r = std::is_signed<O>::value ? _mm256_packs_epi16(ab, cd) : _mm256_packus_epi16(ab, cd);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), _mm256_permutevar8x32_epi32(r, order));
  }
  return j;
}
#endif

template <class O>
void store_values(O* __restrict dst, std::int64_t step, const std::int32_t* __restrict v, std::int64_t n) {
  if (step == 1) {
    std::int64_t j0 = 0;
#if defined(NPUQ_NPU_PPU_AVX2)
    if (sizeof(O) == 1 && n >= 32 && ppu_avx2_available()) j0 = narrow_8bit_avx2(dst, v, n);
#endif
    for (std::int64_t j = j0; j < n; ++j) dst[j] = static_cast<O>(v[j]);
  } else {
    for (std::int64_t j = 0; j < n; ++j) dst[j * step] = static_cast<O>(v[j]);
  }
}

// Per-channel quantization carrying only zero points (scale 1): what a raw int32 simd call on a
// weight slice needs.
inline Quant zero_point_quant(int axis, const std::vector<std::int32_t>& zps, std::int64_t first, std::int64_t count) {
  return Quant::per_axis(axis, std::vector<float>(static_cast<std::size_t>(count), 1.0f),
                         std::vector<std::int32_t>(zps.begin() + first, zps.begin() + first + count));
}

// The simd call's parameters for a tile: int32 raw sums, wrapping at 32 bits (exact here).
template <class Params>
Params raw_tile_params() {
  Params p;
  p.numerics = numerics_profile::tflite();
  return p;
}

inline std::int64_t max_abs_bias(const TensorView<const std::int32_t>& bias) {
  std::int64_t m = 0;
  if (bias.rank() == 1)
    for (std::int64_t i = 0; i < bias.dim(0); ++i) m = std::max(m, std::abs(static_cast<std::int64_t>(bias(i))));
  return m;
}

// The simd packed form of a weight tile: int8/uint8 panels, or int4 nibble panels (W4A8).
template <class B>
struct packed_tile_weights {
  using type = packed_gemm_weights<B>;
};
template <>
struct packed_tile_weights<int4> {
  using type = packed_int4_weights;
};

// A tile's exact int32 sums from the simd GEMM kernels, entered at the kernel layer: the views
// are slices of the op's validated tensors and the weights were packed from one, so nothing is
// validated again per tile (the raw stage: int32 sums wrapping at 32 bits, exact here).
template <class B, class A, class W>
void simd_tile_sums(const TensorView<const A>& a, const W& w, const TensorView<std::int32_t>& out) {
  gemm_problem<A, B, std::int32_t> q;
  q.a = a;
  q.out = out;
  q.M = a.dim(0);
  q.K = a.dim(1);
  q.N = out.dim(1);
  q.a_zero_point = a.quant().zero_point();
  if constexpr (std::is_same<B, int4>::value)
    simd_detail::run_gemm_int4(npuq::simd, q, &w);  // W4A8 nibble panels
  else
    simd_detail::run_gemm_problem(npuq::simd, q, &w);
}

// The operand interface the emulator's run() reads, for a GEMM problem.
template <class A, class B, class O>
struct gemm_operands {
  using out_type = O;
  const gemm_problem<A, B, O>& p;
  // Weight tiles packed for the simd kernels, by (n0, kc0), for the B instance `packed_for`.
  mutable std::map<std::pair<std::int64_t, std::int64_t>, typename packed_tile_weights<B>::type> packed;
  mutable std::int64_t packed_for = -1;

  explicit gemm_operands(const gemm_problem<A, B, O>& pb) : p(pb) {}

  std::string shape_string() const {
    return "M=" + std::to_string(p.M) + " N=" + std::to_string(p.N) + " K=" + std::to_string(p.K) +
           (p.batch_count() > 1 ? " batches=" + std::to_string(p.batch_count()) : "");
  }
  std::int64_t max_abs_a() const { return max_abs_offset<A>(p.a_zero_point); }
  std::int64_t max_abs_b() const { return max_abs_offset<B>(p.b_zero_point); }
  std::int64_t max_abs_bias() const { return detail::max_abs_bias(p.bias); }
  bool has_bias() const { return p.has_bias(); }
  std::int32_t bias(std::int64_t ch) const { return p.bias(ch); }
  std::int64_t channel(std::int64_t, std::int64_t n) const { return n; }
  std::int64_t b_instance(std::int64_t inst) const { return p.b.rank() == 2 ? 0 : inst; }

  // A rows [ox0, ox0 + tw) x K range, as [mt][kt].
  void load_a(const tile_ref& t, std::int16_t* dst) const {
    std::int64_t ao = 0, bo = 0, oo = 0;
    p.batch_offsets(t.inst, &ao, &bo, &oo);
    const Layout& l = p.a.layout();
    const std::int64_t sm = l.stride(l.rank() - 2), sk = l.stride(l.rank() - 1), kt = t.kcn;
    for (std::int64_t i = 0; i < t.tw; ++i) {
      const std::int64_t base = p.a.offset() + ao + (t.ox0 + i) * sm + t.kc0 * sk;
      for (std::int64_t k = 0; k < kt; ++k)
        dst[i * kt + k] = static_cast<std::int16_t>(p.a.load(base + k * sk) - p.a_zero_point);
    }
  }
  // B columns [n0, n0 + nt) x K range, as [nt][kt].
  void load_b(const tile_ref& t, std::int16_t* dst) const {
    std::int64_t ao = 0, bo = 0, oo = 0;
    p.batch_offsets(t.inst, &ao, &bo, &oo);
    const Layout& l = p.b.layout();
    const std::int64_t sk = l.stride(l.rank() - 2), sn = l.stride(l.rank() - 1), kt = t.kcn;
    for (std::int64_t j = 0; j < t.nt; ++j) {
      const std::int64_t n = t.n0 + j;
      const std::int32_t zp = p.b_zero_point[static_cast<std::size_t>(n)];
      const std::int64_t base = p.b.offset() + bo + n * sn + t.kc0 * sk;
      for (std::int64_t k = 0; k < kt; ++k) dst[j * kt + k] = static_cast<std::int16_t>(p.b.load(base + k * sk) - zp);
    }
  }
  // Exact sums of the tile's K range, [mt][nt]: simd GEMM on a view of the tile's A rows and
  // the packed weight tile. Every |product| <= 255 * 255 < 2^16 and kt <= max_tile_k = 2^15,
  // so each sum is below 2^31 and the kernel's sum modulo 2^32 is the exact sum.
  status tile_sums(const tile_ref& t, std::int32_t* part) const {
    const std::int64_t kt = t.kcn;
    if (kt == 0) {
      std::fill(part, part + t.tw * t.nt, std::int32_t{0});
      return {};
    }
    std::int64_t ao = 0, bo = 0, oo = 0;
    p.batch_offsets(t.inst, &ao, &bo, &oo);
    const std::int64_t binst = b_instance(t.inst);
    if (binst != packed_for) {
      packed.clear();
      packed_for = binst;
    }
    typename packed_tile_weights<B>::type& w = packed[{t.n0, t.kc0}];
    if (w.N() == 0) {
      const Layout& bl = p.b.layout();
      const std::int64_t sk = bl.stride(bl.rank() - 2), sn = bl.stride(bl.rank() - 1);
      const TensorView<const B> bv(p.b.data(), p.b.offset() + bo + t.kc0 * sk + t.n0 * sn, Layout::strided({kt, t.nt}, {sk, sn}),
                                   zero_point_quant(1, p.b_zero_point, t.n0, t.nt), p.b.capacity());
      NPUQ_RETURN_IF_ERROR(w.pack(bv));  // cannot fail: a slice of validated weights
    }
    const Layout& al = p.a.layout();
    const std::int64_t sm = al.stride(al.rank() - 2), sk = al.stride(al.rank() - 1);
    const TensorView<const A> av(p.a.data(), p.a.offset() + ao + t.ox0 * sm + t.kc0 * sk, Layout::strided({t.tw, kt}, {sm, sk}),
                                 Quant::per_tensor(1.0f, p.a_zero_point), p.a.capacity());
    const TensorView<std::int32_t> ov(part, Layout::strided({t.tw, t.nt}, {t.nt, 1}));
    simd_tile_sums<B>(av, w, ov);
    return {};
  }
  // Where the PPU may write a tile straight into the output (ppu.hpp): unit column stride.
  bool out_rows(const tile_ref& t, ppu_out<O>* d) const {
    const Layout& l = p.out.layout();
    if (l.stride(l.rank() - 1) != 1) return false;
    std::int64_t ao = 0, bo = 0, oo = 0;
    p.batch_offsets(t.inst, &ao, &bo, &oo);
    const std::int64_t sm = l.stride(l.rank() - 2);
    *d = {p.out.data() + p.out.offset() + oo + t.ox0 * sm + t.n0, sm, sm, t.tw};
    return true;
  }
  void store(const tile_ref& t, const std::int32_t* v) const {
    std::int64_t ao = 0, bo = 0, oo = 0;
    p.batch_offsets(t.inst, &ao, &bo, &oo);
    const Layout& l = p.out.layout();
    const std::int64_t sm = l.stride(l.rank() - 2), sn = l.stride(l.rank() - 1);
    const std::int64_t tw = t.tw, nt = t.nt;
    O* const base = p.out.data() + p.out.offset() + oo + t.ox0 * sm + t.n0 * sn;
    if (sn == 1 && sm == nt) return store_values(base, 1, v, tw * nt);  // the tile's rows are contiguous
    for (std::int64_t i = 0; i < tw; ++i) store_values(base + i * sm, sn, v + i * nt, nt);
  }
};

}  // namespace detail

template <class A, class B, class O>
status execute(const emulator& emu, const gemm_problem<A, B, O>& p) {
  op_shape s;
  s.op = "gemm";
  s.instances = p.batch_count();
  s.OW = p.M;
  s.N = p.N;
  s.k_units = p.K;
  s.out_bits = 8 * static_cast<int>(sizeof(O));
  s.w_bits = std::is_same<B, int4>::value ? 4 : 8;  // int4 weights move and store half the bytes
  return emu.hooks().run(s, detail::gemm_operands<A, B, O>(p), p.stage);
}

}  // namespace npu
}  // namespace npuq
