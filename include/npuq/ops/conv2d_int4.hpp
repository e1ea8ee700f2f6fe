// conv2d and depthwise conv2d with packed int4 weights (W4A8), on any backend.
//
// Why a wrapper: convolution weights are small next to their reuse (every weight meets every
// output pixel), so nothing is gained by convolving on nibbles; what users need is to pass the
// int4 tensors their models hold (TFLite / CMSIS-NN OHWI or depthwise [KH, KW, C*M], rows that
// may start mid-byte, viewed through TensorView<int4>). The weights are range checked (params'
// int4_weights, or the `range` argument when given: TFLite
// [-8, 7] or TOSA's symmetric [-7, 7]), widened to int8 once per call and handed to the int8 op,
// so the results are the int8 conv's on the unpacked weights by construction, under every
// profile and on every backend. A backend that models memory traffic (the NPU emulator) is told
// through int4_weight_scope that the weights it moves are 4-bit ones.
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>

#include "npuq/formats/int4.hpp"
#include "npuq/ops/conv2d.hpp"

namespace npuq {
namespace detail {

// int4 weights (any layout) -> int8 weights with the same logical shape and quantization.
inline status widen_int4_weights(const TensorView<const int4>& w, int4_range range, Tensor<std::int8_t>* out) {
  NPUQ_RETURN_IF_ERROR(w.validate("weights"));
  NPUQ_RETURN_IF_ERROR(validate_quant(w.quant(), w.layout(), dtype::s4, "weights", false));
  NPUQ_RETURN_IF_ERROR(check_int4_range(w, range, "weights"));
  std::int64_t dims[Layout::max_rank] = {};
  for (int d = 0; d < w.rank(); ++d) dims[d] = w.dim(d);
  Tensor<std::int8_t> t(Layout::row_major(dims, w.rank()), w.quant());
  NPUQ_RETURN_IF_ERROR(unpack_int4(w, t.view()));
  *out = std::move(t);
  return {};
}

}  // namespace detail

// Backends that do not model weight traffic ignore this; the NPU emulator overloads
// set_int4_weights (found by argument-dependent lookup) to charge 4 bits per weight.
template <class Backend>
void set_int4_weights(const Backend&, bool) {}

// Marks the backend's ops as having int4 weights for the lifetime of the scope.
template <class Backend>
class int4_weight_scope {
 public:
  explicit int4_weight_scope(const Backend& b) : b_(b) { set_int4_weights(b_, true); }
  ~int4_weight_scope() { set_int4_weights(b_, false); }
  int4_weight_scope(const int4_weight_scope&) = delete;
  int4_weight_scope& operator=(const int4_weight_scope&) = delete;

 private:
  const Backend& b_;
};

template <class Backend, class XI, class XW, class XBias, class XO>
status try_conv2d_int4(const Backend& backend, const conv2d_params& params, const XI& input, const XW& weights, const XBias& bias,
                       const XO& out, std::optional<int4_range> range = std::nullopt) {
  static_assert(std::is_same<detail::element_of<XW>, int4>::value, "conv2d_int4: weights must be int4");
  Tensor<std::int8_t> w8;
  NPUQ_RETURN_IF_ERROR(detail::widen_int4_weights(input_view(weights), range.value_or(params.int4_weights), &w8));
  const int4_weight_scope<Backend> scope(backend);
  return try_conv2d(backend, params, input, w8, bias, out);
}

template <class Backend, class XI, class XW, class XBias, class XO>
void conv2d_int4(const Backend& backend, const conv2d_params& params, const XI& input, const XW& weights, const XBias& bias,
                 const XO& out, std::optional<int4_range> range = std::nullopt) {
  throw_if_error(try_conv2d_int4(backend, params, input, weights, bias, out, range));
}

template <class Backend, class XI, class XW, class XBias, class XO>
status try_depthwise_conv2d_int4(const Backend& backend, const depthwise_params& params, const XI& input, const XW& weights,
                                 const XBias& bias, const XO& out, std::optional<int4_range> range = std::nullopt) {
  static_assert(std::is_same<detail::element_of<XW>, int4>::value, "depthwise_conv2d_int4: weights must be int4");
  Tensor<std::int8_t> w8;
  NPUQ_RETURN_IF_ERROR(detail::widen_int4_weights(input_view(weights), range.value_or(params.int4_weights), &w8));
  const int4_weight_scope<Backend> scope(backend);
  return try_depthwise_conv2d(backend, params, input, w8, bias, out);
}

template <class Backend, class XI, class XW, class XBias, class XO>
void depthwise_conv2d_int4(const Backend& backend, const depthwise_params& params, const XI& input, const XW& weights,
                           const XBias& bias, const XO& out, std::optional<int4_range> range = std::nullopt) {
  throw_if_error(try_depthwise_conv2d_int4(backend, params, input, weights, bias, out, range));
}

}  // namespace npuq
