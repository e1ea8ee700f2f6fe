// simd GEMM on sparse weights: kernel selection, the blocking drivers, and the entry points for
// weights packed once.
//
// Two drivers share the dense GEMM's output stage (tile_output_stage, 16 channels per tile, the
// AVX2 or portable apply function) and row store:
//   2:4       blocks of up to 4 rows; each row becomes its lookup table of activation pairs
//             (sparse_2_4_table), then the kernel runs 4 rows x 16 channels per panel.
//             Kernel names: gemm_sp24_<a>s8_4x16_<level>.
//   pairs     block CSR (every block shape) and CSR: the activations are transposed in chunks of
//             8 rows (sparse_pairs_transpose), the kernel runs up to 32 rows x 1 channel over the
//             channel's stored K pairs. Names: gemm_bsr_<a>s8_32x1_<level>, gemm_csr_...; 32x2 when
//             channel pairs that store the same K pairs (block rows) ran two channels per load.
//             Each channel's K-block bounds are found once per driver (pairs_block_bounds), with
//             whether its entries come in couples of neighbouring K pairs (block CSR, even bk):
//             the avx512_vnni kernels then read a couple's activations with one 64-byte load.
// <level> is the kernel family the level's table lists: avx512_vnni (vpdpwssd on zmm) at the
// avx512_vnni and amx_int8 levels, avx2 at avx2 and avx_vnni, portable otherwise (there are no
// NEON sparse kernels yet: aarch64 runs the portable ones).
//
// Profiles whose accumulator saturates or is wider than 32 bits run the scalar reference
// ("gemm_sp24_reference", "gemm_bsr_reference", "gemm_csr_reference"), like the dense simd GEMM;
// packed sparse weights refuse them with errc::unsupported.
//
// Both run on the backend's threads (sparse_split: row tiles, then 16-channel panels; the same
// bytes for any thread count). A driver (sparse_driver) holds everything made from the weights
// and the output stage; plans (plan_sparse.hpp) make it once, one-shot calls once per call.
//
// Unpacked sparse matrices are packed per call (O(weights), like unpacked dense weights); pack
// once with pack_gemm_weights(simd, sparse, &packed) to reuse them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "npuq/backends/scalar/gemm_sparse.hpp"
#include "npuq/backends/simd/backend.hpp"
#include "npuq/backends/simd/gemm.hpp"
#include "npuq/backends/simd/gemm_sparse_pack.hpp"
#include "npuq/backends/simd/output_stage.hpp"
#include "npuq/backends/simd/portable/gemm_sparse.hpp"
#include "npuq/backends/simd/x86/gemm_sparse_avx2.hpp"
#include "npuq/backends/simd/x86/gemm_sparse_avx512.hpp"
#include "npuq/ops/gemm_sparse_problem.hpp"

