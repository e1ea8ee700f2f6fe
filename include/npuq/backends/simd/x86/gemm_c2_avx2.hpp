// AVX2 GEMM microkernel on the c2 packed format (see gemm_pack.hpp): up to 6 rows x 16 columns.
//
// A is MR rows of int16 (see gemm_pack.hpp). Per K pair: 32 weight bytes are widened to two
// vectors of 16 int16 (vpmovsxbw / vpmovzxbw), the column zero points subtracted, and each row's
// packed (a[k], a[k+1]) pair is broadcast and multiplied with vpmaddwd, which sums the two exact
// 32-bit products (both operands in [-255, 255]): no saturation anywhere, so the result is the
// reference's sum modulo 2^32. vpmaddubsw, whose 16-bit pair sums saturate, is never used.
//
// 6 rows x 2 halves = 12 accumulators + 2 weight vectors + 1 broadcast fill the 16 ymm
// registers, so each widened weight vector feeds 6 multiplies. Panels whose zero points are all
// 0 (symmetric weights, the common case) run a loop without the subtraction; otherwise the two
// zero-point vectors no longer fit in registers and are subtracted from memory (GCC and Clang
// keep them on the stack: vpsubw ymm, ymm, m256), still 6 rows.
//
// Compiled with a target attribute, so the header works in a program built without -mavx2; it
// only runs after CPU detection says so.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(_M_X64)
#include "npuq/backends/simd/x86/intrin.hpp"


namespace npuq {
namespace simd_detail {

constexpr int c2_avx2_rows = 6;  // rows of the full tile

template <class B>
NPUQ_TARGET_AVX2 inline __m256i widen_avx2(__m128i v) {
  if constexpr (std::is_same<B, std::uint8_t>::value) return _mm256_cvtepu8_epi16(v);
  else return _mm256_cvtepi8_epi16(v);
}

// The K loop of gemm_c2_avx2, with or without the zero-point subtraction.
template <int MR, bool ZeroPoints, class B>
NPUQ_TARGET_AVX2 inline void gemm_c2_avx2_loop(std::int64_t k_pairs, const std::int16_t* a, const B* b, const std::int16_t* zb,
                                               std::int32_t* c) {
  // Fully unrolled over MR (GCC keeps the accumulator arrays in registers only when unrolled).
  __m256i acc0[MR], acc1[MR];
  const std::int16_t* row[MR];
#pragma GCC unroll 6
  for (int m = 0; m < MR; ++m) acc0[m] = acc1[m] = _mm256_setzero_si256(), row[m] = a + m * 2 * k_pairs;
  for (std::int64_t p = 0; p < k_pairs; ++p) {
    const __m128i* bp = reinterpret_cast<const __m128i*>(b + p * 32);
    __m256i b0 = widen_avx2<B>(_mm_loadu_si128(bp));
    __m256i b1 = widen_avx2<B>(_mm_loadu_si128(bp + 1));
    if constexpr (ZeroPoints) {
      b0 = _mm256_sub_epi16(b0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zb)));
      b1 = _mm256_sub_epi16(b1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zb + 16)));
    }
#pragma GCC unroll 6
    for (int m = 0; m < MR; ++m) {
      std::int32_t pair;  // (a[2p], a[2p+1]) of row m as one word
      std::memcpy(&pair, row[m] + 2 * p, sizeof pair);
      const __m256i av = _mm256_set1_epi32(pair);
      acc0[m] = _mm256_add_epi32(acc0[m], _mm256_madd_epi16(av, b0));
      acc1[m] = _mm256_add_epi32(acc1[m], _mm256_madd_epi16(av, b1));
    }
  }
#pragma GCC unroll 6
  for (int m = 0; m < MR; ++m) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + m * 16), acc0[m]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + m * 16 + 8), acc1[m]);
  }
}

// c[m][j] = sum over K pairs of (a_lo * (b0 - zb) + a_hi * (b1 - zb)) for MR rows (a row every
// 2 * k_pairs values) and 16 columns, int32 with wrap-around; same contract as
// gemm_c2_portable.
template <int MR, class B>
NPUQ_TARGET_AVX2 void gemm_c2_avx2(std::int64_t k_pairs, const std::int16_t* a, const B* b, const std::int16_t* zb, std::int32_t* c) {
  static_assert(MR >= 1 && MR <= c2_avx2_rows, "gemm_c2_avx2: 1 to 6 rows");
  // All 16 zero points 0? (A compare, not vptest: SIMDe 0.7.4 emulates _mm256_testz_si256 wrongly.)
  const __m256i z = _mm256_or_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(zb)),
                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(zb + 16)));
  if (_mm256_movemask_epi8(_mm256_cmpeq_epi16(z, _mm256_setzero_si256())) == -1) gemm_c2_avx2_loop<MR, false>(k_pairs, a, b, zb, c);
  else gemm_c2_avx2_loop<MR, true>(k_pairs, a, b, zb, c);
}

}  // namespace simd_detail
}  // namespace npuq

#endif
