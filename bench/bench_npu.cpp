// The NPU emulator's cost on the host: every PERF.md GEMM, conv and depthwise shape run on the
// emulator (statistics and per-tile records on) next to the simd backend running the same call
// (same tensors, same parameters, weights unpacked as the emulator receives them).
//
// Rows are named npu/<op>/<shape>/<variant> (variant simd, or npu_<preset>) so that
// --benchmark_filter=^npu/ runs them side by side. Each emulator row also reports
// x_simd_best: its best-of-5 call time over the simd call's best-of-5, measured back to back in
// the same process, which is the emulator/simd ratio least disturbed by a shared machine.
//
// The benchmarks register themselves at static initialization (bench_main.cpp registers the
// other suites in main), so no other file needs a hook.
#include <npuq/npu.hpp>
#include <npuq/npuq.hpp>
#include <npuq/simd.hpp>

#include <algorithm>
#include <chrono>
#include <string>

#include "bench_common.hpp"

namespace npuq_bench {
namespace {

const char* const presets[] = {"generic", "ethos_u55_256"};

npuq::npu::profile preset(const std::string& name) {
  npuq::npu::profile p;
  npuq::throw_if_error(npuq::npu::presets::by_name(name, &p));
  p.record_tiles = true;  // statistics on, per-tile records included
  return p;
}

template <class Backend>
void run_gemm(const Backend& be, gemm_data& d) {
  npuq::gemm(be, d.params, d.a, d.b, d.bias, d.out);
}

template <class Backend>
void run_conv(const Backend& be, const conv_shape& s, conv_data& d) {
  if (s.dw) {
    npuq::depthwise_params p;
    p.stride_h = p.stride_w = s.stride;
    p.padding = npuq::padding_spec::symmetric(s.pad);
    npuq::depthwise_conv2d(be, p, d.in, d.w, d.bias, d.out);
  } else {
    npuq::conv2d_params p;
    p.stride_h = p.stride_w = s.stride;
    p.padding = npuq::padding_spec::symmetric(s.pad);
    npuq::conv2d(be, p, d.in, d.w, d.bias, d.out);
  }
}

// Best of `reps` calls, in seconds.
template <class Fn>
double best_of(int reps, Fn&& fn) {
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

// The timed loop of one variant; an emulator variant also measures the best-of-5 ratio.
template <class SimdCall, class NpuCall>
void timed(benchmark::State& state, const npuq::npu::emulator* emu, SimdCall&& simd_call, NpuCall&& npu_call, double macs,
           const std::string& label) {
  if (emu == nullptr) {
    simd_call();  // warm-up
    for (auto _ : state) simd_call();
    state.SetLabel(label + " " + npuq::simd_last_kernel());
  } else {
    npu_call();  // warm-up
    const double t_simd = best_of(5, simd_call), t_npu = best_of(5, npu_call);
    state.counters["x_simd_best"] = t_npu / t_simd;
    for (auto _ : state) npu_call();
    state.SetLabel(label + ", " + std::to_string(emu->last().tile_count) + " tiles (" + emu->last().tiling + ")");
  }
  set_gops(state, macs);
}

void gemm_variant(benchmark::State& state, gemm_shape s, std::string prof) {
  gemm_data d(s);
  npuq::npu::emulator emu(prof.empty() ? npuq::npu::profile{} : preset(prof));
  auto simd_call = [&] {
    run_gemm(npuq::simd, d);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  };
  auto npu_call = [&] {
    emu.reset();  // keep one op's records
    run_gemm(emu, d);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  };
  timed(state, prof.empty() ? nullptr : &emu, simd_call, npu_call, s.macs(), prof.empty() ? "simd" : prof);
}

void conv_variant(benchmark::State& state, conv_shape s, std::string prof) {
  conv_data d(s);
  npuq::npu::emulator emu(prof.empty() ? npuq::npu::profile{} : preset(prof));
  auto simd_call = [&] {
    run_conv(npuq::simd, s, d);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  };
  auto npu_call = [&] {
    emu.reset();
    run_conv(emu, s, d);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  };
  timed(state, prof.empty() ? nullptr : &emu, simd_call, npu_call, s.macs(), prof.empty() ? "simd" : prof);
}

const bool registered = [] {
  for (const gemm_shape& s : gemm_shapes()) {
    add("npu/" + gemm_name(s, "simd"), gemm_variant, s, std::string());
    for (const char* p : presets) add("npu/" + gemm_name(s, std::string("npu_") + p), gemm_variant, s, std::string(p));
  }
  for (const conv_shape& s : conv_shapes()) {
    add("npu/" + conv_name(s, "simd"), conv_variant, s, std::string());
    for (const char* p : presets) add("npu/" + conv_name(s, std::string("npu_") + p), conv_variant, s, std::string(p));
  }
  return true;
}();

}  // namespace
}  // namespace npuq_bench
