// Depthwise conv2d: parameters, validation, and the validated problem every backend executes.
//
// out[n, oy, ox, c*M + m] = requant( sum over (ky, kx) inside the image of
//     (in[n, oy*sh - pad_top + ky*dh, ox*sw - pad_left + kx*dw, c] - in_zp) * (w[ky, kx, c*M + m] - w_zp[c*M + m])
//   + bias[c*M + m] )
//
// Weights are [KH, KW, C*M] (Layout::hwc_m) or TFLite's [1, KH, KW, C*M]; the channel
// multiplier M is (output channels) / C. Per-channel quantization runs along the last axis.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/ops/conv2d_problem.hpp"

namespace npuq {

struct depthwise_params : output_params, window_params {};

template <class I, class W, class O>
struct depthwise_problem {
  static_assert(std::is_same<I, std::int8_t>::value || std::is_same<I, std::uint8_t>::value,
                "depthwise_conv2d: input must be int8_t or uint8_t");
  static_assert(std::is_same<W, std::int8_t>::value || std::is_same<W, std::uint8_t>::value,
                "depthwise_conv2d: weights must be int8_t or uint8_t");
  static_assert(std::is_same<O, std::int8_t>::value || std::is_same<O, std::uint8_t>::value ||
                    std::is_same<O, std::int32_t>::value,
                "depthwise_conv2d: output must be int8_t, uint8_t or int32_t");

  TensorView<const I> in;
  TensorView<const W> w;  // always rank 3 [KH, KW, C*M] here
  TensorView<const std::int32_t> bias;
  TensorView<O> out;
  output_stage stage;
  conv_geometry g;
  std::int64_t multiplier = 1;
  std::int32_t in_zero_point = 0;
  std::vector<std::int32_t> w_zero_point;  // C*M entries
};

template <class I, class W, class O>
status make_depthwise_problem(const depthwise_params& p, const TensorView<const I>& in, TensorView<const W> w,
                              const TensorView<const std::int32_t>& bias, const TensorView<O>& out,
                              depthwise_problem<I, W, O>* pb) {
  NPUQ_RETURN_IF_ERROR(detail::validate_activation_pair(in, out));
  NPUQ_RETURN_IF_ERROR(w.validate("weights"));
  if (w.rank() == 4) {
    if (w.dim(0) != 1) return {errc::invalid_shape, "weights: shape " + w.layout().shape_string() + ", expected [1, KH, KW, C*M]"};
    const Layout& l = w.layout();
    Quant q = w.quant();
    if (q.axis >= 0) --q.axis;
    if (q.present() && q.granularity == quant_granularity::per_axis && q.axis < 0)
      return {errc::invalid_quantization, "weights: per-channel quantization must be along the last axis"};
    w = TensorView<const W>(w.data(), w.offset(), Layout::strided({l.dim(1), l.dim(2), l.dim(3)}, {l.stride(1), l.stride(2), l.stride(3)}),
                            q, w.capacity());
  }
  if (w.rank() != 3) return {errc::invalid_shape, "weights: rank " + std::to_string(w.rank()) + ", expected 3 (KH, KW, C*M)"};
  conv_geometry g;
  g.N = in.dim(0);
  g.H = in.dim(1);
  g.W = in.dim(2);
  g.C = in.dim(3);
  g.KH = w.dim(0);
  g.KW = w.dim(1);
  const std::int64_t OC = w.dim(2);
  if (g.C < 1 || OC % g.C != 0)
    return {errc::invalid_shape, "weights: " + std::to_string(OC) + " output channels is not a multiple of the " +
                                     std::to_string(g.C) + " input channels"};
  NPUQ_RETURN_IF_ERROR(detail::resolve_geometry(p, &g));
  NPUQ_RETURN_IF_ERROR(detail::validate_conv_output_shape(out, g, OC));
  NPUQ_RETURN_IF_ERROR(validate_quant(w.quant(), w.layout(), w.type(), "weights", false));
  NPUQ_RETURN_IF_ERROR(detail::validate_weight_zero_points(w, 2, "weights"));
  NPUQ_RETURN_IF_ERROR(detail::validate_bias(bias, OC));
  NPUQ_RETURN_IF_ERROR(detail::make_output_stage(p, in, w, out, OC, 2, &pb->stage));
  NPUQ_RETURN_IF_ERROR(detail::validate_output_memory(out, in, w, bias));

  pb->in = in;
  pb->w = w;
  pb->bias = bias;
  pb->out = out;
  pb->g = g;
  pb->multiplier = OC / g.C;
  pb->in_zero_point = in.quant().zero_point();
  pb->w_zero_point.resize(static_cast<std::size_t>(OC));
  for (std::int64_t c = 0; c < OC; ++c) pb->w_zero_point[static_cast<std::size_t>(c)] = w.quant().zero_point(c);
  return {};
}

}  // namespace npuq
