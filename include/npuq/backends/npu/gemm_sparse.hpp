// GEMM with sparse weights on the NPU emulator: `npuq::gemm(emu, params, a, sparse_b, bias, out)`
// for the formats of formats/sparse.hpp (2:4 with int8 or int4 values, block CSR, CSR).
//
// This exists so that a sparse layer is charged what a sparse-capable NPU spends on it: the
// weight DMA moves the compressed tile (values plus the format's metadata, counted per tile by
// sparse_tile below), and profile::sparse_weights says whether the weights the format leaves out
// only save bandwidth and MAC energy (bandwidth_only) or also skip their MAC cycles (skip_macs).
// Tiles are still sized for dense weights (the buffers must hold a tile whatever its density).
//
// The integers are the dense GEMM's on the decompressed weights (ops/gemm_sparse_problem.hpp
// explains why skipping zero products is exact under every accumulator rule). A band of whole
// output rows runs the simd sparse kernels on the weights packed once per op; any other tile
// (channel or K subsets: checked partial sums, spilled accumulators) sums the stored entries of
// its channels directly, in exact int32 (a tile's K is at most max_tile_k).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/backends/npu/gemm.hpp"
#include "npuq/ops/gemm_sparse.hpp"
#include "npuq/simd.hpp"

namespace npuq {
namespace npu {
namespace detail {

// Stored entries of channels [n0, n0 + nt) inside K range [k0, k0 + kt): their total and the
// most any one channel holds.
template <class S>
void count_stored(const S& s, std::int64_t n0, std::int64_t nt, std::int64_t k0, std::int64_t kt, sparse_tile_info* r) {
  for (std::int64_t n = n0; n < n0 + nt; ++n) {
    std::int64_t c = 0;
    for_each_entry(s, n, [&](std::int64_t k, std::int8_t) { c += k >= k0 && k < k0 + kt; });
    r->stored += c;
    r->max_column = std::max(r->max_column, c);
  }
}

// Bytes, stored entries and longest channel of a sparse weight tile, per format.
template <class V>
sparse_tile_info sparse_tile_of(const sparse_2_4_matrix<V>& s, std::int64_t n0, std::int64_t nt, std::int64_t k0, std::int64_t kt, bool) {
  // A group belongs to the K tile holding its first row; per group: the kept values and an index byte.
  const std::int64_t g0 = (k0 + 3) / 4, g1 = std::min(s.groups(), (k0 + kt + 3) / 4);
  const std::int64_t groups = std::max<std::int64_t>(0, g1 - g0);
  sparse_tile_info r;
  r.bytes = nt * groups * ((std::is_same<V, int4>::value ? 1 : 2) + 1);
  count_stored(s, n0, nt, k0, kt, &r);
  return r;
}

// Block CSR: every stored block of a block row the tile touches whose first K row lies in the
// tile (bn * bk values and its int32 block-column index), plus the row pointers of those block
// rows with the first K tile (and the closing pointer with the last block row).
inline sparse_tile_info sparse_tile_of(const block_csr_matrix& s, std::int64_t n0, std::int64_t nt, std::int64_t k0, std::int64_t kt,
                                       bool first_k) {
  sparse_tile_info r;
  if (nt <= 0) return r;
  const std::int64_t r0 = n0 / s.bn, r1 = (n0 + nt - 1) / s.bn;
  for (std::int64_t br = r0; br <= r1; ++br) {
    for (std::int32_t b = s.row_ptr[static_cast<std::size_t>(br)]; b < s.row_ptr[static_cast<std::size_t>(br + 1)]; ++b) {
      const std::int64_t kb = static_cast<std::int64_t>(s.col_idx[static_cast<std::size_t>(b)]) * s.bk;
      if (kb >= k0 && kb < k0 + kt) r.bytes += s.bn * s.bk + 4;
    }
    if (first_k) r.bytes += 4 + (br == s.block_rows() - 1 ? 4 : 0);
  }
  count_stored(s, n0, nt, k0, kt, &r);
  return r;
}

// CSR: a value byte and an int32 k index per entry in the tile, plus each channel's row
// pointer with the first K tile (and the closing pointer with the last channel).
inline sparse_tile_info sparse_tile_of(const csr_matrix& s, std::int64_t n0, std::int64_t nt, std::int64_t k0, std::int64_t kt,
                                       bool first_k) {
  sparse_tile_info r;
  count_stored(s, n0, nt, k0, kt, &r);
  r.bytes = 5 * r.stored + (first_k ? 4 * nt + (n0 + nt == s.N ? 4 : 0) : 0);
  return r;
}

// The simd packed form of each format.
template <class S>
struct packed_sparse_of {
  using type = packed_sparse_pairs_weights;
};
template <class V>
struct packed_sparse_of<sparse_2_4_matrix<V>> {
  using type = packed_sparse_2_4_weights;
};

// The operand interface the emulator's run() reads, for a GEMM with sparse weights.
template <class A, class S, class O>
struct gemm_sparse_operands {
  const gemm_sparse_problem<A, S, O>& p;
  mutable typename packed_sparse_of<S>::type packed;  // for bands (all channels, all of K), packed on first use
  mutable bool is_packed = false;

  explicit gemm_sparse_operands(const gemm_sparse_problem<A, S, O>& pb) : p(pb) {}

