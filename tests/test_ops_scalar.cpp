// The scalar reference kernels checked against independent formulations of the same contract:
// an im2col GEMM for conv2d, grouped conv for depthwise, per-batch GEMMs for batched GEMM,
// materialised transposes and NCHW copies for strided layouts, and a plain int64 dot product.
// (Data nobody on the team wrote is checked in test_onnx_conformance.cpp.)
#include "support/catch.hpp"
#include "support/random.hpp"

#include <npuq/npuq.hpp>

using namespace npuq;
using npuq_test::fill;
using npuq_test::random_scales;
using npuq_test::rng;
using npuq_test::values;

namespace {

const numerics_profile kProfiles[] = {numerics_profile::tflite(), numerics_profile::tosa_single(), numerics_profile::onnx(),
                                      numerics_profile::q31(rounding::half_even), numerics_profile::q31(rounding::floor),
                                      numerics_profile::fp32(rounding::half_away)};

}  // namespace

TEST_CASE("gemm int32 output equals a plain int64 dot product", "[gemm]") {
  rng r(1);
  for (std::int64_t m : {1, 3, 8}) {
    for (std::int64_t n : npuq_test::edge_sizes()) {
      const std::int64_t k = n * 3 + 1;
      Tensor<std::uint8_t> a(Layout::matrix(m, k), Quant::per_tensor(1.0f, 128));
      std::vector<std::int32_t> bzp(static_cast<std::size_t>(n));
      for (auto& z : bzp) z = r.uniform(0, 255);
      Tensor<std::uint8_t> b(Layout::matrix(k, n), Quant::per_axis(1, std::vector<float>(static_cast<std::size_t>(n), 1.0f), bzp));
      Tensor<std::int32_t> bias(Layout::row_major({n}));
      fill(a, r);
      fill(b, r);
      fill(bias, r, -100000, 100000);
      Tensor<std::int32_t> out(Layout::matrix(m, n));
      gemm(scalar, gemm_params{}, a, b, bias, out);
      for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) {
          std::int64_t s = bias.data()[j];
          for (std::int64_t kk = 0; kk < k; ++kk)
            s += (std::int64_t{a.data()[i * k + kk]} - 128) * (std::int64_t{b.data()[kk * n + j]} - bzp[static_cast<std::size_t>(j)]);
          REQUIRE(out.data()[i * n + j] == s);
        }
    }
  }
}

TEST_CASE("gemm with B given [N,K] through a column-major view equals the materialised [K,N]", "[gemm][layout]") {
  rng r(2);
  for (const auto& prof : kProfiles) {
    for (std::int64_t n : {1, 5, 16, 17}) {
      const std::int64_t m = 4, k = 37;
      Tensor<std::int8_t> a(Layout::matrix(m, k), Quant::per_tensor(0.02f, -3));
      Tensor<std::int8_t> bnk(Layout::matrix(n, k));
      fill(a, r);
      fill(bnk, r, -127, 127);
      Tensor<std::int8_t> bkn(Layout::matrix(k, n));
      for (std::int64_t i = 0; i < n; ++i)
        for (std::int64_t j = 0; j < k; ++j) bkn.data()[j * n + i] = bnk.data()[i * k + j];
      const Quant wq = Quant::per_axis(1, random_scales(r, n, 0.001f, 0.02f));
      bkn.set_quant(wq);
      TensorView<const std::int8_t> bt(bnk.data(), Layout::col_major(k, n), wq, n * k);
      Tensor<std::int8_t> o1(Layout::matrix(m, n), Quant::per_tensor(0.05f, 7));
      Tensor<std::int8_t> o2(Layout::matrix(m, n), Quant::per_tensor(0.05f, 7));
      gemm_params p;
      p.numerics = prof;
      gemm(scalar, p, a, bkn, no_bias, o1);
      gemm(scalar, p, a, bt, no_bias, o2);
      REQUIRE(values(o1) == values(o2));
    }
  }
}

