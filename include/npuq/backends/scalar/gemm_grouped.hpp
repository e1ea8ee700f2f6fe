// Reference group-wise int4 GEMM: the specification of the float contract in
// ops/gemm_grouped_problem.hpp, one output element at a time.
//
// Exact integer sum per group, one fp32 product per group (kept apart from the addition so no
// compiler fuses them), fp32 additions in group order, then the bias and the store. Every other
// backend's grouped GEMM is tested against this, bit for bit.
#pragma once

#include <algorithm>

#include "npuq/core/backend.hpp"
#include "npuq/ops/gemm_grouped_problem.hpp"

namespace npuq {

template <class A, class O>
status execute(const scalar_backend&, const gemm_grouped_problem<A, O>& p) {
  const Layout& al = p.a.layout();
  const Layout& bl = p.b.layout();
  const Layout& ol = p.out.layout();
  for (std::int64_t m = 0; m < p.M; ++m) {
    for (std::int64_t n = 0; n < p.N; ++n) {
      float acc = 0.0f;
      for (std::int64_t g = 0; g < p.groups; ++g) {
        const std::int32_t zb = p.b_zero_point(n, g);
        std::int64_t isum = 0;
        const std::int64_t k1 = std::min(p.K, (g + 1) * p.group_size);
        for (std::int64_t k = g * p.group_size; k < k1; ++k) {
          const std::int32_t x = p.a.load(p.a.offset() + m * al.stride(0) + k * al.stride(1));
          const std::int32_t w = p.b.load(p.b.offset() + k * bl.stride(0) + n * bl.stride(1));
          isum += (x - p.a_zero_point) * (w - zb);
        }
        const float s = p.a_scale * p.b_scale(n, g);
        acc = acc + detail::fp_barrier(static_cast<float>(isum) * s);
      }
      if (p.has_bias()) acc = acc + p.bias(n);
      p.out.store(p.out.offset() + m * ol.stride(0) + n * ol.stride(1),
                  detail::grouped_store_value<O>(acc, p.out_scale, p.out_zero_point, p.lo, p.hi));
    }
  }
  return {};
}

}  // namespace npuq
