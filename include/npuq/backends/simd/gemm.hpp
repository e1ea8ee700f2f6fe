// simd GEMM: the kernels of each family, the cache-blocked drivers, and the output stage.
//
// Both drivers pack a block of A rows once (up to 192 KiB: int16 values a - za for the c2
// kernels, bytes for the 8-bit formats, see gemm_pack.hpp) and run every row tile of the block
// against one panel (or group of panels) of the packed weights before moving on, so a panel stays
// in L1 while the block stays in L2. The int32 tile then goes through the same output stage as
// the reference (bias, accumulator width, requantization, clamp), so the requantized integers
// are the reference's by construction. The convolution path (conv2d.hpp) reuses the drivers with
// a gathering A packer.
//
// Each family's kernels read one packed format (gemm_pack.hpp): c2 for portable, avx2 and neon
// (16-bit products), c4 for neon_dotprod (SDOT/UDOT) and the x86 VNNI / AMX families, c8 for
// neon_i8mm (SMMLA/UMMLA). The 8-bit formats get their zero-point compensation from the driver.
//
// Profiles whose accumulator saturates or is wider than 32 bits depend on the order of every
// single addition; the simd backend runs those on the reference kernels (kernel name
// "..._reference") instead of computing something different.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "npuq/backends/scalar/gemm.hpp"
#include "npuq/core/level_table.hpp"
#include "npuq/backends/simd/backend.hpp"
#include "npuq/backends/simd/gemm_pack.hpp"
#include "npuq/backends/simd/output_stage.hpp"
#include "npuq/backends/simd/portable/gemm_c2.hpp"
#include "npuq/backends/simd/arm/gemm_c2_neon.hpp"
#include "npuq/backends/simd/arm/gemm_c4_dotprod.hpp"
#include "npuq/backends/simd/arm/gemm_c8_i8mm.hpp"
#include "npuq/backends/simd/x86/gemm_c2_avx2.hpp"
#include "npuq/backends/simd/x86/gemm_c4_amx.hpp"
#include "npuq/backends/simd/x86/gemm_c4_vnni.hpp"
#include "npuq/backends/simd/x86/output_stage_avx512.hpp"
#include "npuq/ops/gemm_problem.hpp"

