// The non-throwing API in a translation unit built with -fno-exceptions (no Catch2 here, since
// it needs exceptions): every try_* entry point returns a status, valid calls succeed, invalid
// ones report the problem and write nothing.
#include <cstdio>
#include <cstring>
#include <string>

#include <npuq/npuq.hpp>

#if NPUQ_HAS_EXCEPTIONS
#error "this test must be compiled with -fno-exceptions"
#endif

namespace {
int passed = 0, failed = 0;
void check(bool ok, const char* what) {
  if (ok) {
    ++passed;
  } else {
    ++failed;
    std::printf("FAILED: %s\n", what);
  }
}
bool mentions(const npuq::status& s, const char* fragment) {
  return !s.ok() && s.message().find(fragment) != std::string::npos;
}
}  // namespace

int main() {
  using namespace npuq;
  Tensor<std::int8_t> a(Layout::matrix(2, 3), Quant::per_tensor(0.5f, 1));
  Tensor<std::int8_t> b(Layout::matrix(3, 2), Quant::per_tensor(0.25f, 0));
  Tensor<std::int8_t> out(Layout::matrix(2, 2), Quant::per_tensor(1.0f, 0));
  for (int i = 0; i < 6; ++i) a.data()[i] = static_cast<std::int8_t>(i);
  for (int i = 0; i < 6; ++i) b.data()[i] = static_cast<std::int8_t>(i - 2);

  check(try_gemm(scalar, gemm_params{}, a, b, no_bias, out).ok(), "valid gemm succeeds");
  check(out.data()[3] == 2, "gemm result");  // (2*0 + 3*1 + 4*3 - ...) = 13 * 0.125 -> 2

  std::memset(out.data(), 0x5A, 4);
  Tensor<std::int8_t> bad_b(Layout::matrix(4, 2), Quant::per_tensor(0.25f, 0));
  const status s = try_gemm(scalar, gemm_params{}, a, bad_b, no_bias, out);
  check(s.code() == errc::invalid_shape && mentions(s, "b: shape [4,2]"), "K mismatch reported");
  check(out.data()[0] == 0x5A && out.data()[3] == 0x5A, "nothing written on failure");

  Tensor<std::int8_t> in(Layout::nhwc(1, 4, 4, 2), Quant::per_tensor(0.1f, 0));
  Tensor<std::int8_t> w(Layout::ohwi(3, 3, 3, 2), Quant::per_tensor(0.1f));
  Tensor<std::int8_t> cout(Layout::nhwc(1, 4, 4, 3), Quant::per_tensor(0.5f, 0));
  conv2d_params cp;
  check(mentions(try_conv2d(scalar, cp, in, w, no_bias, cout), "output: shape [1,4,4,3], expected [1,2,2,3]"), "conv size reported");
  cp.padding = padding_spec::same();
  check(try_conv2d(scalar, cp, in, w, no_bias, cout).ok(), "valid conv succeeds");

  Tensor<std::int8_t> dw(Layout::hwc_m(3, 3, 2, 1), Quant::per_tensor(0.1f));
  Tensor<std::int8_t> dout(Layout::nhwc(1, 4, 4, 2), Quant::per_tensor(0.5f, 0));
  depthwise_params dp;
  dp.stride_h = 0;
  check(mentions(try_depthwise_conv2d(scalar, dp, in, dw, no_bias, dout), "stride: must be >= 1"), "stride reported");

  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
