// simd depthwise conv2d: weight packing, the indirection buffer, kernel dispatch.
//
// Depthwise convolution does too little work per weight for the GEMM kernels: each output
// channel sees KH*KW taps of one input channel. The kernels here vectorize across channels
// (NHWC) and keep a block's weights in registers while they walk a row of output pixels.
//
// Two kernel families (the level table's depthwise column names the one a level runs):
// - 16c (portable, AVX2): blocks of 16 channels, tap pairs of one pixel (portable/dwconv.hpp).
//   Per call the weights are packed once (zero points subtracted, bias and input zero point
//   folded into each channel's start value); per output row an indirection buffer holds one
//   pointer per (pixel, tap); padded taps point at a row filled with the input zero point, which
//   contributes exactly 0 once the start value is added, so borders run the same kernel as the
//   interior.
// - 32c (AVX-512): blocks of 32 channels, pairs of input rows built once and shared by the
//   output rows that read them (x86/dwconv_avx512.hpp); padding is the same zero-point value.
// Inputs whose channels are not contiguous, and channel multipliers M > 1 (output channel
// c*M + m reads input channel c), are first copied to a contiguous [N, H, W, C*M] buffer with
// each input channel repeated M times.
//
// The int32 sums are modulo 2^32, as the reference's are for every profile whose accumulator
// wraps at <= 32 bits. Output stage, when the output channels are contiguous: the 32c kernels'
// own 16-lane stages for tflite (usual shifts), the q31 single roundings (tosa_single, NVDLA's
// half away) and fp32 ties to even, else the AVX2 one (x86/dwconv_avx2.hpp); otherwise (or for profiles without a vector stage)
// finish_wrapped per element. Saturating or wider accumulators run the reference
// ("dwconv_reference"). Kernel names: dwconv_<in><w>_<3x3|5x5|kxk>_<16c_portable|16c_avx2|
// 32c_avx512_vnni>.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/backends/scalar/conv2d.hpp"
#include "npuq/backends/simd/gemm.hpp"
#include "npuq/backends/simd/output_stage.hpp"
#include "npuq/backends/simd/portable/dwconv.hpp"
#include "npuq/backends/simd/x86/dwconv_avx2.hpp"
#include "npuq/backends/simd/x86/dwconv_avx512.hpp"
#include "npuq/ops/conv2d_problem.hpp"

namespace npuq {
namespace simd_detail {

// (w - w_zp) of every tap and channel, tap-major, their sum per channel, and each channel's
// start value: bias - in_zp * sum, modulo 2^32. Every packing starts from these.
struct dw_taps {
  std::int64_t taps = 0, channels = 0;
  std::vector<std::int16_t> v;      // taps x channels
  std::vector<std::uint32_t> sum;   // channels
  std::vector<std::int32_t> start;  // channels

  template <class I, class W, class O>
  explicit dw_taps(const depthwise_problem<I, W, O>& p) : taps(p.g.KH * p.g.KW), channels(p.OC) {
    const Layout& wl = p.w.layout();
    const W* base = p.w.data() + p.w.offset();
    const std::int64_t cs = wl.stride(2);
    v.resize(static_cast<std::size_t>(taps * channels));
    sum.assign(static_cast<std::size_t>(channels), 0);
    std::vector<std::int16_t> zp(p.w_zero_point.begin(), p.w_zero_point.end());  // in [-128, 255]
    std::vector<W> gathered(cs == 1 ? 0 : static_cast<std::size_t>(channels));
    for (std::int64_t ky = 0; ky < p.g.KH; ++ky)
      for (std::int64_t kx = 0; kx < p.g.KW; ++kx) {
        const W* src = base + ky * wl.stride(0) + kx * wl.stride(1);
        if (cs != 1) {
          for (std::int64_t c = 0; c < channels; ++c) gathered[static_cast<std::size_t>(c)] = src[c * cs];
          src = gathered.data();
        }
        subtract_zero_points(src, zp.data(), v.data() + (ky * p.g.KW + kx) * channels, sum.data(), channels);
      }
    start.resize(static_cast<std::size_t>(channels));
    for (std::int64_t c = 0; c < channels; ++c) {
      std::uint32_t s = 0u - static_cast<std::uint32_t>(p.in_zero_point) * sum[static_cast<std::size_t>(c)];
      if (p.bias.rank() == 1) s += static_cast<std::uint32_t>(p.bias(c));
      start[static_cast<std::size_t>(c)] = static_cast<std::int32_t>(s);
    }
  }

 private:
  // dst = src - zp, sum += dst; in blocks of 16 so that the compiler vectorizes them at -O2.
  template <class W>
  static void subtract_zero_points(const W* __restrict src, const std::int16_t* __restrict zp, std::int16_t* __restrict dst,
                                   std::uint32_t* __restrict sum, std::int64_t n) {
    std::int64_t c = 0;
    for (; c + 16 <= n; c += 16)
      for (int k = 0; k < 16; ++k) {
        dst[c + k] = static_cast<std::int16_t>(src[c + k] - zp[c + k]);
        sum[c + k] += static_cast<std::uint32_t>(static_cast<std::int32_t>(dst[c + k]));
      }
    for (; c < n; ++c) {
      dst[c] = static_cast<std::int16_t>(src[c] - zp[c]);
      sum[c] += static_cast<std::uint32_t>(static_cast<std::int32_t>(dst[c]));
    }
  }
};
// Depthwise weights packed for the 16c kernels (layout in portable/dwconv.hpp).
struct dw_packed_weights {
  std::int64_t channels = 0, taps = 0, pairs = 0, blocks = 0;
  std::vector<std::int16_t> w;      // blocks x pairs x 32
  std::vector<std::int32_t> start;  // blocks x 16, in accumulator order

