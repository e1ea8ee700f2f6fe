// Integer softmax: its parameters and the per-element arithmetic of TFLite's int8 reference.
//
// The softmax of an 8-bit row (TFLite reference_ops::Softmax, which TFLM, CMSIS-NN and Vela's
// Ethos-U tables reproduce bit for bit) is fixed by three integers: the input multiplier and left
// shift that scale a difference x - max into Q5.26, and diff_min, below which an element gets no
// probability mass. They come from beta and the input scale (TFLite PreprocessSoftmaxScaling and
// CalculateInputRadius) or are given directly, as TFLite and CMSIS-NN store them. Every backend
// (and attention) builds its rows from the primitives here, so the numerics live in one place:
//
//   e(x)   = d >= diff_min ? exp_on_negative_values<5>(SRDHM(d << left_shift, multiplier)) : 0,
//            d = x - max(row)                                             (Q0.31)
//   sum    = sum of RoundingDivideByPOT(e(x), 12)                         (Q12.19)
//   h      = clz(sum); recip = one_over_one_plus_x_for_x_in_0_1((sum << h) - 2^31)
//   out(x) = clamp(RoundingDivideByPOT(SRDHM(recip, e(x)), (12 - h) + 31 - 8) + qmin, qmin, qmax)
//
// Where TFLite's reference is undefined, npuq defines the result as the same formula in exact
// arithmetic: the shift (12 - h) + 23 exceeds 31 once the sum reaches 2^28 (a row with at least
// 512 elements near the maximum), and the int32 sum wraps past 2^31 (at least 4096 such
// elements). npuq keeps the sum in 64 bits and divides by 2^shift exactly (rounding half away
// from zero) for any shift; rows where TFLite is defined are unaffected. docs/numerics.md.
//
// `exp_table` is the 256-entry int32 table of e() over every difference -255..0 (Vela builds the
// same table for Ethos-U); looking e() up in it is bit-identical to computing it.
//
// The same parameters can instead name a second contract, ONNX Runtime's com.microsoft
// QLinearSoftmax (contract onnxruntime_qlinear: input scale, output scale and zero point; its
// float table arithmetic is in softmax_qlinear.hpp). ONNX Runtime also runs DequantizeLinear ->
// Softmax -> QuantizeLinear as that op once its graph optimizer has fused the three nodes.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include "npuq/core/fixed_point_functions.hpp"
#include "npuq/core/status.hpp"

namespace npuq {

// How an implementation evaluates e(): gemmlowp's polynomial and barrel shifter, or a lookup in
// the 256-entry table generated from it (how NPUs do it). Both give the same bits.
enum class softmax_exp : std::uint8_t { fixed_point, table };

inline const char* to_string(softmax_exp e) { return e == softmax_exp::table ? "table" : "fixed_point"; }

// Which integer softmax the parameters define: TFLite's (the triple) or ONNX Runtime's QLinearSoftmax.
enum class softmax_contract : std::uint8_t { tflite, onnxruntime_qlinear };

inline const char* to_string(softmax_contract c) { return c == softmax_contract::onnxruntime_qlinear ? "onnxruntime_qlinear" : "tflite"; }

struct softmax_params {
  std::int32_t input_multiplier = 0;  // Q0.31, in [2^30, 2^31)
  int input_left_shift = 0;           // [0, 31]
  std::int32_t diff_min = 0;          // <= 0: differences below it get no probability mass
  softmax_exp exp = softmax_exp::fixed_point;
  softmax_contract contract = softmax_contract::tflite;
  // onnxruntime_qlinear only: QLinearSoftmax's x_scale, y_scale and y_zero_point (x_zero_point
  // does not enter its arithmetic: only differences to the row maximum do).
  float input_scale = 0.0f, output_scale = 0.0f;
  std::int32_t output_zero_point = 0;

