// The softmax and attention example of README.md: TFLite's int8 softmax, causal attention over
// a prompt, then one decode step against a KV cache, on the simd backend, each checked against
// the scalar reference. The lines between the README markers are what README.md shows;
// tests/readme_sync.cpp keeps the two equal.
#include <cstdio>

#include <npuq/npuq.hpp>

#include "example_support.hpp"
using namespace npuq;

namespace {
using npuq_example::fill;
constexpr const char* mismatch = "simd differs from scalar";
bool same(const char* what, const Tensor<std::int8_t>& a, const Tensor<std::int8_t>& b) {
  return npuq_example::same(what, mismatch, a, b);
}
}  // namespace

int main() {
  // README begin
  Tensor<std::int8_t> scores(Layout::matrix(2, 10), Quant::per_tensor(0.1f, 0));  // logits, scale 0.1
  Tensor<std::int8_t> probs(Layout::matrix(2, 10));        // TFLite's output quantization: 1/256, zero point -128
  const float beta = 1.0f, input_scale = 0.1f;
  softmax(simd, softmax_params::tflite(beta, input_scale), scores, probs);   // int8/uint8; int16 too

  const int H = 12, S = 5, d = 64, dv = 64;                // heads, prompt length, head sizes
  const Quant k_quant = Quant::per_tensor(0.05f, 0), v_quant = Quant::per_tensor(0.02f, 0);
  Tensor<std::int8_t> q(Layout::row_major({H, S, d}), Quant::per_tensor(0.05f, 0));
  Tensor<std::int8_t> k(Layout::row_major({H, S, d}), k_quant), v(Layout::row_major({H, S, dv}), v_quant);
  Tensor<std::int8_t> out(Layout::row_major({H, S, dv}), Quant::per_tensor(0.02f, 0));
  attention_params ap;
  ap.score = Quant::per_tensor(0.2f, 0);  // int8 scores of Q K^T
  ap.causal = true;
  attention(simd, ap, q, k, v, no_mask, out);             // q [H,S,d], k [H,T,d], v [H,T,dv]

  kv_cache_shape shape;
  shape.heads = H;
  shape.capacity = 4096;                                  // positions
  shape.d = d;
  shape.dv = dv;
  kv_cache<std::int8_t> cache(shape, k_quant, v_quant);   // or kv_cache<int4>
  cache.append(k, v);                                     // the prompt's keys and values
  Tensor<std::int8_t> q_new(Layout::row_major({H, 1, d}), Quant::per_tensor(0.05f, 0));
  Tensor<std::int8_t> out_new(Layout::row_major({H, 1, dv}), Quant::per_tensor(0.02f, 0));
  attention(simd, ap, q_new, cache, no_mask, out_new);    // one decode step
  // README end

  // The same calls on the reference backend, on filled inputs.
  fill(scores, 23);
  fill(q, 41);
  fill(k, 37);
  fill(v, 31);
  fill(q_new, 29);
  Tensor<std::int8_t> probs_ref(Layout::matrix(2, 10)), out_ref(out.layout(), out.quant()), new_ref(out_new.layout(), out_new.quant());
  softmax(simd, softmax_params::tflite(beta, input_scale), scores, probs);
  softmax(scalar, softmax_params::tflite(beta, input_scale), scores, probs_ref);
  attention(simd, ap, q, k, v, no_mask, out);
  attention(scalar, ap, q, k, v, no_mask, out_ref);
  cache.clear();
  cache.append(k, v);
  attention(simd, ap, q_new, cache, no_mask, out_new);
  attention(scalar, ap, q_new, cache, no_mask, new_ref);
  if (!same("softmax", probs, probs_ref) || !same("attention", out, out_ref) || !same("decode", out_new, new_ref)) return 1;
  std::printf("probs[0][9] = %d, out[0][4][0] = %d, decode out[0][0][0] = %d: simd equals scalar\n", probs.data()[9],
              out.data()[4 * dv], out_new.data()[0]);
  return 0;
}
