// NEON GEMM microkernel on the c2 packed format (see gemm_pack.hpp): MR rows x 16 columns.
//
// NEON is part of every ARMv8-A core, so this is the aarch64 baseline level ("neon"). Per K
// pair, vld2q de-interleaves the 32 weight bytes into the 16 columns' k values and their k+1
// values; each half is widened to int16 (vmovl / vmovl_high) and the column zero points are
// subtracted, which is exact: both operands of every product are in [-255, 255]. Each row's
// packed pair (a[k] - zp | (a[k+1] - zp) << 16) is broadcast as int16 lanes {a0, a1, a0, a1}
// and multiplied into int32 with vmlal_lane / vmlal_high_lane: exact products, int32 sums that
// wrap like the reference's modulo 2^32. No saturating instruction is used anywhere.
#pragma once

#include <cstdint>
#include <type_traits>

#if defined(__aarch64__)
#include <arm_neon.h>

#include "npuq/backends/simd/arm/gemm_neon_common.hpp"

namespace npuq {
namespace simd_detail {

// One K pair's weights for 16 columns, zero points subtracted: k0 = the k values of columns
// 0-7 and 8-15, k1 = the k+1 values.
struct c2_pair_neon {
  int16x8_t k0_lo, k0_hi, k1_lo, k1_hi;
};

template <class B>
inline c2_pair_neon load_c2_pair_neon(const B* bp, int16x8_t z_lo, int16x8_t z_hi) {
  // vld2q de-interleaves the column pairs: val[0] holds the 16 columns' k values, val[1] k+1.
  int16x8_t k0_lo, k0_hi, k1_lo, k1_hi;
  if constexpr (std::is_same<B, std::uint8_t>::value) {
    const uint8x16x2_t v = vld2q_u8(bp);
    k0_lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(v.val[0])));
    k0_hi = vreinterpretq_s16_u16(vmovl_high_u8(v.val[0]));
    k1_lo = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(v.val[1])));
    k1_hi = vreinterpretq_s16_u16(vmovl_high_u8(v.val[1]));
  } else {
    const int8x16x2_t v = vld2q_s8(bp);
    k0_lo = vmovl_s8(vget_low_s8(v.val[0]));
    k0_hi = vmovl_high_s8(v.val[0]);
    k1_lo = vmovl_s8(vget_low_s8(v.val[1]));
    k1_hi = vmovl_high_s8(v.val[1]);
  }
  return {vsubq_s16(k0_lo, z_lo), vsubq_s16(k0_hi, z_hi), vsubq_s16(k1_lo, z_lo), vsubq_s16(k1_hi, z_hi)};
}

// pair: (a[2p], a[2p+1]) of one row; 8 bytes are loaded (the A block has slack after its end)
// and only lanes 0 and 1 are used.
inline void c2_row_step_neon(neon_row_acc& acc, const std::int16_t* pair, const c2_pair_neon& b) {
  const int16x4_t av = vld1_s16(pair);
  acc.c0 = vmlal_lane_s16(acc.c0, vget_low_s16(b.k0_lo), av, 0);
  acc.c1 = vmlal_high_lane_s16(acc.c1, b.k0_lo, av, 0);
  acc.c2 = vmlal_lane_s16(acc.c2, vget_low_s16(b.k0_hi), av, 0);
  acc.c3 = vmlal_high_lane_s16(acc.c3, b.k0_hi, av, 0);
  acc.c0 = vmlal_lane_s16(acc.c0, vget_low_s16(b.k1_lo), av, 1);
  acc.c1 = vmlal_high_lane_s16(acc.c1, b.k1_lo, av, 1);
  acc.c2 = vmlal_lane_s16(acc.c2, vget_low_s16(b.k1_hi), av, 1);
  acc.c3 = vmlal_high_lane_s16(acc.c3, b.k1_hi, av, 1);
}

// c[m][j] = sum over K pairs of (a_lo * (b0 - zb) + a_hi * (b1 - zb)), int32 with wrap-around;
// same contract as gemm_c2_portable. Rows are named, not an array, so GCC keeps all 4 x 4
// accumulators in registers.
template <int MR, class B>
void gemm_c2_neon(std::int64_t k_pairs, const std::int16_t* a, const B* b, const std::int16_t* zb, std::int32_t* c) {
  static_assert(MR >= 1 && MR <= 4, "gemm_c2_neon: 1 to 4 rows");
  // zb holds each column's zero point twice (register order of the interleaved pairs):
  // vld2q keeps one copy per column.
  const int16x8_t z_lo = vld2q_s16(zb).val[0], z_hi = vld2q_s16(zb + 16).val[0];
  neon_row_acc r0 = neon_row_zero(), r1 = r0, r2 = r0, r3 = r0;
  for (std::int64_t p = 0; p < k_pairs; ++p) {
    const c2_pair_neon bv = load_c2_pair_neon<B>(b + p * 32, z_lo, z_hi);
    const std::int16_t* ap = a + 2 * p;
    const std::int64_t row = 2 * k_pairs;
    c2_row_step_neon(r0, ap, bv);
    if constexpr (MR > 1) c2_row_step_neon(r1, ap + row, bv);
    if constexpr (MR > 2) c2_row_step_neon(r2, ap + 2 * row, bv);
    if constexpr (MR > 3) c2_row_step_neon(r3, ap + 3 * row, bv);
  }
  neon_row_store(r0, c);
  if constexpr (MR > 1) neon_row_store(r1, c + 16);
  if constexpr (MR > 2) neon_row_store(r2, c + 32);
  if constexpr (MR > 3) neon_row_store(r3, c + 48);
}

}  // namespace simd_detail
}  // namespace npuq

#endif