  const std::int16_t* block_weights(std::int64_t b) const { return w.data() + b * pairs * 2 * dw_block; }
  const std::int32_t* block_start(std::int64_t b) const { return start.data() + b * dw_block; }

  void pack(const dw_taps& t) {
    channels = t.channels;
    taps = t.taps;
    pairs = (taps + 1) / 2;
    blocks = (channels + dw_block - 1) / dw_block;
    w.assign(static_cast<std::size_t>(blocks * pairs * 2 * dw_block), 0);
    start.assign(static_cast<std::size_t>(blocks * dw_block), 0);
    for (std::int64_t oc = 0; oc < channels; ++oc) {
      const std::int64_t b = oc / dw_block;
      const int j = static_cast<int>(oc % dw_block);
      for (std::int64_t k = 0; k < taps; ++k)
        w[static_cast<std::size_t>((b * pairs + k / 2) * 2 * dw_block + dw_lane(j) + k % 2)] =
            t.v[static_cast<std::size_t>(k * channels + oc)];
      start[static_cast<std::size_t>(b * dw_block + dw_acc_lane(j))] = t.start[static_cast<std::size_t>(oc)];
    }
  }
};

// The input as [N, H, W, C*M] with contiguous channels: the view itself, or a copy of it in
// `buffer` (which keeps its capacity, so a plan's runs copy without allocating).
template <class I>
struct dw_source {
  const I* base = nullptr;
  std::int64_t sn = 0, sh = 0, sw = 0;

  template <class W, class O>
  static bool copies(const depthwise_problem<I, W, O>& p) {
    return p.multiplier != 1 || p.in.layout().stride(3) != 1;
  }

  template <class W, class O>
  dw_source(const depthwise_problem<I, W, O>& p, std::vector<I>& buffer) {
    const conv_geometry& g = p.g;
    const std::int64_t OC = p.OC, M = p.multiplier;
    const Layout& il = p.in.layout();
    base = p.in.data() + p.in.offset();
    sn = il.stride(0);
    sh = il.stride(1);
    sw = il.stride(2);
    if (copies(p)) {
      buffer.resize(static_cast<std::size_t>(g.N * g.H * g.W * OC));
      I* dst = buffer.data();
      // An empty input (any extent 0; the output may still have padded pixels) copies nothing:
      // without this test an empty row loop could run 2^62 times (fuzz_conv2d seed 2).
      const bool empty = g.N == 0 || g.H == 0 || g.W == 0 || g.C == 0;
      for (std::int64_t n = 0; n < (empty ? 0 : g.N); ++n)
        for (std::int64_t y = 0; y < g.H; ++y)
          for (std::int64_t x = 0; x < g.W; ++x)
            for (std::int64_t c = 0; c < g.C; ++c)
              for (std::int64_t m = 0; m < M; ++m) *dst++ = p.in(n, y, x, c);
      base = buffer.data();
      sw = OC;
      sh = g.W * OC;
      sn = g.H * g.W * OC;
    }
  }
};

// Scalar output stage of pixels [ox0, ox0 + npix) of row (n, oy), channels [c0, c0 + nch), from
// int32 sums (pixel i, channel c0 + j at acc[i * acc_stride + j]).
template <class I, class W, class O>
void dw_finish_scalar(const depthwise_problem<I, W, O>& p, std::int64_t n, std::int64_t oy, std::int64_t ox0, std::int64_t npix,
                      std::int64_t c0, std::int64_t nch, const std::int32_t* acc, std::int64_t acc_stride) {
  const TensorView<const std::int32_t> no_bias;  // folded into the start values
  const std::int64_t cs = p.out.layout().stride(3);
  for (std::int64_t i = 0; i < npix; ++i) {
    const std::int64_t off = p.out.offset() + p.out.layout()(n, oy, ox0 + i, c0);
    for (std::int64_t j = 0; j < nch; ++j)
      p.out.store(off + j * cs, static_cast<O>(finish_wrapped(acc[i * acc_stride + j], p.stage, no_bias, c0 + j)));
  }
}

constexpr std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0) ? 1 : 0); }

#if defined(NPUQ_ARCH_X86_64)
// The 32c kernels' per-call geometry: every output row's ring slots, fixed by the convolution's
// shape. Rows of one dilation chain pair up as (chain index 2k, 2k + 1); phase 1: the window
// starts on a pair's bottom row. Per output row: its phase, and each pair's top row and ring
// slot (the pairs one window reads land in distinct slots).
struct dw512_geometry {
  std::int64_t width = 0;      // padded columns a row reads
  std::int64_t x_lo = 0, x_hi = 0;
  std::int64_t first = 0;      // offset of input column x_lo, in input columns
  std::int64_t np = 0, slots = 0, slot_size = 0, ring_size = 0, band = 1;
  std::vector<int> phase;
  std::vector<std::int64_t> top, slot;

