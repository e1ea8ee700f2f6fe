// The emulator's post-processing unit on the host for the common cases: int32 sums of an op
// whose accumulator cannot overflow, plus bias, then either left raw (int32 output) or
// requantized and clamped, counting clamps and the largest |accumulator|. Vectorized for the
// contracts users pick most: tflite (Q31 multiplier, double rounding) and fp32 ties to even
// (onnx, Gemmini).
//
// `ppu_tile` returns false when it does not apply (another multiplier format or rounding, no
// AVX2 under the process ISA cap, or a non-x86 build); the caller then runs the general
// per-element PPU. The AVX2 lanes compute exactly npuq::requantize. tflite: x << left
// (wrapping), SRDHM with a multiplier >= 0 (so the INT32_MIN * INT32_MIN case cannot occur),
// rounding divide by 2^right. fp32: (float)x * scale, rounded to nearest even in float (the
// reference rounds the same float in double: same integer). Then the clamp applied before adding
// the zero point (the same result and counts as clamping after, without int32 overflow). Tested
// against the scalar path in tests/test_npu.cpp.
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "npuq/core/cpu_features.hpp"
#include "npuq/core/numerics.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include "npuq/backends/simd/output_stage.hpp"
#include "npuq/backends/simd/x86/intrin.hpp"
#include "npuq/backends/simd/x86/output_stage_avx512.hpp"
#define NPUQ_NPU_PPU_AVX2 1
// The AVX-512 form uses masked loads SIMDe 0.7.4 lacks: not built against SIMDe (the emulated-ISA
// tests), where the AVX-512 levels take the AVX2 form.
#if !(defined(NPUQ_X86_EMULATED) && NPUQ_X86_EMULATED)
#define NPUQ_NPU_PPU_AVX512 1
#endif
#endif

