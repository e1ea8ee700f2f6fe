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
// second pass adds (p - zp) * v rows for the keys whose probability is not zero, so K and V are
// each read once, as int8 (or unpacked nibble by nibble from an int4 cache).
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

// An 8-bit copy of a head of K or V when the kernels cannot read it in place (int4 storage).
template <class KV>
struct head_operand {
  using byte_type = std::conditional_t<std::is_same<KV, int4>::value, std::int8_t, KV>;
  Tensor<byte_type> copy;
  TensorView<const byte_type> view;
  explicit head_operand(const TensorView<const KV>& m) {
    if constexpr (std::is_same<KV, int4>::value) {
      copy = Tensor<byte_type>(Layout::matrix(m.dim(0), m.dim(1)), m.quant());
      for (std::int64_t i = 0; i < m.dim(0); ++i)
        for (std::int64_t j = 0; j < m.dim(1); ++j) copy.data()[i * m.dim(1) + j] = static_cast<byte_type>(m(i, j));
      view = copy.cview();
    } else {
      view = m;
    }
  }
};

// The int32 accumulator (wrapped to 32 bits) reduced to the profile's width, through a stage.
inline std::int32_t finish_wrapped(const output_stage& st, std::uint32_t acc) {
  return st.apply(wrap_to_bits(static_cast<std::int32_t>(acc), st.numerics.acc.bits), 0);
}

// Row `i` of a 2-D view as int16 values (contiguous 8-bit rows are read in place by the caller).
template <class V>
void load_row(const TensorView<V>& m, std::int64_t i, std::int16_t* dst) {
  const std::int64_t n = m.dim(1);
  for (std::int64_t j = 0; j < n; ++j) dst[j] = static_cast<std::int16_t>(m.load(m.offset() + i * m.layout().stride(0) + j * m.layout().stride(1)));
}