  dw512_geometry() = default;
  dw512_geometry(const conv_geometry& g, std::int64_t channels, std::int64_t pairs) : np(pairs) {
    const std::int64_t dh = g.dilation_h;
    width = (g.OW - 1) * g.stride_w + (g.KW - 1) * g.dilation_w + 1;
    x_lo = std::min(g.pad_left, width);
    x_hi = std::max(x_lo, std::min(g.pad_left + g.W, width));
    first = x_hi > x_lo ? x_lo - g.pad_left : 0;  // no in-image columns: unused (pad_left may be any int64)
    slots = np * dh;
    slot_size = width * 64;
    ring_size = slots * slot_size;
    band = std::max<std::int64_t>(1, (std::int64_t{256} << 10) / std::max<std::int64_t>(1, g.stride_h * g.W * channels));
    phase.resize(static_cast<std::size_t>(g.OH));
    top.resize(static_cast<std::size_t>(g.OH * np));
    slot.resize(static_cast<std::size_t>(g.OH * np));
    for (std::int64_t oy = 0; oy < g.OH; ++oy) {
      const std::int64_t y0 = oy * g.stride_h - g.pad_top, j0 = floor_div(y0, dh);
      phase[static_cast<std::size_t>(oy)] = static_cast<int>(j0 & 1);
      for (std::int64_t q = 0; q < np; ++q) {
        const std::int64_t j = j0 - (j0 & 1) + 2 * q;  // even
        const auto i = static_cast<std::size_t>(oy * np + q);
        top[i] = y0 + (j - j0) * dh;
        slot[i] = ((j / 2 * dh + (top[i] - j * dh)) % slots + slots) % slots;
      }
    }
  }
};
#endif

// Everything a depthwise op prepares from its weights and parameters before it reads an input:
// the family's packed weights, the output-stage tables and the per-row tables, plus the bytes
// of scratch each part of a run needs. A plan keeps one; the one-shot call makes one per call.
template <class I, class W, class O>
struct dw_prepared {
  kernel_family family = kernel_family::portable;
  int kt = 0;  // taps fixed at compile time: 9 (3x3), 25 (5x5) or 0 (any other size)
  std::vector<I> zero_row;
  // 16c families
  dw_packed_weights pw;
  std::vector<std::int64_t> xcol;  // OW x KW: the input column each (ox, kx) reads, or -1 (padding)
  std::optional<tile_output_stage> tile;  // portable family: the vector output stage (bias is in the start values)
#if defined(NPUQ_ARCH_X86_64)
  dw_requant_table rq;
  bool rq_ok = false;
  // 32c family
  dw512_packed_weights pw512;
  dw512_geometry geo;
  dw512_q31_table q31;
  dw512_fp32_table fp32;
  dw512_q31_single_table single;
  bool q31_ok = false, fp32_ok = false, single_ok = false;
#endif
  std::size_t part_bytes = 0;

  dw_prepared(kernel_family f, const depthwise_problem<I, W, O>& p) : family(f) {
    const conv_geometry& g = p.g;
    kt = g.KH == 3 && g.KW == 3 ? 9 : g.KH == 5 && g.KW == 5 ? 25 : 0;
    zero_row.assign(static_cast<std::size_t>(p.OC), static_cast<I>(p.in_zero_point));
    const dw_taps taps(p);
#if defined(NPUQ_ARCH_X86_64)
    rq_ok = rq.build(p.stage, p.OC);
    if (f == kernel_family::avx512_vnni) {
      pw512.pack(p.OC, g.KH, g.KW, taps.v.data(), taps.sum.data(), taps.start.data(), std::is_same<I, std::uint8_t>::value ? 128 : 0);
      geo = dw512_geometry(g, p.OC, pw512.pairs);
      if constexpr (sizeof(O) == 1) {
        q31_ok = q31.build(p.stage, p.OC);
        fp32_ok = !q31_ok && fp32.build(p.stage, p.OC);
        single_ok = !q31_ok && !fp32_ok && single.build(p.stage, p.OC);
      }
      part_bytes = carve(nullptr, g).used;
      return;
    }
#endif
    pw.pack(taps);
    if (f == kernel_family::portable) tile.emplace(p.stage, TensorView<const std::int32_t>{}, p.OC);
    xcol.resize(static_cast<std::size_t>(g.OW * g.KW));
    for (std::int64_t ox = 0; ox < g.OW; ++ox)
      for (std::int64_t kx = 0; kx < g.KW; ++kx) {
        const std::int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
        xcol[static_cast<std::size_t>(ox * g.KW + kx)] = ix >= 0 && ix < g.W ? ix : -1;
      }
    part_bytes = carve(nullptr, g).used;
  }

