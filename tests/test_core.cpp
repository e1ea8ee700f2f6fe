// Layout, TensorView, Tensor and quantization validation.
#include "support/catch.hpp"

#include <npuq/npuq.hpp>

using namespace npuq;

TEST_CASE("layout factories print shape and strides", "[layout]") {
  CHECK(Layout::nhwc(1, 2, 3, 4).to_string() == "(1,2,3,4):(24,12,4,1)");
  CHECK(Layout::nchw(1, 4, 2, 3).to_string() == "(1,2,3,4):(24,3,1,6)");
  CHECK(Layout::col_major(3, 5).to_string() == "(3,5):(1,3)");
  CHECK(Layout::ohwi(8, 3, 3, 4).to_string() == "(8,3,3,4):(36,12,4,1)");
  CHECK(Layout::oihw(8, 4, 3, 3).to_string() == "(8,3,3,4):(36,3,1,9)");
  CHECK(Layout::hwc_m(3, 3, 4, 2).to_string() == "(3,3,8):(24,8,1)");
}

TEST_CASE("ops compile and run on the scalar backend", "[smoke]") {
  Tensor<std::int8_t> a(Layout::matrix(2, 3), Quant::per_tensor(0.5f, 1));
  Tensor<std::int8_t> b(Layout::matrix(3, 2), Quant::per_tensor(0.25f, 0));
  Tensor<std::int32_t> raw(Layout::matrix(2, 2));
  Tensor<std::int8_t> q(Layout::matrix(2, 2), Quant::per_tensor(1.0f, 0));
  for (int i = 0; i < 6; ++i) a.data()[i] = static_cast<std::int8_t>(i);
  for (int i = 0; i < 6; ++i) b.data()[i] = static_cast<std::int8_t>(i - 2);
  gemm(scalar, gemm_params{}, a, b, no_bias, raw);
  // a - 1 = [[-1,0,1],[2,3,4]], b = [[-2,-1],[0,1],[2,3]]
  CHECK(raw.data()[0] == 4);
  CHECK(raw.data()[1] == 4);
  CHECK(raw.data()[2] == 4);
  CHECK(raw.data()[3] == 13);
  gemm(scalar, gemm_params{}, a, b, no_bias, q);
  CHECK(q.data()[3] == 2);  // 13 * 0.125 = 1.625 -> 2

  Tensor<std::uint8_t> in(Layout::nhwc(1, 4, 4, 2), Quant::per_tensor(0.1f, 128));
  Tensor<std::int8_t> w(Layout::ohwi(3, 3, 3, 2), Quant::per_axis(0, {0.1f, 0.2f, 0.3f}));
  Tensor<std::uint8_t> out(Layout::nhwc(1, 4, 4, 3), Quant::per_tensor(0.5f, 128));
  conv2d_params cp;
  cp.padding = padding_spec::same();
  conv2d(scalar, cp, in, w, no_bias, out);
  Tensor<std::int8_t> dw(Layout::hwc_m(3, 3, 2, 2), Quant::per_axis(2, {0.1f, 0.2f, 0.3f, 0.4f}));
  Tensor<std::uint8_t> dout(Layout::nhwc(1, 2, 2, 4), Quant::per_tensor(0.5f, 128));
  depthwise_params dp;
  dp.stride_h = dp.stride_w = 2;
  dp.padding = padding_spec::same();
  depthwise_conv2d(scalar, dp, in, dw, no_bias, dout);
  CHECK(out.data()[0] == 128);
}
