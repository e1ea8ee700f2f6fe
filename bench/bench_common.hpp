// Shared pieces of the npuq benchmarks: the benchmark shapes (named as in PERF.md), the
// quantization every variant uses, deterministic data, and the counters.
//
// Every variant of a shape (npuq scalar, npuq simd at each ISA level, oneDNN, XNNPACK) runs the
// same problem: int8 activations (zero point 0), int8 weights with per-output-channel scales
// (XNNPACK's 2022 fully-connected operator takes one weight scale, see bench_xnnpack.cpp),
// an int32 bias, int8 output requantized with a per-tensor scale. Each file registers its
// variants per shape so that Google Benchmark runs (and prints) the peers side by side.
//
// Counter convention: GOPS = 2 * MACs per iteration / 1e9, as a rate (so the JSON value is
// already in GOPS); a MAC is one int8 x int8 product accumulated. GEMV also reports
// bytes_per_second (the int8 weights it streams).
#pragma once

#include <benchmark/benchmark.h>
#include <npuq/npuq.hpp>
#include <npuq/simd.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace npuq_bench {

struct gemm_shape {
  const char* name;
  std::int64_t M, N, K;
  double macs() const { return double(M) * double(N) * double(K); }
};

// The GEMM shapes of PERF.md (M x N x K).
inline const std::vector<gemm_shape>& gemm_shapes() {
  static const std::vector<gemm_shape> s = {
      {"gemv-4096", 1, 4096, 4096},           {"bert-ffn-64tok", 64, 768, 3072},
      {"sq256", 256, 256, 256},               {"sq1024", 1024, 1024, 1024},
      {"mbv2-1x1-expand", 3136, 144, 24},     {"mbv2-1x1-project", 3136, 24, 144},
  };
  return s;
}

// A 3x3 convolution layer, batch 1, padding 1 on every side, NHWC. Depthwise when dw (OC == C).
struct conv_shape {
  const char* name;
  bool dw;
  std::int64_t H, W, C, OC, stride;
  static constexpr std::int64_t k = 3, pad = 1;
  std::int64_t OH() const { return (H + 2 * pad - k) / stride + 1; }
  std::int64_t OW() const { return (W + 2 * pad - k) / stride + 1; }
  double macs() const { return double(OH()) * double(OW()) * double(OC) * double(k * k) * double(dw ? 1 : C); }
  const char* op() const { return dw ? "dwconv" : "conv"; }
};

// The six conv layers of PERF.md, and a 3x3 layer on 16 channels (kernel rows of 48 bytes: the
// AMX direct convolution's rows form; 3x3x16 stride-2 layers open many small detectors).
inline const std::vector<conv_shape>& conv_shapes() {
  static const std::vector<conv_shape> s = {
      {"mbv2-conv0", false, 224, 224, 3, 32, 2},
      {"mbv2-dw-112x112x32-s1", true, 112, 112, 32, 32, 1},
      {"mbv2-dw-112x112x96-s2", true, 112, 112, 96, 96, 2},
      {"mbv2-dw-56x56x144-s1", true, 56, 56, 144, 144, 1},
      {"mbv2-dw-14x14x576-s1", true, 14, 14, 576, 576, 1},
      {"resnet-56x56x64", false, 56, 56, 64, 64, 1},
      {"det-112x112x16-s2", false, 112, 112, 16, 32, 2},
  };
  return s;
}

// Quantization shared by every variant.
constexpr float in_scale = 0.02f;
constexpr std::int32_t in_zero_point = 0;
constexpr float w_scale_nominal = 0.01f;  // XNNPACK fully-connected's single weight scale

// Per-output-channel weight scales around w_scale_nominal.
inline std::vector<float> weight_scales(std::int64_t n) {
  std::vector<float> s(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) s[static_cast<std::size_t>(i)] = w_scale_nominal * (0.5f + float(i % 16) / 16.0f);
  return s;
}

// An output scale that keeps a K-deep dot product of uniform int8 values mostly unsaturated.
inline float out_scale(std::int64_t k) { return in_scale * w_scale_nominal * 74.0f * 74.0f * std::sqrt(float(k)) / 40.0f; }

inline std::vector<std::int8_t> random_s8(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> d(-127, 127);
  std::vector<std::int8_t> v(n);
  for (auto& x : v) x = static_cast<std::int8_t>(d(gen));
  return v;
}

inline std::vector<std::int32_t> random_bias(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> d(-5000, 5000);
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = d(gen);
  return v;
}

