// The usage example from README.md, kept compiling and running by the test suite.
#include <cstdio>
#include <vector>

#include <npuq/npuq.hpp>
using namespace npuq;

int main() {
  Tensor<std::int8_t> x(Layout::matrix(4, 64), Quant::per_tensor(0.02f, -3));           // activations
  Tensor<std::int8_t> w(Layout::matrix(64, 16), Quant::per_axis(1, std::vector<float>(16, 0.01f)));  // per-channel weights
  Tensor<std::int8_t> y(Layout::matrix(4, 16), Quant::per_tensor(0.05f, 0));
  gemm_params p;
  p.numerics = numerics_profile::tflite();  // or tosa_single(), onnx(), q31(rounding::half_even), ...
  p.clamp = clamp_spec::relu();
  gemm(scalar, p, x, w, no_bias, y);        // throws npuq::error on bad input; try_gemm returns a status
  std::printf("y[0][0] = %d\n", y.data()[0]);
  return 0;
}
