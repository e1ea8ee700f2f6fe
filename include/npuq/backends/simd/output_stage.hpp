// The simd backends' output stage: bias, accumulator width, requantization and clamp applied to
// a tile of int32 sums (modulo 2^32), 16 output channels at a time.
//
// `tile_output_stage` lays the per-channel parameters out in panel order once per call. The
// portable path (the portable and NEON levels) runs the fp32 ties-to-even contract and raw int32
// outputs on xsimd batches (SSE2 on x86-64 builds without -m flags, NEON on aarch64: one source
// for every architecture xsimd supports). The Q31 contracts need a 32 x 32 -> 64-bit multiply
// that xsimd 8 has no batch form of: on aarch64 they run on NEON intrinsics
// (arm/output_stage_neon.hpp), elsewhere the reference's output_stage element by element, like
// every other profile. The AVX2 path vectorizes the three contracts users pick most (tflite
// double rounding, single rounding ties up, fp32 ties to even) with arithmetic that is the
// reference's step for step; every other profile takes the portable path, so results never
// depend on the path.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include <xsimd/xsimd.hpp>

#include "npuq/backends/simd/arm/output_stage_neon.hpp"
#include "npuq/core/cpu_features.hpp"
#include "npuq/ops/output_stage.hpp"

#if defined(NPUQ_ARCH_X86_64)
#include "npuq/backends/simd/x86/intrin.hpp"
#endif

namespace npuq {
namespace simd_detail {

// The q31 single roundings of requantize (half_up, half_away, half_even, truncate, floor) of a
// product p = x * m by 2^t (t = 31 - shift in [1, 62]) as one arithmetic shift:
//   round(p / 2^t) = floor((p + base + [p < 0] * neg + [half_even] * (floor(p / 2^t) & 1)) / 2^t)
// with floor: base 0; half_up: base 2^(t-1); half_away: base 2^(t-1), neg -1 (a tie of a
// negative p stays at the floor, away from zero); truncate: neg 2^t - 1 (a negative p rounds up
// unless exact); half_even: base 2^(t-1) - 1, plus 1 where the floor is odd (a tie goes up only
// from an odd floor). |p| < 2^62 and |offset| < 2^62, so nothing leaves int64.
struct single_round_offsets {
  std::int64_t base = 0, neg = 0;
  bool parity = false;
};
inline single_round_offsets single_round_offsets_for(rounding mode, int t) {
  const std::int64_t half = std::int64_t{1} << (t - 1);
  switch (mode) {
    case rounding::half_up: return {half, 0, false};
    case rounding::half_away: return {half, -1, false};
    case rounding::half_even: return {half - 1, 0, true};
    case rounding::truncate: return {0, 2 * half - 1, false};
    case rounding::floor:
    case rounding::tflite_double: break;
  }
  return {};
}

// The AVX-512 stages process a 16-column panel's 64-bit products as its 8 even columns, then its
// 8 odd ones: column j's position in that order (per-column 64-bit constants are stored so).
constexpr std::size_t even_odd_lane(std::size_t j) { return j / 16 * 16 + j % 2 * 8 + j % 16 / 2; }

// Per-column shifts t = 31 - shift and offsets of single_round_offsets_for, written in
// even_odd_lane order into caller-owned arrays (vectors of a tile stage, fixed blocks of the
// depthwise table, the NPU PPU's lanes).
struct single_round_lane_arrays {
  std::int64_t *t, *base, *neg;
  // n lanes with no channel: any valid shift (their multiplier is 0), no offsets.
  void pad(std::size_t n) const {
    std::fill(t, t + n, std::int64_t{1});
    std::fill(base, base + n, std::int64_t{0});
    std::fill(neg, neg + n, std::int64_t{0});
  }
  void set(std::size_t j, rounding mode, int shift) const {
    const std::size_t i = even_odd_lane(j);
    const single_round_offsets o = single_round_offsets_for(mode, 31 - shift);
    t[i] = 31 - shift;
    base[i] = o.base;
    neg[i] = o.neg;
  }
};

// The same as vectors for n columns padded to whole 16-column panels.
struct single_round_columns {
  std::vector<std::int64_t> t, base, neg;
  bool parity = false;  // half_even
  template <class ShiftOf>
  void build(rounding mode, std::size_t n, const ShiftOf& shift_of) {
    const std::size_t padded = (n + 15) / 16 * 16;
    t.resize(padded), base.resize(padded), neg.resize(padded);
    const single_round_lane_arrays a{t.data(), base.data(), neg.data()};
    a.pad(padded);
    for (std::size_t j = 0; j < n; ++j) a.set(j, mode, shift_of(j));
    parity = mode == rounding::half_even;
  }
};

// q31_single: the q31 single roundings other than half up (half_away, half_even, truncate,
// floor), which only the AVX-512 stage has in vector form (elsewhere: the reference's per element).
enum class tile_requant : std::uint8_t { reference, raw, q31_double, q31_half_up, fp32_half_even, q31_single };

// Output-stage parameters for channels [0, N) padded to whole 16-channel panels.
struct tile_output_stage {
  const output_stage* st = nullptr;
  tile_requant kind = tile_requant::reference;
  std::vector<std::int32_t> bias, multiplier, shift;
  std::vector<float> scale;
  std::int64_t columns = 0;  // bias, multiplier, shift and scale hold 16-column panels; these are real
  // fp32 kind: every sum (bias included) the product can give, times its column's scale, is
  // below 2^30 in magnitude, so converting it to int32 cannot overflow and the kernels with the
  // stage inside skip the clamp before the conversion (see bound_sums).
  bool fp32_in_range = false;
  // q31_single kind: per column, in even_odd_lane order, the shift and rounding offsets.
  single_round_columns single;