TEST_CASE("batched gemm equals one gemm per batch, with shared and batched B", "[gemm][batch]") {
  rng r(3);
  const std::int64_t B0 = 2, B1 = 3, m = 5, k = 9, n = 7;
  Tensor<std::int8_t> a(Layout::row_major({B0, B1, m, k}), Quant::per_tensor(0.03f, 2));
  Tensor<std::int8_t> bshared(Layout::matrix(k, n), Quant::per_tensor(0.01f, 0));
  Tensor<std::int8_t> bbatched(Layout::row_major({B0, B1, k, n}), Quant::per_tensor(0.01f, 0));
  fill(a, r);
  fill(bshared, r);
  fill(bbatched, r);
  Tensor<std::uint8_t> o_shared(Layout::row_major({B0, B1, m, n}), Quant::per_tensor(0.1f, 128));
  Tensor<std::uint8_t> o_batched(Layout::row_major({B0, B1, m, n}), Quant::per_tensor(0.1f, 128));
  gemm(scalar, gemm_params{}, a, bshared, no_bias, o_shared);
  gemm(scalar, gemm_params{}, a, bbatched, no_bias, o_batched);
  for (std::int64_t i = 0; i < B0; ++i)
    for (std::int64_t j = 0; j < B1; ++j) {
      auto ai = a.cview().slice(0, i, 1).slice(1, j, 1);
      TensorView<const std::int8_t> a2(a.data(), ai.offset(), Layout::matrix(m, k), a.quant(), a.layout().span());
      auto bi = bbatched.cview().slice(0, i, 1).slice(1, j, 1);
      TensorView<const std::int8_t> b2(bbatched.data(), bi.offset(), Layout::matrix(k, n), bbatched.quant(), bbatched.layout().span());
      Tensor<std::uint8_t> e1(Layout::matrix(m, n), Quant::per_tensor(0.1f, 128));
      Tensor<std::uint8_t> e2(Layout::matrix(m, n), Quant::per_tensor(0.1f, 128));
      gemm(scalar, gemm_params{}, a2, bshared, no_bias, e1);
      gemm(scalar, gemm_params{}, a2, b2, no_bias, e2);
      const std::int64_t base = (i * B1 + j) * m * n;
      for (std::int64_t e = 0; e < m * n; ++e) {
        REQUIRE(o_shared.data()[base + e] == e1.data()[e]);
        REQUIRE(o_batched.data()[base + e] == e2.data()[e]);
      }
    }
}

TEST_CASE("integer requant pairs given directly equal the ones derived from scales", "[gemm][requant]") {
  rng r(4);
  const std::int64_t m = 6, k = 50, n = 9;
  Tensor<std::int8_t> a(Layout::matrix(m, k), Quant::per_tensor(0.02f, -1));
  const std::vector<float> ws = random_scales(r, n, 0.001f, 0.02f);
  Tensor<std::int8_t> b(Layout::matrix(k, n), Quant::per_axis(1, ws));
  fill(a, r);
  fill(b, r, -127, 127);
  for (const auto& prof : {numerics_profile::tflite(), numerics_profile::tosa_single(), numerics_profile::onnx()}) {
    gemm_params derived;
    derived.numerics = prof;
    gemm_params given = derived;
    for (std::int64_t c = 0; c < n; ++c) given.requant.push_back(derive_requant(prof, 0.02f, ws[static_cast<std::size_t>(c)], 0.04f));
    Tensor<std::int8_t> o1(Layout::matrix(m, n), Quant::per_tensor(0.04f, 0));
    Tensor<std::int8_t> o2(Layout::matrix(m, n), Quant::per_tensor(0.04f, 0));
    gemm(scalar, derived, a, b, no_bias, o1);
    // Given pairs need no weight scales, and the input scale is not used (only its zero point).
    gemm(scalar, given, a.cview().with_quant(Quant::per_tensor(123.0f, -1)), b.cview().with_quant(Quant::none()), no_bias, o2);
    REQUIRE(values(o1) == values(o2));
  }
}

