// AVX-512 output stage: a tile of int32 sums to stored outputs in one pass, 16 channels a row.
//
// On the VNNI levels the GEMM kernels leave so little work per output that requantizing through
// an int32 buffer and then converting element by element costs more than the dot products (on a
// 1x1 convolution with K = 24, ten times more). This stage takes a row of 16 sums, adds the
// bias, wraps to the accumulator width, requantizes, clamps, adds the zero point and stores the
// row straight into the output (int8, uint8 or int32, masked for a partial panel). The
// arithmetic is the AVX2 stage's (simd/output_stage.hpp) step for step on 16 lanes, which is the
// reference's: tflite double rounding, single rounding ties up, fp32 ties to even, raw int32,
// and (AVX-512 only) the other q31 single roundings. Other profiles take the portable path;
// tests compare every path with the reference.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "npuq/backends/simd/output_stage.hpp"
#include "npuq/backends/simd/x86/intrin.hpp"

#if defined(NPUQ_ARCH_X86_64)

NPUQ_AVX512_WARNINGS_OFF

namespace npuq {
namespace simd_detail {

// Low 32 bits of floor((x * m + 2^30) / 2^31) per lane: gemmlowp's SRDHM for m >= 0.
NPUQ_TARGET_AVX512_VNNI inline __m512i srdhm_avx512(__m512i x, __m512i m) {
  const __m512i nudge = _mm512_set1_epi64(std::int64_t{1} << 30);
  const __m512i even = _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, m), nudge), 31);
  const __m512i odd =
      _mm512_srli_epi64(_mm512_add_epi64(_mm512_mul_epi32(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(m, 32)), nudge), 31);
  return _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

// RoundingDivideByPOT with per-lane exponents e in [0, 31].
NPUQ_TARGET_AVX512_VNNI inline __m512i rdbpot_avx512(__m512i x, __m512i e) {
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i mask = _mm512_sub_epi32(_mm512_sllv_epi32(one, e), one);
  const __m512i rem = _mm512_and_si512(x, mask);
  const __m512i threshold = _mm512_add_epi32(_mm512_srai_epi32(mask, 1), _mm512_srli_epi32(x, 31));
  return _mm512_mask_add_epi32(_mm512_srav_epi32(x, e), _mm512_cmpgt_epi32_mask(rem, threshold), _mm512_srav_epi32(x, e), one);
}

// The tflite double rounding composed into one step, for a channel whose multiplier m >= 0 shifts
// right by r in [1, 22] with |zp| < 2^(30 - r) (q31_double_composable). For a sum x,
// requantize computes RDBP(SRDHM(x, m), r) + zp with SRDHM = floor((x * m + 2^30) / 2^31) and
// RDBP rounding half away from zero: floor((s + 2^(r - 1) - [s < 0]) / 2^r). Composed
// (floor((floor(u / a) + c) / b) = floor((u + c * a) / (a * b)) for integers) and with zp
// folded in:
//   y + zp = floor((x * m + C - [x < 0] * 2^31) / 2^(31 + r)), C = 2^30 + 2^(30 + r) + zp * 2^(31 + r).
// ([x < 0] stands for [s < 0]: they only differ where s = 0 (or m = 0), which both forms round
// to 0; tested against the scalar reference.) The numerator fits in int64 and the result in
// int32, and since 31 + r >= 32 the division is the high half of the numerator shifted right by
// r - 1.
inline bool q31_double_composable(const requant_channel& rc, std::int32_t zero_point) {
  const std::int64_t zp_magnitude = zero_point < 0 ? -std::int64_t{zero_point} : std::int64_t{zero_point};
  return rc.multiplier >= 0 && rc.shift <= -1 && rc.shift >= -22 && zp_magnitude < (std::int64_t{1} << (30 + rc.shift));
}
inline std::int64_t q31_double_composed_constant(int r, std::int32_t zero_point) {
  return (std::int64_t{1} << 30) + (std::int64_t{1} << (30 + r)) + std::int64_t{zero_point} * (std::int64_t{1} << (31 + r));
}
// y + zp on 16 lanes: m_even / m_odd hold the even / odd lanes' multipliers in the even 32-bit
// positions, c_even / c_odd the 8 even / odd lanes' constants C, shift_m1 each lane's r - 1.
NPUQ_TARGET_AVX512_VNNI inline __m512i q31_double_composed_avx512(__m512i v, __m512i m_even, __m512i m_odd, __m512i c_even,
                                                                 __m512i c_odd, __m512i shift_m1) {
  // [x < 0] * 2^31 of the even lanes is x & 2^31 in each 64-bit lane, of the odd ones vo & 2^31.
  const __m512i sign = _mm512_set1_epi64(std::int64_t{1} << 31);
  const __m512i vo = _mm512_srli_epi64(v, 32);
  const __m512i te = _mm512_sub_epi64(_mm512_add_epi64(_mm512_mul_epi32(v, m_even), c_even), _mm512_and_si512(v, sign));
  const __m512i to = _mm512_sub_epi64(_mm512_add_epi64(_mm512_mul_epi32(vo, m_odd), c_odd), _mm512_and_si512(vo, sign));
  const __m512i high = _mm512_set_epi32(31, 15, 29, 13, 27, 11, 25, 9, 23, 7, 21, 5, 19, 3, 17, 1);
  return _mm512_srav_epi32(_mm512_permutex2var_epi32(te, high, to), shift_m1);
}