namespace npuq {
namespace simd_detail {

using sparse_2_4_kernel = void (*)(std::int64_t, const std::int32_t*, std::int64_t, const std::uint8_t*, std::int32_t*, std::int64_t);
using sparse_pairs_kernel = void (*)(const std::int32_t*, std::int64_t, const std::int32_t*, const std::int32_t*, std::int64_t,
                                     std::int32_t*);
using sparse_pairs2_kernel = void (*)(const std::int32_t*, std::int64_t, const std::int32_t*, const std::int32_t*, const std::int32_t*,
                                      std::int64_t, std::int32_t*, std::int32_t*);

// The sparse kernels at the best level allowed, by rows (2:4: 1..4 rows; pairs: 1..4 chunks of 8).
struct sparse_kernels {
  sparse_2_4_kernel sp24[4];
  sparse_pairs_kernel pairs[4];
  sparse_pairs2_kernel pairs2[4];  // twin channels at once; null: two pairs[] calls
  // For entry couples that are neighbouring K pairs (pairs_block_bounds::adjacent); null: pairs[], pairs2[].
  sparse_pairs_kernel pairs_adjacent[4];
  sparse_pairs2_kernel pairs2_adjacent[4];
  tile_apply_fn apply;
  const char* suffix;
};

// The sparse kernels the table of `level` lists (level_table.hpp).
inline sparse_kernels select_sparse(isa level) {
#if defined(NPUQ_ARCH_X86_64)
  switch (level_kernels(level).sparse) {
    case kernel_family::avx2:
      return {{sparse_2_4_avx2<1>, sparse_2_4_avx2<2>, sparse_2_4_avx2<3>, sparse_2_4_avx2<4>},
              {sparse_pairs_avx2<1>, sparse_pairs_avx2<2>, sparse_pairs_avx2<3>, sparse_pairs_avx2<4>},
              {sparse_pairs2_avx2<1>, sparse_pairs2_avx2<2>, sparse_pairs2_avx2<3>, sparse_pairs2_avx2<4>},
              {},
              {},
              apply_tile_avx2,
              "avx2"};
    case kernel_family::avx512_vnni:
      return {{sparse_2_4_avx512_vnni<1>, sparse_2_4_avx512_vnni<2>, sparse_2_4_avx512_vnni<3>, sparse_2_4_avx512_vnni<4>},
              {sparse_pairs_avx512_vnni<1>, sparse_pairs_avx512_vnni<2>, sparse_pairs_avx512_vnni<3>, sparse_pairs_avx512_vnni<4>},
              {sparse_pairs2_avx512_vnni<1>, sparse_pairs2_avx512_vnni<2>, sparse_pairs2_avx512_vnni<3>, sparse_pairs2_avx512_vnni<4>},
              {sparse_pairs_adjacent_avx512_vnni<1>, sparse_pairs_adjacent_avx512_vnni<2>, sparse_pairs_adjacent_avx512_vnni<3>,
               sparse_pairs_adjacent_avx512_vnni<4>},
              {sparse_pairs2_adjacent_avx512_vnni<1>, sparse_pairs2_adjacent_avx512_vnni<2>, sparse_pairs2_adjacent_avx512_vnni<3>,
               sparse_pairs2_adjacent_avx512_vnni<4>},
              apply_tile_avx2,
              "avx512_vnni"};
    default: break;
  }
#endif
  (void)level;
  return {{sparse_2_4_portable<1>, sparse_2_4_portable<2>, sparse_2_4_portable<3>, sparse_2_4_portable<4>},
          {sparse_pairs_portable<1>, sparse_pairs_portable<2>, sparse_pairs_portable<3>, sparse_pairs_portable<4>},
          {},
          {},
          {},
          apply_tile_portable,
          "portable"};
}

// Row m of batch offset ao as K values a - a_zp (int16).
template <class A, class S, class O>
void sparse_load_row(const gemm_sparse_problem<A, S, O>& p, std::int64_t ao, std::int64_t m, std::int16_t* v) {
  const A* row = p.a.data() + p.a_row(ao, m);
  const std::int64_t sk = p.a.layout().stride(p.a.rank() - 1);
  const std::int32_t zp = p.a_zero_point;
  if (sk == 1) {
    std::int64_t k = 0;
    for (; k + 16 <= p.K; k += 16) {  // a fixed trip count on a local copy (byte pointers alias v): vectorized at -O2
      A x[16];
      std::memcpy(x, row + k, sizeof x);
      for (int i = 0; i < 16; ++i) v[k + i] = static_cast<std::int16_t>(x[i] - zp);
    }
    for (; k < p.K; ++k) v[k] = static_cast<std::int16_t>(row[k] - zp);
  } else {
    for (std::int64_t k = 0; k < p.K; ++k) v[k] = static_cast<std::int16_t>(row[k * sk] - zp);
  }
}

// Output stage of a tile of `rows` x 16 sums (channels [n0, n0 + cols)) and the store.
template <class A, class S, class O>
void sparse_finish_tile(const sparse_kernels& kern, const gemm_sparse_problem<A, S, O>& p, const tile_output_stage& stage,
                        const std::int32_t* c, int rows, std::int64_t m0, std::int64_t n0, std::int64_t cols, std::int64_t oo,
                        std::int32_t* tmp) {
  kern.apply(stage, c, rows, n0, 0, cols, tmp);
  const std::int64_t on = p.out.layout().stride(p.out.rank() - 1);
  for (int m = 0; m < rows; ++m) store_row(p.out, p.out_row(oo, m0 + m) + n0 * on, on, cols, tmp + m * nr);
}

// K is walked in blocks so that the activation side of a block (2:4 tables of 4 rows, or the
// transposed chunks of 32 rows) stays in L1 while every channel runs over it; the kernels add
// into per-call accumulators between blocks (the sums wrap modulo 2^32 either way).
constexpr std::int64_t sp24_k_block = 128;    // groups: 4 rows x 128 x 32 bytes = 16 KB of tables
constexpr std::int64_t pairs_k_block = 256;   // pairs: 4 chunks x 256 x 32 bytes = 32 KB

// How a sparse GEMM's work is cut over threads: row units (a tile of rows of one batch: 4 rows
// for 2:4, 32 for the pairs driver) times column units (16-channel panels), first across rows,
// then, when there are fewer row units than threads, across panels too. Every part writes its
// own output elements, each computed by the same kernels on the same data as on one thread (the
// two-channel pairs kernel and the one-channel one give the same wrapping int32 sums), so the
// bytes do not depend on the thread count. One thread: one part, the whole product.
struct sparse_split {
  std::int64_t row_units = 0, col_units = 0, row_parts = 0, col_parts = 0;

