// ONNX Runtime's QLinearSoftmax (com.microsoft, CPU provider) as an integer contract: the
// arithmetic of softmax_contract::onnxruntime_qlinear.
//
// Why this exists: ONNX Runtime runs an 8-bit softmax (QLinearSoftmax, and DequantizeLinear ->
// Softmax -> QuantizeLinear once its optimizer fuses them) with a float lookup table, not with
// TFLite's fixed point, and the two differ by one unit on a few elements. This header states
// ORT's arithmetic (onnxruntime/contrib_ops/cpu/quantization/qlinear_softmax.cc, as shipped in
// onnxruntime-node 1.31.1) so npuq can compute the same bytes. For a row of n 8-bit values x,
// input scale s, output scale ys, output zero point z and output range [qmin, qmax]:
//
//   shift  = max(0, double(logf(FLT_MAX / float(n))) - 5) / double(s)      (keeps the sum finite)
//   E[k]   = float(exp((double(-k) + shift) * double(s))),  k = 0..255     (double exp)
//   sum    = E[m - x_0] + E[m - x_1] + ...   in float, in row order,       m = max(row)
//   Y      = floorf(1.0f / ys)
//   out(x) = min(qmax, int(nearbyintf((E[m - x] * Y) / sum)) + z)          (float, ties to even)
//
// The input zero point does not enter. ORT's kernel has input and output of one type; npuq
// applies the same formula to any 8-bit pair. Where ORT's result is undefined (E[0] * Y overflows
// float for short rows and small y_scale, so the conversion to int is undefined) npuq refuses the
// call (check_row_length). The exponentials come from the C library (logf, exp), as in ORT's
// build; the tests compare with ORT's outputs on random rows (tests/data/qlinear_softmax/).
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "npuq/core/status.hpp"
#include "npuq/ops/softmax_params.hpp"

namespace npuq {
namespace softmax_math {
namespace qlinear {

// `shift` for a row of n elements: ORT scales its table so that n * E[0] stays below FLT_MAX / e^5.
inline double exponent_shift(float input_scale, std::int64_t n) {
  const float headroom = std::numeric_limits<float>::max() / static_cast<float>(n);
  const double log_headroom = static_cast<double>(std::log(headroom));  // logf, as ORT's log(float)
  return std::max(0.0, log_headroom - 5.0) / static_cast<double>(input_scale);
}

// E[k] for a difference k = max - x in [0, 255].
inline float exp_entry(float input_scale, double shift, int k) {
  return static_cast<float>(std::exp((static_cast<double>(-k) + shift) * static_cast<double>(input_scale)));
}

// Y = floor(1 / y_scale), in float.
inline float output_multiplier(const softmax_params& p) { return std::floor(1.0f / p.output_scale); }

// The 256 exponentials of one row length, indexed by the difference to the row maximum.
struct exp_table {
  std::array<float, 256> entry{};
  static exp_table generate(const softmax_params& p, std::int64_t n) {
    exp_table t;
    const double shift = exponent_shift(p.input_scale, n);
    for (int k = 0; k < 256; ++k) t.entry[static_cast<std::size_t>(k)] = exp_entry(p.input_scale, shift, k);
    return t;
  }
  float operator()(std::int32_t k) const { return entry[static_cast<std::size_t>(k)]; }
};

// The output of an element with exponential e in a row whose sum is `sum`, clamped above at qmax
// (the quotient is at most about Y, so only the upper bound can be reached).
inline std::int32_t output(float e, float y_multiplier, float sum, std::int32_t zero_point, std::int32_t qmax) {
  const float q = std::nearbyint((e * y_multiplier) / sum);
  return std::min(qmax, static_cast<std::int32_t>(q) + zero_point);
}

// Rows of n elements are defined when the largest product E[0] * Y is finite.
inline status check_row_length(const softmax_params& p, std::int64_t n) {
  if (n <= 0) return {};
  const float largest = exp_entry(p.input_scale, exponent_shift(p.input_scale, n), 0) * output_multiplier(p);
  if (!std::isfinite(largest))
    return {errc::invalid_argument, "softmax (QLinearSoftmax): rows of " + std::to_string(n) + " elements with y_scale " +
                                        std::to_string(p.output_scale) +
                                        " overflow ONNX Runtime's float product exp * floor(1 / y_scale) (its table is scaled to "
                                        "FLT_MAX / n / e^5), so its result is undefined"};
  return {};
}

}  // namespace qlinear
}  // namespace softmax_math
}  // namespace npuq
