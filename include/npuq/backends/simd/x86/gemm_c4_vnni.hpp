// VNNI GEMM microkernels on the c4 packed format: AVX-512 VNNI (zmm) and AVX-VNNI (ymm).
//
// vpdpbusd multiplies 4 unsigned bytes by 4 signed bytes and adds the four exact products into
// an int32 lane, without saturation (unlike vpmaddubsw): 64 multiply-adds per zmm instruction,
// where the AVX2 kernel's vpmaddwd does 16. A c4 panel (gemm_pack.hpp) holds, per group of 4 K,
// the 16 columns' 4 bytes side by side, so one 64-byte load is a zmm operand for 16 columns (two
// ymm for AVX-VNNI). A's bytes are of the other signedness than B's (dot_a_t): int8 weights
// meet unsigned activation bytes, uint8 weights signed ones, and each row's 4 bytes of a K group
// are broadcast to every lane. The int32 sums wrap like the reference's modulo 2^32; the driver
// (gemm_dot.hpp) adds the zero-point compensation and runs the output stage.
//
// Tiles: MR rows x NP panels of 16 columns. AVX-512: up to 8 x 32 (16 accumulators); AVX-VNNI:
// up to 6 x 16 (12 ymm accumulators). With few rows there are too few independent accumulators
// to hide vpdpbusd's latency, so K is split into chains (g mod CH) summed at the end.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "npuq/backends/simd/gemm_pack.hpp"
#include "npuq/backends/simd/x86/intrin.hpp"

#if defined(NPUQ_ARCH_X86_64)

NPUQ_AVX512_WARNINGS_OFF

namespace npuq {
namespace simd_detail {

// Independent K chains for a tile of `accs` accumulators: enough for ~8 in flight.
constexpr int vnni_chains(int accs) { return accs >= 8 ? 1 : accs >= 4 ? 2 : 4; }

inline std::int32_t load_group(const void* p) {
  std::int32_t w;
  std::memcpy(&w, p, sizeof w);
  return w;
}

// acc += dot4(a, b) with the unsigned operand first.
template <class B>
NPUQ_TARGET_AVX512_VNNI inline __m512i dpbusd512(__m512i acc, __m512i bv, __m512i av) {
  if constexpr (std::is_same<B, std::int8_t>::value) return _mm512_dpbusd_epi32(acc, av, bv);
  else return _mm512_dpbusd_epi32(acc, bv, av);
}

template <int MR, int NP, class B>
NPUQ_TARGET_AVX512_VNNI __attribute__((noinline)) void gemm_c4_avx512_vnni(std::int64_t kg, const dot_a_t<B>* a, std::int64_t lda, const B* b, std::int64_t ldp,
                                                 std::int32_t* c) {
  static_assert(MR >= 1 && MR <= 8 && NP >= 1 && NP <= 2, "gemm_c4_avx512_vnni: 1-8 rows, 1-2 panels");
  constexpr int CH = vnni_chains(MR * NP);
  __m512i acc[CH][MR][NP];
#pragma GCC unroll 64
  for (int h = 0; h < CH; ++h)
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m)
#pragma GCC unroll 2
      for (int p = 0; p < NP; ++p) acc[h][m][p] = _mm512_setzero_si512();
  std::int64_t g = 0;
  for (; g + CH <= kg; g += CH) {
#pragma GCC unroll 4
    for (int h = 0; h < CH; ++h) {
      __m512i bv[NP];
#pragma GCC unroll 2
      for (int p = 0; p < NP; ++p) bv[p] = _mm512_loadu_si512(b + p * ldp + (g + h) * 64);
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        const __m512i av = _mm512_set1_epi32(load_group(a + m * lda + (g + h) * 4));
#pragma GCC unroll 2
        for (int p = 0; p < NP; ++p) acc[h][m][p] = dpbusd512<B>(acc[h][m][p], bv[p], av);
      }
    }
  }
  for (; g < kg; ++g) {
    __m512i bv[NP];
#pragma GCC unroll 2
    for (int p = 0; p < NP; ++p) bv[p] = _mm512_loadu_si512(b + p * ldp + g * 64);
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const __m512i av = _mm512_set1_epi32(load_group(a + m * lda + g * 4));
#pragma GCC unroll 2
      for (int p = 0; p < NP; ++p) acc[0][m][p] = dpbusd512<B>(acc[0][m][p], bv[p], av);
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 2
    for (int p = 0; p < NP; ++p) {
      __m512i s = acc[0][m][p];
#pragma GCC unroll 4
      for (int h = 1; h < CH; ++h) s = _mm512_add_epi32(s, acc[h][m][p]);
      _mm512_storeu_si512(c + p * MR * 16 + m * 16, s);
    }
}

// c as gemm_c4_avx512_vnni's, with A read where it lies (the direct convolution, conv2d.hpp): K
// step s, `gs` groups of 4, reads the rows lda apart from a + a_steps[s] (a_steps null: from
// a + 4 * gs * s), A's bytes as they are with their sign bits flipped when Shift is 128 (an input of
// the weights' own signedness: the stage takes the flipped bytes, as it does the gathered ones).
// Step s's weights are groups [gs * s, gs * (s + 1)) of b's panels.
template <int MR, int NP, class B, int Shift>
NPUQ_TARGET_AVX512_VNNI __attribute__((noinline)) void gemm_c4_avx512_vnni_steps(std::int64_t steps, std::int64_t gs, const unsigned char* a,
                                                                                 const std::int64_t* a_steps, std::int64_t lda, const B* b,
                                                                                 std::int64_t ldp, std::int32_t* c) {
  static_assert(MR >= 1 && MR <= 8 && NP >= 1 && NP <= 2, "gemm_c4_avx512_vnni_steps: 1-8 rows, 1-2 panels");
  static_assert(Shift == 0 || Shift == 128, "gemm_c4_avx512_vnni_steps: Shift 0 or 128");
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(Shift));
  __m512i acc[MR][NP];
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 2
    for (int p = 0; p < NP; ++p) acc[m][p] = _mm512_setzero_si512();
  for (std::int64_t s = 0; s < steps; ++s) {
    const unsigned char* as = a + (a_steps != nullptr ? a_steps[s] : 4 * gs * s);
    const B* bs = b + s * gs * 64;
    for (std::int64_t g = 0; g < gs; ++g) {
      __m512i bv[NP];
#pragma GCC unroll 2
      for (int p = 0; p < NP; ++p) bv[p] = _mm512_loadu_si512(bs + p * ldp + g * 64);
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        __m512i av = _mm512_set1_epi32(load_group(as + m * lda + g * 4));
        if (Shift != 0) av = _mm512_xor_si512(av, flip);
#pragma GCC unroll 2
        for (int p = 0; p < NP; ++p) acc[m][p] = dpbusd512<B>(acc[m][p], bv[p], av);
      }
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m)
#pragma GCC unroll 2
    for (int p = 0; p < NP; ++p) _mm512_storeu_si512(c + p * MR * 16 + m * 16, acc[m][p]);
}