namespace npuq {
namespace simd_detail {

constexpr int mr = 4;  // rows per tile of the portable c2 and NEON kernels
constexpr int max_mr = 16;  // rows per tile of any x86 c4 kernel (AMX: 16)

inline const char* type_code(dtype t) { return t == dtype::u8 ? "u8" : "s8"; }

// True when int32 wrap-around arithmetic reproduces the profile's accumulator exactly.
inline bool wraps_within_32_bits(const numerics_profile& p) {
  return p.acc.overflow == overflow_rule::wrap && p.acc.bits <= 32;
}

template <class B>
using c2_kernel = void (*)(std::int64_t, const std::int16_t*, const B*, const std::int16_t*, std::int32_t*);
// NEON c4 / c8 kernels: (K groups, A block of bytes in B's type, panel, MR x 16 int32 sums).
template <class B>
using dot_kernel = void (*)(std::int64_t, const B*, const B*, std::int32_t*);
// x86 c4 kernels (x86/gemm_c4_vnni.hpp, x86/gemm_c4_amx.hpp): (K groups, A rows of bytes in
// dot_a_t<B> with stride lda, first panel, bytes from one panel to the next, c) with c laid out
// [panel][row][16].
template <class B>
using x86_dot_kernel = void (*)(std::int64_t, const dot_a_t<B>*, std::int64_t, const B*, std::int64_t, std::int32_t*);

// The output stage for a tile of sums.
using tile_apply_fn = void (*)(const tile_output_stage&, const std::int32_t*, int, std::int64_t, std::int64_t, std::int64_t,
                               std::int32_t*);

// The GEMM microkernels of one kernel family (level_table.hpp), by row count: `rows` (c2
// format), `dot_rows` (NEON c4, c8) or `x86` (x86 c4: [rows - 1][panels - 1]), the format they
// read, the tile they compute (tile_rows x np panels of 16 columns), and the output stage.
template <class B>
struct gemm_kernel_set {
  static constexpr int max_c2_rows = 6;  // rows of the largest c2 tile (avx2: 6)
  kernel_family family = kernel_family::portable;
  gemm_pack_format format = gemm_pack_format::c2;
  const char* tile = "4x16c2";
  int tile_rows = 4, np = 1;
  c2_kernel<B> rows[max_c2_rows] = {};
  dot_kernel<B> dot_rows[mr] = {};
  x86_dot_kernel<B> x86[max_mr][2] = {};
  tile_apply_fn apply = apply_tile_portable;
  kernel_family output = kernel_family::portable;  // avx512_vnni: the fused store_tile_avx512
  const char* suffix() const { return to_string(family); }
};

#if defined(NPUQ_ARCH_X86_64)
template <class B, std::size_t... I>
void set_avx512_vnni(gemm_kernel_set<B>& k, std::index_sequence<I...>) {
  ((k.x86[I][0] = gemm_c4_avx512_vnni<I + 1, 1, B>, k.x86[I][1] = gemm_c4_avx512_vnni<I + 1, 2, B>), ...);
}
template <class B, std::size_t... I>
void set_avx_vnni(gemm_kernel_set<B>& k, std::index_sequence<I...>) {
  ((k.x86[I][0] = gemm_c4_avx_vnni<I + 1, 1, B>), ...);
}
template <class B, std::size_t... I>
void set_amx_int8(gemm_kernel_set<B>& k, std::index_sequence<I...>) {
  ((k.x86[I][0] = gemm_c4_amx<I + 1, 1, B>, k.x86[I][1] = gemm_c4_amx<I + 1, 2, B>), ...);
}
#endif

// The GEMM kernels the table of `level` lists.
template <class B>
gemm_kernel_set<B> gemm_kernels(isa level) {
  const level_table& t = level_kernels(level);
  gemm_kernel_set<B> k;
  k.family = t.gemm;
  k.output = t.output_stage;
#if defined(NPUQ_ARCH_X86_64)
  if (t.output_stage == kernel_family::avx2 || t.output_stage == kernel_family::avx512_vnni) k.apply = apply_tile_avx2;
  switch (t.gemm) {
    case kernel_family::avx2:
      k.tile = "6x16c2", k.tile_rows = c2_avx2_rows;
      k.rows[0] = gemm_c2_avx2<1, B>, k.rows[1] = gemm_c2_avx2<2, B>, k.rows[2] = gemm_c2_avx2<3, B>, k.rows[3] = gemm_c2_avx2<4, B>,
      k.rows[4] = gemm_c2_avx2<5, B>, k.rows[5] = gemm_c2_avx2<6, B>;
      return k;
    case kernel_family::avx512_vnni:
      k.format = gemm_pack_format::c4, k.tile = "8x32c4", k.tile_rows = 8, k.np = 2;
      set_avx512_vnni(k, std::make_index_sequence<8>());
      return k;
    case kernel_family::avx_vnni:
      k.format = gemm_pack_format::c4, k.tile = "6x16c4", k.tile_rows = 6, k.np = 1;
      set_avx_vnni(k, std::make_index_sequence<6>());
      return k;
    case kernel_family::amx_int8:
      k.format = gemm_pack_format::c4, k.tile = "16x32c4", k.tile_rows = 16, k.np = 2;
      set_amx_int8(k, std::make_index_sequence<16>());
      return k;
    default: break;
  }
#elif defined(NPUQ_ARCH_AARCH64)
  switch (t.gemm) {
    case kernel_family::neon_i8mm:
      k.format = gemm_pack_format::c8, k.tile = "4x16c8";
      k.dot_rows[0] = gemm_c8_i8mm<1, B>, k.dot_rows[1] = gemm_c8_i8mm<2, B>, k.dot_rows[2] = gemm_c8_i8mm<3, B>,
      k.dot_rows[3] = gemm_c8_i8mm<4, B>;
      return k;
    case kernel_family::neon_dotprod:
      k.format = gemm_pack_format::c4, k.tile = "4x16c4";
      k.dot_rows[0] = gemm_c4_dotprod<1, B>, k.dot_rows[1] = gemm_c4_dotprod<2, B>, k.dot_rows[2] = gemm_c4_dotprod<3, B>,
      k.dot_rows[3] = gemm_c4_dotprod<4, B>;
      return k;
    case kernel_family::neon:
      k.rows[0] = gemm_c2_neon<1, B>, k.rows[1] = gemm_c2_neon<2, B>, k.rows[2] = gemm_c2_neon<3, B>, k.rows[3] = gemm_c2_neon<4, B>;
      return k;
    default: break;
  }
#endif
  k.family = kernel_family::portable;
  k.rows[0] = gemm_c2_portable<1, B>, k.rows[1] = gemm_c2_portable<2, B>, k.rows[2] = gemm_c2_portable<3, B>,
  k.rows[3] = gemm_c2_portable<4, B>;
  return k;
}

// True when the kernels read x86 c4 panels with A bytes of the other signedness (dot_a_t).
template <class B>
bool is_x86_dot(const gemm_kernel_set<B>& k) {
  return k.x86[0][0] != nullptr;
}

// Adds the zero-point compensation of the 8-bit formats to a tile of dot products (see
// gemm_pack.hpp): c[m][j] += o[m] * sb[j] - zb[j] * v_sum[m], modulo 2^32.
inline void add_dot_compensation(std::int32_t* c, int rows, const std::int32_t* comp, const std::int32_t* o,
                                 const std::uint32_t* v_sum) {
  const std::int32_t* zb = comp;
  const std::int32_t* sb = comp + nr;
  for (int m = 0; m < rows; ++m) {
    const auto om = static_cast<std::uint32_t>(o[m]);
    for (int j = 0; j < nr; ++j) {
      const std::uint32_t v = static_cast<std::uint32_t>(c[m * nr + j]) + om * static_cast<std::uint32_t>(sb[j]) -
                              static_cast<std::uint32_t>(zb[j]) * v_sum[m];
      c[m * nr + j] = static_cast<std::int32_t>(v);
    }
  }
}

// The weights in the kernels' format: `packed` itself, or a converted copy kept in `converted`
// (weights packed for another level).
template <class B>
const packed_gemm_weights<B>& weights_in_format(const packed_gemm_weights<B>& packed, gemm_pack_format f,
                                                packed_gemm_weights<B>& converted) {
  if (packed.format() == f) return packed;
  converted = packed.converted(f);
  return converted;
}

// Runs C = A x B for M rows and the output stage on the c2 and NEON kernels: `fill(m, v)`
// writes A row m's K zero-point-corrected values into v (int16); `store(m, n0, cols, values)`
// receives output row m's values for columns [n0, n0 + cols).
// Column n of this product is channel first_channel + n of the stage.
// Blocked for the caches like run_x86_dot: a block of A rows (up to block_bytes packed) is packed
// once, then each 16-column panel of B meets every tile_rows-row tile of the block while it
// stays in L1, instead of all of B streaming past every tile.
template <class B, class FillFn, class StoreFn>
void run_c2(const gemm_kernel_set<B>& kern, std::int64_t M, const packed_gemm_weights<B>& packed, const tile_output_stage& stage,
            std::int64_t first_channel, FillFn&& fill, StoreFn&& store) {
  constexpr std::int64_t block_bytes = 192 * 1024;
  packed_gemm_weights<B> converted;
  const packed_gemm_weights<B>& w = weights_in_format(packed, kern.format, converted);
  const std::int64_t K = w.K(), N = w.N(), kg = w.k_groups(), kr = w.kr();
  const bool c2 = kern.format == gemm_pack_format::c2;
  const std::int64_t tr = kern.tile_rows;
  // c2: rows of 2 * kg values one after another (see gemm_pack.hpp), so tile t0 starts at row
  // t0, plus 4 values of slack for kernels that load 8 bytes per pair. c4, c8: one row of
  // values, and the bytes tile by tile (kg * kr * tr each; c8: pairs of rows interleaved).
  const std::int64_t row_bytes = c2 ? 2 * kg * static_cast<std::int64_t>(sizeof(std::int16_t)) : kg * kr;
  const std::int64_t mc = std::max(tr, std::min(block_bytes / std::max<std::int64_t>(row_bytes, 1) / tr * tr, (M + tr - 1) / tr * tr));
  const int rows_per_group = kern.format == gemm_pack_format::c8 ? 2 : 1;
  std::vector<std::int16_t> a_block(static_cast<std::size_t>(c2 ? 2 * kg * mc + 4 : K), 0);
  std::vector<B> a_bytes(static_cast<std::size_t>(c2 ? 0 : kg * kr * mc), 0);
  std::vector<std::int32_t> offset(static_cast<std::size_t>(c2 ? 0 : mc), 0);
  std::vector<std::uint32_t> v_sum(static_cast<std::size_t>(c2 ? 0 : mc), 0);
  alignas(64) std::int32_t c[gemm_kernel_set<B>::max_c2_rows * nr];
  alignas(64) std::int32_t out[gemm_kernel_set<B>::max_c2_rows * nr];
  for (std::int64_t m0 = 0; m0 < M; m0 += mc) {
    const std::int64_t rows_in_block = std::min(mc, M - m0);
    for (std::int64_t m = 0; m < rows_in_block; ++m) {
      const auto i = static_cast<std::size_t>(m);
      if (c2) {
        fill(m0 + m, a_block.data() + m * 2 * kg);  // odd K: the pad stays 0
      } else {
        fill(m0 + m, a_block.data());
        pack_dot_row(a_block.data(), K, kr, kg, rows_per_group, static_cast<int>(m % tr), a_bytes.data() + (m / tr) * kg * kr * tr,
                     &offset[i], &v_sum[i]);
      }
    }
    for (std::int64_t p = 0; p < w.panels(); ++p) {
      const std::int64_t n0 = p * nr, cols = std::min<std::int64_t>(nr, N - n0);
      for (std::int64_t t0 = 0; t0 < rows_in_block; t0 += tr) {
        const int rows = static_cast<int>(std::min(tr, rows_in_block - t0));
        if (c2) {
          kern.rows[rows - 1](kg, a_block.data() + t0 * 2 * kg, w.panel(p), w.panel_zero_points(p), c);
        } else {
          kern.dot_rows[rows - 1](kg, a_bytes.data() + t0 * kg * kr, w.panel(p), c);
          add_dot_compensation(c, rows, w.panel_compensation(p), offset.data() + t0, v_sum.data() + t0);
        }
        kern.apply(stage, c, rows, n0, first_channel, cols, out);
        for (int m = 0; m < rows; ++m) store(m0 + t0 + m, n0, cols, out + m * nr);
      }
    }
  }
}

// A's bytes for the x86 c4 kernels are a - (min(A) - min(dot_a_t<B>)) in dot_a_t<B>: one XOR of
// the sign bit (dot_shift = 128) when A and dot_a_t<B> differ in signedness, else a itself. With
// v = a - za that is v - o for the constant o = dot_offset (below), so the compensation's
// o * sb[j] is one value per column (folded into the stage's bias) and only weight zero points
// need the row sums.
template <class A, class B>
constexpr int dot_shift() {
  return std::is_same<A, dot_a_t<B>>::value ? 0 : 128;
}
template <class A, class B>
constexpr std::int32_t dot_offset(std::int32_t a_zero_point) {
  return element_traits<A>::min - element_traits<dot_a_t<B>>::min - a_zero_point;
}

// v[k] = a[k] - zp as int16 for n contiguous bytes, 16 at a time in GCC vectors (this runs in
// plain -O2 code, which GCC 12 does not vectorize).
using s8x16 = signed char __attribute__((vector_size(16)));
using u8x16 = unsigned char __attribute__((vector_size(16)));
using s16x16 = std::int16_t __attribute__((vector_size(32)));

template <class A>
void widen_minus_zero_point(const A* a, std::int32_t zp, std::int16_t* v, std::int64_t n) {
  using bytes16 = std::conditional_t<std::is_signed<A>::value, s8x16, u8x16>;
  using words16 = s16x16;
  const auto z = static_cast<std::int16_t>(zp);
  std::int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    bytes16 b;
    std::memcpy(&b, a + k, 16);
    const words16 w = __builtin_convertvector(b, words16) - z;
    std::memcpy(v + k, &w, 32);
  }
  for (; k < n; ++k) v[k] = static_cast<std::int16_t>(a[k] - zp);
}

// dst[k] = src[k] ^ Shift for n contiguous bytes (a copy when Shift is 0), 16 bytes a step in
// a GCC vector (SSE2 / NEON without target flags: this runs in plain -O2 code, which GCC 12
// does not vectorize), 8 then 1 for the tail.
template <int Shift, class S, class D>
void copy_shifted(const S* src, D* dst, std::int64_t n) {
  if constexpr (Shift == 0) {
    std::memcpy(dst, src, static_cast<std::size_t>(n));
  } else {
    using v16 = unsigned char __attribute__((vector_size(16)));
    const auto* s = reinterpret_cast<const unsigned char*>(src);
    auto* d = reinterpret_cast<unsigned char*>(dst);
    std::int64_t k = 0;
    for (; k + 16 <= n; k += 16) {
      v16 w;
      std::memcpy(&w, s + k, 16);
      w ^= static_cast<unsigned char>(Shift);
      std::memcpy(d + k, &w, 16);
    }
    if (k + 8 <= n) {
      std::uint64_t w;
      std::memcpy(&w, s + k, 8);
      w ^= 0x0101010101010101ull * static_cast<std::uint64_t>(Shift);
      std::memcpy(d + k, &w, 8);
      k += 8;
    }
    for (; k < n; ++k) d[k] = static_cast<unsigned char>(s[k] ^ Shift);
  }
}

// Bytes of A rows per block of the x86 driver: the packed block stays in L2 while every panel
// pair of B passes over it.
constexpr std::int64_t x86_a_block_bytes = 192 * 1024;

// Writes `cols` values to out at element offset `at` with stride `step` (unit stride runs as a
// plain loop the compiler vectorizes).
template <class O>
void store_row(const TensorView<O>& out, std::int64_t at, std::int64_t step, std::int64_t cols, const std::int32_t* v) {
  if constexpr (!element_traits<O>::packed) {
    O* dst = out.data() + at;
    if (step == 1) {
      for (std::int64_t j = 0; j < cols; ++j) dst[j] = static_cast<O>(v[j]);
    } else {
      for (std::int64_t j = 0; j < cols; ++j) dst[j * step] = static_cast<O>(v[j]);
    }
  } else {
    for (std::int64_t j = 0; j < cols; ++j) out.store(at + j * step, static_cast<typename TensorView<O>::value_type>(v[j]));
  }
}

// C = A x B and the output stage on the x86 c4 kernels, blocked for the caches: up to
// x86_a_block_bytes of A rows are packed once (`fill_bytes(m0, rows, dst, lda)` writes the K bytes of
// rows [m0, m0 + rows) lda apart), then
// each group of np panels (in L1 for K up to ~1.5k) meets every tile_rows-row tile of the block.
// `o` is the constant offset of the bytes (see dot_offset). Output row m starts at element
// row_at(m) of `out` (column 0 of this product), its columns `col_stride` apart.
template <class B, class O, class FillFn, class RowFn>
void run_x86_dot(const gemm_kernel_set<B>& kern, std::int64_t M, const packed_gemm_weights<B>& packed, const tile_output_stage& stage,
                 std::int64_t first_channel, std::int32_t o, FillFn&& fill_bytes, const TensorView<O>& out, RowFn&& row_at,
                 std::int64_t col_stride) {
  using AB = dot_a_t<B>;
  packed_gemm_weights<B> converted;
  const packed_gemm_weights<B>& w = weights_in_format(packed, gemm_pack_format::c4, converted);
  const std::int64_t K = w.K(), N = w.N(), kg = w.k_groups(), panels = w.panels();
  const std::int64_t lda = (kg * 4 + 63) / 64 * 64;
  const std::int64_t tr = kern.tile_rows;
  const std::int64_t mc = std::max<std::int64_t>(tr, std::min<std::int64_t>((x86_a_block_bytes / lda) / tr * tr, (M + tr - 1) / tr * tr));
  // The stage with o * sb[j] added to every column's bias (modulo 2^32, like the sums).
  tile_output_stage st = stage;
  for (std::int64_t n = 0; n < N; ++n) {
    const std::int32_t sb = w.panel_compensation(n / nr)[nr + n % nr];
    st.bias[static_cast<std::size_t>(n)] = static_cast<std::int32_t>(static_cast<std::uint32_t>(st.bias[static_cast<std::size_t>(n)]) +
                                                                     static_cast<std::uint32_t>(o) * static_cast<std::uint32_t>(sb));
  }
  [[maybe_unused]] bool fused = false;  // the AVX-512 fused store (x86 only)
#if defined(NPUQ_ARCH_X86_64)
  fused = !element_traits<O>::packed && col_stride == 1 && kern.output == kernel_family::avx512_vnni && avx512_stage_supported(st);
#endif
  const bool zero_points = w.has_zero_points();
  std::vector<AB> a_block(static_cast<std::size_t>(mc * lda + 16));  // + the fills' slack (below)
  std::vector<std::uint32_t> v_sum(static_cast<std::size_t>(zero_points ? mc : 0));
  std::vector<std::int64_t> row_off(static_cast<std::size_t>(mc));  // row_at of the block's rows
  alignas(64) std::int32_t c[max_mr * 2 * nr];
  alignas(64) std::int32_t values[max_mr * nr];
  const std::int32_t no_offset[max_mr] = {};
  for (std::int64_t m0 = 0; m0 < M; m0 += mc) {
    const std::int64_t rows_in_block = std::min(mc, M - m0);
    // Writes [0, K) of each row, and may leave up to 15 bytes of garbage past K (times B's zero
    // pad: 0; what lies beyond lda is the next row's, filled after it, or the block's slack).
    fill_bytes(m0, rows_in_block, a_block.data(), lda);
    for (std::int64_t m = 0; m < rows_in_block; ++m) {
      const AB* row = a_block.data() + m * lda;
      row_off[static_cast<std::size_t>(m)] = row_at(m0 + m);
      if (zero_points) {  // sum of v = a - za = bytes + o
        std::uint32_t s = static_cast<std::uint32_t>(K) * static_cast<std::uint32_t>(o);
        for (std::int64_t k = 0; k < K; ++k) s += static_cast<std::uint32_t>(static_cast<std::int32_t>(row[k]));
        v_sum[static_cast<std::size_t>(m)] = s;
      }
    }
    for (std::int64_t p0 = 0; p0 < panels; p0 += kern.np) {
      const int np = static_cast<int>(std::min<std::int64_t>(kern.np, panels - p0));
      for (std::int64_t t0 = 0; t0 < rows_in_block; t0 += tr) {
        const int rows = static_cast<int>(std::min(tr, rows_in_block - t0));
        kern.x86[rows - 1][np - 1](kg, a_block.data() + t0 * lda, lda, w.panel(p0), w.panel_stride(), c);
        const std::int64_t* offs = row_off.data() + t0;
        for (int q = 0; q < np; ++q)
          if (zero_points) add_dot_compensation(c + q * rows * nr, rows, w.panel_compensation(p0 + q), no_offset, v_sum.data() + t0);
#if defined(NPUQ_ARCH_X86_64)
        if (fused) {
          if constexpr (!element_traits<O>::packed) {
            O* base = out.data() + p0 * nr;
            store_tile_avx512<O>(st, c, rows, np, p0 * nr, N - p0 * nr, [base, offs](int m) { return base + offs[m]; });
          }
          continue;
        }
#endif
        for (int q = 0; q < np; ++q) {
          std::int32_t* cq = c + q * rows * nr;
          const std::int64_t n0 = (p0 + q) * nr, cols = std::min<std::int64_t>(nr, N - n0);
          kern.apply(st, cq, rows, n0, first_channel, cols, values);
          for (int m = 0; m < rows; ++m) store_row(out, offs[m] + n0 * col_stride, col_stride, cols, values + m * nr);
        }
      }
    }
  }
}

// "<op>_<A type><B type>_<tile>_<family>", e.g. "gemm_s8s8_8x32c4_avx512_vnni".
template <class B>
std::string gemm_kernel_name(const char* op, dtype a, dtype b, const gemm_kernel_set<B>& kern) {
  return std::string(op) + "_" + type_code(a) + type_code(b) + "_" + kern.tile + "_" + kern.suffix();
}

// One GEMM problem with B already packed (shared by all batches, or `per_batch` packs).
template <class A, class B, class O>
void run_gemm_problem(const simd_backend& be, const gemm_problem<A, B, O>& p, const packed_gemm_weights<B>* shared) {
  const gemm_kernel_set<B> kern = gemm_kernels<B>(be.level());
  const Layout& al = p.a.layout();
  const Layout& ol = p.out.layout();
  const int ar = al.rank(), orr = ol.rank();
  packed_gemm_weights<B> own;
  const tile_output_stage stage(p.stage, p.bias, p.N);
  for (std::int64_t batch = 0; batch < p.batch_count(); ++batch) {
    std::int64_t ao = 0, bo = 0, oo = 0;
    p.batch_offsets(batch, &ao, &bo, &oo);
    const packed_gemm_weights<B>* w = shared;
    if (w == nullptr) {
      const Layout& bl = p.b.layout();
      const int br = bl.rank();
      TensorView<const B> bb(p.b.data(), p.b.offset() + bo, Layout::strided({p.K, p.N}, {bl.stride(br - 2), bl.stride(br - 1)}),
                             p.b.quant(), p.b.capacity());
      (void)own.pack(bb, be.level());  // cannot fail: the problem was validated
      w = &own;
    }
    const std::int64_t a0 = p.a.offset() + ao, sm = al.stride(ar - 2), sk = al.stride(ar - 1);
    const std::int64_t o0 = p.out.offset() + oo, om = ol.stride(orr - 2), on = ol.stride(orr - 1);
    const auto store = [&](std::int64_t m, std::int64_t n0, std::int64_t cols, const std::int32_t* v) {
      store_row(p.out, o0 + m * om + n0 * on, on, cols, v);
    };
    if (is_x86_dot(kern)) {
      using AB = dot_a_t<B>;
      constexpr int shift = dot_shift<A, B>();
      run_x86_dot(
          kern, p.M, *w, stage, 0, dot_offset<A, B>(p.a_zero_point),
          [&](std::int64_t m0, std::int64_t rows, AB* dst, std::int64_t lda) {
            for (std::int64_t m = 0; m < rows; ++m, dst += lda) {
              const A* row = p.a.data() + a0 + (m0 + m) * sm;
              if (sk == 1) {
                copy_shifted<shift>(row, dst, p.K);
              } else {
                for (std::int64_t k = 0; k < p.K; ++k) dst[k] = static_cast<AB>(static_cast<std::uint8_t>(row[k * sk]) ^ shift);
              }
            }
          },
          p.out, [&](std::int64_t m) { return o0 + m * om; }, on);
      continue;
    }
    run_c2(
        kern, p.M, *w, stage, 0,
        [&](std::int64_t m, std::int16_t* v) {
          const auto* row = p.a.data() + a0 + m * sm;
          const std::int32_t zp = p.a_zero_point;
          if (sk == 1) {
            widen_minus_zero_point(row, zp, v, p.K);
          } else {
            for (std::int64_t k = 0; k < p.K; ++k) v[k] = static_cast<std::int16_t>(row[k * sk] - zp);
          }
        },
        store);
  }
  detail::simd_last_kernel_storage() = gemm_kernel_name("gemm", p.a.type(), p.b.type(), kern);
}

}  // namespace simd_detail