  sparse_split() = default;
  sparse_split(int threads, std::int64_t rows, std::int64_t cols) : row_units(rows), col_units(cols) {
    const std::int64_t t = std::max(1, threads);
    row_parts = std::min(rows, t);
    col_parts = row_parts == 0 ? 0 : std::min(cols, (t + row_parts - 1) / row_parts);
  }
  std::int64_t parts() const { return row_parts * col_parts; }
  // Column units per part at most.
  std::int64_t max_cols() const { return col_parts == 0 ? 0 : (col_units + col_parts - 1) / col_parts; }
  // Part `part`'s row units [*r0, *r1) and column units [*c0, *c1).
  void range(std::int64_t part, std::int64_t* r0, std::int64_t* r1, std::int64_t* c0, std::int64_t* c1) const {
    const std::int64_t rp = part / col_parts, cp = part % col_parts;
    *r0 = row_units * rp / row_parts;
    *r1 = row_units * (rp + 1) / row_parts;
    *c0 = col_units * cp / col_parts;
    *c1 = col_units * (cp + 1) / col_parts;
  }
};

// A sparse GEMM driver for packed weights of type P, made once per weights and output stage (a
// plan keeps it; a one-shot call makes one): the kernels, the output stage's per-channel tables
// and, for the pairs driver, each channel's K-block bounds. run() allocates nothing: its working
// memory is `scratch`, reserved for the split beforehand (part_bytes).
template <class P>
struct sparse_driver;

template <>
struct sparse_driver<packed_sparse_2_4_weights> {
  static constexpr std::int64_t tile_rows = 4;
  sparse_kernels kern;
  tile_output_stage stage;
  std::int64_t K, N, G, P;

  sparse_driver(isa level, const output_stage& st, const TensorView<const std::int32_t>& bias, const packed_sparse_2_4_weights& w)
      : kern(select_sparse(level)), stage(st, bias, w.N), K(w.K), N(w.N), G(w.groups()), P(w.panels()) {}

  sparse_split split(int threads, std::int64_t M, std::int64_t batches) const {
    return {threads, batches * ((M + tile_rows - 1) / tile_rows), P};
  }
  // Scratch of one part: a row of activations, its 4 rows of tables, 4 rows of sums per panel.
  struct buffers {
    std::int16_t* row;
    std::int32_t *table, *sums;
    std::size_t bytes;
    buffers(scratch_carver c, std::int64_t K, std::int64_t G, std::int64_t panels)
        : row(c.take<std::int16_t>(K)), table(c.take<std::int32_t>(tile_rows * G * 8)),
          sums(c.take<std::int32_t>(tile_rows * panels * sp24_panel)), bytes(c.used) {}
  };
  std::size_t part_bytes(const sparse_split& sp) const { return buffers(scratch_carver{}, K, G, sp.max_cols()).bytes; }
  std::string name(dtype a) const { return std::string("gemm_sp24_") + type_code(a) + "s8_4x16_" + kern.suffix; }

