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
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "npuq/backends/scalar/gemm.hpp"
#include "npuq/core/checked.hpp"
#include "npuq/core/level_table.hpp"
#include "npuq/backends/simd/backend.hpp"
#include "npuq/backends/simd/gemm_pack.hpp"
#include "npuq/backends/simd/output_stage.hpp"
#include "npuq/backends/simd/portable/gemm_c2.hpp"
#include "npuq/backends/simd/arm/gemm_c2_neon.hpp"
#include "npuq/backends/simd/arm/gemm_c4_dotprod.hpp"
#include "npuq/backends/simd/arm/gemm_c8_i8mm.hpp"
#include "npuq/backends/simd/x86/gemm_c2_avx2.hpp"
#include "npuq/backends/simd/x86/direct_tiles.hpp"
#include "npuq/backends/simd/x86/gemm_c4_amx.hpp"
#include "npuq/backends/simd/x86/copy_avx512.hpp"
#include "npuq/backends/simd/x86/gemm_c4_avx512_stage.hpp"
#include "npuq/backends/simd/x86/gemm_c4_vnni.hpp"
#include "npuq/backends/simd/x86/output_stage_avx512.hpp"
#include "npuq/ops/gemm_problem.hpp"

namespace npuq {
namespace simd_detail {

constexpr int mr = 4;  // rows per tile of the portable c2 and NEON kernels
constexpr int max_mr = 32;  // rows per tile of any x86 c4 kernel (AMX: 32)

inline const char* type_code(dtype t) { return t == dtype::u8 ? "u8" : "s8"; }

// True when int32 wrap-around arithmetic reproduces the profile's accumulator exactly.
inline bool wraps_within_32_bits(const numerics_profile& p) {
  return p.acc.overflow == overflow_rule::wrap && p.acc.bits <= 32;
}

// The quantization of one batch's [K, N] slice of a batched B: per-column quantization (along
// B's last axis, whatever B's rank) is the slice's axis 1.
inline Quant batch_slice_quant(Quant q) {
  if (q.granularity == quant_granularity::per_axis) q.axis = 1;
  return q;
}

// The largest sliding window the simd conv kernels take, in taps times values per tap (conv2d:
// K = KH * KW * Cg of the implicit GEMM; depthwise: KH * KW * channels): they pack every tap of
// the weights and gather every tap of a pixel, padding included. Past it (a kernel no network
// has, e.g. 2^62 rows over padding, whose packed size would not even fit in int64) the one-shot
// calls run the reference, which visits only the taps inside the image, and plans refuse.
constexpr std::int64_t max_window_values = std::int64_t{1} << 22;
inline bool window_fits_kernels(std::int64_t kh, std::int64_t kw, std::int64_t per_tap) {
  std::int64_t n = 0;
  return checked_mul(kh, kw, &n) && checked_mul(n, per_tap, &n) && n <= max_window_values;
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
// x86 c4 kernels with the output stage inside (x86/gemm_c4_avx512_stage.hpp): the operands of
// x86_dot_kernel, then the stage, the first column, the columns to write, where the 8-bit
// outputs go, and the number of whole row tiles.
template <class B>
using x86_stage_kernel = void (*)(std::int64_t, const dot_a_t<B>*, std::int64_t, const B*, std::int64_t, const tile_output_stage&,
                                  std::int64_t, std::int64_t, const stage_tile_out&, std::int64_t);

// The output stage for a tile of sums.
using tile_apply_fn = void (*)(const tile_output_stage&, const std::int32_t*, int, std::int64_t, std::int64_t, std::int64_t,
                               std::int32_t*);
// The stage of a tile straight to 8-bit rows for a stage's kind (store_tile8_avx2_for), null
// where it does not apply.
using tile_store8_for_fn = tile_store8_fn (*)(const tile_output_stage&);

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
  // Runs of whole tiles of tile_rows x (16 x [panels - 1]) with the stage inside, by
  // stage_kernel_index.
  x86_stage_kernel<B> x86_stage[3][2] = {};
  // Called by each thread after its last x86 kernel call of a product (AMX: releases the tiles
  // the kernels keep configured between calls); null when the kernels keep no state.
  void (*x86_done)() = nullptr;
  tile_apply_fn apply = apply_tile_portable;
  tile_store8_for_fn store8_for = nullptr;  // AVX2 stage: 8-bit rows in one pass (c2 driver; x86 c4 where not fused)
  kernel_family output = kernel_family::portable;  // avx512_vnni: the fused store_tile_avx512
  const char* suffix() const { return to_string(family); }
};

#if defined(NPUQ_ARCH_X86_64)
template <class B, std::size_t... I>
void set_avx512_vnni(gemm_kernel_set<B>& k, std::index_sequence<I...>) {
  ((k.x86[I][0] = gemm_c4_avx512_vnni<I + 1, 1, B>, k.x86[I][1] = gemm_c4_avx512_vnni<I + 1, 2, B>), ...);
}
// The kernels with the stage inside around the int32-tile kernel Dot<MR, NP, B>, one per kind.
template <class B, int MR, int NP, template <int, int, class> class Dot>
void set_stage_avx512(gemm_kernel_set<B>& k) {
  k.x86_stage[0][NP - 1] = gemm_c4_stage_avx512<MR, NP, B, tile_requant::q31_double, Dot<MR, NP, B>::run>;
  k.x86_stage[1][NP - 1] = gemm_c4_stage_avx512<MR, NP, B, tile_requant::q31_half_up, Dot<MR, NP, B>::run>;
  k.x86_stage[2][NP - 1] = gemm_c4_stage_avx512<MR, NP, B, tile_requant::fp32_half_even, Dot<MR, NP, B>::run>;
}
template <int MR, int NP, class B>
struct avx512_vnni_dot {
  static constexpr x86_dot_kernel<B> run = gemm_c4_avx512_vnni<MR, NP, B>;
};
template <int MR, int NP, class B>
struct amx_dot_kernel {
  static constexpr x86_dot_kernel<B> run = gemm_c4_amx<MR, NP, B>;
};
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
  if (t.output_stage == kernel_family::avx2 || t.output_stage == kernel_family::avx512_vnni) k.apply = apply_tile_avx2, k.store8_for = store_tile8_avx2_for;
  switch (t.gemm) {
    case kernel_family::avx2:
      k.tile = "6x16c2", k.tile_rows = c2_avx2_rows;
      k.rows[0] = gemm_c2_avx2<1, B>, k.rows[1] = gemm_c2_avx2<2, B>, k.rows[2] = gemm_c2_avx2<3, B>, k.rows[3] = gemm_c2_avx2<4, B>,
      k.rows[4] = gemm_c2_avx2<5, B>, k.rows[5] = gemm_c2_avx2<6, B>;
      return k;
    case kernel_family::avx512_vnni:
      k.format = gemm_pack_format::c4, k.tile = "8x32c4", k.tile_rows = 8, k.np = 2;
      set_avx512_vnni(k, std::make_index_sequence<8>());
      set_stage_avx512<B, 8, 1, avx512_vnni_dot>(k), set_stage_avx512<B, 8, 2, avx512_vnni_dot>(k);
      return k;
    case kernel_family::avx_vnni:
      k.format = gemm_pack_format::c4, k.tile = "6x16c4", k.tile_rows = 6, k.np = 1;
      set_avx_vnni(k, std::make_index_sequence<6>());
      return k;
    case kernel_family::amx_int8:
      k.format = gemm_pack_format::c4, k.tile = "32x32c4", k.tile_rows = amx_tile_rows, k.np = 2;
      set_amx_int8(k, std::make_index_sequence<amx_tile_rows>());
      set_stage_avx512<B, amx_tile_rows, 1, amx_dot_kernel>(k), set_stage_avx512<B, amx_tile_rows, 2, amx_dot_kernel>(k);
      k.x86_done = amx_release_tiles;
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

// How a GEMM's work is cut for threads: into blocks of row tiles when A has enough of them and is
// at least as large as B (every part streams all of B), else into groups of column panels (every
// part gathers all of A); when both are fewer than the threads, along the one with more. Parts
// write disjoint outputs and run the same kernels on the same tiles as one thread would, modulo
// where a part's last row tile ends (exact either way: the sums wrap modulo 2^32 in any order).
struct gemm_split {
  std::int64_t parts = 1, row_tiles = 1, groups = 1;
  bool by_rows = true;

  gemm_split(int threads, std::int64_t M, std::int64_t tile_rows, std::int64_t N, std::int64_t panel_groups)
      : row_tiles((M + tile_rows - 1) / tile_rows), groups(panel_groups) {
    if (threads <= 1) return;
    // Too few of both for every thread: the larger count.
    by_rows = row_tiles >= threads ? M >= N || panel_groups < threads : panel_groups < threads && row_tiles > panel_groups;
    parts = std::max<std::int64_t>(1, std::min<std::int64_t>(threads, by_rows ? row_tiles : panel_groups));
  }
  // Part i's row tiles [*t0, *t1) and panel groups [*g0, *g1).
  void range(std::int64_t i, std::int64_t* t0, std::int64_t* t1, std::int64_t* g0, std::int64_t* g1) const {
    const std::int64_t n = by_rows ? row_tiles : groups;
    const std::int64_t lo = parts == 1 ? 0 : n * i / parts, hi = parts == 1 ? n : n * (i + 1) / parts;
    *t0 = by_rows ? lo : 0, *t1 = by_rows ? hi : row_tiles;
    *g0 = by_rows ? 0 : lo, *g1 = by_rows ? groups : hi;
  }
  // The most rows of A any part packs (for sizing its scratch).
  std::int64_t max_part_rows(std::int64_t M, std::int64_t tile_rows) const {
    std::int64_t most = 0;
    for (std::int64_t i = 0; i < parts; ++i) {
      std::int64_t t0 = 0, t1 = 0, g0 = 0, g1 = 0;
      range(i, &t0, &t1, &g0, &g1);
      most = std::max(most, std::min(M, t1 * tile_rows) - t0 * tile_rows);
    }
    return most;
  }
};

// Rows of A a part packs at once: up to `block_bytes` of rows of `row_bytes`, whole tiles.
inline std::int64_t block_rows(std::int64_t tile_rows, std::int64_t block_bytes, std::int64_t row_bytes, std::int64_t rows_here) {
  return std::max(tile_rows, std::min(block_bytes / std::max<std::int64_t>(row_bytes, 1) / tile_rows * tile_rows,
                                      (rows_here + tile_rows - 1) / tile_rows * tile_rows));
}

// Hands out 64-byte aligned arrays one after another from a base address; with a null base it
// only counts the bytes (the same calls size a scratch and then carve it).
struct scratch_carver {
  unsigned char* base = nullptr;
  std::size_t used = 0;
  template <class T>
  T* take(std::int64_t n) {
    const std::size_t at = used;
    used += (static_cast<std::size_t>(n) * sizeof(T) + 63) / 64 * 64;
    return base != nullptr ? reinterpret_cast<T*>(base + at) : nullptr;
  }
};

// Working memory of the GEMM drivers, one region per part of a split. It grows before the parts
// start and never shrinks, so a plan that sized it at creation runs without allocating.
class driver_scratch {
 public:
  void reserve(std::int64_t parts, std::size_t bytes) {
    stride_ = (bytes + 63) / 64 * 64;
    const std::size_t need = static_cast<std::size_t>(parts) * stride_ + 64;
    if (buf_.size() < need) buf_.resize(need);
  }
  unsigned char* part(std::int64_t i) {
    const auto addr = reinterpret_cast<std::uintptr_t>(buf_.data());
    return buf_.data() + ((64 - addr % 64) % 64) + static_cast<std::size_t>(i) * stride_;
  }

 private:
  std::vector<unsigned char> buf_;
  std::size_t stride_ = 0;
};

// The c2 driver's buffers for blocks of mc rows (see run_c2_on).
template <class B>
struct c2_buffers {
  std::int16_t* a_block;
  B* a_bytes;
  std::int32_t* offset;
  std::uint32_t* v_sum;
  std::size_t bytes;
  c2_buffers(scratch_carver c, bool c2, std::int64_t K, std::int64_t kg, std::int64_t kr, std::int64_t mc)
      : a_block(c.take<std::int16_t>(c2 ? 2 * kg * mc + 4 : K)),
        a_bytes(c.take<B>(c2 ? 0 : kg * kr * mc)),
        offset(c.take<std::int32_t>(c2 ? 0 : mc)),
        v_sum(c.take<std::uint32_t>(c2 ? 0 : mc)),
        bytes(c.used) {}
};

constexpr std::int64_t c2_block_bytes = 192 * 1024;

// How run_c2_on splits and blocks a product: its parts and each part's scratch bytes.
template <class B>
struct c2_plan {
  gemm_split split;
  std::size_t part_bytes = 0;
  c2_plan(int threads, const gemm_kernel_set<B>& kern, std::int64_t M, const packed_gemm_weights<B>& w)
      : split(threads, M, kern.tile_rows, w.N(), w.panels()) {
    const bool c2 = kern.format == gemm_pack_format::c2;
    const std::int64_t kg = w.k_groups(), kr = w.kr(), tr = kern.tile_rows;
    const std::int64_t mc = block_rows(tr, c2_block_bytes, row_bytes(c2, kg, kr), split.max_part_rows(M, tr));
    part_bytes = c2_buffers<B>(scratch_carver{}, c2, w.K(), kg, kr, mc).bytes;
  }
  // c2: rows of 2 * kg values one after another (see gemm_pack.hpp), so tile t0 starts at row
  // t0, plus 4 values of slack for kernels that load 8 bytes per pair. c4, c8: one row of
  // values, and the bytes tile by tile (kg * kr * tr each; c8: pairs of rows interleaved).
  static std::int64_t row_bytes(bool c2, std::int64_t kg, std::int64_t kr) {
    return c2 ? 2 * kg * static_cast<std::int64_t>(sizeof(std::int16_t)) : kg * kr;
  }
};

// Runs C = A x B for M rows and the output stage on the c2 and NEON kernels: `fill(m, v)`
// writes A row m's K zero-point-corrected values into v (int16), or, where fill takes
// (m0, rows, v, ldv), rows [m0, m0 + rows) ldv values apart in one call (exactly K values each);
// `store(m, n0, cols, values)`
// receives output row m's values for columns [n0, n0 + cols).
// Column n of this product is channel first_channel + n of the stage. `w` is in kern's format.
// Blocked for the caches like run_x86_dot_on: a block of A rows (up to c2_block_bytes packed) is
// packed once, then each 16-column panel of B meets every tile_rows-row tile of the block while
// it stays in L1, instead of all of B streaming past every tile.
// Where the caller's output rows are 8-bit values one column apart, byte_rows says so: row(m) is
// output row m's column 0 of this product, and the driver stores each tile's rows straight from
// the stage (gemm_kernel_set::store8_for, chosen once per product) instead of through store().
template <class RowFn>
struct byte_rows {
  RowFn row;
  bool on = false, is_unsigned = false;
};
struct no_byte_rows {};
template <class O, class RowFn>
byte_rows<RowFn> byte_rows_if(bool unit_columns, RowFn row) {
  return {std::move(row), sizeof(O) == 1 && std::is_integral<O>::value && unit_columns, std::is_unsigned<O>::value};
}

template <class B, class FillFn, class StoreFn, class ByteRows = no_byte_rows>
void run_c2_on(int threads, const gemm_kernel_set<B>& kern, std::int64_t M, const packed_gemm_weights<B>& w,
               const tile_output_stage& stage, std::int64_t first_channel, FillFn&& fill_row, StoreFn&& store_out,
               driver_scratch& scratch, const ByteRows& rows8 = {}) {
  const std::int64_t K = w.K(), N = w.N(), kg = w.k_groups(), kr = w.kr();
  const bool c2 = kern.format == gemm_pack_format::c2;
  const std::int64_t tr = kern.tile_rows;
  const int rows_per_group = kern.format == gemm_pack_format::c8 ? 2 : 1;
  const c2_plan<B> plan(threads, kern, M, w);
  const gemm_split& split = plan.split;
  constexpr bool block_fill = std::is_invocable<std::decay_t<FillFn>&, std::int64_t, std::int64_t, std::int16_t*, std::int64_t>::value;
  tile_store8_fn store8 = nullptr;  // 8-bit rows straight from the stage, where the kind allows
  if constexpr (!std::is_same<ByteRows, no_byte_rows>::value) {
    if (rows8.on && kern.store8_for != nullptr) store8 = kern.store8_for(stage);
  }
  scratch.reserve(split.parts, plan.part_bytes);
  detail::parallel_parts(threads, split.parts, [&](std::int64_t part) {
    std::decay_t<FillFn> fill = fill_row;  // per part: the functions may keep a cursor
    std::decay_t<StoreFn> store = store_out;
    ByteRows bytes = rows8;
    std::int64_t t_lo = 0, t_hi = 0, p_lo = 0, p_hi = 0;
    split.range(part, &t_lo, &t_hi, &p_lo, &p_hi);
    const std::int64_t m_lo = t_lo * tr, m_hi = std::min(M, t_hi * tr), rows_here = m_hi - m_lo;
    if (rows_here <= 0 || p_lo >= p_hi) return;
    const std::int64_t mc = block_rows(tr, c2_block_bytes, c2_plan<B>::row_bytes(c2, kg, kr), rows_here);
    const c2_buffers<B> buf(scratch_carver{scratch.part(part)}, c2, K, kg, kr, mc);
    std::memset(scratch.part(part), 0, buf.bytes);  // odd K: the c2 pad stays 0
    alignas(64) std::int32_t c[gemm_kernel_set<B>::max_c2_rows * nr];
    alignas(64) std::int32_t out[gemm_kernel_set<B>::max_c2_rows * nr];
    for (std::int64_t m0 = m_lo; m0 < m_hi; m0 += mc) {
      const std::int64_t rows_in_block = std::min(mc, m_hi - m0);
      if constexpr (block_fill) {
        if (c2) fill(m0, rows_in_block, buf.a_block, 2 * kg);
      }
      for (std::int64_t m = 0; m < rows_in_block; ++m) {
        if (c2) {
          if constexpr (!block_fill) fill(m0 + m, buf.a_block + m * 2 * kg);
        } else {
          if constexpr (block_fill) fill(m0 + m, 1, buf.a_block, K);
          else fill(m0 + m, buf.a_block);
          pack_dot_row(buf.a_block, K, kr, kg, rows_per_group, static_cast<int>(m % tr), buf.a_bytes + (m / tr) * kg * kr * tr,
                       buf.offset + m, buf.v_sum + m);
        }
      }
      for (std::int64_t p = p_lo; p < p_hi; ++p) {
        const std::int64_t n0 = p * nr, cols = std::min<std::int64_t>(nr, N - n0);
        for (std::int64_t t0 = 0; t0 < rows_in_block; t0 += tr) {
          const int rows = static_cast<int>(std::min(tr, rows_in_block - t0));
          if (c2) {
            kern.rows[rows - 1](kg, buf.a_block + t0 * 2 * kg, w.panel(p), w.panel_zero_points(p), c);
          } else {
            kern.dot_rows[rows - 1](kg, buf.a_bytes + t0 * kg * kr, w.panel(p), c);
            add_dot_compensation(c, rows, w.panel_compensation(p), buf.offset + t0, buf.v_sum + t0);
          }
          if constexpr (!std::is_same<ByteRows, no_byte_rows>::value) {
            if (store8 != nullptr) {
              unsigned char* dst[gemm_kernel_set<B>::max_c2_rows];
              for (int m = 0; m < rows; ++m) dst[m] = bytes.row(m0 + t0 + m) + n0;
              store8(stage, c, rows, n0, cols, bytes.is_unsigned, dst);
              continue;
            }
          }
          kern.apply(stage, c, rows, n0, first_channel, cols, out);
          for (int m = 0; m < rows; ++m) store(m0 + t0 + m, n0, cols, out + m * nr);
        }
      }
    }
  });
}

// run_c2_on for weights packed in any format, with scratch of its own.
template <class B, class FillFn, class StoreFn>
void run_c2(int threads, const gemm_kernel_set<B>& kern, std::int64_t M, const packed_gemm_weights<B>& packed,
            const tile_output_stage& stage, std::int64_t first_channel, FillFn&& fill_row, StoreFn&& store_out) {
  packed_gemm_weights<B> converted;
  driver_scratch scratch;
  run_c2_on(threads, kern, M, weights_in_format(packed, kern.format, converted), stage, first_channel, std::forward<FillFn>(fill_row),
            std::forward<StoreFn>(store_out), scratch);
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
using s8x8 = signed char __attribute__((vector_size(8)));
using u8x8 = unsigned char __attribute__((vector_size(8)));
using s16x8 = std::int16_t __attribute__((vector_size(16)));

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
  if (k + 8 <= n) {  // short rows (a first layer's kernel row of 9 values, K = 24) end here
    using bytes8 = std::conditional_t<std::is_signed<A>::value, s8x8, u8x8>;
    bytes8 b;
    std::memcpy(&b, a + k, 8);
    const s16x8 w = __builtin_convertvector(b, s16x8) - z;
    std::memcpy(v + k, &w, 16);
    k += 8;
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

// Bytes of A rows per block of the x86 driver. Every block meets all of B, so with large weights
// the block is large (it stays in L2 while every panel pair of B passes over it: B is read from
// memory once per 192 KiB of A); with weights that stay in L2 anyway it is small, so the block
// is written and read in L1 (on Sapphire Rapids with AMX: resnet 3x3 140 -> 115 us, the
// MobileNet 1x1 expand layer 105 -> 80 us; docs/benchmarks.md).
constexpr std::int64_t x86_a_block_bytes = 192 * 1024;
constexpr std::int64_t x86_a_block_bytes_l1 = 32 * 1024;
constexpr std::int64_t x86_b_l2_bytes = 512 * 1024;  // weights up to this size count as staying in L2
inline std::int64_t x86_block_bytes(std::int64_t b_bytes) { return b_bytes <= x86_b_l2_bytes ? x86_a_block_bytes_l1 : x86_a_block_bytes; }

// dst[j] = v[j] for j < n, values already in O's range: 8-bit and int16 outputs narrowed 16 at a
// time (plain -O2 code, which GCC 12 does not vectorize; storing byte by byte was one of the c2
// driver's largest costs on short-K layers). The packs saturate, which changes nothing for
// values in range. SSE2 (x86's baseline) packs or NEON narrowing moves (GCC 12 expands a GCC
// vector conversion from int32 to int8 into a byte at a time on both).
template <class O>
void narrow_run(const std::int32_t* v, O* dst, std::int64_t n) {
  std::int64_t j = 0;
  if constexpr (std::is_integral<O>::value && (sizeof(O) == 1 || std::is_same<O, std::int16_t>::value)) {
    for (; j + 16 <= n; j += 16) {
#if defined(NPUQ_ARCH_X86_64)
      const auto* p = reinterpret_cast<const __m128i*>(v + j);
      const __m128i lo = _mm_packs_epi32(_mm_loadu_si128(p), _mm_loadu_si128(p + 1));
      const __m128i hi = _mm_packs_epi32(_mm_loadu_si128(p + 2), _mm_loadu_si128(p + 3));
      if constexpr (sizeof(O) == 2) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j), lo);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j + 8), hi);
      } else {
        const __m128i bytes = std::is_signed<O>::value ? _mm_packs_epi16(lo, hi) : _mm_packus_epi16(lo, hi);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j), bytes);
      }
#elif defined(NPUQ_ARCH_AARCH64)
      const int16x8_t lo = vcombine_s16(vmovn_s32(vld1q_s32(v + j)), vmovn_s32(vld1q_s32(v + j + 4)));
      const int16x8_t hi = vcombine_s16(vmovn_s32(vld1q_s32(v + j + 8)), vmovn_s32(vld1q_s32(v + j + 12)));
      if constexpr (sizeof(O) == 2) {
        vst1q_s16(reinterpret_cast<std::int16_t*>(dst + j), lo);
        vst1q_s16(reinterpret_cast<std::int16_t*>(dst + j + 8), hi);
      } else {  // the low bytes: the value for int8 and uint8 alike
        vst1q_s8(reinterpret_cast<std::int8_t*>(dst + j), vcombine_s8(vmovn_s16(lo), vmovn_s16(hi)));
      }
#else
      break;
#endif
    }
  }
  for (; j < n; ++j) dst[j] = static_cast<O>(v[j]);
}

