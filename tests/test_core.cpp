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

TEST_CASE("layout size, span, slicing and transposes", "[layout]") {
  const Layout l = Layout::nhwc(2, 3, 4, 5);
  CHECK(l.size() == 120);
  CHECK(l.span() == 120);
  CHECK(l.is_row_major());
  CHECK(l(1, 2, 3, 4) == 119);
  std::int64_t off = 0;
  const Layout s = l.slice(1, 1, 2, &off);
  CHECK(off == 20);
  CHECK(s.to_string() == "(2,2,4,5):(60,20,5,1)");
  CHECK(s.span() == 60 + 20 + 15 + 4 + 1);
  CHECK_FALSE(s.is_row_major());
  const Layout t = Layout::matrix(3, 7).transpose(0, 1);
  CHECK(t == Layout::col_major(7, 3));
  CHECK(Layout::row_major({0, 5}).span() == 0);
  CHECK(Layout::strided({3, 4}, {4, 1}).is_non_overlapping());
  CHECK_FALSE(Layout::strided({3, 4}, {2, 1}).is_non_overlapping());
  CHECK(Layout::strided({3, 1, 4}, {4, 0, 1}).is_non_overlapping());  // extent-1 dims may have any stride
  std::vector<std::int64_t> visited;
  for_each_index(Layout::col_major(2, 3), [&](const std::int64_t* i) { visited.push_back(Layout::col_major(2, 3).offset_of(i)); });
  CHECK(visited == std::vector<std::int64_t>{0, 2, 4, 1, 3, 5});
}

TEST_CASE("tensors are 64-byte aligned, zeroed, and views convert to const", "[tensor]") {
  Tensor<std::int32_t> t(Layout::matrix(3, 5), Quant::per_tensor(0.5f, 0));
  CHECK(reinterpret_cast<std::uintptr_t>(t.data()) % 64 == 0);
  for (int i = 0; i < 15; ++i) CHECK(t.data()[i] == 0);
  TensorView<std::int32_t> v = t.view();
  v.set(42, 2, 4);
  TensorView<const std::int32_t> c = v;
  CHECK(c(2, 4) == 42);
  CHECK(c.capacity() == 15);
  CHECK(c.slice(0, 2, 1)(0, 4) == 42);
  CHECK(t.storage_bytes() == 60);
  Tensor<int4> packed(Layout::matrix(3, 3));
  CHECK(packed.storage_bytes() == 5);
}

TEST_CASE("int4 views read and write nibbles in TFLite order, from any element offset", "[tensor][int4]") {
  std::uint8_t bytes[3] = {0x21, 0xF8, 0x00};
  TensorView<int4> v(bytes, Layout::row_major({4}), {}, 6);
  CHECK(v(0) == 1);
  CHECK(v(1) == 2);
  CHECK(v(2) == -8);
  CHECK(v(3) == -1);
  // A row starting mid-byte (element offset 3): writes touch only its own nibbles.
  TensorView<int4> row(bytes, 3, Layout::row_major({2}), {}, 6);
  row.set(-3, 0);
  row.set(7, 1);
  CHECK(bytes[0] == 0x21);
  CHECK(bytes[1] == 0xD8);
  CHECK(bytes[2] == 0x07);
  const auto r = row.byte_range();
  CHECK(r.first == bytes + 1);
  CHECK(r.second == bytes + 3);
}

TEST_CASE("quantization validation names the argument", "[quant]") {
  const Layout w = Layout::ohwi(4, 3, 3, 2);
  CHECK(validate_quant(Quant::per_axis(0, {1, 2, 3, 4}), w, dtype::s8, "weights", true).ok());
  CHECK(validate_quant(Quant::per_group(0, 3, 1, std::vector<float>(8, 1.0f)), w, dtype::s4, "weights", true).ok());
  const status s = validate_quant(Quant::per_group(0, 3, 1, std::vector<float>(4, 1.0f)), w, dtype::s4, "weights", true);
  CHECK(s.code() == errc::invalid_quantization);
  CHECK(s.message() == "weights: 4 scales given, 8 expected along axis 0 of [4,3,3,2]");
  CHECK(validate_quant(Quant::per_tensor(1.0f, 8), w, dtype::s4, "weights", true).message() ==
        "weights: zero_point[0] = 8 is outside [-8, 7] for int4");
  CHECK(validate_quant(Quant::none(), w, dtype::s8, "weights", true).message() == "weights: quantization parameters are required");
  CHECK(validate_quant(Quant::per_axis(5, {1.0f}), w, dtype::s8, "w", true).message() == "w: quantization axis 5 is outside rank 4");
}
