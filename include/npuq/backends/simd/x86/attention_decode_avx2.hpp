// AVX2 kernels of attention decode: the two streaming passes over an 8-bit KV cache.
//
// Decode reads every cached key once to score it and every value row with a non-zero
// probability once to sum it; both are memory bound, so the kernels read K and V as bytes and
// widen in registers:
//   dot_rows:  scores[t] = sum_i q[i] * k[t][i] for n rows of d bytes (q already int16, zero
//              point subtracted). 16 columns per vpmaddwd; eight rows are reduced together with
//              a vphaddd tree, so a row costs d/16 multiply-adds and a fraction of a reduction.
//   axpy_rows: acc[j] += w[t] * v[t][j] over the listed rows, two rows per vpmaddwd: the rows'
//              16-bit values interleaved (vpunpcklwd/hwd) against the broadcast pair (w1, w2).
//              64 columns per pass in registers.
// Products of 16-bit values are exact in vpmaddwd and sums wrap at 32 bits, as the simd
// backend's contract requires. Compiled with a target attribute and run only after detection.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__x86_64__) || defined(_M_X64)
#include "npuq/backends/simd/x86/intrin.hpp"

#include "npuq/backends/simd/x86/gemm_c2_avx2.hpp"

namespace npuq {
namespace simd_detail {

// Sum of the eight int32 lanes of each of v[0..7], as one vector (lane r = sum of v[r]).
NPUQ_TARGET_AVX2 inline __m256i reduce8_avx2(const __m256i* v) {
  const __m256i s01 = _mm256_hadd_epi32(v[0], v[1]), s23 = _mm256_hadd_epi32(v[2], v[3]);
  const __m256i s45 = _mm256_hadd_epi32(v[4], v[5]), s67 = _mm256_hadd_epi32(v[6], v[7]);
  const __m256i s0123 = _mm256_hadd_epi32(s01, s23), s4567 = _mm256_hadd_epi32(s45, s67);
  return _mm256_add_epi32(_mm256_permute2x128_si256(s0123, s4567, 0x20), _mm256_permute2x128_si256(s0123, s4567, 0x31));
}

// out[t] = sum_i q[i] * row_t[i] (mod 2^32) for rows k + t * stride, t < n; q has d int16 values.
template <class KV>
NPUQ_TARGET_AVX2 void dot_rows_avx2(const std::int16_t* q, const KV* k, std::int64_t stride, std::int64_t d, std::int64_t n,
                                    std::uint32_t* out) {
  const std::int64_t d16 = d & ~std::int64_t{15};
  for (std::int64_t t0 = 0; t0 < n; t0 += 8) {
    const int rows = static_cast<int>(n - t0 < 8 ? n - t0 : 8);
    const KV* row[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) row[r] = k + (t0 + (r < rows ? r : rows - 1)) * stride;  // a short block repeats its last row
    __m256i acc[8];
#pragma GCC unroll 8
    for (int r = 0; r < 8; ++r) acc[r] = _mm256_setzero_si256();
    for (std::int64_t i = 0; i < d16; i += 16) {
      const __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + i));
#pragma GCC unroll 8
      for (int r = 0; r < 8; ++r) {
        const __m256i kv = widen_avx2<KV>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row[r] + i)));
        acc[r] = _mm256_add_epi32(acc[r], _mm256_madd_epi16(kv, qv));
      }
    }
    alignas(32) std::uint32_t sums[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(sums), reduce8_avx2(acc));
    for (int r = 0; r < rows; ++r) {
      std::uint32_t s = sums[r];
      for (std::int64_t i = d16; i < d; ++i) s += static_cast<std::uint32_t>(q[i] * static_cast<std::int32_t>(row[r][i]));
      out[t0 + r] = s;
    }
  }
}

// acc[j] += w[i] * v[key[i]][j] (mod 2^32) for i < n, j < 16 * C, starting at column c0.
template <int C, class KV>
NPUQ_TARGET_AVX2 void axpy_rows_block_avx2(const std::uint8_t* w, const std::int32_t* key, std::int64_t n, const KV* v,
                                           std::int64_t stride, std::int64_t c0, std::uint32_t* acc) {
  __m256i lo[C], hi[C];  // columns (0-3, 8-11) and (4-7, 12-15) of each 16-column chunk
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) lo[c] = hi[c] = _mm256_setzero_si256();
  for (std::int64_t i = 0; i < n; i += 2) {
    const bool pair = i + 1 < n;
    const KV* r1 = v + key[i] * stride + c0;
    const KV* r2 = pair ? v + key[i + 1] * stride + c0 : r1;
    const std::uint32_t w2 = pair ? w[i + 1] : 0u;
    const __m256i wp = _mm256_set1_epi32(static_cast<std::int32_t>(w[i] | (w2 << 16)));
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      const __m256i a = widen_avx2<KV>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + 16 * c)));
      const __m256i b = widen_avx2<KV>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(r2 + 16 * c)));
      lo[c] = _mm256_add_epi32(lo[c], _mm256_madd_epi16(_mm256_unpacklo_epi16(a, b), wp));
      hi[c] = _mm256_add_epi32(hi[c], _mm256_madd_epi16(_mm256_unpackhi_epi16(a, b), wp));
    }
  }
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) {
    alignas(32) std::uint32_t l[8], h[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(l), lo[c]);
    _mm256_store_si256(reinterpret_cast<__m256i*>(h), hi[c]);
    std::uint32_t* o = acc + c0 + 16 * c;
    for (int j = 0; j < 4; ++j) {
      o[j] += l[j];
      o[4 + j] += h[j];
      o[8 + j] += l[4 + j];
      o[12 + j] += h[4 + j];
    }
  }
}

template <class KV>
NPUQ_TARGET_AVX2 void axpy_rows_avx2(const std::uint8_t* w, const std::int32_t* key, std::int64_t n, const KV* v, std::int64_t stride,
                                     std::int64_t dv, std::uint32_t* acc) {
  std::int64_t c0 = 0;
  for (; c0 + 64 <= dv; c0 += 64) axpy_rows_block_avx2<4>(w, key, n, v, stride, c0, acc);
  if (dv - c0 >= 32) {
    axpy_rows_block_avx2<2>(w, key, n, v, stride, c0, acc);
    c0 += 32;
  }
  if (dv - c0 >= 16) {
    axpy_rows_block_avx2<1>(w, key, n, v, stride, c0, acc);
    c0 += 16;
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const KV* row = v + key[i] * stride;
    for (std::int64_t j = c0; j < dv; ++j) acc[j] += w[i] * static_cast<std::uint32_t>(static_cast<std::int32_t>(row[j]));
  }
}

}  // namespace simd_detail
}  // namespace npuq

#endif
