// AVX-512 VNNI sparse GEMM kernels on the packed sparse layouts (gemm_sparse_pack.hpp).
//
// The AVX2 kernels' method at twice the width, with vpdpwssd (int16 x int16 pairs summed into the
// int32 lane, wrapping, never saturating) in place of vpmaddwd + vpaddd:
//   2:4    one zmm lane per channel of the 16-channel panel: the 64-bit code word is broadcast and
//          one vpsrlvd puts channel j's code in its lane (lanes 0,8,1,9,...,7,15, the record's
//          value order), one vpermd per row picks each channel's activation pair from the row's
//          8-word table of the group, and one vpdpwssd multiplies with the 32 widened values:
//          two instructions per row and group where the AVX2 kernel runs six.
//   pairs  (block CSR, CSR) two stored K pairs per zmm: entry e's 8 transposed rows in the low
//          half, entry e + 1's in the high half, the weight words broadcast to the matching
//          halves; the halves are added once at the end. When the two K pairs are neighbours
//          (block CSR with even bk: the driver checks each channel's K block) their 16 words are
//          contiguous and one 64-byte load replaces two 32-byte loads and an insert.
// With few rows there are too few accumulators to hide vpdpwssd's latency, so the groups or
// entries are split into independent chains (vnni_chains) summed at the end. Every product is
// exact and every sum wraps modulo 2^32, as in the reference. Target attributes: runs only after
// CPU detection says AVX-512 VNNI is there.
#pragma once

#include <cstdint>
#include <cstring>

#include "npuq/backends/simd/gemm_sparse_pack.hpp"
#include "npuq/backends/simd/x86/gemm_c4_vnni.hpp"
#include "npuq/backends/simd/x86/intrin.hpp"

#if defined(NPUQ_ARCH_X86_64)

NPUQ_AVX512_WARNINGS_OFF

namespace npuq {
namespace simd_detail {

// Group g of a panel's records into acc (MR rows): vpermd reads the low 4 bits of each lane,
// the 3-bit code and the zero bit above it, and picks from the row's 8 words of the group.
template <int MR>
NPUQ_TARGET_AVX512_VNNI inline void sp24_group_avx512(__m512i (&acc)[MR], const std::int32_t* table, std::int64_t t_stride,
                                                      const std::uint8_t* panel, std::int64_t g, __m512i shifts) {
  const std::uint8_t* rec = panel + g * sp24_record;
  std::int64_t codes;
  std::memcpy(&codes, rec, 8);
  const __m512i idx = _mm512_srlv_epi32(_mm512_set1_epi64(codes), shifts);
  const __m512i w = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(rec + 8)));
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) {
    const __m256i t = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(table + m * t_stride + g * 8));
    acc[m] = _mm512_dpwssd_epi32(acc[m], _mm512_permutexvar_epi32(idx, _mm512_broadcast_i64x4(t)), w);
  }
}

// MR rows x 16 channels, added to c (see portable/gemm_sparse.hpp for the arguments).
template <int MR>
NPUQ_TARGET_AVX512_VNNI void sparse_2_4_avx512_vnni(std::int64_t groups, const std::int32_t* table, std::int64_t t_stride,
                                                    const std::uint8_t* panel, std::int32_t* c, std::int64_t ldc) {
  constexpr int CH = vnni_chains(MR);
  __m512i acc[CH][MR];  // lanes: channels 0,8,1,9,...,7,15
#pragma GCC unroll 16
  for (int h = 0; h < CH; ++h)
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) acc[h][m] = _mm512_setzero_si512();
  const __m512i shifts = _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
  std::int64_t g = 0;
  for (; g + CH <= groups; g += CH) {
#pragma GCC unroll 4
    for (int h = 0; h < CH; ++h) sp24_group_avx512<MR>(acc[h], table, t_stride, panel, g + h, shifts);
  }
  for (; g < groups; ++g) sp24_group_avx512<MR>(acc[0], table, t_stride, panel, g, shifts);
  const __m512i order = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
#pragma GCC unroll 4
  for (int m = 0; m < MR; ++m) {
    __m512i sum = acc[0][m];
#pragma GCC unroll 4
    for (int h = 1; h < CH; ++h) sum = _mm512_add_epi32(sum, acc[h][m]);
    std::int32_t* out = c + m * ldc;
    _mm512_storeu_si512(out, _mm512_add_epi32(_mm512_loadu_si512(out), _mm512_permutexvar_epi32(order, sum)));
  }
}

// Entries e and e + 1 of a channel (NW = 1) or of twin channels (NW = 2, same pairs, weights
// w[0], w[1]) into acc: per chunk one zmm of both entries' 8 rows, a single load when the two K
// pairs are neighbours (Adjacent), else two 8-word halves.
template <int R, int NW, bool Adjacent>
NPUQ_TARGET_AVX512_VNNI inline void pairs_step_avx512(__m512i (&acc)[NW][R], const std::int32_t* at, std::int64_t chunk_stride,
                                                      const std::int32_t* pair, const std::int32_t* const (&w)[NW], std::int64_t e) {
  const std::int32_t* b0 = at + static_cast<std::int64_t>(pair[e]) * pairs_chunk;
  const std::int32_t* b1 = at + static_cast<std::int64_t>(pair[e + 1]) * pairs_chunk;
  __m512i wv[NW];
#pragma GCC unroll 2
  for (int i = 0; i < NW; ++i) wv[i] = _mm512_mask_set1_epi32(_mm512_set1_epi32(w[i][e]), 0xFF00, w[i][e + 1]);
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const std::int32_t* x0 = b0 + r * chunk_stride;
    const __m512i x = Adjacent ? _mm512_loadu_si512(x0)
                               : _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x0))),
                                                    _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1 + r * chunk_stride)), 1);
