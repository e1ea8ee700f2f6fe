// Reference int16 softmax: TFLite's SoftmaxInt16 loops, the specification other paths are tested on.
//
// Three passes over a row, as reference_integer_ops::SoftmaxInt16: the maximum, the sum of the
// table exponentials of the differences, then each output from the table reciprocal of the sum.
// TFLite caches the exponentials in the output buffer between the passes; this recomputes them,
// which gives the same integers and keeps the loops independent of the output layout.
#pragma once

#include <algorithm>
#include <cstdint>

#include "npuq/core/backend.hpp"
#include "npuq/ops/softmax_int16_problem.hpp"

namespace npuq {
namespace ref {

// Softmax of the n int16 values load(0..n-1) into store(i, value).
template <class Load, class Store>
void softmax_int16_row(const softmax_int16_params& p, std::int64_t n, Load&& load, Store&& store) {
  if (n == 0) return;
  std::int32_t max = load(0);
  for (std::int64_t i = 1; i < n; ++i) max = std::max<std::int32_t>(max, load(i));
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += softmax_int16_math::exp_of_diff(p, load(i) - max);
  const auto norm = softmax_int16_math::normalizer::of_sum(p, sum);
  for (std::int64_t i = 0; i < n; ++i) store(i, norm.scaled(softmax_int16_math::exp_of_diff(p, load(i) - max)));
}

}  // namespace ref

inline status execute(const scalar_backend&, const softmax_int16_problem& p) {
  for (std::int64_t r = 0; r < p.rows; ++r) {
    std::int64_t io = 0, oo = 0;
    p.row_offsets(r, &io, &oo);
    ref::softmax_int16_row(
        p.params, p.depth, [&](std::int64_t i) { return static_cast<std::int32_t>(p.in.load(io + i * p.in_step())); },
        [&](std::int64_t i, std::int16_t v) { p.out.store(oo + i * p.out_step(), v); });
  }
  return {};
}

}  // namespace npuq