  // One part's working memory, carved from `base` (or only counted when base is null).
  struct part_memory {
    const I** ind = nullptr;         // 16c: OW x taps input pointers of the current row
    std::int32_t* acc = nullptr;     // 16c: OW x blocks*16 sums; 32c: OW x 32 sums
    std::int16_t* ring = nullptr;    // 32c: blocks x ring of pair rows
    std::int64_t* tag = nullptr;     // 32c: the top row each ring slot holds
    const std::int16_t** rows = nullptr;  // 32c: the pair rows of the current output row
    std::size_t used = 0;
  };
  part_memory carve(unsigned char* base, const conv_geometry& g) const {
    scratch_carver c{base};
    part_memory m;
#if defined(NPUQ_ARCH_X86_64)
    if (family == kernel_family::avx512_vnni) {
      m.ring = c.take<std::int16_t>(pw512.blocks * geo.ring_size);
      m.tag = c.take<std::int64_t>(pw512.blocks * geo.slots);
      m.rows = c.take<const std::int16_t*>(geo.np);
      m.acc = c.take<std::int32_t>(dw512_block * g.OW);
      m.used = c.used;
      return m;
    }
#endif
    m.ind = c.take<const I*>(g.OW * pw.taps);
    m.acc = c.take<std::int32_t>(g.OW * pw.blocks * dw_block);
    m.used = c.used;
    return m;
  }

  // Parts a run is cut into: whole output rows, at least 2^17 multiply-adds each (a fork and
  // join costs microseconds), at most one per thread.
  std::int64_t parts(int threads, const conv_geometry& g, std::int64_t channels) const {
    if (threads <= 1) return 1;
    const double macs = static_cast<double>(g.N) * static_cast<double>(g.OH) * static_cast<double>(g.OW) *
                        static_cast<double>(channels) * static_cast<double>(g.KH) * static_cast<double>(g.KW);
    const double by_work = std::max(1.0, std::floor(macs / 131072.0));
    return std::max<std::int64_t>(
        1, static_cast<std::int64_t>(std::min({static_cast<double>(threads), static_cast<double>(g.N * g.OH), by_work})));
  }
};

// The 16c kernels' view of one part: packed weights, the input, and the indirection buffer of
// the current row (one pointer per pixel and tap; padded taps point at the zero-point row).
template <class I, class W, class O>
struct dw_rows16 {
  const dw_prepared<I, W, O>& pr;
  const dw_source<I>& src;
  const conv_geometry& g;
  const I** ind;

  const I* const* row(std::int64_t n, std::int64_t oy) const {
    const std::int64_t T = pr.pw.taps;
    for (std::int64_t ky = 0; ky < g.KH; ++ky) {
      const std::int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
      const I* r = iy >= 0 && iy < g.H ? src.base + n * src.sn + iy * src.sh : nullptr;
      const std::int64_t* xc = pr.xcol.data();
      const I** dst = ind + ky * g.KW;
      for (std::int64_t ox = 0; ox < g.OW; ++ox, xc += g.KW, dst += T)
        for (std::int64_t kx = 0; kx < g.KW; ++kx) dst[kx] = r != nullptr && xc[kx] >= 0 ? r + xc[kx] * src.sw : pr.zero_row.data();
    }
    return ind;
  }
};

// Calls f(n, oy) for the output rows [r0, r1) of the flattened (n, oy) order.
template <class F>
void for_each_output_row(std::int64_t OH, std::int64_t r0, std::int64_t r1, F&& f) {
  for (std::int64_t r = r0; r < r1; ++r) f(r / OH, r % OH);
}

#if defined(NPUQ_ARCH_X86_64)
// Calls f(stage*) with a null pointer whose type is the requantizing stage for this table.
template <class O, class F>
void with_requant_stage(const dw_requant_table& t, F&& f) {
  using kind = dw_requant_table::kind;
  switch (t.k) {
    case kind::raw: return f(static_cast<dw_requant_stage<O, kind::raw, false>*>(nullptr));
    case kind::q31_double: return f(static_cast<dw_requant_stage<O, kind::q31_double, false>*>(nullptr));
    case kind::fp32: break;
  }
  if (t.mode == rounding::half_even) return f(static_cast<dw_requant_stage<O, kind::fp32, true>*>(nullptr));
  return f(static_cast<dw_requant_stage<O, kind::fp32, false>*>(nullptr));
}

// AVX2, output rows [r0, r1): requantized in registers when the output channels are contiguous
// and the profile has a vector output stage, else int32 sums and the scalar output stage.
template <int KT, class I, class W, class O>
void run_depthwise_avx2(const dw_prepared<I, W, O>& pr, const depthwise_problem<I, W, O>& p, const dw_source<I>& src,
                        unsigned char* mem, std::int64_t r0, std::int64_t r1) {
  const conv_geometry& g = p.g;
  const auto m = pr.carve(mem, g);
  const dw_rows16<I, W, O> rows{pr, src, g, m.ind};
  const std::int64_t T = pr.pw.taps, bstride = pr.pw.pairs * 2 * dw_block;
  const Layout& ol = p.out.layout();
  if (ol.stride(3) == 1 && pr.rq_ok) {
    with_requant_stage<O>(pr.rq, [&](auto* tag) {
      using stage = std::remove_pointer_t<decltype(tag)>;
      for_each_output_row(g.OH, r0, r1, [&](std::int64_t n, std::int64_t oy) {
        O* out_row = p.out.data() + p.out.offset() + ol(n, oy, std::int64_t{0}, std::int64_t{0});
        dwconv_rows_avx2<KT>(g.OW, T, rows.row(n, oy), p.OC, pr.pw.w.data(), bstride, pr.pw.start.data(),
                             [&](std::int64_t c0) { return stage{out_row + c0, ol.stride(2), &pr.rq, c0}; });
      });
    });
    return;
  }
  const std::int64_t acc_stride = pr.pw.blocks * dw_block;
  for_each_output_row(g.OH, r0, r1, [&](std::int64_t n, std::int64_t oy) {
    dwconv_rows_avx2<KT>(g.OW, T, rows.row(n, oy), p.OC, pr.pw.w.data(), bstride, pr.pw.start.data(),
                         [&](std::int64_t c0) { return dw_acc_stage{m.acc + c0, acc_stride}; });
    dw_finish_scalar(p, n, oy, 0, g.OW, 0, p.OC, m.acc, acc_stride);
  });
}