namespace npuq {
namespace npu {
namespace detail {

// The PPU contracts with a vector path.
// q31_symmetric: a Q31 multiplier whose rounding shift is symmetric about zero (half away from
// zero, NVDLA's; or truncation), computed on |acc * multiplier| with the sign restored.
enum class ppu_kind : std::uint8_t { raw, q31_double, fp32_half_even, q31_symmetric, other };

inline ppu_kind ppu_kind_of(bool raw, const numerics_profile& num) {
  if (raw) return ppu_kind::raw;
  if (num.format == multiplier_format::q31 && num.mode == rounding::tflite_double) return ppu_kind::q31_double;
  if (num.format == multiplier_format::fp32 && num.mode == rounding::half_even) return ppu_kind::fp32_half_even;
  if (num.format == multiplier_format::q31 && (num.mode == rounding::half_away || num.mode == rounding::truncate))
    return ppu_kind::q31_symmetric;
  return ppu_kind::other;
}

// Where the PPU writes a tile's outputs: the nt values of tile row i (a pixel, or a GEMM row) at
// at(i), consecutive (unit channel stride); rows of `tw` pixels `pixel_step` apart, and those
// rows `row_step` apart. O is the output type (the values are inside its range): the output
// tensor itself, or an int32 scratch tile.
template <class O>
struct ppu_out {
  O* base = nullptr;
  std::int64_t row_step = 0, pixel_step = 0, tw = 1;
  O* at(std::int64_t i) const { return base + (i / tw) * row_step + (i % tw) * pixel_step; }
};

// Visits at(0), at(1), ... without a division per row.
template <class O>
struct ppu_out_walk {
  const ppu_out<O>& out;
  O* line;
  O* row;
  std::int64_t x = 0;
  explicit ppu_out_walk(const ppu_out<O>& o) : out(o), line(o.base), row(o.base) {}
  void next() {
    if (++x == out.tw) {
      x = 0;
      line += out.row_step;
      row = line;
    } else {
      row += out.pixel_step;
    }
  }
};

// The row bookkeeping of the vector PPUs: row i's sums and destination, and when the lane clamp
// counters must be flushed to the int64 totals. A lane's count grows by at most one per vector
// step, so flushing every 2^30 steps keeps it below 2^31 (|v| < 2^31 keeps the unsigned max
// exact without flushing).
template <class O>
struct ppu_rows {
  const std::int32_t* sums;
  std::int64_t nt, steps_per_row, pending = 0;
  ppu_out_walk<O> walk;
  ppu_rows(const std::int32_t* s, std::int64_t n, std::int64_t lanes, const ppu_out<O>& out)
      : sums(s), nt(n), steps_per_row((n + lanes - 1) / lanes), walk(out) {}
  std::int64_t smax = 0, slow = 0, shigh = 0;  // flushed totals: largest |acc|, clamps below, above
  const std::int32_t* sums_of(std::int64_t i) const { return sums + i * nt; }
  // Adds the totals to the op's counters.
  void finish(std::int64_t* max_abs, std::int64_t* n_low, std::int64_t* n_high) const {
    *max_abs = smax > *max_abs ? smax : *max_abs;
    *n_low += slow;
    *n_high += shigh;
  }
  O* dst() const { return walk.row; }
  // Called once before each row: true when the counters must be flushed first.
  bool flush_due() {
    const bool due = pending + steps_per_row >= (std::int64_t{1} << 30);
    pending = (due ? 0 : pending) + steps_per_row;
    return due;
  }
};

// Per-channel requantization constants as lanes (Q31 multiplier split into shifts, fp32 scale),
// and the channel itself for the scalar tail.
struct ppu_lanes {
  std::vector<std::int32_t> mult, left, right, total_shift;
  std::vector<float> scale;
  std::vector<requant_channel> rq;
  // The tflite double rounding composed into one step (simd_detail::q31_double_composed_avx512)
  // when every channel allows it for zero point `composed_zp`: per 16 columns, the 8 even
  // columns' constants then the 8 odd ones'; each column's right shift - 1.
  bool composed = false;
  std::int32_t composed_zp = 0;
  std::vector<std::int64_t> composed_c;
  std::vector<std::int32_t> composed_shift;
  // The Q31 single rounding (q31_symmetric kind) as one arithmetic shift after an offset
  // (simd_detail::single_round_offsets_for), in the same per-16-column even/odd order: the shift
  // and the offsets, for the AVX-512 PPU.
#if defined(NPUQ_NPU_PPU_AVX2)
  simd_detail::single_round_columns single;
#endif
  void resize(std::size_t n) {
    mult.resize(n);
    left.resize(n);
    right.resize(n);
    total_shift.resize(n);
    scale.resize(n);
    rq.resize(n);
  }
  void set(std::size_t j, const requant_channel& r) {
    mult[j] = r.multiplier;
    left[j] = r.shift > 0 ? r.shift : 0;
    right[j] = r.shift > 0 ? 0 : -r.shift;
    total_shift[j] = 31 - r.shift;  // requantize's Q31 rounding shift (1..62)
    scale[j] = r.scale;
    rq[j] = r;
  }
  // After set() for channels [0, n): prepares the composed form for zero point zp, if it applies.
  void compose(std::size_t n, std::int32_t zp) {
    composed = false;
#if defined(NPUQ_NPU_PPU_AVX2)
    for (std::size_t j = 0; j < n; ++j)
      if (!simd_detail::q31_double_composable(rq[j], zp)) return;
    composed_c.assign((n + 15) / 16 * 16, 0);
    composed_shift.assign(composed_c.size(), 0);
    for (std::size_t j = 0; j < n; ++j) {
      const int r = -rq[j].shift;
      composed_c[simd_detail::even_odd_lane(j)] = simd_detail::q31_double_composed_constant(r, zp);
      composed_shift[j] = r - 1;
    }
    composed = true;
    composed_zp = zp;
#else
    (void)n, (void)zp;
#endif
  }
  // After set() for channels [0, n): prepares the single-rounding offsets for `mode`.
  void prepare_single(std::size_t n, rounding mode) {
#if defined(NPUQ_NPU_PPU_AVX2)
    single.build(mode, n, [&](std::size_t j) { return rq[j].shift; });
#else
    (void)n, (void)mode;
#endif
  }
};

#if defined(NPUQ_NPU_PPU_AVX2)
// The lane constants as plain pointers, read once per tile: the vector stores of the loops may
// alias anything (their type is may_alias), so pointers read through ppu_lanes would be
// reloaded at every store.
struct ppu_lane_ptrs {
  const std::int32_t *mult, *left, *right, *total_shift;
  const float* scale;
  explicit ppu_lane_ptrs(const ppu_lanes& c)
      : mult(c.mult.data()), left(c.left.data()), right(c.right.data()), total_shift(c.total_shift.data()), scale(c.scale.data()) {}
};

// tflite's MultiplyByQuantizedMultiplier on 8 lanes from column j: the simd output stage's steps.
NPUQ_TARGET_AVX2 inline __m256i q31_double_avx2(__m256i v, const ppu_lane_ptrs& c, std::int64_t j) {
  const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.mult + j));
  const __m256i y = _mm256_sllv_epi32(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.left + j)));
  return simd_detail::rdbpot_avx2(simd_detail::srdhm_avx2(y, m), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.right + j)));
}

