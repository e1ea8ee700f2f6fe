// Seeded fuzz driver for the conv2d family (conv2d, depthwise conv2d) on scalar, simd and the NPU
// emulator (issue 14). A plain driver, not libFuzzer: it draws calls from a seeded generator that
// mixes valid shapes with adversarial ones (extents and strides up to INT64_MAX, zero strides,
// offsets past the buffer, huge padding and dilation, zero points and scales out of range,
// outputs that alias the input, weights or bias) and checks each as fuzz_support.hpp says.
// Usage: fuzz_conv2d [seconds] [seed]. Prints the calls made and how many succeeded; exits 1 on
// the first finding, printing the seed and the call number that reproduce it.
#include <algorithm>
#include <cstdint>
#include <string>

#include "fuzz_support.hpp"

using namespace npuq;
using namespace npuq::fuzz;

namespace {

// One fuzzed call of conv2d (depthwise = false) or depthwise conv2d, int8 in / weights / out.
void one_call(gen& g, driver& d) {
  const bool depthwise = (d.call & 1) != 0;
  const std::int64_t N = g.extent(0, 2), H = g.extent(0, 7), W = g.extent(0, 7), C = g.extent(1, 6);
  const std::int64_t KH = g.extent(1, 3), KW = g.extent(1, 3);
  const std::int64_t M = depthwise ? g.extent(1, 2) : 1;
  const std::int64_t OC = depthwise ? (C >= 0 && C <= 64 && M <= 64 ? C * M : int64_max) : g.extent(1, 6);
  window_params wp;
  wp.stride_h = g.extent(1, 3);
  wp.stride_w = g.extent(1, 3);
  wp.dilation_h = g.extent(1, 2);
  wp.dilation_w = g.extent(1, 2);
  const int pk = static_cast<int>(g.in(0, 2));
  wp.padding = pk == 0 ? padding_spec::same() : (pk == 1 ? padding_spec::valid()
                                                         : padding_spec::explicit_(g.extent(0, 2), g.extent(0, 2), g.extent(0, 2), g.extent(0, 2)));
  // The output shape the geometry implies (when it resolves); otherwise a random one.
  conv_geometry geo;
  geo.N = N; geo.H = H; geo.W = W; geo.C = C; geo.KH = KH; geo.KW = KW;
  std::int64_t OH = g.extent(0, 7), OW = g.extent(0, 7);
  const bool resolved = N >= 0 && H >= 0 && W >= 0 && detail::resolve_geometry(wp, &geo).ok();
  // The reference visits only the taps inside the image, and simd runs it for windows too large
  // to pack, so a kernel of 2^62 taps over padding is as cheap as the image. Still skipped: the
  // genuinely giant reductions (an image of 2^62 rows through a zero stride) and, for the
  // windows simd packs (at most 2^22 values), a gather of every tap of many pixels.
  if (resolved) {
    const double pixels = double(N) * double(geo.OH) * double(geo.OW), per_tap = double(depthwise ? 1 : std::max<std::int64_t>(C, 1));
    const double inside = double(std::min(KH, H)) * double(std::min(KW, W)) * per_tap;
    const double packed = simd_detail::window_fits_kernels(KH, KW, depthwise ? OC : C) ? double(KH) * double(KW) * per_tap : 0.0;
    if (pixels * double(OC) * std::max(inside, packed) > 4e6) return;
  }
  if (resolved && !g.chance(5)) {
    OH = geo.OH;
    OW = geo.OW;
  }
  if (OH > 64 || OW > 64 || N > 4 || C > 64 || OC > 64) return;  // the generator asked for an output it cannot hold
  pool pin(4096), pw(4096), pb(512), pout(8192);
  pin.fill(g);
  pw.fill(g);
  pb.fill(g);
  const std::int64_t in_dims[4] = {N, H, W, C};
  const std::int64_t w_dims[4] = {OC, KH, KW, C};
  const std::int64_t dw_dims[3] = {KH, KW, OC};
  const std::int64_t out_dims[4] = {N, OH, OW, OC};
  const std::int64_t bias_dims[1] = {OC};
  TensorView<const std::int8_t> in = random_view<const std::int8_t>(g, pin, in_dims, 4, random_quant(g, 0, 0, -128, 127));
  TensorView<const std::int8_t> w = depthwise ? random_view<const std::int8_t>(g, pw, dw_dims, 3, random_quant(g, OC, 2, -128, 127))
                                              : random_view<const std::int8_t>(g, pw, w_dims, 4, random_quant(g, OC, 0, -128, 127));
  TensorView<const std::int32_t> bias;
  if (g.chance(60)) bias = random_view<const std::int32_t>(g, pb, bias_dims, 1, {});
  // The output: its own buffer, or (sometimes) the input's, the weights' or the bias's.
  const int alias = g.chance(8) ? static_cast<int>(g.in(1, 3)) : 0;
  pool& outp = alias == 1 ? pin : (alias == 2 ? pw : (alias == 3 ? pb : pout));
  if (alias == 0) pout.fill_canary();
  const Quant oq = random_quant(g, 0, 0, -128, 127);
  const TensorView<std::int8_t> out = random_view<std::int8_t>(g, outp, out_dims, 4, oq);

  output_params op;
  const numerics_profile profiles[] = {numerics_profile::tflite(), numerics_profile::tosa_single(), numerics_profile::onnx()};
  op.numerics = profiles[g.in(0, 2)];
  if (g.chance(20)) op.clamp = g.chance(50) ? clamp_spec::relu() : clamp_spec::relu6();

  auto run = [&](const auto& backend) {
    if (depthwise) {
      depthwise_params p;
      static_cast<output_params&>(p) = op;
      static_cast<window_params&>(p) = wp;
      return try_depthwise_conv2d(backend, p, in, w, bias, out);
    }
    conv2d_params p;
    static_cast<output_params&>(p) = op;
    static_cast<window_params&>(p) = wp;
    return try_conv2d(backend, p, in, w, bias, out);
  };
  d.context = describe("in", in) + describe("w", w) + describe("bias", bias) + describe("out", out) + " stride " + std::to_string(wp.stride_h) +
              "x" + std::to_string(wp.stride_w) + " dilation " + std::to_string(wp.dilation_h) + "x" + std::to_string(wp.dilation_w) +
              " padding kind " + std::to_string(pk) + " " + std::to_string(wp.padding.top) + "," + std::to_string(wp.padding.bottom) + "," +
              std::to_string(wp.padding.left) + "," + std::to_string(wp.padding.right);
  const npu::emulator emu = random_emulator(g);
  check_call(d, depthwise ? "depthwise_conv2d" : "conv2d", outp, {&pin, &pw, &pb}, &emu, run);
}

}  // namespace

NPUQ_FUZZ_MAIN("fuzz_conv2d", one_call)
