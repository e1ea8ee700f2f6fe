// NEON kernels of attention decode: the two streaming passes over an 8-bit KV cache on aarch64.
//
// The same two passes as x86/attention_decode_avx2.hpp, in NEON (the aarch64 baseline, so every
// aarch64 level runs them):
//   dot_rows:  scores[t] = sum_i q[i] * k[t][i]: 16 bytes of a key row widened to int16
//              (vmovl) and multiplied into four int32 lanes with vmlal, reduced with vaddvq.
//   axpy_rows: acc[j] += w[t] * v[t][j]: 16 columns per block in four int32 registers, each
//              listed row widened and added with vmlal_n by its weight.
// Products of 16-bit values are exact and the int32 lanes wrap, as the simd contract requires.
#pragma once

#include <cstdint>
#include <type_traits>

#if defined(__aarch64__)
#include <arm_neon.h>

namespace npuq {
namespace simd_detail {

// 16 bytes of int8 or uint8 as two int16x8 halves (uint8 values 0..255 fit int16).
template <class KV>
inline void widen16_neon(const KV* p, int16x8_t* lo, int16x8_t* hi) {
  if constexpr (std::is_same<KV, std::uint8_t>::value) {
    const uint8x16_t v = vld1q_u8(p);
    *lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(v)));
    *hi = vreinterpretq_s16_u16(vmovl_high_u8(v));
  } else {
    const int8x16_t v = vld1q_s8(p);
    *lo = vmovl_s8(vget_low_s8(v));
    *hi = vmovl_high_s8(v);
  }
}

// out[t] = sum_i q[i] * row_t[i] (mod 2^32) for rows k + t * stride, t < n.
template <class KV>
void dot_rows_neon(const std::int16_t* q, const KV* k, std::int64_t stride, std::int64_t d, std::int64_t n, std::uint32_t* out) {
  const std::int64_t d16 = d & ~std::int64_t{15};
  for (std::int64_t t = 0; t < n; ++t) {
    const KV* row = k + t * stride;
    int32x4_t acc0 = vdupq_n_s32(0), acc1 = vdupq_n_s32(0);
    for (std::int64_t i = 0; i < d16; i += 16) {
      int16x8_t lo, hi;
      widen16_neon(row + i, &lo, &hi);
      const int16x8_t q0 = vld1q_s16(q + i), q1 = vld1q_s16(q + i + 8);
      acc0 = vmlal_s16(acc0, vget_low_s16(lo), vget_low_s16(q0));
      acc1 = vmlal_high_s16(acc1, lo, q0);
      acc0 = vmlal_s16(acc0, vget_low_s16(hi), vget_low_s16(q1));
      acc1 = vmlal_high_s16(acc1, hi, q1);
    }
    std::uint32_t s = vaddvq_u32(vreinterpretq_u32_s32(vaddq_s32(acc0, acc1)));
    for (std::int64_t i = d16; i < d; ++i) s += static_cast<std::uint32_t>(q[i] * static_cast<std::int32_t>(row[i]));
    out[t] = s;
  }
}

// acc[j] += w[i] * v[key[i]][j] (mod 2^32) for i < n, j < dv.
template <class KV>
void axpy_rows_neon(const std::uint8_t* w, const std::int32_t* key, std::int64_t n, const KV* v, std::int64_t stride, std::int64_t dv,
                    std::uint32_t* acc) {
  const std::int64_t dv16 = dv & ~std::int64_t{15};
  for (std::int64_t c0 = 0; c0 < dv16; c0 += 16) {
    int32x4_t a0 = vdupq_n_s32(0), a1 = vdupq_n_s32(0), a2 = vdupq_n_s32(0), a3 = vdupq_n_s32(0);
    for (std::int64_t i = 0; i < n; ++i) {
      int16x8_t lo, hi;
      widen16_neon(v + key[i] * stride + c0, &lo, &hi);
      const std::int16_t wi = static_cast<std::int16_t>(w[i]);
      a0 = vmlal_n_s16(a0, vget_low_s16(lo), wi);
      a1 = vmlal_high_n_s16(a1, lo, wi);
      a2 = vmlal_n_s16(a2, vget_low_s16(hi), wi);
      a3 = vmlal_high_n_s16(a3, hi, wi);
    }
    std::uint32_t* o = acc + c0;
    vst1q_u32(o, vaddq_u32(vld1q_u32(o), vreinterpretq_u32_s32(a0)));
    vst1q_u32(o + 4, vaddq_u32(vld1q_u32(o + 4), vreinterpretq_u32_s32(a1)));
    vst1q_u32(o + 8, vaddq_u32(vld1q_u32(o + 8), vreinterpretq_u32_s32(a2)));
    vst1q_u32(o + 12, vaddq_u32(vld1q_u32(o + 12), vreinterpretq_u32_s32(a3)));
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const KV* row = v + key[i] * stride;
    for (std::int64_t j = dv16; j < dv; ++j) acc[j] += w[i] * static_cast<std::uint32_t>(static_cast<std::int32_t>(row[j]));
  }
}

}  // namespace simd_detail
}  // namespace npuq

#endif