// requantize's Q31 step for rounding::half_away (Half) or truncate on 8 lanes from column j, |v|
// < 2^31: the 64-bit products (|p| < 2^62) of the even and odd lanes rounded on |p| with the sign
// restored (as round_shift_int64), clamped to [qlo, qhi] in 64 bits; `below` / `above` flag the
// clamped lanes.
template <bool Half>
NPUQ_TARGET_AVX2 inline __m256i q31_symmetric_avx2(__m256i v, const ppu_lane_ptrs& c, std::int64_t j, __m256i qlo, __m256i qhi,
                                                   __m256i* below, __m256i* above) {
  const __m256i zero = _mm256_setzero_si256(), one = _mm256_set1_epi64x(1), low32 = _mm256_set1_epi64x(0xFFFFFFFF);
  const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.mult + j));
  const __m256i ts = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.total_shift + j));
  __m256i q[2], lo[2], hi[2];
  for (int odd = 0; odd < 2; ++odd) {
    const __m256i p = odd ? _mm256_mul_epi32(_mm256_srli_epi64(v, 32), _mm256_srli_epi64(m, 32)) : _mm256_mul_epi32(v, m);
    const __m256i s = odd ? _mm256_srli_epi64(ts, 32) : _mm256_and_si256(ts, low32);
    const __m256i sign = _mm256_cmpgt_epi64(zero, p);
    __m256i mag = _mm256_sub_epi64(_mm256_xor_si256(p, sign), sign);
    if (Half) mag = _mm256_add_epi64(mag, _mm256_sllv_epi64(one, _mm256_sub_epi64(s, one)));
    const __m256i r = _mm256_sub_epi64(_mm256_xor_si256(_mm256_srlv_epi64(mag, s), sign), sign);
    lo[odd] = _mm256_cmpgt_epi64(qlo, r);
    hi[odd] = _mm256_cmpgt_epi64(r, qhi);
    q[odd] = _mm256_blendv_epi8(_mm256_blendv_epi8(r, qlo, lo[odd]), qhi, hi[odd]);
  }
  *below = _mm256_blend_epi32(lo[0], lo[1], 0xAA);
  *above = _mm256_blend_epi32(hi[0], hi[1], 0xAA);
  return _mm256_blend_epi32(q[0], _mm256_slli_epi64(q[1], 32), 0xAA);
}

// Adds the lane counters (largest |acc|, clamps below and above) to the scalar totals and zeroes them.
NPUQ_TARGET_AVX2 inline void flush_ppu_counters(__m256i* vmax, __m256i* vlow, __m256i* vhigh, std::int64_t* smax,
                                                std::int64_t* slow, std::int64_t* shigh) {
  alignas(32) std::uint32_t lane[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lane), *vmax);
  for (std::uint32_t x : lane) *smax = x > *smax ? x : *smax;
  _mm256_store_si256(reinterpret_cast<__m256i*>(lane), *vlow);
  for (std::uint32_t x : lane) *slow += x;
  _mm256_store_si256(reinterpret_cast<__m256i*>(lane), *vhigh);
  for (std::uint32_t x : lane) *shigh += x;
  *vmax = *vlow = *vhigh = _mm256_setzero_si256();
}

// v = sums + bias (exact in int32: the caller checked the accumulator cannot overflow), then
// out = clamp(requantize(v)) (K != raw) or v; rows x nt, channel j uses lane constants [j].
// 8 int32 lanes (inside O's range) stored as O.
template <class O>
NPUQ_TARGET_AVX2 inline void ppu_store8_avx2(O* dst, __m256i v) {
  if constexpr (sizeof(O) == 4) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), v);
  } else {
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));  // exact: in range
    const __m128i b = std::is_signed<O>::value ? _mm_packs_epi16(w, w) : _mm_packus_epi16(w, w);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), b);
  }
}