template <class A, class B, class O>
status execute(const simd_backend& be, const gemm_problem<A, B, O>& p) {
  if (!simd_detail::wraps_within_32_bits(p.stage.numerics)) {
    NPUQ_RETURN_IF_ERROR(execute(scalar, p));
    detail::simd_last_kernel_storage() = "gemm_reference";
    return {};
  }
  simd_detail::run_gemm_problem(be, p, static_cast<const packed_gemm_weights<B>*>(nullptr));
  return {};
}

// Packs GEMM weights once for reuse by `gemm(simd, params, a, packed, bias, out)`, in the format
// of the kernels `be` runs (pass the same backend value to both calls).
template <class XB>
status pack_gemm_weights(const simd_backend& be, const XB& b, packed_gemm_weights<detail::element_of<XB>>* out) {
  return out->pack(input_view(b), be.level());
}

// GEMM against packed weights: validated exactly like the unpacked call (B must be 2-D).
template <class XA, class B, class XBias, class XO>
status try_gemm(const simd_backend& be, const gemm_params& params, const XA& a, const packed_gemm_weights<B>& b, const XBias& bias,
                const XO& out) {
  using A = detail::element_of<XA>;
  using O = detail::element_of<XO>;
  gemm_problem<A, B, O> problem;
  NPUQ_RETURN_IF_ERROR(make_gemm_problem(params, input_view(a), b.descriptor(), input_view(bias), output_view(out), &problem, true));
  if (!simd_detail::wraps_within_32_bits(problem.stage.numerics))
    return {errc::unsupported, "params: packed weights need an accumulator that wraps at <= 32 bits; pass unpacked weights to "
                               "run saturating or wider accumulators on the reference path"};
  simd_detail::run_gemm_problem(be, problem, &b);
  return {};
}

template <class XA, class B, class XBias, class XO>
void gemm(const simd_backend& be, const gemm_params& params, const XA& a, const packed_gemm_weights<B>& b, const XBias& bias,
          const XO& out) {
  throw_if_error(try_gemm(be, params, a, b, bias, out));
}

}  // namespace npuq
