// The Q31 output stages (tflite double rounding, single rounding ties up) on NEON, for the
// aarch64 levels' 16-column tiles of int32 sums.
//
// Why NEON intrinsics and not xsimd: both contracts need a 32 x 32 -> 64-bit product, which
// xsimd 8 has no batch form of. The arithmetic is the AVX2 stage's (output_stage.hpp) step for
// step, so the bytes are the reference's: SaturatingRoundingDoublingHighMul is vqrdmulh (for
// multipliers >= 0 it never saturates and rounds half up, as gemmlowp does), the rounding divide
// by a power of two is gemmlowp's remainder-and-threshold form with per-lane exponents, and the
// single rounding is a 64-bit product, 2^(t - 1) added and an arithmetic shift, clamped in 64
// bits. NEON is part of the aarch64 baseline, so every aarch64 level (the portable one too) runs
// these.
#pragma once

#include <cstdint>

#if defined(__aarch64__)
#include <arm_neon.h>

namespace npuq {
namespace simd_detail {

// gemmlowp's RoundingDivideByPOT with per-lane exponents e in [0, 31] (rounds half away from 0).
inline int32x4_t rdbpot_neon(int32x4_t x, int32x4_t e) {
  const int32x4_t one = vdupq_n_s32(1);
  const int32x4_t mask = vsubq_s32(vshlq_s32(one, e), one);
  const int32x4_t rem = vandq_s32(x, mask);
  const int32x4_t neg = vreinterpretq_s32_u32(vshrq_n_u32(vreinterpretq_u32_s32(x), 31));  // 1 where x < 0
  const int32x4_t threshold = vaddq_s32(vshrq_n_s32(mask, 1), neg);
  const uint32x4_t up = vcgtq_s32(rem, threshold);  // all ones: add 1
  return vsubq_s32(vshlq_s32(x, vnegq_s32(e)), vreinterpretq_s32_u32(up));
}

// ((int64)x * m + 2^(t - 1)) >> t on two lanes, clamped to [lo, hi] in 64 bits, narrowed.
inline int32x2_t single_round_half_neon(int32x2_t x, int32x2_t m, int32x2_t t, int64x2_t lo, int64x2_t hi) {
  const int64x2_t t64 = vmovl_s32(t);
  const int64x2_t round = vshlq_s64(vdupq_n_s64(1), vsubq_s64(t64, vdupq_n_s64(1)));
  int64x2_t v = vshlq_s64(vaddq_s64(vmull_s32(x, m), round), vnegq_s64(t64));
  v = vbslq_s64(vcgtq_s64(lo, v), lo, v);
  v = vbslq_s64(vcgtq_s64(v, hi), hi, v);
  return vmovn_s64(v);
}

// out[m][j] for `rows` rows of 16 sums c[m][j] (wrapping int32, bias not yet added), with the
// 16 columns' bias, Q31 multiplier and shift; acc_bits: the accumulator width the sums wrap to;
// [lo, hi]: the clamp (output type and activation), zp: the output zero point.
template <bool DoubleRounding>
inline void apply_q31_tile_neon(const std::int32_t* bias, const std::int32_t* multiplier, const std::int32_t* shift, int acc_bits,
                                std::int32_t lo, std::int32_t hi, std::int32_t zero_point, const std::int32_t* c, int rows,
                                std::int32_t* out) {
  const int32x4_t drop = vdupq_n_s32(32 - acc_bits), undrop = vnegq_s32(drop);
  // Clamp relative to the zero point, then add it: scaled + zp could overflow int32 first.
  const std::int32_t lo_rel = lo - zero_point, hi_rel = hi - zero_point;
  const int32x4_t vlo = vdupq_n_s32(lo_rel), vhi = vdupq_n_s32(hi_rel), zp = vdupq_n_s32(zero_point), zero = vdupq_n_s32(0);
  const int64x2_t lo64 = vdupq_n_s64(lo_rel), hi64 = vdupq_n_s64(hi_rel);
  for (int j = 0; j < 16; j += 4) {
    const int32x4_t b = vld1q_s32(bias + j), mult = vld1q_s32(multiplier + j), sh = vld1q_s32(shift + j);
    const int32x4_t left = vmaxq_s32(sh, zero), right = vmaxq_s32(vnegq_s32(sh), zero);
    const int32x4_t ts = vsubq_s32(vdupq_n_s32(31), sh);
    for (int m = 0; m < rows; ++m) {
      int32x4_t v = vreinterpretq_s32_u32(vaddq_u32(vreinterpretq_u32_s32(vld1q_s32(c + m * 16 + j)), vreinterpretq_u32_s32(b)));
      v = vshlq_s32(vshlq_s32(v, drop), undrop);  // accumulator width (wrap)
      int32x4_t r;
      if (DoubleRounding) {
        r = rdbpot_neon(vqrdmulhq_s32(vshlq_s32(v, left), mult), right);
        r = vminq_s32(vmaxq_s32(r, vlo), vhi);
      } else {
        r = vcombine_s32(single_round_half_neon(vget_low_s32(v), vget_low_s32(mult), vget_low_s32(ts), lo64, hi64),
                         single_round_half_neon(vget_high_s32(v), vget_high_s32(mult), vget_high_s32(ts), lo64, hi64));
      }
      vst1q_s32(out + m * 16 + j, vaddq_s32(r, zp));
    }
  }
}

}  // namespace simd_detail
}  // namespace npuq

#endif
