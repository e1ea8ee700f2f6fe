// conv2d and depthwise conv2d on the NPU emulator.
//
// conv2d runs as one instance per (image, group): output pixels x filters of the group, reducing
// over K = KH * KW taps x input channels of the group (K tiles split the channels, every tile
// keeps all taps). Depthwise runs as one instance per image: output pixels x output channels,
// K = KH * KW taps, and every `multiplier` channels read their own input channel. The DMA stage
// gathers each output pixel's taps (zeros for padded taps, as the reference skips them) in
// (ky, kx, channel) order, the reference's order.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "npuq/backends/npu/emulator.hpp"
#include "npuq/backends/npu/gemm.hpp"
#include "npuq/ops/conv2d_problem.hpp"

namespace npuq {
namespace npu {
namespace detail {

// What conv2d and depthwise share: geometry, bias, stores and the shape text.
template <class I, class W, class O>
struct window_operands {
  const window_problem<I, W, O>& p;

  std::string shape_string() const {
    const conv_geometry& g = p.g;
    return std::to_string(g.N) + "x" + std::to_string(g.H) + "x" + std::to_string(g.W) + "x" + std::to_string(g.C) + " -> " +
           std::to_string(g.N) + "x" + std::to_string(g.OH) + "x" + std::to_string(g.OW) + "x" + std::to_string(p.OC) + ", " +
           std::to_string(g.KH) + "x" + std::to_string(g.KW) + " s" + std::to_string(g.stride_h) + (g.dilation_h > 1 || g.dilation_w > 1 ? " d" + std::to_string(g.dilation_h) : "");
  }
  std::int64_t max_abs_a() const { return max_abs_offset<I>(p.in_zero_point); }
  std::int64_t max_abs_b() const { return max_abs_offset<W>(p.w_zero_point); }
  std::int64_t max_abs_bias() const { return detail::max_abs_bias(p.bias); }
  bool has_bias() const { return p.bias.rank() == 1; }
  std::int32_t bias(std::int64_t ch) const { return p.bias(ch); }

  // Calls f(tap index, iy, ix, inside image) for every tap of output pixel (oy, ox), in (ky, kx) order.
  template <class F>
  void for_taps(std::int64_t oy, std::int64_t ox, F&& f) const {
    const conv_geometry& g = p.g;
    for (std::int64_t ky = 0; ky < g.KH; ++ky)
      for (std::int64_t kx = 0; kx < g.KW; ++kx) {
        const std::int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
        const std::int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
        f(ky * g.KW + kx, iy, ix, iy >= 0 && iy < g.H && ix >= 0 && ix < g.W);
      }
  }
  // Stores a finished tile; `image` is the batch index, `oc0` the first global output channel.
  void store_tile(const tile_ref& t, std::int64_t image, std::int64_t oc0, const std::int32_t* v) const {
    for (std::int64_t i = 0; i < t.mt(); ++i) {
      const std::int64_t oy = t.oy0 + i / t.tw, ox = t.ox0 + i % t.tw;
      for (std::int64_t j = 0; j < t.nt; ++j) p.out.set(static_cast<value_t<O>>(v[i * t.nt + j]), image, oy, ox, oc0 + j);
    }
  }
};

template <class I, class W, class O>
struct conv2d_operands : window_operands<I, W, O> {
  const conv2d_problem<I, W, O>& c;
  conv2d_operands(const conv2d_problem<I, W, O>& pb) : window_operands<I, W, O>{pb}, c(pb) {}

  std::int64_t image(std::int64_t inst) const { return inst / c.groups; }
  std::int64_t group(std::int64_t inst) const { return inst % c.groups; }
  std::int64_t channel(std::int64_t inst, std::int64_t n) const { return group(inst) * c.out_per_group + n; }
  std::int64_t b_instance(std::int64_t inst) const { return group(inst); }

