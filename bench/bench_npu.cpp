// The NPU emulator's cost on the host: every PERF.md GEMM, conv and depthwise shape run on the
// emulator with every preset (statistics and per-tile records on) next to the simd backend
// running the same call (same tensors, same parameters, weights unpacked as the emulator
// receives them).
//
// Rows are named npu/<op>/<shape>/<variant> (variant simd, or npu_<preset>) so that
// --benchmark_filter=^npu/ runs them side by side. Each emulator row runs the op under the
// preset's numerics (its own when the preset fixes them, tflite otherwise), with per-tensor
// weight scales on presets whose PPU holds one multiplier per op, and reports
// x_simd_best: its best-of-5 call time over the best-of-5 time of the simd backend's call on the
// same tensors, measured back to back in the same process (the emulator/simd ratio least
// disturbed by a shared machine). The simd call uses the same parameters, except that an
// accumulator the simd kernels do not run (NVDLA's 34-bit saturate-at-each-add, which would send
// simd to the scalar reference) is replaced by int32 wrap-around: the sums of these shapes fit
// either way, so the integers are the same and the baseline is simd's fastest path. The
// emulator's outputs are checked against that simd call once per row (a row whose outputs
// differ fails with an error).
//
// The benchmarks register themselves at static initialization (bench_main.cpp registers the
// other suites in main), so no other file needs a hook.
#include <npuq/npu.hpp>
#include <npuq/npuq.hpp>
#include <npuq/simd.hpp>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "bench_common.hpp"

namespace npuq_bench {
namespace {

// One emulator variant: the preset and the parameters its op runs with.
struct npu_variant {
  npuq::npu::profile prof;
  npuq::numerics_profile numerics = npuq::numerics_profile::tflite();       // params.numerics of both calls
  npuq::numerics_profile simd_numerics = npuq::numerics_profile::tflite();  // the simd call's (see the file comment)
  bool per_tensor_weights = false;
};

npu_variant variant_for(const std::string& name) {
  npu_variant v;
  npuq::throw_if_error(npuq::npu::presets::by_name(name, &v.prof));
  v.prof.record_tiles = true;  // statistics on, per-tile records included
  if (v.prof.fixed_numerics) v.numerics = v.prof.numerics;
  v.simd_numerics = v.numerics;
  if (v.numerics.acc.overflow != npuq::overflow_rule::wrap || v.numerics.acc.bits > 32)
    v.simd_numerics = v.numerics.with_accumulator(32, npuq::overflow_rule::wrap);
  v.per_tensor_weights = !v.prof.per_channel_requant;
  return v;
}

// The weights as the variant passes them (per-tensor scale when the PPU has one multiplier).
npuq::TensorView<const std::int8_t> weights(const npuq::Tensor<std::int8_t>& w, bool per_tensor) {
  return per_tensor ? w.cview().with_quant(npuq::Quant::per_tensor(w_scale_nominal)) : w.cview();
}

template <class Backend>
void run_gemm(const Backend& be, gemm_data& d, const npuq::numerics_profile& num, bool per_tensor) {
  npuq::gemm_params p = d.params;
  p.numerics = num;
  npuq::gemm(be, p, d.a, weights(d.b, per_tensor), d.bias, d.out);
}

template <class Backend>
void run_conv(const Backend& be, const conv_shape& s, conv_data& d, const npuq::numerics_profile& num, bool per_tensor) {
  if (s.dw) {
    npuq::depthwise_params p;
    p.numerics = num;
    p.stride_h = p.stride_w = s.stride;
    p.padding = npuq::padding_spec::symmetric(s.pad);
    npuq::depthwise_conv2d(be, p, d.in, weights(d.w, per_tensor), d.bias, d.out);
  } else {
    npuq::conv2d_params p;
    p.numerics = num;
    p.stride_h = p.stride_w = s.stride;
    p.padding = npuq::padding_spec::symmetric(s.pad);
    npuq::conv2d(be, p, d.in, weights(d.w, per_tensor), d.bias, d.out);
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

// The timed loop of one variant; an emulator variant also checks its outputs against simd and
// measures the best-of-5 ratio.
template <class SimdCall, class NpuCall>
void timed(benchmark::State& state, const npuq::npu::emulator* emu, const npuq::Tensor<std::int8_t>& out, SimdCall&& simd_call,
           NpuCall&& npu_call, double macs, const std::string& label) {
  if (emu == nullptr) {
    simd_call();  // warm-up
    for (auto _ : state) simd_call();
    state.SetLabel(label + " " + npuq::simd_last_kernel());
    set_gops(state, macs);
    return;
  }
  simd_call();
  const std::string kernel = npuq::simd_last_kernel();
  const std::vector<std::int8_t> expect(out.data(), out.data() + out.storage_bytes());
  npu_call();
  if (std::memcmp(expect.data(), out.data(), expect.size()) != 0) {
    state.SkipWithError((label + ": emulator outputs differ from simd").c_str());
    return;
  }
  const double t_simd = best_of(5, simd_call), t_npu = best_of(5, npu_call);
  state.counters["x_simd_best"] = t_npu / t_simd;
  for (auto _ : state) npu_call();
  state.SetLabel(label + ", " + std::to_string(emu->last().tile_count) + " tiles (" + emu->last().tiling + "), vs " + kernel);
  set_gops(state, macs);
}

void gemm_variant(benchmark::State& state, gemm_shape s, std::string prof) {
  gemm_data d(s);
  const npu_variant v = prof.empty() ? npu_variant{} : variant_for(prof);
  npuq::npu::emulator emu(v.prof);
  auto simd_call = [&] {
    run_gemm(npuq::simd, d, v.simd_numerics, v.per_tensor_weights);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  };
  auto npu_call = [&] {
    emu.reset();  // keep one op's records
    run_gemm(emu, d, v.numerics, v.per_tensor_weights);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  };
  timed(state, prof.empty() ? nullptr : &emu, d.out, simd_call, npu_call, s.macs(), prof.empty() ? "simd" : prof);
}

void conv_variant(benchmark::State& state, conv_shape s, std::string prof) {
  conv_data d(s);
  const npu_variant v = prof.empty() ? npu_variant{} : variant_for(prof);
  npuq::npu::emulator emu(v.prof);
  auto simd_call = [&] {
    run_conv(npuq::simd, s, d, v.simd_numerics, v.per_tensor_weights);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  };
  auto npu_call = [&] {
    emu.reset();
    run_conv(emu, s, d, v.numerics, v.per_tensor_weights);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  };
  timed(state, prof.empty() ? nullptr : &emu, d.out, simd_call, npu_call, s.macs(), prof.empty() ? "simd" : prof);
}

const bool registered = [] {
  const std::vector<std::string> presets = npuq::npu::presets::names();
  for (const gemm_shape& s : gemm_shapes()) {
    add("npu/" + gemm_name(s, "simd"), gemm_variant, s, std::string());
    for (const std::string& p : presets) add("npu/" + gemm_name(s, "npu_" + p), gemm_variant, s, p);
  }
  for (const conv_shape& s : conv_shapes()) {
    add("npu/" + conv_name(s, "simd"), conv_variant, s, std::string());
    for (const std::string& p : presets) add("npu/" + conv_name(s, "npu_" + p), conv_variant, s, p);
  }
  return true;
}();

}  // namespace
}  // namespace npuq_bench
