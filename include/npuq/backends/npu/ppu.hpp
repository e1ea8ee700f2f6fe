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
#include <vector>

#include "npuq/core/cpu_features.hpp"
#include "npuq/core/numerics.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include "npuq/backends/simd/x86/intrin.hpp"
#define NPUQ_NPU_PPU_AVX2 1
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

// Per-channel requantization constants as lanes (Q31 multiplier split into shifts, fp32 scale),
// and the channel itself for the scalar tail.
struct ppu_lanes {
  std::vector<std::int32_t> mult, left, right, mask, half, total_shift;
  std::vector<float> scale;
  std::vector<requant_channel> rq;
  void resize(std::size_t n) {
    mult.resize(n);
    left.resize(n);
    right.resize(n);
    mask.resize(n);
    half.resize(n);
    total_shift.resize(n);
    scale.resize(n);
    rq.resize(n);
  }
  void set(std::size_t j, const requant_channel& r) {
    mult[j] = r.multiplier;
    left[j] = r.shift > 0 ? r.shift : 0;
    right[j] = r.shift > 0 ? 0 : -r.shift;
    mask[j] = static_cast<std::int32_t>((std::int64_t{1} << right[j]) - 1);
    half[j] = mask[j] >> 1;
    total_shift[j] = 31 - r.shift;  // requantize's Q31 rounding shift (1..62)
    scale[j] = r.scale;
    rq[j] = r;
  }
};

#if defined(NPUQ_NPU_PPU_AVX2)
// tflite's MultiplyByQuantizedMultiplier on 8 lanes from column j.
NPUQ_TARGET_AVX2 inline __m256i q31_double_avx2(__m256i v, const ppu_lanes& c, std::int64_t j) {
  const __m256i zero = _mm256_setzero_si256();
  const __m256i nudge_pos = _mm256_set1_epi64x(std::int64_t{1} << 30);
  const __m256i nudge_neg = _mm256_set1_epi64x(1 - (std::int64_t{1} << 30));
  const __m256i trunc_fix = _mm256_set1_epi64x((std::int64_t{1} << 31) - 1);
  const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.mult.data() + j));
  const __m256i y = _mm256_sllv_epi32(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.left.data() + j)));
  // SRDHM on the even and odd lanes as 64-bit products: s = ab + nudge, then trunc(s / 2^31)
  // as floor((s + (s < 0 ? 2^31 - 1 : 0)) / 2^31), whose low 32 bits are bits 31..62 of s.
  __m256i even = _mm256_mul_epi32(y, m), odd = _mm256_mul_epi32(_mm256_srli_epi64(y, 32), _mm256_srli_epi64(m, 32));
  even = _mm256_add_epi64(even, _mm256_blendv_epi8(nudge_pos, nudge_neg, _mm256_cmpgt_epi64(zero, even)));
  odd = _mm256_add_epi64(odd, _mm256_blendv_epi8(nudge_pos, nudge_neg, _mm256_cmpgt_epi64(zero, odd)));
  even = _mm256_add_epi64(even, _mm256_and_si256(_mm256_cmpgt_epi64(zero, even), trunc_fix));
  odd = _mm256_add_epi64(odd, _mm256_and_si256(_mm256_cmpgt_epi64(zero, odd), trunc_fix));
  const __m256i h = _mm256_blend_epi32(_mm256_srli_epi64(even, 31), _mm256_slli_epi64(odd, 1), 0xAA);
  // Rounding divide by 2^right, ties away from zero.
  const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.mask.data() + j));
  const __m256i rem = _mm256_and_si256(h, mask);
  const __m256i thr = _mm256_sub_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.half.data() + j)),
                                       _mm256_cmpgt_epi32(zero, h));  // + 1 when h < 0
  const __m256i q = _mm256_srav_epi32(h, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.right.data() + j)));
  return _mm256_sub_epi32(q, _mm256_cmpgt_epi32(rem, thr));
}

// requantize's Q31 step for rounding::half_away (Half) or truncate on 8 lanes from column j, |v|
// < 2^31: the 64-bit products (|p| < 2^62) of the even and odd lanes rounded on |p| with the sign
// restored (as round_shift_int64), clamped to [qlo, qhi] in 64 bits; `below` / `above` flag the
// clamped lanes.
template <bool Half>
NPUQ_TARGET_AVX2 inline __m256i q31_symmetric_avx2(__m256i v, const ppu_lanes& c, std::int64_t j, __m256i qlo, __m256i qhi,
                                                   __m256i* below, __m256i* above) {
  const __m256i zero = _mm256_setzero_si256(), one = _mm256_set1_epi64x(1), low32 = _mm256_set1_epi64x(0xFFFFFFFF);
  const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.mult.data() + j));
  const __m256i ts = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(c.total_shift.data() + j));
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

