// Portable GEMM microkernel on the c2 packed format (see gemm_pack.hpp): plain C++ that any
// compiler vectorizes for its baseline ISA. It is the fallback when no vector level is
// available or allowed, and the template the intrinsic kernels follow.
#pragma once

#include <cstdint>

namespace npuq {
namespace simd_detail {

// a: MR rows of 2 * k_pairs int16 (see gemm_pack.hpp). c[m][j] = sum over K pairs of (a_lo * (b0 - zb) + a_hi * (b1 - zb)) for MR rows and 16 columns,
// int32 with wrap-around (computed in uint32 to keep overflow defined).
template <int MR, class B>
void gemm_c2_portable(std::int64_t k_pairs, const std::int16_t* a, const B* b, const std::int16_t* zb, std::int32_t* c) {
  std::uint32_t acc[MR][16] = {};
  for (std::int64_t p = 0; p < k_pairs; ++p) {
    const B* bp = b + p * 32;
    for (int m = 0; m < MR; ++m) {
      const std::int32_t a0 = a[m * 2 * k_pairs + 2 * p], a1 = a[m * 2 * k_pairs + 2 * p + 1];
      for (int j = 0; j < 16; ++j) {
        const int lane = (j / 8) * 16 + (j % 8) * 2;
        const std::int32_t b0 = static_cast<std::int32_t>(bp[lane]) - zb[lane];
        const std::int32_t b1 = static_cast<std::int32_t>(bp[lane + 1]) - zb[lane + 1];
        acc[m][j] += static_cast<std::uint32_t>(a0 * b0 + a1 * b1);
      }
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < 16; ++j) c[m * 16 + j] = static_cast<std::int32_t>(acc[m][j]);
}

}  // namespace simd_detail
}  // namespace npuq
