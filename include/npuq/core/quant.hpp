// Quantization parameters carried by a tensor view: real = (q - zero_point) * scale.
//
// One type covers the granularities models use: per tensor (activations), per axis (per output
// channel weights: conv OHWI axis 0, depthwise [KH,KW,C*M] axis 2, GEMM B [K,N] axis 1) and per
// group along a second axis (group-wise int4 weights: one scale per channel per `group_size`
// elements of K). Validation here is shared by every op so all of them report the same messages.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "npuq/core/dtype.hpp"
#include "npuq/core/layout.hpp"
#include "npuq/core/status.hpp"

namespace npuq {

enum class quant_granularity : std::uint8_t { none, per_tensor, per_axis, per_group };

struct Quant {
  quant_granularity granularity = quant_granularity::none;
  std::vector<float> scales;              // 1, dim(axis), or dim(axis) * groups entries
  std::vector<std::int32_t> zero_points;  // 1 (shared) or as many as scales
  int axis = -1;                          // channel axis for per_axis / per_group
  int group_axis = -1;                    // per_group: the axis cut into groups
  std::int64_t group_size = 0;            // per_group: elements per group along group_axis

  static Quant none() { return {}; }
  static Quant per_tensor(float scale, std::int32_t zero_point = 0) {
    Quant q;
    q.granularity = quant_granularity::per_tensor;
    q.scales = {scale};
    q.zero_points = {zero_point};
    return q;
  }
  // zero_points may hold one shared value or one per channel.
  static Quant per_axis(int axis, std::vector<float> scales, std::vector<std::int32_t> zero_points = {0}) {
    Quant q;
    q.granularity = quant_granularity::per_axis;
    q.axis = axis;
    q.scales = std::move(scales);
    q.zero_points = std::move(zero_points);
    return q;
  }
  // scales laid out [dim(axis)][groups], groups = ceil(dim(group_axis) / group_size).
  static Quant per_group(int axis, int group_axis, std::int64_t group_size, std::vector<float> scales,
                         std::vector<std::int32_t> zero_points = {0}) {
    Quant q = per_axis(axis, std::move(scales), std::move(zero_points));
    q.granularity = quant_granularity::per_group;
    q.group_axis = group_axis;
    q.group_size = group_size;
    return q;
  }