// Writes `cols` values to out at element offset `at` with stride `step`.
template <class O>
void store_row(const TensorView<O>& out, std::int64_t at, std::int64_t step, std::int64_t cols, const std::int32_t* v) {
  if constexpr (!element_traits<O>::packed) {
    O* dst = out.data() + at;
    if (step == 1) {
      narrow_run(v, dst, cols);
    } else {
      for (std::int64_t j = 0; j < cols; ++j) dst[j * step] = static_cast<O>(v[j]);
    }
  } else {
    for (std::int64_t j = 0; j < cols; ++j) out.store(at + j * step, static_cast<typename TensorView<O>::value_type>(v[j]));
  }
}

// The x86 driver's buffers for blocks of mc rows (see run_x86_dot_on).
template <class AB>
struct x86_dot_buffers {
  AB* a_block;             // mc rows lda apart, + the fills' slack (below)
  std::uint32_t* v_sum;    // weight zero points: sums of each row's v
  std::int64_t* row_off;   // row_at of the block's rows
  std::size_t bytes;
  x86_dot_buffers(scratch_carver c, std::int64_t lda, std::int64_t mc, bool zero_points)
      : a_block(c.take<AB>(mc * lda + 16)),
        v_sum(c.take<std::uint32_t>(zero_points ? mc : 0)),
        row_off(c.take<std::int64_t>(mc)),
        bytes(c.used) {}
};

