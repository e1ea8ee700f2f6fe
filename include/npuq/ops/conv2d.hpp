// conv2d and depthwise conv2d entry points: validate, then run on the chosen backend.
//
//   npuq::conv2d(npuq::scalar, params, input, weights, bias, out);            // throws npuq::error
//   npuq::status s = npuq::try_depthwise_conv2d(npuq::scalar, dparams, input, dw_weights, bias, out);
//
// Nothing is written when validation fails. The contracts are in conv2d_problem.hpp.
//
// One call shape for every weight format: int8 and uint8 weights run the op; int4 weights
// (Tensor<int4>, TensorView<int4>) run conv2d_int4 / depthwise_conv2d_int4 (conv2d_int4.hpp,
// params.int4_weights: TFLite's [-8, 7] or TOSA's symmetric [-7, 7]); sparse conv weights
// (sparse_conv2d_weights, which carry the kernel extent) run conv2d_sparse (conv2d_sparse.hpp).
// Weights are the logical [OC, KH, KW, C] of any memory order: Layout::ohwi, Layout::oihw
// (ONNX, PyTorch), Layout::hwio (TensorFlow); per-channel quantization is on axis 0.
#pragma once

#include <type_traits>

#include "npuq/backends/scalar/conv2d.hpp"
#include "npuq/core/backend.hpp"
#include "npuq/core/dtype.hpp"
#include "npuq/ops/conv2d_problem.hpp"

namespace npuq {

template <class Backend, class XI, class XW, class XBias, class XO>
status try_conv2d(const Backend& backend, const conv2d_params& params, const XI& input, const XW& weights, const XBias& bias,
                  const XO& out) {
  static_assert(detail::is_view_arg<XW>::value,
                "conv2d: weights are a Tensor / TensorView of int8_t, uint8_t or int4, or sparse_conv2d_weights "
                "(made by compress_conv2d_2_4 / compress_conv2d_block_csr / compress_conv2d_csr, ops/conv2d_sparse.hpp)");
  if constexpr (std::is_same<detail::element_of<XW>, int4>::value) {
    return try_conv2d_int4(backend, params, input, weights, bias, out);  // conv2d_int4.hpp, included below
  } else {
    conv2d_problem<detail::element_of<XI>, detail::element_of<XW>, detail::element_of<XO>> problem;
    NPUQ_RETURN_IF_ERROR(
        make_conv2d_problem(params, input_view(input), input_view(weights), input_view(bias), output_view(out), &problem));
    return detail::run_validated(backend, problem);
  }
}

template <class Backend, class XI, class XW, class XBias, class XO>
void conv2d(const Backend& backend, const conv2d_params& params, const XI& input, const XW& weights, const XBias& bias,
            const XO& out) {
  throw_if_error(try_conv2d(backend, params, input, weights, bias, out));
}

template <class Backend, class XI, class XW, class XBias, class XO>
status try_depthwise_conv2d(const Backend& backend, const depthwise_params& params, const XI& input, const XW& weights,
                            const XBias& bias, const XO& out) {
  static_assert(detail::is_view_arg<XW>::value,
                "depthwise_conv2d: weights are a Tensor / TensorView of int8_t, uint8_t or int4 (sparse depthwise weights are not "
                "supported: each channel has only KH * KW weights)");
  if constexpr (std::is_same<detail::element_of<XW>, int4>::value) {
    return try_depthwise_conv2d_int4(backend, params, input, weights, bias, out);  // conv2d_int4.hpp, included below
  } else {
    depthwise_problem<detail::element_of<XI>, detail::element_of<XW>, detail::element_of<XO>> problem;
    NPUQ_RETURN_IF_ERROR(
        make_depthwise_problem(params, input_view(input), input_view(weights), input_view(bias), output_view(out), &problem));
    return detail::run_validated(backend, problem);
  }
}

template <class Backend, class XI, class XW, class XBias, class XO>
void depthwise_conv2d(const Backend& backend, const depthwise_params& params, const XI& input, const XW& weights,
                      const XBias& bias, const XO& out) {
  throw_if_error(try_depthwise_conv2d(backend, params, input, weights, bias, out));
}

}  // namespace npuq

// The int4 forms the calls above dispatch to (found when a call is instantiated; this header and
// conv2d_int4.hpp include each other, #pragma once makes either order work).
#include "npuq/ops/conv2d_int4.hpp"