#pragma GCC unroll 2
    for (int i = 0; i < NW; ++i) acc[i][r] = _mm512_dpwssd_epi32(acc[i][r], x, wv[i]);
  }
}

// R chunks of 8 rows x NW channels that store the same `count` K pairs; acc_io[i] += their sums.
template <int R, int NW, bool Adjacent>
NPUQ_TARGET_AVX512_VNNI void sparse_pairs_avx512_impl(const std::int32_t* at, std::int64_t chunk_stride, const std::int32_t* pair,
                                                      const std::int32_t* const (&w)[NW], std::int64_t count,
                                                      std::int32_t* const (&acc_io)[NW]) {
  constexpr int CH = vnni_chains(R * NW);
  __m512i acc[CH][NW][R];
#pragma GCC unroll 16
  for (int h = 0; h < CH; ++h)
#pragma GCC unroll 2
    for (int i = 0; i < NW; ++i)
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) acc[h][i][r] = _mm512_setzero_si512();
  std::int64_t e = 0;
  for (; e + 2 * CH <= count; e += 2 * CH) {
#pragma GCC unroll 4
    for (int h = 0; h < CH; ++h) pairs_step_avx512<R, NW, Adjacent>(acc[h], at, chunk_stride, pair, w, e + 2 * h);
  }
  for (; e + 2 <= count; e += 2) pairs_step_avx512<R, NW, Adjacent>(acc[0], at, chunk_stride, pair, w, e);
  if (e < count) {  // the last entry alone: the high half's weights are 0
    const std::int32_t* b0 = at + static_cast<std::int64_t>(pair[e]) * pairs_chunk;
#pragma GCC unroll 2
    for (int i = 0; i < NW; ++i) {
      const __m512i wv = _mm512_maskz_set1_epi32(0x00FF, w[i][e]);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m512i x = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0 + r * chunk_stride)));
        acc[0][i][r] = _mm512_dpwssd_epi32(acc[0][i][r], x, wv);
      }
    }
  }
#pragma GCC unroll 2
  for (int i = 0; i < NW; ++i)
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      __m512i sum = acc[0][i][r];
#pragma GCC unroll 4
      for (int h = 1; h < CH; ++h) sum = _mm512_add_epi32(sum, acc[h][i][r]);
      __m256i* out = reinterpret_cast<__m256i*>(acc_io[i] + r * pairs_chunk);
      const __m256i halves = _mm256_add_epi32(_mm512_castsi512_si256(sum), _mm512_extracti64x4_epi64(sum, 1));
      _mm256_storeu_si256(out, _mm256_add_epi32(_mm256_loadu_si256(out), halves));
    }
}

// R chunks of 8 rows x one channel, added to acc_io (see portable/gemm_sparse.hpp).
template <int R>
NPUQ_TARGET_AVX512_VNNI void sparse_pairs_avx512_vnni(const std::int32_t* at, std::int64_t chunk_stride, const std::int32_t* pair,
                                                      const std::int32_t* w, std::int64_t count, std::int32_t* acc_io) {
  sparse_pairs_avx512_impl<R, 1, false>(at, chunk_stride, pair, {w}, count, {acc_io});
}

// The same for twin channels (same K pairs): each activation vector is loaded once for both.
template <int R>
NPUQ_TARGET_AVX512_VNNI void sparse_pairs2_avx512_vnni(const std::int32_t* at, std::int64_t chunk_stride, const std::int32_t* pair,
                                                       const std::int32_t* w0, const std::int32_t* w1, std::int64_t count,
                                                       std::int32_t* acc0_io, std::int32_t* acc1_io) {
  sparse_pairs_avx512_impl<R, 2, false>(at, chunk_stride, pair, {w0, w1}, count, {acc0_io, acc1_io});
}

// Both when every entry couple (0, 1), (2, 3), ... holds neighbouring K pairs (the driver checks).
template <int R>
NPUQ_TARGET_AVX512_VNNI void sparse_pairs_adjacent_avx512_vnni(const std::int32_t* at, std::int64_t chunk_stride, const std::int32_t* pair,
                                                               const std::int32_t* w, std::int64_t count, std::int32_t* acc_io) {
  sparse_pairs_avx512_impl<R, 1, true>(at, chunk_stride, pair, {w}, count, {acc_io});
}
template <int R>
NPUQ_TARGET_AVX512_VNNI void sparse_pairs2_adjacent_avx512_vnni(const std::int32_t* at, std::int64_t chunk_stride, const std::int32_t* pair,
                                                                const std::int32_t* w0, const std::int32_t* w1, std::int64_t count,
                                                                std::int32_t* acc0_io, std::int32_t* acc1_io) {
  sparse_pairs_avx512_impl<R, 2, true>(at, chunk_stride, pair, {w0, w1}, count, {acc0_io, acc1_io});
}

}  // namespace simd_detail
}  // namespace npuq

NPUQ_AVX512_WARNINGS_ON

#endif
