// npuq's own variants of every benchmark shape: the scalar reference, then the simd backend
// forced to each ISA level this CPU supports (`npuq::simd_backend{level}`), each labelled with
// the kernel that actually ran (`npuq::simd_last_kernel()`), so a level that silently fell back
// shows up in the output. The best level runs a second time under the onnx profile (fp32 scale,
// ties to even), whose output arithmetic is the peers'; the default profile is tflite's.
//
// GEMM and conv2d weights are packed once outside the timed loop (`pack_gemm_weights`,
// `pack_conv2d_weights`); depthwise has no public packing step yet, so its timings include the
// per-call weight packing (C * 9 bytes, small next to the work).
#include <npuq/npuq.hpp>
#include <npuq/simd.hpp>

#include <algorithm>
#include <string>

#include "bench_common.hpp"

namespace npuq_bench {
namespace {

void gemm_scalar(benchmark::State& state, gemm_shape s) {
  gemm_data d(s);
  for (auto _ : state) {
    npuq::gemm(npuq::scalar, d.params, d.a, d.b, d.bias, d.out);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel("reference");
  set_gemm_counters(state, s);
}

// The profile npuq runs under: tflite (the default, double rounding with Q31 multipliers) or
// onnx (fp32 scale, ties to even: the arithmetic oneDNN and XNNPACK use for their int8 outputs).
npuq::numerics_profile bench_profile(bool onnx) { return onnx ? npuq::numerics_profile::onnx() : npuq::numerics_profile::tflite(); }

void gemm_simd(benchmark::State& state, gemm_shape s, npuq::isa level, bool onnx) {
  gemm_data d(s);
  d.params.numerics = bench_profile(onnx);
  const npuq::simd_backend be{level};
  npuq::packed_gemm_weights<std::int8_t> packed;
  npuq::throw_if_error(npuq::pack_gemm_weights(be, d.b, &packed));  // packed for the level it runs at
  npuq::gemm(be, d.params, d.a, packed, d.bias, d.out);  // warm-up; names the kernel
  const std::string kernel = npuq::simd_last_kernel();
  for (auto _ : state) {
    npuq::gemm(be, d.params, d.a, packed, d.bias, d.out);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(kernel);
  set_gemm_counters(state, s);
}

npuq::conv2d_params conv_params(const conv_shape& s) {
  npuq::conv2d_params p;
  p.stride_h = p.stride_w = s.stride;
  p.padding = npuq::padding_spec::symmetric(s.pad);
  return p;
}

npuq::depthwise_params dw_params(const conv_shape& s) {
  npuq::depthwise_params p;
  p.stride_h = p.stride_w = s.stride;
  p.padding = npuq::padding_spec::symmetric(s.pad);
  return p;
}

// One call on unpacked weights (scalar; simd depthwise).
template <class Backend>
void run_conv(const Backend& be, const conv_shape& s, conv_data& d, bool onnx = false) {
  npuq::depthwise_params dp = dw_params(s);
  dp.numerics = bench_profile(onnx);
  if (s.dw)
    npuq::depthwise_conv2d(be, dp, d.in, d.w, d.bias, d.out);
  else
    npuq::conv2d(be, conv_params(s), d.in, d.w, d.bias, d.out);
}

void conv_scalar(benchmark::State& state, conv_shape s) {
  conv_data d(s);
  for (auto _ : state) {
    run_conv(npuq::scalar, s, d);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel("reference");
  set_gops(state, s.macs());
}

void conv_simd(benchmark::State& state, conv_shape s, npuq::isa level, bool onnx) {
  conv_data d(s);
  const npuq::simd_backend be{level};
  npuq::conv2d_params params = conv_params(s);
  params.numerics = bench_profile(onnx);
  npuq::packed_conv2d_weights<std::int8_t> packed;
  if (!s.dw) npuq::throw_if_error(npuq::pack_conv2d_weights(be, params, d.w, &packed));  // packed for the level it runs at
  auto call = [&] {
    if (s.dw)
      run_conv(be, s, d, onnx);
    else
      npuq::conv2d(be, params, d.in, packed, d.bias, d.out);
  };
  call();  // warm-up; names the kernel
  const std::string kernel = npuq::simd_last_kernel();
  for (auto _ : state) {
    call();
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(kernel);
  set_gops(state, s.macs());
}

}  // namespace

void register_npuq(const gemm_shape& s) {
  auto* b = add(gemm_name(s, "npuq_scalar"), gemm_scalar, s);
  if (s.macs() > 2e8) b->Iterations(1);  // sq1024: seconds per call
  for (npuq::isa level : npuq::cpu().levels()) {
    auto* v = add(gemm_name(s, std::string("npuq_simd_") + npuq::to_string(level)), gemm_simd, s, level, false);
    if (level == npuq::isa::portable && s.macs() > 2e8) v->Iterations(2);
  }
  // The best level under the onnx profile: the same requantization arithmetic as the peers'.
  const npuq::isa best = npuq::cpu().levels().back();
  add(gemm_name(s, std::string("npuq_simd_") + npuq::to_string(best) + "_onnx"), gemm_simd, s, best, true);
}

void register_npuq(const conv_shape& s) {
  add(conv_name(s, "npuq_scalar"), conv_scalar, s);
  for (npuq::isa level : npuq::cpu().levels())
    add(conv_name(s, std::string("npuq_simd_") + npuq::to_string(level)), conv_simd, s, level, false);
  const npuq::isa best = npuq::cpu().levels().back();
  add(conv_name(s, std::string("npuq_simd_") + npuq::to_string(best) + "_onnx"), conv_simd, s, best, true);
}

}  // namespace npuq_bench
