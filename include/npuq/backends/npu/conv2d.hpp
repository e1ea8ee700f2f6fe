// conv2d and depthwise conv2d on the NPU emulator.
//
// conv2d runs as one instance per (image, group): output pixels x filters of the group, reducing
// over K = KH * KW taps x input channels of the group (K tiles split the channels, every tile
// keeps all taps). Depthwise runs as one instance per image: output pixels x output channels,
// K = KH * KW taps, and every `multiplier` channels read their own input channel. The DMA stage
// gathers each output pixel's taps (zeros for padded taps, as the reference skips them) in
// (ky, kx, channel) order, the reference's order (used when partial sums are checked inside a
// K tile). Otherwise a tile's sums come from the simd backend: conv2d (weight tile packed once per
// op) or depthwise conv2d on the input patch the output rectangle reads, with the padding that
// keeps the patch's output exactly the tile's rectangle.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "npuq/backends/npu/emulator.hpp"
#include "npuq/backends/npu/gemm.hpp"
#include "npuq/ops/conv2d.hpp"
#include "npuq/ops/conv2d_problem.hpp"
#include "npuq/simd.hpp"

namespace npuq {
namespace npu {
namespace detail {

// What conv2d and depthwise share: geometry, bias, stores and the shape text.
template <class I, class W, class O>
struct window_operands {
  using out_type = O;
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
    const Layout& l = p.out.layout();
    const std::int64_t cs = l.stride(3), th = t.th, tw = t.tw, nt = t.nt;
    O* const base = p.out.data() + p.out.offset() + l(image, t.oy0, t.ox0, oc0);
    for (std::int64_t y = 0; y < th; ++y) {
      if (cs == 1 && l.stride(2) == nt) {  // the row's pixels are contiguous
        store_values(base + y * l.stride(1), 1, v + y * tw * nt, tw * nt);
        continue;
      }
      for (std::int64_t x = 0; x < tw; ++x) store_values(base + y * l.stride(1) + x * l.stride(2), cs, v + (y * tw + x) * nt, nt);
    }
  }

  // Where the PPU may write a tile straight into the output (ppu.hpp): its pixels' channels are
  // consecutive. False otherwise (then store_tile).
  bool out_rows_at(const tile_ref& t, std::int64_t image, std::int64_t oc0, ppu_out<O>* d) const {
    const Layout& l = p.out.layout();
    if (l.stride(3) != 1) return false;
    *d = {p.out.data() + p.out.offset() + l(image, t.oy0, t.ox0, oc0), l.stride(1), l.stride(2), t.tw};
    return true;
  }

