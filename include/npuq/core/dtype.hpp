// Element types.
//
// npuq works on int8, uint8 and int32 tensors and on packed int4 (two's complement, two values per
// byte, element 2i in the low nibble and 2i+1 in the high nibble: the TFLite/TOSA/CMSIS-NN/ONNX
// order). `int4` is a tag type: a TensorView<int4> stores bytes and reads/writes nibbles through
// the same view interface as the byte types, so kernels and validation can be written once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace npuq {

enum class dtype : std::uint8_t { s8, u8, s32, s4, s16, f32 };

inline const char* to_string(dtype t) {
  switch (t) {
    case dtype::s8: return "int8";
    case dtype::u8: return "uint8";
    case dtype::s32: return "int32";
    case dtype::s4: return "int4";
    case dtype::s16: return "int16";
    case dtype::f32: return "float32";
  }
  return "?";
}

// Tag for packed signed 4-bit values. Its value type is int8_t (range [-8, 7]).
struct int4 {
  std::int8_t value;
};

// Which int4 values weights may hold: TFLite / CMSIS-NN / ONNX use the full two's complement
// range [-8, 7]; TOSA (EXT-INT4) restricts symmetric weights to [-7, 7]. Ops taking int4 weights
// check the symmetric range when asked to (gemm_params::int4_weights).
enum class int4_range : std::uint8_t { full, symmetric };

inline const char* to_string(int4_range r) { return r == int4_range::full ? "[-8, 7]" : "[-7, 7]"; }
inline constexpr std::int32_t int4_min(int4_range r) { return r == int4_range::full ? -8 : -7; }

// Sign-extends the low (hi == false) or high nibble of a byte.
constexpr std::int8_t int4_nibble(std::uint8_t byte, bool hi) {
  return static_cast<std::int8_t>(static_cast<std::int8_t>(hi ? byte : static_cast<std::uint8_t>(byte << 4)) >> 4);
}

// Replaces one nibble of a byte with the low 4 bits of v.
constexpr std::uint8_t int4_set_nibble(std::uint8_t byte, bool hi, std::int8_t v) {
  const std::uint8_t code = static_cast<std::uint8_t>(v) & 0x0F;
  return hi ? static_cast<std::uint8_t>((byte & 0x0F) | (code << 4))
            : static_cast<std::uint8_t>((byte & 0xF0) | code);
}

template <class T>
struct element_traits;

template <>
struct element_traits<std::int8_t> {
  using storage = std::int8_t;
  using value = std::int8_t;
  static constexpr dtype type = dtype::s8;
  static constexpr std::int32_t min = -128, max = 127;
  static constexpr bool packed = false;
};
template <>
struct element_traits<std::uint8_t> {
  using storage = std::uint8_t;
  using value = std::uint8_t;
  static constexpr dtype type = dtype::u8;
  static constexpr std::int32_t min = 0, max = 255;
  static constexpr bool packed = false;
};
// int16 activations (the int16 softmax). There is no `dtype` code for int16 yet: adding one
// needs a case in validate_quant's switch (core/quant.hpp), so int16 views cannot report type().
template <>
struct element_traits<std::int16_t> {
  using storage = std::int16_t;
  using value = std::int16_t;
  static constexpr std::int32_t min = -32768, max = 32767;
  static constexpr bool packed = false;
  static constexpr dtype type = dtype::s16;
};
template <>
struct element_traits<std::int32_t> {
  using storage = std::int32_t;
  using value = std::int32_t;
  static constexpr dtype type = dtype::s32;
  static constexpr std::int32_t min = INT32_MIN, max = INT32_MAX;
  static constexpr bool packed = false;
};
template <>
struct element_traits<int4> {
  using storage = std::uint8_t;  // two elements per byte
  using value = std::int8_t;
  static constexpr dtype type = dtype::s4;
  static constexpr std::int32_t min = -8, max = 7;
  static constexpr bool packed = true;
};

// float32 outputs (group-wise int4 GEMM) and float biases. Not an integer element: no zero point.
template <>
struct element_traits<float> {
  using storage = float;
  using value = float;
  static constexpr dtype type = dtype::f32;
  static constexpr bool packed = false;
};

template <class T>
using storage_t = typename element_traits<std::remove_const_t<T>>::storage;
template <class T>
using value_t = typename element_traits<std::remove_const_t<T>>::value;

// Operand types of the int8 ops: 8-bit activations/weights, and what an accumulating op may write.
template <class T>
constexpr bool is_8bit_v = std::is_same<T, std::int8_t>::value || std::is_same<T, std::uint8_t>::value;
template <class T>
constexpr bool is_op_output_v = is_8bit_v<T> || std::is_same<T, std::int32_t>::value;

// Bytes needed to hold n elements of T.
template <class T>
constexpr std::int64_t bytes_for(std::int64_t n) {
  return element_traits<std::remove_const_t<T>>::packed ? (n + 1) / 2
                                                        : n * static_cast<std::int64_t>(sizeof(storage_t<T>));
}

}  // namespace npuq