  std::string shape_string() const {
    return "M=" + std::to_string(p.M) + " N=" + std::to_string(p.N) + " K=" + std::to_string(p.K) +
           (p.batch_count() > 1 ? " batches=" + std::to_string(p.batch_count()) : "") + " sparse (" +
           std::to_string(nonzeros(*p.b)) + " nonzero weights)";
  }
  std::int64_t max_abs_a() const { return max_abs_offset<A>(p.a_zero_point); }
  std::int64_t max_abs_b() const { return std::is_same<S, sparse_2_4_matrix<int4>>::value ? 8 : 128; }  // zero point 0
  std::int64_t max_abs_bias() const { return detail::max_abs_bias(p.bias); }
  bool has_bias() const { return p.has_bias(); }
  std::int32_t bias(std::int64_t ch) const { return p.bias(ch); }
  std::int64_t channel(std::int64_t, std::int64_t n) const { return n; }
  std::int64_t b_instance(std::int64_t) const { return 0; }
  sparse_tile_info sparse_tile(std::int64_t n0, std::int64_t nt, std::int64_t k0, std::int64_t kt, bool first_k) const {
    return sparse_tile_of(*p.b, n0, nt, k0, kt, first_k);
  }

  // A rows [ox0, ox0 + tw) x K range, as [mt][kt].
  void load_a(const tile_ref& t, std::int16_t* dst) const {
    std::int64_t ao = 0, oo = 0;
    p.batch_offsets(t.inst, &ao, &oo);
    const std::int64_t sk = p.a.layout().stride(p.a.rank() - 1), kt = t.kcn;
    for (std::int64_t i = 0; i < t.tw; ++i) {
      const std::int64_t base = p.a_row(ao, t.ox0 + i) + t.kc0 * sk;
      for (std::int64_t k = 0; k < kt; ++k) dst[i * kt + k] = static_cast<std::int16_t>(p.a.load(base + k * sk) - p.a_zero_point);
    }
  }
  // B columns [n0, n0 + nt) x K range, as [nt][kt] (the decompressed weights).
  void load_b(const tile_ref& t, std::int16_t* dst) const {
    const std::int64_t kt = t.kcn, k0 = t.kc0;
    std::fill(dst, dst + t.nt * kt, std::int16_t{0});
    for (std::int64_t j = 0; j < t.nt; ++j)
      for_each_entry(*p.b, t.n0 + j, [&](std::int64_t k, std::int8_t v) {
        if (k >= k0 && k < k0 + kt) dst[j * kt + (k - k0)] = v;
      });
  }
  // Exact sums of the tile's K range, [mt][nt].
  status tile_sums(const tile_ref& t, std::int32_t* part) const {
    std::int64_t ao = 0, oo = 0;
    p.batch_offsets(t.inst, &ao, &oo);
    const Layout& al = p.a.layout();
    const std::int64_t sm = al.stride(al.rank() - 2), sk = al.stride(al.rank() - 1);
    if (t.n0 == 0 && t.nt == p.N && t.kc0 == 0 && t.kcn == p.K && p.K > 0) {  // a band: the simd sparse kernels
      if (!is_packed) {
        NPUQ_RETURN_IF_ERROR(pack_gemm_weights(npuq::simd, *p.b, &packed));
        is_packed = true;
      }
      // The simd sparse kernels at the kernel layer (a slice of the op's validated A, weights
      // packed from its validated matrix): int32 raw sums, nothing validated again per tile.
      gemm_sparse_problem<A, typename packed_sparse_of<S>::type, std::int32_t> q;
      q.a = TensorView<const A>(p.a.data(), p.a.offset() + ao + t.ox0 * sm, Layout::strided({t.tw, p.K}, {sm, sk}), Quant(), p.a.capacity());
      q.b = &packed;
      q.out = TensorView<std::int32_t>(part, Layout::strided({t.tw, t.nt}, {t.nt, 1}));
      q.M = t.tw;
      q.N = p.N;
      q.K = p.K;
      q.a_zero_point = p.a_zero_point;
      simd_detail::run_sparse_once(npuq::simd, q, packed);
      return {};
    }
    const std::int64_t k0 = t.kc0, k1 = t.kc0 + t.kcn;
    std::fill(part, part + t.tw * t.nt, std::int32_t{0});
    for (std::int64_t j = 0; j < t.nt; ++j)
      for_each_entry(*p.b, t.n0 + j, [&](std::int64_t k, std::int8_t v) {
        if (k < k0 || k >= k1 || v == 0) return;
        for (std::int64_t i = 0; i < t.tw; ++i) {
          const std::int32_t x = p.a.load(p.a_row(ao, t.ox0 + i) + k * sk) - p.a_zero_point;
          part[i * t.nt + j] += x * v;  // |product| < 2^15, kt <= 2^15: exact
        }
      });
    return {};
  }
  void store(const tile_ref& t, const std::int32_t* v) const {
    std::int64_t ao = 0, oo = 0;
    p.batch_offsets(t.inst, &ao, &oo);
    const std::int64_t sn = p.out.layout().stride(p.out.rank() - 1);
    for (std::int64_t i = 0; i < t.tw; ++i) store_values(p.out.data() + p.out_row(oo, t.ox0 + i) + t.n0 * sn, sn, v + i * t.nt, t.nt);
  }
};

}  // namespace detail

template <class A, class S, class O, class = std::enable_if_t<is_sparse_format<S>::value>>
status execute(const emulator& emu, const gemm_sparse_problem<A, S, O>& p) {
  op_shape s;
  s.op = "gemm_sparse";
  s.instances = p.batch_count();
  s.OW = p.M;
  s.N = p.N;
  s.k_units = p.K;
  s.out_bits = 8 * static_cast<int>(sizeof(O));
  s.w_bits = std::is_same<S, sparse_2_4_matrix<int4>>::value ? 4 : 8;  // dense-equivalent tile sizing
  return emu.hooks().run(s, detail::gemm_sparse_operands<A, S, O>(p), p.stage);
}

}  // namespace npu
}  // namespace npuq