template <ppu_kind K, class O>
NPUQ_TARGET_AVX2 inline void ppu_tile_avx2(const std::int32_t* sums, const std::int32_t* bias, const ppu_lanes& lanes,
                                           std::int64_t rows, std::int64_t nt, const numerics_profile& num, std::int32_t zp,
                                           std::int32_t lo, std::int32_t hi, const ppu_out<O>& out, std::int64_t* max_abs,
                                           std::int64_t* n_low, std::int64_t* n_high) {
  const ppu_lane_ptrs c(lanes);
  const std::int32_t qlo = lo - zp, qhi = hi - zp;  // zp, lo, hi are 8-bit range values: no overflow
  const __m256i vqlo = _mm256_set1_epi32(qlo), vqhi = _mm256_set1_epi32(qhi), vzp = _mm256_set1_epi32(zp);
  const __m256 fqlo = _mm256_set1_ps(static_cast<float>(qlo)), fqhi = _mm256_set1_ps(static_cast<float>(qhi));
  const __m256i zero = _mm256_setzero_si256();
  const __m256i qlo64 = _mm256_set1_epi64x(qlo), qhi64 = _mm256_set1_epi64x(qhi);
  const bool half_away = num.mode == rounding::half_away;
  __m256i vmax = zero, vlow = zero, vhigh = zero;
  ppu_rows<O> rw(sums, nt, 8, out);
  for (std::int64_t i = 0; i < rows; ++i, rw.walk.next()) {
    const std::int32_t* si = rw.sums_of(i);
    O* oi = rw.dst();
    if (rw.flush_due()) flush_ppu_counters(&vmax, &vlow, &vhigh, &rw.smax, &rw.slow, &rw.shigh);
    std::int64_t j = 0;
    for (; j + 8 <= nt; j += 8) {
      const __m256i v = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(si + j)),
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bias + j)));
      vmax = _mm256_max_epu32(vmax, _mm256_abs_epi32(v));  // |v| < 2^31
      if (K == ppu_kind::raw) {
        ppu_store8_avx2(oi + j, v);
        continue;
      }
      __m256i q;
      __m256i below, above;
      if (K == ppu_kind::fp32_half_even) {
        const __m256 f = _mm256_round_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_loadu_ps(c.scale + j)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        below = _mm256_castps_si256(_mm256_cmp_ps(f, fqlo, _CMP_LT_OQ));
        above = _mm256_castps_si256(_mm256_cmp_ps(f, fqhi, _CMP_GT_OQ));
        q = _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(f, fqlo), fqhi));
      } else if (K == ppu_kind::q31_symmetric) {
        q = half_away ? q31_symmetric_avx2<true>(v, c, j, qlo64, qhi64, &below, &above)
                      : q31_symmetric_avx2<false>(v, c, j, qlo64, qhi64, &below, &above);
      } else {
        q = q31_double_avx2(v, c, j);
        below = _mm256_cmpgt_epi32(vqlo, q);
        above = _mm256_cmpgt_epi32(q, vqhi);
        q = _mm256_min_epi32(_mm256_max_epi32(q, vqlo), vqhi);
      }
      vlow = _mm256_sub_epi32(vlow, below);
      vhigh = _mm256_sub_epi32(vhigh, above);
      ppu_store8_avx2(oi + j, _mm256_add_epi32(q, vzp));
    }
    for (; j < nt; ++j) {
      const std::int32_t v = si[j] + bias[j];
      const std::int64_t mag = v < 0 ? -static_cast<std::int64_t>(v) : v;
      rw.smax = mag > rw.smax ? mag : rw.smax;
      if (K == ppu_kind::raw) {
        oi[j] = static_cast<O>(v);
        continue;
      }
      const std::int32_t o = requantize(num, v, lanes.rq[static_cast<std::size_t>(j)], zp, INT32_MIN, INT32_MAX);
      rw.slow += o < lo;
      rw.shigh += o > hi;
      oi[j] = static_cast<O>(o < lo ? lo : (o > hi ? hi : o));
    }
  }
  flush_ppu_counters(&vmax, &vlow, &vhigh, &rw.smax, &rw.slow, &rw.shigh);
  rw.finish(max_abs, n_low, n_high);
}
#endif