  // [mt][taps * kcn]: pixel rows of the tile, K index (ky * KW + kx) * kcn + channel.
  void load_a(const tile_ref& t, std::int16_t* dst) const {
    const std::int64_t n = image(t.inst), c0 = group(t.inst) * c.in_per_group + t.kc0, kcn = t.kcn;
    const std::int64_t kt = c.g.KH * c.g.KW * kcn;
    const std::int64_t sc = c.in.layout().stride(3);
    for (std::int64_t i = 0; i < t.mt(); ++i) {
      std::int16_t* row = dst + i * kt;
      this->for_taps(t.oy0 + i / t.tw, t.ox0 + i % t.tw, [&](std::int64_t tap, std::int64_t iy, std::int64_t ix, bool inside) {
        std::int16_t* d = row + tap * kcn;
        if (!inside) {
          std::fill(d, d + kcn, std::int16_t{0});
          return;
        }
        const std::int64_t base = c.in.offset() + c.in.layout()(n, iy, ix, c0);
        for (std::int64_t ch = 0; ch < kcn; ++ch) d[ch] = static_cast<std::int16_t>(c.in.load(base + ch * sc) - c.in_zero_point);
      });
    }
  }
  // [nt][taps * kcn] in the same K order.
  void load_b(const tile_ref& t, std::int16_t* dst) const {
    const std::int64_t kcn = t.kcn, kt = c.g.KH * c.g.KW * kcn;
    for (std::int64_t j = 0; j < t.nt; ++j) {
      const std::int64_t oc = channel(t.inst, t.n0 + j);
      const std::int32_t zp = c.w_zero_point[static_cast<std::size_t>(oc)];
      for (std::int64_t ky = 0; ky < c.g.KH; ++ky)
        for (std::int64_t kx = 0; kx < c.g.KW; ++kx)
          for (std::int64_t ch = 0; ch < kcn; ++ch)
            dst[j * kt + (ky * c.g.KW + kx) * kcn + ch] = static_cast<std::int16_t>(c.w(oc, ky, kx, t.kc0 + ch) - zp);
    }
  }
  void store(const tile_ref& t, const std::int32_t* v) const { this->store_tile(t, image(t.inst), channel(t.inst, t.n0), v); }
};

template <class I, class W, class O>
struct depthwise_operands : window_operands<I, W, O> {
  const depthwise_problem<I, W, O>& d;
  depthwise_operands(const depthwise_problem<I, W, O>& pb) : window_operands<I, W, O>{pb}, d(pb) {}

  std::int64_t channel(std::int64_t, std::int64_t n) const { return n; }
  std::int64_t b_instance(std::int64_t) const { return 0; }

  // [input channels of the tile][mt][taps].
  void load_a(const tile_ref& t, std::int16_t* dst) const {
    const std::int64_t taps = d.g.KH * d.g.KW, chans = t.nt / d.multiplier, c0 = t.n0 / d.multiplier;
    const std::int64_t sc = d.in.layout().stride(3), plane = t.mt() * taps;
    for (std::int64_t i = 0; i < t.mt(); ++i)
      this->for_taps(t.oy0 + i / t.tw, t.ox0 + i % t.tw, [&](std::int64_t tap, std::int64_t iy, std::int64_t ix, bool inside) {
        std::int16_t* out = dst + i * taps + tap;  // channel q at out[q * plane]
        const std::int64_t base = inside ? d.in.offset() + d.in.layout()(t.inst, iy, ix, c0) : 0;
        for (std::int64_t q = 0; q < chans; ++q)
          out[q * plane] = inside ? static_cast<std::int16_t>(d.in.load(base + q * sc) - d.in_zero_point) : 0;
      });
  }
  // [nt][taps].
  void load_b(const tile_ref& t, std::int16_t* dst) const {
    const std::int64_t taps = d.g.KH * d.g.KW;
    for (std::int64_t j = 0; j < t.nt; ++j) {
      const std::int64_t oc = t.n0 + j;
      const std::int32_t zp = d.w_zero_point[static_cast<std::size_t>(oc)];
      for (std::int64_t ky = 0; ky < d.g.KH; ++ky)
        for (std::int64_t kx = 0; kx < d.g.KW; ++kx)
          dst[j * taps + ky * d.g.KW + kx] = static_cast<std::int16_t>(d.w(ky, kx, oc) - zp);
    }
  }
  void store(const tile_ref& t, const std::int32_t* v) const { this->store_tile(t, t.inst, t.n0, v); }
};

template <class O>
op_shape window_shape(const char* op, const conv_geometry& g) {
  op_shape s;
  s.op = op;
  s.OH = g.OH;
  s.OW = g.OW;
  s.k_unit = g.KH * g.KW;
  s.window = true;
  s.g = g;
  s.out_bits = 8 * static_cast<int>(sizeof(O));
  return s;
}

}  // namespace detail

template <class I, class W, class O>
status execute(const emulator& emu, const conv2d_problem<I, W, O>& p) {
  op_shape s = detail::window_shape<O>("conv2d", p.g);
  s.instances = p.g.N * p.groups;
  s.N = p.out_per_group;
  s.k_units = p.in_per_group;
  return emu.run(s, detail::conv2d_operands<I, W, O>(p), p.stage);
}

template <class I, class W, class O>
status execute(const emulator& emu, const depthwise_problem<I, W, O>& p) {
  op_shape s = detail::window_shape<O>("depthwise_conv2d", p.g);
  s.instances = p.g.N;
  s.N = p.OC;
  s.k_units = 1;
  s.n_step = p.multiplier;
  s.depthwise = true;
  return emu.run(s, detail::depthwise_operands<I, W, O>(p), p.stage);
}

}  // namespace npu
}  // namespace npuq
