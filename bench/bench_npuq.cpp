// npuq's own variants of every benchmark shape: the scalar reference, then the simd backend
// forced to each ISA level this CPU supports (`npuq::simd_backend{level}`), each labelled with
// the kernel that actually ran (`npuq::simd_last_kernel()`), so a level that silently fell back
// shows up in the output.
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

void gemm_simd(benchmark::State& state, gemm_shape s, npuq::isa level) {
  gemm_data d(s);
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
void run_conv(const Backend& be, const conv_shape& s, conv_data& d) {
  if (s.dw)
    npuq::depthwise_conv2d(be, dw_params(s), d.in, d.w, d.bias, d.out);
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

void conv_simd(benchmark::State& state, conv_shape s, npuq::isa level) {
  conv_data d(s);
  const npuq::simd_backend be{level};
  const npuq::conv2d_params params = conv_params(s);
  npuq::packed_conv2d_weights<std::int8_t> packed;
  if (!s.dw) npuq::throw_if_error(npuq::pack_conv2d_weights(be, params, d.w, &packed));  // packed for the level it runs at
  auto call = [&] {
    if (s.dw)
      run_conv(be, s, d);
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
    auto* v = add(gemm_name(s, std::string("npuq_simd_") + npuq::to_string(level)), gemm_simd, s, level);
    if (level == npuq::isa::portable && s.macs() > 2e8) v->Iterations(2);
  }
}

void register_npuq(const conv_shape& s) {
  add(conv_name(s, "npuq_scalar"), conv_scalar, s);
  for (npuq::isa level : npuq::cpu().levels())
    add(conv_name(s, std::string("npuq_simd_") + npuq::to_string(level)), conv_simd, s, level);
}

}  // namespace npuq_bench