// Single rounding on the low 32 bits of each 64-bit lane: ((int64)x * m + 2^(t-1)) >> t,
// clamped to [lo, hi] in 64 bits.
NPUQ_TARGET_AVX512_VNNI inline __m512i single_round_lanes_avx512(__m512i x, __m512i m, __m512i t32, __m512i lo64, __m512i hi64) {
  const __m512i one64 = _mm512_set1_epi64(1);
  const __m512i t = _mm512_and_si512(t32, _mm512_set1_epi64(0xFFFFFFFF));
  const __m512i round = _mm512_sllv_epi64(one64, _mm512_sub_epi64(t, one64));
  const __m512i v = _mm512_srav_epi64(_mm512_add_epi64(_mm512_mul_epi32(x, m), round), t);
  return _mm512_min_epi64(_mm512_max_epi64(v, lo64), hi64);
}

NPUQ_TARGET_AVX512_VNNI inline __m512i single_round_avx512(__m512i x, __m512i m, __m512i shift, __m512i lo64, __m512i hi64) {
  const __m512i ts = _mm512_sub_epi32(_mm512_set1_epi32(31), shift);
  const __m512i even = single_round_lanes_avx512(x, m, ts, lo64, hi64);
  const __m512i odd = single_round_lanes_avx512(_mm512_srli_epi64(x, 32), _mm512_srli_epi64(m, 32), _mm512_srli_epi64(ts, 32), lo64, hi64);
  return _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

// 8 products of the low 32 bits of x's and m's 64-bit lanes, rounded by t with the offsets above
// (per 64-bit lane) and clamped to [lo64, hi64].
NPUQ_TARGET_AVX512_VNNI inline __m512i single_round_offset_lanes_avx512(__m512i x, __m512i m, __m512i t, __m512i base, __m512i neg,
                                                                        bool parity, __m512i lo64, __m512i hi64) {
  const __m512i p = _mm512_mul_epi32(x, m);
  // The sign mask by a variable shift: SIMDe (the emulated build) has no _mm512_srai_epi64.
  __m512i c = _mm512_add_epi64(base, _mm512_and_si512(_mm512_srav_epi64(p, _mm512_set1_epi64(63)), neg));
  if (parity) c = _mm512_add_epi64(c, _mm512_and_si512(_mm512_srav_epi64(p, t), _mm512_set1_epi64(1)));
  const __m512i v = _mm512_srav_epi64(_mm512_add_epi64(p, c), t);
  return _mm512_min_epi64(_mm512_max_epi64(v, lo64), hi64);
}

// One 16-lane panel's single-rounding constants (single_round_lane_arrays' order): the even
// lanes' shifts and offsets as 64-bit lanes, then the odd lanes'.
struct single_round16 {
  __m512i t_even, t_odd, base_even, base_odd, neg_even, neg_odd;
  NPUQ_TARGET_AVX512_VNNI static single_round16 zero() {
    const __m512i z = _mm512_setzero_si512();
    return {z, z, z, z, z, z};
  }
  // From a panel's 16 entries of each array.
  NPUQ_TARGET_AVX512_VNNI static single_round16 load(const std::int64_t* t, const std::int64_t* base, const std::int64_t* neg) {
    return {_mm512_loadu_si512(t), _mm512_loadu_si512(t + 8), _mm512_loadu_si512(base),
            _mm512_loadu_si512(base + 8), _mm512_loadu_si512(neg), _mm512_loadu_si512(neg + 8)};
  }
};

// 16 lanes of x * m single-rounded with r (clamped in 64 bits to [lo64, hi64]); m_odd holds the
// odd lanes' multipliers in the even 32-bit positions.
NPUQ_TARGET_AVX512_VNNI inline __m512i single_round16_avx512(__m512i x, __m512i m, __m512i m_odd, const single_round16& r, bool parity,
                                                           __m512i lo64, __m512i hi64) {
  const __m512i even = single_round_offset_lanes_avx512(x, m, r.t_even, r.base_even, r.neg_even, parity, lo64, hi64);
  const __m512i odd =
      single_round_offset_lanes_avx512(_mm512_srli_epi64(x, 32), m_odd, r.t_odd, r.base_odd, r.neg_odd, parity, lo64, hi64);
  return _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
}

// Stores 16 int32 lanes (already in the output's range) as O, the first `cols` of them.
template <class O>
NPUQ_TARGET_AVX512_VNNI inline void store_lanes_avx512(O* dst, __m512i v, __mmask16 keep) {
  if constexpr (std::is_same<O, std::int32_t>::value) {
    _mm512_mask_storeu_epi32(dst, keep, v);
  } else {
    __m128i bytes = _mm512_cvtepi32_epi8(v);
    // Keeps the narrowing in a register: GCC would fold it into vpmovdb's memory form, which is
    // several times slower on AMD Zen 4/5 than vpmovdb + a (masked) vmovdqu8.
    NPUQ_VECTOR_BARRIER(bytes);
    if (keep == 0xFFFF) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), bytes);
    else _mm_mask_storeu_epi8(dst, keep, bytes);
  }
}