// AVX-512, output rows [r0, r1): for each image, band of output rows and block of 32 channels,
// the band's rows top to bottom: the row pairs a row reads (built into the block's small ring
// when not already there), then row(ctx, b, nch, n, oy, phase, half, pair rows) runs the kernel
// on them. A block's ring stays in L1 across the rows of a band, and a band's input rows (about
// 256 KiB) stay in L2 across its blocks. Every output row is computed the same way whichever
// part it falls in (the ring only caches pair rows). Not a template on the output stage (it is
// called once per output row and block, through a function pointer): one walker per input type.
using dw512_row_fn = void (*)(const void* ctx, std::int64_t b, int nch, std::int64_t n, std::int64_t oy, int phase, bool half,
                              const std::int16_t* const* rows);

template <class I>
void dw512_walk(const dw512_packed_weights& pw, const dw512_geometry& geo, const I* zero_row, const conv_geometry& g, std::int64_t OC,
                std::int32_t in_zero_point, const dw_source<I>& src, std::int64_t* tags, std::int16_t* ring, const std::int16_t** rows,
                std::int64_t r0, std::int64_t r1, dw512_row_fn row, const void* ctx) {
  const std::int64_t np = geo.np, dh = g.dilation_h, width = geo.width, x_lo = geo.x_lo, x_hi = geo.x_hi;
  const std::int64_t first = geo.first * src.sw;
  const std::int32_t offset = std::is_same<I, std::uint8_t>::value ? 128 : 0;
  const auto pad = static_cast<std::int16_t>(in_zero_point - offset);
  for (std::int64_t n = r0 / g.OH; n * g.OH < r1; ++n) {
    const std::int64_t oy_lo = std::max<std::int64_t>(0, r0 - n * g.OH), oy_hi = std::min(g.OH, r1 - n * g.OH);
    const I* image = src.base + n * src.sn;
    std::fill(tags, tags + pw.blocks * geo.slots, INT64_MIN);
    for (std::int64_t oy0 = oy_lo; oy0 < oy_hi; oy0 += geo.band)
      for (std::int64_t b = 0; b < pw.blocks; ++b) {
        const std::int64_t c0 = b * dw512_block;
        const int nch = static_cast<int>(std::min<std::int64_t>(dw512_block, OC - c0));
        const bool half = nch <= dw512_block / 2;  // one vector a pixel
        const auto row_at = [&](std::int64_t iy, std::int64_t* step) {
          const bool in = iy >= 0 && iy < g.H && x_hi > x_lo;
          *step = in ? src.sw : 0;
          return in ? image + iy * src.sh + first + c0 : zero_row + c0;
        };
        for (std::int64_t oy = oy0; oy < std::min(oy_hi, oy0 + geo.band); ++oy) {
          for (std::int64_t q = 0; q < np; ++q) {
            const std::size_t i = static_cast<std::size_t>(oy * np + q);
            const std::int64_t slot = geo.slot[i], top = geo.top[i];
            std::int64_t& tag = tags[b * geo.slots + slot];
            std::int16_t* dst = ring + b * geo.ring_size + slot * geo.slot_size;
            if (tag != top) {
              std::int64_t ts = 0, bs = 0;
              const I* tr = row_at(top, &ts);
              const I* br = row_at(top + dh, &bs);
              if (half)
                dw512_pair_row<true>(dst, width, x_lo, x_hi, tr, ts, br, bs, nch, pad);
              else
                dw512_pair_row<false>(dst, width, x_lo, x_hi, tr, ts, br, bs, nch, pad);
              tag = top;
            }
            rows[q] = dst;
          }
          row(ctx, b, nch, n, oy, geo.phase[static_cast<std::size_t>(oy)], half, rows);
        }
      }
  }
}