// How run_x86_dot_on splits and blocks a product: its parts and each part's scratch bytes.
// Every part packs blocks of up to mc rows (sized for the largest part: the blocks only group
// rows, so their size never changes a result).
template <class B>
struct x86_dot_plan {
  gemm_split split;
  std::int64_t lda, mc;
  std::size_t part_bytes = 0;
  x86_dot_plan(int threads, const gemm_kernel_set<B>& kern, std::int64_t M, const packed_gemm_weights<B>& w)
      : split(threads, M, kern.tile_rows, w.N(), (w.panels() + kern.np - 1) / kern.np), lda((w.k_groups() * 4 + 63) / 64 * 64) {
    mc = block_rows(kern.tile_rows, x86_block_bytes(w.panels() * w.panel_stride()), lda, split.max_part_rows(M, kern.tile_rows));
    part_bytes = x86_dot_buffers<dot_a_t<B>>(scratch_carver{}, lda, mc, w.has_zero_points()).bytes;
  }
};

// The stage of the x86 driver: `stage` with o * sb[j] added to every column's bias (modulo 2^32,
// like the sums), for the constant offset o of the bytes (see dot_offset); bounded for w's K.
template <class B>
tile_output_stage x86_dot_stage(const tile_output_stage& stage, const packed_gemm_weights<B>& w, std::int32_t o) {
  tile_output_stage st = stage;
  st.bound_sums(w.K());
  for (std::int64_t n = 0; n < w.N(); ++n) {
    const std::int32_t sb = w.panel_compensation(n / nr)[nr + n % nr];
    st.bias[static_cast<std::size_t>(n)] = static_cast<std::int32_t>(static_cast<std::uint32_t>(st.bias[static_cast<std::size_t>(n)]) +
                                                                     static_cast<std::uint32_t>(o) * static_cast<std::uint32_t>(sb));
  }
  return st;
}