  // The input patch a tile's output rectangle reads, clipped to the image, with the padding that
  // gives it exactly th x tw outputs. `empty`: every tap of the rectangle is padding.
  struct patch {
    std::int64_t y0 = 0, h = 0, x0 = 0, w = 0;
    padding_spec pad;
    bool empty = false;
  };
  static bool patch_axis(std::int64_t o0, std::int64_t t, std::int64_t stride, std::int64_t pad, std::int64_t k, std::int64_t dil,
                         std::int64_t image, std::int64_t* i0, std::int64_t* len, std::int64_t* lo_pad, std::int64_t* hi_pad) {
    const std::int64_t lo = o0 * stride - pad, hi = (o0 + t - 1) * stride - pad + (k - 1) * dil + 1;  // [lo, hi)
    *i0 = lo > 0 ? lo : 0;
    const std::int64_t e = hi < image ? hi : image;
    if (e <= *i0) return false;
    *len = e - *i0;
    *lo_pad = *i0 - lo;  // (len + pads - extent) / stride + 1 = t
    *hi_pad = hi - e;
    return true;
  }
  patch tile_patch(const tile_ref& t) const {
    const conv_geometry& g = p.g;
    patch r;
    std::int64_t pt = 0, pb = 0, pl = 0, pr = 0;
    r.empty = !patch_axis(t.oy0, t.th, g.stride_h, g.pad_top, g.KH, g.dilation_h, g.H, &r.y0, &r.h, &pt, &pb) ||
              !patch_axis(t.ox0, t.tw, g.stride_w, g.pad_left, g.KW, g.dilation_w, g.W, &r.x0, &r.w, &pl, &pr);
    r.pad = padding_spec::explicit_(pt, pb, pl, pr);
    return r;
  }
  // The geometry of a tile's simd call on its patch: one image of the patch's rows and columns
  // and `chans` channels, the op's window, strides and dilations, and the patch's padding, which
  // gives exactly the tile's th x tw outputs (what resolve_geometry would compute).
  conv_geometry patch_geometry(const tile_ref& t, const patch& pa, std::int64_t chans) const {
    conv_geometry g = p.g;
    g.N = 1;
    g.H = pa.h;
    g.W = pa.w;
    g.C = chans;
    g.OH = t.th;
    g.OW = t.tw;
    g.pad_top = pa.pad.top;
    g.pad_bottom = pa.pad.bottom;
    g.pad_left = pa.pad.left;
    g.pad_right = pa.pad.right;
    return g;
  }
  // The patch's input channels [c0, c0 + chans) of image n, and the tile's int32 output [1, th, tw, nt].
  TensorView<const I> patch_view(const patch& pa, std::int64_t n, std::int64_t c0, std::int64_t chans) const {
    const Layout& l = p.in.layout();
    return {p.in.data(), p.in.offset() + l(n, pa.y0, pa.x0, c0),
            Layout::strided({1, pa.h, pa.w, chans}, {l.stride(0), l.stride(1), l.stride(2), l.stride(3)}),
            Quant::per_tensor(1.0f, p.in_zero_point), p.in.capacity()};
  }
  static TensorView<std::int32_t> part_view(const tile_ref& t, std::int32_t* part) {
    return {part, Layout::strided({1, t.th, t.tw, t.nt}, {t.th * t.tw * t.nt, t.tw * t.nt, t.nt, 1})};
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
  bool out_rows(const tile_ref& t, ppu_out<O>* d) const { return this->out_rows_at(t, image(t.inst), channel(t.inst, t.n0), d); }

  // Weight tiles packed for the simd kernels, by (n0, kc0), for the group `packed_for`.
  mutable std::map<std::pair<std::int64_t, std::int64_t>, packed_conv2d_weights<W>> packed;
  mutable std::int64_t packed_for = -1;

  // Exact sums of the tile's K range ([mt][nt]): simd conv2d of the input patch (channels
  // [kc0, kc0 + kcn) of the group) with the weight tile. |products| < 2^16 and kt <= 2^15 keep
  // every sum below 2^31, so the kernel's sum modulo 2^32 is exact.
  status tile_sums(const tile_ref& t, std::int32_t* part) const {
    const typename window_operands<I, W, O>::patch pa = this->tile_patch(t);
    if (pa.empty || t.kcn == 0) {
      std::fill(part, part + t.mt() * t.nt, std::int32_t{0});
      return {};
    }
    const std::int64_t grp = group(t.inst), oc0 = channel(t.inst, t.n0);
    if (grp != packed_for) {
      packed.clear();
      packed_for = grp;
    }
    packed_conv2d_weights<W>& w = packed[{t.n0, t.kc0}];
    if (w.groups() == 0) {
      const Layout& l = c.w.layout();
      const TensorView<const W> wv(c.w.data(), c.w.offset() + l(oc0, 0, 0, t.kc0),
                                   Layout::strided({t.nt, c.g.KH, c.g.KW, t.kcn}, {l.stride(0), l.stride(1), l.stride(2), l.stride(3)}),
                                   zero_point_quant(0, c.w_zero_point, oc0, t.nt), c.w.capacity());
      NPUQ_RETURN_IF_ERROR(w.pack(wv, 1));  // cannot fail: a slice of validated weights
    }
    // The simd conv2d kernels at the kernel layer: the patch and the weight tile are slices of
    // the op's validated tensors, so nothing is validated again per tile (int32 raw sums).
    conv2d_problem<I, W, std::int32_t> q;
    q.in = this->patch_view(pa, image(t.inst), grp * c.in_per_group + t.kc0, t.kcn);
    q.out = this->part_view(t, part);
    q.g = this->patch_geometry(t, pa, t.kcn);
    q.OC = t.nt;
    q.in_zero_point = c.in_zero_point;
    q.in_per_group = t.kcn;
    q.out_per_group = t.nt;
    simd_detail::run_conv2d(npuq::simd, q, &w);
    return {};
  }
};

// Tiles this thread computed with depthwise_operands::fused_tile (tests check that the path ran).
inline std::int64_t& fused_tile_count() {
  thread_local std::int64_t n = 0;
  return n;
}

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
  bool out_rows(const tile_ref& t, ppu_out<O>* d) const { return this->out_rows_at(t, t.inst, t.n0, d); }