// dw512_walk with the kernel for KT taps and the output stage stage_for(b, nch, n, oy) returns;
// row_done(b, nch, n, oy) follows each row.
template <int KT, class I, class W, class O, class StageFor, class RowDone>
void dw512_rows(const dw_prepared<I, W, O>& pr, const depthwise_problem<I, W, O>& p, const dw_source<I>& src,
                const typename dw_prepared<I, W, O>::part_memory& m, std::int64_t r0, std::int64_t r1, StageFor&& stage_for,
                RowDone&& row_done) {
  constexpr int KW = KT == 9 ? 3 : KT == 25 ? 5 : 0;
  constexpr int NP = KW > 0 ? static_cast<int>(dw512_pairs(KW)) : 0;
  const conv_geometry& g = p.g;
  const dw512_packed_weights& pw = pr.pw512;
  const std::int64_t np = pr.geo.np;
  const auto row = [&](std::int64_t b, int nch, std::int64_t n, std::int64_t oy, int ph, bool half, const std::int16_t* const* rows) {
    const auto stage = stage_for(b, nch, n, oy);
    if (half)
      dw512_row<KW, NP, true>(g.OW, g.KW, np, rows, g.stride_w, g.dilation_w, pw.at(b, ph), pw.block_start(b), stage);
    else
      dw512_row<KW, NP, false>(g.OW, g.KW, np, rows, g.stride_w, g.dilation_w, pw.at(b, ph), pw.block_start(b), stage);
    row_done(b, nch, n, oy);
  };
  using row_type = decltype(row);
  dw512_walk<I>(
      pw, pr.geo, pr.zero_row.data(), g, p.OC, p.in_zero_point, src, m.tag, m.ring, m.rows, r0, r1,
      [](const void* ctx, std::int64_t b, int nch, std::int64_t n, std::int64_t oy, int ph, bool half, const std::int16_t* const* rows) {
        (*static_cast<const row_type*>(ctx))(b, nch, n, oy, ph, half, rows);
      },
      &row);
}

// AVX-512, output rows [r0, r1): when the output channels are contiguous, the kernels' own
// 16-lane output stages for tflite (usual shifts), the q31 single roundings and fp32 ties to
// even (8-bit outputs), else the AVX2 stage per 256-bit half; otherwise the scalar one.
template <int KT, class I, class W, class O, bool Count = false>
void run_depthwise_avx512(const dw_prepared<I, W, O>& pr, const depthwise_problem<I, W, O>& p, const dw_source<I>& src,
                          unsigned char* mem, std::int64_t r0, std::int64_t r1) {
  const conv_geometry& g = p.g;
  const output_stage& st = p.stage;
  const auto m = pr.carve(mem, g);
  const Layout& ol = p.out.layout();
  const bool contiguous = ol.stride(3) == 1;
  const auto out_at = [&](std::int64_t b, std::int64_t n, std::int64_t oy) {
    return p.out.data() + p.out.offset() + ol(n, oy, std::int64_t{0}, b * dw512_block);
  };
  const auto no_op = [](std::int64_t, int, std::int64_t, std::int64_t) {};
  // Block b's outputs of row (n, oy) for the 16-lane stages.
  const auto stage_out = [&](int acc_bits, std::int64_t b, int nch, std::int64_t n, std::int64_t oy) {
    return dw512_stage_out<O>{acc_bits, st.lo, st.hi, st.zero_point, out_at(b, n, oy), ol.stride(2), nch, p.tally};
  };
  if constexpr (sizeof(O) == 1) {
    // The kernels' own 16-lane stages; make(b, out) forms block b's stage for one output row.
    // These three count for the NPU emulator in its instantiation (Count).
    const auto rows_with = [&](int acc_bits, const auto& make) {
      dw512_rows<KT>(
          pr, p, src, m, r0, r1,
          [&](std::int64_t b, int nch, std::int64_t n, std::int64_t oy) { return make(b, stage_out(acc_bits, b, nch, n, oy)); },
          no_op);
    };
    const auto block = [](std::int64_t b) { return static_cast<std::size_t>(b); };
    if (contiguous && pr.q31_ok)
      return rows_with(pr.q31.acc_bits, [&](std::int64_t b, const dw512_stage_out<O>& o) {
        return dw512_q31_stage<O, Count>{&pr.q31.blocks[block(b)], o};
      });
    if (contiguous && pr.fp32_ok)
      return rows_with(pr.fp32.acc_bits, [&](std::int64_t b, const dw512_stage_out<O>& o) {
        return dw512_fp32_stage<O, Count>{pr.fp32.scale.data() + b * dw512_block, o};
      });
    if (contiguous && pr.single_ok)
      return rows_with(pr.single.acc_bits, [&](std::int64_t b, const dw512_stage_out<O>& o) {
        return dw512_q31_single_stage<O, Count>{&pr.single.blocks[block(b)], pr.single.parity, o};
      });
  }
  if constexpr (!Count) {  // run_depthwise_counting calls it only for the stages above
    if (contiguous && pr.rq_ok) {
      with_requant_stage<O>(pr.rq, [&](auto* tag) {
        using stage = std::remove_pointer_t<decltype(tag)>;
        dw512_rows<KT>(
            pr, p, src, m, r0, r1,
            [&](std::int64_t b, int nch, std::int64_t n, std::int64_t oy) {
              const std::int64_t c0 = b * dw512_block, c1 = nch > dw_block ? c0 + dw_block : c0;
              O* row = out_at(0, n, oy);
              return dw512_halves<stage>{stage{row + c0, ol.stride(2), &pr.rq, c0}, stage{row + c1, ol.stride(2), &pr.rq, c1}, nch};
            },
            no_op);
      });
      return;
    }
    dw512_rows<KT>(
        pr, p, src, m, r0, r1,
        [&](std::int64_t, int nch, std::int64_t, std::int64_t) {
          return dw512_halves<dw_acc_stage>{dw_acc_stage{m.acc, dw512_block}, dw_acc_stage{m.acc + dw_block, dw512_block}, nch};
        },
        [&](std::int64_t b, int nch, std::int64_t n, std::int64_t oy) {
          dw_finish_scalar(p, n, oy, 0, g.OW, b * dw512_block, nch, m.acc, dw512_block);
        });
  }
}
#endif