  tile_output_stage(const output_stage& stage, const TensorView<const std::int32_t>& b, std::int64_t n, std::int64_t first_channel = 0)
      : st(&stage), columns(n) {
    const std::size_t padded = static_cast<std::size_t>((n + 15) / 16 * 16);
    bias.assign(padded, 0);
    multiplier.assign(padded, 0);
    shift.assign(padded, 0);
    scale.assign(padded, 1.0f);
    for (std::int64_t c = 0; c < n; ++c) {
      const std::int64_t ch = first_channel + c;
      if (b.rank() == 1) bias[static_cast<std::size_t>(c)] = b(ch);
      if (!stage.raw) {
        const requant_channel& r = stage.at(ch);
        multiplier[static_cast<std::size_t>(c)] = r.multiplier;
        shift[static_cast<std::size_t>(c)] = r.shift;
        scale[static_cast<std::size_t>(c)] = r.scale;
      }
    }
    const numerics_profile& p = stage.numerics;
    if (stage.raw) kind = tile_requant::raw;
    else if (p.format == multiplier_format::q31 && p.mode == rounding::tflite_double) kind = tile_requant::q31_double;
    else if (p.format == multiplier_format::q31 && p.mode == rounding::half_up) kind = tile_requant::q31_half_up;
    else if (p.format == multiplier_format::fp32 && p.mode == rounding::half_even) kind = tile_requant::fp32_half_even;
    else if (p.format == multiplier_format::q31) kind = tile_requant::q31_single;
    if (kind == tile_requant::q31_single) single.build(p.mode, static_cast<std::size_t>(n), [&](std::size_t c) { return shift[c]; });
  }

  // Sets fp32_in_range for sums of k products of 8-bit values less their zero points (each factor
  // at most 255 in magnitude): |sum + bias| <= 65025 k + |bias| unless that wraps (then 2^31).
  // Call it before bias holds anything but the caller's bias.
  void bound_sums(std::int64_t k) {
    fp32_in_range = false;
    if (kind != tile_requant::fp32_half_even) return;
    for (std::int64_t c = 0; c < columns; ++c) {
      const auto i = static_cast<std::size_t>(c);
      const double sum = std::min(65025.0 * static_cast<double>(k) + std::fabs(static_cast<double>(bias[i])), 2147483648.0);
      if (!(sum * std::fabs(static_cast<double>(scale[i])) < 1073741824.0)) return;
    }
    fp32_in_range = true;
  }

