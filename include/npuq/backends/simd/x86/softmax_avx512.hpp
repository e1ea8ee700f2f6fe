// AVX-512 softmax rows: every pass of the table softmax (simd/softmax.hpp) 64 bytes at a time,
// the lookups included.
//
// The AVX2 level vectorizes only the output table and the scan for non-zero outputs; its
// per-element lookups (the sum's terms, each output) stay scalar and are most of a row's time.
// AVX-512BW can look up 32 entries of a 256-entry table of 16-bit values at once: vpermt2w
// selects from 64 entries (two registers) by the index's low 6 bits, and two of its bits pick
// one of four such results (lookup256_epi16). With that:
//   range:   the row's min and max with vpminsb / vpmaxsb (vpminub / vpmaxub for uint8).
//   sum:     the terms RoundingDivideByPOT(e, 12) <= 2^19 do not fit 16 bits, so they are looked
//            up as term mod 2^14 and term / 2^14 and summed with vpdpwssd against (1, 2^14)
//            pairs: exact int32 lanes, widened to 64 bits before they could overflow.
//   outputs: the output stage's SRDHM and rounding divide (output_stage_avx512.hpp) on 16 exp
//            entries per instruction, narrowed straight into the byte table.
//   map:     each output byte looked up in that table (sign-extended to 16 bits for vpermt2w).
//   scan:    vpcmpgtb on 64 scores, one mask bit each.
// All integer steps are the reference's; the results are its bits. Row tails (n mod 64) are
// scalar.
#pragma once

#include <cstdint>
#include <type_traits>

#include "npuq/backends/simd/x86/intrin.hpp"
#include "npuq/backends/simd/x86/output_stage_avx512.hpp"

#if defined(NPUQ_ARCH_X86_64)

NPUQ_AVX512_WARNINGS_OFF

