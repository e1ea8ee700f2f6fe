// The INT4 and sparse example of README.md: a W4A8 GEMM, a 2:4 sparse GEMM and a 2:4 sparse
// conv2d on the simd backend, each checked against the dense int8 op on the same (unpacked,
// pruned) weights. The lines between the README markers are what README.md shows;
// tests/readme_sync.cpp keeps the two equal.
#include <cstdio>
#include <vector>

#include <npuq/npuq.hpp>

#include "example_support.hpp"
using namespace npuq;

namespace {
using npuq_example::fill;
constexpr const char* mismatch = "differs from the dense int8 op";
bool same(const char* what, const Tensor<std::int8_t>& a, const Tensor<std::int8_t>& b) {
  return npuq_example::same(what, mismatch, a, b);
}
}  // namespace

int main() {
  Tensor<std::int8_t> x(Layout::matrix(4, 64), Quant::per_tensor(0.02f, -3));
  Tensor<std::int8_t> w(Layout::matrix(64, 16), Quant::per_axis(1, std::vector<float>(16, 0.01f)));  // [K, N]
  Tensor<std::int8_t> y(Layout::matrix(4, 16), Quant::per_tensor(0.05f, 0)), y_dense(y.layout(), y.quant());
  const gemm_params p;
  Tensor<std::int8_t> image(Layout::nhwc(1, 8, 8, 4), Quant::per_tensor(0.02f, 0));
  Tensor<std::int8_t> fmap(Layout::nhwc(1, 6, 6, 8), Quant::per_tensor(0.05f, 0)), fmap_dense(fmap.layout(), fmap.quant());
  Tensor<std::int8_t> wc(Layout::ohwi(8, 3, 3, 4), Quant::per_axis(0, std::vector<float>(8, 0.01f)));
  fill(x, 23);
  fill(w, 15);  // values in [-7, 7]: int4 holds them
  fill(image, 17);
  fill(wc, 9);

  // README begin
  Tensor<int4> w4(Layout::matrix(64, 16), Quant::per_axis(1, std::vector<float>(16, 0.01f)));  // packed nibbles
  throw_if_error(pack_int4(w.cview(), w4.view()));                    // from int8 values in [-8, 7]
  gemm(simd, p, x, w4, no_bias, y);                                   // W4A8, equals the int8 GEMM on the unpacked weights
  // README end
  gemm(scalar, p, x, w, no_bias, y_dense);
  if (!same("int4 gemm", y, y_dense)) return 1;
  const int y4 = y.data()[0];

  // README begin

  sparse_2_4_matrix<> w24;
  throw_if_error(prune_2_4(w.view()));                                // magnitude pruning to 2:4 (or compress_2_4 as is)
  throw_if_error(compress_2_4(w.cview(), &w24));
  gemm(simd, p, x, w24, no_bias, y);                                  // 2:4 weights, equals the dense GEMM
  // README end
  gemm(scalar, p, x, w, no_bias, y_dense);
  if (!same("2:4 gemm", y, y_dense)) return 1;

  // README begin

  // Sparse conv2d: dense conv weights (OHWI here; Layout::oihw / Layout::hwio views work too)
  // pruned and compressed into sparse_conv2d_weights, which carry the kernel extent.
  sparse_conv2d_weights<sparse_2_4_matrix<>> wc24;
  throw_if_error(prune_conv2d_2_4(wc.view()));                        // wc: OHWI [8, 3, 3, 4], pruned in place
  throw_if_error(compress_conv2d_2_4(wc.cview(), &wc24));
  conv2d(simd, conv2d_params{}, image, wc24, no_bias, fmap);          // image NHWC [1, 8, 8, 4]
  // README end
  conv2d(scalar, conv2d_params{}, image, wc, no_bias, fmap_dense);
  if (!same("2:4 conv2d", fmap, fmap_dense)) return 1;
  std::printf("int4 y[0][0] = %d, 2:4 y[0][0] = %d, sparse conv fmap[0] = %d: equal to the dense int8 ops\n", y4, y.data()[0],
              fmap.data()[0]);
  return 0;
}