template <class B>
NPUQ_TARGET_AVX_VNNI inline __m256i dpbusd256(__m256i acc, __m256i bv, __m256i av) {
  if constexpr (std::is_same<B, std::int8_t>::value) return _mm256_dpbusd_avx_epi32(acc, av, bv);
  else return _mm256_dpbusd_avx_epi32(acc, bv, av);
}

// AVX-VNNI: one panel (16 columns = two ymm) per call.
template <int MR, int NP, class B>
NPUQ_TARGET_AVX_VNNI void gemm_c4_avx_vnni(std::int64_t kg, const dot_a_t<B>* a, std::int64_t lda, const B* b, std::int64_t ldp,
                                           std::int32_t* c) {
  static_assert(MR >= 1 && MR <= 6 && NP == 1, "gemm_c4_avx_vnni: 1-6 rows, 1 panel");
  (void)ldp;
  constexpr int CH = vnni_chains(MR * 2);
  __m256i acc[CH][MR][2];
#pragma GCC unroll 64
  for (int h = 0; h < CH; ++h)
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) acc[h][m][0] = acc[h][m][1] = _mm256_setzero_si256();
  std::int64_t g = 0;
  for (; g + CH <= kg; g += CH) {
#pragma GCC unroll 4
    for (int h = 0; h < CH; ++h) {
      const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + (g + h) * 64));
      const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + (g + h) * 64 + 32));
#pragma GCC unroll 8
      for (int m = 0; m < MR; ++m) {
        const __m256i av = _mm256_set1_epi32(load_group(a + m * lda + (g + h) * 4));
        acc[h][m][0] = dpbusd256<B>(acc[h][m][0], b0, av);
        acc[h][m][1] = dpbusd256<B>(acc[h][m][1], b1, av);
      }
    }
  }
  for (; g < kg; ++g) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + g * 64));
    const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + g * 64 + 32));
#pragma GCC unroll 8
    for (int m = 0; m < MR; ++m) {
      const __m256i av = _mm256_set1_epi32(load_group(a + m * lda + g * 4));
      acc[0][m][0] = dpbusd256<B>(acc[0][m][0], b0, av);
      acc[0][m][1] = dpbusd256<B>(acc[0][m][1], b1, av);
    }
  }
#pragma GCC unroll 8
  for (int m = 0; m < MR; ++m) {
    __m256i s0 = acc[0][m][0], s1 = acc[0][m][1];
#pragma GCC unroll 4
    for (int h = 1; h < CH; ++h) {
      s0 = _mm256_add_epi32(s0, acc[h][m][0]);
      s1 = _mm256_add_epi32(s1, acc[h][m][1]);
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + m * 16), s0);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + m * 16 + 8), s1);
  }
}

}  // namespace simd_detail
}  // namespace npuq

NPUQ_AVX512_WARNINGS_ON

#endif
