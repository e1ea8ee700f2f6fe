// Fixed-point primitives of the integer contracts (gemmlowp fixedpoint.h, TFLite common.h).
//
// These few functions decide the last bit of every requantized output, so they are written out
// exactly as the references define them (NUMERICS.md section 1) and tested against gemmlowp's
// own implementation. Everything here is free of undefined behaviour for all inputs: shifts of
// negative values go through unsigned arithmetic, overflow cases are handled explicitly.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

namespace npuq {

// Saturating rounding doubling high multiply: round(a * b / 2^31), ties toward +infinity,
// with the single overflow case (INT32_MIN, INT32_MIN) saturating to INT32_MAX.
constexpr std::int32_t srdhm(std::int32_t a, std::int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  const std::int64_t ab = static_cast<std::int64_t>(a) * static_cast<std::int64_t>(b);
  const std::int64_t nudge = ab >= 0 ? (std::int64_t{1} << 30) : (1 - (std::int64_t{1} << 30));
  return static_cast<std::int32_t>((ab + nudge) / (std::int64_t{1} << 31));
}

// Arithmetic right shift (floor division by 2^e) without relying on implementation-defined
// behaviour of >> on negative values.
constexpr std::int64_t shift_right_floor(std::int64_t x, int e) {
  return x >= 0 ? (x >> e) : -(((-(x + 1)) >> e) + 1);
}

// x / 2^exponent rounded to nearest, ties away from zero; exponent in [0, 31].
constexpr std::int32_t rounding_divide_by_pot(std::int32_t x, int exponent) {
  const std::int32_t mask = static_cast<std::int32_t>((std::int64_t{1} << exponent) - 1);
  const std::int32_t remainder = x & mask;
  const std::int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return static_cast<std::int32_t>(shift_right_floor(x, exponent)) + (remainder > threshold ? 1 : 0);
}

// x * 2^left_shift with int32 wrap-around, as TFLite's `x * (1 << left_shift)` does in practice.
constexpr std::int32_t wrapping_shift_left(std::int32_t x, int left_shift) {
  const std::uint32_t u = static_cast<std::uint32_t>(x) << left_shift;
  return static_cast<std::int32_t>(u);
}

// A real multiplier as m * 2^(shift - 31), m in [2^30, 2^31) (or 0).
struct quantized_multiplier {
  std::int32_t multiplier = 0;
  std::int32_t shift = 0;
  friend bool operator==(const quantized_multiplier& a, const quantized_multiplier& b) {
    return a.multiplier == b.multiplier && a.shift == b.shift;
  }
};

// TFLite QuantizeMultiplier. With `single_rounding` (TFLITE_SINGLE_ROUNDING) the shift is
// capped at 30 so that the single-rounding right shift 31 - shift stays >= 1.
inline quantized_multiplier quantize_multiplier(double d, bool single_rounding = false) {
  if (d == 0.0) return {0, 0};
  int shift = 0;
  const double q = std::frexp(d, &shift);
  auto q_fixed = static_cast<std::int64_t>(std::round(q * static_cast<double>(std::int64_t{1} << 31)));
  if (q_fixed == (std::int64_t{1} << 31)) {
    q_fixed /= 2;
    ++shift;
  }
  if (shift < -31) {
    shift = 0;
    q_fixed = 0;
  }
  if (single_rounding && shift > 30) {
    shift = 30;
    q_fixed = (std::int64_t{1} << 31) - 1;
  }
  return {static_cast<std::int32_t>(q_fixed), shift};
}

// TFLite MultiplyByQuantizedMultiplier, double rounding: SRDHM then rounding divide by 2^-shift.
constexpr std::int32_t multiply_by_quantized_multiplier_double(std::int32_t x, std::int32_t m, int shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  return rounding_divide_by_pot(srdhm(wrapping_shift_left(x, left), m), right);
}

// TFLITE_SINGLE_ROUNDING / TOSA SINGLE_ROUND: ((int64)x * m + 2^(ts-1)) >> ts, ts = 31 - shift.
constexpr std::int32_t multiply_by_quantized_multiplier_single(std::int32_t x, std::int32_t m, int shift) {
  const int ts = 31 - shift;
  const std::int64_t p = static_cast<std::int64_t>(x) * m + (std::int64_t{1} << (ts - 1));
  return static_cast<std::int32_t>(shift_right_floor(p, ts));
}

}  // namespace npuq
