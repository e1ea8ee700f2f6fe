// simd attention: prefill as blocked GEMMs over key tiles, decode as a streaming pass over K and V.
//
// Prefill (S >= 8): per head, K is packed once in tiles of `key_tile` keys (the GEMM's packed
// [d, keys] weights) and V once ([T, dv]); each block of `query_block` queries then runs
//   1. a GEMM per visible key tile writing int8 scores straight into a query_block x T int8 tile
//      (the requantization is the GEMM's output stage with the score multiplier),
//   2. the mask and the table softmax row by row (simd_detail::softmax_row_s8), writing P - zp
//      (0..255, identical for int8 and uint8 P) into a query_block x T uint8 tile,
//   3. a GEMM of that tile with the packed V and the output multiplier into the output rows.
// The row maximum is known before any exponential is summed because a row's scores are all in
// the int8 tile when its softmax starts; memory is O(query_block * T) bytes plus the packed K and
// V of one head: no S x T matrix exists, of int32 or of anything else. Causal blocks skip key
// tiles no query of the block can see.
//
// Decode (S < 8, e.g. one new token against a KV cache): per query, one pass over the visible
// keys computes each int8 score with a dot product, the softmax runs on the int8 scores, and a
// second pass adds (p - zp) * v rows for the keys whose probability is not zero, so K is read
// once and V at most once, as bytes (x86/attention_decode_avx2.hpp,
// x86/attention_decode_avx512.hpp, arm/attention_decode_neon.hpp, a portable loop elsewhere; each
// level runs the family its row of level_table.hpp lists).
// An int4 cache is unpacked head by head into int8 rows first.
//
// Every sum is int32 with wrap-around (exact for accumulators that wrap at <= 32 bits); other
// profiles run the reference ("attention_reference").
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/backends/scalar/attention.hpp"
#include "npuq/backends/simd/gemm.hpp"
#include "npuq/backends/simd/softmax.hpp"
#include "npuq/backends/simd/arm/attention_decode_neon.hpp"
#include "npuq/backends/simd/x86/attention_decode_avx2.hpp"
#include "npuq/backends/simd/x86/attention_decode_avx512.hpp"

