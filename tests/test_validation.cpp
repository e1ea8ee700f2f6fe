// Bad input: every rejected call names the problem and leaves the output untouched.
//
// Each case starts from a valid call, breaks one thing, and checks the error code, a fragment of
// the message (the argument's name), that the output still holds its sentinel bytes, and that
// the throwing form throws npuq::error with the same code.
#include "support/catch.hpp"

#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>

#include <npuq/npuq.hpp>

using namespace npuq;

namespace {

constexpr std::int8_t kSentinel = 0x5A;

template <class T>
void poison(const Tensor<T>& t) {
  std::memset(static_cast<void*>(t.data()), kSentinel, static_cast<std::size_t>(t.storage_bytes()));
}
template <class T>
bool untouched(const Tensor<T>& t) {
  const auto* p = reinterpret_cast<const unsigned char*>(t.data());
  for (std::int64_t i = 0; i < t.storage_bytes(); ++i)
    if (p[i] != static_cast<unsigned char>(kSentinel)) return false;
  return true;
}

void expect_error(const status& s, errc code, const std::string& fragment) {
  INFO("status: " << s.to_string());
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == code);
  CHECK(s.message().find(fragment) != std::string::npos);
}

// A valid GEMM setup that each case copies and breaks.
struct gemm_case {
  gemm_params p;
  Tensor<std::int8_t> a{Layout::matrix(4, 8), Quant::per_tensor(0.1f, 3)};
  Tensor<std::int8_t> b{Layout::matrix(8, 5), Quant::per_axis(1, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f})};
  Tensor<std::int32_t> bias{Layout::row_major({5})};
  Tensor<std::int8_t> out{Layout::matrix(4, 5), Quant::per_tensor(0.5f, -1)};
  gemm_case() { poison(out); }
  status run() { return try_gemm(scalar, p, a, b, bias, out); }
};

}  // namespace

TEST_CASE("the valid baseline calls succeed", "[validation]") {
  gemm_case g;
  REQUIRE(g.run().ok());
  CHECK_FALSE(untouched(g.out));
}