  // The tile's outputs straight from the simd depthwise kernel into the output tensor, with the
  // op's bias and output stage, the kernel counting what the PPU counts (stage_tally): one pass
  // instead of int32 sums and a PPU pass. The problem is formed here from the validated op (the
  // kernel layer, not the validating entry point). False when the kernel did not count (its
  // level or the stage has no counting form): the caller then computes the tile, overwriting
  // whatever was stored.
  mutable bool fused_off = false;  // a fused call did not count: this op's tiles take the PPU path
  bool fused_tile(const tile_ref& t, const output_stage& st, numeric_counters* nc) const {
    // The stages that count: AVX-512, 8-bit outputs, any q31 rounding (tflite double or single) or
    // fp32 ties to even.
    const bool countable = st.numerics.format == multiplier_format::q31 ||
                           (st.numerics.format == multiplier_format::fp32 && st.numerics.mode == rounding::half_even);
    if (fused_off || st.raw || sizeof(O) != 1 || !countable || level_kernels(active_isa(isa::best)).depthwise != kernel_family::avx512_vnni)
      return false;
    const typename window_operands<I, W, O>::patch pa = this->tile_patch(t);
    if (pa.empty) return false;
    const Layout& ol = d.out.layout();
    depthwise_problem<I, W, O> q =
        tile_problem(t, pa, TensorView<O>(d.out.data(), d.out.offset() + ol(t.inst, t.oy0, t.ox0, t.n0),
                                          Layout::strided({1, t.th, t.tw, t.nt}, {ol.stride(0), ol.stride(1), ol.stride(2), ol.stride(3)}),
                                          d.out.quant(), d.out.capacity()));
    if (this->has_bias())
      q.bias = TensorView<const std::int32_t>(d.bias.data(), d.bias.offset() + t.n0 * d.bias.layout().stride(0),
                                              Layout::strided({t.nt}, {d.bias.layout().stride(0)}), Quant(), d.bias.capacity());
    q.stage = st;
    // The caller checked that no sum plus bias can leave int32 or the accumulator: the
    // accumulator's width and overflow rule cannot change a value, so the simd kernel's 32-bit
    // wrap-around gives the same integers.
    q.stage.numerics.acc = {32, overflow_rule::wrap};
    if (st.channel.size() > 1) q.stage.channel.assign(st.channel.begin() + t.n0, st.channel.begin() + t.n0 + t.nt);
    stage_tally tally;
    q.tally = &tally;
    if (!simd_detail::run_depthwise_counting(active_isa(isa::best), q) || !tally.counted) {
      fused_off = true;
      return false;
    }
    const std::int64_t max_abs = tally.max_abs_total();
    nc->max_abs_acc = max_abs > nc->max_abs_acc ? max_abs : nc->max_abs_acc;
    nc->clamped_low += stage_tally::sum(tally.low);
    nc->clamped_high += stage_tally::sum(tally.high);
    ++fused_tile_count();
    return true;
  }

  // Exact sums of the tile ([mt][nt], K = the taps): simd depthwise conv2d of the input patch's
  // channels [n0 / M, (n0 + nt) / M) with weight channels [n0, n0 + nt), int32 raw sums.
  status tile_sums(const tile_ref& t, std::int32_t* part) const {
    const typename window_operands<I, W, O>::patch pa = this->tile_patch(t);
    if (pa.empty) {
      std::fill(part, part + t.mt() * t.nt, std::int32_t{0});
      return {};
    }
    return npuq::execute(npuq::simd, tile_problem(t, pa, this->part_view(t, part)));
  }

