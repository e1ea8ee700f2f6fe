// Sliding-window geometry shared by conv2d and depthwise conv2d: stride, dilation, padding,
// and the output size they imply.
//
// Padding is explicit (top, bottom, left, right), or SAME / VALID as TensorFlow defines them:
// SAME gives ceil(H / stride) output rows and puts the odd padding row at the bottom; VALID pads
// nothing. Padded taps contribute nothing to the sum, which is the same as reading the input
// zero point there (NUMERICS.md section 3).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "npuq/core/checked.hpp"
#include "npuq/core/status.hpp"

namespace npuq {

enum class padding_kind : std::uint8_t { explicit_pad, same, valid };

struct padding_spec {
  padding_kind kind = padding_kind::explicit_pad;
  std::int64_t top = 0, bottom = 0, left = 0, right = 0;

  static padding_spec same() { return {padding_kind::same, 0, 0, 0, 0}; }
  static padding_spec valid() { return {padding_kind::valid, 0, 0, 0, 0}; }
  static padding_spec symmetric(std::int64_t p) { return {padding_kind::explicit_pad, p, p, p, p}; }
  static padding_spec explicit_(std::int64_t top, std::int64_t bottom, std::int64_t left, std::int64_t right) {
    return {padding_kind::explicit_pad, top, bottom, left, right};
  }
};

struct window_params {
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t dilation_h = 1, dilation_w = 1;
  padding_spec padding{};
};

// Resolved geometry of one sliding-window op (NHWC input, KH x KW window).
struct conv_geometry {
  std::int64_t N = 0, H = 0, W = 0, C = 0;
  std::int64_t KH = 0, KW = 0;
  std::int64_t OH = 0, OW = 0;
  std::int64_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
  std::int64_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
};

// The taps k in [*lo, *hi) of one window axis that land inside the image: input index
// first + k * dil in [0, extent) for k in [0, taps). `first` is the input index of tap 0 (negative
// in the leading padding). Nothing overflows for a resolved geometry: -first <= leading padding,
// and extent - first <= extent + leading padding <= the padded extent, which fits in int64.
inline void taps_inside(std::int64_t first, std::int64_t dil, std::int64_t taps, std::int64_t extent, std::int64_t* lo,
                        std::int64_t* hi) {
  *lo = first >= 0 ? 0 : ceil_div(-first, dil);
  *hi = first >= extent ? 0 : std::min(taps, ceil_div(extent - first, dil));
}

// Calls f(ky, kx, iy, ix) for every tap of output pixel (oy, ox) that lands inside the image,
// in (ky, kx) order. Padded taps are skipped: they contribute (in_zp - in_zp) * w = 0. The loops
// visit only the taps inside the image, so a window of 2^62 taps over padding costs what the
// image holds, not what the kernel spans. With no input channels (C = 0) a tap holds nothing and
// none is visited; nor is any row when no column of the window lands inside (libFuzzer
// fuzz_conv2d: 2^62 kernel rows over an image of width 0 ran for half an hour).
template <class F>
void for_each_tap(const conv_geometry& g, std::int64_t oy, std::int64_t ox, F&& f) {
  const std::int64_t y0 = oy * g.stride_h - g.pad_top, x0 = ox * g.stride_w - g.pad_left;
  std::int64_t ky_lo = 0, ky_hi = 0, kx_lo = 0, kx_hi = 0;
  taps_inside(y0, g.dilation_h, g.KH, g.H, &ky_lo, &ky_hi);
  taps_inside(x0, g.dilation_w, g.KW, g.W, &kx_lo, &kx_hi);
  if (g.C == 0 || kx_lo >= kx_hi) return;
  for (std::int64_t ky = ky_lo; ky < ky_hi; ++ky)
    for (std::int64_t kx = kx_lo; kx < kx_hi; ++kx) f(ky, kx, y0 + ky * g.dilation_h, x0 + kx * g.dilation_w);
}

namespace detail {

// Output extent and leading padding along one spatial axis. Every step is checked (any int64
// stride, dilation or padding is accepted as input), and errors quote the values the caller gave.
inline status resolve_axis(const char* axis, std::int64_t in, std::int64_t k, std::int64_t stride, std::int64_t dil,
                           const padding_spec& pad, std::int64_t pad_lo, std::int64_t pad_hi, std::int64_t* out,
                           std::int64_t* lo, std::int64_t* hi) {
  std::int64_t eff = 0;  // extent of the dilated window, (k - 1) * dil + 1
  if (!checked_mul_add(k - 1, dil, 1, &eff))
    return {errc::invalid_argument, std::string("dilation: ") + std::to_string(dil) + " along " + axis + " with kernel extent " +
                                        std::to_string(k) + " gives a window wider than 2^63 - 1"};
  std::int64_t padded = 0;
  switch (pad.kind) {
    case padding_kind::same: {
      *out = in / stride + (in % stride != 0 ? 1 : 0);  // ceil(in / stride) without overflow
      std::int64_t total = 0;
      if (*out > 0 && (!checked_mul_add(*out - 1, stride, eff, &total) || !checked_sub(total, in, &total)))
        return {errc::invalid_argument, std::string("padding: SAME padding along ") + axis + " with stride " + std::to_string(stride) +
                                            " and dilation " + std::to_string(dil) + " overflows int64"};
      total = std::max<std::int64_t>(total, 0);
      *lo = total / 2;
      *hi = total - *lo;
      return {};
    }
    case padding_kind::valid: *lo = *hi = 0; break;
    case padding_kind::explicit_pad:
      if (pad_lo < 0 || pad_hi < 0)
        return {errc::invalid_argument, std::string("padding: negative padding along ") + axis};
      *lo = pad_lo;
      *hi = pad_hi;
      break;
  }
  if (!checked_add(in, *lo, &padded) || !checked_add(padded, *hi, &padded))
    return {errc::invalid_argument, std::string("padding: ") + axis + " extent " + std::to_string(in) + " plus padding " +
                                        std::to_string(*lo) + " + " + std::to_string(*hi) + " exceeds 2^63 - 1"};
  if (padded < eff)
    return {errc::invalid_shape, std::string("input: ") + axis + " extent " + std::to_string(in) + " plus padding " +
                                     std::to_string(padded - in) + " is smaller than the dilated kernel extent " +
                                     std::to_string(eff)};
  *out = (padded - eff) / stride + 1;
  return {};
}

inline status resolve_geometry(const window_params& w, conv_geometry* g) {
  if (w.stride_h < 1 || w.stride_w < 1)
    return {errc::invalid_argument, "stride: must be >= 1, got " + std::to_string(w.stride_h) + "x" + std::to_string(w.stride_w)};
  if (w.dilation_h < 1 || w.dilation_w < 1)
    return {errc::invalid_argument,
            "dilation: must be >= 1, got " + std::to_string(w.dilation_h) + "x" + std::to_string(w.dilation_w)};
  if (g->KH < 1 || g->KW < 1) return {errc::invalid_shape, "weights: kernel extent must be >= 1"};
  g->stride_h = w.stride_h;
  g->stride_w = w.stride_w;
  g->dilation_h = w.dilation_h;
  g->dilation_w = w.dilation_w;
  NPUQ_RETURN_IF_ERROR(resolve_axis("height", g->H, g->KH, w.stride_h, w.dilation_h, w.padding, w.padding.top, w.padding.bottom,
                                    &g->OH, &g->pad_top, &g->pad_bottom));
  NPUQ_RETURN_IF_ERROR(resolve_axis("width", g->W, g->KW, w.stride_w, w.dilation_w, w.padding, w.padding.left, w.padding.right,
                                    &g->OW, &g->pad_left, &g->pad_right));
  return {};
}

}  // namespace detail
}  // namespace npuq
