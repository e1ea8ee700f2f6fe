// Reference GEMM on sparse weights: the specification the other sparse GEMM paths are tested
// against, itself tested against the dense reference on the decompressed weights.
//
// One output element at a time: the stored entries of output channel n (for_each_entry, ascending
// k) are multiplied with the zero-point-corrected activations and summed through the profile's
// accumulator, then bias and output stage exactly as the dense reference (ref::finish). Skipping
// the zero weights the dense reference also adds changes nothing, under every accumulator rule
// (see gemm_sparse_problem.hpp). No blocking, no packing: this is meant to be read.
#pragma once

#include "npuq/backends/scalar/common.hpp"
#include "npuq/core/backend.hpp"
#include "npuq/ops/gemm_sparse_problem.hpp"

namespace npuq {

template <class A, class S, class O, class = std::enable_if_t<is_sparse_format<S>::value>>
status execute(const scalar_backend&, const gemm_sparse_problem<A, S, O>& p) {
  const Layout& al = p.a.layout();
  const Layout& ol = p.out.layout();
  const std::int64_t ak = al.stride(al.rank() - 1), on = ol.stride(ol.rank() - 1);
  for (std::int64_t batch = 0; batch < p.batch_count(); ++batch) {
    std::int64_t ao = 0, oo = 0;
    p.batch_offsets(batch, &ao, &oo);
    for (std::int64_t m = 0; m < p.M; ++m) {
      const std::int64_t arow = p.a_row(ao, m), orow = p.out_row(oo, m);
      for (std::int64_t n = 0; n < p.N; ++n) {
        accumulator acc(p.stage.numerics.acc);
        for_each_entry(*p.b, n, [&](std::int64_t k, std::int8_t w) {
          const std::int32_t x = p.a.load(arow + k * ak);
          acc.add((x - p.a_zero_point) * static_cast<std::int32_t>(w));
        });
        p.out.store(orow + n * on, ref::finish<O>(acc, p.stage, p.bias, n));
      }
    }
  }
  return {};
}

}  // namespace npuq
