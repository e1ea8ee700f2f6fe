// Reference conv2d and depthwise conv2d: the specification the fast paths are tested against.
//
// Direct loops over output pixels and channels; every tap is bounds-checked and padded taps are
// skipped (they would contribute (in_zp - in_zp) * w = 0). Indices go through the views'
// layouts, so NHWC, NCHW and any strided view run the same code.
#pragma once

#include "npuq/backends/scalar/common.hpp"
#include "npuq/core/backend.hpp"
#include "npuq/ops/conv2d_problem.hpp"
#include "npuq/ops/depthwise_problem.hpp"

namespace npuq {

template <class I, class W, class O>
status execute(const scalar_backend&, const conv2d_problem<I, W, O>& p) {
  const conv_geometry& g = p.g;
  for (std::int64_t n = 0; n < g.N; ++n)
    for (std::int64_t oy = 0; oy < g.OH; ++oy)
      for (std::int64_t ox = 0; ox < g.OW; ++ox)
        for (std::int64_t oc = 0; oc < p.OC; ++oc) {
          const std::int64_t group = oc / p.out_per_group;
          const std::int32_t wzp = p.w_zero_point[static_cast<std::size_t>(oc)];
          accumulator acc(p.stage.numerics.acc);
          for (std::int64_t ky = 0; ky < g.KH; ++ky) {
            const std::int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
            if (iy < 0 || iy >= g.H) continue;
            for (std::int64_t kx = 0; kx < g.KW; ++kx) {
              const std::int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
              if (ix < 0 || ix >= g.W) continue;
              for (std::int64_t ic = 0; ic < p.in_per_group; ++ic) {
                const std::int32_t x = p.in(n, iy, ix, group * p.in_per_group + ic);
                const std::int32_t w = p.w(oc, ky, kx, ic);
                acc.add((x - p.in_zero_point) * (w - wzp));
              }
            }
          }
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
        for (std::int64_t c = 0; c < g.C; ++c)
          for (std::int64_t m = 0; m < p.multiplier; ++m) {
            const std::int64_t oc = c * p.multiplier + m;
            const std::int32_t wzp = p.w_zero_point[static_cast<std::size_t>(oc)];
            accumulator acc(p.stage.numerics.acc);
            for (std::int64_t ky = 0; ky < g.KH; ++ky) {
              const std::int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
              if (iy < 0 || iy >= g.H) continue;
              for (std::int64_t kx = 0; kx < g.KW; ++kx) {
                const std::int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
                if (ix < 0 || ix >= g.W) continue;
                const std::int32_t x = p.in(n, iy, ix, c);
                const std::int32_t w = p.w(ky, kx, oc);
                acc.add((x - p.in_zero_point) * (w - wzp));
              }
            }
            p.out.set(ref::finish<O>(acc, p.stage, p.bias, oc), n, oy, ox, oc);
          }
  return {};
}

}  // namespace npuq