// The stage's per-call constants, set once per tile instead of once per row.
struct avx512_stage_consts {
  __m512i vdrop, zp, vlo, vhi, lo64, hi64;
  __m512 flo, fhi;
  bool narrow;
  NPUQ_TARGET_AVX512_VNNI explicit avx512_stage_consts(const output_stage& st) {
    const std::int32_t lo_rel = st.lo - st.zero_point, hi_rel = st.hi - st.zero_point;
    vdrop = _mm512_set1_epi32(32 - st.numerics.acc.bits);
    zp = _mm512_set1_epi32(st.zero_point);
    vlo = _mm512_set1_epi32(lo_rel), vhi = _mm512_set1_epi32(hi_rel);
    lo64 = _mm512_set1_epi64(lo_rel), hi64 = _mm512_set1_epi64(hi_rel);
    flo = _mm512_set1_ps(static_cast<float>(lo_rel)), fhi = _mm512_set1_ps(static_cast<float>(hi_rel));
    narrow = st.numerics.acc.bits < 32;
  }
};

// One panel's per-channel parameters (16 channels from `ch`), loaded once per tile.
struct avx512_panel_consts {
  __m512i mult, shift, left, right;
  __m512 scale;
  // q31_single: the odd lanes' multipliers in the even 32-bit positions and the rounding constants.
  __m512i mult_odd;
  single_round16 round;
  bool parity = false;
  NPUQ_TARGET_AVX512_VNNI avx512_panel_consts(const tile_output_stage& t, std::size_t ch) {
    const __m512i zero = _mm512_setzero_si512();
    mult = _mm512_loadu_si512(&t.multiplier[ch]);
    shift = _mm512_loadu_si512(&t.shift[ch]);
    scale = _mm512_loadu_ps(&t.scale[ch]);
    left = _mm512_max_epi32(shift, zero), right = _mm512_max_epi32(_mm512_sub_epi32(zero, shift), zero);
    mult_odd = zero;
    round = single_round16::zero();
    if (t.kind != tile_requant::q31_single) return;
    mult_odd = _mm512_srli_epi64(mult, 32);
    round = single_round16::load(&t.single.t[ch], &t.single.base[ch], &t.single.neg[ch]);
    parity = t.single.parity;
  }
};

