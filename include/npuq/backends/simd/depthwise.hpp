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

// Everything one call shares between its rows: packed weights, the input as [N, H, W, C*M]
// with contiguous channels (the view itself, or a copy), the zero-point row, and the indirection
// buffer of the current row.
template <class I, class W, class O>
struct dw_call {
  const depthwise_problem<I, W, O>& p;
  dw_packed_weights pw;
  std::vector<I> expanded;
  const I* base = nullptr;
  std::int64_t sn = 0, sh = 0, sw = 0;
  std::vector<I> zero_row;
  std::vector<std::int64_t> xoff;  // horizontal offset of every (ox, kx), or -1 for padding
  std::vector<const I*> ind;       // OW x taps pointers

  explicit dw_call(const depthwise_problem<I, W, O>& problem) : p(problem) {
    const conv_geometry& g = p.g;
    const std::int64_t OC = p.OC, M = p.multiplier;
    pw.pack(p);
    const Layout& il = p.in.layout();
    base = p.in.data() + p.in.offset();
    sn = il.stride(0);
    sh = il.stride(1);
    sw = il.stride(2);
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
    zero_row.assign(static_cast<std::size_t>(OC), static_cast<I>(p.in_zero_point));
    xoff.resize(static_cast<std::size_t>(g.OW * g.KW));
    for (std::int64_t ox = 0; ox < g.OW; ++ox)
      for (std::int64_t kx = 0; kx < g.KW; ++kx) {
        const std::int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
        xoff[static_cast<std::size_t>(ox * g.KW + kx)] = ix >= 0 && ix < g.W ? ix * sw : -1;
      }
    ind.resize(static_cast<std::size_t>(g.OW * pw.taps));
  }

  // Fills the indirection buffer for output row (n, oy).
  const I* const* row(std::int64_t n, std::int64_t oy) {
    const conv_geometry& g = p.g;
    const std::int64_t T = pw.taps;
    for (std::int64_t ky = 0; ky < g.KH; ++ky) {
      const std::int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
      const I* r = iy >= 0 && iy < g.H ? base + n * sn + iy * sh : nullptr;
      const std::int64_t* xo = xoff.data();
      const I** dst = ind.data() + ky * g.KW;
      for (std::int64_t ox = 0; ox < g.OW; ++ox, xo += g.KW, dst += T)
        for (std::int64_t kx = 0; kx < g.KW; ++kx) dst[kx] = r != nullptr && xo[kx] >= 0 ? r + xo[kx] : zero_row.data();
    }
    return ind.data();
  }

  // Scalar output stage of row (n, oy) from int32 sums in acc (OW x acc_stride).
  void finish_row(std::int64_t n, std::int64_t oy, const std::int32_t* acc, std::int64_t acc_stride) const {
    const TensorView<const std::int32_t> no_bias;  // folded into the start values
    const std::int64_t cs = p.out.layout().stride(3);
    for (std::int64_t ox = 0; ox < p.g.OW; ++ox) {
      const std::int64_t off = p.out.offset() + p.out.layout()(n, oy, ox, std::int64_t{0});
      for (std::int64_t oc = 0; oc < p.OC; ++oc)
        p.out.store(off + oc * cs, static_cast<O>(finish_wrapped(acc[ox * acc_stride + oc], p.stage, no_bias, oc)));
    }
  }
};

#if defined(NPUQ_ARCH_X86_64)
// Calls f(stage*) with a null pointer whose type is the requantizing stage for this table.
template <class O, class F>
void with_requant_stage(const dw_requant_table& t, F&& f) {
  using kind = dw_requant_table::kind;
  switch (t.k) {
    case kind::raw: return f(static_cast<dw_requant_stage<O, kind::raw, rounding::half_even, false>*>(nullptr));
    case kind::q31_double:
      if (t.any_left) return f(static_cast<dw_requant_stage<O, kind::q31_double, rounding::tflite_double, true>*>(nullptr));
      return f(static_cast<dw_requant_stage<O, kind::q31_double, rounding::tflite_double, false>*>(nullptr));
    case kind::fp32: break;
  }
  switch (t.mode) {
    case rounding::floor: return f(static_cast<dw_requant_stage<O, kind::fp32, rounding::floor, false>*>(nullptr));
    case rounding::truncate: return f(static_cast<dw_requant_stage<O, kind::fp32, rounding::truncate, false>*>(nullptr));
    case rounding::half_up: return f(static_cast<dw_requant_stage<O, kind::fp32, rounding::half_up, false>*>(nullptr));
    case rounding::half_away: return f(static_cast<dw_requant_stage<O, kind::fp32, rounding::half_away, false>*>(nullptr));
    default: return f(static_cast<dw_requant_stage<O, kind::fp32, rounding::half_even, false>*>(nullptr));
  }
}