TEST_CASE("gemm rejects bad shapes, quantization, sizes and aliasing without writing", "[validation][gemm]") {
  struct bad {
    const char* what;
    std::function<void(gemm_case&)> breaker;
    errc code;
    const char* fragment;
  };
  const bad cases[] = {
      {"K mismatch", [](gemm_case& g) { g.b = Tensor<std::int8_t>(Layout::matrix(7, 5), g.b.quant()); }, errc::invalid_shape, "b: shape [7,5] has K = 7"},
      {"output shape", [](gemm_case& g) { g.out = Tensor<std::int8_t>(Layout::matrix(4, 6), g.out.quant()); poison(g.out); }, errc::invalid_shape, "output: shape [4,6]"},
      {"rank 1 a", [](gemm_case& g) { g.a = Tensor<std::int8_t>(Layout::row_major({8}), g.a.quant()); }, errc::invalid_shape, "a: rank 1"},
      {"zero scale", [](gemm_case& g) { g.a.set_quant(Quant::per_tensor(0.0f, 0)); }, errc::invalid_quantization, "a: scale[0]"},
      {"nan scale", [](gemm_case& g) { g.out.set_quant(Quant::per_tensor(std::nanf(""), 0)); }, errc::invalid_quantization, "output: scale[0]"},
      {"inf weight scale", [](gemm_case& g) { g.b.set_quant(Quant::per_tensor(std::numeric_limits<float>::infinity(), 0)); }, errc::invalid_quantization, "b: scale[0]"},
      {"zero point range", [](gemm_case& g) { g.a.set_quant(Quant::per_tensor(0.1f, 200)); }, errc::invalid_quantization, "a: zero_point[0] = 200"},
      {"output offset range", [](gemm_case& g) { g.out.set_quant(Quant::per_tensor(0.1f, -max_output_offset - 1)); }, errc::invalid_quantization, "output: zero_point[0] = -16776961"},
      {"channel count", [](gemm_case& g) { g.b.set_quant(Quant::per_axis(1, {0.1f, 0.2f})); }, errc::invalid_quantization, "b: 2 scales given, 5 expected"},
      {"wrong weight axis", [](gemm_case& g) { g.b.set_quant(Quant::per_axis(0, std::vector<float>(8, 0.1f))); }, errc::invalid_quantization, "b: per-channel quantization must be along axis 1"},
      {"per-axis activations", [](gemm_case& g) { g.a.set_quant(Quant::per_axis(1, std::vector<float>(8, 0.1f))); }, errc::invalid_quantization, "a: activations must be quantized per tensor"},
      {"missing output quant", [](gemm_case& g) { g.out.set_quant(Quant::none()); }, errc::invalid_quantization, "output: quantization parameters are required"},
      {"missing input scale", [](gemm_case& g) { g.a.set_quant(Quant::none()); }, errc::invalid_quantization, "a: a scale is needed"},
      {"bias length", [](gemm_case& g) { g.bias = Tensor<std::int32_t>(Layout::row_major({4})); }, errc::invalid_shape, "bias: shape [4], expected [5]"},
      {"clamp order", [](gemm_case& g) { g.p.clamp = clamp_spec::range(10, -10); }, errc::invalid_argument, "clamp: bounds [10, -10]"},
      {"clamp range", [](gemm_case& g) { g.p.clamp = clamp_spec::range(-10, 200); }, errc::invalid_argument, "inside [-128, 127]"},
      {"requant count", [](gemm_case& g) { g.p.requant = {{1 << 30, 0, 0.f}, {1 << 30, 0, 0.f}}; }, errc::invalid_quantization, "requant: 2 entries given, expected 1 or 5"},
      {"requant shift", [](gemm_case& g) { g.p.requant = {{1 << 30, 31, 0.f}}; }, errc::invalid_quantization, "requant[0]: shift 31"},
      {"requant multiplier", [](gemm_case& g) { g.p.requant = {{-5, 0, 0.f}}; }, errc::invalid_quantization, "requant[0]: multiplier must be >= 0"},
      {"fp32 requant scale", [](gemm_case& g) { g.p.numerics = numerics_profile::onnx(); g.p.requant = {{0, 0, -1.f}}; }, errc::invalid_quantization, "requant[0]: fp32 scale"},
      {"profile mix", [](gemm_case& g) { g.p.numerics = numerics_profile::fp32(rounding::tflite_double); }, errc::invalid_argument, "profile: tflite double rounding needs a q31"},
      {"accumulator width", [](gemm_case& g) { g.p.numerics = numerics_profile::q31(rounding::half_up, {64, overflow_rule::wrap}); }, errc::invalid_argument, "profile: accumulator width 64"},
      {"double rounding on 40 bits", [](gemm_case& g) { g.p.numerics = numerics_profile::tflite().with_accumulator(40, overflow_rule::wrap); }, errc::unsupported, "int32 accumulators only"},
  };
  for (const bad& c : cases) {
    SECTION(c.what) {
      gemm_case g;
      c.breaker(g);
      expect_error(g.run(), c.code, c.fragment);
      CHECK(untouched(g.out));
      try {
        gemm(scalar, g.p, g.a, g.b, g.bias, g.out);
        FAIL("the throwing form did not throw");
      } catch (const error& e) {
        CHECK(e.code() == c.code);
        CHECK(std::string(e.what()).find(c.fragment) != std::string::npos);
      }
      CHECK(untouched(g.out));
    }
  }
}

