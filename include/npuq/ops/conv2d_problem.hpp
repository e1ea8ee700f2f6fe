// conv2d and depthwise conv2d: parameters, validation, and the validated problems every backend
// executes.
//
// conv2d:
//   out[n, oy, ox, oc] = requant( sum over (ky, kx, ic) inside the image of
//       (in[n, oy*sh - pad_top + ky*dh, ox*sw - pad_left + kx*dw, g*Cg + ic] - in_zp) * (w[oc, ky, kx, ic] - w_zp[oc])
//     + bias[oc] ),   g = oc / (OC / groups), Cg = C / groups.
//   Weights are logical OHWI (Layout::oihw for ONNX order).
//
// depthwise conv2d:
//   out[n, oy, ox, c*M + m] = requant( sum over (ky, kx) inside the image of
//       (in[n, oy*sh - pad_top + ky*dh, ox*sw - pad_left + kx*dw, c] - in_zp) * (w[ky, kx, c*M + m] - w_zp[c*M + m])
//     + bias[c*M + m] )
//   Weights are [KH, KW, C*M] (Layout::hwc_m) or TFLite's [1, KH, KW, C*M]; M = OC / C.
//
// Input is logical NHWC (an NCHW buffer is passed through Layout::nchw). Inputs and weights are
// int8 or uint8; weights have per-tensor or per-output-channel scales and zero points. The
// reduction runs in (ky, kx, ic) order, which matters only for saturating accumulators.
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
  int4_range int4_weights = int4_range::full;  // accepted values of int4 weights (TOSA: symmetric), as gemm_params
};
struct depthwise_params : output_params, window_params {
  int4_range int4_weights = int4_range::full;  // accepted values of int4 weights (TOSA: symmetric)
};

// What conv2d and depthwise share once validated.
template <class I, class W, class O>
struct window_problem {
  static_assert(is_8bit_v<I>, "conv2d / depthwise_conv2d: input must be int8_t or uint8_t");
  static_assert(is_8bit_v<W>, "conv2d / depthwise_conv2d: weights must be int8_t or uint8_t");
  static_assert(is_op_output_v<O>, "conv2d / depthwise_conv2d: output must be int8_t, uint8_t or int32_t");

  TensorView<const I> in;
  TensorView<const W> w;
  TensorView<const std::int32_t> bias;
  TensorView<O> out;
  output_stage stage;
  conv_geometry g;
  std::int64_t OC = 0;
  std::int32_t in_zero_point = 0;
  std::vector<std::int32_t> w_zero_point;  // OC entries
};

template <class I, class W, class O>
struct conv2d_problem : window_problem<I, W, O> {
  std::int64_t groups = 1, in_per_group = 0, out_per_group = 0;
};

template <class I, class W, class O>
struct depthwise_problem : window_problem<I, W, O> {
  std::int64_t multiplier = 1;  // w is always rank 3 [KH, KW, C*M] here
  // Set by the NPU emulator only (never by the op entry points), for
  // simd_detail::run_depthwise_counting: count into it while requantizing (see stage_tally).
  stage_tally* tally = nullptr;
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
  NPUQ_RETURN_IF_ERROR(validate_output_quant(out.quant(), out.layout(), out.type(), "output"));
  return {};
}

inline conv_geometry input_geometry(const Layout& in, std::int64_t kh, std::int64_t kw) {
  conv_geometry g;
  g.N = in.dim(0);
  g.H = in.dim(1);
  g.W = in.dim(2);
  g.C = in.dim(3);
  g.KH = kh;
  g.KW = kw;
  return g;
}

// The checks every sliding-window op (dense, depthwise, int4 and sparse conv2d) runs once its
// weights are known, all before anything is written: geometry (*g holds the input and kernel
// extents and receives the rest), the [N, OH, OW, OC] output shape, the bias, and the output
// memory (no two elements at one address; no overlap with the input, the bias or any of
// `weights`, which are TensorViews).
template <class I, class O, class... W>
status validate_window_output(const window_params& wp, std::int64_t OC, const TensorView<const I>& in,
                              const TensorView<const std::int32_t>& bias, const TensorView<O>& out, conv_geometry* g,
                              const W&... weights) {
  NPUQ_RETURN_IF_ERROR(resolve_geometry(wp, g));
  if (out.dim(0) != g->N || out.dim(1) != g->OH || out.dim(2) != g->OW || out.dim(3) != OC)
    return {errc::invalid_shape, "output: shape " + out.layout().shape_string() + ", expected [" + std::to_string(g->N) + "," +
                                     std::to_string(g->OH) + "," + std::to_string(g->OW) + "," + std::to_string(OC) + "]"};
  NPUQ_RETURN_IF_ERROR(validate_bias(bias, OC));
  return validate_output_memory(out, in, bias, weights...);
}

