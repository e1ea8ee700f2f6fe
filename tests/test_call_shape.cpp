// One call shape per op for every weight format (issue 16): conv2d takes sparse conv weights
// (sparse_conv2d_weights, made from dense conv weights in OHWI, OIHW or HWIO order, which carry
// the kernel extent) in the place of dense ones, on every backend and as a plan; dense conv
// weights in those three memory orders give the same bytes; the int4 range is a field of every
// op's params (conv2d, depthwise, gemm), and the one-shot and plan forms refuse -8 under TOSA's
// symmetric range, naming the weights.
#include "support/catch.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <npuq/npuq.hpp>

#include "support/random.hpp"

using namespace npuq;
using npuq_test::fill;
using npuq_test::random_scales;
using npuq_test::rng;
using npuq_test::values;

namespace {

// int8 weights in [-8, 7] holding -8 at index `at`, and the same values as int4.
struct int4_pair {
  Tensor<std::int8_t> w8;
  Tensor<int4> w4;
};
template <class... I>
int4_pair int4_weights_holding_min(rng& r, const Layout& l, const Quant& q, I... at) {
  int4_pair p{Tensor<std::int8_t>(l, q), Tensor<int4>(l, q)};
  fill(p.w8, r, -8, 7);
  p.w8.view().set(-8, at...);
  REQUIRE(pack_int4(p.w8.cview(), p.w4.view()).ok());
  return p;
}

enum class order { ohwi, oihw, hwio };
const order kOrders[] = {order::ohwi, order::oihw, order::hwio};
const char* name_of(order o) { return o == order::ohwi ? "OHWI" : (o == order::oihw ? "OIHW" : "HWIO"); }

Layout weight_layout(order o, std::int64_t OC, std::int64_t KH, std::int64_t KW, std::int64_t C) {
  switch (o) {
    case order::ohwi: return Layout::ohwi(OC, KH, KW, C);
    case order::oihw: return Layout::oihw(OC, C, KH, KW);
    case order::hwio: return Layout::hwio(KH, KW, C, OC);
  }
  return {};
}

// The same logical [OC, KH, KW, C] weights stored in memory order `o`: the bytes are placed by
// each format's own index formula (not through the Layout under test), then viewed through it.
Tensor<std::int8_t> reorder(const Tensor<std::int8_t>& ohwi, order o) {
  const Layout& l = ohwi.layout();
  const std::int64_t OC = l.dim(0), KH = l.dim(1), KW = l.dim(2), C = l.dim(3);
  Tensor<std::int8_t> t(weight_layout(o, OC, KH, KW, C), ohwi.quant());
  REQUIRE(t.layout().span() == l.size());
  for (std::int64_t a = 0; a < OC; ++a)
    for (std::int64_t y = 0; y < KH; ++y)
      for (std::int64_t x = 0; x < KW; ++x)
        for (std::int64_t c = 0; c < C; ++c) {
          const std::int64_t at = o == order::ohwi   ? ((a * KH + y) * KW + x) * C + c
                                  : o == order::oihw ? ((a * C + c) * KH + y) * KW + x
                                                     : ((y * KW + x) * C + c) * OC + a;
          t.data()[at] = ohwi.view()(a, y, x, c);
        }
  return t;
}

struct conv_setup {
  Tensor<std::int8_t> in;
  Tensor<std::int8_t> w;  // OHWI
  Tensor<std::int32_t> bias;
  conv2d_params p;
  Layout out_layout;
};

conv_setup make_setup(rng& r, std::int64_t H, std::int64_t C, std::int64_t OC, std::int64_t K, std::int64_t stride) {
  conv_setup s{Tensor<std::int8_t>(Layout::nhwc(1, H, H + 1, C), Quant::per_tensor(0.05f, 3)),
               Tensor<std::int8_t>(Layout::ohwi(OC, K, K, C), Quant::per_axis(0, random_scales(r, OC))),
               Tensor<std::int32_t>(Layout::row_major({OC})), conv2d_params{}, Layout{}};
  fill(s.in, r);
  fill(s.w, r);
  fill(s.bias, r, -3000, 3000);
  s.p.stride_h = s.p.stride_w = stride;
  s.p.padding = padding_spec::same();
  conv_geometry g = detail::input_geometry(s.in.layout(), K, K);
  REQUIRE(detail::resolve_geometry(s.p, &g).ok());
  s.out_layout = Layout::nhwc(1, g.OH, g.OW, OC);
  return s;
}

const Quant kOutQuant = Quant::per_tensor(0.25f, -2);

}  // namespace

