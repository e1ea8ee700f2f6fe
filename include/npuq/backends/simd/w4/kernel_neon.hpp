// aarch64 W4A8 kernels on the c4 nibble panels (see pack.hpp), same contract as the portable
// kernel: sums[g][m][j] = sum of u * s over the quads of group g, int32 with wrap-around.
//
// A 16-byte load holds 4 columns x 4 K values in its low nibbles and the 4 columns 8 further on
// in its high nibbles; a mask and a shift give the codes u (0..15) as signed bytes. neon:
// vmull_s8 forms exact int16 products with the row's 4 activation bytes (broadcast), vpaddq_s16
// adds neighbouring products (|pair| <= 3840) and vpadalq_s16 accumulates into one int32 lane
// per column. neon_dotprod (also run at neon_i8mm, whose CPUs all have it): SDOT does the 4
// products and their sum per column in one instruction. Compiled with target attributes; the
// dotprod kernel runs only when HWCAP reports asimddp.
#pragma once

#include <cstdint>
#include <cstring>

#include "npuq/backends/simd/w4/kernel_portable.hpp"

#if defined(__aarch64__)
#include <arm_neon.h>

#define NPUQ_TARGET_W4_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))

namespace npuq {
namespace simd_detail {

inline int8x16_t w4_dup4(const std::int8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, sizeof v);
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

NPUQ_TARGET_W4_DOTPROD inline int32x4_t w4_mla_neon(int32x4_t acc, int8x16_t u, int8x16_t a) {
  const int16x8_t lo = vmull_s8(vget_low_s8(u), vget_low_s8(a));
  const int16x8_t hi = vmull_high_s8(u, a);
  return vpadalq_s16(acc, vpaddq_s16(lo, hi));
}

template <bool Dot>
NPUQ_TARGET_W4_DOTPROD inline int32x4_t w4_step(int32x4_t acc, int8x16_t u, int8x16_t av) {
  if constexpr (Dot) return vdotq_s32(acc, u, av);
  else return w4_mla_neon(acc, u, av);
}

// Accumulators of one row: columns 0-3, 4-7, 8-11, 12-15.
struct w4_neon_acc {
  int32x4_t c0, c1, c2, c3;
};

// Both kernels in one body (Dot: SDOT, else vmull/vpadal); only the Dot instantiation emits
// dotprod instructions, the attribute just lets SDOT inline into the loop.
template <int MR, bool Dot>
NPUQ_TARGET_W4_DOTPROD void w4_dot_neon_impl(const std::uint8_t* w, std::int64_t groups, std::int64_t qpg, const std::int8_t* a,
                                             std::int64_t a_stride, std::int32_t* sums) {
  const uint8x16_t mask = vdupq_n_u8(0x0F);
  for (std::int64_t g = 0; g < groups; ++g) {
    w4_neon_acc acc[MR];
    for (int m = 0; m < MR; ++m) acc[m].c0 = acc[m].c1 = acc[m].c2 = acc[m].c3 = vdupq_n_s32(0);
    for (std::int64_t q = 0; q < qpg; ++q) {
      const std::uint8_t* wq = w + (g * qpg + q) * 32;
      const uint8x16_t x0 = vld1q_u8(wq), x1 = vld1q_u8(wq + 16);
      const int8x16_t u0 = vreinterpretq_s8_u8(vandq_u8(x0, mask)), u1 = vreinterpretq_s8_u8(vandq_u8(x1, mask));
      const int8x16_t u2 = vreinterpretq_s8_u8(vshrq_n_u8(x0, 4)), u3 = vreinterpretq_s8_u8(vshrq_n_u8(x1, 4));
      for (int m = 0; m < MR; ++m) {
        const int8x16_t av = w4_dup4(a + m * a_stride + (g * qpg + q) * 4);
        acc[m].c0 = w4_step<Dot>(acc[m].c0, u0, av);
        acc[m].c1 = w4_step<Dot>(acc[m].c1, u1, av);
        acc[m].c2 = w4_step<Dot>(acc[m].c2, u2, av);
        acc[m].c3 = w4_step<Dot>(acc[m].c3, u3, av);
      }
    }
    for (int m = 0; m < MR; ++m) {
      std::int32_t* out = sums + (g * w4_mr + m) * 16;
      vst1q_s32(out, acc[m].c0);
      vst1q_s32(out + 4, acc[m].c1);
      vst1q_s32(out + 8, acc[m].c2);
      vst1q_s32(out + 12, acc[m].c3);
    }
  }
}

template <int MR>
void w4_dot_neon(const std::uint8_t* w, std::int64_t groups, std::int64_t qpg, const std::int8_t* a, std::int64_t a_stride,
                 std::int32_t* sums) {
  w4_dot_neon_impl<MR, false>(w, groups, qpg, a, a_stride, sums);
}
template <int MR>
void w4_dot_dotprod(const std::uint8_t* w, std::int64_t groups, std::int64_t qpg, const std::int8_t* a, std::int64_t a_stride,
                    std::int32_t* sums) {
  w4_dot_neon_impl<MR, true>(w, groups, qpg, a, a_stride, sums);
}

}  // namespace simd_detail
}  // namespace npuq

#endif
