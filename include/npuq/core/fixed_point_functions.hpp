// gemmlowp's fixed-point transcendental functions: exp on negative values and 1 / (1 + x).
//
// TFLite's integer softmax (and every runtime that is bit-exact with it: TFLM, CMSIS-NN, Vela's
// tables for Ethos-U) computes exp() and the reciprocal of the row sum with these two functions.
// They are written out here on plain int32 "raw" values, step for step as gemmlowp's
// fixedpoint.h does them on its FixedPoint<int32_t, I> type (Q(I).(31-I) numbers), so the
// results are the same bits; test_softmax checks them against the installed gemmlowp header.
// Additions are wrapping (gemmlowp's raw `+` on int32), multiplications are SRDHM.
#pragma once

#include <cstdint>

#include "npuq/core/fixed_point.hpp"

namespace npuq {
namespace fxp {

constexpr std::int32_t add(std::int32_t a, std::int32_t b) {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(a) + static_cast<std::uint32_t>(b));
}
constexpr std::int32_t sub(std::int32_t a, std::int32_t b) {
  return static_cast<std::int32_t>(static_cast<std::uint32_t>(a) - static_cast<std::uint32_t>(b));
}

// x * 2^e, e > 0, saturating to the int32 range (gemmlowp SaturatingRoundingMultiplyByPOT<e>).
constexpr std::int32_t saturating_shift_left(std::int32_t x, int e) {
  const std::int32_t threshold = static_cast<std::int32_t>((std::int64_t{1} << (31 - e)) - 1);
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return wrapping_shift_left(x, e);
}

// (a + b) / 2 rounded half away from zero (gemmlowp RoundingHalfSum).
constexpr std::int32_t rounding_half_sum(std::int32_t a, std::int32_t b) {
  const std::int64_t sum = std::int64_t{a} + b;
  return static_cast<std::int32_t>((sum + (sum >= 0 ? 1 : -1)) / 2);
}

// exp(a) for a in [-1/4, 0), a and the result in Q0.31.
constexpr std::int32_t exp_on_interval_between_negative_one_quarter_and_0_excl(std::int32_t a) {
  constexpr std::int32_t exp_minus_one_eighth = 1895147668, one_third = 715827883;
  const std::int32_t x = add(a, std::int32_t{1} << 28);  // x = a + 1/8
  const std::int32_t x2 = srdhm(x, x);
  const std::int32_t x3 = srdhm(x2, x);
  const std::int32_t x4 = srdhm(x2, x2);
  const std::int32_t x4_over_4 = rounding_divide_by_pot(x4, 2);
  const std::int32_t poly = rounding_divide_by_pot(add(srdhm(add(x4_over_4, x3), one_third), x2), 1);
  return add(exp_minus_one_eighth, srdhm(exp_minus_one_eighth, add(x, poly)));
}

// exp(a) for a <= 0 given in Q(IntegerBits).(31-IntegerBits); the result in Q0.31.
template <int IntegerBits>
constexpr std::int32_t exp_on_negative_values(std::int32_t a) {
  static_assert(IntegerBits >= 0 && IntegerBits <= 30, "exp_on_negative_values: IntegerBits in [0, 30]");
  constexpr int fractional_bits = 31 - IntegerBits;
  constexpr std::int32_t one_quarter = std::int32_t{1} << (fractional_bits - 2);
  const std::int32_t mask = one_quarter - 1;
  const std::int32_t a_mod_quarter_minus_one_quarter = sub(a & mask, one_quarter);
  std::int32_t result = exp_on_interval_between_negative_one_quarter_and_0_excl(
      IntegerBits == 0 ? a_mod_quarter_minus_one_quarter : saturating_shift_left(a_mod_quarter_minus_one_quarter, IntegerBits));
  const std::int32_t remainder = sub(a_mod_quarter_minus_one_quarter, a);
  // Barrel shifter: multiply by exp(-2^e) for every bit 2^e set in the remainder.
  constexpr int exponents[7] = {-2, -1, 0, 1, 2, 3, 4};
  constexpr std::int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
  for (int i = 0; i < 7; ++i) {
    if (IntegerBits > exponents[i] && (remainder & (std::int32_t{1} << (fractional_bits + exponents[i]))) != 0)
      result = srdhm(result, multipliers[i]);
  }
  if (IntegerBits > 5) {
    const std::int32_t clamp = -(std::int32_t{1} << (IntegerBits > 5 ? 36 - IntegerBits : 0));  // -32.0
    if (a < clamp) result = 0;
  }
  if (a == 0) result = INT32_MAX;  // exp(0) = 1.0, the largest Q0.31 value
  return result;
}

// 1 / (1 + a) for a in [0, 1), a and the result in Q0.31 (three Newton-Raphson steps).
constexpr std::int32_t one_over_one_plus_x_for_x_in_0_1(std::int32_t a) {
  const std::int32_t half_denominator = rounding_half_sum(a, INT32_MAX);  // Q0.31
  constexpr std::int32_t c48_over_17 = 1515870810, cneg32_over_17 = -1010580540;  // Q2.29
  constexpr std::int32_t one_q2 = std::int32_t{1} << 29;
  std::int32_t x = add(c48_over_17, srdhm(half_denominator, cneg32_over_17));  // Q2.29
  for (int i = 0; i < 3; ++i) {
    const std::int32_t half_denominator_times_x = srdhm(half_denominator, x);    // Q2.29
    const std::int32_t one_minus = sub(one_q2, half_denominator_times_x);        // Q2.29
    x = add(x, saturating_shift_left(srdhm(x, one_minus), 2));                   // Q4.27 -> Q2.29
  }
  return saturating_shift_left(x, 1);  // x / 2 in Q1.30 read as Q0.31
}

}  // namespace fxp
}  // namespace npuq