TEST_CASE("dense conv weights in OHWI, OIHW and HWIO order give the same bytes", "[call_shape][conv]") {
  rng r(1601);
  for (std::int64_t K : {1, 3})
    for (std::int64_t C : {3, 16}) {
      conv_setup s = make_setup(r, 7, C, 10, K, K == 3 ? 2 : 1);
      Tensor<std::int8_t> want(s.out_layout, kOutQuant);
      conv2d(scalar, s.p, s.in, s.w, s.bias, want);
      for (order o : kOrders) {
        const Tensor<std::int8_t> w = reorder(s.w, o);
        INFO(name_of(o) << " K" << K << " C" << C);
        Tensor<std::int8_t> got(s.out_layout, kOutQuant);
        conv2d(scalar, s.p, s.in, w, s.bias, got);
        CHECK(values(got) == values(want));
        for (isa level : cpu().levels()) {
          INFO(to_string(level));
          std::memset(got.data(), 0, static_cast<std::size_t>(got.layout().size()));
          conv2d(simd_backend{level}, s.p, s.in, w, s.bias, got);
          CHECK(values(got) == values(want));
          std::memset(got.data(), 0, static_cast<std::size_t>(got.layout().size()));
          make_conv2d_plan(simd_backend{level}, s.p, s.in, w, s.bias, got).run(s.in, got);
          CHECK(values(got) == values(want));
        }
      }
    }
}

TEST_CASE("conv2d takes sparse conv weights made from any weight order, one-shot and as a plan", "[call_shape][conv][sparse]") {
  rng r(1602);
  for (order o : kOrders)
    for (int f = 0; f < 3; ++f) {
      conv_setup s = make_setup(r, 6, 8, 12, 3, 1);
      Tensor<std::int8_t> w = reorder(s.w, o);
      INFO(name_of(o) << " format " << f);
      // Pruned in place through the conv form (2:4), or pruned by the test to blocks along K.
      if (f == 0) {
        REQUIRE(prune_conv2d_2_4(w.view()).ok());
      } else {
        for (std::int64_t a = 0; a < 12; ++a)
          for (std::int64_t y = 0; y < 3; ++y)
            for (std::int64_t x = 0; x < 3; ++x)
              for (std::int64_t c = 0; c < 8; ++c)
                if ((a + y + c / 4) % 3 != 0) w.view().set(0, a, y, x, c);
      }
      Tensor<std::int8_t> want(s.out_layout, kOutQuant);
      conv2d(scalar, s.p, s.in, w, s.bias, want);  // the dense conv on the pruned weights
      auto check_all = [&](const auto& sw) {
        CHECK(sw.kernel.KH == 3);
        CHECK(sw.kernel.KW == 3);
        CHECK(sw.matrix.K == 72);
        CHECK(sw.matrix.N == 12);
        Tensor<std::int8_t> got(s.out_layout, kOutQuant);
        conv2d(scalar, s.p, s.in, sw, s.bias, got);
        CHECK(values(got) == values(want));
        for (isa level : cpu().levels()) {
          INFO(to_string(level));
          std::memset(got.data(), 0, static_cast<std::size_t>(got.layout().size()));
          REQUIRE(try_conv2d(simd_backend{level}, s.p, s.in, sw, s.bias, got).ok());
          CHECK(values(got) == values(want));
          std::memset(got.data(), 0, static_cast<std::size_t>(got.layout().size()));
          auto plan = make_conv2d_plan(simd_backend{level}, s.p, s.in, sw, s.bias, got);
          plan.run(s.in, got);
          CHECK(values(got) == values(want));
        }
      };
      if (f == 0) {
        sparse_conv2d_weights<sparse_2_4_matrix<>> sw;
        REQUIRE(compress_conv2d_2_4(w.cview(), &sw).ok());
        check_all(sw);
      } else if (f == 1) {
        sparse_conv2d_weights<block_csr_matrix> sw;
        REQUIRE(compress_conv2d_block_csr(w.cview(), 1, 4, &sw).ok());
        check_all(sw);
      } else {
        sparse_conv2d_weights<csr_matrix> sw;
        REQUIRE(compress_conv2d_csr(w.cview(), &sw).ok());
        check_all(sw);
      }
    }
}

TEST_CASE("the conv forms of the sparse formats refuse what they cannot hold, naming it", "[call_shape][conv][sparse][validation]") {
  Tensor<std::int8_t> w(Layout::ohwi(4, 3, 3, 4), Quant::per_axis(0, std::vector<float>(4, 0.01f)));
  w.view().set(1, 0, 0, 0, 0);
  w.view().set(1, 0, 0, 0, 1);
  w.view().set(1, 0, 0, 0, 2);  // three nonzeros in the first group of 4 along K
  sparse_conv2d_weights<sparse_2_4_matrix<>> sw;
  sw.kernel = {7, 7};
  status st = compress_conv2d_2_4(w.cview(), &sw);
  CHECK(st.code() == errc::invalid_argument);
  CHECK(sw.kernel.KH == 7);  // unchanged on failure
  // Per-channel quantization on an axis other than the output channel.
  Tensor<std::int8_t> w3(Layout::ohwi(4, 3, 3, 4), Quant::per_axis(3, std::vector<float>(4, 0.01f)));
  st = compress_conv2d_csr(w3.cview(), nullptr);
  CHECK(st.code() == errc::invalid_argument);
  sparse_conv2d_weights<csr_matrix> sc;
  st = compress_conv2d_csr(w3.cview(), &sc);
  CHECK(st.message().find("per-channel axis 3") != std::string::npos);
  // A matrix is not conv weights, and conv weights are not a matrix.
  Tensor<std::int8_t> m(Layout::matrix(36, 4), Quant::per_tensor(0.01f, 0));
  st = compress_conv2d_csr(m.cview(), &sc);
  CHECK(st.message().find("expected conv weights") != std::string::npos);
  csr_matrix plain;
  st = compress_csr(w.cview(), &plain);
  CHECK(st.message().find("compress_conv2d_") != std::string::npos);
  // Pruning writes nothing when it fails.
  Tensor<std::int8_t> w1(Layout::ohwi(2, 1, 1, 4), Quant::per_axis(1, std::vector<float>(2, 0.01f)));
  rng r(1604);
  fill(w1, r);
  const std::vector<std::int64_t> before = values(w1);
  CHECK_FALSE(prune_conv2d_2_4(w1.view()).ok());
  CHECK(values(w1) == before);
}

