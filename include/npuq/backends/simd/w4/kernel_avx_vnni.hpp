// AVX-VNNI W4A8 kernel on the c4 nibble panels (see pack.hpp), run at avx_vnni (CPUs with the
// VEX-encoded vpdpbusd on ymm but no AVX-512).
//
// Why not the AVX2 kernel: per quad and row it needs vpmaddubsw, an int16 add, vpmaddwd and an
// int32 add for each half; vpdpbusd does the 4 exact u * s products and their sum into the int32
// lane in one operation, without saturating. The nibble codes u (0..15) are the unsigned operand
// and the activations, prepared as signed bytes s for every level, the signed one, so each lane
// gains sum u * s exactly and wraps in int32 like the reference. The loop is the AVX2 kernel's:
// one 32-byte load per quad, mask and shift give columns 0-7 and 8-15, each row's 4 activation
// bytes are broadcast. With 1-2 rows quads alternate between two chains of accumulators to hide
// vpdpbusd's latency. The grouped epilogue has nothing for VNNI to do and stays the AVX2 one.
#pragma once

#include <cstdint>
#include <cstring>

#include "npuq/backends/simd/w4/kernel_portable.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include "npuq/backends/simd/x86/intrin.hpp"

namespace npuq {
namespace simd_detail {

template <int MR>
NPUQ_TARGET_AVX_VNNI void w4_dot_avx_vnni(const std::uint8_t* w, std::int64_t groups, std::int64_t qpg, const std::int8_t* a,
                                          std::int64_t a_stride, std::int32_t* sums) {
  constexpr int CH = MR <= 2 ? 2 : 1;
  const __m256i mask = _mm256_set1_epi8(0x0F);
  for (std::int64_t g = 0; g < groups; ++g) {
    __m256i lo[CH][MR], hi[CH][MR];
#pragma GCC unroll 2
    for (int h = 0; h < CH; ++h)
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) lo[h][m] = hi[h][m] = _mm256_setzero_si256();
    const std::uint8_t* wg = w + g * qpg * 32;
    const std::int8_t* ag = a + g * qpg * 4;
    std::int64_t q = 0;
    for (; q + CH <= qpg; q += CH) {
#pragma GCC unroll 2
      for (int h = 0; h < CH; ++h) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + (q + h) * 32));
        const __m256i l = _mm256_and_si256(x, mask), u = _mm256_and_si256(_mm256_srli_epi16(x, 4), mask);
#pragma GCC unroll 4
        for (int m = 0; m < MR; ++m) {
          std::int32_t v;
          std::memcpy(&v, ag + m * a_stride + (q + h) * 4, sizeof v);
          const __m256i av = _mm256_set1_epi32(v);
          lo[h][m] = _mm256_dpbusd_avx_epi32(lo[h][m], l, av);
          hi[h][m] = _mm256_dpbusd_avx_epi32(hi[h][m], u, av);
        }
      }
    }
    if (q < qpg) {  // only with two chains: one quad left
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + q * 32));
      const __m256i l = _mm256_and_si256(x, mask), u = _mm256_and_si256(_mm256_srli_epi16(x, 4), mask);
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) {
        std::int32_t v;
        std::memcpy(&v, ag + m * a_stride + q * 4, sizeof v);
        const __m256i av = _mm256_set1_epi32(v);
        lo[0][m] = _mm256_dpbusd_avx_epi32(lo[0][m], l, av);
        hi[0][m] = _mm256_dpbusd_avx_epi32(hi[0][m], u, av);
      }
    }
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) {
      __m256i l = lo[0][m], u = hi[0][m];
#pragma GCC unroll 2
      for (int h = 1; h < CH; ++h) {
        l = _mm256_add_epi32(l, lo[h][m]);
        u = _mm256_add_epi32(u, hi[h][m]);
      }
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums + (g * w4_mr + m) * 16), l);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums + (g * w4_mr + m) * 16 + 8), u);
    }
  }
}

}  // namespace simd_detail
}  // namespace npuq

#endif