  // Reference path for one element: sum (mod 2^32) of channel c -> stored value.
  std::int32_t apply_one(std::int32_t sum, std::int64_t c, std::int64_t first_channel) const {
    const auto v = static_cast<std::int32_t>(static_cast<std::uint32_t>(sum) + static_cast<std::uint32_t>(bias[static_cast<std::size_t>(c)]));
    return st->apply(wrap_to_bits(v, st->numerics.acc.bits), first_channel + c);
  }
};

// Where a kernel with the stage inside writes a tile of 8-bit outputs: row m's first byte is
// base + rows[m], its columns contiguous.
struct stage_tile_out {
  unsigned char* base;
  const std::int64_t* rows;
  bool is_unsigned;  // uint8 outputs (else int8)
};

// The kinds a kernel with the stage inside takes, as an index (-1: none).
inline int stage_kernel_index(tile_requant k) {
  return k == tile_requant::q31_double ? 0 : k == tile_requant::q31_half_up ? 1 : k == tile_requant::fp32_half_even ? 2 : -1;
}

// One element through the reference's finish step, for a sum already reduced modulo 2^32:
// bias (int32 wrap-around), accumulator width, output stage.
inline std::int32_t finish_wrapped(std::int32_t sum, const output_stage& st, const TensorView<const std::int32_t>& bias,
                                   std::int64_t channel) {
  std::uint32_t v = static_cast<std::uint32_t>(sum);
  if (bias.rank() == 1) v += static_cast<std::uint32_t>(bias(channel));
  return st.apply(wrap_to_bits(static_cast<std::int32_t>(v), st.numerics.acc.bits), channel);
}

// The fp32 ties-to-even and raw kinds on xsimd's default batches: the reference's steps (bias
// and the accumulator width modulo 2^32, float(sum) * scale, clamp relative to the zero point,
// round to nearest even, add the zero point), as apply_tile_avx2_kind does them. The rounding is
// the conversion's (cvtps2dq, vcvtnq): the default floating-point environment's round to nearest
// even, the mode the reference's float multiply assumes too.
template <tile_requant Kind>
inline void apply_tile_xsimd_kind(const tile_output_stage& t, const std::int32_t* c, int rows, std::int64_t n0, std::int32_t* out) {
  using vi = xsimd::batch<std::int32_t>;
  using vf = xsimd::batch<float>;
  static_assert(16 % vi::size == 0 && vi::size == vf::size, "16-column tiles in whole batches");
  const output_stage& st = *t.st;
  const std::int32_t drop = 32 - st.numerics.acc.bits;
  const std::int32_t lo_rel = st.lo - st.zero_point, hi_rel = st.hi - st.zero_point;
  const vi zp(st.zero_point);
  const vf flo(static_cast<float>(lo_rel)), fhi(static_cast<float>(hi_rel));
  for (std::size_t j = 0; j < 16; j += vi::size) {
    const std::size_t ch = static_cast<std::size_t>(n0) + j;
    const vi bias = vi::load_unaligned(&t.bias[ch]);
    const vf scale = vf::load_unaligned(&t.scale[ch]);
    for (int m = 0; m < rows; ++m) {
      // Wrapping int32 arithmetic on unsigned lanes (signed overflow is undefined in scalar code).
      using vu = xsimd::batch<std::uint32_t>;
      const vu sum = xsimd::bitwise_cast<vu>(vi::load_unaligned(c + m * 16 + j)) + xsimd::bitwise_cast<vu>(bias);
      vi v = xsimd::bitwise_cast<vi>(sum << drop) >> drop;  // accumulator width (wrap)
      if (Kind == tile_requant::fp32_half_even) {
        const vf f = xsimd::min(xsimd::max(xsimd::to_float(v) * scale, flo), fhi);
        v = xsimd::nearbyint_as_int(f) + zp;
      }
      v.store_unaligned(out + m * 16 + j);
    }
  }
}

// out[m][j] = stage(c[m][j]) for `rows` rows of 16 sums, channels [n0, n0 + 16).
inline void apply_tile_portable(const tile_output_stage& t, const std::int32_t* c, int rows, std::int64_t n0, std::int64_t first_channel,
                                std::int64_t cols, std::int32_t* out) {
  const bool wraps = t.st->numerics.acc.bits >= 1 && t.st->numerics.acc.bits <= 32;
  if (wraps && t.kind == tile_requant::fp32_half_even) return apply_tile_xsimd_kind<tile_requant::fp32_half_even>(t, c, rows, n0, out);
  if (wraps && t.kind == tile_requant::raw) return apply_tile_xsimd_kind<tile_requant::raw>(t, c, rows, n0, out);
#if defined(__aarch64__)
  if (wraps && (t.kind == tile_requant::q31_double || t.kind == tile_requant::q31_half_up)) {
    const auto ch = static_cast<std::size_t>(n0);
    const output_stage& st = *t.st;
    return t.kind == tile_requant::q31_double
               ? apply_q31_tile_neon<true>(&t.bias[ch], &t.multiplier[ch], &t.shift[ch], st.numerics.acc.bits, st.lo, st.hi, st.zero_point, c,
                                           rows, out)
               : apply_q31_tile_neon<false>(&t.bias[ch], &t.multiplier[ch], &t.shift[ch], st.numerics.acc.bits, st.lo, st.hi, st.zero_point,
                                            c, rows, out);
  }
#endif
  for (int m = 0; m < rows; ++m)
    for (std::int64_t j = 0; j < cols; ++j) out[m * 16 + j] = t.apply_one(c[m * 16 + j], n0 + j, first_channel);
}

// The stage of a tile of sums straight to 8-bit rows: rows x 16 sums c, columns [n0, n0 + cols) of
// the stage, row m stored at dst[m] (is_unsigned: uint8_t outputs, else int8_t).
using tile_store8_fn = void (*)(const tile_output_stage&, const std::int32_t*, int, std::int64_t, std::int64_t, bool,
                                unsigned char* const*);

#if defined(NPUQ_ARCH_X86_64)

// floor(v / 2^s) for signed 64-bit lanes (AVX2 has no 64-bit arithmetic shift).
NPUQ_TARGET_AVX2 inline __m256i sra_epi64_avx2(__m256i v, __m256i s) {
  const __m256i sign = _mm256_cmpgt_epi64(_mm256_setzero_si256(), v);
  return _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(v, sign), s), sign);
}

