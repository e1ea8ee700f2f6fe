// AVX-512 VNNI GEMM microkernel with the output stage in registers: 8 rows x 1 or 2 panels.
//
// With a short reduction (a 1x1 convolution with K = 24, a first layer with K = 27) an output
// costs a handful of vpdpbusd, and what follows them decides the speed: storing the int32 tile,
// calling the stage, reloading the tile and narrowing each 16-lane row with its own vpmovdb cost
// more than the dot products. This kernel runs the K loop of gemm_c4_avx512_vnni, requantizes the accumulators where
// they are (requant_avx512: the arithmetic of the stage every other path uses) and narrows four
// of them at once with saturating packs, which are exact here because the stage has already
// clamped every value into the output's range. It writes 8-bit outputs only, for whole tiles
// (8 rows, 16 * NP columns); the driver (gemm.hpp) sends every other tile through the
// int32-tile path.
#pragma once

#include <cstdint>

#include "npuq/backends/simd/x86/gemm_c4_vnni.hpp"
#include "npuq/backends/simd/x86/output_stage_avx512.hpp"

#if defined(NPUQ_ARCH_X86_64)

NPUQ_AVX512_WARNINGS_OFF

namespace npuq {
namespace simd_detail {

// Four rows of 16 requantized lanes (each already in the output's range) as 64 bytes, row i in
// 128-bit lane i. The packs interleave 4-byte groups across lanes; vpermd puts them back.
NPUQ_TARGET_AVX512_VNNI inline __m512i narrow4_avx512(__m512i r0, __m512i r1, __m512i r2, __m512i r3, bool is_unsigned) {
  const __m512i w01 = _mm512_packs_epi32(r0, r1), w23 = _mm512_packs_epi32(r2, r3);
  const __m512i bytes = is_unsigned ? _mm512_packus_epi16(w01, w23) : _mm512_packs_epi16(w01, w23);
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_epi32(order, bytes);
}

// C = A x B for 8 rows and NP whole panels (columns [n0, n0 + 16 * NP) of the stage) with the
// output stage of kind Kind, written through `out`. Operands as gemm_c4_avx512_vnni's.
template <int NP, class B, tile_requant Kind>
NPUQ_TARGET_AVX512_VNNI void gemm_c4_8x16np_stage_avx512_vnni(std::int64_t kg, const dot_a_t<B>* a, std::int64_t lda, const B* b,
                                                             std::int64_t ldp, const tile_output_stage& t, std::int64_t n0,
                                                             const stage_tile_out& out) {
  static_assert(NP == 1 || NP == 2, "gemm_c4_8x16np_stage_avx512_vnni: 1 or 2 panels");
  constexpr int MR = 8;
  // The sums through the plain kernel (not inlined: with the stage's constants live in the same
  // function, GCC 12 copies every accumulator on every K step), then the stage from L1.
  alignas(64) std::int32_t c[NP * MR * 16];
  gemm_c4_avx512_vnni<MR, NP, B>(kg, a, lda, b, ldp, c);
  __m512i acc[MR][NP];
  const avx512_stage_consts k(*t.st);
#pragma GCC unroll 2
  for (int p = 0; p < NP; ++p) {
    const avx512_panel_consts pc(t, static_cast<std::size_t>(n0 + 16 * p));
    const __m512i bias = _mm512_loadu_si512(&t.bias[static_cast<std::size_t>(n0 + 16 * p)]);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) acc[m][p] = requant_avx512<Kind>(_mm512_add_epi32(_mm512_load_si512(c + (p * MR + m) * 16), bias), pc, k);
  }
  // Locals: the stores below may alias `out`, which would reload it for every row.
  unsigned char* const base = out.base;
  const std::int64_t* const rows = out.rows;
  const bool is_unsigned = out.is_unsigned;
  if constexpr (NP == 2) {
#pragma GCC unroll 4
    for (int m = 0; m < MR; m += 2) {  // rows m and m + 1, 32 bytes each
      const __m512i v = narrow4_avx512(acc[m][0], acc[m][1], acc[m + 1][0], acc[m + 1][1], is_unsigned);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(base + rows[m]), _mm512_castsi512_si256(v));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(base + rows[m + 1]), _mm512_extracti64x4_epi64(v, 1));
    }
  } else {
#pragma GCC unroll 2
    for (int m = 0; m < MR; m += 4) {  // rows m .. m + 3, 16 bytes each
      const __m512i v = narrow4_avx512(acc[m][0], acc[m + 1][0], acc[m + 2][0], acc[m + 3][0], is_unsigned);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(base + rows[m]), _mm512_castsi512_si128(v));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(base + rows[m + 1]), _mm512_extracti32x4_epi32(v, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(base + rows[m + 2]), _mm512_extracti32x4_epi32(v, 2));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(base + rows[m + 3]), _mm512_extracti32x4_epi32(v, 3));
    }
  }
}

}  // namespace simd_detail
}  // namespace npuq

NPUQ_AVX512_WARNINGS_ON

#endif
