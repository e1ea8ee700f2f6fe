// The emulator's MAC array on the host for tiles whose partial sums are checked inside a K tile
// (a narrow array partial-sum width that operands can overflow: the sum of every fold is needed).
// Every other tile takes its sums from the simd backend's kernels (the operands' tile_sums in
// npu/gemm.hpp and npu/conv2d.hpp).
//
// Operands arrive as the host packed them: zero-point-corrected int16 rows, A as [mt][kt] and B
// as [nt][kt] (both K-contiguous), so one tight loop serves GEMM, conv and depthwise tiles. With
// kt <= max_tile_k (32768) the int32 sums are exact.
#pragma once

#include <cstdint>

namespace npuq {
namespace npu {

// c[i * ldc + j] = sum_{k < kt} a[i * lda + k] * b[j * ldb + k], for i < mt, j < nt.
inline void compute_tile(const std::int16_t* a, std::int64_t lda, const std::int16_t* b, std::int64_t ldb, std::int64_t mt,
                         std::int64_t nt, std::int64_t kt, std::int32_t* c, std::int64_t ldc) {
  for (std::int64_t i = 0; i < mt; ++i) {
    const std::int16_t* ar = a + i * lda;
    std::int32_t* cr = c + i * ldc;
    std::int64_t j = 0;
    for (; j + 4 <= nt; j += 4) {  // four columns share each load of the A row
      const std::int16_t* b0 = b + j * ldb;
      const std::int16_t* b1 = b0 + ldb;
      const std::int16_t* b2 = b1 + ldb;
      const std::int16_t* b3 = b2 + ldb;
      std::int32_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (std::int64_t k = 0; k < kt; ++k) {
        const std::int32_t x = ar[k];
        s0 += x * b0[k];
        s1 += x * b1[k];
        s2 += x * b2[k];
        s3 += x * b3[k];
      }
      cr[j] = s0;
      cr[j + 1] = s1;
      cr[j + 2] = s2;
      cr[j + 3] = s3;
    }
    for (; j < nt; ++j) {
      const std::int16_t* bj = b + j * ldb;
      std::int32_t s = 0;
      for (std::int64_t k = 0; k < kt; ++k) s += static_cast<std::int32_t>(ar[k]) * bj[k];
      cr[j] = s;
    }
  }
}

}  // namespace npu
}  // namespace npuq