#if defined(NPUQ_NPU_PPU_AVX512)
NPUQ_AVX512_WARNINGS_OFF
NPUQ_TARGET_AVX512_VNNI inline void flush_ppu_counters_avx512(__m512i* vmax, __m512i* vlow, __m512i* vhigh, std::int64_t* smax,
                                                              std::int64_t* slow, std::int64_t* shigh) {
  alignas(64) std::uint32_t lane[16];
  _mm512_store_si512(lane, *vmax);
  for (std::uint32_t x : lane) *smax = x > *smax ? x : *smax;
  _mm512_store_si512(lane, *vlow);
  for (std::uint32_t x : lane) *slow += x;
  _mm512_store_si512(lane, *vhigh);
  for (std::uint32_t x : lane) *shigh += x;
  *vmax = *vlow = *vhigh = _mm512_setzero_si512();
}

// The same PPU on 16 lanes (the AVX-512 levels): masked loads and stores for a row's last
// columns, so no scalar tail; clamps counted per lane like the AVX2 form.
// 16 int32 lanes (inside O's range) stored as O, the lanes of `keep` only.
template <class O>
NPUQ_TARGET_AVX512_VNNI inline void ppu_store16_avx512(O* dst, __mmask16 keep, __m512i v) {
  if constexpr (sizeof(O) == 4) {
    _mm512_mask_storeu_epi32(dst, keep, v);
  } else {
    __m128i bytes = _mm512_cvtepi32_epi8(v);  // exact: in range
    NPUQ_VECTOR_BARRIER(bytes);  // vpmovdb's memory form is slow on AMD (output_stage_avx512.hpp)
    if (keep == 0xFFFF) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), bytes);
    else _mm_mask_storeu_epi8(dst, keep, bytes);
  }
}