  template <class A, class S, class O>
  void run(int threads, const sparse_split& sp, const gemm_sparse_problem<A, S, O>& p, const packed_sparse_2_4_weights& w,
           driver_scratch& scratch) const {
    const std::int64_t ts = G * 8, tiles = (p.M + tile_rows - 1) / tile_rows;
    detail::parallel_parts(threads, sp.parts(), [&](std::int64_t part) {
      std::int64_t u0 = 0, u1 = 0, q0 = 0, q1 = 0;
      sp.range(part, &u0, &u1, &q0, &q1);
      const buffers buf(scratch_carver{scratch.part(part)}, K, G, q1 - q0);
      const std::int64_t ldc = (q1 - q0) * sp24_panel, n_end = std::min(q1 * sp24_panel, N);
      alignas(64) std::int32_t c[tile_rows * nr];
      alignas(64) std::int32_t tmp[tile_rows * nr];
      std::int64_t ao = 0, oo = 0;
      for (std::int64_t u = u0; u < u1; ++u) {
        if (u == u0 || u % tiles == 0) p.batch_offsets(u / tiles, &ao, &oo);
        const std::int64_t m0 = u % tiles * tile_rows;
        const int rows = static_cast<int>(std::min<std::int64_t>(tile_rows, p.M - m0));
        for (int m = 0; m < rows; ++m) {
          sparse_load_row(p, ao, m0 + m, buf.row);
          sparse_2_4_table(buf.row, K, buf.table + m * ts);
        }
        std::fill_n(buf.sums, tile_rows * ldc, 0);
        const std::int64_t kb = rows == 1 ? G : sp24_k_block;
        for (std::int64_t g0 = 0; g0 < G; g0 += kb) {
          const std::int64_t gc = std::min(kb, G - g0);
          for (std::int64_t q = q0; q < q1; ++q)
            kern.sp24[rows - 1](gc, buf.table + g0 * 8, ts, w.panel(q) + g0 * sp24_record, buf.sums + (q - q0) * sp24_panel, ldc);
        }
        for (std::int64_t n0 = q0 * sp24_panel; n0 < n_end; n0 += nr) {
          const std::int64_t cols = std::min<std::int64_t>(nr, n_end - n0);
          for (int m = 0; m < rows; ++m) std::copy_n(buf.sums + m * ldc + (n0 - q0 * sp24_panel), nr, c + m * nr);
          sparse_finish_tile(kern, p, stage, c, rows, m0, n0, cols, oo, tmp);
        }
      }
    });
  }
};

// Where each channel's entries cross the K blocks of the pairs driver, found once per call (the
// entries are ascending in K): channel n's entries in block b are [at(n, b), at(n, b + 1)).
// adjacent(n, b): every couple (e0 + 2i, e0 + 2i + 1) of those entries holds neighbouring K
// pairs, whose transposed activations are one contiguous 16-word vector (block CSR blocks of
// even bk starting at even k; rare in CSR).
struct pairs_block_bounds {
  std::int64_t blocks = 0;
  std::vector<std::int64_t> bound;
  std::vector<std::uint8_t> adj;