TEST_CASE("the int4 range is a field of the params of conv2d, depthwise and gemm", "[call_shape][int4]") {
  rng r(1603);
  // Weights holding -8: accepted by the full range (TFLite), refused by the symmetric one (TOSA).
  const int4_pair cw = int4_weights_holding_min(r, Layout::ohwi(6, 3, 3, 5), Quant::per_axis(0, random_scales(r, 6)), 2, 1, 1, 3);
  const Tensor<std::int8_t>& w8 = cw.w8;
  const Tensor<int4>& w4 = cw.w4;
  Tensor<std::int8_t> in(Layout::nhwc(1, 5, 5, 5), Quant::per_tensor(0.05f, 0));
  fill(in, r);
  Tensor<std::int8_t> want(Layout::nhwc(1, 5, 5, 6), kOutQuant), got(want.layout(), kOutQuant);
  conv2d_params p;
  p.padding = padding_spec::same();
  conv2d(scalar, p, in, w8, no_bias, want);
  conv2d(simd, p, in, w4, no_bias, got);
  CHECK(values(got) == values(want));
  p.int4_weights = int4_range::symmetric;
  std::memset(got.data(), 0x5A, static_cast<std::size_t>(got.layout().size()));
  const std::vector<std::int64_t> untouched = values(got);
  for (const status& st : {try_conv2d(scalar, p, in, w4, no_bias, got), try_conv2d(simd, p, in, w4, no_bias, got)}) {
    CHECK(st.code() == errc::invalid_argument);
    CHECK(st.message().find("weights") != std::string::npos);
  }
  CHECK(values(got) == untouched);
  conv2d_plan<std::int8_t, std::int8_t, std::int8_t> plan;
  CHECK_FALSE(try_make_conv2d_plan(simd, p, in, w4, no_bias, got, &plan).ok());
  // The explicit argument of the int4 forms still wins over the params.
  CHECK(try_conv2d_int4(simd, p, in, w4, no_bias, got, int4_range::full).ok());
  CHECK(values(got) == values(want));

  // Depthwise.
  const int4_pair dw = int4_weights_holding_min(r, Layout::hwc_m(3, 3, 5, 1), Quant::per_axis(2, random_scales(r, 5)), 0, 2, 4);
  const Tensor<std::int8_t>& dw8 = dw.w8;
  const Tensor<int4>& dw4 = dw.w4;
  Tensor<std::int8_t> dwant(Layout::nhwc(1, 5, 5, 5), kOutQuant), dgot(dwant.layout(), kOutQuant);
  depthwise_params dp;
  dp.padding = padding_spec::same();
  depthwise_conv2d(scalar, dp, in, dw8, no_bias, dwant);
  depthwise_conv2d(simd, dp, in, dw4, no_bias, dgot);
  CHECK(values(dgot) == values(dwant));
  dp.int4_weights = int4_range::symmetric;
  CHECK(try_depthwise_conv2d(simd, dp, in, dw4, no_bias, dgot).code() == errc::invalid_argument);
  depthwise_plan<std::int8_t, std::int8_t, std::int8_t> dplan;
  CHECK_FALSE(try_make_depthwise_plan(simd, dp, in, dw4, no_bias, dgot, &dplan).ok());

  // GEMM, whose params have carried it from the start.
  Tensor<std::int8_t> a(Layout::matrix(3, 45), Quant::per_tensor(0.05f, 0));
  fill(a, r);
  const TensorView<const int4> b4(w4.data(), Layout::col_major(45, 6), Quant::per_axis(1, w8.quant().scales), w4.layout().size());
  Tensor<std::int8_t> y(Layout::matrix(3, 6), kOutQuant);
  gemm_params gp;
  CHECK(try_gemm(simd, gp, a, b4, no_bias, y).ok());
  gp.int4_weights = int4_range::symmetric;
  CHECK(try_gemm(simd, gp, a, b4, no_bias, y).code() == errc::invalid_argument);
}
