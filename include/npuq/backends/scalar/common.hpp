// Helpers shared by the reference kernels.
#pragma once

#include <cstdint>

#include "npuq/ops/output_stage.hpp"

namespace npuq {
namespace ref {

// Bias (one more addition under the accumulator rule), width reduction, output stage.
template <class O>
O finish(accumulator& acc, const output_stage& st, const TensorView<const std::int32_t>& bias, std::int64_t channel) {
  if (bias.rank() == 1) acc.add(bias(channel));
  return static_cast<O>(st.apply(acc.result(), channel));
}

}  // namespace ref
}  // namespace npuq