// C = A x B and the output stage on the x86 c4 kernels, blocked for the caches: up to
// x86_block_bytes of A rows are packed once (`fill_bytes(m0, rows, dst, lda)` writes the K bytes of
// rows [m0, m0 + rows) lda apart), then
// each group of np panels (in L1 for K up to ~1.5k) meets every tile_rows-row tile of the block.
// `w` is in the c4 format, `o` is the constant offset of the bytes (see dot_offset) and `st`
// is x86_dot_stage(stage, w, o). `prepared`, if given, is x86_dot_plan(threads, kern, M, w)
// made beforehand (a plan's, which saves its divisions on tiny products). Output row m starts at element
// row_at(m) of `out` (column 0 of this product), its columns `col_stride` apart.
// Whether a row function also has fill(m0, count, dst): dst[i] = (*this)(m0 + i) for i < count, in
// one call (a loop over locals, where calling it per row reloads its state after every store).
template <class F, class = void>
struct fills_rows : std::false_type {};
template <class F>
struct fills_rows<F, std::void_t<decltype(std::declval<const F&>().fill(std::int64_t{}, std::int64_t{}, static_cast<std::int64_t*>(nullptr)))>>
    : std::true_type {};

template <class B, class O, class FillFn, class RowFn>
void run_x86_dot_on(int threads, const gemm_kernel_set<B>& kern, std::int64_t M, const packed_gemm_weights<B>& w,
                    const tile_output_stage& st, std::int64_t first_channel, std::int32_t o, FillFn&& fill_rows, const TensorView<O>& out, RowFn&& row_of,
                    std::int64_t col_stride, driver_scratch& scratch, const x86_dot_plan<B>* prepared = nullptr) {
  using AB = dot_a_t<B>;
  const std::int64_t K = w.K(), N = w.N(), kg = w.k_groups(), panels = w.panels();
  const std::int64_t tr = kern.tile_rows;
  std::optional<x86_dot_plan<B>> own;
  const x86_dot_plan<B>& plan = prepared != nullptr ? *prepared : own.emplace(threads, kern, M, w);
  const gemm_split& split = plan.split;
  const std::int64_t lda = plan.lda;
  [[maybe_unused]] bool fused = false;  // the AVX-512 fused store (x86 only)
#if defined(NPUQ_ARCH_X86_64)
  fused = !element_traits<O>::packed && col_stride == 1 && kern.output == kernel_family::avx512_vnni && avx512_stage_supported(st);
#endif
  const bool zero_points = w.has_zero_points();
  // Whole 8-bit tiles without weight zero points: the kernels with the stage inside.
  const x86_stage_kernel<B>* stage_kernels = nullptr;
#if defined(NPUQ_ARCH_X86_64)
  if constexpr (sizeof(O) == 1 && !element_traits<O>::packed) {
    const int kind = stage_kernel_index(st.kind);
    const std::int32_t zp = st.st->zero_point;
    if (fused && !zero_points && kind >= 0 && kern.x86_stage[kind][0] != nullptr && zp >= -stage_kernel_max_zero_point &&
        zp <= stage_kernel_max_zero_point)
      stage_kernels = kern.x86_stage[kind];
  }
#endif
  // Other 8-bit outputs with unit column stride (the AVX2 stage's levels, e.g. avx_vnni): each
  // tile's rows stored straight from the stage, not through an int32 tile and a store per row.
  tile_store8_fn store8 = nullptr;
  if constexpr (sizeof(O) == 1 && std::is_integral<O>::value && !element_traits<O>::packed) {
    if (!fused && col_stride == 1 && kern.store8_for != nullptr) store8 = kern.store8_for(st);
  }
  scratch.reserve(split.parts, plan.part_bytes);
  detail::parallel_parts(threads, split.parts, [&](std::int64_t part) {
    std::decay_t<FillFn> fill_bytes = fill_rows;  // per part: the functions may keep a cursor
    std::decay_t<RowFn> row_at = row_of;
    std::int64_t t_lo = 0, t_hi = 0, g_lo = 0, g_hi = 0;
    split.range(part, &t_lo, &t_hi, &g_lo, &g_hi);
    const std::int64_t m_lo = t_lo * tr, m_hi = std::min(M, t_hi * tr), rows_here = m_hi - m_lo;
    const std::int64_t p_lo = g_lo * kern.np, p_hi = std::min(panels, g_hi * kern.np);
    if (rows_here <= 0 || p_lo >= p_hi) return;
    const std::int64_t mc = plan.mc;
    const x86_dot_buffers<AB> buf(scratch_carver{scratch.part(part)}, lda, mc, zero_points);
    alignas(64) std::int32_t c[max_mr * 2 * nr];
    alignas(64) std::int32_t values[max_mr * nr];
    const std::int32_t no_offset[max_mr] = {};
    for (std::int64_t m0 = m_lo; m0 < m_hi; m0 += mc) {
      const std::int64_t rows_in_block = std::min(mc, m_hi - m0);
      // Writes [0, K) of each row, and may leave up to 15 bytes of garbage past K (times B's zero
      // pad: 0; what lies beyond lda is the next row's, filled after it, or the block's slack).
      fill_bytes(m0, rows_in_block, buf.a_block, lda);
      if constexpr (fills_rows<std::decay_t<RowFn>>::value) {
        row_at.fill(m0, rows_in_block, buf.row_off);
      } else {
        for (std::int64_t m = 0; m < rows_in_block; ++m) buf.row_off[m] = row_at(m0 + m);
      }
      for (std::int64_t m = 0; zero_points && m < rows_in_block; ++m) {  // sum of v = a - za = bytes + o
        const AB* row = buf.a_block + m * lda;
        std::uint32_t s = static_cast<std::uint32_t>(K) * static_cast<std::uint32_t>(o);
        for (std::int64_t k = 0; k < K; ++k) s += static_cast<std::uint32_t>(static_cast<std::int32_t>(row[k]));
        buf.v_sum[m] = s;
      }
      for (std::int64_t p0 = p_lo; p0 < p_hi; p0 += kern.np) {
        const int np = static_cast<int>(std::min<std::int64_t>(kern.np, p_hi - p0));
        // Whole row tiles: the kernels with the stage inside; a partial last tile: the int32 tile
        // and the stage.
        std::int64_t t0 = 0;
        if constexpr (sizeof(O) == 1 && !element_traits<O>::packed) {
          if (stage_kernels != nullptr && rows_in_block >= tr) {
            t0 = rows_in_block / tr * tr;
            const stage_tile_out to{reinterpret_cast<unsigned char*>(out.data()) + p0 * nr, buf.row_off, std::is_unsigned<O>::value};
            stage_kernels[np - 1](kg, buf.a_block, lda, w.panel(p0), w.panel_stride(), st, p0 * nr,
                                  std::min<std::int64_t>(np * nr, N - p0 * nr), to, t0 / tr);
          }
        }
        for (; t0 < rows_in_block; t0 += tr) {
          const int rows = static_cast<int>(std::min(tr, rows_in_block - t0));
          const std::int64_t* offs = buf.row_off + t0;
          kern.x86[rows - 1][np - 1](kg, buf.a_block + t0 * lda, lda, w.panel(p0), w.panel_stride(), c);
          for (int q = 0; q < np; ++q)
            if (zero_points) add_dot_compensation(c + q * rows * nr, rows, w.panel_compensation(p0 + q), no_offset, buf.v_sum + t0);
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
            if (store8 != nullptr) {
              unsigned char* dst[max_mr];
              for (int m = 0; m < rows; ++m) dst[m] = reinterpret_cast<unsigned char*>(out.data() + offs[m] + n0);
              store8(st, cq, rows, n0, cols, std::is_unsigned<O>::value, dst);
              continue;
            }
            kern.apply(st, cq, rows, n0, first_channel, cols, values);
            for (int m = 0; m < rows; ++m) store_row(out, offs[m] + n0 * col_stride, col_stride, cols, values + m * nr);
          }
        }
      }
    }
    if (kern.x86_done != nullptr) kern.x86_done();
  });
}