// Low 32 bits of floor((x * m + 2^30) / 2^31) per lane: gemmlowp's SRDHM for m >= 0.
NPUQ_TARGET_AVX2 inline __m256i srdhm_avx2(__m256i x, __m256i m) {
  const __m256i nudge = _mm256_set1_epi64x(std::int64_t{1} << 30);
  const __m256i even = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(x, m), nudge), 31);
  const __m256i odd = _mm256_srli_epi64(_mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(m, 32)), nudge), 31);
  return _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

// RoundingDivideByPOT with per-lane exponents e in [0, 31].
NPUQ_TARGET_AVX2 inline __m256i rdbpot_avx2(__m256i x, __m256i e) {
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i mask = _mm256_sub_epi32(_mm256_sllv_epi32(one, e), one);
  const __m256i rem = _mm256_and_si256(x, mask);
  const __m256i neg = _mm256_srli_epi32(x, 31);  // 1 where x < 0
  const __m256i threshold = _mm256_add_epi32(_mm256_srai_epi32(mask, 1), neg);
  const __m256i up = _mm256_and_si256(_mm256_cmpgt_epi32(rem, threshold), one);
  return _mm256_add_epi32(_mm256_srav_epi32(x, e), up);
}

// Single rounding on the low 32 bits of each 64-bit lane: ((int64)x * m + 2^(t-1)) >> t,
// clamped to [lo, hi] in 64 bits (the rounded value can exceed int32 before the clamp).
NPUQ_TARGET_AVX2 inline __m256i single_round_lanes_avx2(__m256i x, __m256i m, __m256i t32, __m256i lo64, __m256i hi64) {
  const __m256i one64 = _mm256_set1_epi64x(1);
  const __m256i t = _mm256_and_si256(t32, _mm256_set1_epi64x(0xFFFFFFFF));
  const __m256i round = _mm256_sllv_epi64(one64, _mm256_sub_epi64(t, one64));
  __m256i v = sra_epi64_avx2(_mm256_add_epi64(_mm256_mul_epi32(x, m), round), t);
  v = _mm256_blendv_epi8(v, lo64, _mm256_cmpgt_epi64(lo64, v));
  return _mm256_blendv_epi8(v, hi64, _mm256_cmpgt_epi64(v, hi64));
}

