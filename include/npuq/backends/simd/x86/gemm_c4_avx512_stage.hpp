// x86 c4 GEMM kernels with the output stage inside (AVX-512 VNNI's 8-row and AMX's 32-row tiles):
// runs of whole row tiles x 1 or 2 panels, 8-bit outputs.
//
// With a short reduction (a 1x1 convolution with K = 24, a first layer with K = 27) an output
// costs a handful of vpdpbusd, and what follows them decides the speed: calling the stage per
// tile, reloading its constants and narrowing each 16-lane row with its own vpmovdb cost more
// than the dot products. This kernel takes a run of row tiles against one group of panels: the
// stage's constants are loaded once, each tile's sums come from the int32-tile kernel through L1
// (gemm_c4_avx512_vnni not inlined: with the stage's constants live in the same function, GCC 12
// copies every accumulator on every K step; AMX tiles are stored there anyway), and four rows
// are narrowed at once with saturating packs and one vpermd. The q31 kinds requantize with requant_avx512, the arithmetic of the
// stage every other path uses, which clamps into the output's range before the packs. The fp32
// kind (the onnx profile) clamps after them instead, on 64 bytes at once: round(v * scale)
// saturates to int16, adds the zero point with int16 saturation and saturates to 8 bits, then
// the bytes are clamped to [lo, hi]. That equals clamp(round(v * scale), lo - zp, hi - zp) + zp
// whenever |zp| <= 511 (a value that saturates is more than 32000 beyond any 8-bit bound), and
// the driver (gemm.hpp) sends other zero points, partial tiles and other outputs through the
// int32-tile path.
#pragma once

#include <cstdint>

#include "npuq/backends/simd/gemm_pack.hpp"
#include "npuq/backends/simd/x86/output_stage_avx512.hpp"

#if defined(NPUQ_ARCH_X86_64)

NPUQ_AVX512_WARNINGS_OFF

namespace npuq {
namespace simd_detail {

// The largest zero point (in magnitude) the fp32 narrowing below is exact for.
constexpr std::int32_t stage_kernel_max_zero_point = 511;

// What the fp32 kind needs after the packs: the zero point (int16 lanes), the clamp (bytes).
struct stage_narrow_consts {
  __m512i zp16, lo8, hi8;
  NPUQ_TARGET_AVX512_VNNI explicit stage_narrow_consts(const output_stage& st) {
    zp16 = _mm512_set1_epi16(static_cast<short>(st.zero_point));
    lo8 = _mm512_set1_epi8(static_cast<char>(st.lo)), hi8 = _mm512_set1_epi8(static_cast<char>(st.hi));
  }
};

// round(v * scale) to nearest even, saturated to int32 (vcvtps2dq gives INT32_MIN for anything
// out of range, which is right below and wrong above: hence the min, which InRange leaves out for
// products known to stay below 2^30: tile_output_stage::fp32_in_range).
template <bool InRange = false>
NPUQ_TARGET_AVX512_VNNI inline __m512i scale_round_avx512(__m512i v, __m512 scale) {
  __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(v), scale);
  if (!InRange) f = _mm512_min_ps(f, _mm512_set1_ps(2147483520.0f));
  return _mm512_cvt_roundps_epi32(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

// Four rows of 16 lanes as 64 bytes, row i in 128-bit lane i. The packs interleave 4-byte groups
// across lanes; vpermd puts them back. Clamp: the fp32 kind's zero point and clamp (above).
template <bool Clamp>
NPUQ_TARGET_AVX512_VNNI inline __m512i narrow4_avx512(__m512i r0, __m512i r1, __m512i r2, __m512i r3, bool is_unsigned,
                                                      const stage_narrow_consts& n) {
  __m512i w01 = _mm512_packs_epi32(r0, r1), w23 = _mm512_packs_epi32(r2, r3);
  if (Clamp) w01 = _mm512_adds_epi16(w01, n.zp16), w23 = _mm512_adds_epi16(w23, n.zp16);
  __m512i bytes;
  if (is_unsigned) {
    bytes = _mm512_packus_epi16(w01, w23);
    if (Clamp) bytes = _mm512_min_epu8(_mm512_max_epu8(bytes, n.lo8), n.hi8);
  } else {
    bytes = _mm512_packs_epi16(w01, w23);
    if (Clamp) bytes = _mm512_min_epi8(_mm512_max_epi8(bytes, n.lo8), n.hi8);
  }
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  return _mm512_permutexvar_epi32(order, bytes);
}

// One row's 16 or 32 output bytes, the first bits of `keep` of them unless `full`.
NPUQ_TARGET_AVX512_VNNI inline void store_row_bytes(unsigned char* dst, __m128i v, bool full, std::uint32_t keep) {
  if (full) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), v);
  else _mm_mask_storeu_epi8(dst, static_cast<__mmask16>(keep), v);
}
NPUQ_TARGET_AVX512_VNNI inline void store_row_bytes(unsigned char* dst, __m256i v, bool full, std::uint32_t keep) {
  if (full) _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), v);
  else _mm256_mask_storeu_epi8(dst, static_cast<__mmask32>(keep), v);
}

