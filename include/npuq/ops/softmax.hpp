// Softmax entry points: validate, then run on the chosen backend.
//
//   auto p = npuq::softmax_params::tflite(beta, input_scale);
//   npuq::softmax(npuq::scalar, p, in, out);   // over the last axis; throws npuq::error
//
// See softmax_problem.hpp for the contract and softmax_params.hpp for the arithmetic.
#pragma once

#include "npuq/backends/scalar/softmax.hpp"
#include "npuq/core/backend.hpp"
#include "npuq/ops/softmax_problem.hpp"

namespace npuq {

template <class Backend, class XI, class XO>
status try_softmax(const Backend& backend, const softmax_params& params, const XI& in, const XO& out) {
  softmax_problem<detail::element_of<XI>, detail::element_of<XO>> problem;
  NPUQ_RETURN_IF_ERROR(make_softmax_problem(params, input_view(in), output_view(out), &problem));
  return detail::run_validated(backend, problem);
}

template <class Backend, class XI, class XO>
void softmax(const Backend& backend, const softmax_params& params, const XI& in, const XO& out) {
  throw_if_error(try_softmax(backend, params, in, out));
}

}  // namespace npuq
