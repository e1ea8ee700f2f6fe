// Portable W4A8 kernels on the c4 nibble panels (see pack.hpp): plain C++ that compilers
// vectorize for their baseline ISA. The fallback when no vector level is available or allowed,
// and the template the intrinsic kernels follow step for step.
#pragma once

#include <cstdint>

#include "npuq/ops/gemm_grouped_problem.hpp"

namespace npuq {
namespace simd_detail {

// Rows of A per kernel call, groups per call (bounds the buffer of group sums), and its layout:
// sums[g][m][16] with a fixed row stride of w4_mr.
constexpr int w4_mr = 4;
constexpr std::int64_t w4_group_batch = 32;

// sums[g][m][j] = sum over the quads of group g of u(j) * s(m), int32 with wrap-around, for
// `groups` groups of `qpg` quads, MR rows of A (signed bytes, rows `a_stride` bytes apart).
template <int MR>
void w4_dot_portable(const std::uint8_t* w, std::int64_t groups, std::int64_t qpg, const std::int8_t* a, std::int64_t a_stride,
                     std::int32_t* sums) {
  for (std::int64_t g = 0; g < groups; ++g) {
    std::uint32_t acc[MR][16] = {};
    for (std::int64_t q = 0; q < qpg; ++q) {
      const std::uint8_t* wq = w + (g * qpg + q) * 32;
      for (int m = 0; m < MR; ++m) {
        const std::int8_t* aq = a + m * a_stride + (g * qpg + q) * 4;
        for (int j = 0; j < 16; ++j) {
          std::int32_t dot = 0;
          for (int t = 0; t < 4; ++t) {
            const std::uint8_t byte = wq[(j % 8) * 4 + t];
            dot += (j < 8 ? byte & 0x0F : byte >> 4) * aq[t];
          }
          acc[m][j] += static_cast<std::uint32_t>(dot);
        }
      }
    }
    for (int m = 0; m < MR; ++m)
      for (int j = 0; j < 16; ++j) sums[(g * w4_mr + m) * 16 + j] = static_cast<std::int32_t>(acc[m][j]);
  }
}

// The grouped contract's reduction for `rows` rows and 16 columns over `groups` groups:
//   facc[m][j] = facc[m][j] + float(sums[g][m][j] - e[g][j] * S[m][g] + dw[g][j]) * sg[g][j]
// in group order, one rounding per operation. e: the panel's (e, W) side entries (stride 32 per
// group); S: row m's group sums of s at S + m * s_stride; dw = d * W and sg = fl(a_scale * scale)
// precomputed per panel ([g][16]).
inline void w4_grouped_epilogue_portable(int rows, std::int64_t groups, const std::int32_t* sums, const std::int32_t* e,
                                         const std::int32_t* S, std::int64_t s_stride, const std::int32_t* dw, const float* sg,
                                         float* facc) {
  for (int m = 0; m < rows; ++m) {
    for (int j = 0; j < 16; ++j) {
      float f = facc[m * 16 + j];
      for (std::int64_t g = 0; g < groups; ++g) {
        const std::uint32_t t = static_cast<std::uint32_t>(sums[(g * w4_mr + m) * 16 + j]) -
                                static_cast<std::uint32_t>(e[g * 32 + j]) * static_cast<std::uint32_t>(S[m * s_stride + g]) +
                                static_cast<std::uint32_t>(dw[g * 16 + j]);
        f = f + detail::fp_barrier(static_cast<float>(static_cast<std::int32_t>(t)) * sg[g * 16 + j]);
      }
      facc[m * 16 + j] = f;
    }
  }
}

}  // namespace simd_detail
}  // namespace npuq