// run_x86_dot_on for weights packed in any format and the plain stage, with scratch of its own.
template <class B, class O, class FillFn, class RowFn>
void run_x86_dot(int threads, const gemm_kernel_set<B>& kern, std::int64_t M, const packed_gemm_weights<B>& packed,
                 const tile_output_stage& stage, std::int64_t first_channel, std::int32_t o, FillFn&& fill_rows, const TensorView<O>& out,
                 RowFn&& row_of, std::int64_t col_stride) {
  packed_gemm_weights<B> converted;
  const packed_gemm_weights<B>& w = weights_in_format(packed, gemm_pack_format::c4, converted);
  driver_scratch scratch;
  run_x86_dot_on(threads, kern, M, w, x86_dot_stage(stage, w, o), first_channel, o, std::forward<FillFn>(fill_rows), out,
                 std::forward<RowFn>(row_of), col_stride, scratch);
}

// "<op>_<A type><B type>_<tile>_<family>", e.g. "gemm_s8s8_8x32c4_avx512_vnni".
template <class B>
std::string gemm_kernel_name(const char* op, dtype a, dtype b, const gemm_kernel_set<B>& kern) {
  return std::string(op) + "_" + type_code(a) + type_code(b) + "_" + kern.tile + "_" + kern.suffix();
}