inline void set_gops(benchmark::State& state, double macs) {
  state.counters["GOPS"] = benchmark::Counter(2.0 * macs * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

inline void set_gemm_counters(benchmark::State& state, const gemm_shape& s) {
  set_gops(state, s.macs());
  if (s.M == 1) state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * s.K * s.N);
}

// The timed loop of a weight-streaming benchmark: one warm-up call (which names the kernel, the
// row's label), then `call` per iteration; GOPS from `macs`, bytes/s from `weight_bytes` per call.
template <class Fn>
void timed_weights(benchmark::State& state, Fn&& call, double macs, double weight_bytes) {
  call();
  const std::string kernel = npuq::simd_last_kernel();
  for (auto _ : state) {
    call();
    benchmark::ClobberMemory();
  }
  state.SetLabel(kernel);
  set_gops(state, macs);
  state.SetBytesProcessed(static_cast<std::int64_t>(static_cast<double>(state.iterations()) * weight_bytes));
}

// The threads every implementation runs on (`npuq_bench --threads=N`, default 1): npuq's
// simd_backend threads, oneDNN's OpenMP (OMP_NUM_THREADS), XNNPACK's pthreadpool.
inline int& bench_threads() {
  static int n = 1;
  return n;
}

// RegisterBenchmark with the time unit every npuq benchmark uses.
template <class Fn, class... Args>
benchmark::internal::Benchmark* add(const std::string& name, Fn&& fn, Args&&... args) {
  return benchmark::RegisterBenchmark(name.c_str(), std::forward<Fn>(fn), std::forward<Args>(args)...)->Unit(benchmark::kMicrosecond);
}

inline std::string gemm_name(const gemm_shape& s, const std::string& variant) { return std::string("gemm/") + s.name + "/" + variant; }
inline std::string conv_name(const conv_shape& s, const std::string& variant) {
  return std::string(s.op()) + "/" + s.name + "/" + variant;
}

// Registration hooks, one per implementation (bench_npuq.cpp, bench_onednn.cpp, bench_xnnpack.cpp).
void register_npuq(const gemm_shape& s);
void register_npuq(const conv_shape& s);
void register_plan_overhead();  // bench_npuq.cpp
#if defined(NPUQ_BENCH_HAVE_ONEDNN)
void register_onednn(const gemm_shape& s);
void register_onednn(const conv_shape& s);
#endif
#if defined(NPUQ_BENCH_HAVE_XNNPACK)
void register_xnnpack(const gemm_shape& s);
void register_xnnpack(const conv_shape& s);
#endif
void register_peak();
void register_attention();  // bench_attention.cpp
void register_int4();       // bench_int4.cpp
void register_sparse();     // bench_sparse.cpp

// One GEMM benchmark's operands: int8 activations and per-channel weights, random but fixed.
struct gemm_data {
  npuq::Tensor<std::int8_t> a, b, out;
  npuq::Tensor<std::int32_t> bias;
  npuq::gemm_params params;

  explicit gemm_data(const gemm_shape& s)
      : a(npuq::Layout::matrix(s.M, s.K), npuq::Quant::per_tensor(in_scale, in_zero_point)),
        b(npuq::Layout::matrix(s.K, s.N), npuq::Quant::per_axis(1, weight_scales(s.N))),
        out(npuq::Layout::matrix(s.M, s.N), npuq::Quant::per_tensor(out_scale(s.K), 0)),
        bias(npuq::Layout::row_major({s.N})) {
    const auto av = random_s8(static_cast<std::size_t>(s.M * s.K), 1);
    const auto bv = random_s8(static_cast<std::size_t>(s.K * s.N), 2);
    const auto biasv = random_bias(static_cast<std::size_t>(s.N), 3);
    std::copy(av.begin(), av.end(), a.data());
    std::copy(bv.begin(), bv.end(), b.data());
    std::copy(biasv.begin(), biasv.end(), bias.data());
  }
};

// One conv / depthwise benchmark's operands: NHWC int8 input, per-channel weights, random but fixed.
struct conv_data {
  npuq::Tensor<std::int8_t> in, w, out;
  npuq::Tensor<std::int32_t> bias;

  explicit conv_data(const conv_shape& s)
      : in(npuq::Layout::nhwc(1, s.H, s.W, s.C), npuq::Quant::per_tensor(in_scale, in_zero_point)),
        w(s.dw ? npuq::Layout::hwc_m(s.k, s.k, s.C, 1) : npuq::Layout::ohwi(s.OC, s.k, s.k, s.C),
          npuq::Quant::per_axis(s.dw ? 2 : 0, weight_scales(s.OC))),
        out(npuq::Layout::nhwc(1, s.OH(), s.OW(), s.OC), npuq::Quant::per_tensor(out_scale(s.dw ? 9 : 9 * s.C), 0)),
        bias(npuq::Layout::row_major({s.OC})) {
    const auto iv = random_s8(static_cast<std::size_t>(s.H * s.W * s.C), 4);
    const auto wv = random_s8(static_cast<std::size_t>(s.k * s.k * s.OC * (s.dw ? 1 : s.C)), 5);
    const auto biasv = random_bias(static_cast<std::size_t>(s.OC), 6);
    std::copy(iv.begin(), iv.end(), in.data());
    std::copy(wv.begin(), wv.end(), w.data());
    std::copy(biasv.begin(), biasv.end(), bias.data());
  }
};

}  // namespace npuq_bench
