// simd depthwise conv2d: weight packing, the indirection buffer, kernel dispatch.
//
// Depthwise convolution does too little work per weight for the GEMM kernels: each output
// channel sees KH*KW taps of one input channel. The kernels here vectorize across 16 channels
// (NHWC) and keep a block's weights in registers while they walk a row of output pixels.
//
// Per call: the weights are packed once (portable/dwconv.hpp: blocks of 16 channels, tap pairs,
// zero points subtracted, bias and input zero point folded into each channel's start value).
// Per output row: an indirection buffer holds one pointer per (pixel, tap); padded taps point at
// a row filled with the input zero point, which contributes exactly 0 once the start value is
// added, so borders run the same kernel as the interior. Inputs whose channels are not
// contiguous, and channel multipliers M > 1 (output channel c*M + m reads input channel c), are
// first copied to a contiguous [N, H, W, C*M] buffer with each input channel repeated M times.
//
// The int32 sums are modulo 2^32, as the reference's are for every profile whose accumulator
// wraps at <= 32 bits; the output stage is the AVX2 one (x86/dwconv_avx2.hpp) where available,
// else finish_wrapped per element. Saturating or wider accumulators run the reference
// ("dwconv_reference"). Kernel names: dwconv_<in><w>_<3x3|5x5|kxk>_16c_<avx2|portable>.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "npuq/backends/scalar/conv2d.hpp"
#include "npuq/backends/simd/gemm.hpp"
#include "npuq/backends/simd/portable/dwconv.hpp"
#include "npuq/backends/simd/x86/dwconv_avx2.hpp"
#include "npuq/ops/conv2d_problem.hpp"

namespace npuq {
namespace simd_detail {

// Depthwise weights packed for the kernels (layout in portable/dwconv.hpp).
struct dw_packed_weights {
  std::int64_t channels = 0, taps = 0, pairs = 0, blocks = 0;
  std::vector<std::int16_t> w;      // blocks x pairs x 32
  std::vector<std::int32_t> start;  // blocks x 16, in accumulator order

  const std::int16_t* block_weights(std::int64_t b) const { return w.data() + b * pairs * 2 * dw_block; }
  const std::int32_t* block_start(std::int64_t b) const { return start.data() + b * dw_block; }

