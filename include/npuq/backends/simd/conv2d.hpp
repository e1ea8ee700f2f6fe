// simd conv2d: implicit GEMM on the c2 GEMM kernels, without an im2col copy of the input.
//
// Per group, the OHWI weights are the GEMM's B ([K = KH*KW*Cg, OC/groups], packed once per call)
// and each block of up to 4 output pixels is gathered straight from the input into the kernel's
// packed A layout (taps outside the image contribute 0 after the zero point is subtracted). The
// int32 sums then go through the reference's output stage.
#pragma once

#include <cstdint>
#include <vector>

#include "npuq/backends/scalar/conv2d.hpp"
#include "npuq/backends/simd/gemm.hpp"
#include "npuq/ops/conv2d_problem.hpp"

namespace npuq {
namespace simd_detail {

// Gathers the K = KH*KW*Cg values of output pixel `pixel` for channels [c0, c0 + Cg), minus the
// zero point, into row (padded taps: 0).
template <class I, class W, class O>
void gather_pixel(const window_problem<I, W, O>& p, std::int64_t pixel, std::int64_t c0, std::int64_t cg, std::int32_t* row) {
  const conv_geometry& g = p.g;
  const std::int64_t ox = pixel % g.OW, oy = (pixel / g.OW) % g.OH, n = pixel / (g.OW * g.OH);
  const std::int64_t K = g.KH * g.KW * cg;
  for (std::int64_t k = 0; k < K; ++k) row[k] = 0;
  for_each_tap(g, oy, ox, [&](std::int64_t ky, std::int64_t kx, std::int64_t iy, std::int64_t ix) {
    std::int32_t* dst = row + (ky * g.KW + kx) * cg;
    for (std::int64_t c = 0; c < cg; ++c) dst[c] = static_cast<std::int32_t>(p.in(n, iy, ix, c0 + c)) - p.in_zero_point;
  });
}

}  // namespace simd_detail

template <class I, class W, class O>
status execute(const simd_backend& be, const conv2d_problem<I, W, O>& p) {
  if (!simd_detail::wraps_within_32_bits(p.stage.numerics)) {
    NPUQ_RETURN_IF_ERROR(execute(scalar, p));
    detail::simd_last_kernel_storage() = "conv2d_reference";
    return {};
  }
  const conv_geometry& g = p.g;
  const simd_detail::c2_kernels<W> kern = simd_detail::select_c2<W>(be.level());
  const std::int64_t cg = p.in_per_group, ocg = p.out_per_group, K = g.KH * g.KW * cg, M = g.N * g.OH * g.OW;
  packed_gemm_weights<W> w;
  for (std::int64_t grp = 0; grp < p.groups; ++grp) {
    const std::int64_t oc0 = grp * ocg;
    const simd_detail::tile_output_stage stage(p.stage, p.bias, ocg, oc0);
    Quant zq;  // only the zero points matter to the packer
    zq.granularity = quant_granularity::per_axis;
    zq.zero_points.assign(p.w_zero_point.begin() + oc0, p.w_zero_point.begin() + oc0 + ocg);
    w.pack_from(K, ocg, zq, [&](std::int64_t k, std::int64_t n) {
      const std::int64_t ic = k % cg, kx = (k / cg) % g.KW, ky = k / (cg * g.KW);
      return p.w(oc0 + n, ky, kx, ic);
    });
    simd_detail::run_c2(
        kern, M, w, stage, oc0,
        [&](std::int64_t m, std::int32_t* v) { simd_detail::gather_pixel(p, m, grp * cg, cg, v); },
        [&](std::int64_t m, std::int64_t n0, std::int64_t cols, const std::int32_t* v) {
          const std::int64_t ox = m % g.OW, oy = (m / g.OW) % g.OH, b = m / (g.OW * g.OH);
          simd_detail::store_row(p.out, p.out.offset() + p.out.layout()(b, oy, ox, oc0 + n0), p.out.layout().stride(3), cols, v);
        });
  }
  detail::simd_last_kernel_storage() =
      std::string("conv2d_") + simd_detail::type_code(p.in.type()) + simd_detail::type_code(p.w.type()) + "_4x16c2_" + kern.suffix;
  return {};
}

}  // namespace npuq
