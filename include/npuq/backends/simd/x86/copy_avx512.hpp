// A byte copy with the sign bit flipped (or not), 64 bytes a step, for the conv2d gather and
// the GEMM rows of the x86 driver.
//
// The x86 c4 kernels read activation bytes of the other signedness than the weights, so an
// implicit-GEMM conv copies every tap run of the input with an XOR of 0x80. In plain -O2 code
// that copy runs 16 bytes a step (SSE2), which on a 3x3 conv with 64 channels costs a fifth of
// the dot products' time; with zmm registers it is one load, XOR and store per 64 bytes.
#pragma once

#include <cstdint>

#include "npuq/backends/simd/x86/intrin.hpp"

#if defined(NPUQ_ARCH_X86_64)

NPUQ_AVX512_WARNINGS_OFF

namespace npuq {
namespace simd_detail {

// dst[k] = src[k] ^ Shift for k in [0, n).
template <int Shift>
NPUQ_TARGET_AVX512_VNNI void copy_shifted_avx512(const void* src, void* dst, std::int64_t n) {
  const auto* s = static_cast<const char*>(src);
  auto* d = static_cast<char*>(dst);
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(Shift));
  std::int64_t k = 0;
  for (; k + 64 <= n; k += 64)
    _mm512_storeu_si512(d + k, _mm512_xor_si512(_mm512_loadu_si512(s + k), flip));
  const __m128i flip16 = _mm_set1_epi8(static_cast<char>(Shift));
  for (; k + 16 <= n; k += 16)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(d + k), _mm_xor_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + k)), flip16));
  for (; k < n; ++k) d[k] = static_cast<char>(s[k] ^ Shift);
}

// `rows` rows of n bytes, src_stride and dst_stride bytes apart, with the sign bit flipped (or
// not): whole 64-byte chunks, then one masked chunk, so exactly n bytes are read and written. One
// call for a run of pixels' kernel rows (the conv gather), instead of a call per row.
template <int Shift>
NPUQ_TARGET_AVX512_VNNI void copy_rows_shifted_avx512(const void* src, std::int64_t src_stride, void* dst, std::int64_t dst_stride,
                                                      std::int64_t rows, std::int64_t n) {
  const auto* s = static_cast<const char*>(src);
  auto* d = static_cast<char*>(dst);
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(Shift));
  const std::int64_t whole = n / 64 * 64;
  const __mmask64 tail = (std::uint64_t{1} << (n % 64)) - 1;
  for (std::int64_t m = 0; m < rows; ++m, s += src_stride, d += dst_stride) {
    for (std::int64_t k = 0; k < whole; k += 64) _mm512_storeu_si512(d + k, _mm512_xor_si512(_mm512_loadu_si512(s + k), flip));
    if (tail != 0) _mm512_mask_storeu_epi8(d + whole, tail, _mm512_xor_si512(_mm512_maskz_loadu_epi8(tail, s + whole), flip));
  }
}

// `rows` rows of n <= Width bytes (Width 16 or 64), src_stride apart, to rows dst_stride apart
// with the sign bit flipped (or not): one masked load, XOR and Width-byte store per row. Every
// destination row must have Width bytes of room (the x86 GEMM driver's rows have 64: its lda is
// a multiple of 64; the conv gather's tap runs have 16); what lands past n is garbage the kernels
// never sum (see run_x86_dot_on).
template <int Shift, int Width>
NPUQ_TARGET_AVX512_VNNI void copy_short_rows_shifted_avx512(const void* src, std::int64_t src_stride, void* dst, std::int64_t dst_stride,
                                                            std::int64_t rows, std::int64_t n) {
  static_assert(Width == 16 || Width == 64, "copy_short_rows_shifted_avx512: 16 or 64 bytes");
  const auto* s = static_cast<const char*>(src);
  auto* d = static_cast<char*>(dst);
  if constexpr (Width == 64) {
    const __mmask64 keep = n >= 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
    const __m512i flip = _mm512_set1_epi8(static_cast<char>(Shift));
    for (std::int64_t m = 0; m < rows; ++m, s += src_stride, d += dst_stride)
      _mm512_storeu_si512(d, _mm512_xor_si512(_mm512_maskz_loadu_epi8(keep, s), flip));
  } else {
    const auto keep = static_cast<__mmask16>(n >= 16 ? 0xFFFF : (1u << n) - 1);
    const __m128i flip = _mm_set1_epi8(static_cast<char>(Shift));
    for (std::int64_t m = 0; m < rows; ++m, s += src_stride, d += dst_stride)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(d), _mm_xor_si128(_mm_maskz_loadu_epi8(keep, s), flip));
  }
}

}  // namespace simd_detail
}  // namespace npuq

NPUQ_AVX512_WARNINGS_ON

#endif
