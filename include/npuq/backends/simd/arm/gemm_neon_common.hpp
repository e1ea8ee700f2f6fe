// Pieces the aarch64 GEMM microkernels share (gemm_c2_neon.hpp, gemm_c4_dotprod.hpp,
// gemm_c8_i8mm.hpp): one row's 16 int32 sums in four named registers, and the 8-bit vector type
// of each weight type. Every kernel writes an MR x 16 int32 tile; keeping the accumulators in
// named struct members (not arrays) is what lets GCC 12 keep all of them in registers.
#pragma once

#include <cstdint>

#if defined(__aarch64__)
#include <arm_neon.h>

namespace npuq {
namespace simd_detail {

// Columns 0-3, 4-7, 8-11, 12-15 of one row.
struct neon_row_acc {
  int32x4_t c0, c1, c2, c3;
};

inline neon_row_acc neon_row_zero() {
  const int32x4_t z = vdupq_n_s32(0);
  return {z, z, z, z};
}

inline void neon_row_store(const neon_row_acc& acc, std::int32_t* c) {
  vst1q_s32(c, acc.c0);
  vst1q_s32(c + 4, acc.c1);
  vst1q_s32(c + 8, acc.c2);
  vst1q_s32(c + 12, acc.c3);
}

// 16 bytes of B's type: int8x16_t or uint8x16_t.
inline int8x16_t neon_load16(const std::int8_t* p) { return vld1q_s8(p); }
inline uint8x16_t neon_load16(const std::uint8_t* p) { return vld1q_u8(p); }

}  // namespace simd_detail
}  // namespace npuq

#endif
