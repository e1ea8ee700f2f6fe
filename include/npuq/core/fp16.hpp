// IEEE half precision (binary16) <-> float32 conversion, bit exact, no hardware needed.
//
// Group-wise int4 weights carry one scale per group, and the formats users hold store them as
// fp16 (ggml Q4_0 blocks, ONNX Runtime MatMulNBits with float16 scales). npuq keeps scales as
// float32 in `Quant`; these helpers convert fp16 storage to the float it denotes (always exact)
// and back (round to nearest, ties to even, as F16C's vcvtps2ph with the default rounding), so
// packed weights can store scales in half the bytes without changing a single result.
#pragma once

#include <cstdint>
#include <cstring>

namespace npuq {

// The float an fp16 bit pattern denotes (exact: every fp16 value is a float32 value). Written
// with selects rather than branches so that loops converting arrays vectorize.
inline float fp16_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t em = h & 0x7FFFu;  // exponent and mantissa
  // Normal: rebias the exponent 15 -> 127; inf / NaN: exponent 31 -> 255 (payload kept).
  std::uint32_t bits = (em << 13) + (em >= 0x7C00u ? 224u << 23 : 112u << 23);
  float f;
  std::memcpy(&f, &bits, sizeof f);
  // Zero and subnormals: em * 2^-24, exact in float.
  f = em < 0x400u ? static_cast<float>(em) * 5.9604644775390625e-8f : f;
  std::uint32_t out;
  std::memcpy(&out, &f, sizeof out);
  out |= sign;
  std::memcpy(&f, &out, sizeof f);
  return f;
}

// f rounded to the nearest fp16 (ties to even); overflow gives +-inf, NaN stays NaN.
inline std::uint16_t float_to_fp16(float f) {
  std::uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t exp = (x >> 23) & 0xFFu, mant = x & 0x7FFFFFu;
  if (exp == 0xFF) return static_cast<std::uint16_t>(sign | 0x7C00u | (mant != 0 ? 0x200u | (mant >> 13) : 0u));
  const int e = static_cast<int>(exp) - 127 + 15;  // fp16 biased exponent
  if (e >= 0x1F) return static_cast<std::uint16_t>(sign | 0x7C00u);
  std::uint32_t m = mant | (exp != 0 ? 0x800000u : 0u);  // 24-bit significand
  int shift = 13;                                         // bits dropped for a normal result
  std::uint32_t base = 0;
  if (e <= 0) {
    // Subnormal result: value = m * 2^(exp - 150) in units of 2^-24. From 25 dropped bits on the
    // value is below half the smallest subnormal (float subnormals included) and rounds to 0.
    shift = 14 - e;
    if (exp == 0 || shift >= 25) return sign;
  } else {
    base = static_cast<std::uint32_t>(e) << 10;
    m &= 0x7FFFFFu;
  }
  const std::uint32_t keep = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
  std::uint32_t r = base + keep;  // a carry out of the mantissa correctly bumps the exponent
  if (rem > half || (rem == half && (keep & 1u) != 0)) ++r;
  return static_cast<std::uint16_t>(sign | r);
}

// True when f is exactly an fp16 value (so storing it as fp16 loses nothing).
inline bool fp16_exact(float f) {
  const float back = fp16_to_float(float_to_fp16(f));
  return std::memcmp(&back, &f, sizeof f) == 0;
}

}  // namespace npuq