// 16 sums with the bias already added (modulo 2^32) to stored values: accumulator width
// (wrap), requantization, clamp, zero point; raw: the sums themselves.
template <tile_requant Kind>
NPUQ_TARGET_AVX512_VNNI inline __m512i requant_avx512(__m512i v, const avx512_panel_consts& pc, const avx512_stage_consts& k) {
  if (k.narrow) v = _mm512_srav_epi32(_mm512_sllv_epi32(v, k.vdrop), k.vdrop);
  if (Kind == tile_requant::q31_double) {
    const __m512i r = rdbpot_avx512(srdhm_avx512(_mm512_sllv_epi32(v, pc.left), pc.mult), pc.right);
    return _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(r, k.vlo), k.vhi), k.zp);
  } else if (Kind == tile_requant::q31_half_up) {
    return _mm512_add_epi32(single_round_avx512(v, pc.mult, pc.shift, k.lo64, k.hi64), k.zp);
  } else if (Kind == tile_requant::fp32_half_even) {
    __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), pc.scale);
    f = _mm512_min_ps(_mm512_max_ps(f, k.flo), k.fhi);
    return _mm512_add_epi32(_mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), k.zp);
  } else if (Kind == tile_requant::q31_single) {
    return _mm512_add_epi32(single_round16_avx512(v, pc.mult, pc.mult_odd, pc.round, pc.parity, k.lo64, k.hi64), k.zp);
  }
  return v;
}

// Rows x panels of 16 sums (panel q's row m at c[(q * rows + m) * 16]) for the stage's channels
// [n0, n0 + cols), stored at row(m) + q * 16 (columns contiguous in the output).
template <tile_requant Kind, class O, class RowFn>
NPUQ_TARGET_AVX512_VNNI void store_tile_avx512_kind(const tile_output_stage& t, const std::int32_t* c, int rows, int panels,
                                                    std::int64_t n0, std::int64_t cols, const RowFn& row) {
  const avx512_stage_consts k(*t.st);
  for (int q = 0; q < panels; ++q) {
    const auto ch = static_cast<std::size_t>(n0 + 16 * q);
    const std::int64_t left_cols = cols - 16 * q;
    const __m512i bias = _mm512_loadu_si512(&t.bias[ch]);
    const avx512_panel_consts pc(t, ch);
    const __mmask16 keep = left_cols >= 16 ? static_cast<__mmask16>(0xFFFF) : static_cast<__mmask16>((1u << left_cols) - 1);
    const std::int32_t* cq = c + q * rows * 16;
    for (int m = 0; m < rows; ++m)
      store_lanes_avx512(row(m) + 16 * q, requant_avx512<Kind>(_mm512_add_epi32(_mm512_loadu_si512(cq + m * 16), bias), pc, k), keep);
  }
}

// True when store_tile_avx512 handles this stage (else: apply_tile_portable and a plain store).
inline bool avx512_stage_supported(const tile_output_stage& t) { return t.kind != tile_requant::reference; }

// The stage on a tile of `rows` x `panels` panels of 16 sums (layout above), channels
// [n0, n0 + cols), row m stored from row(m) on (an O*), columns contiguous.
template <class O, class RowFn>
void store_tile_avx512(const tile_output_stage& t, const std::int32_t* c, int rows, int panels, std::int64_t n0, std::int64_t cols,
                       const RowFn& row) {
  switch (t.kind) {
    case tile_requant::raw: return store_tile_avx512_kind<tile_requant::raw, O>(t, c, rows, panels, n0, cols, row);
    case tile_requant::q31_double: return store_tile_avx512_kind<tile_requant::q31_double, O>(t, c, rows, panels, n0, cols, row);
    case tile_requant::q31_half_up: return store_tile_avx512_kind<tile_requant::q31_half_up, O>(t, c, rows, panels, n0, cols, row);
    case tile_requant::fp32_half_even:
      return store_tile_avx512_kind<tile_requant::fp32_half_even, O>(t, c, rows, panels, n0, cols, row);
    case tile_requant::q31_single: return store_tile_avx512_kind<tile_requant::q31_single, O>(t, c, rows, panels, n0, cols, row);
    case tile_requant::reference: break;
  }
}

// The same for rows `ldo` elements apart from out on.
template <class O>
void store_tile_avx512_strided(const tile_output_stage& t, const std::int32_t* c, int rows, std::int64_t n0, std::int64_t cols, O* out,
                               std::int64_t ldo) {
  store_tile_avx512<O>(t, c, rows, 1, n0, cols, [out, ldo](int m) { return out + m * ldo; });
}

}  // namespace simd_detail
}  // namespace npuq

NPUQ_AVX512_WARNINGS_ON

#endif