// Column blocks outer, rows inner: a block's per-channel constants (bias, multipliers, shifts,
// offsets) are loaded once and stay in registers while every row of the tile passes, and the
// rows' vectors are independent of each other (only the counters carry over). Row-outer, every
// vector reloaded about eight constant vectors and the out-of-order window saw one row's five
// dependent chains at a time (NVDLA's 1x1 expand layer: half the emulator's time in this loop).
template <ppu_kind K, class O>
NPUQ_TARGET_AVX512_VNNI inline void ppu_tile_avx512(const std::int32_t* sums, const std::int32_t* bias, const ppu_lanes& lanes,
                                                    std::int64_t rows, std::int64_t nt, const numerics_profile& num,
                                                    std::int32_t zp, std::int32_t lo, std::int32_t hi, const ppu_out<O>& out,
                                                    std::int64_t* max_abs, std::int64_t* n_low, std::int64_t* n_high) {
  const ppu_lane_ptrs c(lanes);
  const std::int32_t qlo = lo - zp, qhi = hi - zp;  // zp, lo, hi are 8-bit range values: no overflow
  const __m512i vqlo = _mm512_set1_epi32(qlo), vqhi = _mm512_set1_epi32(qhi), vzp = _mm512_set1_epi32(zp);
  const __m512 fqlo = _mm512_set1_ps(static_cast<float>(qlo)), fqhi = _mm512_set1_ps(static_cast<float>(qhi));
  // q31_symmetric clamps its 64-bit results to [qlo - 1, qhi + 1] first (int32 values that still
  // compare as clamped), then as the other kinds.
  const __m512i wlo64 = _mm512_set1_epi64(qlo - 1), whi64 = _mm512_set1_epi64(qhi + 1);
  const __m512i zero = _mm512_setzero_si512(), one = _mm512_set1_epi32(1);
  (void)num;
  const bool composed = K == ppu_kind::q31_double && lanes.composed && lanes.composed_zp == zp;
  const std::int64_t* cc = lanes.composed_c.data();
  const std::int32_t* cs = lanes.composed_shift.data();
  const simd_detail::single_round_columns& sr = lanes.single;
  __m512i vmax = zero, vlow = zero, vhigh = zero;
  std::int64_t smax = 0, slow = 0, shigh = 0;  // flushed totals
  // A lane's clamp count grows by at most one per vector: flushed every 2^30 vectors.
  std::int64_t pending = 0;
  for (std::int64_t j = 0; j < nt; j += 16) {
    const __mmask16 keep = nt - j >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (nt - j)) - 1);
    const __m512i vb = _mm512_maskz_loadu_epi32(keep, bias + j);
    // This block's constants, for the kind K computes (the others are left unused).
    __m512 scale = _mm512_setzero_ps();
    __m512i m = zero, m_odd = zero, left = zero, right = zero, cc0 = zero, cc1 = zero, csh = zero;
    simd_detail::single_round16 r = simd_detail::single_round16::zero();
    if (K == ppu_kind::fp32_half_even) scale = _mm512_maskz_loadu_ps(keep, c.scale + j);
    if (K == ppu_kind::q31_symmetric || K == ppu_kind::q31_double) {
      m = _mm512_maskz_loadu_epi32(keep, c.mult + j);
      m_odd = _mm512_srli_epi64(m, 32);
    }
    if (K == ppu_kind::q31_symmetric) r = simd_detail::single_round16::load(sr.t.data() + j, sr.base.data() + j, sr.neg.data() + j);
    if (K == ppu_kind::q31_double && composed) {
      cc0 = _mm512_loadu_si512(cc + j), cc1 = _mm512_loadu_si512(cc + j + 8);
      csh = _mm512_maskz_loadu_epi32(keep, cs + j);
    }
    if (K == ppu_kind::q31_double && !composed) {
      left = _mm512_maskz_loadu_epi32(keep, c.left + j);
      right = _mm512_maskz_loadu_epi32(keep, c.right + j);
    }
    ppu_out_walk<O> walk(out);
    const std::int32_t* si = sums + j;
    for (std::int64_t i = 0; i < rows; ++i, si += nt, walk.next()) {
      if (++pending == (std::int64_t{1} << 30)) {
        flush_ppu_counters_avx512(&vmax, &vlow, &vhigh, &smax, &slow, &shigh);
        pending = 0;
      }
      O* oi = walk.row + j;
      const __m512i v = _mm512_add_epi32(_mm512_maskz_loadu_epi32(keep, si), vb);
      vmax = _mm512_max_epu32(vmax, _mm512_abs_epi32(v));  // |v| < 2^31; masked-off lanes are 0
      if (K == ppu_kind::raw) {
        ppu_store16_avx512(oi, keep, v);
        continue;
      }
      __m512i q;
      __mmask16 below, above;
      if (K == ppu_kind::fp32_half_even) {
        const __m512 f = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v), scale), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        below = _mm512_cmp_ps_mask(f, fqlo, _CMP_LT_OQ);
        above = _mm512_cmp_ps_mask(f, fqhi, _CMP_GT_OQ);
        q = _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(f, fqlo), fqhi));
      } else {
        if (K == ppu_kind::q31_symmetric) {
          // requantize's Q31 single rounding of acc * multiplier, even and odd lanes as 64-bit
          // products, each one arithmetic shift after its offset (the simd output stage's form).
          q = simd_detail::single_round16_avx512(v, m, m_odd, r, false, wlo64, whi64);
        } else if (composed) {  // y + zp in one step: compared and clamped with zp included
          q = _mm512_sub_epi32(simd_detail::q31_double_composed_avx512(v, m, m_odd, cc0, cc1, csh), vzp);
        } else {
          q = simd_detail::rdbpot_avx512(simd_detail::srdhm_avx512(_mm512_sllv_epi32(v, left), m), right);
        }
        below = _mm512_cmplt_epi32_mask(q, vqlo);
        above = _mm512_cmpgt_epi32_mask(q, vqhi);
        q = _mm512_min_epi32(_mm512_max_epi32(q, vqlo), vqhi);
      }
      vlow = _mm512_mask_add_epi32(vlow, below & keep, vlow, one);
      vhigh = _mm512_mask_add_epi32(vhigh, above & keep, vhigh, one);
      ppu_store16_avx512(oi, keep, _mm512_add_epi32(q, vzp));
    }
  }
  flush_ppu_counters_avx512(&vmax, &vlow, &vhigh, &smax, &slow, &shigh);
  *max_abs = smax > *max_abs ? smax : *max_abs;
  *n_low += slow;
  *n_high += shigh;
}
NPUQ_AVX512_WARNINGS_ON
#endif

