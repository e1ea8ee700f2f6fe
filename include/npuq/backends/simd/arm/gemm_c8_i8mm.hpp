// NEON i8mm GEMM microkernel (SMMLA / UMMLA) on the c8 packed format: MR rows x 16 columns.
//
// The ARMv8.6 (optional from 8.2) matrix multiply instructions take a 2 x 8 block of A and a
// 2 x 8 block of B (two columns' 8 K values) and add the 2 x 2 int32 product into one register:
// 32 multiply-adds per instruction, twice SDOT's. The c8 panels (gemm_pack.hpp) hold, per group
// of 8 K, each column's 8 bytes side by side, so a 16-byte load is the B operand of columns
// (2t, 2t+1); the A block interleaves each pair of rows by 8 bytes (pack_dot_row), so a 16-byte
// load is the A operand. A pair of rows accumulates in 8 registers of 2 x 2 tiles, re-ordered into
// rows at the end. int8 x int8 (SMMLA) and uint8 x uint8 (UMMLA) products are exact and the int32
// sums wrap like the reference's modulo 2^32; the driver (run_c2 in gemm.hpp) adds the
// zero-point compensation. Compiled with a target attribute, so a plain -O2 build carries it; it
// runs only when HWCAP2 reports i8mm.
#pragma once

#include <cstdint>

#if defined(__aarch64__)
#include <arm_neon.h>

#include "npuq/backends/simd/arm/gemm_neon_common.hpp"

#define NPUQ_TARGET_I8MM __attribute__((target("arch=armv8.2-a+i8mm")))

namespace npuq {
namespace simd_detail {

// acc (2 x 2: rows r, r+1 by columns j, j+1) += a (rows r, r+1 x 8 K) * b (columns j, j+1 x 8 K)^T.
NPUQ_TARGET_I8MM inline int32x4_t mmla(int32x4_t acc, int8x16_t a, int8x16_t b) { return vmmlaq_s32(acc, a, b); }
NPUQ_TARGET_I8MM inline int32x4_t mmla(int32x4_t acc, uint8x16_t a, uint8x16_t b) {
  return vreinterpretq_s32_u32(vmmlaq_u32(vreinterpretq_u32_s32(acc), a, b));
}

// One K group of a panel: column pairs (0, 1), (2, 3), ..., (14, 15), 8 bytes per column.
template <class V>
struct c8_group {
  V b0, b1, b2, b3, b4, b5, b6, b7;
};

// Two rows x 16 columns as 2 x 2 tiles: t<i> = {r0 c2i, r0 c2i+1, r1 c2i, r1 c2i+1}.
struct c8_pair_acc {
  int32x4_t t0, t1, t2, t3, t4, t5, t6, t7;
};

inline c8_pair_acc c8_pair_zero() {
  const int32x4_t z = vdupq_n_s32(0);
  return {z, z, z, z, z, z, z, z};
}

template <class V>
NPUQ_TARGET_I8MM inline void c8_pair_step(c8_pair_acc& acc, const c8_group<V>& b, V a) {
  acc.t0 = mmla(acc.t0, a, b.b0);
  acc.t1 = mmla(acc.t1, a, b.b1);
  acc.t2 = mmla(acc.t2, a, b.b2);
  acc.t3 = mmla(acc.t3, a, b.b3);
  acc.t4 = mmla(acc.t4, a, b.b4);
  acc.t5 = mmla(acc.t5, a, b.b5);
  acc.t6 = mmla(acc.t6, a, b.b6);
  acc.t7 = mmla(acc.t7, a, b.b7);
}

// Columns 4i..4i+3 of both rows from the tiles of column pairs 2i and 2i+1 (64-bit halves).
inline void c8_store_quad(int32x4_t x, int32x4_t y, std::int32_t* row0, std::int32_t* row1, bool second) {
  const int64x2_t x64 = vreinterpretq_s64_s32(x), y64 = vreinterpretq_s64_s32(y);
  vst1q_s32(row0, vreinterpretq_s32_s64(vzip1q_s64(x64, y64)));
  if (second) vst1q_s32(row1, vreinterpretq_s32_s64(vzip2q_s64(x64, y64)));
}

// Rows c[0..15] and (when `second`) c[16..31].
inline void c8_pair_store(const c8_pair_acc& acc, std::int32_t* c, bool second) {
  c8_store_quad(acc.t0, acc.t1, c, c + 16, second);
  c8_store_quad(acc.t2, acc.t3, c + 4, c + 20, second);
  c8_store_quad(acc.t4, acc.t5, c + 8, c + 24, second);
  c8_store_quad(acc.t6, acc.t7, c + 12, c + 28, second);
}

// c[m][j] = sum over k < 8 * k_groups of a[m][k] * b[k][j], int32 with wrap-around. a: (MR + 1) / 2
// row pairs of 16 * k_groups bytes (a missing second row is never stored); b: one c8 panel.
template <int MR, class B>
NPUQ_TARGET_I8MM void gemm_c8_i8mm(std::int64_t k_groups, const B* a, const B* b, std::int32_t* c) {
  static_assert(MR >= 1 && MR <= 4, "gemm_c8_i8mm: 1 to 4 rows");
  using V = decltype(neon_load16(a));
  const B* a_pair1 = a + 16 * k_groups;
  c8_pair_acc p0 = c8_pair_zero(), p1 = p0;
  for (std::int64_t g = 0; g < k_groups; ++g) {
    const B* bp = b + g * 128;
    const c8_group<V> bg{neon_load16(bp),      neon_load16(bp + 16), neon_load16(bp + 32), neon_load16(bp + 48),
                         neon_load16(bp + 64), neon_load16(bp + 80), neon_load16(bp + 96), neon_load16(bp + 112)};
    c8_pair_step(p0, bg, neon_load16(a + 16 * g));
    if constexpr (MR > 2) c8_pair_step(p1, bg, neon_load16(a_pair1 + 16 * g));
  }
  c8_pair_store(p0, c, MR > 1);
  if constexpr (MR > 2) c8_pair_store(p1, c + 32, MR > 3);
}

}  // namespace simd_detail
}  // namespace npuq

#endif