namespace npuq {
namespace simd_detail {

// table[idx] for the 32 16-bit indices in idx (bits 0-7 used), table = 8 registers of 32 entries.
NPUQ_TARGET_AVX512_VNNI inline __m512i lookup256_epi16(const __m512i* table, __m512i idx) {
  const auto b6 = _mm512_test_epi16_mask(idx, _mm512_set1_epi16(64)), b7 = _mm512_test_epi16_mask(idx, _mm512_set1_epi16(128));
  const __m512i lo = _mm512_mask_blend_epi16(b6, _mm512_permutex2var_epi16(table[0], idx, table[1]),
                                             _mm512_permutex2var_epi16(table[2], idx, table[3]));
  const __m512i hi = _mm512_mask_blend_epi16(b6, _mm512_permutex2var_epi16(table[4], idx, table[5]),
                                             _mm512_permutex2var_epi16(table[6], idx, table[7]));
  return _mm512_mask_blend_epi16(b7, lo, hi);
}

// Byte-wise max (Max) or min of a and b in the signedness of I.
template <class I, bool Max>
NPUQ_TARGET_AVX512_VNNI inline __m512i extreme_bytes(__m512i a, __m512i b) {
  constexpr bool u = std::is_same<I, std::uint8_t>::value;
  if constexpr (Max) return u ? _mm512_max_epu8(a, b) : _mm512_max_epi8(a, b);
  else return u ? _mm512_min_epu8(a, b) : _mm512_min_epi8(a, b);
}

// The max (Max) or min of the 64 bytes of v, in the signedness of I.
template <class I, bool Max>
NPUQ_TARGET_AVX512_VNNI inline std::int32_t reduce_bytes(__m512i v) {
  v = extreme_bytes<I, Max>(v, _mm512_shuffle_i32x4(v, v, 0x4E));  // halves of 256 bits
  v = extreme_bytes<I, Max>(v, _mm512_shuffle_i32x4(v, v, 0xB1));  // 128-bit blocks
  v = extreme_bytes<I, Max>(v, _mm512_unpackhi_epi64(v, v));       // then within the low block (only
  v = extreme_bytes<I, Max>(v, _mm512_srli_epi64(v, 32));          // byte 0 counts, so the zeros
  v = extreme_bytes<I, Max>(v, _mm512_srli_epi32(v, 16));          // shifted in do not matter)
  v = extreme_bytes<I, Max>(v, _mm512_srli_epi16(v, 8));
  return static_cast<I>(_mm_cvtsi128_si32(_mm512_castsi512_si128(v)) & 0xFF);
}

// The min and max of in[0, n), n >= 1.
template <class I>
NPUQ_TARGET_AVX512_VNNI void row_range_avx512(const I* in, std::int64_t n, std::int32_t* lo, std::int32_t* hi) {
  if (n < 64) {
    std::int32_t mn = in[0], mx = in[0];
    for (std::int64_t i = 1; i < n; ++i) {
      mx = in[i] > mx ? in[i] : mx;
      mn = in[i] < mn ? in[i] : mn;
    }
    *lo = mn;
    *hi = mx;
    return;
  }
  __m512i vmax = _mm512_loadu_si512(in + n - 64), vmin = vmax;  // the last 64 (overlapping is harmless)
  for (std::int64_t i = 0; i + 64 < n; i += 64) {
    const __m512i x = _mm512_loadu_si512(in + i);
    vmax = extreme_bytes<I, true>(vmax, x);
    vmin = extreme_bytes<I, false>(vmin, x);
  }
  *lo = reduce_bytes<I, false>(vmin);
  *hi = reduce_bytes<I, true>(vmax);
}

// sum over x in in[0, n) of term(x - max), where term(d) = term_lo[d + 255] + 2^14 * term_hi[d + 255]
// (term_lo < 2^14, term_hi <= 32) for d in [-255, 0].
template <class I>
NPUQ_TARGET_AVX512_VNNI std::int64_t sum_terms_avx512(const std::uint16_t* term_lo, const std::uint16_t* term_hi, const I* in,
                                                      std::int64_t n, std::int32_t max) {
  __m512i lo[8], hi[8];
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) {
    lo[k] = _mm512_loadu_si512(term_lo + 32 * k);
    hi[k] = _mm512_loadu_si512(term_hi + 32 * k);
  }
  const __m512i to_index = _mm512_set1_epi8(static_cast<char>(255 - max));  // x -> x - max + 255, mod 256
  const __m512i zero = _mm512_setzero_si512(), low32 = _mm512_set1_epi64(0xFFFFFFFF);
  const __m512i ones = _mm512_set1_epi16(1), scale = _mm512_set1_epi16(1 << 14);
  __m512i wide = zero;  // 8 x int64
  std::int64_t i = 0;
  while (i + 64 <= n) {
    // Each block adds 4 terms (<= 2^21) to each int32 lane: 512 blocks stay below 2^31.
    __m512i acc = zero;
    for (int b = 0; b < 512 && i + 64 <= n; ++b, i += 64) {
      const __m512i j = _mm512_add_epi8(_mm512_loadu_si512(in + i), to_index);
      const __m512i j0 = _mm512_unpacklo_epi8(j, zero), j1 = _mm512_unpackhi_epi8(j, zero);  // any order will do
      acc = _mm512_dpwssd_epi32(acc, lookup256_epi16(lo, j0), ones);
      acc = _mm512_dpwssd_epi32(acc, lookup256_epi16(hi, j0), scale);
      acc = _mm512_dpwssd_epi32(acc, lookup256_epi16(lo, j1), ones);
      acc = _mm512_dpwssd_epi32(acc, lookup256_epi16(hi, j1), scale);
    }
    wide = _mm512_add_epi64(wide, _mm512_add_epi64(_mm512_and_si512(acc, low32), _mm512_srli_epi64(acc, 32)));
  }
  alignas(64) std::int64_t lanes[8];
  _mm512_store_si512(lanes, wide);
  std::int64_t s = 0;
  for (int k = 0; k < 8; ++k) s += lanes[k];
  for (; i < n; ++i) {
    const std::int32_t d = in[i] - max + 255;
    s += term_lo[d] + (std::int64_t{term_hi[d]} << 14);
  }
  return s;
}

// lut[i] = clamp(RDBPOT(SRDHM(recip, e[i]), shift) + qmin, qmin, qmax) as a byte for i < count,
// in whole vectors of 16 (e and lut need room for count rounded up to 16, e zeros past count).
// Returns the first i whose output is above qmin, count if none.
NPUQ_TARGET_AVX512_VNNI inline std::int32_t softmax_outputs_avx512(const std::int32_t* e, std::int32_t count, std::int32_t recip, int shift,
                                                                   std::int32_t qmin, std::int32_t qmax, std::uint8_t* lut) {
  const __m512i m = _mm512_set1_epi32(recip), s = _mm512_set1_epi32(shift);
  const __m512i lo = _mm512_set1_epi32(qmin), hi = _mm512_set1_epi32(qmax);
  std::int32_t first = count;
  for (std::int32_t i = 0; i < count; i += 16) {
    const __m512i v = _mm512_add_epi32(rdbpot_avx512(srdhm_avx512(_mm512_loadu_si512(e + i), m), s), lo);
    const __m512i o = _mm512_min_epi32(_mm512_max_epi32(v, lo), hi);
    store_lanes_avx512(lut + i, o, static_cast<__mmask16>(0xFFFF));
    const auto above = static_cast<std::uint32_t>(_mm512_cmpgt_epi32_mask(o, lo));
    if (first == count && above != 0) first = i + __builtin_ctz(above);
  }
  return first < count ? first : count;
}

// out[i] = lut[in[i] - base] for i < n (lut holds 256 bytes).
template <class I, class O>
NPUQ_TARGET_AVX512_VNNI void softmax_map_avx512(const std::uint8_t* lut, const I* in, std::int64_t n, std::int32_t base, O* out) {
  __m512i table[8];
#pragma GCC unroll 8
  for (int k = 0; k < 8; ++k) table[k] = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + 32 * k)));
  const __m512i to_index = _mm512_set1_epi8(static_cast<char>(base));
  std::int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i j = _mm512_sub_epi8(_mm512_loadu_si512(in + i), to_index);
    // Sign extension keeps the index bits (0-7) that lookup256_epi16 reads.
    const __m512i o0 = lookup256_epi16(table, _mm512_cvtepi8_epi16(_mm512_castsi512_si256(j)));
    const __m512i o1 = lookup256_epi16(table, _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(j, 1)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm512_cvtepi16_epi8(o0));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i + 32), _mm512_cvtepi16_epi8(o1));
  }
  for (; i < n; ++i) out[i] = static_cast<O>(lut[in[i] - base]);
}

// Bit j set when in[j] > low, for the 64 int8 values at in.
NPUQ_TARGET_AVX512_VNNI inline std::uint64_t greater_mask_avx512(const std::int8_t* in, std::int8_t low) {
  return static_cast<std::uint64_t>(_mm512_cmpgt_epi8_mask(_mm512_loadu_si512(in), _mm512_set1_epi8(low)));
}

}  // namespace simd_detail
}  // namespace npuq

NPUQ_AVX512_WARNINGS_ON

#endif