// A product's output stages for the kernels: `gathered` for the paths that copy A into blocks
// (kernel_stage), `direct` for the paths that read A where it lies (direct_tiles.hpp), made only
// where such a path applies: on AMX, for A's own bytes (x86_dot_stage with the offset -(A's zero
// point)); on AVX-512 VNNI, whose kernel flips the sign bits as the gather does, the gathered one.
struct dot_stages {
  tile_output_stage gathered;
  std::optional<tile_output_stage> direct;
  void point_at(const output_stage* s) {  // the stage they refer to, where it moved
    gathered.st = s;
    if (direct) direct->st = s;
  }
};

#if defined(NPUQ_ARCH_X86_64)
// The direct GEMM on AMX: tiles of 32 rows of A loaded from the caller's matrix (rows sm apart;
// a row's last K step reads up to 63 bytes past K, the next row's, which meet the panels' zero
// padding), so A is neither copied nor sign-flipped. It takes A with contiguous rows, at least one
// whole tile of rows, K up to 1024 (a tile's A rows then stay in L1 while every panel pair meets
// them: deeper products run faster through the blocked copy), output columns contiguous and what
// direct_output_ok asks.
template <class A, class B, class O>
bool amx_direct_gemm_applies(const gemm_kernel_set<B>& kern, const gemm_problem<A, B, O>& p, const packed_gemm_weights<B>& w,
                             const tile_output_stage& st) {
  const Layout& al = p.a.layout();
  const Layout& ol = p.out.layout();
  return kern.family == kernel_family::amx_int8 && kern.output == kernel_family::avx512_vnni && direct_output_ok<O>(w, st) &&
         p.M >= amx_tile_rows && w.panel_groups() * 4 <= 1024 && al.stride(al.rank() - 1) == 1 && al.stride(al.rank() - 2) >= 0 &&
         ol.stride(ol.rank() - 1) == 1;
}

constexpr std::int64_t amx_direct_block_tiles = 32;  // most whole tiles run against a panel pair in turn