 private:
  // The tile's problem for the simd depthwise kernels, entered at the kernel layer (execute(),
  // not the validating try_depthwise_conv2d): input channels [n0 / M, (n0 + nt) / M) of the
  // patch, weight channels [n0, n0 + nt), output `out`; no bias and the raw stage until the
  // caller sets them. Every view is a slice of the op's validated tensors.
  template <class T>
  depthwise_problem<I, W, T> tile_problem(const tile_ref& t, const typename window_operands<I, W, O>::patch& pa, const TensorView<T>& out) const {
    const Layout& wl = d.w.layout();
    depthwise_problem<I, W, T> q;
    q.in = this->patch_view(pa, t.inst, t.n0 / d.multiplier, t.nt / d.multiplier);
    q.w = TensorView<const W>(d.w.data(), d.w.offset() + wl(0, 0, t.n0), Layout::strided({d.g.KH, d.g.KW, t.nt}, {wl.stride(0), wl.stride(1), wl.stride(2)}),
                              Quant(), d.w.capacity());
    q.out = out;
    q.g = this->patch_geometry(t, pa, t.nt / d.multiplier);
    q.OC = t.nt;
    q.in_zero_point = d.in_zero_point;
    q.w_zero_point.assign(d.w_zero_point.begin() + t.n0, d.w_zero_point.begin() + t.n0 + t.nt);
    q.multiplier = d.multiplier;
    return q;
  }
};

template <class O>
op_shape window_shape(const char* op, const conv_geometry& g) {
  op_shape s;
  s.op = op;
  s.OH = g.OH;
  s.OW = g.OW;
  s.k_unit = g.KH * g.KW;  // window_fits() checked the product
  s.window = true;
  s.g = g;
  s.out_bits = 8 * static_cast<int>(sizeof(O));
  return s;
}

// Largest input image (H * W pixels, and H * W * C elements) the emulator plans tiles for: its
// buffer and cost arithmetic multiplies patch extents and bits, which must stay inside int64.
// Only views with zero strides can describe more (a real image of 2^48 bytes is 256 TiB).
constexpr std::int64_t max_image_elements = std::int64_t{1} << 48;

// A valid window may hold more than 2^63 - 1 taps (KH = 2^62 over padding): more than any K
// tile, refused before KH * KW is formed. A valid zero-stride input may span more pixels than
// the tiler's arithmetic holds (libFuzzer fuzz_conv2d: [1, 2^62, 7, 0] overflowed a patch's
// rows times columns): refused too.
inline status window_fits(const char* op, const conv_geometry& g) {
  std::int64_t taps = 0;
  if (!checked_mul(g.KH, g.KW, &taps))
    return {errc::unsupported, std::string("npu: ") + op + ": a " + std::to_string(g.KH) + "x" + std::to_string(g.KW) +
                                   " window (more than 2^63 - 1 taps per input channel) exceeds the emulator's K tile limit of " +
                                   std::to_string(max_tile_k)};
  std::int64_t pixels = 0, elements = 0;
  if (!checked_mul(g.H, g.W, &pixels) || !checked_mul(pixels, g.C, &elements) || pixels > max_image_elements ||
      elements > max_image_elements)
    return {errc::unsupported, std::string("npu: ") + op + ": an input image of " + std::to_string(g.H) + "x" + std::to_string(g.W) + "x" +
                                   std::to_string(g.C) + " exceeds the emulator's image limit of 2^48 pixels and elements"};
  return {};
}

}  // namespace detail

template <class I, class W, class O>
status execute(const emulator& emu, const conv2d_problem<I, W, O>& p) {
  NPUQ_RETURN_IF_ERROR(detail::window_fits("conv2d", p.g));
  op_shape s = detail::window_shape<O>("conv2d", p.g);
  s.instances = p.g.N * p.groups;
  s.N = p.out_per_group;
  s.k_units = p.in_per_group;
  return emu.hooks().run(s, detail::conv2d_operands<I, W, O>(p), p.stage);
}

template <class I, class W, class O>
status execute(const emulator& emu, const depthwise_problem<I, W, O>& p) {
  NPUQ_RETURN_IF_ERROR(detail::window_fits("depthwise_conv2d", p.g));
  op_shape s = detail::window_shape<O>("depthwise_conv2d", p.g);
  s.instances = p.g.N;
  s.N = p.OC;
  s.k_units = 1;
  s.n_step = p.multiplier;
  s.depthwise = true;
  return emu.hooks().run(s, detail::depthwise_operands<I, W, O>(p), p.stage);
}

}  // namespace npu
}  // namespace npuq