namespace npuq {
namespace simd_detail {

constexpr std::int64_t attention_query_block = 64;
constexpr std::int64_t attention_key_tile = 512;

// Head h of a rank-2 or rank-3 attention tensor as a 2-D [rows, cols] view.
template <class V>
TensorView<V> head_matrix(const TensorView<V>& t, std::int64_t h) {
  const Layout& l = t.layout();
  const int r = l.rank();
  const std::int64_t off = t.offset() + (r == 3 ? h * l.stride(0) : 0);
  return {t.data(), off, Layout::strided({l.dim(r - 2), l.dim(r - 1)}, {l.stride(r - 2), l.stride(r - 1)}), t.quant(), t.capacity()};
}

// A head of K or V as 8-bit rows with unit column stride: the view itself when it already is
// one, otherwise a contiguous copy (int4 storage unpacked, or a column-strided view).
template <class KV>
struct head_operand {
  using byte_type = std::conditional_t<std::is_same<KV, int4>::value, std::int8_t, KV>;
  Tensor<byte_type> copy;
  TensorView<const byte_type> view;
  explicit head_operand(const TensorView<const KV>& m) {
    if constexpr (!std::is_same<KV, int4>::value) {
      if (m.layout().stride(1) == 1 || m.dim(1) <= 1) {
        view = m;
        return;
      }
    }
    copy = Tensor<byte_type>(Layout::matrix(m.dim(0), m.dim(1)), m.quant());
    for (std::int64_t i = 0; i < m.dim(0); ++i)
      for (std::int64_t j = 0; j < m.dim(1); ++j) copy.data()[i * m.dim(1) + j] = static_cast<byte_type>(m(i, j));
    view = copy.cview();
  }
  const byte_type* row0() const { return view.data() + view.offset(); }
  std::int64_t row_stride() const { return view.dim(0) <= 1 ? 0 : view.layout().stride(0); }
};

// The decode kernels at one level (see x86/attention_decode_avx2.hpp for what they compute).
template <class KB>
struct decode_kernels {
  void (*dot_rows)(const std::int16_t*, const KB*, std::int64_t, std::int64_t, std::int64_t, std::uint32_t*);
  void (*axpy_rows)(const std::uint8_t*, const std::int32_t*, std::int64_t, const KB*, std::int64_t, std::int64_t, std::uint32_t*);
  tile_apply_fn apply;  // the output stage over rows of 16 sums
  const char* suffix;
};

template <class KB>
void dot_rows_portable(const std::int16_t* q, const KB* k, std::int64_t stride, std::int64_t d, std::int64_t n, std::uint32_t* out) {
  for (std::int64_t t = 0; t < n; ++t) {
    const KB* row = k + t * stride;
    std::uint32_t s = 0;
    for (std::int64_t i = 0; i < d; ++i) s += static_cast<std::uint32_t>(q[i] * static_cast<std::int32_t>(row[i]));
    out[t] = s;
  }
}

template <class KB>
void axpy_rows_portable(const std::uint8_t* w, const std::int32_t* key, std::int64_t n, const KB* v, std::int64_t stride,
                        std::int64_t dv, std::uint32_t* acc) {
  for (std::int64_t i = 0; i < n; ++i) {
    const KB* row = v + key[i] * stride;
    const std::uint32_t wi = w[i];
    for (std::int64_t j = 0; j < dv; ++j) acc[j] += wi * static_cast<std::uint32_t>(static_cast<std::int32_t>(row[j]));
  }
}

// The decode kernels the table of `level` lists (level_table.hpp).
template <class KB>
decode_kernels<KB> select_decode(isa level) {
  const kernel_family f = level_kernels(level).decode;
#if defined(NPUQ_ARCH_X86_64)
  if (f == kernel_family::avx2) return {dot_rows_avx2<KB>, axpy_rows_avx2<KB>, apply_tile_avx2, "avx2"};
  if (f == kernel_family::avx512_vnni)
    return {dot_rows_avx512_vnni<KB>, axpy_rows_avx512_vnni<KB>, apply_tile_rows_avx512, "avx512_vnni"};
#elif defined(NPUQ_ARCH_AARCH64)
  if (f == kernel_family::neon) return {dot_rows_neon<KB>, axpy_rows_neon<KB>, apply_tile_portable, "neon"};
#endif
  (void)f;
  return {dot_rows_portable<KB>, axpy_rows_portable<KB>, apply_tile_portable, "portable"};
}

// The masked scores of row `s` of a head, packed: the keys the mask keeps, their scores after
// the mask in packed[0, count) and their indices in key[0, count).
template <class Q, class KV, class O>
std::int64_t apply_mask_row(const attention_problem<Q, KV, O>& p, std::int64_t h, std::int64_t s, const std::int8_t* scores,
                            std::int64_t vis, std::int8_t* packed, std::int32_t* key) {
  std::int64_t n = 0;
  for (std::int64_t t = 0; t < vis; ++t) {
    std::int32_t sc = scores[t];
    if (!p.apply_mask(h, s, t, &sc)) continue;
    packed[n] = static_cast<std::int8_t>(sc);
    key[n++] = static_cast<std::int32_t>(t);
  }
  return n;
}

// Softmax of row `s` of a head: the scores of its visible keys (masked ones removed) -> P - zp in
// `prob[0, T)` (0 for keys without probability). `scores` holds the int8 scores of keys 0..vis-1.
template <class Q, class KV, class O>
void softmax_scores(const attention_problem<Q, KV, O>& p, const softmax_tables& tables, std::int64_t h, std::int64_t s,
                    const std::int8_t* scores, std::int64_t vis, std::uint8_t* prob, std::int8_t* packed, std::uint8_t* packed_prob,
                    std::int32_t* key) {
  if (!p.has_mask()) {
    std::fill(prob + vis, prob + p.T, std::uint8_t{0});
    softmax_row_s8(tables, scores, vis, prob);
    return;
  }
  std::fill(prob, prob + p.T, std::uint8_t{0});
  const std::int64_t n = apply_mask_row(p, h, s, scores, vis, packed, key);
  softmax_row_s8(tables, packed, n, packed_prob);
  for (std::int64_t i = 0; i < n; ++i) prob[key[i]] = packed_prob[i];
}

template <class Q, class KV, class O>
void attention_prefill(const simd_backend& be, const attention_problem<Q, KV, O>& p, const softmax_tables& tables) {
  const std::int64_t B = std::min(attention_query_block, p.S), T = p.T;
  const std::int64_t tiles = (T + attention_key_tile - 1) / attention_key_tile;
  std::vector<std::int8_t> score(static_cast<std::size_t>(B * T)), packed(static_cast<std::size_t>(T));
  std::vector<std::uint8_t> prob(static_cast<std::size_t>(B * T)), packed_prob(static_cast<std::size_t>(T));
  std::vector<std::int32_t> key(static_cast<std::size_t>(T));
  gemm_params score_params, out_params;
  score_params.numerics = out_params.numerics = p.score_stage.numerics;
  score_params.requant = p.score_stage.channel;
  out_params.requant = p.out_stage.channel;
  const Quant score_quant = Quant::per_tensor(1.0f, p.score_stage.zero_point);
  const Quant prob_quant = Quant::per_tensor(1.0f / 256.0f, 0);
  using KB = typename head_operand<KV>::byte_type;
  std::vector<packed_gemm_weights<KB>> k_tiles(static_cast<std::size_t>(tiles));
  packed_gemm_weights<KB> v_packed;
  for (std::int64_t h = 0; h < p.heads; ++h) {
    const head_operand<KV> kh(head_matrix(p.k, h)), vh(head_matrix(p.v, h));
    // K^T tiles ([d, keys]) and V ([T, dv]) packed for the level the GEMMs run at, read through
    // raw row pointers (the heads were validated with the problem).
    const KB* kb = kh.row0();
    const KB* vb = vh.row0();
    const std::int64_t ks = kh.row_stride(), vs = vh.row_stride();
    for (std::int64_t c = 0; c < tiles; ++c) {
      const std::int64_t t0 = c * attention_key_tile, tn = std::min(attention_key_tile, T - t0);
      k_tiles[static_cast<std::size_t>(c)].pack_from(
          p.d, tn, kh.view.quant(), [&](std::int64_t i, std::int64_t t) { return kb[(t0 + t) * ks + i]; }, be.level());
    }
    v_packed.pack_from(T, p.dv, vh.view.quant(), [&](std::int64_t t, std::int64_t j) { return vb[t * vs + j]; }, be.level());
    const TensorView<const Q> qh = head_matrix(p.q, h);
    const TensorView<O> oh = head_matrix(p.out, h);
    for (std::int64_t s0 = 0; s0 < p.S; s0 += B) {
      const std::int64_t b = std::min(B, p.S - s0);
      const std::int64_t vis_max = p.visible_keys(s0 + b - 1);
      for (std::int64_t c = 0; c < tiles && c * attention_key_tile < vis_max; ++c) {
        const std::int64_t t0 = c * attention_key_tile, tn = std::min(attention_key_tile, T - t0);
        const TensorView<std::int8_t> dst(score.data(), t0, Layout::strided({b, tn}, {T, 1}), score_quant, B * T);
        throw_if_error(try_gemm(be, score_params, qh.slice(0, s0, b), k_tiles[static_cast<std::size_t>(c)], no_bias, dst));
      }
      for (std::int64_t r = 0; r < b; ++r)
        softmax_scores(p, tables, h, s0 + r, score.data() + r * T, p.visible_keys(s0 + r), prob.data() + r * T, packed.data(),
                       packed_prob.data(), key.data());
      const TensorView<const std::uint8_t> pv(prob.data(), Layout::matrix(b, T), prob_quant, B * T);
      throw_if_error(try_gemm(be, out_params, pv, v_packed, no_bias, oh.slice(0, s0, b)));
    }
  }
}

// out[i] = stage(sums[i]) for i < n, all channels alike (a per-tensor stage), 16 at a time.
template <class KB>
void apply_rows(const decode_kernels<KB>& kern, const tile_output_stage& st, const std::int32_t* sums, std::int64_t n, std::int32_t* out) {
  const std::int64_t bulk = n / 16 * 16;
  if (bulk > 0) kern.apply(st, sums, static_cast<int>(bulk / 16), 0, 0, 16, out);
  for (std::int64_t i = bulk; i < n; ++i) out[i] = st.apply_one(sums[i], i - bulk, 0);
}

// int32 values already in [-128, 127] -> int8, in fixed-length blocks compilers vectorize.
inline void narrow(const std::int32_t* in, std::int64_t n, std::int8_t* out) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) out[i + j] = static_cast<std::int8_t>(in[i + j]);
  for (; i < n; ++i) out[i] = static_cast<std::int8_t>(in[i]);
}

