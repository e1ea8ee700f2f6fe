// Reference GEMM: the specification every other GEMM path is tested against.
//
// One output element at a time: sum the zero-point-corrected products in K order through the
// profile's accumulator, add the bias, then either store the int32 accumulator or requantize it.
// No blocking, no packing, no vector code: this is meant to be read.
#pragma once

#include "npuq/backends/scalar/common.hpp"
#include "npuq/core/backend.hpp"
#include "npuq/ops/gemm_problem.hpp"

namespace npuq {

template <class A, class B, class O>
status execute(const scalar_backend&, const gemm_problem<A, B, O>& p) {
  for (std::int64_t batch = 0; batch < p.batch_count(); ++batch) {
    std::int64_t ao = 0, bo = 0, oo = 0;
    p.batch_offsets(batch, &ao, &bo, &oo);
    const Layout& al = p.a.layout();
    const Layout& bl = p.b.layout();
    const Layout& ol = p.out.layout();
    const int ar = al.rank(), br = bl.rank(), orr = ol.rank();
    for (std::int64_t m = 0; m < p.M; ++m) {
      for (std::int64_t n = 0; n < p.N; ++n) {
        accumulator acc(p.stage.numerics.acc);
        for (std::int64_t k = 0; k < p.K; ++k) {
          const std::int32_t x = p.a.load(p.a.offset() + ao + m * al.stride(ar - 2) + k * al.stride(ar - 1));
          const std::int32_t w = p.b.load(p.b.offset() + bo + k * bl.stride(br - 2) + n * bl.stride(br - 1));
          acc.add((x - p.a_zero_point) * (w - p.b_zero_point[static_cast<std::size_t>(n)]));
        }
        p.out.store(p.out.offset() + oo + m * ol.stride(orr - 2) + n * ol.stride(orr - 1), ref::finish<O>(acc, p.stage, p.bias, n));
      }
    }
  }
  return {};
}

}  // namespace npuq
