// Group-wise int4 GEMM entry points: validate, then run on the chosen backend.
//
//   npuq::gemm_grouped(npuq::scalar, params, a, b_int4, bias_f32, out_f32);   // throws npuq::error
//   npuq::status s = npuq::try_gemm_grouped(npuq::simd, params, a, b_int4, npuq::no_bias, out_s8);
//
// The float contract is in gemm_grouped_problem.hpp. The bias is a float vector of N entries or
// npuq::no_bias. Nothing is written when validation fails.
#pragma once

#include "npuq/backends/scalar/gemm_grouped.hpp"
#include "npuq/core/backend.hpp"
#include "npuq/ops/gemm_grouped_problem.hpp"

namespace npuq {

namespace detail {
// Bias arguments of the grouped GEMM: float views / tensors, or no_bias.
template <class X>
TensorView<const float> float_bias_view(const X& x) {
  return input_view(x);
}
inline TensorView<const float> float_bias_view(no_bias_t) { return {}; }
}  // namespace detail

template <class Backend, class XA, class XB, class XBias, class XO>
status try_gemm_grouped(const Backend& backend, const gemm_grouped_params& params, const XA& a, const XB& b, const XBias& bias,
                        const XO& out) {
  using A = detail::element_of<XA>;
  using O = detail::element_of<XO>;
  static_assert(std::is_same<detail::element_of<XB>, int4>::value, "gemm_grouped: B must be int4");
  gemm_grouped_problem<A, O> problem;
  NPUQ_RETURN_IF_ERROR(make_gemm_grouped_problem(params, input_view(a), input_view(b), detail::float_bias_view(bias),
                                                 output_view(out), &problem));
  return detail::run_validated(backend, problem);
}

template <class Backend, class XA, class XB, class XBias, class XO>
void gemm_grouped(const Backend& backend, const gemm_grouped_params& params, const XA& a, const XB& b, const XBias& bias,
                  const XO& out) {
  throw_if_error(try_gemm_grouped(backend, params, a, b, bias, out));
}

}  // namespace npuq