  explicit pairs_block_bounds(const packed_sparse_pairs_weights& w, std::int64_t block) {
    const std::int64_t N = w.N;
    blocks = (w.k_pairs() + block - 1) / block;
    bound.resize(static_cast<std::size_t>(N * (blocks + 1)));
    adj.resize(static_cast<std::size_t>(N * blocks));
    const std::int32_t* pair = w.pairs();
    for (std::int64_t n = 0; n < N; ++n) {
      std::int64_t e = w.begin(n);
      const std::int64_t end = w.begin(n + 1);
      for (std::int64_t b = 0; b < blocks; ++b) {
        const std::int64_t e0 = e;
        while (e < end && pair[e] < (b + 1) * block) ++e;
        bool adjacent = true;
        for (std::int64_t i = e0; i + 1 < e; i += 2) adjacent = adjacent && pair[i + 1] == pair[i] + 1;
        bound[static_cast<std::size_t>(n * (blocks + 1) + b)] = e0;
        adj[static_cast<std::size_t>(n * blocks + b)] = adjacent;
      }
      bound[static_cast<std::size_t>(n * (blocks + 1) + blocks)] = e;
    }
  }
  std::int64_t at(std::int64_t n, std::int64_t b) const { return bound[static_cast<std::size_t>(n * (blocks + 1) + b)]; }
  bool adjacent(std::int64_t n, std::int64_t b) const { return adj[static_cast<std::size_t>(n * blocks + b)] != 0; }
};

template <>
struct sparse_driver<packed_sparse_pairs_weights> {
  static constexpr int max_chunks = 4;
  static constexpr std::int64_t tile_rows = max_chunks * pairs_chunk;
  sparse_kernels kern;
  tile_output_stage stage;
  pairs_block_bounds kb;
  std::int64_t K, N, cs;
  const char* source;
  // Some channel pair runs the two-channel kernel (name: 32x2): a channel that opens a run of
  // twins (n + 1 stores n's K pairs) and has entries, where the level has that kernel.
  bool twins = false;

  sparse_driver(isa level, const output_stage& st, const TensorView<const std::int32_t>& bias, const packed_sparse_pairs_weights& w)
      : kern(select_sparse(level)), stage(st, bias, w.N), kb(w, pairs_k_block), K(w.K), N(w.N),
        cs((w.k_pairs() + 1) / 2 * 2 * pairs_chunk), source(w.source()) {
    for (std::int64_t n = 0; kern.pairs2[0] != nullptr && n < N; n += w.twin(n) ? 2 : 1)
      twins = twins || (w.twin(n) && w.begin(n + 1) > w.begin(n));
  }

  sparse_split split(int threads, std::int64_t M, std::int64_t batches) const {
    return {threads, batches * ((M + tile_rows - 1) / tile_rows), (N + nr - 1) / nr};
  }
  // Scratch of one part: a row of activations, 4 transposed chunks (a chunk's stride an even
  // number of pairs, 64-byte aligned: a pair couple is one cache line), sums per channel.
  struct buffers {
    std::int16_t* row;
    std::int32_t *at, *sums;
    std::size_t bytes;
    buffers(scratch_carver c, std::int64_t K, std::int64_t cs, std::int64_t channels)
        : row(c.take<std::int16_t>(K)), at(c.take<std::int32_t>(max_chunks * cs)), sums(c.take<std::int32_t>(channels * tile_rows)),
          bytes(c.used) {}
  };
  std::size_t part_bytes(const sparse_split& sp) const { return buffers(scratch_carver{}, K, cs, sp.max_cols() * nr).bytes; }
  std::string name(dtype a) const {
    return std::string("gemm_") + source + "_" + type_code(a) + (twins ? "s8_32x2_" : "s8_32x1_") + kern.suffix;
  }