namespace {

// conv2d by explicit im2col (padding filled with the input zero point) followed by a GEMM.
template <class I, class O>
std::vector<std::int64_t> conv_by_im2col(const conv2d_params& p, const Tensor<I>& in, const Tensor<std::int8_t>& w,
                                         const Tensor<std::int32_t>& bias, const Layout& out_layout, const Quant& out_q) {
  const std::int64_t N = in.layout().dim(0), H = in.layout().dim(1), W = in.layout().dim(2);
  const std::int64_t OC = w.layout().dim(0), KH = w.layout().dim(1), KW = w.layout().dim(2), IC = w.layout().dim(3);
  const std::int64_t OH = out_layout.dim(1), OW = out_layout.dim(2);
  const std::int64_t pad_t = p.padding.top, pad_l = p.padding.left;
  const std::int64_t K = KH * KW * IC;
  const std::int32_t zp = in.quant().zero_point();
  std::vector<std::int64_t> result;
  for (std::int64_t g = 0; g < p.groups; ++g) {
    const std::int64_t ocg = OC / p.groups;
    Tensor<I> cols(Layout::matrix(N * OH * OW, K), in.quant());
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t oy = 0; oy < OH; ++oy)
        for (std::int64_t ox = 0; ox < OW; ++ox)
          for (std::int64_t ky = 0; ky < KH; ++ky)
            for (std::int64_t kx = 0; kx < KW; ++kx)
              for (std::int64_t c = 0; c < IC; ++c) {
                const std::int64_t iy = oy * p.stride_h - pad_t + ky * p.dilation_h, ix = ox * p.stride_w - pad_l + kx * p.dilation_w;
                const bool inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
                cols.data()[((n * OH + oy) * OW + ox) * K + (ky * KW + kx) * IC + c] =
                    inside ? in.cview()(n, iy, ix, g * IC + c) : static_cast<I>(zp);
              }
    // Weights of this group as [K, ocg]: the OHWI rows of the group, transposed by a view.
    TensorView<const std::int8_t> wg(w.data(), g * ocg * K, Layout::col_major(K, ocg), w.quant(), w.layout().span());
    if (w.quant().scales.size() > 1) {
      std::vector<float> s(w.quant().scales.begin() + g * ocg, w.quant().scales.begin() + (g + 1) * ocg);
      wg = wg.with_quant(Quant::per_axis(1, s));
    }
    TensorView<const std::int32_t> bg = bias.cview().slice(0, g * ocg, ocg);
    Tensor<O> og(Layout::matrix(N * OH * OW, ocg), out_q);
    gemm_params gp;
    static_cast<output_params&>(gp) = p;
    gemm(scalar, gp, cols, wg, bg, og);
    result.resize(static_cast<std::size_t>(N * OH * OW * OC));
    for (std::int64_t r = 0; r < N * OH * OW; ++r)
      for (std::int64_t c = 0; c < ocg; ++c) result[static_cast<std::size_t>(r * OC + g * ocg + c)] = og.data()[r * ocg + c];
  }
  return result;
}

}  // namespace