// Softmax of row `s` of a head: the scores of its visible keys (masked ones removed) -> P - zp in
// `prob` (0 for keys without probability). `scores` holds the int8 scores of keys 0..vis-1.
template <class Q, class KV, class O>
void softmax_scores(const attention_problem<Q, KV, O>& p, const softmax_tables& tables, std::int64_t h, std::int64_t s,
                    const std::int8_t* scores, std::int64_t vis, std::uint8_t* prob, std::int8_t* packed, std::uint8_t* packed_prob,
                    std::int32_t* key) {
  std::fill(prob + vis, prob + p.T, std::uint8_t{0});
  if (!p.has_mask()) {
    softmax_row_s8(tables, scores, vis, prob);
    return;
  }
  std::int64_t n = 0;
  for (std::int64_t t = 0; t < vis; ++t) {
    std::int32_t sc = scores[t];
    prob[t] = 0;
    if (!p.apply_mask(h, s, t, &sc)) continue;
    packed[n] = static_cast<std::int8_t>(sc);
    key[n++] = static_cast<std::int32_t>(t);
  }
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
    for (std::int64_t c = 0; c < tiles; ++c) {
      const std::int64_t t0 = c * attention_key_tile, tn = std::min(attention_key_tile, T - t0);
      throw_if_error(k_tiles[static_cast<std::size_t>(c)].pack(kh.view.slice(0, t0, tn).with_layout(
          Layout::strided({p.d, tn}, {kh.view.layout().stride(1), kh.view.layout().stride(0)}))));
    }
    throw_if_error(v_packed.pack(vh.view));
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

template <class Q, class KV, class O>
void attention_decode(const attention_problem<Q, KV, O>& p, const softmax_tables& tables) {
  const std::int64_t T = p.T, d = p.d, dv = p.dv;
  std::vector<std::int16_t> qc(static_cast<std::size_t>(d)), row(static_cast<std::size_t>(std::max(d, dv)));
  std::vector<std::int8_t> score(static_cast<std::size_t>(T)), packed(static_cast<std::size_t>(T));
  std::vector<std::uint8_t> prob(static_cast<std::size_t>(T)), packed_prob(static_cast<std::size_t>(T));
  std::vector<std::int32_t> key(static_cast<std::size_t>(T));
  std::vector<std::uint32_t> acc(static_cast<std::size_t>(dv));
  constexpr bool bytes = is_8bit_v<KV>;
  for (std::int64_t h = 0; h < p.heads; ++h) {
    const TensorView<const KV> kh = head_matrix(p.k, h), vh = head_matrix(p.v, h);
    const bool k_rows = bytes && kh.layout().stride(1) == 1, v_rows = bytes && vh.layout().stride(1) == 1;
    const TensorView<const Q> qh = head_matrix(p.q, h);
    for (std::int64_t s = 0; s < p.S; ++s) {
      std::uint32_t q_sum = 0;
      for (std::int64_t i = 0; i < d; ++i) {
        qc[static_cast<std::size_t>(i)] = static_cast<std::int16_t>(qh(s, i) - p.q_zero_point);
        q_sum += static_cast<std::uint32_t>(qc[static_cast<std::size_t>(i)]);
      }
      const std::uint32_t k_offset = q_sum * static_cast<std::uint32_t>(p.k_zero_point);
      const std::int64_t vis = p.visible_keys(s);
      for (std::int64_t t = 0; t < vis; ++t) {
        std::uint32_t dot = 0;
        if (k_rows) {
          const auto* kr = reinterpret_cast<const storage_t<KV>*>(kh.data()) + kh.offset() + t * kh.layout().stride(0);
          for (std::int64_t i = 0; i < d; ++i) dot += static_cast<std::uint32_t>(qc[static_cast<std::size_t>(i)] * kr[i]);
        } else {
          load_row(kh, t, row.data());
          for (std::int64_t i = 0; i < d; ++i) dot += static_cast<std::uint32_t>(qc[static_cast<std::size_t>(i)] * row[static_cast<std::size_t>(i)]);
        }
        score[static_cast<std::size_t>(t)] = static_cast<std::int8_t>(finish_wrapped(p.score_stage, dot - k_offset));
      }
      softmax_scores(p, tables, h, s, score.data(), vis, prob.data(), packed.data(), packed_prob.data(), key.data());
      std::fill(acc.begin(), acc.end(), 0u);
      std::uint32_t p_sum = 0;
      for (std::int64_t t = 0; t < vis; ++t) {
        const std::uint32_t w = prob[static_cast<std::size_t>(t)];
        if (w == 0) continue;
        p_sum += w;
        if (v_rows) {
          const auto* vr = reinterpret_cast<const storage_t<KV>*>(vh.data()) + vh.offset() + t * vh.layout().stride(0);
          for (std::int64_t j = 0; j < dv; ++j) acc[static_cast<std::size_t>(j)] += w * static_cast<std::uint32_t>(static_cast<std::int32_t>(vr[j]));
        } else {
          load_row(vh, t, row.data());
          for (std::int64_t j = 0; j < dv; ++j)
            acc[static_cast<std::size_t>(j)] += w * static_cast<std::uint32_t>(static_cast<std::int32_t>(row[static_cast<std::size_t>(j)]));
        }
      }
      const std::uint32_t v_offset = p_sum * static_cast<std::uint32_t>(p.v_zero_point);
      for (std::int64_t j = 0; j < dv; ++j)
        p.out.store(p.at(p.out, h, s, j), static_cast<O>(finish_wrapped(p.out_stage, acc[static_cast<std::size_t>(j)] - v_offset)));
    }
  }
}

}  // namespace simd_detail

template <class Q, class KV, class O>
status execute(const simd_backend& be, const attention_problem<Q, KV, O>& p) {
  if (!simd_detail::wraps_within_32_bits(p.score_stage.numerics)) {
    NPUQ_RETURN_IF_ERROR(execute(scalar, p));
    detail::simd_last_kernel_storage() = "attention_reference";
    return {};
  }
  const auto tables = simd_detail::softmax_tables::make(p.softmax);
  if (p.S >= 8 && p.T > 0) {
    simd_detail::attention_prefill(be, p, tables);
    detail::simd_last_kernel_storage() = "attention_prefill_b64_t512+" + detail::simd_last_kernel_storage();
  } else {
    simd_detail::attention_decode(p, tables);
    detail::simd_last_kernel_storage() = std::string("attention_decode_") + (std::is_same<KV, int4>::value ? "s4" : "s8") + "_rows";
  }
  return {};
}

}  // namespace npuq
