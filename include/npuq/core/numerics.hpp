// Numerics profiles: the integer contract an op follows, picked by the user as a named value.
//
// Runtimes and NPUs agree on int8 x int8 -> int32 accumulation but disagree on everything after
// it: how float scales become multipliers, how the scaled accumulator is rounded, and how wide
// the accumulator is and what happens when it overflows. A `numerics_profile` fixes all three,
// so "bit-exact" has one meaning per profile on every backend:
//
//   tflite       Q31 multiplier + shift, double rounding (SRDHM, then rounding divide by 2^n);
//                also TOSA DOUBLE_ROUND, CMSIS-NN, Arm Ethos-U.
//   tosa_single  Q31 multiplier + shift, single rounding, ties toward +infinity;
//                also TFLITE_SINGLE_ROUNDING, XNNPACK rndnu.
//   onnx         fp32 scale (in * w / out in float), (float)acc * scale, ties to even;
//                also ONNX Runtime QLinear ops, XNNPACK fp32, Gemmini.
//   q31(mode), fp32(mode)  the rounding modes NPUs use: half up, half away from zero,
//                half to even, truncate toward zero, floor.
//
// The accumulator rule (`accumulator_spec`) gives the width in bits and the overflow behaviour:
// wrap (two's complement, the default, int32), saturate after every add (NVDLA), or saturate
// once at the end. The reference kernels sum the products in K order, then add the bias as one
// more addition under the same rule.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "npuq/core/fixed_point.hpp"
#include "npuq/core/status.hpp"

namespace npuq {

enum class rounding : std::uint8_t {
  tflite_double,  // SRDHM (ties up) then RoundingDivideByPOT (ties away): Q31 only
  half_up,        // ties toward +infinity
  half_away,      // ties away from zero
  half_even,      // ties to even
  truncate,       // toward zero
  floor,          // toward -infinity
};

enum class multiplier_format : std::uint8_t {
  q31,   // int32 multiplier in [2^30, 2^31) and a power-of-two shift (from double scales)
  fp32,  // float32 scale (computed in float from float32 scales)
};

enum class overflow_rule : std::uint8_t { wrap, saturate_each_add, saturate_at_end };

struct accumulator_spec {
  int bits = 32;  // 8..48
  overflow_rule overflow = overflow_rule::wrap;
};

inline const char* to_string(rounding r) {
  switch (r) {
    case rounding::tflite_double: return "tflite_double";
    case rounding::half_up: return "half_up";
    case rounding::half_away: return "half_away";
    case rounding::half_even: return "half_even";
    case rounding::truncate: return "truncate";
    case rounding::floor: return "floor";
  }
  return "?";
}
inline const char* to_string(multiplier_format f) { return f == multiplier_format::q31 ? "q31" : "fp32"; }
inline const char* to_string(overflow_rule o) {
  switch (o) {
    case overflow_rule::wrap: return "wrap";
    case overflow_rule::saturate_each_add: return "saturate_each_add";
    case overflow_rule::saturate_at_end: return "saturate_at_end";
  }
  return "?";
}

struct numerics_profile {
  const char* name = "tflite";
  multiplier_format format = multiplier_format::q31;
  rounding mode = rounding::tflite_double;
  accumulator_spec acc{};

  // Named profiles.
  static constexpr numerics_profile tflite() { return {"tflite", multiplier_format::q31, rounding::tflite_double, {}}; }
  static constexpr numerics_profile tosa_single() { return {"tosa_single", multiplier_format::q31, rounding::half_up, {}}; }
  static constexpr numerics_profile onnx() { return {"onnx", multiplier_format::fp32, rounding::half_even, {}}; }
  // NPU rounding modes on a Q31 multiplier or an fp32 scale.
  static constexpr numerics_profile q31(rounding r, accumulator_spec a = {}) { return {"q31", multiplier_format::q31, r, a}; }
  static constexpr numerics_profile fp32(rounding r, accumulator_spec a = {}) { return {"fp32", multiplier_format::fp32, r, a}; }