// Portable, output rows [r0, r1).
template <int KT, class I, class W, class O>
void run_depthwise_portable(const dw_prepared<I, W, O>& pr, const depthwise_problem<I, W, O>& p, const dw_source<I>& src,
                            unsigned char* mem, std::int64_t r0, std::int64_t r1) {
  const conv_geometry& g = p.g;
  const auto m = pr.carve(mem, g);
  const dw_rows16<I, W, O> rows{pr, src, g, m.ind};
  const std::int64_t acc_stride = pr.pw.blocks * dw_block;
  for_each_output_row(g.OH, r0, r1, [&](std::int64_t n, std::int64_t oy) {
    const I* const* ind = rows.row(n, oy);
    for (std::int64_t b = 0; b < pr.pw.blocks; ++b) {
      const std::int64_t c0 = b * dw_block;
      dwconv_row_portable<KT>(g.OW, pr.pw.taps, ind, c0, static_cast<int>(std::min<std::int64_t>(dw_block, p.OC - c0)),
                              pr.pw.block_weights(b), pr.pw.block_start(b), m.acc + c0, acc_stride);
    }
    // The output stage 16 channels at a time (apply_tile_portable: vector code for the common
    // contracts, the reference's for the rest).
    const std::int64_t cs = p.out.layout().stride(3);
    alignas(64) std::int32_t vals[dw_block];
    for (std::int64_t ox = 0; ox < g.OW; ++ox) {
      const std::int64_t off = p.out.offset() + p.out.layout()(n, oy, ox, std::int64_t{0});
      for (std::int64_t c0 = 0; c0 < p.OC; c0 += dw_block) {
        const std::int64_t cols = std::min<std::int64_t>(dw_block, p.OC - c0);
        apply_tile_portable(*pr.tile, m.acc + ox * acc_stride + c0, 1, c0, 0, cols, vals);
        for (std::int64_t j = 0; j < cols; ++j) p.out.store(off + (c0 + j) * cs, static_cast<O>(vals[j]));
      }
    }
  });
}

// The tail of the depthwise kernel names of a family (the level table's depthwise column).
inline const char* dw_family_suffix(kernel_family f) {
  switch (f) {
    case kernel_family::avx512_vnni: return "32c_avx512_vnni";
    case kernel_family::avx2: return "16c_avx2";
    default: break;
  }
  return "16c_portable";
}

template <int KT, class I, class W, class O>
void run_depthwise_part(const dw_prepared<I, W, O>& pr, const depthwise_problem<I, W, O>& p, const dw_source<I>& src,
                        unsigned char* mem, std::int64_t r0, std::int64_t r1) {
#if defined(NPUQ_ARCH_X86_64)
  if (pr.family == kernel_family::avx512_vnni) return run_depthwise_avx512<KT>(pr, p, src, mem, r0, r1);
  if (pr.family == kernel_family::avx2) return run_depthwise_avx2<KT>(pr, p, src, mem, r0, r1);
#endif
  run_depthwise_portable<KT>(pr, p, src, mem, r0, r1);
}

// The AVX-512 kernels keep, per block of 32 channels, a ring of padded input rows ((OW - 1) *
// stride_w + (KW - 1) * dilation_w + 1 columns, pairs of rows times dilation_h deep). Valid but
// extreme geometries (strides, dilations or padding in the millions) would need a ring past
// 64 MiB or overflow int64 sizing it: those run the AVX2 kernels, which read rows in place.
inline bool dw512_ring_fits(const conv_geometry& g, std::int64_t channels) {
  constexpr std::int64_t max_bytes = std::int64_t{64} << 20;
  std::int64_t width = 0, slots = 0, bytes = 0, band = 0;
  const std::int64_t blocks = (channels + 31) / 32;
  return checked_mul_add(g.OW - 1, g.stride_w, 1, &width) && checked_mul_add(g.KW - 1, g.dilation_w, width, &width) &&
         checked_mul((g.KH + 1) / 2, g.dilation_h, &slots) && checked_mul(slots, width, &bytes) && checked_mul(bytes, 128, &bytes) &&
         checked_mul(bytes, blocks, &bytes) && bytes <= max_bytes && checked_mul(g.stride_h, g.W, &band) &&
         checked_mul(band, channels, &band);
}

// The kernel family a level runs this geometry with.
inline kernel_family dw_family(isa level, const conv_geometry& g, std::int64_t channels) {
  const kernel_family f = level_kernels(level).depthwise;
  return f == kernel_family::avx512_vnni && !dw512_ring_fits(g, channels) ? kernel_family::avx2 : f;
}

// Working memory of depthwise runs: a region per part and the contiguous copy of the input. It
// grows when a run needs more and never shrinks, so a plan sized at creation runs without
// allocating.
template <class I>
struct dw_scratch {
  driver_scratch parts;
  std::vector<I> input;

