// AVX2 sparse GEMM kernels on the packed sparse layouts (gemm_sparse_pack.hpp).
//
// 2:4: per group of 4 K rows and panel of 16 channels, one 64-bit load of the sixteen codes is
// broadcast and shifted per lane (two vpsrlvd), and vpermd picks each channel's pair of
// activations from the row's 8-word table; the 16 kept values are widened to int16 and vpmaddwd adds the two
// exact products per channel. Pairs (block CSR, CSR): per stored K pair one broadcast weight word
// and one vpmaddwd per 8 rows of transposed activations. Every product is exact and every sum
// wraps modulo 2^32, as in the reference. Compiled with a target attribute: runs only after CPU
// detection says AVX2 is there.
#pragma once

#include <cstdint>
#include <cstring>

#include "npuq/backends/simd/gemm_sparse_pack.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include "npuq/backends/simd/x86/intrin.hpp"


namespace npuq {
namespace simd_detail {

// MR rows x 16 channels, added to c (see portable/gemm_sparse.hpp for the arguments).
template <int MR>
NPUQ_TARGET_AVX2 void sparse_2_4_avx2(std::int64_t groups, const std::int32_t* table, std::int64_t t_stride,
                                             const std::uint8_t* panel, std::int32_t* c, std::int64_t ldc) {
  __m256i acc0[MR], acc1[MR];  // lanes: channels 0,8,1,9,2,10,3,11 and 4,12,5,13,6,14,7,15
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) acc0[m] = acc1[m] = _mm256_setzero_si256();
  const __m256i s0 = _mm256_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12), s1 = _mm256_setr_epi32(16, 16, 20, 20, 24, 24, 28, 28);
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::uint8_t* rec = panel + g * sp24_record;
    std::int64_t codes;
    std::memcpy(&codes, rec, 8);
    const __m256i cv = _mm256_set1_epi64x(codes);
    const __m256i idx0 = _mm256_srlv_epi32(cv, s0), idx1 = _mm256_srlv_epi32(cv, s1);  // vpermd reads the low 3 bits
    const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + 8)));
    const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(rec + 24)));
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) {
      const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + m * t_stride + g * 8));
      acc0[m] = _mm256_add_epi32(acc0[m], _mm256_madd_epi16(_mm256_permutevar8x32_epi32(t, idx0), w0));
      acc1[m] = _mm256_add_epi32(acc1[m], _mm256_madd_epi16(_mm256_permutevar8x32_epi32(t, idx1), w1));
    }
  }
  const __m256i even_odd = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) {
    const __m256i a = _mm256_permutevar8x32_epi32(acc0[m], even_odd);  // 0..3 | 8..11
    const __m256i b = _mm256_permutevar8x32_epi32(acc1[m], even_odd);  // 4..7 | 12..15
    __m256i* out = reinterpret_cast<__m256i*>(c + m * ldc);
    _mm256_storeu_si256(out, _mm256_add_epi32(_mm256_loadu_si256(out), _mm256_permute2x128_si256(a, b, 0x20)));
    _mm256_storeu_si256(out + 1, _mm256_add_epi32(_mm256_loadu_si256(out + 1), _mm256_permute2x128_si256(a, b, 0x31)));
  }
}

// R chunks of 8 rows x one channel, added to acc_io (see portable/gemm_sparse.hpp).
template <int R>
NPUQ_TARGET_AVX2 void sparse_pairs_avx2(const std::int32_t* at, std::int64_t chunk_stride, const std::int32_t* pair,
                                               const std::int32_t* w, std::int64_t count, std::int32_t* acc_io) {
  __m256i acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc_io + r * pairs_chunk));
  for (std::int64_t e = 0; e < count; ++e) {
    const std::int32_t* base = at + static_cast<std::int64_t>(pair[e]) * pairs_chunk;
    const __m256i wv = _mm256_set1_epi32(w[e]);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r)
      acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + r * chunk_stride)), wv));
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc_io + r * pairs_chunk), acc[r]);
}

// The same for two channels that store the same K pairs (twins): each activation vector is
// loaded once and multiplied with both channels' weights.
template <int R>
NPUQ_TARGET_AVX2 void sparse_pairs2_avx2(const std::int32_t* at, std::int64_t chunk_stride, const std::int32_t* pair,
                                                const std::int32_t* w0, const std::int32_t* w1, std::int64_t count,
                                                std::int32_t* acc0_io, std::int32_t* acc1_io) {
  __m256i acc0[R], acc1[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    acc0[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc0_io + r * pairs_chunk));
    acc1[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(acc1_io + r * pairs_chunk));
  }
  for (std::int64_t e = 0; e < count; ++e) {
    const std::int32_t* base = at + static_cast<std::int64_t>(pair[e]) * pairs_chunk;
    const __m256i wv0 = _mm256_set1_epi32(w0[e]), wv1 = _mm256_set1_epi32(w1[e]);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + r * chunk_stride));
      acc0[r] = _mm256_add_epi32(acc0[r], _mm256_madd_epi16(x, wv0));
      acc1[r] = _mm256_add_epi32(acc1[r], _mm256_madd_epi16(x, wv1));
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc0_io + r * pairs_chunk), acc0[r]);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc1_io + r * pairs_chunk), acc1[r]);
  }
}

}  // namespace simd_detail
}  // namespace npuq

#endif
