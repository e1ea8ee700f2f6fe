// 513-entry interpolated int16 lookup tables: how TFLite, TFLM and NPUs evaluate a smooth
// function of an int16 value (softmax's exp and 1/(1+x), TOSA TABLE for int16).
//
// The table samples f at 513 evenly spaced points of [input_min, input_max] in Q0.15 (scaled by
// 32768, i.e. an output range [-1, 1)). A lookup uses the top 9 bits of the input to pick an
// entry and interpolates linearly to the next one with the low 7 bits, so 512 segments cover
// the 65536 inputs and the last entry only gives the last segment its slope. Because the lookup
// interpolates, the generator does not store round(f(x_i)): it lowers each entry by half the
// rounding error the interpolation would make at the segment's midpoint (the "bias" below), so
// the error is split between the sample point and the midpoint.
//
// Generator, per segment i = 0..511 with step = (input_max - input_min) / 512 and x = input_min
// + i * step, all arithmetic in the floating type F and round() half away from zero:
//
//   sample   = round(f(x) * 32768)
//   interp   = round((f(x + step) * 32768 + round(f(x) * 32768)) / 2)
//   midpoint = round(f(x + step / 2) * 32768)
//   entry[i] = clamp(sample - round((interp - midpoint) / 2), -32768, 32767)
//   entry[512] = clamp(round(f(input_max) * 32768), -32768, 32767)
//
// This is TFLite's generator in every form it has had: gen_lut(std::function<double(double)>,
// min, max, table, 513) in tensorflow/lite/kernels/internal/common.h, its successor
// gen_lut<double, int16_t, int16_t>(func, min, max, -1.0, 1.0, table), and today's
// LUTPopulate<int16_t>(scale, zero_point, ...) with double, which give identical tables for
// softmax's two functions (tests/test_softmax_int16.cpp checks all three). TFLM runs the same
// code in float (gen_lut<float, ...>, later LUTPopulate<int16_t> with float); that is
// `generate` with F = float, and for 1/(1+x) on [0, 1] it differs from the double table in two
// entries (160 and 294). Lookup (TFLite generic_int16_table_lookup, now LUTLookup):
//
//   index = 256 + (v >> 7), offset = v & 127
//   out   = entry[index] + ((entry[index + 1] - entry[index]) * offset + 64) >> 7   (floor shift,
//           the slope and the result held in int16 as TFLite holds them)
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "npuq/core/fixed_point.hpp"

namespace npuq {

struct int16_lut {
  static constexpr int segments = 512;
  static constexpr int size = segments + 1;
  std::array<std::int16_t, size> entry{};

  // The table of func on [input_min, input_max], computed in F (double for TFLite, float for
  // TFLM). func is called with F and its result is used as F.
  template <class F, class Func>
  static int16_lut generate(Func&& func, F input_min, F input_max) {
    static_assert(std::is_floating_point<F>::value, "int16_lut: the generator runs in a floating-point type");
    const F scale = F(32768);  // 65536 output steps over the output range [-1, 1]
    const F step = (input_max - input_min) / F(segments);
    const F half_step = step / F(2);
    auto f = [&](F x) { return static_cast<F>(func(x)); };
    auto to_entry = [](F v) { return static_cast<std::int16_t>(std::min<F>(std::max<F>(v, F(-32768)), F(32767))); };
    int16_lut t;
    for (int i = 0; i < segments; ++i) {
      const F x = input_min + static_cast<F>(i) * step;
      const F value = f(x);
      const F sample = std::round(value * scale);
      const F interp = std::round((f(input_min + static_cast<F>(i + 1) * step) * scale + std::round(value * scale)) / F(2));
      const F midpoint = std::round(f(x + half_step) * scale);
      const F bias = std::round((interp - midpoint) / F(2));
      t.entry[static_cast<std::size_t>(i)] = to_entry(sample - bias);
    }
    t.entry[segments] = to_entry(std::round(f(input_max) * scale));
    return t;
  }

  // Interpolated lookup of an int16 value. Like TFLite, the slope is kept in int16 and the sum
  // returned as int16, both wrapping; neither wraps for tables whose neighbouring entries differ
  // by less than 2^15 (every smooth function, including softmax's two tables).
  std::int16_t lookup(std::int16_t v) const {
    const std::int32_t index = 256 + static_cast<std::int32_t>(shift_right_floor(v, 7));  // [0, 511]
    const std::int32_t offset = v & 0x7f;
    const std::int32_t base = entry[static_cast<std::size_t>(index)];
    const std::int32_t slope = wrap16(entry[static_cast<std::size_t>(index) + 1] - base);
    const auto delta = static_cast<std::int32_t>(shift_right_floor(slope * offset + 64, 7));
    return static_cast<std::int16_t>(wrap16(base + delta));
  }

  // x modulo 2^16 as a signed value, without implementation-defined narrowing.
  static constexpr std::int32_t wrap16(std::int32_t x) {
    const std::int32_t low = x & 0xffff;
    return low >= 0x8000 ? low - 0x10000 : low;
  }

  friend bool operator==(const int16_lut& a, const int16_lut& b) { return a.entry == b.entry; }
  friend bool operator!=(const int16_lut& a, const int16_lut& b) { return !(a == b); }
};

}  // namespace npuq