  template <class W, class O>
  void reserve(const dw_prepared<I, W, O>& pr, const depthwise_problem<I, W, O>& p, int threads) {
    parts.reserve(pr.parts(threads, p.g, p.OC), pr.part_bytes);
    if (dw_source<I>::copies(p)) input.reserve(static_cast<std::size_t>(p.g.N * p.g.H * p.g.W * p.OC));
  }
};

// Runs a prepared depthwise op on up to `threads` threads, split by whole output rows.
template <class I, class W, class O>
void run_depthwise_on(int threads, const dw_prepared<I, W, O>& pr, const depthwise_problem<I, W, O>& p, dw_scratch<I>& s) {
  const std::int64_t rows = p.g.N * p.g.OH;
  if (rows == 0 || p.g.OW == 0 || p.OC == 0) return;
  const dw_source<I> src(p, s.input);
  const std::int64_t parts = pr.parts(threads, p.g, p.OC);
  s.parts.reserve(parts, pr.part_bytes);
  detail::parallel_parts(threads, parts, [&](std::int64_t part) {
    const std::int64_t r0 = part * (rows / parts) + std::min(part, rows % parts);
    const std::int64_t r1 = r0 + rows / parts + (part < rows % parts ? 1 : 0);
    unsigned char* mem = s.parts.part(part);
    switch (pr.kt) {
      case 9: return run_depthwise_part<9>(pr, p, src, mem, r0, r1);
      case 25: return run_depthwise_part<25>(pr, p, src, mem, r0, r1);
      default: return run_depthwise_part<0>(pr, p, src, mem, r0, r1);
    }
  });
}

// The name of the kernel a prepared op runs, e.g. "dwconv_u8u8_3x3_32c_avx512_vnni".
template <class I, class W, class O>
std::string dw_kernel_name(const dw_prepared<I, W, O>& pr) {
  const char* shape = pr.kt == 9 ? "3x3" : pr.kt == 25 ? "5x5" : "kxk";
  return std::string("dwconv_") + type_code(element_traits<I>::type) + type_code(element_traits<W>::type) + "_" + shape + "_" +
         dw_family_suffix(pr.family);
}

template <class I, class W, class O>
void run_depthwise(const simd_backend& be, const depthwise_problem<I, W, O>& p) {
  const dw_prepared<I, W, O> pr(dw_family(be.level(), p.g, p.OC), p);
  dw_scratch<I> s;
  run_depthwise_on(be.thread_count(), pr, p, s);
  detail::simd_last_kernel_storage() = dw_kernel_name(pr);
}

// The NPU emulator's entry (depthwise_problem::tally): runs p on one thread with the AVX-512
// output stages that count what an NPU's PPU counts, when p's level, geometry and contract have
// them (8-bit output with consecutive channels, tflite double rounding with usual shifts, any q31
// single rounding or fp32 ties to even, 32-bit wrap-around). Returns false, writing nothing, otherwise. Its own
// instantiations: the backend's kernels do not carry the counting.
template <class I, class W, class O>
bool run_depthwise_counting(isa level, const depthwise_problem<I, W, O>& p) {
#if defined(NPUQ_ARCH_X86_64)
  if constexpr (sizeof(O) == 1) {
    if (p.tally == nullptr || !wraps_within_32_bits(p.stage.numerics) || !window_fits_kernels(p.g.KH, p.g.KW, p.OC) ||
        p.out.layout().stride(3) != 1 || dw_family(level, p.g, p.OC) != kernel_family::avx512_vnni)
      return false;
    const dw_prepared<I, W, O> pr(kernel_family::avx512_vnni, p);
    if (!pr.q31_ok && !pr.fp32_ok && !pr.single_ok) return false;
    const std::int64_t rows = p.g.N * p.g.OH;
    p.tally->counted = true;
    if (rows == 0 || p.g.OW == 0 || p.OC == 0) return true;
    dw_scratch<I> s;
    const dw_source<I> src(p, s.input);
    s.parts.reserve(1, pr.part_bytes);
    unsigned char* mem = s.parts.part(0);
    switch (pr.kt) {
      case 9: run_depthwise_avx512<9, I, W, O, true>(pr, p, src, mem, 0, rows); break;
      case 25: run_depthwise_avx512<25, I, W, O, true>(pr, p, src, mem, 0, rows); break;
      default: run_depthwise_avx512<0, I, W, O, true>(pr, p, src, mem, 0, rows); break;
    }
    detail::simd_last_kernel_storage() = dw_kernel_name(pr);
    return true;
  }
#endif
  (void)level, (void)p;
  return false;
}

}  // namespace simd_detail

template <class I, class W, class O>
status execute(const simd_backend& be, const depthwise_problem<I, W, O>& p) {
  if (!simd_detail::wraps_within_32_bits(p.stage.numerics) || !simd_detail::window_fits_kernels(p.g.KH, p.g.KW, p.OC)) {
    NPUQ_RETURN_IF_ERROR(execute(scalar, p));
    detail::simd_last_kernel_storage() = "dwconv_reference";
    return {};
  }
  simd_detail::run_depthwise(be, p);
  return {};
}

}  // namespace npuq