TEST_CASE("gemm rejects views outside their buffers, null data, overlapping and aliased outputs", "[validation][gemm][memory]") {
  gemm_case g;
  SECTION("capacity") {
    TensorView<const std::int8_t> a(g.a.data(), Layout::matrix(4, 8), g.a.quant(), 31);
    expect_error(try_gemm(scalar, g.p, a, g.b, g.bias, g.out), errc::buffer_too_small, "a: layout (4,8):(8,1) at offset 0 needs 32 elements, buffer holds 31");
  }
  SECTION("capacity with offset") {
    TensorView<const std::int8_t> a(g.a.data(), 1, Layout::matrix(4, 8), g.a.quant(), 32);
    expect_error(try_gemm(scalar, g.p, a, g.b, g.bias, g.out), errc::buffer_too_small, "at offset 1 needs 33");
  }
  SECTION("null data") {
    TensorView<const std::int8_t> a(nullptr, Layout::matrix(4, 8), g.a.quant());
    expect_error(try_gemm(scalar, g.p, a, g.b, g.bias, g.out), errc::invalid_argument, "a: data is null");
  }
  SECTION("negative stride") {
    TensorView<const std::int8_t> a(g.a.data(), Layout::strided({4, 8}, {-8, 1}), g.a.quant());
    expect_error(try_gemm(scalar, g.p, a, g.b, g.bias, g.out), errc::invalid_layout, "a: malformed layout");
  }
  SECTION("stride count") {
    TensorView<const std::int8_t> a(g.a.data(), Layout::strided({4, 8}, {8}), g.a.quant());
    expect_error(try_gemm(scalar, g.p, a, g.b, g.bias, g.out), errc::invalid_layout, "a: malformed layout");
  }
  SECTION("output maps two elements to one address") {
    TensorView<std::int8_t> o(g.out.data(), Layout::strided({4, 5}, {1, 1}), g.out.quant());
    expect_error(try_gemm(scalar, g.p, g.a, g.b, g.bias, o), errc::invalid_layout, "output: layout (4,5):(1,1) maps two elements");
  }
  SECTION("output aliases an input") {
    Tensor<std::int8_t> buf(Layout::row_major({64}));
    poison(buf);
    TensorView<const std::int8_t> a(buf.data(), Layout::matrix(4, 8), g.a.quant());
    TensorView<std::int8_t> o(buf.data() + 20, Layout::matrix(4, 5), g.out.quant());
    expect_error(try_gemm(scalar, g.p, a, g.b, g.bias, o), errc::aliasing, "output: memory overlaps an input");
    CHECK(untouched(buf));
  }
  SECTION("int32 output with a fused activation") {
    Tensor<std::int32_t> raw(Layout::matrix(4, 5));
    g.p.clamp = clamp_spec::relu();
    expect_error(try_gemm(scalar, g.p, g.a, g.b, g.bias, raw), errc::unsupported, "clamp: a fused activation needs an int8 or uint8 output");
  }
  CHECK(untouched(g.out));
}

namespace {
struct conv_case {
  conv2d_params p;
  Tensor<std::int8_t> in{Layout::nhwc(1, 6, 6, 4), Quant::per_tensor(0.1f, 0)};
  Tensor<std::int8_t> w{Layout::ohwi(6, 3, 3, 2), Quant::per_axis(0, std::vector<float>(6, 0.1f))};
  Tensor<std::int8_t> out{Layout::nhwc(1, 6, 6, 6), Quant::per_tensor(0.5f, 0)};
  conv_case() {
    p.groups = 2;
    p.padding = padding_spec::same();
    poison(out);
  }
  status run() { return try_conv2d(scalar, p, in, w, no_bias, out); }
};
struct dw_case {
  depthwise_params p;
  Tensor<std::uint8_t> in{Layout::nhwc(1, 5, 5, 3), Quant::per_tensor(0.1f, 128)};
  Tensor<std::int8_t> w{Layout::hwc_m(3, 3, 3, 2), Quant::per_axis(2, std::vector<float>(6, 0.1f))};
  Tensor<std::uint8_t> out{Layout::nhwc(1, 3, 3, 6), Quant::per_tensor(0.5f, 128)};
  dw_case() { poison(out); }
  status run() { return try_depthwise_conv2d(scalar, p, in, w, no_bias, out); }
};
}  // namespace

