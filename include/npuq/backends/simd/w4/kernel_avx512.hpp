// AVX-512 VNNI W4A8 kernels on the c4 nibble panels (see pack.hpp), run at avx512_vnni and amx_int8.
//
// Why not the AVX2 kernel: its vpmaddubsw forms int16 pairs that must be widened (vpmaddwd) and
// added, five operations per quad and row; vpdpbusd multiplies 4 unsigned bytes by 4 signed
// bytes and adds the four exact products to an int32 lane without saturating, one operation per
// 16 columns x 4 K. The nibble codes u (0..15) are the unsigned operand and the activations the
// signed one, as prepared for every level (s = a, or a - 128 for uint8), so no offset trick is
// needed: each lane gains sum u * s exactly and wraps in int32 like the reference.
//
// One quad (32 bytes) is loaded into both 256-bit halves of a zmm (a broadcast load); a variable
// shift (0 in the lower half, 4 in the upper) and a mask leave column j's 4 codes in lane j for
// all 16 columns: the low nibbles of lanes 0-7 are columns 0-7, the high nibbles columns 8-15.
// Each row's 4 activation bytes are a broadcast load, so per quad the weights cost two
// operations shared by the rows and each row one vpdpbusd, with no shuffle and no final fold:
// lane j is column j's sum. With 1-2 rows quads rotate over four chains of accumulators (two
// with 3-4 rows) to hide vpdpbusd's latency. The grouped epilogue is the AVX2 one on 16 columns
// per register, rows inner so each group's e, d * W and scales load once: same operations in
// the same order per element, no FMA.
#pragma once

#include <cstdint>
#include <cstring>

#include "npuq/backends/simd/w4/kernel_portable.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include "npuq/backends/simd/x86/intrin.hpp"

NPUQ_AVX512_WARNINGS_OFF

namespace npuq {
namespace simd_detail {

template <int MR>
NPUQ_TARGET_AVX512_VNNI void w4_dot_avx512_vnni(const std::uint8_t* w, std::int64_t groups, std::int64_t qpg, const std::int8_t* a,
                                                std::int64_t a_stride, std::int32_t* sums) {
  constexpr int CH = MR <= 2 ? 4 : 2;
  const __m512i mask = _mm512_set1_epi8(0x0F);
  // Shift counts of the 32 16-bit lanes: 0 in the lower half (low nibbles), 4 in the upper.
  const __m512i shifts = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  for (std::int64_t g = 0; g < groups; ++g) {
    __m512i acc[CH][MR];
#pragma GCC unroll 4
    for (int h = 0; h < CH; ++h)
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) acc[h][m] = _mm512_setzero_si512();
    const std::uint8_t* wg = w + g * qpg * 32;
    const std::int8_t* ag = a + g * qpg * 4;
    std::int64_t q = 0;
    for (; q + CH <= qpg; q += CH) {
#pragma GCC unroll 4
      for (int h = 0; h < CH; ++h) {
        const __m512i x = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + (q + h) * 32)));
        const __m512i u = _mm512_and_si512(_mm512_srlv_epi16(x, shifts), mask);
#pragma GCC unroll 4
        for (int m = 0; m < MR; ++m) {
          std::int32_t v;
          std::memcpy(&v, ag + m * a_stride + (q + h) * 4, sizeof v);
          acc[h][m] = _mm512_dpbusd_epi32(acc[h][m], u, _mm512_set1_epi32(v));
        }
      }
    }
    for (; q < qpg; ++q) {
      const __m512i x = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + q * 32)));
      const __m512i u = _mm512_and_si512(_mm512_srlv_epi16(x, shifts), mask);
#pragma GCC unroll 4
      for (int m = 0; m < MR; ++m) {
        std::int32_t v;
        std::memcpy(&v, ag + m * a_stride + q * 4, sizeof v);
        acc[0][m] = _mm512_dpbusd_epi32(acc[0][m], u, _mm512_set1_epi32(v));
      }
    }
#pragma GCC unroll 4
    for (int m = 0; m < MR; ++m) {
      __m512i c = acc[0][m];
#pragma GCC unroll 4
      for (int h = 1; h < CH; ++h) c = _mm512_add_epi32(c, acc[h][m]);
      _mm512_storeu_si512(sums + (g * w4_mr + m) * 16, c);
    }
  }
}

// w4_grouped_epilogue_portable for R rows, 16 columns per register: the group's e, d * W and
// scales are loaded once for all rows.
template <int R>
NPUQ_TARGET_AVX512_VNNI void w4_grouped_rows_avx512(std::int64_t groups, const std::int32_t* sums, const std::int32_t* e,
                                                    const std::int32_t* S, std::int64_t s_stride, const std::int32_t* dw, const float* sg,
                                                    float* facc) {
  __m512 f[R];
#pragma GCC unroll 4
  for (int m = 0; m < R; ++m) f[m] = _mm512_loadu_ps(facc + m * 16);
  for (std::int64_t g = 0; g < groups; ++g) {
    const __m512i ev = _mm512_loadu_si512(e + g * 32);
    const __m512i d = _mm512_loadu_si512(dw + g * 16);
    const __m512 sc = _mm512_loadu_ps(sg + g * 16);
#pragma GCC unroll 4
    for (int m = 0; m < R; ++m) {
      const __m512i s = _mm512_loadu_si512(sums + (g * w4_mr + m) * 16);
      const __m512i t = _mm512_add_epi32(_mm512_sub_epi32(s, _mm512_mullo_epi32(ev, _mm512_set1_epi32(S[m * s_stride + g]))), d);
      __m512 p = _mm512_mul_ps(_mm512_cvtepi32_ps(t), sc);
      NPUQ_VECTOR_BARRIER(p);  // no contraction into an FMA
      f[m] = _mm512_add_ps(f[m], p);
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < R; ++m) _mm512_storeu_ps(facc + m * 16, f[m]);
}

inline void w4_grouped_epilogue_avx512_vnni(int rows, std::int64_t groups, const std::int32_t* sums, const std::int32_t* e,
                                            const std::int32_t* S, std::int64_t s_stride, const std::int32_t* dw, const float* sg,
                                            float* facc) {
  static_assert(w4_mr == 4, "w4_grouped_epilogue_avx512_vnni: one case per row count");
  switch (rows) {
    case 1: return w4_grouped_rows_avx512<1>(groups, sums, e, S, s_stride, dw, sg, facc);
    case 2: return w4_grouped_rows_avx512<2>(groups, sums, e, S, s_stride, dw, sg, facc);
    case 3: return w4_grouped_rows_avx512<3>(groups, sums, e, S, s_stride, dw, sg, facc);
    default: return w4_grouped_rows_avx512<4>(groups, sums, e, S, s_stride, dw, sg, facc);
  }
}

}  // namespace simd_detail
}  // namespace npuq

NPUQ_AVX512_WARNINGS_ON

#endif