// Which vector PPU runs in this process (CPU and ISA cap): the level table's output-stage family.
enum class ppu_path : std::uint8_t { none, avx2, avx512 };
inline ppu_path ppu_vector_path() {
#if defined(NPUQ_NPU_PPU_AVX2)
  const kernel_family f = level_kernels(active_isa(isa::best)).output_stage;
#if defined(NPUQ_NPU_PPU_AVX512)
  if (f == kernel_family::avx512_vnni) return ppu_path::avx512;
#else
  if (f == kernel_family::avx512_vnni) return ppu_path::avx2;
#endif
  if (f == kernel_family::avx2) return ppu_path::avx2;
#endif
  return ppu_path::none;
}

// True when a vector PPU may run in this process (AVX2 or AVX-512).
inline bool ppu_avx2_available() { return ppu_vector_path() != ppu_path::none; }

// See the file comment. `num` is the op's numerics (ignored for ppu_kind::raw); lanes must be set
// for every channel unless raw, and prepared with prepare_single for q31_symmetric (false when
// they were not). Writes rows x nt values to `out` (O: int32, or the 8-bit output
// type when the values are requantized).
template <class O>
bool ppu_tile(ppu_kind kind, const std::int32_t* sums, const std::int32_t* bias, const ppu_lanes& c, std::int64_t rows,
              std::int64_t nt, const numerics_profile& num, std::int32_t zp, std::int32_t lo, std::int32_t hi, const ppu_out<O>& out,
              std::int64_t* max_abs, std::int64_t* n_low, std::int64_t* n_high) {
#if defined(NPUQ_NPU_PPU_AVX2)
  const ppu_path path = ppu_vector_path();
  if (path == ppu_path::none || kind == ppu_kind::other) return false;
  if (kind == ppu_kind::q31_symmetric && c.single.t.size() < static_cast<std::size_t>((nt + 15) / 16 * 16)) return false;
  const auto run = [&](auto k) {
    constexpr ppu_kind K = decltype(k)::value;
#if defined(NPUQ_NPU_PPU_AVX512)
    if (path == ppu_path::avx512) return ppu_tile_avx512<K>(sums, bias, c, rows, nt, num, zp, lo, hi, out, max_abs, n_low, n_high);
#endif
    ppu_tile_avx2<K>(sums, bias, c, rows, nt, num, zp, lo, hi, out, max_abs, n_low, n_high);
  };
  switch (kind) {
    case ppu_kind::raw: run(std::integral_constant<ppu_kind, ppu_kind::raw>{}); return true;
    case ppu_kind::q31_double: run(std::integral_constant<ppu_kind, ppu_kind::q31_double>{}); return true;
    case ppu_kind::fp32_half_even: run(std::integral_constant<ppu_kind, ppu_kind::fp32_half_even>{}); return true;
    case ppu_kind::q31_symmetric: run(std::integral_constant<ppu_kind, ppu_kind::q31_symmetric>{}); return true;
    case ppu_kind::other: break;
  }
  return false;
#else
  (void)kind, (void)sums, (void)bias, (void)c, (void)rows, (void)nt, (void)num, (void)zp, (void)lo, (void)hi, (void)out,
      (void)max_abs, (void)n_low, (void)n_high;
  return false;
#endif
}

// The same into rows x nt consecutive int32 values.
inline bool ppu_tile(ppu_kind kind, const std::int32_t* sums, const std::int32_t* bias, const ppu_lanes& c, std::int64_t rows,
                     std::int64_t nt, const numerics_profile& num, std::int32_t zp, std::int32_t lo, std::int32_t hi, std::int32_t* out,
                     std::int64_t* max_abs, std::int64_t* n_low, std::int64_t* n_high) {
  return ppu_tile(kind, sums, bias, c, rows, nt, num, zp, lo, hi, ppu_out<std::int32_t>{out, nt, 0, 1}, max_abs, n_low, n_high);
}

}  // namespace detail
}  // namespace npu
}  // namespace npuq