TEST_CASE("conv2d equals im2col + gemm over strides, dilations, padding, groups, profiles", "[conv2d]") {
  rng r(5);
  struct cfg {
    std::int64_t H, W, C, OC, KH, KW, sh, sw, dh, dw, pt, pb, pl, pr, groups, N;
  };
  const cfg cases[] = {
      {5, 5, 3, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1},  {7, 6, 4, 6, 3, 3, 2, 2, 1, 1, 1, 0, 0, 1, 2, 2},
      {9, 9, 2, 3, 3, 3, 1, 2, 2, 2, 2, 2, 2, 2, 1, 1},  {4, 4, 8, 8, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 4, 1},
      {10, 3, 5, 7, 5, 1, 3, 1, 1, 1, 2, 3, 0, 0, 1, 1}, {1, 1, 16, 17, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 3},
      {6, 8, 6, 9, 2, 4, 1, 3, 3, 1, 1, 2, 3, 0, 3, 1},
  };
  for (const cfg& c : cases) {
    for (const auto& prof : kProfiles) {
      conv2d_params p;
      p.numerics = prof;
      p.stride_h = c.sh;
      p.stride_w = c.sw;
      p.dilation_h = c.dh;
      p.dilation_w = c.dw;
      p.padding = padding_spec::explicit_(c.pt, c.pb, c.pl, c.pr);
      p.groups = c.groups;
      p.clamp = clamp_spec::relu();
      const std::int64_t OH = (c.H + c.pt + c.pb - ((c.KH - 1) * c.dh + 1)) / c.sh + 1;
      const std::int64_t OW = (c.W + c.pl + c.pr - ((c.KW - 1) * c.dw + 1)) / c.sw + 1;
      Tensor<std::int8_t> in(Layout::nhwc(c.N, c.H, c.W, c.C), Quant::per_tensor(0.03f, 11));
      Tensor<std::int8_t> w(Layout::ohwi(c.OC, c.KH, c.KW, c.C / c.groups), Quant::per_axis(0, random_scales(r, c.OC, 0.001f, 0.02f)));
      Tensor<std::int32_t> bias(Layout::row_major({c.OC}));
      fill(in, r);
      fill(w, r, -127, 127);
      fill(bias, r, -3000, 3000);
      const Quant oq = Quant::per_tensor(0.07f, -20);
      Tensor<std::int8_t> out(Layout::nhwc(c.N, OH, OW, c.OC), oq);
      conv2d(scalar, p, in, w, bias, out);
      REQUIRE(values(out) == conv_by_im2col<std::int8_t, std::int8_t>(p, in, w, bias, out.layout(), oq));
    }
  }
}

TEST_CASE("conv2d SAME padding gives TensorFlow's output size and padding split", "[conv2d][padding]") {
  rng r(6);
  for (std::int64_t H : {1, 2, 5, 8, 9}) {
    for (std::int64_t s : {1, 2, 3}) {
      const std::int64_t OH = (H + s - 1) / s;
      const std::int64_t total = std::max<std::int64_t>((OH - 1) * s + 3 - H, 0);
      conv2d_params same;
      same.stride_h = same.stride_w = s;
      same.padding = padding_spec::same();
      conv2d_params expl = same;
      expl.padding = padding_spec::explicit_(total / 2, total - total / 2, total / 2, total - total / 2);
      Tensor<std::uint8_t> in(Layout::nhwc(1, H, H, 2), Quant::per_tensor(0.1f, 100));
      Tensor<std::int8_t> w(Layout::ohwi(3, 3, 3, 2), Quant::per_tensor(0.1f));
      fill(in, r);
      fill(w, r, -127, 127);
      Tensor<std::int32_t> o1(Layout::nhwc(1, OH, OH, 3)), o2(Layout::nhwc(1, OH, OH, 3));
      conv2d(scalar, same, in, w, no_bias, o1);
      conv2d(scalar, expl, in, w, no_bias, o2);
      REQUIRE(values(o1) == values(o2));
    }
  }
}