// Its scratch: per part (a range of row tiles) the output offsets of a block of tiles and a copy
// of the last rows where a whole tile read in place would pass the end of A.
template <class A, class B>
struct amx_direct_gemm_layout {
  std::int64_t tiles, parts, steps, reach;
  std::size_t bytes = 0;
  amx_direct_gemm_layout(int threads, std::int64_t M, const packed_gemm_weights<B>& w)
      : tiles((M + amx_tile_rows - 1) / amx_tile_rows),
        parts(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, tiles))),
        steps(w.panel_groups() / amx_max_rows),
        reach(steps * 64) {
    scratch_carver size;
    carve(size);
    bytes = size.used;
  }
  struct buffers {
    std::int64_t* offs;
    A* tail;
  };
  buffers carve(scratch_carver& c) const {
    return {c.take<std::int64_t>(amx_direct_block_tiles * amx_tile_rows), c.take<A>(amx_tile_rows * reach)};
  }
};

template <class A, class B, class O>
void run_gemm_batch_amx_direct(int threads, const gemm_problem<A, B, O>& p, std::int64_t batch, const packed_gemm_weights<B>& w,
                               const tile_output_stage& st, driver_scratch& scratch) {
  constexpr int tr = amx_tile_rows;
  const Layout& al = p.a.layout();
  const Layout& ol = p.out.layout();
  std::int64_t ao = 0, bo = 0, oo = 0;
  p.batch_offsets(batch, &ao, &bo, &oo);
  const A* a = p.a.data() + p.a.offset() + ao;
  const std::int64_t sm = al.stride(al.rank() - 2), om = ol.stride(ol.rank() - 2), o0 = p.out.offset() + oo;
  const std::int64_t readable = al.span() - ao;  // elements from a on inside the view
  const amx_direct_gemm_layout<A, B> lay(threads, p.M, w);
  scratch.reserve(lay.parts, lay.bytes);
  const amx_direct_tiles<A, B, O> tiles(w, st, p.out);
  detail::parallel_parts(threads, lay.parts, [&](std::int64_t part) {
    scratch_carver c{scratch.part(part)};
    const auto buf = lay.carve(c);
    const std::int64_t t_hi = lay.tiles * (part + 1) / lay.parts;
    // Whole tiles read in place go a block at a time, each panel pair meeting all of them: as many
    // as keep their A rows in L1.
    const std::int64_t row_bytes = std::max<std::int64_t>(sm * static_cast<std::int64_t>(sizeof(A)), lay.reach);
    const std::int64_t block = std::max<std::int64_t>(1, std::min<std::int64_t>(amx_direct_block_tiles, 32768 / (tr * row_bytes)));
    const auto whole_in_place = [&](std::int64_t t) { return (t + 1) * tr <= p.M && ((t + 1) * tr - 1) * sm + lay.reach <= readable; };
    for (std::int64_t t = lay.tiles * part / lay.parts; t < t_hi;) {
      std::int64_t count = 0;
      while (count < block && t + count < t_hi && whole_in_place(t + count)) ++count;
      if (count > 0) {
        for (std::int64_t m = 0; m < count * tr; ++m) buf.offs[m] = o0 + (t * tr + m) * om;
        tiles.run_tiles(count, buf.offs, a + t * tr * sm, tr * sm, nullptr, sm, lay.steps);
        t += count;
        continue;
      }
      const std::int64_t m0 = t * tr;
      const int rows = static_cast<int>(std::min<std::int64_t>(tr, p.M - m0));
      for (int i = 0; i < rows; ++i) buf.offs[i] = o0 + (m0 + i) * om;
      // A partial tile: a whole tile in place where its reads stay inside A, else the tile's rows
      // in place where theirs do (another tile shape, at most once per product), else a copy.
      if ((m0 + tr - 1) * sm + lay.reach <= readable) {
        tiles.run(rows, buf.offs, tr, a + m0 * sm, nullptr, sm, lay.steps);
      } else if ((m0 + rows - 1) * sm + lay.reach <= readable) {
        tiles.run(rows, buf.offs, rows, a + m0 * sm, nullptr, sm, lay.steps);
      } else {
        for (int i = 0; i < rows; ++i) std::memcpy(buf.tail + i * lay.reach, a + (m0 + i) * sm, static_cast<std::size_t>(p.K) * sizeof(A));
        tiles.run(rows, buf.offs, tr, buf.tail, nullptr, lay.reach, lay.steps);
      }
      ++t;
    }
    amx_release_tiles();
  });
}
#endif

// Batch `batch` of a GEMM problem: `w` in kern's format, `st` its stages (make_gemm_stages). True
// when it ran the AMX direct GEMM.
template <class A, class B, class O>
bool run_gemm_batch(int threads, const gemm_kernel_set<B>& kern, const gemm_problem<A, B, O>& p, std::int64_t batch,
                    const packed_gemm_weights<B>& w, const dot_stages& stages, driver_scratch& scratch,
                    const x86_dot_plan<B>* prepared = nullptr) {
  const tile_output_stage& st = stages.gathered;
#if defined(NPUQ_ARCH_X86_64)
  if (stages.direct && amx_direct_gemm_applies(kern, p, w, st)) {
    run_gemm_batch_amx_direct(threads, p, batch, w, *stages.direct, scratch);
    return true;
  }
#endif
  const Layout& al = p.a.layout();
  const Layout& ol = p.out.layout();
  const int ar = al.rank(), orr = ol.rank();
  std::int64_t ao = 0, bo = 0, oo = 0;
  p.batch_offsets(batch, &ao, &bo, &oo);
  const std::int64_t a0 = p.a.offset() + ao, sm = al.stride(ar - 2), sk = al.stride(ar - 1);
  const std::int64_t o0 = p.out.offset() + oo, om = ol.stride(orr - 2), on = ol.stride(orr - 1);
  if (is_x86_dot(kern)) {
    using AB = dot_a_t<B>;
    constexpr int shift = dot_shift<A, B>();
    [[maybe_unused]] const bool wide = kern.output == kernel_family::avx512_vnni;  // AVX-512 copies
    run_x86_dot_on(
        threads, kern, p.M, w, st, 0, dot_offset<A, B>(p.a_zero_point),
        [&](std::int64_t m0, std::int64_t rows, AB* dst, std::int64_t lda) {
#if defined(NPUQ_ARCH_X86_64)
          if (wide && sk == 1 && p.K <= 64)  // lda is a multiple of 64
            return copy_short_rows_shifted_avx512<shift, 64>(p.a.data() + a0 + m0 * sm, sm, dst, lda, rows, p.K);
          if (wide && sk == 1) return copy_rows_shifted_avx512<shift>(p.a.data() + a0 + m0 * sm, sm, dst, lda, rows, p.K);
#endif
          for (std::int64_t m = 0; m < rows; ++m, dst += lda) {
            const A* row = p.a.data() + a0 + (m0 + m) * sm;
            if (sk == 1) {
              copy_shifted<shift>(row, dst, p.K);
            } else {
              for (std::int64_t k = 0; k < p.K; ++k) dst[k] = static_cast<AB>(static_cast<std::uint8_t>(row[k * sk]) ^ shift);
            }
          }
        },
        p.out, [&](std::int64_t m) { return o0 + m * om; }, on, scratch, prepared);
    return false;
  }
  run_c2_on(
      threads, kern, p.M, w, st, 0,
      [&](std::int64_t m, std::int16_t* v) {
        const auto* row = p.a.data() + a0 + m * sm;
        const std::int32_t zp = p.a_zero_point;
        if (sk == 1) {
          widen_minus_zero_point(row, zp, v, p.K);
        } else {
          for (std::int64_t k = 0; k < p.K; ++k) v[k] = static_cast<std::int16_t>(row[k * sk] - zp);
        }
      },
      [&](std::int64_t m, std::int64_t n0, std::int64_t cols, const std::int32_t* v) {
        store_row(p.out, o0 + m * om + n0 * on, on, cols, v);
      },
      scratch, byte_rows_if<O>(on == 1, [&](std::int64_t m) { return reinterpret_cast<unsigned char*>(p.out.data() + o0 + m * om); }));
  return false;
}