// v = sums + bias (exact in int32: the caller checked the accumulator cannot overflow), then
// out = clamp(requantize(v)) (K != raw) or v; rows x nt, channel j uses lane constants [j].
template <ppu_kind K>
NPUQ_TARGET_AVX2 inline void ppu_tile_avx2(const std::int32_t* sums, const std::int32_t* bias, const ppu_lanes& c,
                                                          std::int64_t rows, std::int64_t nt, const numerics_profile& num,
                                                          std::int32_t zp, std::int32_t lo, std::int32_t hi, std::int32_t* out,
                                                          std::int64_t* max_abs, std::int64_t* n_low, std::int64_t* n_high) {
  const std::int32_t qlo = lo - zp, qhi = hi - zp;  // zp, lo, hi are 8-bit range values: no overflow
  const __m256i vqlo = _mm256_set1_epi32(qlo), vqhi = _mm256_set1_epi32(qhi), vzp = _mm256_set1_epi32(zp);
  const __m256 fqlo = _mm256_set1_ps(static_cast<float>(qlo)), fqhi = _mm256_set1_ps(static_cast<float>(qhi));
  const __m256i zero = _mm256_setzero_si256();
  const __m256i qlo64 = _mm256_set1_epi64x(qlo), qhi64 = _mm256_set1_epi64x(qhi);
  const bool half_away = num.mode == rounding::half_away;
  __m256i vmax = zero, vlow = zero, vhigh = zero;
  std::int64_t smax = 0, slow = 0, shigh = 0;
  for (std::int64_t i = 0; i < rows; ++i) {
    const std::int32_t* si = sums + i * nt;
    std::int32_t* oi = out + i * nt;
    std::int64_t j = 0;
    for (; j + 8 <= nt; j += 8) {
      const __m256i v = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(si + j)),
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bias + j)));
      vmax = _mm256_max_epu32(vmax, _mm256_abs_epi32(v));  // |v| < 2^31
      if (K == ppu_kind::raw) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(oi + j), v);
        continue;
      }
      __m256i q;
      __m256i below, above;
      if (K == ppu_kind::fp32_half_even) {
        const __m256 f = _mm256_round_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_loadu_ps(c.scale.data() + j)),
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
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(oi + j), _mm256_add_epi32(q, vzp));
    }
    for (; j < nt; ++j) {
      const std::int32_t v = si[j] + bias[j];
      const std::int64_t mag = v < 0 ? -static_cast<std::int64_t>(v) : v;
      smax = mag > smax ? mag : smax;
      if (K == ppu_kind::raw) {
        oi[j] = v;
        continue;
      }
      const std::int32_t o = requantize(num, v, c.rq[static_cast<std::size_t>(j)], zp, INT32_MIN, INT32_MAX);
      slow += o < lo;
      shigh += o > hi;
      oi[j] = o < lo ? lo : (o > hi ? hi : o);
    }
    // Lane counters hold at most 2^31 / 8 rows of 8 per flush; flush every row to be safe.
    alignas(32) std::uint32_t lane[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lane), vmax);
    for (std::uint32_t x : lane) smax = x > smax ? x : smax;
    _mm256_store_si256(reinterpret_cast<__m256i*>(lane), vlow);
    for (std::uint32_t x : lane) slow += x;
    _mm256_store_si256(reinterpret_cast<__m256i*>(lane), vhigh);
    for (std::uint32_t x : lane) shigh += x;
    vmax = vlow = vhigh = zero;
  }
  *max_abs = smax > *max_abs ? smax : *max_abs;
  *n_low += slow;
  *n_high += shigh;
}
#endif

// True when the AVX2 PPU may run in this process (CPU and ISA cap): the level's table lists a
// vectorized output stage, which implies AVX2.
inline bool ppu_avx2_available() {
#if defined(NPUQ_NPU_PPU_AVX2)
  const kernel_family f = level_kernels(active_isa(isa::best)).output_stage;
  return f == kernel_family::avx2 || f == kernel_family::avx512_vnni;
#else
  return false;
#endif
}

// See the file comment. `num` is the op's numerics (ignored for ppu_kind::raw); lanes must be set
// for every channel unless raw.
inline bool ppu_tile(ppu_kind kind, const std::int32_t* sums, const std::int32_t* bias, const ppu_lanes& c, std::int64_t rows,
                     std::int64_t nt, const numerics_profile& num, std::int32_t zp, std::int32_t lo, std::int32_t hi, std::int32_t* out,
                     std::int64_t* max_abs, std::int64_t* n_low, std::int64_t* n_high) {
#if defined(NPUQ_NPU_PPU_AVX2)
  if (!ppu_avx2_available()) return false;
  switch (kind) {
    case ppu_kind::raw:
      ppu_tile_avx2<ppu_kind::raw>(sums, bias, c, rows, nt, num, zp, lo, hi, out, max_abs, n_low, n_high);
      return true;
    case ppu_kind::q31_double:
      ppu_tile_avx2<ppu_kind::q31_double>(sums, bias, c, rows, nt, num, zp, lo, hi, out, max_abs, n_low, n_high);
      return true;
    case ppu_kind::fp32_half_even:
      ppu_tile_avx2<ppu_kind::fp32_half_even>(sums, bias, c, rows, nt, num, zp, lo, hi, out, max_abs, n_low, n_high);
      return true;
    case ppu_kind::q31_symmetric:
      ppu_tile_avx2<ppu_kind::q31_symmetric>(sums, bias, c, rows, nt, num, zp, lo, hi, out, max_abs, n_low, n_high);
      return true;
    case ppu_kind::other: break;
  }
  return false;
#else
  (void)kind, (void)sums, (void)bias, (void)c, (void)rows, (void)nt, (void)num, (void)zp, (void)lo, (void)hi, (void)out,
      (void)max_abs, (void)n_low, (void)n_high;
  return false;
#endif
}

}  // namespace detail
}  // namespace npu
}  // namespace npuq