  template <class I, class W, class O>
  void pack(const depthwise_problem<I, W, O>& p) {
    const conv_geometry& g = p.g;
    channels = p.OC;
    taps = g.KH * g.KW;
    pairs = (taps + 1) / 2;
    blocks = (channels + dw_block - 1) / dw_block;
    w.assign(static_cast<std::size_t>(blocks * pairs * 2 * dw_block), 0);
    start.assign(static_cast<std::size_t>(blocks * dw_block), 0);
    for (std::int64_t oc = 0; oc < channels; ++oc) {
      const std::int64_t b = oc / dw_block;
      const int j = static_cast<int>(oc % dw_block);
      const std::int32_t zp = p.w_zero_point[static_cast<std::size_t>(oc)];
      std::uint32_t sum = 0;
      for (std::int64_t t = 0; t < taps; ++t) {
        const std::int32_t v = static_cast<std::int32_t>(p.w(t / g.KW, t % g.KW, oc)) - zp;
        w[static_cast<std::size_t>((b * pairs + t / 2) * 2 * dw_block + dw_lane(j) + t % 2)] = static_cast<std::int16_t>(v);
        sum += static_cast<std::uint32_t>(v);
      }
      std::uint32_t s = 0u - static_cast<std::uint32_t>(p.in_zero_point) * sum;
      if (p.bias.rank() == 1) s += static_cast<std::uint32_t>(p.bias(oc));
      start[static_cast<std::size_t>(b * dw_block + dw_acc_lane(j))] = static_cast<std::int32_t>(s);
    }
  }
};

template <class I>
using dw_row_kernel = void (*)(std::int64_t, std::int64_t, const I* const*, std::int64_t, int, const std::int16_t*,
                               const std::int32_t*, std::int32_t*, std::int64_t);

// Row kernels for full and partial (tail) channel blocks, at the best level allowed.
template <class I>
struct dw_kernels {
  dw_row_kernel<I> full, tail;
  const char* shape;
  const char* suffix;
  bool avx2;  // the AVX2 output stage may run too
};

template <class I, int KT>
dw_kernels<I> dw_kernels_for(isa level, const char* shape) {
#if defined(NPUQ_ARCH_X86_64)
  if (static_cast<int>(level) >= static_cast<int>(isa::avx2) && static_cast<int>(level) <= static_cast<int>(isa::amx_int8))
    return {dwconv_row_avx2<KT, false, I>, dwconv_row_avx2<KT, true, I>, shape, "avx2", true};
#endif
  (void)level;
  return {dwconv_row_portable<KT, I>, dwconv_row_portable<KT, I>, shape, "portable", false};
}

template <class I>
dw_kernels<I> select_dw(isa level, std::int64_t kh, std::int64_t kw) {
  if (kh == 3 && kw == 3) return dw_kernels_for<I, 9>(level, "3x3");
  if (kh == 5 && kw == 5) return dw_kernels_for<I, 25>(level, "5x5");
  return dw_kernels_for<I, 0>(level, "kxk");
}

template <class I, class W, class O>
void run_depthwise(const simd_backend& be, const depthwise_problem<I, W, O>& p) {
  const conv_geometry& g = p.g;
  const isa level = be.level();
  const dw_kernels<I> kern = select_dw<I>(level, g.KH, g.KW);
  dw_packed_weights pw;
  pw.pack(p);
  const std::int64_t OC = p.OC, M = p.multiplier, T = pw.taps, acc_stride = pw.blocks * dw_block;

  // Input as [N, H, W, OC] with contiguous channels: the view itself, or a copy.
  const Layout& il = p.in.layout();
  const I* base = p.in.data() + p.in.offset();
  std::int64_t sn = il.stride(0), sh = il.stride(1), sw = il.stride(2);
  std::vector<I> expanded;
  if (M != 1 || il.stride(3) != 1) {
    expanded.resize(static_cast<std::size_t>(g.N * g.H * g.W * OC));
    I* dst = expanded.data();
    for (std::int64_t n = 0; n < g.N; ++n)
      for (std::int64_t y = 0; y < g.H; ++y)
        for (std::int64_t x = 0; x < g.W; ++x)
          for (std::int64_t c = 0; c < g.C; ++c)
            for (std::int64_t m = 0; m < M; ++m) *dst++ = p.in(n, y, x, c);
    base = expanded.data();
    sw = OC;
    sh = g.W * OC;
    sn = g.H * g.W * OC;
  }
  const std::vector<I> zero_row(static_cast<std::size_t>(OC), static_cast<I>(p.in_zero_point));

  // Horizontal offsets of every (ox, kx), or -1 for padding.
  std::vector<std::int64_t> xoff(static_cast<std::size_t>(g.OW * g.KW));
  for (std::int64_t ox = 0; ox < g.OW; ++ox)
    for (std::int64_t kx = 0; kx < g.KW; ++kx) {
      const std::int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
      xoff[static_cast<std::size_t>(ox * g.KW + kx)] = ix >= 0 && ix < g.W ? ix * sw : -1;
    }

#if defined(NPUQ_ARCH_X86_64)
  dw_requant_table rq;
  const Layout& ol = p.out.layout();
  const bool vector_out = kern.avx2 && ol.stride(3) == 1 && rq.build(p.stage, OC);
#endif
  const TensorView<const std::int32_t> no_bias;  // folded into the start values
  std::vector<const I*> ind(static_cast<std::size_t>(g.OW * T));
  std::vector<std::int32_t> acc(static_cast<std::size_t>(g.OW * acc_stride));
  for (std::int64_t n = 0; n < g.N; ++n)
    for (std::int64_t oy = 0; oy < g.OH; ++oy) {
      for (std::int64_t ky = 0; ky < g.KH; ++ky) {
        const std::int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
        const I* row = iy >= 0 && iy < g.H ? base + n * sn + iy * sh : nullptr;
        for (std::int64_t ox = 0; ox < g.OW; ++ox)
          for (std::int64_t kx = 0; kx < g.KW; ++kx) {
            const std::int64_t off = xoff[static_cast<std::size_t>(ox * g.KW + kx)];
            ind[static_cast<std::size_t>(ox * T + ky * g.KW + kx)] = row != nullptr && off >= 0 ? row + off : zero_row.data();
          }
      }
      for (std::int64_t b = 0; b < pw.blocks; ++b) {
        const std::int64_t c0 = b * dw_block;
        const int nch = static_cast<int>(std::min<std::int64_t>(dw_block, OC - c0));
        (nch == dw_block ? kern.full : kern.tail)(g.OW, T, ind.data(), c0, nch, pw.block_weights(b), pw.block_start(b),
                                                  acc.data() + c0, acc_stride);
      }
      for (std::int64_t ox = 0; ox < g.OW; ++ox) {
        const std::int32_t* a = acc.data() + ox * acc_stride;
        const std::int64_t off = p.out.offset() + p.out.layout()(n, oy, ox, std::int64_t{0});
#if defined(NPUQ_ARCH_X86_64)
        if (vector_out) {
          dw_requant_avx2(rq, a, OC, p.out.data() + off);
          continue;
        }
#endif
        for (std::int64_t oc = 0; oc < OC; ++oc)
          p.out.store(off + oc * p.out.layout().stride(3), static_cast<O>(finish_wrapped(a[oc], p.stage, no_bias, oc)));
      }
    }
  detail::simd_last_kernel_storage() =
      std::string("dwconv_") + type_code(p.in.type()) + type_code(p.w.type()) + "_" + kern.shape + "_16c_" + kern.suffix;
}

}  // namespace simd_detail

template <class I, class W, class O>
status execute(const simd_backend& be, const depthwise_problem<I, W, O>& p) {
  if (!simd_detail::wraps_within_32_bits(p.stage.numerics)) {
    NPUQ_RETURN_IF_ERROR(execute(scalar, p));
    detail::simd_last_kernel_storage() = "dwconv_reference";
    return {};
  }
  simd_detail::run_depthwise(be, p);
  return {};
}

}  // namespace npuq
