// AVX-512 VNNI kernels of attention decode: the AVX2 kernels' two streaming passes
// (x86/attention_decode_avx2.hpp) on vpdpbusd, 64 bytes of K or V per instruction.
//
// vpdpbusd multiplies unsigned bytes by signed bytes and adds groups of four exact products to
// int32 lanes without saturation (vpmaddubsw would saturate), so both passes stay bit-exact as
// long as each side is written in its own signedness:
//   dot_rows:  scores[t] = sum_i q[i] * k[t][i]. K is the unsigned side: uint8 as is, int8 with
//              its sign bit flipped (k + 128), which adds 128 * sum(q) to every score; the kernel
//              subtracts it. q (8-bit Q minus its zero point) is the signed side: one byte when
//              every value is in [-128, 127], else two, x = ceil(x / 2) + floor(x / 2), with two
//              vpdpbusd per vector; a q reaching 255 is negated first (q - zq spans at most 255
//              values, so -q then fits) and the scores negated back. Rows go 16 at a time, one
//              accumulator each, reduced together (a transpose-and-add tree) into one vector of
//              16 scores.
//   axpy_rows: acc[j] += w[t] * v[t][j]. w (P - zp, 0..255) is the unsigned side, broadcast as
//              the 4 bytes of 4 rows; V is the signed side: int8 as is, uint8 with its sign bit
//              flipped (v - 128), which subtracts 128 * sum(w) from every column; the kernel adds
//              it back. vpunpck{l,h}bw / {l,h}wd interleave 4 rows' bytes into the 4-byte groups,
//              so each vpdpbusd adds 4 rows x 16 columns; the lane order that leaves is undone
//              once, with a 4 x 4 transpose of 128-bit blocks, at the end.
// When 64 does not divide a row, its last vector ends at the row's end and overlaps the one
// before (the overlap counted once: its q is 0, its sums are not stored); rows shorter than 64
// run the AVX2 kernels. Sums wrap at 32 bits, as the simd backend's contract requires; the
// corrections are exact modulo 2^32.
// The output stage over rows of 16 sums is the AVX-512 one (x86/output_stage_avx512.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "npuq/backends/simd/output_stage.hpp"
#include "npuq/backends/simd/x86/attention_decode_avx2.hpp"
#include "npuq/backends/simd/x86/intrin.hpp"
#include "npuq/backends/simd/x86/output_stage_avx512.hpp"

#if defined(NPUQ_ARCH_X86_64)

NPUQ_AVX512_WARNINGS_OFF

namespace npuq {
namespace simd_detail {

// Lane r of the result = the sum of the 16 int32 lanes of v[r], r < 16.
NPUQ_TARGET_AVX512_VNNI inline __m512i reduce16_avx512(const __m512i* v) {
  __m512i quad[4];  // quad[g], 128-bit block b: rows 4g..4g+3 summed over block b of each
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    const __m512i* x = v + 4 * g;
    const __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(x[0], x[1]), _mm512_unpackhi_epi32(x[0], x[1]));
    const __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(x[2], x[3]), _mm512_unpackhi_epi32(x[2], x[3]));
    quad[g] = _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
  }
  // Blocks (0, 2) and (1, 3) of two vectors side by side, added: half the blocks, twice the rows.
  const __m512i h01 = _mm512_add_epi32(_mm512_shuffle_i32x4(quad[0], quad[1], 0x88), _mm512_shuffle_i32x4(quad[0], quad[1], 0xDD));
  const __m512i h23 = _mm512_add_epi32(_mm512_shuffle_i32x4(quad[2], quad[3], 0x88), _mm512_shuffle_i32x4(quad[2], quad[3], 0xDD));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(h01, h23, 0x88), _mm512_shuffle_i32x4(h01, h23, 0xDD));
}

// 64 values of q (negated when `negate`) as signed bytes: whole in a (b = 0), or, when
// `split`, as ceil(x / 2) in a and floor(x / 2) in b.
NPUQ_TARGET_AVX512_VNNI inline void q_bytes_avx512(const std::int16_t* q, bool negate, bool split, std::int8_t* a, std::int8_t* b) {
  __m512i x0 = _mm512_loadu_si512(q), x1 = _mm512_loadu_si512(q + 32);
  if (negate) {
    x0 = _mm512_sub_epi16(_mm512_setzero_si512(), x0);
    x1 = _mm512_sub_epi16(_mm512_setzero_si512(), x1);
  }
  __m512i f0 = _mm512_setzero_si512(), f1 = f0;
  if (split) {
    f0 = _mm512_srai_epi16(x0, 1);
    f1 = _mm512_srai_epi16(x1, 1);
    x0 = _mm512_sub_epi16(x0, f0);
    x1 = _mm512_sub_epi16(x1, f1);
  }
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(a), _mm512_cvtepi16_epi8(x0));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(a + 32), _mm512_cvtepi16_epi8(x1));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(b), _mm512_cvtepi16_epi8(f0));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(b + 32), _mm512_cvtepi16_epi8(f1));
}