TEST_CASE("conv2d rejects bad geometry and weights without writing", "[validation][conv2d]") {
  {
    conv_case c;
    REQUIRE(c.run().ok());
  }
  struct bad {
    const char* what;
    std::function<void(conv_case&)> breaker;
    errc code;
    const char* fragment;
  };
  const bad cases[] = {
      {"groups divide", [](conv_case& c) { c.p.groups = 3; }, errc::invalid_argument, "groups: 3 does not divide"},
      {"groups zero", [](conv_case& c) { c.p.groups = 0; }, errc::invalid_argument, "groups: must be >= 1"},
      {"weight channels", [](conv_case& c) { c.p.groups = 1; }, errc::invalid_shape, "weights: shape [6,3,3,2] has 2 input channels per group, expected 4"},
      {"stride", [](conv_case& c) { c.p.stride_w = 0; }, errc::invalid_argument, "stride: must be >= 1"},
      {"dilation", [](conv_case& c) { c.p.dilation_h = -1; }, errc::invalid_argument, "dilation: must be >= 1"},
      {"negative padding", [](conv_case& c) { c.p.padding = padding_spec::explicit_(1, -1, 1, 1); }, errc::invalid_argument, "padding: negative padding along height"},
      {"kernel larger than input", [](conv_case& c) { c.p.padding = padding_spec::valid(); c.p.dilation_h = 4; }, errc::invalid_shape, "input: height extent 6 plus padding 0 is smaller than the dilated kernel extent 9"},
      {"output size", [](conv_case& c) { c.p.stride_h = 2; }, errc::invalid_shape, "output: shape [1,6,6,6], expected [1,3,6,6]"},
      {"input rank", [](conv_case& c) { c.in = Tensor<std::int8_t>(Layout::row_major({6, 6, 4}), c.in.quant()); }, errc::invalid_shape, "input: rank 3"},
      {"weight rank", [](conv_case& c) { c.w = Tensor<std::int8_t>(Layout::row_major({6, 9, 2}), c.w.quant()); }, errc::invalid_shape, "weights: rank 3"},
      {"weight zero points axis", [](conv_case& c) { c.w.set_quant(Quant::per_axis(3, {0.1f, 0.1f}, {1, 2})); }, errc::invalid_quantization, "weights: per-channel zero points must be along axis 0"},
      {"weight zp range", [](conv_case& c) { c.w.set_quant(Quant::per_tensor(0.1f, 128)); }, errc::invalid_quantization, "weights: zero_point[0] = 128"},
  };
  for (const bad& b : cases) {
    SECTION(b.what) {
      conv_case c;
      b.breaker(c);
      expect_error(c.run(), b.code, b.fragment);
      CHECK(untouched(c.out));
    }
  }
}

TEST_CASE("depthwise conv2d rejects bad channel multipliers and weight shapes", "[validation][depthwise]") {
  {
    dw_case c;
    c.p.stride_h = c.p.stride_w = 2;
    c.p.padding = padding_spec::same();
    REQUIRE(c.run().ok());
  }
  SECTION("output channels not a multiple of input channels") {
    dw_case c;
    c.w = Tensor<std::int8_t>(Layout::row_major({3, 3, 7}), Quant::per_axis(2, std::vector<float>(7, 0.1f)));
    expect_error(c.run(), errc::invalid_shape, "weights: 7 output channels is not a multiple of the 3 input channels");
    CHECK(untouched(c.out));
  }
  SECTION("rank-4 weights need a leading 1") {
    dw_case c;
    c.w = Tensor<std::int8_t>(Layout::row_major({2, 3, 3, 6}), Quant::per_axis(3, std::vector<float>(6, 0.1f)));
    expect_error(c.run(), errc::invalid_shape, "expected [1, KH, KW, C*M]");
    CHECK(untouched(c.out));
  }
  SECTION("per-channel scales along the wrong axis") {
    dw_case c;
    c.w.set_quant(Quant::per_axis(0, std::vector<float>(3, 0.1f)));
    expect_error(c.run(), errc::invalid_quantization, "weights: per-channel quantization must be along axis 2");
    CHECK(untouched(c.out));
  }
  SECTION("output aliases the input") {
    dw_case c;
    TensorView<std::uint8_t> o(c.in.data(), Layout::nhwc(1, 3, 3, 6), c.out.quant());
    c.p.stride_h = c.p.stride_w = 2;
    c.p.padding = padding_spec::same();
    expect_error(try_depthwise_conv2d(scalar, c.p, c.in, c.w, no_bias, o), errc::aliasing, "output: memory overlaps an input");
  }
}

TEST_CASE("layouts deeper than six dimensions are rejected", "[validation][layout]") {
  const Layout l = Layout::row_major({1, 1, 1, 1, 1, 1, 2});
  CHECK_FALSE(l.well_formed());
  Tensor<std::int8_t> b(Layout::matrix(8, 5), Quant::per_tensor(0.1f));
  Tensor<std::int8_t> out(Layout::matrix(4, 5), Quant::per_tensor(0.1f));
  std::int8_t storage[8] = {};
  TensorView<const std::int8_t> a(storage, l, Quant::per_tensor(0.1f));
  expect_error(try_gemm(scalar, gemm_params{}, a, b, no_bias, out), errc::invalid_layout, "a: malformed layout");
}
