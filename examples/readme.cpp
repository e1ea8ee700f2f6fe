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

  // The fast path (README, "Use it").
  Tensor<std::int8_t> y_ref(Layout::matrix(4, 16), Quant::per_tensor(0.05f, 0));
  for (int i = 0; i < 4 * 64; ++i) x.data()[i] = static_cast<std::int8_t>(i % 29 - 14);
  for (int i = 0; i < 64 * 16; ++i) w.data()[i] = static_cast<std::int8_t>(i % 13 - 6);
  gemm(scalar, p, x, w, no_bias, y_ref);
  auto plan = make_gemm_plan(simd.with_threads(2), p, x, w, no_bias, y);   // threads: OpenMP
  plan.run(x, y);                           // x and y: the shapes and quantization the plan was made for
  for (int i = 0; i < 4 * 16; ++i)
    if (y.data()[i] != y_ref.data()[i]) {
      std::printf("plan output %d differs from the reference\n", i);
      return 1;
    }
  std::printf("plan %s matches the reference\n", plan.kernel_name().c_str());

  // Softmax and attention (README, "Softmax and attention").
  Tensor<std::int8_t> scores(Layout::matrix(2, 10), Quant::per_tensor(0.1f, 0)), probs(Layout::matrix(2, 10));
  for (int i = 0; i < 20; ++i) scores.data()[i] = static_cast<std::int8_t>(i * 7 - 60);
  softmax(simd, softmax_params::tflite(1.0f, 0.1f), scores, probs);
  const Quant k_quant = Quant::per_tensor(0.05f, 0), v_quant = Quant::per_tensor(0.02f, 0);
  Tensor<std::int8_t> q(Layout::row_major({12, 5, 64}), Quant::per_tensor(0.05f, 0)), k(Layout::row_major({12, 5, 64}), k_quant),
      v(Layout::row_major({12, 5, 64}), v_quant), out(Layout::row_major({12, 5, 64}), Quant::per_tensor(0.02f, 0));
  for (std::int64_t i = 0; i < q.size(); ++i) q.data()[i] = k.data()[i] = v.data()[i] = static_cast<std::int8_t>(i % 41 - 20);
  attention_params ap;
  ap.score = Quant::per_tensor(0.2f, 0);  // int8 scores of Q K^T
  ap.causal = true;
  attention(simd, ap, q, k, v, no_mask, out);             // q [H,S,d], k [H,T,d], v [H,T,dv]
  kv_cache<std::int8_t> cache(12, 4096, 64, 64, k_quant, v_quant);   // or kv_cache<int4>
  cache.append(k, v);
  Tensor<std::int8_t> q_new(Layout::row_major({12, 1, 64}), Quant::per_tensor(0.05f, 0)), out_new(Layout::row_major({12, 1, 64}), Quant::per_tensor(0.02f, 0));
  attention(simd, ap, q_new, cache, no_mask, out_new);    // one decode step
  std::printf("probs[0][9] = %d, out[0][4][0] = %d, decode out[0][0][0] = %d\n", probs.data()[9], out.data()[4 * 64], out_new.data()[0]);

  // INT4 and sparse weights (README, same section).
  for (int i = 0; i < 64 * 16; ++i) w.data()[i] = static_cast<std::int8_t>(i % 15 - 7);
  for (int i = 0; i < 4 * 64; ++i) x.data()[i] = static_cast<std::int8_t>(i % 23 - 11);
  Tensor<int4> w4(Layout::matrix(64, 16), Quant::per_axis(1, std::vector<float>(16, 0.01f)));  // packed nibbles
  throw_if_error(pack_int4(w.cview(), w4.view()));
  gemm(simd, p, x, w4, no_bias, y);                                   // W4A8, equals the int8 GEMM on the unpacked weights
  const int y4 = y.data()[0];
  sparse_2_4_matrix<> w24;
  throw_if_error(prune_2_4(w.view()));                                // magnitude pruning to 2:4 (or compress_2_4 as is)
  throw_if_error(compress_2_4(w.cview(), &w24));
  gemm(simd, p, x, w24, no_bias, y);                                  // 2:4 weights, equals the dense GEMM
  Tensor<std::int8_t> image(Layout::nhwc(1, 8, 8, 4), Quant::per_tensor(0.02f, 0)), fmap(Layout::nhwc(1, 6, 6, 8), Quant::per_tensor(0.05f, 0));
  Tensor<std::int8_t> k3(Layout::matrix(3 * 3 * 4, 8), Quant::per_tensor(0.01f, 0));  // OHWI [8, 3, 3, 4] read as [36, 8]
  for (int i = 0; i < 36 * 8; ++i) k3.data()[i] = static_cast<std::int8_t>(i % 9 - 4);
  for (int i = 0; i < 8 * 8 * 4; ++i) image.data()[i] = static_cast<std::int8_t>(i % 17 - 8);
  throw_if_error(prune_2_4(k3.view()));
  sparse_2_4_matrix<> w24_3x3;
  throw_if_error(compress_2_4(k3.cview(), &w24_3x3));
  conv2d_sparse(simd, conv2d_params{}, image, w24_3x3, sparse_conv_kernel{3, 3}, no_bias, fmap);
  std::printf("int4 y[0][0] = %d, 2:4 y[0][0] = %d, sparse conv fmap[0] = %d\n", y4, y.data()[0], fmap.data()[0]);
  return 0;
}
