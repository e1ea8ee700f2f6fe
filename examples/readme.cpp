// The first example of README.md ("Use it"): a per-channel int8 GEMM as a simd plan, then the
// same GEMM as a one-shot call on the reference backend, checked against each other. The lines between the README markers
// are what README.md shows; tests/readme_sync.cpp keeps the two equal.
#include <cstdio>
#include <vector>

// README begin
#include <npuq/npuq.hpp>
using namespace npuq;
// README end

int main() {
  // README begin

  Tensor<std::int8_t> x(Layout::matrix(4, 64), Quant::per_tensor(0.02f, -3));           // activations
  Tensor<std::int8_t> w(Layout::matrix(64, 16), Quant::per_axis(1, std::vector<float>(16, 0.01f)));  // per-channel weights
  Tensor<std::int8_t> y(Layout::matrix(4, 16), Quant::per_tensor(0.05f, 0));
  gemm_params p;
  p.numerics = numerics_profile::tflite();  // or tosa_single(), onnx(), q31(rounding::half_even), ...
  p.clamp = clamp_spec::relu();
  // README end
  for (int i = 0; i < 4 * 64; ++i) x.data()[i] = static_cast<std::int8_t>(i % 29 - 14);
  for (int i = 0; i < 64 * 16; ++i) w.data()[i] = static_cast<std::int8_t>(i % 13 - 6);
  // README begin

  // A plan: made once (validated, kernels chosen, weights packed, requantization folded, scratch
  // sized), then run per inference with no allocation. The fast path.
  auto plan = make_gemm_plan(simd.with_threads(2), p, x, w, no_bias, y);   // threads: OpenMP
  plan.run(x, y);                           // x and y: the shapes and quantization the plan was made for

  // The one-shot call: the same bytes (here from scalar, the readable reference); it validates,
  // packs and allocates on every call.
  Tensor<std::int8_t> y_ref(Layout::matrix(4, 16), Quant::per_tensor(0.05f, 0));
  gemm(scalar, p, x, w, no_bias, y_ref);    // throws npuq::error on bad input; try_gemm returns a status
  // README end
  std::printf("y[0][0] = %d\n", y.data()[0]);
  for (int i = 0; i < 4 * 16; ++i)
    if (y.data()[i] != y_ref.data()[i]) {
      std::printf("plan output %d differs from the reference\n", i);
      return 1;
    }
  std::printf("plan %s matches the reference\n", plan.kernel_name().c_str());
  return 0;
}
