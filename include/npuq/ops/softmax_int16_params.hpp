// int16 softmax: its parameters and the per-element arithmetic of TFLite's int16 reference.
//
// TFLite's int16 -> int16 softmax (reference_integer_ops::SoftmaxInt16 in
// tensorflow/lite/kernels/internal/reference/softmax.h, prepared by SoftmaxPrepare in
// tensorflow/lite/kernels/activations.cc) computes both transcendentals by lookup in 513-entry
// interpolated int16 tables (core/lut.hpp), the way NPUs do: exp on [-10, 0] and 1/(1+x) on
// [0, 1]. Input zero point 0; output scale 1/32768, zero point 0. Per row, with d = x - max(row)
// in [-65535, 0] and (multiplier, shift) = QuantizeMultiplier(input_scale * beta / (10 / 65535)):
//
//   e(x)  = exp_lut(clamp(MultiplyByQuantizedMultiplier(d, multiplier, shift) + 32767))   Q0.15
//   sum   = sum of e(x)                                                     (int32 in TFLite)
//   h     = clz((uint32)sum)
//   r     = recip_lut(clamp((((int64)sum << (h - 1)) + 2^13) >> 14) - 3 * 2^15))          Q0.15
//   out   = clamp((e(x) * r + 2^(30 - h)) >> (31 - h), 0, 32767)
//
// clamp() without bounds is to [-32768, 32767]; MultiplyByQuantizedMultiplier is the double
// rounding one (TFLite's default): RoundingDivideByPOT(SRDHM(d * 2^left, multiplier), right).
//
// Where TFLite's reference is undefined, npuq defines the result as the same formula in exact
// arithmetic: (1) d * 2^left overflows int32 when beta * input_scale >= 5 and |d| is large;
// the exact product is then below -2^31, so the scaled difference saturates the exp table's
// input at -32768, and npuq saturates it there. (2) The int32 sum overflows (and the shift
// h - 1 goes negative) once it reaches 2^31, a row of at least 65539 elements near the maximum;
// npuq keeps the sum in 64 bits, lets h go to 0 and below, and rounds
// sum * 2^(h - 15) exactly (half up) for the 1/(1+x) input and divides by 2^(31 - h) for the
// output. Rows where TFLite is defined are unaffected. docs/numerics.md.
//
// TFLM prepares the same kernel slightly differently: its tables come from the float generator
// (two entries of the 1/(1+x) table differ, see core/lut.hpp) and it forms input_scale * beta in
// double rather than float. `softmax_int16_runtime::tflm` reproduces that.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "npuq/core/fixed_point.hpp"
#include "npuq/core/lut.hpp"
#include "npuq/core/status.hpp"
#include "npuq/ops/softmax_params.hpp"  // softmax_math::count_leading_zeros64

namespace npuq {

// Whose preparation to follow: the tables and the product input_scale * beta.
enum class softmax_int16_runtime : std::uint8_t { tflite, tflm };

inline const char* to_string(softmax_int16_runtime r) { return r == softmax_int16_runtime::tflm ? "tflm" : "tflite"; }

namespace softmax_int16_math {

// The two tables as a runtime generates them (computed once per process).
inline const int16_lut& exp_lut(softmax_int16_runtime r) {
  static const int16_lut tflite = int16_lut::generate([](double x) { return std::exp(x); }, -10.0, 0.0);
  static const int16_lut tflm = int16_lut::generate([](float x) { return std::exp(x); }, -10.0f, 0.0f);
  return r == softmax_int16_runtime::tflm ? tflm : tflite;
}
inline const int16_lut& one_over_one_plus_x_lut(softmax_int16_runtime r) {
  static const int16_lut tflite = int16_lut::generate([](double x) { return 1.0 / (1.0 + x); }, 0.0, 1.0);
  static const int16_lut tflm = int16_lut::generate([](float x) { return 1.0f / (1.0f + x); }, 0.0f, 1.0f);
  return r == softmax_int16_runtime::tflm ? tflm : tflite;
}

}  // namespace softmax_int16_math

struct softmax_int16_params {
  std::int32_t input_multiplier = 0;  // Q0.31, in [2^30, 2^31)
  int input_shift = 0;                // [-31, 31]: > 0 shifts left, < 0 right (QuantizeMultiplier's)
  int16_lut exp_lut = softmax_int16_math::exp_lut(softmax_int16_runtime::tflite);
  int16_lut one_over_one_plus_x_lut = softmax_int16_math::one_over_one_plus_x_lut(softmax_int16_runtime::tflite);

