// int16 softmax entry points: validate, then run on the chosen backend.
//
//   auto p = npuq::softmax_int16_params::tflite(beta, input_scale);
//   npuq::softmax(npuq::scalar, p, in, out);   // int16 -> int16 over the last axis; throws npuq::error
//
// These overload the 8-bit entry points on the parameter type. See softmax_int16_problem.hpp for
// the contract and softmax_int16_params.hpp for the arithmetic.
#pragma once

#include <cstdint>
#include <type_traits>

#include "npuq/backends/scalar/softmax_int16.hpp"
#include "npuq/core/backend.hpp"
#include "npuq/ops/softmax_int16_problem.hpp"

namespace npuq {

template <class Backend, class XI, class XO>
status try_softmax(const Backend& backend, const softmax_int16_params& params, const XI& in, const XO& out) {
  static_assert(std::is_same<detail::element_of<XI>, std::int16_t>::value && std::is_same<detail::element_of<XO>, std::int16_t>::value,
                "int16 softmax: input and output must be int16_t tensors");
  softmax_int16_problem problem;
  NPUQ_RETURN_IF_ERROR(make_softmax_int16_problem(params, input_view(in), output_view(out), &problem));
  return detail::run_validated(backend, problem);
}

template <class Backend, class XI, class XO>
void softmax(const Backend& backend, const softmax_int16_params& params, const XI& in, const XO& out) {
  throw_if_error(try_softmax(backend, params, in, out));
}

}  // namespace npuq