// AVX2: requantized in registers when the output channels are contiguous and the profile has a
// vector output stage, else int32 sums and the scalar output stage.
template <int KT, class I, class W, class O>
void run_depthwise_avx2(dw_call<I, W, O>& d) {
  const depthwise_problem<I, W, O>& p = d.p;
  const conv_geometry& g = p.g;
  const std::int64_t T = d.pw.taps, bstride = d.pw.pairs * 2 * dw_block;
  const Layout& ol = p.out.layout();
  dw_requant_table rq;
  if (ol.stride(3) == 1 && rq.build(p.stage, p.OC)) {
    with_requant_stage<O>(rq, [&](auto* tag) {
      using stage = std::remove_pointer_t<decltype(tag)>;
      for (std::int64_t n = 0; n < g.N; ++n)
        for (std::int64_t oy = 0; oy < g.OH; ++oy) {
          O* out_row = p.out.data() + p.out.offset() + ol(n, oy, std::int64_t{0}, std::int64_t{0});
          dwconv_rows_avx2<KT>(g.OW, T, d.row(n, oy), p.OC, d.pw.w.data(), bstride, d.pw.start.data(),
                               [&](std::int64_t c0) { return stage{out_row + c0, ol.stride(2), &rq, c0}; });
        }
    });
    return;
  }
  const std::int64_t acc_stride = d.pw.blocks * dw_block;
  std::vector<std::int32_t> acc(static_cast<std::size_t>(g.OW * acc_stride));
  for (std::int64_t n = 0; n < g.N; ++n)
    for (std::int64_t oy = 0; oy < g.OH; ++oy) {
      dwconv_rows_avx2<KT>(g.OW, T, d.row(n, oy), p.OC, d.pw.w.data(), bstride, d.pw.start.data(),
                           [&](std::int64_t c0) { return dw_acc_stage{acc.data() + c0, acc_stride}; });
      d.finish_row(n, oy, acc.data(), acc_stride);
    }
}
#endif

template <int KT, class I, class W, class O>
void run_depthwise_portable(dw_call<I, W, O>& d) {
  const depthwise_problem<I, W, O>& p = d.p;
  const conv_geometry& g = p.g;
  const std::int64_t acc_stride = d.pw.blocks * dw_block;
  std::vector<std::int32_t> acc(static_cast<std::size_t>(g.OW * acc_stride));
  for (std::int64_t n = 0; n < g.N; ++n)
    for (std::int64_t oy = 0; oy < g.OH; ++oy) {
      const I* const* ind = d.row(n, oy);
      for (std::int64_t b = 0; b < d.pw.blocks; ++b) {
        const std::int64_t c0 = b * dw_block;
        dwconv_row_portable<KT>(g.OW, d.pw.taps, ind, c0, static_cast<int>(std::min<std::int64_t>(dw_block, p.OC - c0)),
                                d.pw.block_weights(b), d.pw.block_start(b), acc.data() + c0, acc_stride);
      }
      d.finish_row(n, oy, acc.data(), acc_stride);
    }
}

template <int KT, class I, class W, class O>
const char* run_depthwise_at(isa level, dw_call<I, W, O>& d) {
#if defined(NPUQ_ARCH_X86_64)
  if (static_cast<int>(level) >= static_cast<int>(isa::avx2) && static_cast<int>(level) <= static_cast<int>(isa::amx_int8)) {
    run_depthwise_avx2<KT>(d);
    return "avx2";
  }
#endif
  (void)level;
  run_depthwise_portable<KT>(d);
  return "portable";
}

template <class I, class W, class O>
void run_depthwise(const simd_backend& be, const depthwise_problem<I, W, O>& p) {
  dw_call<I, W, O> d(p);
  const isa level = be.level();
  const char* shape = "kxk";
  const char* suffix;
  if (p.g.KH == 3 && p.g.KW == 3) {
    shape = "3x3";
    suffix = run_depthwise_at<9>(level, d);
  } else if (p.g.KH == 5 && p.g.KW == 5) {
    shape = "5x5";
    suffix = run_depthwise_at<25>(level, d);
  } else {
    suffix = run_depthwise_at<0>(level, d);
  }
  detail::simd_last_kernel_storage() =
      std::string("dwconv_") + type_code(p.in.type()) + type_code(p.w.type()) + "_" + shape + "_16c_" + suffix;
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