  // SoftmaxPrepare for int16 input: beta and the input scale, as floats.
  static status from_beta(float beta, float input_scale, softmax_int16_params* out,
                          softmax_int16_runtime runtime = softmax_int16_runtime::tflite) {
    if (!(std::isfinite(beta) && beta > 0.0f))
      return {errc::invalid_argument, "softmax: beta must be finite and > 0, got " + std::to_string(beta)};
    if (!(std::isfinite(input_scale) && input_scale > 0.0f))
      return {errc::invalid_quantization, "softmax: input scale must be finite and > 0, got " + std::to_string(input_scale)};
    // TFLite multiplies the two floats in float; TFLM casts both to double first.
    const double product = runtime == softmax_int16_runtime::tflm ? static_cast<double>(input_scale) * static_cast<double>(beta)
                                                                  : static_cast<double>(input_scale * beta);
    const double real = product / (10.0 / 65535.0);  // d = -65535 maps to -10
    const quantized_multiplier q = quantize_multiplier(real);
    if (q.multiplier == 0)  // QuantizeMultiplier flushes multipliers below 2^-32 to zero
      return {errc::invalid_argument, "softmax: beta * input scale = " + std::to_string(product) + " is too small"};
    if (q.shift > 31)
      return {errc::invalid_argument, "softmax: beta * input scale = " + std::to_string(product) + " is too large"};
    softmax_int16_params p = from_multiplier(q.multiplier, q.shift, runtime);
    NPUQ_RETURN_IF_ERROR(p.validate());
    *out = p;
    return {};
  }
  // The throwing forms.
  static softmax_int16_params tflite(float beta, float input_scale) {
    softmax_int16_params p;
    throw_if_error(from_beta(beta, input_scale, &p, softmax_int16_runtime::tflite));
    return p;
  }
  static softmax_int16_params tflm(float beta, float input_scale) {
    softmax_int16_params p;
    throw_if_error(from_beta(beta, input_scale, &p, softmax_int16_runtime::tflm));
    return p;
  }
  // The multiplier and shift as TFLite's SoftmaxParams (input_multiplier, input_left_shift) and
  // CMSIS-NN's arm_softmax_s16 store them, with the runtime's tables.
  static softmax_int16_params from_multiplier(std::int32_t input_multiplier, int input_shift,
                                              softmax_int16_runtime runtime = softmax_int16_runtime::tflite) {
    softmax_int16_params p;
    p.input_multiplier = input_multiplier;
    p.input_shift = input_shift;
    p.exp_lut = softmax_int16_math::exp_lut(runtime);
    p.one_over_one_plus_x_lut = softmax_int16_math::one_over_one_plus_x_lut(runtime);
    return p;
  }
  // Tables supplied by the caller (a model's or an NPU's own).
  softmax_int16_params with_tables(const int16_lut& exp, const int16_lut& one_over_one_plus_x) const {
    softmax_int16_params p = *this;
    p.exp_lut = exp;
    p.one_over_one_plus_x_lut = one_over_one_plus_x;
    return p;
  }

  status validate() const {
    if (input_multiplier < (std::int32_t{1} << 30))
      return {errc::invalid_argument, "softmax: input multiplier " + std::to_string(input_multiplier) + " is outside [2^30, 2^31)"};
    if (input_shift < -31 || input_shift > 31)
      return {errc::invalid_argument, "softmax: input shift " + std::to_string(input_shift) + " is outside [-31, 31]"};
    // Every sum then holds the maximum's e() > 0, and no e() is negative.
    for (std::int16_t v : exp_lut.entry)
      if (v < 0) return {errc::invalid_argument, "softmax: exp table entry " + std::to_string(v) + " is negative"};
    if (exp_lut.lookup(32767) <= 0) return {errc::invalid_argument, "softmax: exp table gives exp(0) <= 0"};
    return {};
  }
};

namespace softmax_int16_math {

inline std::int32_t clamp_int16(std::int64_t v) {
  return static_cast<std::int32_t>(v < -32768 ? -32768 : (v > 32767 ? 32767 : v));
}

// MultiplyByQuantizedMultiplier(d, multiplier, shift) for a difference d in [-65535, 0], with
// d * 2^left saturated to int32 (the only case where TFLite's int32 product overflows).
inline std::int32_t scale_diff(const softmax_int16_params& p, std::int32_t d) {
  const int left = p.input_shift > 0 ? p.input_shift : 0;
  const int right = p.input_shift > 0 ? 0 : -p.input_shift;
  const std::int64_t shifted = static_cast<std::int64_t>(d) * (std::int64_t{1} << left);
  const auto x = static_cast<std::int32_t>(shifted < INT32_MIN ? INT32_MIN : shifted);
  return rounding_divide_by_pot(srdhm(x, p.input_multiplier), right);
}

// e(d) in Q0.15 for a difference d = x - max in [-65535, 0].
inline std::int16_t exp_of_diff(const softmax_int16_params& p, std::int32_t d) {
  return p.exp_lut.lookup(static_cast<std::int16_t>(clamp_int16(std::int64_t{scale_diff(p, d)} + 32767)));
}

// 1 / sum and the output shift of a row, from its sum of e() (> 0) kept in 64 bits.
struct normalizer {
  std::int16_t recip = 0;  // Q0.15: 1 / (1 + x) for the sum normalized to 2^k * (1 + x), x in [0, 1]
  int shift = 0;           // 31 - h: 14 with TFLite's tables and one element, up to 62

  static normalizer of_sum(const softmax_int16_params& p, std::int64_t sum) {
    // h = clz of the sum as a 32-bit value; 0 or negative when the sum needs 32 bits or more.
    const int h = softmax_math::count_leading_zeros64(static_cast<std::uint64_t>(sum)) - 32;
    // ((sum << (h - 1)) + 2^13) >> 14, i.e. sum * 2^(h - 15) rounded half up, for any h.
    const std::int64_t shifted = h >= 1 ? ((sum << (h - 1)) + (std::int64_t{1} << 13)) >> 14
                                        : (sum + (std::int64_t{1} << (14 - h))) >> (15 - h);
    normalizer n;
    // x = shifted / 2^16 - 1 in [0, 1], recentred from [0, 65536] to the table's [-32768, 32768].
    n.recip = p.one_over_one_plus_x_lut.lookup(static_cast<std::int16_t>(clamp_int16(shifted - ((1 << 15) + (1 << 16)))));
    n.shift = 31 - h;
    return n;
  }
  // The output of an element with exponential e: e / sum in Q0.15, clamped to [0, 32767].
  std::int16_t scaled(std::int16_t e) const {
    const std::int64_t half = shift > 0 ? std::int64_t{1} << (shift - 1) : 0;  // shift is 0 only with odd tables
    const std::int64_t v = shift_right_floor(std::int64_t{e} * recip + half, shift);
    return static_cast<std::int16_t>(v < 0 ? 0 : (v > 32767 ? 32767 : v));
  }
};

}  // namespace softmax_int16_math
}  // namespace npuq
