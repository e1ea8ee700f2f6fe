// AVX2 GEMM microkernel on the c2 packed format (see gemm_pack.hpp): MR rows x 16 columns.
//
// A is MR rows of int16 (see gemm_pack.hpp). Per K pair: 32 weight bytes are widened to two vectors of 16 int16 (vpmovsxbw / vpmovzxbw),
// the column zero points subtracted, and each row's packed (a[k], a[k+1]) pair is broadcast and
// multiplied with vpmaddwd, which sums the two exact 32-bit products: no saturation anywhere,
// so the result is the reference's sum modulo 2^32. Compiled with a target attribute, so the
// header works in a program built without -mavx2; it only runs after CPU detection says so.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(_M_X64)
#include "npuq/backends/simd/x86/intrin.hpp"


namespace npuq {
namespace simd_detail {

template <class B>
NPUQ_TARGET_AVX2 inline __m256i widen_avx2(__m128i v) {
  if constexpr (std::is_same<B, std::uint8_t>::value) return _mm256_cvtepu8_epi16(v);
  else return _mm256_cvtepi8_epi16(v);
}

template <int MR, class B>
NPUQ_TARGET_AVX2 void gemm_c2_avx2(std::int64_t k_pairs, const std::int16_t* a, const B* b, const std::int16_t* zb,
                                   std::int32_t* c) {
  // Fully unrolled over MR (GCC keeps the accumulator arrays in registers only when unrolled).
  __m256i acc0[MR], acc1[MR];
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) acc0[m] = acc1[m] = _mm256_setzero_si256();
  const __m256i z0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zb));
  const __m256i z1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zb + 16));
  for (std::int64_t p = 0; p < k_pairs; ++p) {
    const __m128i* bp = reinterpret_cast<const __m128i*>(b + p * 32);
    const __m256i b0 = _mm256_sub_epi16(widen_avx2<B>(_mm_loadu_si128(bp)), z0);
    const __m256i b1 = _mm256_sub_epi16(widen_avx2<B>(_mm_loadu_si128(bp + 1)), z1);
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) {
      std::int32_t pair;  // (a[2p], a[2p+1]) of row m as one word
      std::memcpy(&pair, a + m * 2 * k_pairs + 2 * p, sizeof pair);
      const __m256i av = _mm256_set1_epi32(pair);
      acc0[m] = _mm256_add_epi32(acc0[m], _mm256_madd_epi16(av, b0));
      acc1[m] = _mm256_add_epi32(acc1[m], _mm256_madd_epi16(av, b1));
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + m * 16), acc0[m]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + m * 16 + 8), acc1[m]);
  }
}

}  // namespace simd_detail
}  // namespace npuq

#endif