// Geometry, output shape, weight quantization, bias, output stage and aliasing: the checks that
// follow the op-specific weight shape checks; fills the shared part of the problem.
template <class I, class W, class O>
status finish_window_problem(const output_params& p, const window_params& wp, conv_geometry g, const TensorView<const I>& in,
                             const TensorView<const W>& w, const TensorView<const std::int32_t>& bias, const TensorView<O>& out,
                             std::int64_t OC, int w_channel_axis, window_problem<I, W, O>* pb) {
  NPUQ_RETURN_IF_ERROR(validate_window_output(wp, OC, in, bias, out, &g, w));
  NPUQ_RETURN_IF_ERROR(validate_quant(w.quant(), w.layout(), w.type(), "weights", false));
  NPUQ_RETURN_IF_ERROR(validate_weight_zero_points(w, w_channel_axis, "weights"));
  NPUQ_RETURN_IF_ERROR(make_output_stage(p, in, w, out, OC, w_channel_axis, &pb->stage));
  pb->in = addressable(in);  // an empty input or weights (C = 0): row-major strides (tensor.hpp)
  pb->w = addressable(w);
  pb->bias = bias;
  pb->out = out;
  pb->g = g;
  pb->OC = OC;
  pb->in_zero_point = in.quant().zero_point();
  pb->w_zero_point.resize(static_cast<std::size_t>(OC));
  for (std::int64_t c = 0; c < OC; ++c) pb->w_zero_point[static_cast<std::size_t>(c)] = w.quant().zero_point(c);
  return {};
}

}  // namespace detail

template <class I, class W, class O>
status make_conv2d_problem(const conv2d_params& p, const TensorView<const I>& in, const TensorView<const W>& w,
                           const TensorView<const std::int32_t>& bias, const TensorView<O>& out, conv2d_problem<I, W, O>* pb,
                           bool w_is_descriptor = false) {
  // w_is_descriptor: w has no data (packed weights describe their logical OHWI shape through it).
  NPUQ_RETURN_IF_ERROR(detail::validate_activation_pair(in, out));
  if (!w_is_descriptor) NPUQ_RETURN_IF_ERROR(w.validate("weights"));
  if (w.rank() != 4) return {errc::invalid_shape, "weights: rank " + std::to_string(w.rank()) + ", expected 4 (O, KH, KW, I)"};
  const conv_geometry g = detail::input_geometry(in.layout(), w.dim(1), w.dim(2));
  const std::int64_t OC = w.dim(0);
  if (p.groups < 1) return {errc::invalid_argument, "groups: must be >= 1, got " + std::to_string(p.groups)};
  if (g.C % p.groups != 0 || OC % p.groups != 0)
    return {errc::invalid_argument, "groups: " + std::to_string(p.groups) + " does not divide input channels " +
                                        std::to_string(g.C) + " and output channels " + std::to_string(OC)};
  if (w.dim(3) != g.C / p.groups)
    return {errc::invalid_shape, "weights: shape " + w.layout().shape_string() + " has " + std::to_string(w.dim(3)) +
                                     " input channels per group, expected " + std::to_string(g.C / p.groups)};
  NPUQ_RETURN_IF_ERROR(detail::finish_window_problem(p, p, g, in, w, bias, out, OC, 0, pb));
  pb->groups = p.groups;
  pb->in_per_group = g.C / p.groups;
  pb->out_per_group = OC / p.groups;
  return {};
}

template <class I, class W, class O>
status make_depthwise_problem(const depthwise_params& p, const TensorView<const I>& in, TensorView<const W> w,
                              const TensorView<const std::int32_t>& bias, const TensorView<O>& out,
                              depthwise_problem<I, W, O>* pb) {
  NPUQ_RETURN_IF_ERROR(detail::validate_activation_pair(in, out));
  NPUQ_RETURN_IF_ERROR(w.validate("weights"));
  if (w.rank() == 4) {  // TFLite [1, KH, KW, C*M]: drop the leading 1
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
  const conv_geometry g = detail::input_geometry(in.layout(), w.dim(0), w.dim(1));
  const std::int64_t OC = w.dim(2);
  if (g.C < 1 || OC % g.C != 0)
    return {errc::invalid_shape, "weights: " + std::to_string(OC) + " output channels is not a multiple of the " +
                                     std::to_string(g.C) + " input channels"};
  NPUQ_RETURN_IF_ERROR(detail::finish_window_problem(p, p, g, in, w, bias, out, OC, 2, pb));
  pb->multiplier = OC / g.C;
  return {};
}

}  // namespace npuq