// The same for all 8 lanes, with ts = 31 - shift.
NPUQ_TARGET_AVX2 inline __m256i single_round_avx2(__m256i x, __m256i m, __m256i shift, std::int32_t lo, std::int32_t hi) {
  const __m256i ts = _mm256_sub_epi32(_mm256_set1_epi32(31), shift);
  const __m256i lo64 = _mm256_set1_epi64x(lo), hi64 = _mm256_set1_epi64x(hi);
  const __m256i even = single_round_lanes_avx2(x, m, ts, lo64, hi64);
  const __m256i odd =
      single_round_lanes_avx2(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(m, 32), _mm256_srli_epi64(ts, 32), lo64, hi64);
  return _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
}

// The AVX2 stage's per-tile constants, and one 8-channel half's (channels n0 + 8 h on).
struct avx2_stage_consts {
  __m256i vdrop, zp, vlo, vhi;
  __m256 flo, fhi;
  std::int32_t lo_rel, hi_rel;
  bool narrow;  // a narrower accumulator: wrap (at 32 bits the wrap is the identity, skipped)
  NPUQ_TARGET_AVX2 explicit avx2_stage_consts(const output_stage& st) {
    // Clamp relative to the zero point, then add it: scaled + zp could overflow int32 first.
    lo_rel = st.lo - st.zero_point, hi_rel = st.hi - st.zero_point;
    vdrop = _mm256_set1_epi32(32 - st.numerics.acc.bits);
    zp = _mm256_set1_epi32(st.zero_point);
    vlo = _mm256_set1_epi32(lo_rel), vhi = _mm256_set1_epi32(hi_rel);
    flo = _mm256_set1_ps(static_cast<float>(lo_rel)), fhi = _mm256_set1_ps(static_cast<float>(hi_rel));
    narrow = st.numerics.acc.bits < 32;
  }
};
struct avx2_half_consts {
  __m256i bias, mult, shift, left, right;
  __m256 scale;
  NPUQ_TARGET_AVX2 avx2_half_consts(const tile_output_stage& t, std::size_t ch) {
    const __m256i zero = _mm256_setzero_si256();
    bias = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&t.bias[ch]));
    mult = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&t.multiplier[ch]));
    shift = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(&t.shift[ch]));
    scale = _mm256_loadu_ps(&t.scale[ch]);
    left = _mm256_max_epi32(shift, zero), right = _mm256_max_epi32(_mm256_sub_epi32(zero, shift), zero);
  }
};

// 8 sums (bias not yet added) to output values: bias, accumulator width, requantization, clamp,
// zero point; raw: the sums plus bias, wrapped.
template <tile_requant Kind>
NPUQ_TARGET_AVX2 inline __m256i requant_avx2(__m256i v, const avx2_half_consts& h, const avx2_stage_consts& k) {
  v = _mm256_add_epi32(v, h.bias);
  if (k.narrow) v = _mm256_srav_epi32(_mm256_sllv_epi32(v, k.vdrop), k.vdrop);  // accumulator width (wrap)
  if (Kind == tile_requant::q31_double) {
    const __m256i r = rdbpot_avx2(srdhm_avx2(_mm256_sllv_epi32(v, h.left), h.mult), h.right);
    return _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(r, k.vlo), k.vhi), k.zp);
  } else if (Kind == tile_requant::q31_half_up) {
    return _mm256_add_epi32(single_round_avx2(v, h.mult, h.shift, k.lo_rel, k.hi_rel), k.zp);
  } else if (Kind == tile_requant::fp32_half_even) {
    __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), h.scale);
    f = _mm256_min_ps(_mm256_max_ps(f, k.flo), k.fhi);
    f = _mm256_round_ps(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_add_epi32(_mm256_cvttps_epi32(f), k.zp);
  }
  return v;
}