template <class Q, class KV, class O>
const char* attention_decode(const simd_backend& be, const attention_problem<Q, KV, O>& p, const softmax_tables& tables) {
  using KB = typename head_operand<KV>::byte_type;
  const decode_kernels<KB> kern = select_decode<KB>(be.level());
  const std::int64_t T = p.T, d = p.d, dv = p.dv;
  std::vector<std::int16_t> qc(static_cast<std::size_t>(d));
  std::vector<std::uint32_t> dots(static_cast<std::size_t>(T)), acc(static_cast<std::size_t>(dv));
  std::vector<std::int32_t> requantized(static_cast<std::size_t>(T));
  // Both output stages over rows of 16 sums; the bias carries the zero-point term of each query.
  tile_output_stage score_tile(p.score_stage, TensorView<const std::int32_t>{}, 16);  // bias = -zk * sum(q - zq)
  tile_output_stage out_tile(p.out_stage, TensorView<const std::int32_t>{}, 16);      // bias = -zv * sum(p - zp)
  std::vector<std::int32_t> out_row(static_cast<std::size_t>(dv));
  std::vector<std::int8_t> score(static_cast<std::size_t>(T)), packed(static_cast<std::size_t>(T));
  std::vector<std::uint8_t> packed_prob(static_cast<std::size_t>(T));
  std::vector<std::int32_t> key(static_cast<std::size_t>(T)), kept_key(static_cast<std::size_t>(T));
  for (std::int64_t h = 0; h < p.heads; ++h) {
    const head_operand<KV> kh(head_matrix(p.k, h)), vh(head_matrix(p.v, h));
    const TensorView<const Q> qh = head_matrix(p.q, h);
    for (std::int64_t s = 0; s < p.S; ++s) {
      std::uint32_t q_sum = 0;
      const auto* qrow = qh.data() + qh.offset() + s * qh.layout().stride(0);
      const std::int64_t q_step = qh.layout().stride(1);
      for (std::int64_t i = 0; i < d; ++i) {
        qc[static_cast<std::size_t>(i)] = static_cast<std::int16_t>(qrow[i * q_step] - p.q_zero_point);
        q_sum += static_cast<std::uint32_t>(qc[static_cast<std::size_t>(i)]);
      }
      // Scores: sum (q - zq) * k - zk * sum (q - zq), requantized.
      const std::uint32_t k_offset = q_sum * static_cast<std::uint32_t>(p.k_zero_point);
      const std::int64_t vis = p.visible_keys(s);
      kern.dot_rows(qc.data(), kh.row0(), kh.row_stride(), d, vis, dots.data());
      std::fill(score_tile.bias.begin(), score_tile.bias.end(), static_cast<std::int32_t>(0u - k_offset));
      apply_rows(kern, score_tile, reinterpret_cast<const std::int32_t*>(dots.data()), vis, requantized.data());
      narrow(requantized.data(), vis, score.data());
      // Probabilities: only the keys whose P - zp is not zero, as (weight, key) pairs.
      std::int64_t n = 0;
      if (!p.has_mask()) {
        n = softmax_row_nonzero(tables, score.data(), vis, packed_prob.data(), key.data());
      } else {
        const std::int64_t kept = apply_mask_row(p, h, s, score.data(), vis, packed.data(), kept_key.data());
        n = softmax_row_nonzero(tables, packed.data(), kept, packed_prob.data(), key.data());
        for (std::int64_t i = 0; i < n; ++i) key[static_cast<std::size_t>(i)] = kept_key[static_cast<std::size_t>(key[static_cast<std::size_t>(i)])];
      }
      std::uint32_t p_sum = 0;
      for (std::int64_t i = 0; i < n; ++i) p_sum += packed_prob[static_cast<std::size_t>(i)];
      std::fill(acc.begin(), acc.end(), 0u);
      kern.axpy_rows(packed_prob.data(), key.data(), n, vh.row0(), vh.row_stride(), dv, acc.data());
      std::fill(out_tile.bias.begin(), out_tile.bias.end(), static_cast<std::int32_t>(0u - p_sum * static_cast<std::uint32_t>(p.v_zero_point)));
      apply_rows(kern, out_tile, reinterpret_cast<const std::int32_t*>(acc.data()), dv, out_row.data());
      O* orow = p.out.data() + p.at(p.out, h, s, 0);
      const std::int64_t o_step = p.out.layout().stride(p.out.rank() - 1);
      for (std::int64_t j = 0; j < dv; ++j) orow[j * o_step] = static_cast<O>(out_row[static_cast<std::size_t>(j)]);
    }
  }
  return kern.suffix;
}

}  // namespace simd_detail

template <class Q, class KV, class O>
status execute(const simd_backend& be, const attention_problem<Q, KV, O>& p) {
  if (!simd_detail::wraps_within_32_bits(p.score_stage.numerics)) {
    NPUQ_RETURN_IF_ERROR(execute(scalar, p));
    detail::simd_last_kernel_storage() = "attention_reference";
    return {};
  }
  const auto& tables = simd_detail::softmax_tables::cached(p.softmax, be.level());
  if (p.S >= 8 && p.T > 0) {
    simd_detail::attention_prefill(be, p, tables);
    detail::simd_last_kernel_storage() = "attention_prefill_b64_t512+" + detail::simd_last_kernel_storage();
  } else {
    const char* suffix = simd_detail::attention_decode(be, p, tables);
    detail::simd_last_kernel_storage() = std::string("attention_decode_") + (std::is_same<KV, int4>::value ? "s4" : "s8") + "_rows_" + suffix;
  }
  return {};
}

}  // namespace npuq
