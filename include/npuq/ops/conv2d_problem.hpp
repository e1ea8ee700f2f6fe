// conv2d: parameters, validation, and the validated problem every backend executes.
//
// out[n, oy, ox, oc] = requant( sum over (ky, kx, ic) inside the image of
//     (in[n, oy*sh - pad_top + ky*dh, ox*sw - pad_left + kx*dw, g*Cg + ic] - in_zp) * (w[oc, ky, kx, ic] - w_zp[oc])
//   + bias[oc] ),   g = oc / (OC / groups), Cg = C / groups.
//
// Input is logical NHWC (an NCHW buffer is passed through Layout::nchw), weights logical OHWI
// (Layout::oihw for ONNX order), int8 or uint8 with per-tensor or per-output-channel scales and
// zero points. The reduction runs in (ky, kx, ic) order, which matters only for saturating
// accumulators.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/ops/conv_geometry.hpp"
#include "npuq/ops/output_stage.hpp"

namespace npuq {

struct conv2d_params : output_params, window_params {
  std::int64_t groups = 1;
};

template <class I, class W, class O>
struct conv2d_problem {
  static_assert(std::is_same<I, std::int8_t>::value || std::is_same<I, std::uint8_t>::value,
                "conv2d: input must be int8_t or uint8_t");
  static_assert(std::is_same<W, std::int8_t>::value || std::is_same<W, std::uint8_t>::value,
                "conv2d: weights must be int8_t or uint8_t");
  static_assert(std::is_same<O, std::int8_t>::value || std::is_same<O, std::uint8_t>::value ||
                    std::is_same<O, std::int32_t>::value,
                "conv2d: output must be int8_t, uint8_t or int32_t");

  TensorView<const I> in;
  TensorView<const W> w;
  TensorView<const std::int32_t> bias;
  TensorView<O> out;
  output_stage stage;
  conv_geometry g;
  std::int64_t OC = 0, groups = 1, in_per_group = 0, out_per_group = 0;
  std::int32_t in_zero_point = 0;
  std::vector<std::int32_t> w_zero_point;  // OC entries
};

namespace detail {

template <class I, class O>
status validate_activation_pair(const TensorView<const I>& in, const TensorView<O>& out) {
  NPUQ_RETURN_IF_ERROR(in.validate("input"));
  NPUQ_RETURN_IF_ERROR(out.validate("output"));
  if (in.rank() != 4) return {errc::invalid_shape, "input: rank " + std::to_string(in.rank()) + ", expected 4 (N, H, W, C)"};
  if (out.rank() != 4) return {errc::invalid_shape, "output: rank " + std::to_string(out.rank()) + ", expected 4 (N, OH, OW, OC)"};
  NPUQ_RETURN_IF_ERROR(validate_quant(in.quant(), in.layout(), in.type(), "input", false));
  if (in.quant().present() && in.quant().granularity != quant_granularity::per_tensor)
    return {errc::invalid_quantization, "input: activations must be quantized per tensor"};
  NPUQ_RETURN_IF_ERROR(validate_quant(out.quant(), out.layout(), out.type(), "output", false));
  return {};
}

template <class O>
status validate_conv_output_shape(const TensorView<O>& out, const conv_geometry& g, std::int64_t oc) {
  if (out.dim(0) != g.N || out.dim(1) != g.OH || out.dim(2) != g.OW || out.dim(3) != oc)
    return {errc::invalid_shape, "output: shape " + out.layout().shape_string() + ", expected [" + std::to_string(g.N) + "," +
                                     std::to_string(g.OH) + "," + std::to_string(g.OW) + "," + std::to_string(oc) + "]"};
  return {};
}

}  // namespace detail

template <class I, class W, class O>
status make_conv2d_problem(const conv2d_params& p, const TensorView<const I>& in, const TensorView<const W>& w,
                           const TensorView<const std::int32_t>& bias, const TensorView<O>& out, conv2d_problem<I, W, O>* pb) {
  NPUQ_RETURN_IF_ERROR(detail::validate_activation_pair(in, out));
  NPUQ_RETURN_IF_ERROR(w.validate("weights"));
  if (w.rank() != 4) return {errc::invalid_shape, "weights: rank " + std::to_string(w.rank()) + ", expected 4 (O, KH, KW, I)"};
  conv_geometry g;
  g.N = in.dim(0);
  g.H = in.dim(1);
  g.W = in.dim(2);
  g.C = in.dim(3);
  g.KH = w.dim(1);
  g.KW = w.dim(2);
  const std::int64_t OC = w.dim(0);
  if (p.groups < 1) return {errc::invalid_argument, "groups: must be >= 1, got " + std::to_string(p.groups)};
  if (g.C % p.groups != 0 || OC % p.groups != 0)
    return {errc::invalid_argument, "groups: " + std::to_string(p.groups) + " does not divide input channels " +
                                        std::to_string(g.C) + " and output channels " + std::to_string(OC)};
  if (w.dim(3) != g.C / p.groups)
    return {errc::invalid_shape, "weights: shape " + w.layout().shape_string() + " has " + std::to_string(w.dim(3)) +
                                     " input channels per group, expected " + std::to_string(g.C / p.groups)};
  NPUQ_RETURN_IF_ERROR(detail::resolve_geometry(p, &g));
  NPUQ_RETURN_IF_ERROR(detail::validate_conv_output_shape(out, g, OC));
  NPUQ_RETURN_IF_ERROR(validate_quant(w.quant(), w.layout(), w.type(), "weights", false));
  NPUQ_RETURN_IF_ERROR(detail::validate_weight_zero_points(w, 0, "weights"));
  NPUQ_RETURN_IF_ERROR(detail::validate_bias(bias, OC));
  NPUQ_RETURN_IF_ERROR(detail::make_output_stage(p, in, w, out, OC, 0, &pb->stage));
  NPUQ_RETURN_IF_ERROR(detail::validate_output_memory(out, in, w, bias));

  pb->in = in;
  pb->w = w;
  pb->bias = bias;
  pb->out = out;
  pb->g = g;
  pb->OC = OC;
  pb->groups = p.groups;
  pb->in_per_group = g.C / p.groups;
  pb->out_per_group = OC / p.groups;
  pb->in_zero_point = in.quant().zero_point();
  pb->w_zero_point.resize(static_cast<std::size_t>(OC));
  for (std::int64_t c = 0; c < OC; ++c) pb->w_zero_point[static_cast<std::size_t>(c)] = w.quant().zero_point(c);
  return {};
}

}  // namespace npuq
