// INT4 weights (issue 5) against our own int8 path, side by side in one run:
//
//   int4/gemv-4096/...            1 x 4096 x 4096: int8 GEMV (packed int8 weights, per-channel,
//                                 int8 out) vs W4A8 GEMV (packed int4, per-channel, int8 out) and
//                                 the group-32 float-output GEMV (fp32 and fp16 scale storage).
//                                 Target: int4 >= 1.8x int8 (memory bound: half the bytes).
//   int4/gemm-64x4096x4096/...    int8 GEMM vs group-32 float-output W4A8 GEMM.
//                                 Target: >= 70% of the int8 GEMM's GOPS.
//
// Every variant runs at each ISA level this CPU supports; the label names the kernel that ran.
// bytes_per_second counts the weight bytes streamed (int8: K*N; int4: K*N/2, without scales).
#include <npuq/npuq.hpp>
#include <npuq/simd.hpp>

#include <string>

#include "bench_common.hpp"

namespace npuq_bench {
namespace {

// int4 weights [K, N] (stored [N, K]) with the values of a fixed random int8 source clipped to
// [-8, 7], per-channel or group-32 scales.
struct int4_data {
  npuq::Tensor<npuq::int4> store;
  npuq::TensorView<const npuq::int4> b;

  int4_data(std::int64_t K, std::int64_t N, npuq::Quant q) : store(npuq::Layout::matrix(N, K)) {
    const auto v = random_s8(static_cast<std::size_t>(K * N), 7);
    const npuq::TensorView<npuq::int4> s = store.view();
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t k = 0; k < K; ++k) s.set(static_cast<std::int8_t>(v[static_cast<std::size_t>(n * K + k)] >> 4), n, k);
    b = npuq::TensorView<const npuq::int4>(store.data(), 0, npuq::Layout::col_major(K, N), std::move(q), K * N);
  }
};

npuq::Quant group_quant(std::int64_t K, std::int64_t N, std::int64_t gs) {
  const std::int64_t G = (K + gs - 1) / gs;
  std::vector<float> s(static_cast<std::size_t>(N * G));
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = npuq::fp16_to_float(npuq::float_to_fp16(w_scale_nominal * (0.5f + float(i % 16) / 16.0f)));
  return npuq::Quant::per_group(1, 0, gs, std::move(s));
}

void int8_gemm(benchmark::State& state, gemm_shape s, npuq::isa level) {
  gemm_data d(s);
  npuq::packed_gemm_weights<std::int8_t> packed;
  npuq::throw_if_error(npuq::pack_gemm_weights(npuq::simd_backend{level}, d.b, &packed));
  const npuq::simd_backend be{level};
  timed_weights(state, [&] { npuq::gemm(be, d.params, d.a, packed, d.bias, d.out); }, s.macs(), double(s.K) * double(s.N));
}

void w4_gemm(benchmark::State& state, gemm_shape s, npuq::isa level) {
  gemm_data d(s);  // activations, bias, output quantization as the int8 variant
  int4_data w(s.K, s.N, npuq::Quant::per_axis(1, weight_scales(s.N)));
  npuq::packed_int4_weights packed;
  npuq::throw_if_error(npuq::pack_gemm_weights(npuq::simd, w.b, &packed));
  const npuq::simd_backend be{level};
  timed_weights(state, [&] { npuq::gemm(be, d.params, d.a, packed, d.bias, d.out); }, s.macs(), double(s.K) * double(s.N) / 2);
}

void w4_grouped(benchmark::State& state, gemm_shape s, npuq::isa level, std::int64_t gs, npuq::scale_storage storage) {
  gemm_data d(s);
  int4_data w(s.K, s.N, group_quant(s.K, s.N, gs));
  npuq::packed_int4_weights packed;
  npuq::throw_if_error(npuq::pack_gemm_weights(npuq::simd, w.b, &packed, storage));
  npuq::Tensor<float> out(npuq::Layout::matrix(s.M, s.N));
  const npuq::simd_backend be{level};
  timed_weights(state, [&] { npuq::gemm_grouped(be, npuq::gemm_grouped_params{}, d.a, packed, npuq::no_bias, out); }, s.macs(),
        double(s.K) * double(s.N) / 2);
}

}  // namespace

void register_int4() {
  const gemm_shape gemv{"gemv-4096", 1, 4096, 4096};
  const gemm_shape gemm{"gemm-64x4096x4096", 64, 4096, 4096};
  for (npuq::isa level : npuq::cpu().levels()) {
    const std::string l = npuq::to_string(level);
    add(std::string("int4/") + gemv.name + "/int8_simd_" + l, int8_gemm, gemv, level);
    add(std::string("int4/") + gemv.name + "/w4_simd_" + l, w4_gemm, gemv, level);
    add(std::string("int4/") + gemv.name + "/w4_g32_f32out_simd_" + l, w4_grouped, gemv, level, std::int64_t{32}, npuq::scale_storage::fp32);
    add(std::string("int4/") + gemv.name + "/w4_g32_fp16scales_f32out_simd_" + l, w4_grouped, gemv, level, std::int64_t{32},
        npuq::scale_storage::fp16);
  }
  for (npuq::isa level : npuq::cpu().levels()) {
    const std::string l = npuq::to_string(level);
    add(std::string("int4/") + gemm.name + "/int8_simd_" + l, int8_gemm, gemm, level);
    add(std::string("int4/") + gemm.name + "/w4_g32_f32out_simd_" + l, w4_grouped, gemm, level, std::int64_t{32}, npuq::scale_storage::fp32);
  }
}

}  // namespace npuq_bench
