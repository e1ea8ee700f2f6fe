// Overflow-checked int64 arithmetic for sizes, extents, spans, offsets and geometry.
//
// Callers control every extent, stride, padding and dilation npuq computes with, so a product or
// sum of them can exceed int64. Signed overflow is undefined behaviour, and a wrapped size is
// worse: it passes the checks it was meant to fail (a span that wraps to 0 needs no memory). Every
// such computation goes through these helpers, which are defined for any int64 inputs and report
// whether the exact result fits; the caller turns `false` into an error naming the argument.
#pragma once

#include <cstdint>
#include <limits>

namespace npuq {

// *out = a + b; false (and *out unspecified) when the exact sum does not fit in int64.
inline bool checked_add(std::int64_t a, std::int64_t b, std::int64_t* out) {
#if defined(__GNUC__) || defined(__clang__)
  return !__builtin_add_overflow(a, b, out);
#else
  if ((b > 0 && a > std::numeric_limits<std::int64_t>::max() - b) || (b < 0 && a < std::numeric_limits<std::int64_t>::min() - b))
    return false;
  *out = a + b;
  return true;
#endif
}

// *out = a - b; false when the exact difference does not fit in int64.
inline bool checked_sub(std::int64_t a, std::int64_t b, std::int64_t* out) {
#if defined(__GNUC__) || defined(__clang__)
  return !__builtin_sub_overflow(a, b, out);
#else
  if ((b < 0 && a > std::numeric_limits<std::int64_t>::max() + b) || (b > 0 && a < std::numeric_limits<std::int64_t>::min() + b))
    return false;
  *out = a - b;
  return true;
#endif
}

// *out = a * b; false when the exact product does not fit in int64.
inline bool checked_mul(std::int64_t a, std::int64_t b, std::int64_t* out) {
#if defined(__GNUC__) || defined(__clang__)
  return !__builtin_mul_overflow(a, b, out);
#else
  constexpr std::int64_t hi = std::numeric_limits<std::int64_t>::max(), lo = std::numeric_limits<std::int64_t>::min();
  if (a == 0 || b == 0) {
    *out = 0;
    return true;
  }
  if ((a == -1 && b == lo) || (b == -1 && a == lo)) return false;
  if (a > 0 ? (b > 0 ? a > hi / b : b < lo / a) : (b > 0 ? a < lo / b : a < hi / b)) return false;
  *out = a * b;
  return true;
#endif
}

// *out = a * b + c (a multiply-accumulate step of an offset or span); false on any overflow.
inline bool checked_mul_add(std::int64_t a, std::int64_t b, std::int64_t c, std::int64_t* out) {
  std::int64_t p = 0;
  return checked_mul(a, b, &p) && checked_add(p, c, out);
}

// ceil(a / b) for a >= 0 and b > 0, without forming a + b - 1.
inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

}  // namespace npuq