TEST_CASE("conv2d reads NCHW input and OIHW weights through layouts", "[conv2d][layout]") {
  rng r(7);
  const std::int64_t N = 2, C = 3, H = 6, W = 5, O = 4;
  Tensor<std::uint8_t> nhwc(Layout::nhwc(N, H, W, C), Quant::per_tensor(0.05f, 120));
  Tensor<std::int8_t> ohwi(Layout::ohwi(O, 3, 3, C), Quant::per_axis(0, random_scales(r, O, 0.001f, 0.02f)));
  fill(nhwc, r);
  fill(ohwi, r, -127, 127);
  Tensor<std::uint8_t> nchw(Layout::row_major({N, C, H, W}));
  Tensor<std::int8_t> oihw(Layout::row_major({O, C, 3, 3}));
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t y = 0; y < H; ++y)
        for (std::int64_t x = 0; x < W; ++x) nchw.data()[((n * C + c) * H + y) * W + x] = nhwc.cview()(n, y, x, c);
  for (std::int64_t o = 0; o < O; ++o)
    for (std::int64_t c = 0; c < C; ++c)
      for (std::int64_t y = 0; y < 3; ++y)
        for (std::int64_t x = 0; x < 3; ++x) oihw.data()[((o * C + c) * 3 + y) * 3 + x] = ohwi.cview()(o, y, x, c);
  TensorView<const std::uint8_t> in_v(nchw.data(), Layout::nchw(N, C, H, W), nhwc.quant());
  TensorView<const std::int8_t> w_v(oihw.data(), Layout::oihw(O, C, 3, 3), ohwi.quant());
  conv2d_params p;
  p.padding = padding_spec::symmetric(1);
  p.numerics = numerics_profile::onnx();
  Tensor<std::uint8_t> o1(Layout::nhwc(N, H, W, O), Quant::per_tensor(0.2f, 128));
  Tensor<std::uint8_t> o2_storage(Layout::row_major({N, O, H, W}));
  TensorView<std::uint8_t> o2(o2_storage.data(), Layout::nchw(N, O, H, W), Quant::per_tensor(0.2f, 128));
  conv2d(scalar, p, nhwc, ohwi, no_bias, o1);
  conv2d(scalar, p, in_v, w_v, no_bias, o2);
  REQUIRE(values(o1) == values(o2));
}

TEST_CASE("depthwise conv2d equals grouped conv2d with one group per input channel", "[depthwise]") {
  rng r(8);
  for (std::int64_t mult : {1, 2, 3}) {
    for (std::int64_t k : {1, 3, 5}) {
      for (std::int64_t s : {1, 2}) {
        const std::int64_t C = 5, H = 9, W = 7, OC = C * mult;
        depthwise_params dp;
        dp.numerics = numerics_profile::tosa_single();
        dp.stride_h = dp.stride_w = s;
        dp.dilation_h = 2;
        dp.padding = padding_spec::same();
        dp.clamp = clamp_spec::relu6();
        conv2d_params cp;
        static_cast<output_params&>(cp) = dp;
        static_cast<window_params&>(cp) = dp;
        cp.groups = C;
        const std::vector<float> ws = random_scales(r, OC, 0.001f, 0.02f);
        Tensor<std::int8_t> in(Layout::nhwc(1, H, W, C), Quant::per_tensor(0.02f, -7));
        Tensor<std::int8_t> dw(Layout::hwc_m(k, k, C, mult), Quant::per_axis(2, ws));
        Tensor<std::int32_t> bias(Layout::row_major({OC}));
        fill(in, r);
        fill(dw, r, -127, 127);
        fill(bias, r, -5000, 5000);
        // The same weights as OHWI with one input channel per group: w[oc, ky, kx, 0] = dw[ky, kx, oc].
        Tensor<std::int8_t> w(Layout::ohwi(OC, k, k, 1), Quant::per_axis(0, ws));
        for (std::int64_t oc = 0; oc < OC; ++oc)
          for (std::int64_t y = 0; y < k; ++y)
            for (std::int64_t x = 0; x < k; ++x) w.data()[(oc * k + y) * k + x] = dw.cview()(y, x, oc);
        const std::int64_t OH = (H + s - 1) / s, OW = (W + s - 1) / s;
        Tensor<std::int8_t> o1(Layout::nhwc(1, OH, OW, OC), Quant::per_tensor(0.01f, -128));
        Tensor<std::int8_t> o2(Layout::nhwc(1, OH, OW, OC), Quant::per_tensor(0.01f, -128));
        depthwise_conv2d(scalar, dp, in, dw, bias, o1);
        conv2d(scalar, cp, in, w, bias, o2);
        REQUIRE(values(o1) == values(o2));
        // TFLite's [1, KH, KW, C*M] weight shape gives the same result.
        TensorView<const std::int8_t> dw4(dw.data(), Layout::row_major({1, k, k, OC}), Quant::per_axis(3, ws));
        Tensor<std::int8_t> o3(Layout::nhwc(1, OH, OW, OC), Quant::per_tensor(0.01f, -128));
        depthwise_conv2d(scalar, dp, in, dw4, bias, o3);
        REQUIRE(values(o1) == values(o3));
      }
    }
  }
}

