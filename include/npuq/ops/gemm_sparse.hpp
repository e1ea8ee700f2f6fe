// GEMM entry points for sparse weights: the dense GEMM's calls with a sparse matrix as B.
//
//   npuq::sparse_2_4_matrix<> w;                      // or block_csr_matrix, csr_matrix
//   npuq::compress_2_4(dense_b, &w);                  // rejects weights that are not 2:4
//   npuq::gemm(npuq::scalar, params, a, w, bias, out);         // throws npuq::error
//   npuq::status s = npuq::try_gemm(npuq::simd, params, a, w, npuq::no_bias, out);
//
// The same overload names as the dense GEMM (try_gemm / gemm), chosen by the weight argument's
// type, so a model switches a layer to sparse weights by changing only the weight object. The
// results equal the dense GEMM on the decompressed weights (gemm_sparse_problem.hpp). Nothing is
// written when validation fails. Backends implement execute(backend, gemm_sparse_problem<...>).
#pragma once

#include "npuq/backends/scalar/gemm_sparse.hpp"
#include "npuq/ops/gemm.hpp"
#include "npuq/ops/gemm_sparse_problem.hpp"

namespace npuq {

namespace detail {
template <class Backend, class XA, class S, class XBias, class XO>
status try_gemm_sparse(const Backend& backend, const gemm_params& params, const XA& a, const S& b, const XBias& bias, const XO& out) {
  gemm_sparse_problem<element_of<XA>, S, element_of<XO>> problem;
  NPUQ_RETURN_IF_ERROR(make_gemm_sparse_problem(params, input_view(a), b, input_view(bias), output_view(out), &problem));
  return execute(backend, problem);
}
}  // namespace detail

template <class Backend, class XA, class V, class XBias, class XO>
status try_gemm(const Backend& backend, const gemm_params& params, const XA& a, const sparse_2_4_matrix<V>& b, const XBias& bias,
                const XO& out) {
  return detail::try_gemm_sparse(backend, params, a, b, bias, out);
}
template <class Backend, class XA, class XBias, class XO>
status try_gemm(const Backend& backend, const gemm_params& params, const XA& a, const block_csr_matrix& b, const XBias& bias,
                const XO& out) {
  return detail::try_gemm_sparse(backend, params, a, b, bias, out);
}
template <class Backend, class XA, class XBias, class XO>
status try_gemm(const Backend& backend, const gemm_params& params, const XA& a, const csr_matrix& b, const XBias& bias, const XO& out) {
  return detail::try_gemm_sparse(backend, params, a, b, bias, out);
}

template <class Backend, class XA, class V, class XBias, class XO>
void gemm(const Backend& backend, const gemm_params& params, const XA& a, const sparse_2_4_matrix<V>& b, const XBias& bias, const XO& out) {
  throw_if_error(try_gemm(backend, params, a, b, bias, out));
}
template <class Backend, class XA, class XBias, class XO>
void gemm(const Backend& backend, const gemm_params& params, const XA& a, const block_csr_matrix& b, const XBias& bias, const XO& out) {
  throw_if_error(try_gemm(backend, params, a, b, bias, out));
}
template <class Backend, class XA, class XBias, class XO>
void gemm(const Backend& backend, const gemm_params& params, const XA& a, const csr_matrix& b, const XBias& bias, const XO& out) {
  throw_if_error(try_gemm(backend, params, a, b, bias, out));
}

}  // namespace npuq
