// AVX2 W4A8 kernels on the c4 nibble panels (see pack.hpp).
//
// Per quad (4 K values x 16 columns = 32 bytes of nibbles): one load, a mask and a shift split
// the codes of columns 0-7 (low nibbles) and 8-15 (high nibbles); each row's 4 signed activation
// bytes are broadcast and vpmaddubsw multiplies codes (unsigned, <= 15) by activations (signed)
// into pairs of exact products: |pair| <= 2 * 15 * 128 = 3840, so up to 8 pairs add in int16
// without saturating (the kernel adds 2 before widening with vpmaddwd). Sums wrap in int32 like
// the reference's modulo 2^32. The grouped epilogue is the portable one in vector form:
// vcvtdq2ps, vmulps, vaddps in group order, with a register barrier between the product and the
// sum so no FMA is formed even when the program is built with -mfma. Compiled with target
// attributes; runs only after CPU detection says AVX2 is there.
#pragma once

#include <cstdint>
#include <cstring>

#include "npuq/backends/simd/w4/kernel_portable.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include "npuq/backends/simd/x86/intrin.hpp"


namespace npuq {
namespace simd_detail {

template <int MR>
NPUQ_TARGET_AVX2 void w4_dot_avx2(const std::uint8_t* w, std::int64_t groups, std::int64_t qpg, const std::int8_t* a,
                                     std::int64_t a_stride, std::int32_t* sums) {
  const __m256i mask = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  for (std::int64_t g = 0; g < groups; ++g) {
    __m256i lo_acc[MR], hi_acc[MR];
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) lo_acc[m] = hi_acc[m] = _mm256_setzero_si256();
    const std::uint8_t* wg = w + g * qpg * 32;
    const std::int8_t* ag = a + g * qpg * 4;
    std::int64_t q = 0;
    for (; q + 2 <= qpg; q += 2) {
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + q * 32));
      const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + q * 32 + 32));
      const __m256i lo0 = _mm256_and_si256(x0, mask), hi0 = _mm256_and_si256(_mm256_srli_epi16(x0, 4), mask);
      const __m256i lo1 = _mm256_and_si256(x1, mask), hi1 = _mm256_and_si256(_mm256_srli_epi16(x1, 4), mask);
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) {
        std::int32_t v0, v1;
        std::memcpy(&v0, ag + m * a_stride + q * 4, 4);
        std::memcpy(&v1, ag + m * a_stride + q * 4 + 4, 4);
        const __m256i a0 = _mm256_set1_epi32(v0), a1 = _mm256_set1_epi32(v1);
        const __m256i l = _mm256_add_epi16(_mm256_maddubs_epi16(lo0, a0), _mm256_maddubs_epi16(lo1, a1));
        const __m256i h = _mm256_add_epi16(_mm256_maddubs_epi16(hi0, a0), _mm256_maddubs_epi16(hi1, a1));
        lo_acc[m] = _mm256_add_epi32(lo_acc[m], _mm256_madd_epi16(l, ones));
        hi_acc[m] = _mm256_add_epi32(hi_acc[m], _mm256_madd_epi16(h, ones));
      }
    }
    if (q < qpg) {
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + q * 32));
      const __m256i lo0 = _mm256_and_si256(x0, mask), hi0 = _mm256_and_si256(_mm256_srli_epi16(x0, 4), mask);
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) {
        std::int32_t v0;
        std::memcpy(&v0, ag + m * a_stride + q * 4, 4);
        const __m256i a0 = _mm256_set1_epi32(v0);
        lo_acc[m] = _mm256_add_epi32(lo_acc[m], _mm256_madd_epi16(_mm256_maddubs_epi16(lo0, a0), ones));
        hi_acc[m] = _mm256_add_epi32(hi_acc[m], _mm256_madd_epi16(_mm256_maddubs_epi16(hi0, a0), ones));
      }
    }
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums + (g * w4_mr + m) * 16), lo_acc[m]);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(sums + (g * w4_mr + m) * 16 + 8), hi_acc[m]);
    }
  }
}

NPUQ_TARGET_AVX2 inline void w4_grouped_epilogue_avx2(int rows, std::int64_t groups, const std::int32_t* sums, const std::int32_t* e,
                                                         const std::int32_t* S, std::int64_t s_stride, const std::int32_t* dw,
                                                         const float* sg, float* facc) {
  for (int m = 0; m < rows; ++m) {
    for (int h = 0; h < 2; ++h) {
      __m256 f = _mm256_loadu_ps(facc + m * 16 + 8 * h);
      for (std::int64_t g = 0; g < groups; ++g) {
        const __m256i s = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(sums + (g * w4_mr + m) * 16 + 8 * h));
        const __m256i ev = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e + g * 32 + 8 * h));
        const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dw + g * 16 + 8 * h));
        const __m256i t = _mm256_add_epi32(_mm256_sub_epi32(s, _mm256_mullo_epi32(ev, _mm256_set1_epi32(S[m * s_stride + g]))), d);
        __m256 p = _mm256_mul_ps(_mm256_cvtepi32_ps(t), _mm256_loadu_ps(sg + g * 16 + 8 * h));
        NPUQ_VECTOR_BARRIER(p);  // no contraction into an FMA
        f = _mm256_add_ps(f, p);
      }
      _mm256_storeu_ps(facc + m * 16 + 8 * h, f);
    }
  }
}

}  // namespace simd_detail
}  // namespace npuq

#endif