TEST_CASE("narrow and saturating accumulators change results only when they overflow", "[numerics][accumulator]") {
  // 64 products of 127 * 127 = 16129 sum to 1032256, past a 20-bit accumulator's 524287.
  Tensor<std::int8_t> a(Layout::matrix(1, 64), Quant::per_tensor(1.0f, 0));
  Tensor<std::int8_t> b(Layout::matrix(64, 1), Quant::per_tensor(1.0f, 0));
  for (int i = 0; i < 64; ++i) a.data()[i] = b.data()[i] = 127;
  Tensor<std::int32_t> out(Layout::matrix(1, 1));
  gemm_params p;
  gemm(scalar, p, a, b, no_bias, out);
  CHECK(out.data()[0] == 1032256);
  p.numerics = numerics_profile::tflite().with_accumulator(20, overflow_rule::wrap);
  gemm(scalar, p, a, b, no_bias, out);
  CHECK(out.data()[0] == 1032256 - (1 << 20));
  p.numerics = numerics_profile::tflite().with_accumulator(20, overflow_rule::saturate_at_end);
  gemm(scalar, p, a, b, no_bias, out);
  CHECK(out.data()[0] == (1 << 19) - 1);
  // Saturating at every add differs from saturating at the end when the sum comes back down:
  // 16129 * 3 - 16129 in a 16-bit accumulator: 16129, 32258, 32767 (saturated), 16638.
  Tensor<std::int8_t> a4(Layout::matrix(1, 4), Quant::per_tensor(1.0f, 0));
  Tensor<std::int8_t> b4(Layout::matrix(4, 1), Quant::per_tensor(1.0f, 0));
  for (int i = 0; i < 4; ++i) a4.data()[i] = 127;
  b4.data()[0] = b4.data()[1] = b4.data()[2] = 127;
  b4.data()[3] = -127;
  p.numerics = numerics_profile::tflite().with_accumulator(16, overflow_rule::saturate_at_end);
  gemm(scalar, p, a4, b4, no_bias, out);
  CHECK(out.data()[0] == 32258);
  p.numerics = numerics_profile::tflite().with_accumulator(16, overflow_rule::saturate_each_add);
  gemm(scalar, p, a4, b4, no_bias, out);
  CHECK(out.data()[0] == 16638);
}

TEST_CASE("empty edges: M, N or K of zero", "[gemm][edge]") {
  Tensor<std::int32_t> bias(Layout::row_major({3}));
  bias.data()[0] = 5;
  bias.data()[1] = -7;
  bias.data()[2] = 100;
  // K = 0: the output is the bias alone.
  Tensor<std::int8_t> a0(Layout::matrix(2, 0), Quant::per_tensor(0.1f, 0));
  Tensor<std::int8_t> b0(Layout::matrix(0, 3), Quant::per_tensor(0.1f, 0));
  Tensor<std::int32_t> out(Layout::matrix(2, 3));
  REQUIRE(try_gemm(scalar, gemm_params{}, a0, b0, bias, out).ok());
  CHECK(values(out) == std::vector<std::int64_t>{5, -7, 100, 5, -7, 100});
  // M = 0 and N = 0 write nothing and succeed.
  Tensor<std::int8_t> a(Layout::matrix(0, 4), Quant::per_tensor(0.1f, 0));
  Tensor<std::int8_t> b(Layout::matrix(4, 3), Quant::per_tensor(0.1f, 0));
  Tensor<std::int32_t> o0(Layout::matrix(0, 3));
  CHECK(try_gemm(scalar, gemm_params{}, a, b, bias, o0).ok());
  Tensor<std::int8_t> a2(Layout::matrix(2, 4), Quant::per_tensor(0.1f, 0));
  Tensor<std::int8_t> b2(Layout::matrix(4, 0), Quant::per_tensor(0.1f, 0));
  Tensor<std::int32_t> o2(Layout::matrix(2, 0));
  CHECK(try_gemm(scalar, gemm_params{}, a2, b2, no_bias, o2).ok());
}