template <tile_requant Kind>
NPUQ_TARGET_AVX2 inline void apply_tile_avx2_kind(const tile_output_stage& t, const std::int32_t* c, int rows, std::int64_t n0,
                                                      std::int32_t* out) {
  const avx2_stage_consts k(*t.st);
  for (int h = 0; h < 2; ++h) {
    const avx2_half_consts hc(t, static_cast<std::size_t>(n0 + 8 * h));
    for (int m = 0; m < rows; ++m) {
      const __m256i r = requant_avx2<Kind>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + m * 16 + 8 * h)), hc, k);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + m * 16 + 8 * h), r);
    }
  }
}

// The same stage straight to 8-bit outputs: each row's 16 values narrowed with packs (they are in
// the output's range, so nothing saturates) and its first `cols` bytes stored at dst[m].
template <tile_requant Kind>
NPUQ_TARGET_AVX2 void store_tile8_avx2_kind(const tile_output_stage& t, const std::int32_t* c, int rows, std::int64_t n0,
                                            std::int64_t cols, bool is_unsigned, unsigned char* const* dst) {
  const avx2_stage_consts k(*t.st);
  const avx2_half_consts h0(t, static_cast<std::size_t>(n0)), h1(t, static_cast<std::size_t>(n0 + 8));
  for (int m = 0; m < rows; ++m) {
    const __m256i r0 = requant_avx2<Kind>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + m * 16)), h0, k);
    const __m256i r1 = requant_avx2<Kind>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(c + m * 16 + 8)), h1, k);
    // [r0 0-3, r1 0-3 | r0 4-7, r1 4-7] as int16, then in column order.
    const __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(r0, r1), 0xD8);
    const __m128i lo = _mm256_castsi256_si128(w), hi = _mm256_extracti128_si256(w, 1);
    const __m128i bytes = is_unsigned ? _mm_packus_epi16(lo, hi) : _mm_packs_epi16(lo, hi);
    if (cols >= 16) {
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[m]), bytes);
    } else {
      alignas(16) unsigned char tmp[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(tmp), bytes);
      std::memcpy(dst[m], tmp, static_cast<std::size_t>(cols));
    }
  }
}

// store_tile8_avx2_kind for t's kind, chosen once per product; null for raw sums and the kinds
// apply_tile_avx2 leaves to the reference (their tiles go through the int32 stage).
inline tile_store8_fn store_tile8_avx2_for(const tile_output_stage& t) {
  switch (t.kind) {
    case tile_requant::q31_double: return store_tile8_avx2_kind<tile_requant::q31_double>;
    case tile_requant::q31_half_up: return store_tile8_avx2_kind<tile_requant::q31_half_up>;
    case tile_requant::fp32_half_even: return store_tile8_avx2_kind<tile_requant::fp32_half_even>;
    case tile_requant::raw:
    case tile_requant::q31_single:
    case tile_requant::reference: break;
  }
  return nullptr;
}

inline void apply_tile_avx2(const tile_output_stage& t, const std::int32_t* c, int rows, std::int64_t n0, std::int64_t first_channel,
                            std::int64_t cols, std::int32_t* out) {
  switch (t.kind) {
    case tile_requant::raw: return apply_tile_avx2_kind<tile_requant::raw>(t, c, rows, n0, out);
    case tile_requant::q31_double: return apply_tile_avx2_kind<tile_requant::q31_double>(t, c, rows, n0, out);
    case tile_requant::q31_half_up: return apply_tile_avx2_kind<tile_requant::q31_half_up>(t, c, rows, n0, out);
    case tile_requant::fp32_half_even: return apply_tile_avx2_kind<tile_requant::fp32_half_even>(t, c, rows, n0, out);
    case tile_requant::q31_single:
    case tile_requant::reference: break;
  }
  apply_tile_portable(t, c, rows, n0, first_channel, cols, out);
}

#endif

}  // namespace simd_detail
}  // namespace npuq
