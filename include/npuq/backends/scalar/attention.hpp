// Reference attention: one query at a time, the specification the other backends are tested on.
//
// For each head and query: the int8 score of every visible key (an int32 dot product under the
// profile's accumulator, requantized like a GEMM output), the mask, TFLite's softmax over the
// keys that remain (ref::softmax_row), then each output element as the requantized sum of
// (p - zero point) * (v - zero point) over those keys. Memory is O(T) per call; nothing S x T
// is ever held. Removed keys would contribute p - zero point = 0 to the last sum, so leaving
// them out gives the same integers as the unfused BatchMatMul -> Softmax -> BatchMatMul graph.
#pragma once

#include <cstdint>
#include <vector>

#include "npuq/backends/scalar/softmax.hpp"
#include "npuq/core/backend.hpp"
#include "npuq/ops/attention_problem.hpp"

namespace npuq {

template <class Q, class KV, class O>
status execute(const scalar_backend&, const attention_problem<Q, KV, O>& p) {
  softmax_math::exp_table table;
  if (p.softmax.exp == softmax_exp::table) table = softmax_math::exp_table::generate(p.softmax);
  const softmax_math::exp_table* t_ptr = p.softmax.exp == softmax_exp::table ? &table : nullptr;
  std::vector<std::int64_t> key(static_cast<std::size_t>(p.T));
  std::vector<std::int32_t> score(static_cast<std::size_t>(p.T)), prob(static_cast<std::size_t>(p.T));
  for (std::int64_t h = 0; h < p.heads; ++h) {
    for (std::int64_t s = 0; s < p.S; ++s) {
      std::size_t n = 0;
      for (std::int64_t t = 0; t < p.visible_keys(s); ++t) {
        accumulator acc(p.score_stage.numerics.acc);
        for (std::int64_t i = 0; i < p.d; ++i)
          acc.add((p.q.load(p.at(p.q, h, s, i)) - p.q_zero_point) * (p.k.load(p.at(p.k, h, t, i)) - p.k_zero_point));
        std::int32_t sc = p.score_stage.apply(acc.result(), 0);
        if (!p.apply_mask(h, s, t, &sc)) continue;
        key[n] = t;
        score[n++] = sc;
      }
      ref::softmax_row(
          p.softmax, t_ptr, static_cast<std::int64_t>(n), [&](std::int64_t i) { return score[static_cast<std::size_t>(i)]; },
          [&](std::int64_t i, std::int32_t v) { prob[static_cast<std::size_t>(i)] = v; }, p.p_min, p.p_max);
      for (std::int64_t j = 0; j < p.dv; ++j) {
        accumulator acc(p.out_stage.numerics.acc);
        for (std::size_t i = 0; i < n; ++i)
          acc.add((prob[i] - p.p_zero_point) * (p.v.load(p.at(p.v, h, key[i], j)) - p.v_zero_point));
        p.out.store(p.at(p.out, h, s, j), static_cast<O>(p.out_stage.apply(acc.result(), 0)));
      }
    }
  }
  return {};
}

}  // namespace npuq