  // ONNX Runtime's QLinearSoftmax. The row length and the output type are checked with the tensors
  // (make_softmax_problem): ORT's float product exp * floor(1 / y_scale) must not overflow.
  static status from_qlinear(float x_scale, float y_scale, std::int32_t y_zero_point, softmax_params* out) {
    softmax_params p;
    p.contract = softmax_contract::onnxruntime_qlinear;
    p.input_scale = x_scale;
    p.output_scale = y_scale;
    p.output_zero_point = y_zero_point;
    NPUQ_RETURN_IF_ERROR(p.validate());
    *out = p;
    return {};
  }
  // The throwing form.
  static softmax_params onnxruntime_qlinear(float x_scale, float y_scale, std::int32_t y_zero_point) {
    softmax_params p;
    throw_if_error(from_qlinear(x_scale, y_scale, y_zero_point, &p));
    return p;
  }

  // TFLite's SoftmaxPrepare for 8-bit inputs: beta and the input scale, as floats.
  static status from_beta(float beta, float input_scale, softmax_params* out) {
    if (!(std::isfinite(beta) && beta > 0.0f))
      return {errc::invalid_argument, "softmax: beta must be finite and > 0, got " + std::to_string(beta)};
    if (!(std::isfinite(input_scale) && input_scale > 0.0f))
      return {errc::invalid_quantization, "softmax: input scale must be finite and > 0, got " + std::to_string(input_scale)};
    constexpr int integer_bits = 5;
    const double real = std::fmin(static_cast<double>(beta) * static_cast<double>(input_scale) * double(1 << (31 - integer_bits)),
                                  double((std::int64_t{1} << 31) - 1));
    // QuantizeMultiplierGreaterThanOne: TFLite rejects real multipliers <= 1.
    if (!(real > 1.0))
      return {errc::invalid_argument, "softmax: beta * input scale = " + std::to_string(real / double(1 << 26)) +
                                          " is too small (TFLite needs beta * scale * 2^26 > 1)"};
    const quantized_multiplier q = quantize_multiplier(real);
    softmax_params p;
    p.input_multiplier = q.multiplier;
    p.input_left_shift = q.shift;
    const double radius = 1.0 * ((1 << integer_bits) - 1) * double(std::int64_t{1} << (31 - integer_bits)) /
                          double(std::int64_t{1} << q.shift);
    p.diff_min = -static_cast<std::int32_t>(std::floor(radius));
    NPUQ_RETURN_IF_ERROR(p.validate());
    *out = p;
    return {};
  }
  // The throwing form.
  static softmax_params tflite(float beta, float input_scale) {
    softmax_params p;
    throw_if_error(from_beta(beta, input_scale, &p));
    return p;
  }
  // The triple as TFLite's SoftmaxParams / CMSIS-NN store it.
  static softmax_params from_triple(std::int32_t input_multiplier, int input_left_shift, std::int32_t diff_min) {
    softmax_params p;
    p.input_multiplier = input_multiplier;
    p.input_left_shift = input_left_shift;
    p.diff_min = diff_min;
    return p;
  }
  softmax_params with_exp(softmax_exp e) const {
    softmax_params p = *this;
    p.exp = e;
    return p;
  }