  bool present() const { return granularity != quant_granularity::none; }
  std::size_t channels() const { return granularity == quant_granularity::per_axis ? scales.size() : 1; }
  // Scale / zero point of channel c (per tensor: c ignored).
  float scale(std::int64_t c = 0) const { return scales.size() == 1 ? scales[0] : scales[static_cast<std::size_t>(c)]; }
  std::int32_t zero_point(std::int64_t c = 0) const {
    if (zero_points.empty()) return 0;
    return zero_points.size() == 1 ? zero_points[0] : zero_points[static_cast<std::size_t>(c)];
  }
};

namespace detail {
inline std::string arg(const char* name, const std::string& what) { return std::string(name) + ": " + what; }
}  // namespace detail

// Checks q against the layout and element range it describes. `name` is the argument name used
// in messages; `need` says whether quantization must be present.
// Largest |zero point| of an int8 / uint8 op output (validate_output_quant): 2^24 - 256, so
// that lo - zp and hi - zp, which the vector output stages hold in int32 lanes and in floats,
// are exact for every clamp bound lo, hi in [-128, 255].
inline constexpr std::int32_t max_output_offset = (1 << 24) - 256;

// `offset_zero_points`: the zero points are output offsets in [-max_output_offset,
// max_output_offset], not values of type t.
inline status validate_quant(const Quant& q, const Layout& layout, dtype t, const char* name, bool need,
                             bool offset_zero_points = false) {
  using detail::arg;
  if (!q.present()) {
    if (need) return {errc::invalid_quantization, arg(name, "quantization parameters are required")};
    return {};
  }
  if (q.scales.empty()) return {errc::invalid_quantization, arg(name, "no scales given")};
  for (std::size_t i = 0; i < q.scales.size(); ++i) {
    const float s = q.scales[i];
    if (!(s > 0.0f) || !std::isfinite(s))
      return {errc::invalid_quantization,
              arg(name, "scale[" + std::to_string(i) + "] = " + std::to_string(s) + " must be > 0 and finite")};
  }
  std::int32_t lo = -128, hi = 255;
  switch (t) {
    case dtype::s8: lo = -128; hi = 127; break;
    case dtype::u8: lo = 0; hi = 255; break;
    case dtype::s4: lo = -8; hi = 7; break;
    case dtype::s16: lo = -32768; hi = 32767; break;
    case dtype::s32: lo = 0; hi = 0; break;
    case dtype::f32: lo = 0; hi = 0; break;
  }
  if (offset_zero_points) {
    lo = -max_output_offset;
    hi = max_output_offset;
  }
  for (std::size_t i = 0; i < q.zero_points.size(); ++i) {
    const std::int32_t z = q.zero_points[i];
    if (z < lo || z > hi)
      return {errc::invalid_quantization, arg(name, "zero_point[" + std::to_string(i) + "] = " + std::to_string(z) +
                                                        " is outside [" + std::to_string(lo) + ", " +
                                                        std::to_string(hi) + "] for " + to_string(t))};
  }
  if (q.zero_points.size() > 1 && q.zero_points.size() != q.scales.size())
    return {errc::invalid_quantization, arg(name, std::to_string(q.zero_points.size()) + " zero points for " +
                                                      std::to_string(q.scales.size()) + " scales")};
  if (q.granularity == quant_granularity::per_tensor) {
    if (q.scales.size() != 1 || q.zero_points.size() > 1)
      return {errc::invalid_quantization, arg(name, "per-tensor quantization takes exactly one scale and zero point")};
    return {};
  }
  if (q.axis < 0 || q.axis >= layout.rank())
    return {errc::invalid_quantization,
            arg(name, "quantization axis " + std::to_string(q.axis) + " is outside rank " + std::to_string(layout.rank()))};
  std::int64_t expect = layout.dim(q.axis);
  if (q.granularity == quant_granularity::per_group) {
    if (q.group_axis < 0 || q.group_axis >= layout.rank() || q.group_axis == q.axis)
      return {errc::invalid_quantization, arg(name, "group axis " + std::to_string(q.group_axis) + " is invalid")};
    if (q.group_size <= 0) return {errc::invalid_quantization, arg(name, "group size must be > 0")};
    // ceil_div and a checked product: the group axis may be INT64_MAX long (zero strides), where
    // dim + group_size - 1 overflowed.
    const std::int64_t groups = ceil_div(std::max<std::int64_t>(layout.dim(q.group_axis), 0), q.group_size);
    if (!checked_mul(expect, groups, &expect))
      return {errc::invalid_quantization, arg(name, std::to_string(q.scales.size()) + " scales given, " + std::to_string(layout.dim(q.axis)) +
                                                        " x " + std::to_string(groups) + " groups expected (more than 2^63 - 1) for " +
                                                        layout.shape_string())};
  }
  if (static_cast<std::int64_t>(q.scales.size()) != expect)
    return {errc::invalid_quantization, arg(name, std::to_string(q.scales.size()) + " scales given, " +
                                                      std::to_string(expect) + " expected along axis " +
                                                      std::to_string(q.axis) + " of " + layout.shape_string())};
  return {};
}

// Quantization of a requantized op output (GEMM, conv2d, depthwise). TFLite and CMSIS-NN carry
// the output zero point as an int32 offset that is added before the clamp to the output type, so
// an int8 or uint8 output takes zero points outside its element range (int8 with zero point 128
// stores clamp(scaled + 128, -128, 127)), up to |zp| <= max_output_offset: every backend computes
// those bit-exactly; larger offsets are rejected by name. Other types keep their element range
// (int32 outputs: 0).
inline status validate_output_quant(const Quant& q, const Layout& layout, dtype t, const char* name) {
  return validate_quant(q, layout, t, name, false, t == dtype::s8 || t == dtype::u8);
}

}  // namespace npuq
