// NEON dotprod GEMM microkernel (SDOT / UDOT) on the c4 packed format: MR rows x 16 columns.
//
// The ARMv8.2 dot product instructions multiply four pairs of 8-bit values and add them into
// each int32 lane: 16 multiply-adds per instruction, where the baseline neon kernel's vmlal on
// widened int16 values does 4. The c4 panels (gemm_pack.hpp) hold, per group of 4 K, each
// column's 4 bytes side by side, so one 16-byte load is SDOT's operand for 4 columns. A row of the
// A block holds the row's bytes in B's type (v - o, see pack_dot_row); each K group's 4 bytes are
// broadcast to the 4 lanes. int8 x int8 (SDOT) and uint8 x uint8 (UDOT) products are exact and
// the int32 sums wrap like the reference's modulo 2^32; the driver (run_c2 in gemm.hpp) adds the
// zero-point compensation. Compiled with a target attribute, so a
// plain -O2 build carries it; it runs only when HWCAP reports asimddp.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__aarch64__)
#include <arm_neon.h>

#include "npuq/backends/simd/arm/gemm_neon_common.hpp"

#define NPUQ_TARGET_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))

namespace npuq {
namespace simd_detail {

// acc += the dot products of 4 columns' 4 bytes (b) with the row's 4 bytes of the same K group,
// broadcast to every lane (a).
NPUQ_TARGET_DOTPROD inline int32x4_t dot4(int32x4_t acc, int8x16_t b, int8x16_t a) { return vdotq_s32(acc, b, a); }
NPUQ_TARGET_DOTPROD inline int32x4_t dot4(int32x4_t acc, uint8x16_t b, uint8x16_t a) {
  return vreinterpretq_s32_u32(vdotq_u32(vreinterpretq_u32_s32(acc), b, a));
}

// One K group's 4 bytes of a row, in every 32-bit lane.
inline int8x16_t dup_group(const std::int8_t* p) {
  std::int32_t w;
  std::memcpy(&w, p, sizeof w);
  return vreinterpretq_s8_s32(vdupq_n_s32(w));
}
inline uint8x16_t dup_group(const std::uint8_t* p) {
  std::int32_t w;
  std::memcpy(&w, p, sizeof w);
  return vreinterpretq_u8_s32(vdupq_n_s32(w));
}

// One K group of a panel: columns 0-3, 4-7, 8-11, 12-15, 4 bytes each.
template <class V>
struct c4_group {
  V b0, b1, b2, b3;
};

template <class V>
NPUQ_TARGET_DOTPROD inline void c4_row_step(neon_row_acc& acc, const c4_group<V>& b, V a) {
  acc.c0 = dot4(acc.c0, b.b0, a);
  acc.c1 = dot4(acc.c1, b.b1, a);
  acc.c2 = dot4(acc.c2, b.b2, a);
  acc.c3 = dot4(acc.c3, b.b3, a);
}

// c[m][j] = sum over k < 4 * k_groups of a[m][k] * b[k][j], int32 with wrap-around. a: MR rows of
// 4 * k_groups bytes; b: one c4 panel. One K group per iteration, each row's 4 bytes broadcast:
// with 4 groups per 16-byte A load, GCC 12 hoists all 16 weight loads and spills accumulators.
// Rows are named, not an array, so GCC keeps all 4 x 4 accumulators in registers.
template <int MR, class B>
NPUQ_TARGET_DOTPROD void gemm_c4_dotprod(std::int64_t k_groups, const B* a, const B* b, std::int32_t* c) {
  static_assert(MR >= 1 && MR <= 4, "gemm_c4_dotprod: 1 to 4 rows");
  using V = decltype(neon_load16(b));
  const std::int64_t row = 4 * k_groups;
  neon_row_acc r0 = neon_row_zero(), r1 = r0, r2 = r0, r3 = r0;
  for (std::int64_t g = 0; g < k_groups; ++g) {
    const B* bp = b + g * 64;
    const c4_group<V> bg{neon_load16(bp), neon_load16(bp + 16), neon_load16(bp + 32), neon_load16(bp + 48)};
    const B* ap = a + 4 * g;
    c4_row_step(r0, bg, dup_group(ap));
    if constexpr (MR > 1) c4_row_step(r1, bg, dup_group(ap + row));
    if constexpr (MR > 2) c4_row_step(r2, bg, dup_group(ap + 2 * row));
    if constexpr (MR > 3) c4_row_step(r3, bg, dup_group(ap + 3 * row));
  }
  neon_row_store(r0, c);
  if constexpr (MR > 1) neon_row_store(r1, c + 16);
  if constexpr (MR > 2) neon_row_store(r2, c + 32);
  if constexpr (MR > 3) neon_row_store(r3, c + 48);
}

}  // namespace simd_detail
}  // namespace npuq

#endif
