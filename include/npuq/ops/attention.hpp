// Attention entry points: validate, then run on the chosen backend.
//
//   npuq::attention_params ap;
//   ap.score = npuq::Quant::per_tensor(score_scale, score_zero_point);
//   ap.causal = true;
//   npuq::attention(npuq::simd, ap, q, k, v, npuq::no_mask, out);    // throws npuq::error
//   npuq::attention(npuq::simd, ap, q, cache, npuq::no_mask, out);   // decode against a kv_cache
//
// See attention_problem.hpp for the contract. Nothing is written when validation fails.
#pragma once

#include "npuq/backends/scalar/attention.hpp"
#include "npuq/core/backend.hpp"
#include "npuq/ops/attention_problem.hpp"

namespace npuq {

template <class Backend, class XQ, class XK, class XV, class XM, class XO>
status try_attention(const Backend& backend, const attention_params& params, const XQ& q, const XK& k, const XV& v, const XM& mask,
                     const XO& out) {
  attention_problem<detail::element_of<XQ>, detail::element_of<XK>, detail::element_of<XO>> problem;
  NPUQ_RETURN_IF_ERROR(make_attention_problem(params, input_view(q), input_view(k), input_view(v), input_view(mask), output_view(out), &problem));
  return detail::run_validated(backend, problem);
}

template <class Backend, class XQ, class XK, class XV, class XM, class XO>
void attention(const Backend& backend, const attention_params& params, const XQ& q, const XK& k, const XV& v, const XM& mask,
               const XO& out) {
  throw_if_error(try_attention(backend, params, q, k, v, mask, out));
}

// Against the first length() positions of a KV cache.
template <class Backend, class XQ, class KV, class XM, class XO>
status try_attention(const Backend& backend, const attention_params& params, const XQ& q, const kv_cache<KV>& cache, const XM& mask,
                     const XO& out) {
  return try_attention(backend, params, q, cache.keys(), cache.values(), mask, out);
}

template <class Backend, class XQ, class KV, class XM, class XO>
void attention(const Backend& backend, const attention_params& params, const XQ& q, const kv_cache<KV>& cache, const XM& mask,
               const XO& out) {
  throw_if_error(try_attention(backend, params, q, cache, mask, out));
}

}  // namespace npuq