  status validate() const {
    if (contract == softmax_contract::onnxruntime_qlinear) {
      if (!(std::isfinite(input_scale) && input_scale > 0.0f))
        return {errc::invalid_quantization, "softmax (QLinearSoftmax): x_scale must be finite and > 0, got " + std::to_string(input_scale)};
      // ORT multiplies by floor(1 / y_scale) in float; above 2^24 that is no longer an exact integer.
      if (!(std::isfinite(output_scale) && output_scale > 0.0f) || std::floor(1.0f / output_scale) > 16777216.0f)
        return {errc::invalid_quantization,
                "softmax (QLinearSoftmax): y_scale must be finite and in [2^-24, inf), got " + std::to_string(output_scale)};
      if (output_zero_point < -128 || output_zero_point > 255)
        return {errc::invalid_quantization, "softmax (QLinearSoftmax): y_zero_point " + std::to_string(output_zero_point) +
                                                " is not an 8-bit value"};
      return {};
    }
    if (input_multiplier < (std::int32_t{1} << 30))
      return {errc::invalid_argument, "softmax: input multiplier " + std::to_string(input_multiplier) + " is outside [2^30, 2^31)"};
    if (input_left_shift < 0 || input_left_shift > 31)
      return {errc::invalid_argument, "softmax: input left shift " + std::to_string(input_left_shift) + " is outside [0, 31]"};
    if (diff_min > 0) return {errc::invalid_argument, "softmax: diff_min " + std::to_string(diff_min) + " must be <= 0"};
    return {};
  }
};

namespace softmax_math {

// e(d) for a difference d = x - max <= 0, in Q0.31 (0 below diff_min).
inline std::int32_t exp_of_diff(const softmax_params& p, std::int32_t d) {
  if (d < p.diff_min) return 0;
  return fxp::exp_on_negative_values<5>(srdhm(wrapping_shift_left(d, p.input_left_shift), p.input_multiplier));
}

// The 256 values e(d) for d = i - 255, i = 0..255: every difference two 8-bit values can have.
struct exp_table {
  std::array<std::int32_t, 256> entry{};
  static exp_table generate(const softmax_params& p) {
    exp_table t;
    for (int i = 0; i < 256; ++i) t.entry[static_cast<std::size_t>(i)] = exp_of_diff(p, i - 255);
    return t;
  }
  std::int32_t operator()(std::int32_t d) const { return entry[static_cast<std::size_t>(d + 255)]; }
};

// One row's term of the sum: e(d) in Q12.19.
inline std::int32_t sum_term(std::int32_t e) { return rounding_divide_by_pot(e, 12); }

// x / 2^e rounded half away from zero, e in [0, 62] (RoundingDivideByPOT without the 31 limit).
inline std::int64_t rounding_divide_by_pot_wide(std::int64_t x, int e) {
  if (e == 0) return x;
  const std::int64_t mask = (std::int64_t{1} << e) - 1;
  const std::int64_t remainder = x & mask;
  const std::int64_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  const std::int64_t q = x >= 0 ? (x >> e) : -(((-(x + 1)) >> e) + 1);
  return q + (remainder > threshold ? 1 : 0);
}

inline int count_leading_zeros64(std::uint64_t x) {
  int n = 0;
  for (std::uint64_t bit = std::uint64_t{1} << 63; bit != 0 && (x & bit) == 0; bit >>= 1) ++n;
  return n;
}

// 1 / sum and the output shift of a row, from its Q12.19 sum (> 0) kept in 64 bits.
struct normalizer {
  std::int32_t recip = 0;  // Q0.31
  int shift = 0;           // (12 - h) + 31 - 8 for an 8-bit output

  static normalizer of_sum(std::int64_t sum) {
    // h = clz of the sum as a 32-bit value; negative when the sum needs more than 32 bits.
    const int h = count_leading_zeros64(static_cast<std::uint64_t>(sum)) - 32;
    const std::uint32_t normalized = h >= 0 ? static_cast<std::uint32_t>(static_cast<std::uint64_t>(sum) << h)
                                            : static_cast<std::uint32_t>(static_cast<std::uint64_t>(sum) >> -h);
    normalizer n;
    n.recip = fxp::one_over_one_plus_x_for_x_in_0_1(static_cast<std::int32_t>(normalized - (std::uint32_t{1} << 31)));
    n.shift = (12 - h) + 31 - 8;
    return n;
  }
  // The output of an element with exponential e, before adding qmin and clamping.
  std::int32_t scaled(std::int32_t e) const {
    return static_cast<std::int32_t>(rounding_divide_by_pot_wide(srdhm(recip, e), shift));
  }
};

inline std::int32_t clamp_output(std::int32_t scaled, std::int32_t qmin, std::int32_t qmax) {
  const std::int32_t v = scaled + qmin;
  return v < qmin ? qmin : (v > qmax ? qmax : v);
}

}  // namespace softmax_math
}  // namespace npuq