// The 16 sums of rows base + r * stride (r < rows; a short block repeats its last row) against
// the chunks of 64 bytes at col[c] and the q bytes qa, qb + 64 * c, c < chunks.
template <class KV, bool Split, bool Full>
NPUQ_TARGET_AVX512_VNNI inline __m512i dot_block16_avx512(const KV* base, std::int64_t stride, int rows, const std::int8_t* qa,
                                                          const std::int8_t* qb, const std::int64_t* col, int chunks) {
  constexpr bool flip = std::is_same<KV, std::int8_t>::value;  // int8 K read as k + 128
  const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i acc[16];
#pragma GCC unroll 16
  for (int r = 0; r < 16; ++r) acc[r] = _mm512_setzero_si512();
  for (int c = 0; c < chunks; ++c) {
    const __m512i a = _mm512_loadu_si512(qa + 64 * c), b = _mm512_loadu_si512(qb + 64 * c);
    const KV* p = base + col[c];
#pragma GCC unroll 16
    for (int r = 0; r < 16; ++r) {
      _mm_prefetch(reinterpret_cast<const char*>(p + 64 * stride), _MM_HINT_T0);  // 4 blocks ahead (KV caches outgrow L2)
      __m512i kv = _mm512_loadu_si512(p);
      if (flip) kv = _mm512_xor_si512(kv, sign);
      acc[r] = _mm512_dpbusd_epi32(acc[r], kv, a);
      if (Split) acc[r] = _mm512_dpbusd_epi32(acc[r], kv, b);
      p += Full || r + 1 < rows ? stride : 0;
    }
  }
  return reduce16_avx512(acc);
}

// dot_rows_avx512_vnni with the byte form of q chosen (d >= 64). A row is read in whole vectors;
// when 64 does not divide d the last one ends at the row's end and overlaps the one before, with
// the overlapped columns' q set to 0. Columns go in panels of up to 8 vectors (the q bytes of a
// panel on the stack), each panel one pass over the rows adding to out.
template <class KV, bool Split>
NPUQ_TARGET_AVX512_VNNI void dot_rows_vnni(const std::int16_t* q, const KV* k, std::int64_t stride, std::int64_t d, std::int64_t n,
                                           bool negate, std::uint32_t* out) {
  constexpr bool flip = std::is_same<KV, std::int8_t>::value;
  constexpr int panel = 8;
  const std::int64_t chunks = (d + 63) / 64, last = d - 64;
  alignas(64) std::int16_t q_last[64] = {};  // q over [last, d), 0 where an earlier chunk has the column
  const std::int64_t overlap = 64 * chunks - d;
  std::memcpy(q_last + overlap, q + last + overlap, sizeof(std::int16_t) * static_cast<std::size_t>(64 - overlap));
  alignas(64) std::int8_t qa[64 * panel], qb[64 * panel];
  std::int64_t col[panel];
  for (std::int64_t c0 = 0; c0 < chunks; c0 += panel) {
    const int m = static_cast<int>(std::min<std::int64_t>(chunks - c0, panel));
    std::uint32_t q_sum = 0;  // the sum of the panel's values written as bytes
    for (int c = 0; c < m; ++c) {
      const bool is_last = c0 + c + 1 == chunks;
      const std::int16_t* src = is_last ? q_last : q + 64 * (c0 + c);
      col[c] = is_last ? last : 64 * (c0 + c);
      q_bytes_avx512(src, negate, Split, qa + 64 * c, qb + 64 * c);
      for (int j = 0; j < 64; ++j) q_sum += static_cast<std::uint32_t>(src[j]);
    }
    if (negate) q_sum = 0u - q_sum;
    const __m512i correction = _mm512_set1_epi32(flip ? static_cast<std::int32_t>(q_sum * 128u) : 0);
    for (std::int64_t t0 = 0; t0 < n; t0 += 16) {
      const int rows = static_cast<int>(std::min<std::int64_t>(n - t0, 16));
      const KV* base = k + t0 * stride;
      __m512i s = rows == 16 ? dot_block16_avx512<KV, Split, true>(base, stride, rows, qa, qb, col, m)
                             : dot_block16_avx512<KV, Split, false>(base, stride, rows, qa, qb, col, m);
      s = _mm512_sub_epi32(s, correction);
      if (negate) s = _mm512_sub_epi32(_mm512_setzero_si512(), s);
      alignas(64) std::uint32_t sums[16] = {};  // the earlier panels' sums of a short block
      if (c0 > 0 && rows < 16) std::memcpy(sums, out + t0, sizeof(std::uint32_t) * static_cast<std::size_t>(rows));
      if (c0 > 0) s = _mm512_add_epi32(s, rows == 16 ? _mm512_loadu_si512(out + t0) : _mm512_load_si512(sums));
      if (rows == 16) _mm512_storeu_si512(out + t0, s);
      else _mm512_mask_storeu_epi32(out + t0, static_cast<__mmask16>((1u << rows) - 1), s);
    }
  }
}

