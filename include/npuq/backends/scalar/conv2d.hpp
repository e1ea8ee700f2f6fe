// Reference conv2d and depthwise conv2d: the specification the fast paths are tested against.
//
// Direct loops over output pixels and channels; for_each_tap visits the taps inside the image
// (padded taps contribute nothing). Indices go through the views' layouts, so NHWC, NCHW and any
// strided view run the same code.
#pragma once

#include "npuq/backends/scalar/common.hpp"
#include "npuq/core/backend.hpp"
#include "npuq/ops/conv2d_problem.hpp"

namespace npuq {

template <class I, class W, class O>
status execute(const scalar_backend&, const conv2d_problem<I, W, O>& p) {
  const conv_geometry& g = p.g;
  for (std::int64_t n = 0; n < g.N; ++n)
    for (std::int64_t oy = 0; oy < g.OH; ++oy)
      for (std::int64_t ox = 0; ox < g.OW; ++ox)
        for (std::int64_t oc = 0; oc < p.OC; ++oc) {
          const std::int64_t first_ic = (oc / p.out_per_group) * p.in_per_group;
          const std::int32_t wzp = p.w_zero_point[static_cast<std::size_t>(oc)];
          accumulator acc(p.stage.numerics.acc);
          for_each_tap(g, oy, ox, [&](std::int64_t ky, std::int64_t kx, std::int64_t iy, std::int64_t ix) {
            for (std::int64_t ic = 0; ic < p.in_per_group; ++ic) {
              const std::int32_t x = p.in(n, iy, ix, first_ic + ic);
              const std::int32_t w = p.w(oc, ky, kx, ic);
              acc.add((x - p.in_zero_point) * (w - wzp));
            }
          });
          p.out.set(ref::finish<O>(acc, p.stage, p.bias, oc), n, oy, ox, oc);
        }
  return {};
}

template <class I, class W, class O>
status execute(const scalar_backend&, const depthwise_problem<I, W, O>& p) {
  const conv_geometry& g = p.g;
  for (std::int64_t n = 0; n < g.N; ++n)
    for (std::int64_t oy = 0; oy < g.OH; ++oy)
      for (std::int64_t ox = 0; ox < g.OW; ++ox)
        for (std::int64_t oc = 0; oc < p.OC; ++oc) {
          const std::int64_t c = oc / p.multiplier;  // oc = c * M + m
          const std::int32_t wzp = p.w_zero_point[static_cast<std::size_t>(oc)];
          accumulator acc(p.stage.numerics.acc);
          for_each_tap(g, oy, ox, [&](std::int64_t ky, std::int64_t kx, std::int64_t iy, std::int64_t ix) {
            const std::int32_t x = p.in(n, iy, ix, c);
            const std::int32_t w = p.w(ky, kx, oc);
            acc.add((x - p.in_zero_point) * (w - wzp));
          });
          p.out.set(ref::finish<O>(acc, p.stage, p.bias, oc), n, oy, ox, oc);
        }
  return {};
}

}  // namespace npuq
