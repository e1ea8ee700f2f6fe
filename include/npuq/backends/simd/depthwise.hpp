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
// own 16-lane stages for tflite (usual shifts) and the fp32 roundings vrndscaleps has, else the
// AVX2 one (x86/dwconv_avx2.hpp); otherwise (or for profiles without a vector stage)
// finish_wrapped per element. Saturating or wider accumulators run the reference
// ("dwconv_reference"). Kernel names: dwconv_<in><w>_<3x3|5x5|kxk>_<16c_portable|16c_avx2|
// 32c_avx512_vnni>.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/backends/scalar/conv2d.hpp"
#include "npuq/backends/simd/gemm.hpp"
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

// The input as [N, H, W, C*M] with contiguous channels (the view itself, or a copy), and a row
// of input zero points for padded taps.
template <class I>
struct dw_source {
  const I* base = nullptr;
  std::int64_t sn = 0, sh = 0, sw = 0;
  std::vector<I> expanded;
  std::vector<I> zero_row;

  template <class W, class O>
  explicit dw_source(const depthwise_problem<I, W, O>& p) {
    const conv_geometry& g = p.g;
    const std::int64_t OC = p.OC, M = p.multiplier;
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

// What the 16c kernels share between the rows of one call: packed weights, the input, and the
// indirection buffer of the current row.
template <class I, class W, class O>
struct dw_call {
  const depthwise_problem<I, W, O>& p;
  const dw_source<I>& src;
  dw_packed_weights pw;
  std::vector<std::int64_t> xoff;  // horizontal offset of every (ox, kx), or -1 for padding
  std::vector<const I*> ind;       // OW x taps pointers

  dw_call(const depthwise_problem<I, W, O>& problem, const dw_source<I>& source, const dw_taps& taps) : p(problem), src(source) {
    const conv_geometry& g = p.g;
    pw.pack(taps);
    xoff.resize(static_cast<std::size_t>(g.OW * g.KW));
    for (std::int64_t ox = 0; ox < g.OW; ++ox)
      for (std::int64_t kx = 0; kx < g.KW; ++kx) {
        const std::int64_t ix = ox * g.stride_w - g.pad_left + kx * g.dilation_w;
        xoff[static_cast<std::size_t>(ox * g.KW + kx)] = ix >= 0 && ix < g.W ? ix * src.sw : -1;
      }
    ind.resize(static_cast<std::size_t>(g.OW * pw.taps));
  }

  // Fills the indirection buffer for output row (n, oy).
  const I* const* row(std::int64_t n, std::int64_t oy) {
    const conv_geometry& g = p.g;
    const std::int64_t T = pw.taps;
    for (std::int64_t ky = 0; ky < g.KH; ++ky) {
      const std::int64_t iy = oy * g.stride_h - g.pad_top + ky * g.dilation_h;
      const I* r = iy >= 0 && iy < g.H ? src.base + n * src.sn + iy * src.sh : nullptr;
      const std::int64_t* xo = xoff.data();
      const I** dst = ind.data() + ky * g.KW;
      for (std::int64_t ox = 0; ox < g.OW; ++ox, xo += g.KW, dst += T)
        for (std::int64_t kx = 0; kx < g.KW; ++kx) dst[kx] = r != nullptr && xo[kx] >= 0 ? r + xo[kx] : src.zero_row.data();
    }
    return ind.data();
  }

  // Scalar output stage of row (n, oy) from int32 sums in acc (OW x acc_stride).
  void finish_row(std::int64_t n, std::int64_t oy, const std::int32_t* acc, std::int64_t acc_stride) const {
    dw_finish_scalar(p, n, oy, 0, p.g.OW, 0, p.OC, acc, acc_stride);
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

constexpr std::int64_t floor_div(std::int64_t a, std::int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0) ? 1 : 0); }

// AVX-512: for each image, band of output rows and block of 32 channels, the band's rows top to
// bottom: the row pairs a row reads (built into the block's small ring when not already there),
// then the kernel with the output stage stage_for(b, nch, n, oy) returns; row_done(b, nch, n,
// oy) follows each. A block's ring stays in L1 across the rows of a band, and a band's input
// rows (about 256 KiB) stay in L2 across its blocks.
template <int KT, class I, class W, class O, class StageFor, class RowDone>
void dw512_rows(const depthwise_problem<I, W, O>& p, const dw_source<I>& src, const dw512_packed_weights& pw, StageFor&& stage_for,
                RowDone&& row_done) {
  constexpr int KW = KT == 9 ? 3 : KT == 25 ? 5 : 0;
  constexpr int NP = KW > 0 ? static_cast<int>(dw512_pairs(KW)) : 0;
  const conv_geometry& g = p.g;
  const std::int64_t np = pw.pairs, dh = g.dilation_h;
  const std::int64_t width = (g.OW - 1) * g.stride_w + (g.KW - 1) * g.dilation_w + 1;  // padded columns a row reads
  const std::int64_t x_lo = std::min(g.pad_left, width), x_hi = std::max(x_lo, std::min(g.pad_left + g.W, width));
  // Offset of input column x_lo (no in-image columns: unused, and pad_left may be any int64).
  const std::int64_t first = x_hi > x_lo ? (x_lo - g.pad_left) * src.sw : 0;
  const std::int32_t offset = std::is_same<I, std::uint8_t>::value ? 128 : 0;
  const auto pad = static_cast<std::int16_t>(p.in_zero_point - offset);
  // Rows of one dilation chain pair up as (chain index 2k, 2k + 1); phase 1: the window starts
  // on a pair's bottom row. Per output row: its phase, and each pair's top row and ring slot
  // (the pairs one window reads land in distinct slots).
  const std::int64_t slots = np * dh, slot_size = width * 64;
  std::vector<int> phase(static_cast<std::size_t>(g.OH));
  std::vector<std::int64_t> top(static_cast<std::size_t>(g.OH * np)), slot(static_cast<std::size_t>(g.OH * np));
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
  // One ring per block (64-byte aligned), and the top row each slot holds.
  const std::int64_t ring_size = slots * slot_size;
  const std::unique_ptr<std::int16_t[]> ring_store(new std::int16_t[static_cast<std::size_t>(pw.blocks * ring_size + 32)]);
  std::int16_t* const ring = ring_store.get() + (64 - reinterpret_cast<std::uintptr_t>(ring_store.get()) % 64) % 64 / 2;
  std::vector<std::int64_t> tag(static_cast<std::size_t>(pw.blocks * slots));
  std::vector<const std::int16_t*> rows(static_cast<std::size_t>(np));
  const std::int64_t band = std::max<std::int64_t>(1, (std::int64_t{256} << 10) / std::max<std::int64_t>(1, g.stride_h * g.W * p.OC));
  for (std::int64_t n = 0; n < g.N; ++n) {
    const I* image = src.base + n * src.sn;
    std::fill(tag.begin(), tag.end(), INT64_MIN);
    for (std::int64_t oy0 = 0; oy0 < g.OH; oy0 += band)
      for (std::int64_t b = 0; b < pw.blocks; ++b) {
        const std::int64_t c0 = b * dw512_block;
        const int nch = static_cast<int>(std::min<std::int64_t>(dw512_block, p.OC - c0));
        const bool half = nch <= dw512_block / 2;  // one vector a pixel
        const auto row_at = [&](std::int64_t iy, std::int64_t* step) {
          const bool in = iy >= 0 && iy < g.H && x_hi > x_lo;
          *step = in ? src.sw : 0;
          return in ? image + iy * src.sh + first + c0 : src.zero_row.data() + c0;
        };
        for (std::int64_t oy = oy0; oy < std::min(g.OH, oy0 + band); ++oy) {
          const int ph = phase[static_cast<std::size_t>(oy)];
          for (std::int64_t q = 0; q < np; ++q) {
            const std::size_t i = static_cast<std::size_t>(oy * np + q);
            const std::size_t t = static_cast<std::size_t>(b * slots + slot[i]);
            std::int16_t* dst = ring + b * ring_size + slot[i] * slot_size;
            if (tag[t] != top[i]) {
              std::int64_t ts = 0, bs = 0;
              const I* tr = row_at(top[i], &ts);
              const I* br = row_at(top[i] + dh, &bs);
              // The next pair of this chain starts 2 * dh rows down (prefetched if both rows are real).
              const std::int64_t ahead = ts != 0 && bs != 0 && top[i] + 3 * dh < g.H ? 2 * dh * src.sh : 0;
              if (half)
                dw512_pair_row<true>(dst, width, x_lo, x_hi, tr, ts, br, bs, nch, pad, ahead);
              else
                dw512_pair_row<false>(dst, width, x_lo, x_hi, tr, ts, br, bs, nch, pad, ahead);
              tag[t] = top[i];
            }
            rows[static_cast<std::size_t>(q)] = dst;
          }
          const auto stage = stage_for(b, nch, n, oy);
          if (half)
            dw512_row<KW, NP, true>(g.OW, g.KW, np, rows.data(), g.stride_w, g.dilation_w, pw.at(b, ph), pw.block_start(b), stage);
          else
            dw512_row<KW, NP, false>(g.OW, g.KW, np, rows.data(), g.stride_w, g.dilation_w, pw.at(b, ph), pw.block_start(b), stage);
          row_done(b, nch, n, oy);
        }
      }
  }
}

// Calls f(std::bool_constant<a>{}, std::bool_constant<b>{}).
template <class F>
void with_flags(bool a, bool b, F&& f) {
  if (a) {
    if (b)
      f(std::true_type{}, std::true_type{});
    else
      f(std::true_type{}, std::false_type{});
  } else {
    if (b)
      f(std::false_type{}, std::true_type{});
    else
      f(std::false_type{}, std::false_type{});
  }
}

// AVX-512: when the output channels are contiguous, the kernels' own 16-lane output stages for
// tflite (usual shifts) and the fp32 roundings vrndscaleps has, else the AVX2 stage per 256-bit
// half; otherwise the scalar one.
template <int KT, class I, class W, class O>
void run_depthwise_avx512(const depthwise_problem<I, W, O>& p, const dw_source<I>& src, const dw_taps& taps) {
  const conv_geometry& g = p.g;
  const output_stage& st = p.stage;
  dw512_packed_weights pw;
  pw.pack(p.OC, g.KH, g.KW, taps.v.data(), taps.sum.data(), taps.start.data(), std::is_same<I, std::uint8_t>::value ? 128 : 0);
  const Layout& ol = p.out.layout();
  const bool contiguous = ol.stride(3) == 1;
  const auto out_at = [&](std::int64_t b, std::int64_t n, std::int64_t oy) {
    return p.out.data() + p.out.offset() + ol(n, oy, std::int64_t{0}, b * dw512_block);
  };
  const auto no_op = [](std::int64_t, int, std::int64_t, std::int64_t) {};
  if constexpr (sizeof(O) == 1) {
    dw512_q31_table q31;
    if (contiguous && q31.build(st, p.OC)) {
      const bool clamp = st.lo != element_traits<O>::min || st.hi != element_traits<O>::max;
      with_flags(q31.acc_bits < 32, clamp, [&](auto wrap, auto clamped) {
        using stage = dw512_q31_stage<O, decltype(wrap)::value, decltype(clamped)::value>;
        dw512_rows<KT>(
            p, src, pw,
            [&](std::int64_t b, int nch, std::int64_t n, std::int64_t oy) {
              return stage{&q31.blocks[static_cast<std::size_t>(b)], q31.acc_bits, st.lo, st.hi, out_at(b, n, oy), ol.stride(2), nch};
            },
            no_op);
      });
      return;
    }
    dw512_fp32_table fp32;
    if (contiguous && fp32.build(st, p.OC)) {
      // Only a lower bound above the type's minimum needs its own clamp (see dw512_fp32_stage).
      with_flags(fp32.acc_bits < 32, st.lo != element_traits<O>::min, [&](auto wrap, auto clamped) {
        const auto run = [&](auto mode) {
          using stage = dw512_fp32_stage<O, decltype(mode)::value, decltype(wrap)::value, decltype(clamped)::value>;
          dw512_rows<KT>(
              p, src, pw,
              [&](std::int64_t b, int nch, std::int64_t n, std::int64_t oy) {
                const float* scale = fp32.scale.data() + b * dw512_block;
                return stage{scale, fp32.acc_bits, st.lo, st.hi, st.zero_point, out_at(b, n, oy), ol.stride(2), nch};
              },
              no_op);
        };
        if (fp32.mode == _MM_FROUND_TO_NEAREST_INT)
          run(std::integral_constant<int, _MM_FROUND_TO_NEAREST_INT>{});
        else if (fp32.mode == _MM_FROUND_TO_NEG_INF)
          run(std::integral_constant<int, _MM_FROUND_TO_NEG_INF>{});
        else
          run(std::integral_constant<int, _MM_FROUND_TO_ZERO>{});
      });
      return;
    }
  }
  dw_requant_table rq;
  if (contiguous && rq.build(st, p.OC)) {
    with_requant_stage<O>(rq, [&](auto* tag) {
      using stage = std::remove_pointer_t<decltype(tag)>;
      dw512_rows<KT>(
          p, src, pw,
          [&](std::int64_t b, int nch, std::int64_t n, std::int64_t oy) {
            const std::int64_t c0 = b * dw512_block, c1 = nch > dw_block ? c0 + dw_block : c0;
            O* row = out_at(0, n, oy);
            return dw512_halves<stage>{stage{row + c0, ol.stride(2), &rq, c0}, stage{row + c1, ol.stride(2), &rq, c1}, nch};
          },
          no_op);
    });
    return;
  }
  std::vector<std::int32_t> sums(static_cast<std::size_t>(dw512_block * g.OW));
  dw512_rows<KT>(
      p, src, pw,
      [&](std::int64_t, int nch, std::int64_t, std::int64_t) {
        return dw512_halves<dw_acc_stage>{dw_acc_stage{sums.data(), dw512_block}, dw_acc_stage{sums.data() + dw_block, dw512_block}, nch};
      },
      [&](std::int64_t b, int nch, std::int64_t n, std::int64_t oy) {
        dw_finish_scalar(p, n, oy, 0, g.OW, b * dw512_block, nch, sums.data(), dw512_block);
      });
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
void run_depthwise_family(kernel_family f, const depthwise_problem<I, W, O>& p) {
  const dw_taps taps(p);
  const dw_source<I> src(p);
#if defined(NPUQ_ARCH_X86_64)
  if (f == kernel_family::avx512_vnni) return run_depthwise_avx512<KT>(p, src, taps);
  dw_call<I, W, O> d(p, src, taps);
  if (f == kernel_family::avx2) return run_depthwise_avx2<KT>(d);
#else
  dw_call<I, W, O> d(p, src, taps);
#endif
  (void)f;
  run_depthwise_portable<KT>(d);
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

template <class I, class W, class O>
void run_depthwise(const simd_backend& be, const depthwise_problem<I, W, O>& p) {
  kernel_family f = level_kernels(be.level()).depthwise;
  if (f == kernel_family::avx512_vnni && !dw512_ring_fits(p.g, p.OC)) f = kernel_family::avx2;
  const char* shape = "kxk";
  if (p.g.KH == 3 && p.g.KW == 3) {
    shape = "3x3";
    run_depthwise_family<9>(f, p);
  } else if (p.g.KH == 5 && p.g.KW == 5) {
    shape = "5x5";
    run_depthwise_family<25>(f, p);
  } else {
    run_depthwise_family<0>(f, p);
  }
  detail::simd_last_kernel_storage() =
      std::string("dwconv_") + type_code(p.in.type()) + type_code(p.w.type()) + "_" + shape + "_" + dw_family_suffix(f);
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