// Whether a lane of v is above t (below t).
NPUQ_TARGET_AVX512_VNNI inline bool any_above_epi16(__m512i v, int t) {
  return _mm512_cmpge_epi16_mask(v, _mm512_set1_epi16(static_cast<short>(t + 1))) != 0;
}
NPUQ_TARGET_AVX512_VNNI inline bool any_below_epi16(__m512i v, int t) {
  return _mm512_cmple_epi16_mask(v, _mm512_set1_epi16(static_cast<short>(t - 1))) != 0;
}

// out[t] = sum_i q[i] * row_t[i] (mod 2^32) for rows k + t * stride, t < n; q has d int16 values,
// each an 8-bit value minus its zero point (so within 255 of each other).
template <class KV>
NPUQ_TARGET_AVX512_VNNI void dot_rows_avx512_vnni(const std::int16_t* q, const KV* k, std::int64_t stride, std::int64_t d, std::int64_t n,
                                                  std::uint32_t* out) {
  if (d < 64) return dot_rows_avx2(q, k, stride, d, n, out);
  // Lane-wise min and max of q (the last 32 overlapping), then the byte form from their masks.
  __m512i lo = _mm512_loadu_si512(q + d - 32), hi = lo;
  for (std::int64_t i = 0; i + 32 < d; i += 32) {
    lo = _mm512_min_epi16(lo, _mm512_loadu_si512(q + i));
    hi = _mm512_max_epi16(hi, _mm512_loadu_si512(q + i));
  }
  // x = q or -q must lie in [-256, 254] (two signed bytes), in [-128, 127] for one.
  const bool negate = any_above_epi16(hi, 254);
  const bool fits = negate ? !any_above_epi16(hi, 256) && !any_below_epi16(lo, -254) : !any_below_epi16(lo, -256);
  const bool split =
      negate ? any_above_epi16(hi, 128) || any_below_epi16(lo, -127) : any_above_epi16(hi, 127) || any_below_epi16(lo, -128);
  if (!fits) return dot_rows_avx2(q, k, stride, d, n, out);
  if (split) dot_rows_vnni<KV, true>(q, k, stride, d, n, negate, out);
  else dot_rows_vnni<KV, false>(q, k, stride, d, n, negate, out);
}

// acc[j] += w[i] * v[key[i]][j] (mod 2^32) for i < n and the columns j in [keep, c0 + 64 * C) of
// the C chunks of 64 starting at c0; `bias` is added to each (the sign-flip correction).
template <int C, class KV>
NPUQ_TARGET_AVX512_VNNI void axpy_rows_block_avx512(const std::uint8_t* w, const std::int32_t* key, std::int64_t n, const KV* v,
                                                    std::int64_t stride, std::int64_t c0, std::int64_t keep, std::uint32_t bias,
                                                    std::uint32_t* acc) {
  constexpr bool flip = std::is_same<KV, std::uint8_t>::value;  // uint8 V read as v - 128
  const __m512i sign = _mm512_set1_epi8(static_cast<char>(0x80));
  __m512i a[C][4];  // a[c][g], lane 4 * b + j: column 64c + 16b + 4g + j
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c)
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) a[c][g] = _mm512_setzero_si512();
  for (std::int64_t i = 0; i < n; i += 4) {
    const int m = static_cast<int>(std::min<std::int64_t>(n - i, 4));
    const KV* r[4];
    std::uint32_t wq = 0;  // the 4 rows' weights as the bytes of one lane (0 for missing rows)
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
      r[j] = v + key[i + (j < m ? j : 0)] * stride + c0;
      wq |= (j < m ? std::uint32_t{w[i + j]} : 0u) << (8 * j);
    }
    const __m512i wv = _mm512_set1_epi32(static_cast<std::int32_t>(wq));