  constexpr numerics_profile with_accumulator(int bits, overflow_rule o) const {
    numerics_profile p = *this;
    p.acc = {bits, o};
    return p;
  }

  std::string describe() const {
    return std::string(name) + " (multiplier " + to_string(format) + ", rounding " + to_string(mode) + ", accumulator " +
           std::to_string(acc.bits) + "-bit " + to_string(acc.overflow) + ")";
  }

  status validate() const {
    if (acc.bits < 8 || acc.bits > 48)
      return {errc::invalid_argument, "profile: accumulator width " + std::to_string(acc.bits) + " bits is outside [8, 48]"};
    if (format == multiplier_format::fp32 && mode == rounding::tflite_double)
      return {errc::invalid_argument, "profile: tflite double rounding needs a q31 multiplier, not fp32"};
    if (format == multiplier_format::q31 && mode == rounding::tflite_double && acc.bits > 32)
      return {errc::unsupported, "profile: tflite double rounding is defined on int32 accumulators only"};
#if !defined(__SIZEOF_INT128__)
    if (format == multiplier_format::q31 && acc.bits > 32)
      return {errc::unsupported, "profile: q31 requantization of accumulators wider than 32 bits needs a compiler with __int128"};
#endif
    return {};
  }
};

// Per-channel requantization parameters in the profile's multiplier format.
struct requant_channel {
  std::int32_t multiplier = 0;  // q31
  std::int32_t shift = 0;       // q31
  float scale = 0.0f;           // fp32
};

// Effective scale in_scale * w_scale / out_scale turned into the profile's format exactly as the
// reference runtimes do it: in double then QuantizeMultiplier for q31, in float for fp32.
inline requant_channel derive_requant(const numerics_profile& p, float in_scale, float w_scale, float out_scale) {
  requant_channel r;
  if (p.format == multiplier_format::fp32) {
    r.scale = in_scale * w_scale / out_scale;
  } else {
    const double d = static_cast<double>(in_scale) * static_cast<double>(w_scale) / static_cast<double>(out_scale);
    const quantized_multiplier q = quantize_multiplier(d, p.mode != rounding::tflite_double);
    r.multiplier = q.multiplier;
    r.shift = q.shift;
  }
  return r;
}

// Checks user-supplied integer (multiplier, shift) pairs.
inline status validate_requant_channel(const numerics_profile& p, const requant_channel& r, std::size_t index) {
  const std::string at = "requant[" + std::to_string(index) + "]: ";
  if (p.format == multiplier_format::fp32) {
    if (!(r.scale > 0.0f) || !std::isfinite(r.scale))
      return {errc::invalid_quantization, at + "fp32 scale must be > 0 and finite"};
    return {};
  }
  if (r.multiplier < 0) return {errc::invalid_quantization, at + "multiplier must be >= 0"};
  if (r.shift < -31 || r.shift > 30)
    return {errc::invalid_quantization, at + "shift " + std::to_string(r.shift) + " is outside [-31, 30]"};
  return {};
}

namespace detail {

// v / 2^s with the given rounding (s >= 1), on a signed integer type wide enough for v.
template <class I>
constexpr I round_shift(I v, int s, rounding mode) {
  const I one = 1;
  const I half = one << (s - 1);
  const I fl = v >= 0 ? (v >> s) : -(((-(v + 1)) >> s) + 1);  // floor(v / 2^s)
  const I rem = v - fl * (one << s);                           // in [0, 2^s)
  switch (mode) {
    case rounding::floor: return fl;
    case rounding::truncate: return (v < 0 && rem != 0) ? fl + 1 : fl;
    case rounding::half_up: return rem >= half ? fl + 1 : fl;
    case rounding::half_away: return (rem > half || (rem == half && v >= 0)) ? fl + 1 : fl;
    case rounding::half_even: return (rem > half || (rem == half && (fl & 1) != 0)) ? fl + 1 : fl;
    case rounding::tflite_double: break;
  }
  return fl;
}

inline double round_double(double v, rounding mode) {
  const double fl = std::floor(v);
  const double frac = v - fl;  // exact for doubles made from floats
  switch (mode) {
    case rounding::floor: return fl;
    case rounding::truncate: return std::trunc(v);
    case rounding::half_up: return frac >= 0.5 ? fl + 1 : fl;
    case rounding::half_away: return std::round(v);
    case rounding::half_even: return (frac > 0.5 || (frac == 0.5 && std::fmod(fl, 2.0) != 0.0)) ? fl + 1 : fl;
    case rounding::tflite_double: break;
  }
  return fl;
}

}  // namespace detail

// Scales an accumulator by a channel's multiplier under the profile, adds the output zero point
// and clamps to [lo, hi]. `acc` has already been reduced to the profile's accumulator width.
inline std::int32_t requantize(const numerics_profile& p, std::int64_t acc, const requant_channel& r, std::int32_t zero_point,
                               std::int32_t lo, std::int32_t hi) {
  std::int64_t scaled = 0;
  if (p.format == multiplier_format::fp32) {
    const float v = static_cast<float>(acc) * r.scale;  // one float multiply: nothing to contract
    double q = detail::round_double(static_cast<double>(v), p.mode);
    const double qlo = static_cast<double>(lo) - zero_point, qhi = static_cast<double>(hi) - zero_point;
    q = q < qlo ? qlo : (q > qhi ? qhi : q);  // clamp before converting (v may be huge or inf)
    scaled = static_cast<std::int64_t>(q);
  } else if (p.mode == rounding::tflite_double) {
    scaled = multiply_by_quantized_multiplier_double(static_cast<std::int32_t>(acc), r.multiplier, r.shift);
  } else {
    const int ts = 31 - r.shift;  // 1..62
#if defined(__SIZEOF_INT128__)
    // |acc * m| < 2^79, so the rounded value can exceed int64 (48-bit accumulators, large scales).
    // It is clamped below anyway: cap it at +-2^62 first instead of letting the conversion wrap.
    const __int128 v = detail::round_shift<__int128>(static_cast<__int128>(acc) * r.multiplier, ts, p.mode);
    const __int128 cap = static_cast<__int128>(1) << 62;
    scaled = static_cast<std::int64_t>(v > cap ? cap : (v < -cap ? -cap : v));
#else
    scaled = detail::round_shift<std::int64_t>(acc * r.multiplier, ts, p.mode);  // validate() keeps acc <= 32 bits here
#endif
  }
  std::int64_t out = scaled + zero_point;
  if (out < lo) out = lo;
  if (out > hi) out = hi;
  return static_cast<std::int32_t>(out);
}

// v reduced modulo 2^bits to a signed bits-wide value (two's complement wrap-around).
inline std::int64_t wrap_to_bits(std::int64_t v, int bits) {
  const int drop = 64 - bits;
  const std::uint64_t u = static_cast<std::uint64_t>(v) << drop;
  const auto wrapped = static_cast<std::int64_t>(u);  // two's complement (defined in C++20, GCC/Clang/MSVC)
  return shift_right_floor(wrapped, drop);
}

// Accumulator arithmetic of a profile, used by the reference kernels.
class accumulator {
 public:
  explicit accumulator(const accumulator_spec& s) : spec_(s) {
    max_ = (std::int64_t{1} << (s.bits - 1)) - 1;
    min_ = -max_ - 1;
  }
  void add(std::int64_t v) {
    value_ += v;  // exact: |products| < 2^17 and widths <= 48 bits leave ample headroom in int64
    if (spec_.overflow == overflow_rule::saturate_each_add) value_ = saturate(value_);
  }
  // The value at the end of the reduction, reduced to the accumulator width.
  std::int64_t result() const {
    if (spec_.overflow == overflow_rule::wrap) return wrap_to_bits(value_, spec_.bits);
    return saturate(value_);
  }

 private:
  std::int64_t saturate(std::int64_t v) const { return v < min_ ? min_ : (v > max_ ? max_ : v); }
  accumulator_spec spec_;
  std::int64_t value_ = 0;
  std::int64_t min_, max_;
};

}  // namespace npuq
