// Reference softmax: TFLite's int8 reference loops, the specification other paths are tested on.
//
// Three passes over a row, exactly as reference_ops::Softmax: the maximum, the sum of the
// exponentials of the differences, then each output from the reciprocal of the sum. The
// exponential comes from gemmlowp's function or from the 256-entry table, as the parameters say.
// `ref::softmax_row` is also the softmax step of the reference attention. Parameters of the
// onnxruntime_qlinear contract run `ref::qlinear_softmax_row`, the specification of that contract
// (softmax_qlinear.hpp): the maximum, the float sum of the table's exponentials, each output.
#pragma once

#include <algorithm>
#include <cstdint>

#include "npuq/core/backend.hpp"
#include "npuq/ops/softmax_problem.hpp"

namespace npuq {
namespace ref {

// Softmax of the n values load(0..n-1) into store(i, value); qmin/qmax are the output range.
template <class Load, class Store>
void softmax_row(const softmax_params& p, const softmax_math::exp_table* table, std::int64_t n, Load&& load, Store&& store,
                 std::int32_t qmin, std::int32_t qmax) {
  if (n == 0) return;
  std::int32_t max = load(0);
  for (std::int64_t i = 1; i < n; ++i) max = std::max<std::int32_t>(max, load(i));
  auto e = [&](std::int64_t i) {
    const std::int32_t d = load(i) - max;
    return table != nullptr ? (*table)(d) : softmax_math::exp_of_diff(p, d);
  };
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += softmax_math::sum_term(e(i));
  const auto norm = softmax_math::normalizer::of_sum(sum);
  for (std::int64_t i = 0; i < n; ++i) store(i, softmax_math::clamp_output(norm.scaled(e(i)), qmin, qmax));
}

// ONNX Runtime's QLinearSoftmax of the n values load(0..n-1) into store(i, value).
template <class Load, class Store>
void qlinear_softmax_row(const softmax_params& p, const softmax_math::qlinear::exp_table& table, std::int64_t n, Load&& load,
                         Store&& store, std::int32_t qmax) {
  if (n == 0) return;
  std::int32_t max = load(0);
  for (std::int64_t i = 1; i < n; ++i) max = std::max<std::int32_t>(max, load(i));
  float sum = 0.0f;
  for (std::int64_t i = 0; i < n; ++i) sum += table(max - load(i));
  const float y_multiplier = softmax_math::qlinear::output_multiplier(p);
  for (std::int64_t i = 0; i < n; ++i)
    store(i, softmax_math::qlinear::output(table(max - load(i)), y_multiplier, sum, p.output_zero_point, qmax));
}

}  // namespace ref

template <class I, class O>
status execute(const scalar_backend&, const softmax_problem<I, O>& p) {
  if (p.params.contract == softmax_contract::onnxruntime_qlinear) {
    const auto table = softmax_math::qlinear::exp_table::generate(p.params, p.depth);
    for (std::int64_t r = 0; r < p.rows; ++r) {
      std::int64_t io = 0, oo = 0;
      p.row_offsets(r, &io, &oo);
      ref::qlinear_softmax_row(
          p.params, table, p.depth, [&](std::int64_t i) { return static_cast<std::int32_t>(p.in.load(io + i * p.in_step())); },
          [&](std::int64_t i, std::int32_t v) { p.out.store(oo + i * p.out_step(), static_cast<O>(v)); }, element_traits<O>::max);
    }
    return {};
  }
  softmax_math::exp_table table;
  if (p.params.exp == softmax_exp::table) table = softmax_math::exp_table::generate(p.params);
  const softmax_math::exp_table* t = p.params.exp == softmax_exp::table ? &table : nullptr;
  for (std::int64_t r = 0; r < p.rows; ++r) {
    std::int64_t io = 0, oo = 0;
    p.row_offsets(r, &io, &oo);
    ref::softmax_row(
        p.params, t, p.depth, [&](std::int64_t i) { return static_cast<std::int32_t>(p.in.load(io + i * p.in_step())); },
        [&](std::int64_t i, std::int32_t v) { p.out.store(oo + i * p.out_step(), static_cast<O>(v)); },
        element_traits<O>::min, element_traits<O>::max);
  }
  return {};
}

}  // namespace npuq