// The output stage of kind Kind on `tiles` tiles of MR rows x NP panels whose int32 sums
// tile(i, c) writes ([panel][row][16], as the x86 c4 kernels do), tile i's output rows at
// out.rows[MR * i ...]; the first `cols` columns are written (columns [n0, n0 + cols) of the
// stage, 16 * (NP - 1) < cols <= 16 * NP), and the first `rows` rows of each tile (the others
// are computed and dropped).
// InRange: t.fp32_in_range (the fp32 kind's conversion without its clamp).
template <int MR, int NP, tile_requant Kind, bool InRange, class TileFn>
NPUQ_TARGET_AVX512_VNNI void stage_tiles_avx512_with(const TileFn& tile, const tile_output_stage& t, std::int64_t n0, std::int64_t cols,
                                                     const stage_tile_out& out, std::int64_t tiles, int rows) {
  static_assert(NP == 1 || NP == 2, "stage_tiles_avx512: 1 or 2 panels");
  static_assert(MR % 4 == 0, "stage_tiles_avx512: whole groups of four rows");
  constexpr bool fp32 = Kind == tile_requant::fp32_half_even;
  constexpr int step = NP == 2 ? 2 : 4;  // rows narrowed together: four 16-lane vectors
  // Locals: the stores below may alias `out` and `t`, which would reload them for every row.
  unsigned char* const base = out.base;
  const bool is_unsigned = out.is_unsigned;
  const avx512_stage_consts k(*t.st);
  const stage_narrow_consts nc(*t.st);
  const bool narrow = k.narrow;
  const bool full = cols >= 16 * NP;
  const auto keep = static_cast<std::uint32_t>(full ? ~std::uint64_t{0} : (std::uint64_t{1} << cols) - 1);  // bytes of a row
  __m512i bias[NP];
  const avx512_panel_consts pc0(t, static_cast<std::size_t>(n0));
  const avx512_panel_consts pc1(t, static_cast<std::size_t>(n0 + 16 * (NP - 1)));
#pragma GCC unroll 2
  for (int p = 0; p < NP; ++p) bias[p] = _mm512_loadu_si512(&t.bias[static_cast<std::size_t>(n0 + 16 * p)]);
  alignas(64) std::int32_t c[NP * MR * 16];
  for (std::int64_t i = 0; i < tiles; ++i) {
    const std::int64_t* row_at = out.rows + MR * i;
    tile(i, c);
#pragma GCC unroll 4
    for (int m = 0; m < MR; m += step) {
      if (m >= rows) break;
      __m512i r[4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {  // two panels: (m, 0), (m, 1), (m + 1, 0), (m + 1, 1); one: rows m .. m + 3
        const int p = NP == 2 ? j % 2 : 0, row = NP == 2 ? m + j / 2 : m + j;
        __m512i v = _mm512_add_epi32(_mm512_load_si512(c + (p * MR + row) * 16), bias[p]);
        const avx512_panel_consts& pc = p == 0 ? pc0 : pc1;
        if (fp32) {
          if (narrow) v = _mm512_srav_epi32(_mm512_sllv_epi32(v, k.vdrop), k.vdrop);
          r[j] = scale_round_avx512<InRange>(v, pc.scale);
        } else {
          r[j] = requant_avx512<Kind>(v, pc, k);
        }
      }
      const __m512i v = narrow4_avx512<fp32>(r[0], r[1], r[2], r[3], is_unsigned, nc);
      if (m + step <= rows) {
        if constexpr (NP == 2) {  // rows m and m + 1, 32 bytes each
          store_row_bytes(base + row_at[m], _mm512_castsi512_si256(v), full, keep);
          store_row_bytes(base + row_at[m + 1], _mm512_extracti64x4_epi64(v, 1), full, keep);
        } else {  // rows m .. m + 3, 16 bytes each
          store_row_bytes(base + row_at[m], _mm512_castsi512_si128(v), full, keep);
          store_row_bytes(base + row_at[m + 1], _mm512_extracti32x4_epi32(v, 1), full, keep);
          store_row_bytes(base + row_at[m + 2], _mm512_extracti32x4_epi32(v, 2), full, keep);
          store_row_bytes(base + row_at[m + 3], _mm512_extracti32x4_epi32(v, 3), full, keep);
        }
      } else {  // the last rows of a partial tile, one 128-bit lane (NP = 1) or half (NP = 2) each
        alignas(64) unsigned char bytes[64];
        _mm512_store_si512(bytes, v);
        for (int j = m; j < rows; ++j) {
          unsigned char* src = bytes + (j - m) * 16 * NP;
          if constexpr (NP == 2) store_row_bytes(base + row_at[j], _mm256_load_si256(reinterpret_cast<const __m256i*>(src)), full, keep);
          else store_row_bytes(base + row_at[j], _mm_load_si128(reinterpret_cast<const __m128i*>(src)), full, keep);
        }
      }
    }
  }
}

template <int MR, int NP, tile_requant Kind, class TileFn>
void stage_tiles_avx512(const TileFn& tile, const tile_output_stage& t, std::int64_t n0, std::int64_t cols, const stage_tile_out& out,
                        std::int64_t tiles, int rows = MR) {
  if constexpr (Kind == tile_requant::fp32_half_even) {
    if (t.fp32_in_range) return stage_tiles_avx512_with<MR, NP, Kind, true>(tile, t, n0, cols, out, tiles, rows);
  }
  stage_tiles_avx512_with<MR, NP, Kind, false>(tile, t, n0, cols, out, tiles, rows);
}

// `tiles` tiles of MR rows x np panels, the first `rows` rows of each stored, through
// stage_tiles_avx512 of the kind with stage_kernel_index `kind` (0-2).
template <int MR, class TileFn>
void stage_tiles_dispatch(int kind, int np, const TileFn& tile, const tile_output_stage& t, std::int64_t n0, std::int64_t cols,
                          const stage_tile_out& out, std::int64_t tiles, int rows) {
  constexpr auto q31_double = tile_requant::q31_double, q31_half_up = tile_requant::q31_half_up, fp32 = tile_requant::fp32_half_even;
  if (np == 2) {
    if (kind == 0) return stage_tiles_avx512<MR, 2, q31_double>(tile, t, n0, cols, out, tiles, rows);
    if (kind == 1) return stage_tiles_avx512<MR, 2, q31_half_up>(tile, t, n0, cols, out, tiles, rows);
    return stage_tiles_avx512<MR, 2, fp32>(tile, t, n0, cols, out, tiles, rows);
  }
  if (kind == 0) return stage_tiles_avx512<MR, 1, q31_double>(tile, t, n0, cols, out, tiles, rows);
  if (kind == 1) return stage_tiles_avx512<MR, 1, q31_half_up>(tile, t, n0, cols, out, tiles, rows);
  return stage_tiles_avx512<MR, 1, fp32>(tile, t, n0, cols, out, tiles, rows);
}

// C = A x B and the stage for `tiles` tiles of MR rows (tile i's A rows from a + MR * i * lda)
// and NP panels: stage_tiles_avx512 around the int32-tile kernel Dot (an x86 c4 kernel of MR
// rows: AVX-512 VNNI's 8, AMX's 32), whose operands are the ones passed here.
template <int MR, int NP, class B, tile_requant Kind,
          void (*Dot)(std::int64_t, const dot_a_t<B>*, std::int64_t, const B*, std::int64_t, std::int32_t*)>
NPUQ_TARGET_AVX512_VNNI void gemm_c4_stage_avx512(std::int64_t kg, const dot_a_t<B>* a, std::int64_t lda, const B* b, std::int64_t ldp,
                                                  const tile_output_stage& t, std::int64_t n0, std::int64_t cols, const stage_tile_out& out,
                                                  std::int64_t tiles) {
  stage_tiles_avx512<MR, NP, Kind>([=](std::int64_t i, std::int32_t* c) { Dot(kg, a + MR * i * lda, lda, b, ldp, c); }, t, n0, cols, out, tiles);
}

}  // namespace simd_detail
}  // namespace npuq

NPUQ_AVX512_WARNINGS_ON

#endif
