// What happens to an int32 accumulator after the dot products: bias, requantization, clamp.
//
// Every op (GEMM, conv2d, depthwise, later attention) ends in the same output stage, so its
// parameters, their validation and the derivation of per-channel multipliers live here once.
// Requantization is described either by float scales carried on the tensors (derived exactly as
// the profile's reference runtime does) or directly by integer (multiplier, shift) pairs per
// channel, the way NPU toolchains and TFLite flatbuffers store them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/core/numerics.hpp"
#include "npuq/core/tensor.hpp"

namespace npuq {

enum class activation : std::uint8_t { none, relu, relu6, clamp };

// Fused activation, expressed as a clamp in the quantized output domain.
struct clamp_spec {
  activation kind = activation::none;
  std::int32_t min = 0, max = 0;  // quantized bounds for activation::clamp

  static clamp_spec none() { return {}; }
  static clamp_spec relu() { return {activation::relu, 0, 0}; }
  static clamp_spec relu6() { return {activation::relu6, 0, 0}; }
  static clamp_spec range(std::int32_t lo, std::int32_t hi) { return {activation::clamp, lo, hi}; }
};

// Parameters every accumulating op shares.
struct output_params {
  numerics_profile numerics = numerics_profile::tflite();
  clamp_spec clamp{};
  // Optional integer requantization per output channel (1 entry = per tensor). When empty, the
  // multipliers are derived from the input, weight and output scales under `numerics`.
  std::vector<requant_channel> requant;
};

// The output stage resolved for one call: one multiplier per output channel, zero point, bounds.
struct output_stage {
  numerics_profile numerics;
  bool raw = true;  // int32 output: no requantization, no clamp
  std::vector<requant_channel> channel;
  std::int32_t zero_point = 0;
  std::int32_t lo = 0, hi = 0;
  const requant_channel& at(std::int64_t c) const {
    return channel.size() == 1 ? channel[0] : channel[static_cast<std::size_t>(c)];
  }
  // Accumulator (already reduced to the profile's width) of output channel c -> stored value.
  std::int32_t apply(std::int64_t acc, std::int64_t c) const {
    if (raw) return static_cast<std::int32_t>(acc);
    return requantize(numerics, acc, at(c), zero_point, lo, hi);
  }
};

// What an NPU's post-processing unit counts, gathered by the simd kernels while they requantize
// when the NPU emulator asks (depthwise_problem::tally): per vector lane, the largest |sum + bias|
// and the outputs clamped below and above (a call counts fewer than 2^31 outputs per lane).
// `counted` is set by a kernel that counted every output; when it stays false the emulator
// computes the tile itself.
struct stage_tally {
  static constexpr int lanes = 16;
  alignas(64) std::uint32_t max_abs[lanes] = {};
  alignas(64) std::uint32_t low[lanes] = {};
  alignas(64) std::uint32_t high[lanes] = {};
  bool counted = false;
  std::int64_t max_abs_total() const {
    std::int64_t m = 0;
    for (std::uint32_t v : max_abs) m = v > m ? v : m;
    return m;
  }
  static std::int64_t sum(const std::uint32_t* v) {
    std::int64_t n = 0;
    for (int l = 0; l < lanes; ++l) n += v[l];
    return n;
  }
};

namespace detail {

template <class A, class W, class O>
status make_output_stage(const output_params& p, const TensorView<A>& in, const TensorView<W>& w, const TensorView<O>& out,
                         std::int64_t channels, int w_channel_axis, output_stage* st, const char* in_name = "input",
                         const char* w_name = "weights") {
  NPUQ_RETURN_IF_ERROR(p.numerics.validate());
  st->numerics = p.numerics;
  using OT = std::remove_const_t<O>;
  constexpr bool raw = std::is_same<OT, std::int32_t>::value;
  st->raw = raw;
  if (raw) {
    if (p.clamp.kind != activation::none)
      return {errc::unsupported, "clamp: a fused activation needs an int8 or uint8 output, not int32"};
    if (p.numerics.acc.bits > 32)
      return {errc::unsupported, "output: int32 output needs an accumulator of at most 32 bits"};
    if (!p.requant.empty()) return {errc::invalid_argument, "requant: given for an int32 output that is not requantized"};
    return {};
  }
  constexpr std::int32_t qmin = element_traits<OT>::min, qmax = element_traits<OT>::max;
  const Quant& oq = out.quant();
  if (!oq.present()) return {errc::invalid_quantization, "output: quantization parameters are required for an 8-bit output"};
  if (oq.granularity != quant_granularity::per_tensor)
    return {errc::invalid_quantization, "output: quantization must be per tensor"};
  st->zero_point = oq.zero_point();

  if (!p.requant.empty()) {
    if (p.requant.size() != 1 && static_cast<std::int64_t>(p.requant.size()) != channels)
      return {errc::invalid_quantization, "requant: " + std::to_string(p.requant.size()) + " entries given, expected 1 or " +
                                              std::to_string(channels) + " (output channels)"};
    for (std::size_t i = 0; i < p.requant.size(); ++i) NPUQ_RETURN_IF_ERROR(validate_requant_channel(p.numerics, p.requant[i], i));
    st->channel = p.requant;
  } else {
    if (!in.quant().present())
      return {errc::invalid_quantization, std::string(in_name) + ": a scale is needed to derive the requantization"};
    if (!w.quant().present())
      return {errc::invalid_quantization, std::string(w_name) + ": scales are needed to derive the requantization"};
    const Quant& wq = w.quant();
    if (wq.granularity == quant_granularity::per_group)
      return {errc::unsupported, std::string(w_name) + ": group-wise scales cannot be folded into one output multiplier"};
    if (wq.granularity == quant_granularity::per_axis && wq.axis != w_channel_axis)
      return {errc::invalid_quantization, std::string(w_name) + ": per-channel quantization must be along axis " +
                                              std::to_string(w_channel_axis) + " (output channels), got axis " +
                                              std::to_string(wq.axis)};
    const std::size_t n = wq.scales.size();
    st->channel.resize(n);
    for (std::size_t c = 0; c < n; ++c) {
      const requant_channel r = derive_requant(p.numerics, in.quant().scale(), wq.scales[c], oq.scale());
      // Scales the multiplier cannot hold: a float product that overflows to infinity (0 * inf
      // would be NaN), or a q31 left shift above 30 (above 31 the shift itself is undefined).
      if (p.numerics.format == multiplier_format::fp32 ? !std::isfinite(r.scale) : r.shift > 30)
        return {errc::invalid_quantization, "output: effective scale input * weight / output of channel " + std::to_string(c) +
                                                " is too large for a " + to_string(p.numerics.format) + " multiplier"};
      // An fp32 product that underflows to 0 is the explicit scale 0 that requant[] rejects.
      if (p.numerics.format == multiplier_format::fp32 && !(r.scale > 0.0f))
        return {errc::invalid_quantization, "output: effective scale input * weight / output of channel " + std::to_string(c) +
                                                " underflows to 0 as an fp32 multiplier"};
      st->channel[c] = r;
    }
  }

  // The zero point is an int32 offset that may lie outside [qmin, qmax] (validate_output_quant):
  // the bounds it implies are clamped into the output type, so lo <= hi always.
  const std::int32_t zp_in_range = std::min(std::max(qmin, st->zero_point), qmax);
  std::int32_t lo = qmin, hi = qmax;
  switch (p.clamp.kind) {
    case activation::none: break;
    case activation::relu: lo = zp_in_range; break;
    case activation::relu6: {
      lo = zp_in_range;
      const float six = 6.0f / oq.scale();
      const double top = static_cast<double>(st->zero_point) + std::round(static_cast<double>(six));
      hi = top < qmax ? static_cast<std::int32_t>(top) : qmax;
      if (hi < lo) hi = lo;
      break;
    }
    case activation::clamp:
      if (p.clamp.min > p.clamp.max || p.clamp.min < qmin || p.clamp.max > qmax)
        return {errc::invalid_argument, "clamp: bounds [" + std::to_string(p.clamp.min) + ", " + std::to_string(p.clamp.max) +
                                            "] must be ordered and inside [" + std::to_string(qmin) + ", " +
                                            std::to_string(qmax) + "]"};
      lo = p.clamp.min;
      hi = p.clamp.max;
      break;
  }
  st->lo = lo;
  st->hi = hi;
  return {};
}

// Bias: absent (rank 0, null) or a 1-D int32 vector of `channels` entries.
inline status validate_bias(const TensorView<const std::int32_t>& bias, std::int64_t channels) {
  if (bias.data() == nullptr && bias.rank() == 0) return {};
  NPUQ_RETURN_IF_ERROR(bias.validate("bias"));
  if (bias.rank() != 1 || bias.dim(0) != channels)
    return {errc::invalid_shape, "bias: shape " + bias.layout().shape_string() + ", expected [" + std::to_string(channels) + "]"};
  return {};
}

// Output must not overlap itself or any input.
template <class O, class... In>
status validate_output_memory(const TensorView<O>& out, const In&... in) {
  if (!out.layout().is_non_overlapping())
    return {errc::invalid_layout, "output: layout " + out.layout().to_string() + " maps two elements to one address"};
  const bool alias = (overlaps(out, in) || ...);
  if (alias) return {errc::aliasing, "output: memory overlaps an input; use a separate buffer"};
  return {};
}

// Zero points of a weight view: per tensor or per channel along `axis`.
template <class W>
status validate_weight_zero_points(const TensorView<W>& w, int axis, const char* name) {
  const Quant& q = w.quant();
  if (q.zero_points.size() > 1 && (q.granularity != quant_granularity::per_axis || q.axis != axis))
    return {errc::invalid_quantization, std::string(name) + ": per-channel zero points must be along axis " + std::to_string(axis)};
  return {};
}

}  // namespace detail
}  // namespace npuq