// The stage the kernels of `kern` take for weights `w` (see run_gemm_batch).
template <class A, class B>
tile_output_stage kernel_stage(const gemm_kernel_set<B>& kern, const tile_output_stage& stage, const packed_gemm_weights<B>& w,
                               std::int32_t a_zero_point) {
  return is_x86_dot(kern) ? x86_dot_stage(stage, w, dot_offset<A, B>(a_zero_point)) : stage;
}

// The stages for A bytes of zero point za and weights w; `direct`: with the direct paths' one.
template <class A, class B>
dot_stages make_dot_stages(const gemm_kernel_set<B>& kern, const tile_output_stage& stage, const packed_gemm_weights<B>& w,
                           std::int32_t za, bool direct) {
  dot_stages s{kernel_stage<A>(kern, stage, w, za), std::nullopt};
  if (direct && kern.family == kernel_family::amx_int8) s.direct.emplace(x86_dot_stage(stage, w, -za));
  else if (direct) s.direct.emplace(s.gathered);  // AVX-512 VNNI flips A's sign bits as the gather does
  return s;
}

// The stages run_gemm_batch takes for p with weights w.
template <class A, class B, class O>
dot_stages make_gemm_stages(const gemm_kernel_set<B>& kern, const gemm_problem<A, B, O>& p, const tile_output_stage& stage,
                            const packed_gemm_weights<B>& w) {
  bool direct = false;
#if defined(NPUQ_ARCH_X86_64)
  direct = amx_direct_gemm_applies(kern, p, w, stage);
#endif
  return make_dot_stages<A>(kern, stage, w, p.a_zero_point, direct);
}

// Sizes `scratch` for every path run_gemm_batch can take on p (weights like w); `x86` receives
// the x86 driver's plan where kern is an x86 c4 set.
template <class A, class B, class O>
void reserve_gemm_scratch(int threads, const gemm_kernel_set<B>& kern, const gemm_problem<A, B, O>& p, const packed_gemm_weights<B>& w,
                          driver_scratch& scratch, std::optional<x86_dot_plan<B>>* x86) {
  if (is_x86_dot(kern)) {
    const x86_dot_plan<B>& plan = x86->emplace(threads, kern, p.M, w);
    scratch.reserve(plan.split.parts, plan.part_bytes);
#if defined(NPUQ_ARCH_X86_64)
    if (kern.family == kernel_family::amx_int8 && p.M >= amx_tile_rows) {
      const amx_direct_gemm_layout<A, B> lay(threads, p.M, w);
      scratch.reserve(lay.parts, lay.bytes);
    }
#endif
  } else {
    const c2_plan<B> plan(threads, kern, p.M, w);
    scratch.reserve(plan.split.parts, plan.part_bytes);
  }
}

// One GEMM problem with B already packed (shared by all batches) or, `shared` null, packed here
// batch by batch.
template <class A, class B, class O>
void run_gemm_problem(const simd_backend& be, const gemm_problem<A, B, O>& p, const packed_gemm_weights<B>* shared) {
  const gemm_kernel_set<B> kern = gemm_kernels<B>(be.level());
  const tile_output_stage stage(p.stage, p.bias, p.N);
  packed_gemm_weights<B> own, converted;
  driver_scratch scratch;
  bool direct = false;
  for (std::int64_t batch = 0; batch < p.batch_count(); ++batch) {
    const packed_gemm_weights<B>* w = shared;
    if (w == nullptr) {
      std::int64_t ao = 0, bo = 0, oo = 0;
      p.batch_offsets(batch, &ao, &bo, &oo);
      const Layout& bl = p.b.layout();
      const int br = bl.rank();
      TensorView<const B> bb(p.b.data(), p.b.offset() + bo, Layout::strided({p.K, p.N}, {bl.stride(br - 2), bl.stride(br - 1)}),
                             batch_slice_quant(p.b.quant()), p.b.capacity());
      (void)own.pack(bb, be.level());  // cannot fail: validated, and execute() checked gemm_weights_packable
      w = &own;
    }
    const packed_gemm_weights<B>& wf = weights_in_format(*w, kern.format, converted);
    direct = run_gemm_batch(be.thread_count(), kern, p, batch, wf, make_gemm_stages(kern, p, stage, wf), scratch) || direct;
  }
  detail::simd_last_kernel_storage() = gemm_kernel_name(direct ? "gemm_direct" : "gemm", p.a.type(), p.b.type(), kern);
}

// True when every batch's [K, N] slice of B packs (gemm_packable): weights repeated through
// zero strides into more values than memory holds (a valid, huge reduction) run on the reference.
template <class A, class B, class O>
bool gemm_weights_packable(const gemm_problem<A, B, O>& p) {
  const Layout& bl = p.b.layout();
  const int br = bl.rank();
  std::int64_t span = 0;
  return Layout::strided({p.K, p.N}, {bl.stride(br - 2), bl.stride(br - 1)}).try_span(&span) && gemm_packable(p.K, p.N, span);
}

}  // namespace simd_detail

template <class A, class B, class O>
status execute(const simd_backend& be, const gemm_problem<A, B, O>& p) {
  if (!simd_detail::wraps_within_32_bits(p.stage.numerics) || !simd_detail::gemm_weights_packable(p)) {
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
  if (problem.out.size() == 0) return {};  // nothing to compute, however many batches
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