  template <class A, class S, class O>
  void run(int threads, const sparse_split& sp, const gemm_sparse_problem<A, S, O>& p, const packed_sparse_pairs_weights& w,
           driver_scratch& scratch) const {
    const std::int64_t tiles = (p.M + tile_rows - 1) / tile_rows;
    detail::parallel_parts(threads, sp.parts(), [&](std::int64_t part) {
      std::int64_t u0 = 0, u1 = 0, q0 = 0, q1 = 0;
      sp.range(part, &u0, &u1, &q0, &q1);
      const std::int64_t n_lo = q0 * nr, n_hi = std::min(q1 * nr, N);
      const buffers buf(scratch_carver{scratch.part(part)}, K, cs, n_hi - n_lo);
      // Rows of the last chunk past M hold other rows' values (or 0): they are summed, never stored.
      alignas(64) std::int32_t c[tile_rows * nr] = {};
      alignas(64) std::int32_t tmp[tile_rows * nr];
      std::int64_t ao = 0, oo = 0;
      for (std::int64_t u = u0; u < u1; ++u) {
        if (u == u0 || u % tiles == 0) p.batch_offsets(u / tiles, &ao, &oo);
        const std::int64_t m0 = u % tiles * tile_rows;
        const int rows = static_cast<int>(std::min<std::int64_t>(tile_rows, p.M - m0));
        const int R = static_cast<int>((rows + pairs_chunk - 1) / pairs_chunk);
        for (int m = 0; m < rows; ++m) {
          sparse_load_row(p, ao, m0 + m, buf.row);
          sparse_pairs_transpose(buf.row, K, buf.at + (m / pairs_chunk) * cs, static_cast<int>(m % pairs_chunk));
        }
        const sparse_pairs_kernel one = kern.pairs[R - 1], one_adj = kern.pairs_adjacent[R - 1] ? kern.pairs_adjacent[R - 1] : one;
        const sparse_pairs2_kernel two = kern.pairs2[R - 1], two_adj = kern.pairs2_adjacent[R - 1] ? kern.pairs2_adjacent[R - 1] : two;
        const auto sums = [&](std::int64_t n) { return buf.sums + (n - n_lo) * tile_rows; };  // channel n's rows
        std::fill_n(buf.sums, (n_hi - n_lo) * tile_rows, 0);
        for (std::int64_t b = 0; b < kb.blocks; ++b) {
          for (std::int64_t n = n_lo; n < n_hi; ++n) {
            const bool twin = w.twin(n) && n + 1 < n_hi;  // channel n + 1 has the same pairs (and is this part's)
            const std::int64_t e0 = kb.at(n, b), count = kb.at(n, b + 1) - e0;
            if (count == 0) {
              n += twin ? 1 : 0;  // the twin has no entries in this block either
              continue;
            }
            const bool adjacent = kb.adjacent(n, b);
            if (two != nullptr && twin) {  // one pass for both
              (adjacent ? two_adj : two)(buf.at, cs, w.pairs() + e0, w.weights() + e0, w.weights() + kb.at(n + 1, b), count,
                                         sums(n), sums(n + 1));
              ++n;
              continue;
            }
            (adjacent ? one_adj : one)(buf.at, cs, w.pairs() + e0, w.weights() + e0, count, sums(n));
          }
        }
        for (std::int64_t n0 = n_lo; n0 < n_hi; n0 += nr) {
          const std::int64_t cols = std::min<std::int64_t>(nr, n_hi - n0);
          for (std::int64_t j = 0; j < cols; ++j)
            for (int r = 0; r < rows; ++r) c[r * nr + j] = sums(n0 + j)[r];
          sparse_finish_tile(kern, p, stage, c, rows, m0, n0, cols, oo, tmp);
        }
      }
    });
  }
};

// The one-shot drivers: a driver and scratch made for this call, run on the backend's threads.
template <class P, class A, class S, class O>
void run_sparse_once(const simd_backend& be, const gemm_sparse_problem<A, S, O>& p, const P& w) {
  const sparse_driver<P> d(be.level(), p.stage, p.bias, w);
  const int threads = be.thread_count();
  const sparse_split sp = d.split(threads, p.M, p.batch_count());
  driver_scratch scratch;
  scratch.reserve(sp.parts(), d.part_bytes(sp));
  d.run(threads, sp, p, w, scratch);
  detail::simd_last_kernel_storage() = d.name(p.a.type());
}

// The reference for profiles the kernels do not reproduce (see the top).
template <class A, class S, class O>
bool sparse_reference_if_needed(const gemm_sparse_problem<A, S, O>& p, const char* op) {
  if (wraps_within_32_bits(p.stage.numerics)) return false;
  (void)execute(scalar, p);  // cannot fail: the problem was validated
  detail::simd_last_kernel_storage() = std::string("gemm_") + op + "_reference";
  return true;
}

inline status sparse_packed_profile(const output_stage& st) {
  if (wraps_within_32_bits(st.numerics)) return {};
  return {errc::unsupported, "params: packed sparse weights need an accumulator that wraps at <= 32 bits; pass the sparse matrix "
                             "itself to run saturating or wider accumulators on the reference path"};
}

}  // namespace simd_detail

template <class A, class V, class O>
status execute(const simd_backend& be, const gemm_sparse_problem<A, sparse_2_4_matrix<V>, O>& p) {
  if (simd_detail::sparse_reference_if_needed(p, "sp24")) return {};
  packed_sparse_2_4_weights w;
  NPUQ_RETURN_IF_ERROR(w.pack(*p.b));
  simd_detail::run_sparse_once(be, p, w);
  return {};
}

template <class A, class S, class O, class = std::enable_if_t<std::is_same<S, block_csr_matrix>::value || std::is_same<S, csr_matrix>::value>>
status execute(const simd_backend& be, const gemm_sparse_problem<A, S, O>& p) {
  if (simd_detail::sparse_reference_if_needed(p, std::is_same<S, csr_matrix>::value ? "csr" : "bsr")) return {};
  packed_sparse_pairs_weights w;
  NPUQ_RETURN_IF_ERROR(w.pack(*p.b));
  simd_detail::run_sparse_once(be, p, w);
  return {};
}

// Packs sparse weights once for `gemm(simd, params, a, packed, bias, out)`.
template <class V>
status pack_gemm_weights(const simd_backend&, const sparse_2_4_matrix<V>& b, packed_sparse_2_4_weights* out) {
  if (out == nullptr) return {errc::invalid_argument, "out: null"};
  return out->pack(b);
}
inline status pack_gemm_weights(const simd_backend&, const block_csr_matrix& b, packed_sparse_pairs_weights* out) {
  if (out == nullptr) return {errc::invalid_argument, "out: null"};
  return out->pack(b);
}
inline status pack_gemm_weights(const simd_backend&, const csr_matrix& b, packed_sparse_pairs_weights* out) {
  if (out == nullptr) return {errc::invalid_argument, "out: null"};
  return out->pack(b);
}

// GEMM against packed sparse weights: validated like the unpacked call.
template <class XA, class XBias, class XO>
status try_gemm(const simd_backend& be, const gemm_params& params, const XA& a, const packed_sparse_2_4_weights& b, const XBias& bias,
                const XO& out) {
  gemm_sparse_problem<detail::element_of<XA>, packed_sparse_2_4_weights, detail::element_of<XO>> problem;
  NPUQ_RETURN_IF_ERROR(make_gemm_sparse_problem(params, input_view(a), b, input_view(bias), output_view(out), &problem));
  NPUQ_RETURN_IF_ERROR(simd_detail::sparse_packed_profile(problem.stage));
  simd_detail::run_sparse_once(be, problem, b);
  return {};
}
template <class XA, class XBias, class XO>
status try_gemm(const simd_backend& be, const gemm_params& params, const XA& a, const packed_sparse_pairs_weights& b, const XBias& bias,
                const XO& out) {
  gemm_sparse_problem<detail::element_of<XA>, packed_sparse_pairs_weights, detail::element_of<XO>> problem;
  NPUQ_RETURN_IF_ERROR(make_gemm_sparse_problem(params, input_view(a), b, input_view(bias), output_view(out), &problem));
  NPUQ_RETURN_IF_ERROR(simd_detail::sparse_packed_profile(problem.stage));
  simd_detail::run_sparse_once(be, problem, b);
  return {};
}

template <class XA, class XBias, class XO>
void gemm(const simd_backend& be, const gemm_params& params, const XA& a, const packed_sparse_2_4_weights& b, const XBias& bias,
          const XO& out) {
  throw_if_error(try_gemm(be, params, a, b, bias, out));
}
template <class XA, class XBias, class XO>
void gemm(const simd_backend& be, const gemm_params& params, const XA& a, const packed_sparse_pairs_weights& b, const XBias& bias,
          const XO& out) {
  throw_if_error(try_gemm(be, params, a, b, bias, out));
}

}  // namespace npuq
