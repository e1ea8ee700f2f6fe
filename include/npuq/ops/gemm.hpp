// GEMM entry points: validate, then run on the chosen backend.
//
//   npuq::gemm(npuq::scalar, params, a, b, bias, out);       // throws npuq::error
//   npuq::status s = npuq::try_gemm(npuq::scalar, params, a, b, npuq::no_bias, out);
//
// Arguments may be Tensor<T> or TensorView<T>. Nothing is written when validation fails.
// See gemm_problem.hpp for the exact contract.
#pragma once

#include "npuq/backends/scalar/gemm.hpp"
#include "npuq/core/backend.hpp"
#include "npuq/ops/gemm_problem.hpp"

namespace npuq {

template <class Backend, class XA, class XB, class XBias, class XO>
status try_gemm(const Backend& backend, const gemm_params& params, const XA& a, const XB& b, const XBias& bias, const XO& out) {
  using A = detail::element_of<XA>;
  using B = detail::element_of<XB>;
  using O = detail::element_of<XO>;
  gemm_problem<A, B, O> problem;
  NPUQ_RETURN_IF_ERROR(make_gemm_problem(params, input_view(a), input_view(b), input_view(bias), output_view(out), &problem));
  return detail::run_validated(backend, problem);
}

template <class Backend, class XA, class XB, class XBias, class XO>
void gemm(const Backend& backend, const gemm_params& params, const XA& a, const XB& b, const XBias& bias, const XO& out) {
  throw_if_error(try_gemm(backend, params, a, b, bias, out));
}

}  // namespace npuq