#pragma GCC unroll 4
    for (int c = 0; c < C; ++c) {
      __m512i x[4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        x[j] = _mm512_loadu_si512(r[j] + 64 * c);
        if (flip) x[j] = _mm512_xor_si512(x[j], sign);
      }
      const __m512i lo01 = _mm512_unpacklo_epi8(x[0], x[1]), hi01 = _mm512_unpackhi_epi8(x[0], x[1]);
      const __m512i lo23 = _mm512_unpacklo_epi8(x[2], x[3]), hi23 = _mm512_unpackhi_epi8(x[2], x[3]);
      a[c][0] = _mm512_dpbusd_epi32(a[c][0], wv, _mm512_unpacklo_epi16(lo01, lo23));
      a[c][1] = _mm512_dpbusd_epi32(a[c][1], wv, _mm512_unpackhi_epi16(lo01, lo23));
      a[c][2] = _mm512_dpbusd_epi32(a[c][2], wv, _mm512_unpacklo_epi16(hi01, hi23));
      a[c][3] = _mm512_dpbusd_epi32(a[c][3], wv, _mm512_unpackhi_epi16(hi01, hi23));
    }
  }
  const __m512i vbias = _mm512_set1_epi32(static_cast<std::int32_t>(bias));
#pragma GCC unroll 4
  for (int c = 0; c < C; ++c) {
    // Block b of the columns 64c + 16b.. is block b of a[c][0..3], in that order.
    const __m512i t01 = _mm512_shuffle_i32x4(a[c][0], a[c][1], 0x44), t23 = _mm512_shuffle_i32x4(a[c][2], a[c][3], 0x44);
    const __m512i u01 = _mm512_shuffle_i32x4(a[c][0], a[c][1], 0xEE), u23 = _mm512_shuffle_i32x4(a[c][2], a[c][3], 0xEE);
    const __m512i col[4] = {_mm512_shuffle_i32x4(t01, t23, 0x88), _mm512_shuffle_i32x4(t01, t23, 0xDD),
                            _mm512_shuffle_i32x4(u01, u23, 0x88), _mm512_shuffle_i32x4(u01, u23, 0xDD)};
#pragma GCC unroll 4
    for (int b = 0; b < 4; ++b) {
      const std::int64_t j0 = c0 + 64 * c + 16 * b;
      if (j0 + 16 <= keep) continue;
      std::uint32_t* o = acc + j0;
      const __m512i sum = _mm512_add_epi32(_mm512_loadu_si512(o), _mm512_add_epi32(col[b], vbias));
      if (j0 >= keep) _mm512_storeu_si512(o, sum);
      else _mm512_mask_storeu_epi32(o, static_cast<__mmask16>(0xFFFFu << (keep - j0)), sum);
    }
  }
}

template <class KV>
NPUQ_TARGET_AVX512_VNNI void axpy_rows_avx512_vnni(const std::uint8_t* w, const std::int32_t* key, std::int64_t n, const KV* v,
                                                   std::int64_t stride, std::int64_t dv, std::uint32_t* acc) {
  if (dv < 64) return axpy_rows_avx2(w, key, n, v, stride, dv, acc);
  std::uint32_t bias = 0;
  if (std::is_same<KV, std::uint8_t>::value)
    for (std::int64_t i = 0; i < n; ++i) bias += 128u * w[i];
  std::int64_t c0 = 0;
  for (; c0 + 128 <= dv; c0 += 128) axpy_rows_block_avx512<2>(w, key, n, v, stride, c0, c0, bias, acc);
  if (dv - c0 >= 64) {
    axpy_rows_block_avx512<1>(w, key, n, v, stride, c0, c0, bias, acc);
    c0 += 64;
  }
  // The last columns: the 64 that end the row, adding only those not done yet.
  if (c0 < dv) axpy_rows_block_avx512<1>(w, key, n, v, stride, dv - 64, c0, bias, acc);
}

// The decode driver's output stage (tile_apply_fn) on the AVX-512 one: rows of 16 sums to int32.
inline void apply_tile_rows_avx512(const tile_output_stage& t, const std::int32_t* c, int rows, std::int64_t n0,
                                   std::int64_t first_channel, std::int64_t cols, std::int32_t* out) {
  if (!avx512_stage_supported(t)) return apply_tile_portable(t, c, rows, n0, first_channel, cols, out);
  store_tile_avx512_strided(t, c, rows, n0, cols, out, 16);
}

}  // namespace simd_detail
}  // namespace npuq

NPUQ_AVX512_WARNINGS_ON

#endif
