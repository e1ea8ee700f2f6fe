// npuq's own variants of every benchmark shape: the scalar reference, then the simd backend
// forced to each ISA level this CPU supports (`npuq::simd_backend{level}`), each labelled with
// the kernel that actually ran (`npuq::simd_last_kernel()`), so a level that silently fell back
// shows up in the output. The best level runs a second time under the onnx profile (fp32 scale,
// ties to even), whose output arithmetic is the peers'; the default profile is tflite's.
// Depthwise shapes also run the best level under tosa_single (q31 single rounding).
//
// npuq runs on bench_threads() threads (`--threads=N`).
//
// GEMM and conv2d weights are packed once outside the timed loop (`pack_gemm_weights`,
// `pack_conv2d_weights`); the one-shot depthwise variants include the per-call weight packing
// (C * 9 bytes, small next to the work). The `npuq_plan_<level>_onnx` variants run a plan made
// once (backends/simd/plan.hpp; depthwise included): the fast path, compared with the peers.
// `plan_overhead/*` times a plan's run on tiny shapes (a 1x16x16 GEMM, an 8x8x16 depthwise)
// against the bare driver call it wraps and against the one-shot calls.
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
  const npuq::simd_backend be{level, bench_threads()};
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

void gemm_plan_run(benchmark::State& state, gemm_shape s, npuq::isa level) {
  gemm_data d(s);
  d.params.numerics = bench_profile(true);
  auto plan = npuq::make_gemm_plan(npuq::simd_backend{level, bench_threads()}, d.params, d.a, d.b, d.bias, d.out);
  plan.run(d.a, d.out);  // warm-up
  for (auto _ : state) {
    plan.run(d.a, d.out);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel("plan " + plan.kernel_name());
  set_gemm_counters(state, s);
}

// How one tiny GEMM is called: the bare driver on prepared operands (the floor a plan's run
// adds its checks to), a plan, the one-shot call on packed weights, the one-shot call.
enum class call_form { driver, plan, packed, one_shot };

void gemm_overhead(benchmark::State& state, gemm_shape s, call_form form) {
  namespace sd = npuq::simd_detail;
  gemm_data d(s);
  const npuq::simd_backend be{npuq::cpu().levels().back(), 1};
  npuq::gemm_problem<std::int8_t, std::int8_t, std::int8_t> p;
  npuq::throw_if_error(npuq::make_gemm_problem(d.params, npuq::input_view(d.a), npuq::input_view(d.b), npuq::input_view(d.bias),
                                               npuq::output_view(d.out), &p));
  const sd::gemm_kernel_set<std::int8_t> kern = sd::gemm_kernels<std::int8_t>(be.level());
  npuq::packed_gemm_weights<std::int8_t> packed;
  npuq::throw_if_error(npuq::pack_gemm_weights(be, d.b, &packed));
  packed = packed.converted(kern.format);
  const sd::dot_stages st = sd::make_gemm_stages(kern, p, sd::tile_output_stage(p.stage, p.bias, p.N), packed);
  sd::driver_scratch scratch;
  auto plan = npuq::make_gemm_plan(be, d.params, d.a, d.b, d.bias, d.out);
  auto call = [&] {
    switch (form) {
      case call_form::driver: sd::run_gemm_batch(1, kern, p, 0, packed, st, scratch); break;
      case call_form::plan: plan.run(d.a, d.out); break;
      case call_form::packed: npuq::gemm(be, d.params, d.a, packed, d.bias, d.out); break;
      case call_form::one_shot: npuq::gemm(be, d.params, d.a, d.b, d.bias, d.out); break;
    }
  };
  call();
  for (auto _ : state) {
    call();
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(plan.kernel_name());
}

npuq::depthwise_params dw_params(const conv_shape& s);

// How one tiny depthwise conv is called: the bare driver on a prepared problem and scratch, a
// plan, the one-shot call (which prepares the weights and scratch every time).
void dw_overhead(benchmark::State& state, conv_shape s, call_form form) {
  namespace sd = npuq::simd_detail;
  conv_data d(s);
  const npuq::simd_backend be{npuq::cpu().levels().back(), 1};
  const npuq::depthwise_params params = dw_params(s);
  npuq::depthwise_problem<std::int8_t, std::int8_t, std::int8_t> p;
  npuq::throw_if_error(npuq::make_depthwise_problem(params, npuq::input_view(d.in), npuq::input_view(d.w), npuq::input_view(d.bias),
                                                    npuq::output_view(d.out), &p));
  const sd::dw_prepared<std::int8_t, std::int8_t, std::int8_t> pr(sd::dw_family(be.level(), p.g, p.OC), p);
  sd::dw_scratch<std::int8_t> scratch;
  scratch.reserve(pr, p, 1);
  auto plan = npuq::make_depthwise_plan(be, params, d.in, d.w, d.bias, d.out);
  auto call = [&] {
    switch (form) {
      case call_form::driver: sd::run_depthwise_on(1, pr, p, scratch); break;
      case call_form::plan: plan.run(d.in, d.out); break;
      case call_form::packed:
      case call_form::one_shot: npuq::depthwise_conv2d(be, params, d.in, d.w, d.bias, d.out); break;
    }
  };
  call();
  for (auto _ : state) {
    call();
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(plan.kernel_name());
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
void run_conv(const Backend& be, const conv_shape& s, conv_data& d, const npuq::numerics_profile& numerics = bench_profile(false)) {
  npuq::depthwise_params dp = dw_params(s);
  dp.numerics = numerics;
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

void conv_simd(benchmark::State& state, conv_shape s, npuq::isa level, npuq::numerics_profile numerics) {
  conv_data d(s);
  const npuq::simd_backend be{level, bench_threads()};
  npuq::conv2d_params params = conv_params(s);
  params.numerics = numerics;
  npuq::packed_conv2d_weights<std::int8_t> packed;
  if (!s.dw) npuq::throw_if_error(npuq::pack_conv2d_weights(be, params, d.w, &packed));  // packed for the level it runs at
  auto call = [&] {
    if (s.dw)
      run_conv(be, s, d, numerics);
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

// conv2d or depthwise (s.dw) through a plan made once, onnx profile.
template <class Plan>
void run_plan(benchmark::State& state, const conv_shape& s, conv_data& d, Plan& plan) {
  plan.run(d.in, d.out);  // warm-up
  for (auto _ : state) {
    plan.run(d.in, d.out);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel("plan " + plan.kernel_name());
  set_gops(state, s.macs());
}

void conv_plan_run(benchmark::State& state, conv_shape s, npuq::isa level) {
  conv_data d(s);
  const npuq::simd_backend be{level, bench_threads()};
  if (s.dw) {
    npuq::depthwise_params params = dw_params(s);
    params.numerics = bench_profile(true);
    auto plan = npuq::make_depthwise_plan(be, params, d.in, d.w, d.bias, d.out);
    run_plan(state, s, d, plan);
  } else {
    npuq::conv2d_params params = conv_params(s);
    params.numerics = bench_profile(true);
    auto plan = npuq::make_conv2d_plan(be, params, d.in, d.w, d.bias, d.out);
    run_plan(state, s, d, plan);
  }
}

}  // namespace

void register_plan_overhead() {
  const gemm_shape tiny{"1x16x16", 1, 16, 16};
  const std::pair<const char*, call_form> forms[] = {
      {"driver", call_form::driver}, {"plan", call_form::plan}, {"one_shot_packed", call_form::packed}, {"one_shot", call_form::one_shot}};
  for (const auto& f : forms) add(std::string("plan_overhead/gemm-1x16x16/") + f.first, gemm_overhead, tiny, f.second);
  const conv_shape tiny_dw{"dw-8x8x16", true, 8, 8, 16, 16, 1};
  for (const auto& f : forms)
    if (f.second != call_form::packed) add(std::string("plan_overhead/dw-8x8x16/") + f.first, dw_overhead, tiny_dw, f.second);
}

void register_npuq(const gemm_shape& s) {
  auto* b = add(gemm_name(s, "npuq_scalar"), gemm_scalar, s);
  if (s.macs() > 2e8) b->Iterations(1);  // sq1024: seconds per call
  for (npuq::isa level : npuq::cpu().levels()) {
    auto* v = add(gemm_name(s, std::string("npuq_simd_") + npuq::to_string(level)), gemm_simd, s, level, false);
    if (level == npuq::isa::portable && s.macs() > 2e8) v->Iterations(2);
  }
  // The best level under the onnx profile (the same requantization arithmetic as the peers'), or
  // the one NPUQ_ISA caps it to: NPUQ_ISA=avx512_vnni measures that class on a CPU with AMX.
  const npuq::isa best = npuq::active_isa();
  add(gemm_name(s, std::string("npuq_simd_") + npuq::to_string(best) + "_onnx"), gemm_simd, s, best, true);
  add(gemm_name(s, std::string("npuq_plan_") + npuq::to_string(best) + "_onnx"), gemm_plan_run, s, best);
}

void register_npuq(const conv_shape& s) {
  add(conv_name(s, "npuq_scalar"), conv_scalar, s);
  for (npuq::isa level : npuq::cpu().levels())
    add(conv_name(s, std::string("npuq_simd_") + npuq::to_string(level)), conv_simd, s, level, bench_profile(false));
  const npuq::isa best = npuq::active_isa();
  add(conv_name(s, std::string("npuq_simd_") + npuq::to_string(best) + "_onnx"), conv_simd, s, best, bench_profile(true));
  // Depthwise under a q31 single rounding (tosa_single; NVDLA's half away runs the same stage).
  if (s.dw)
    add(conv_name(s, std::string("npuq_simd_") + npuq::to_string(best) + "_tosa_single"), conv_simd, s, best,
        npuq::numerics_profile::tosa_single());
  add(conv_name(s, std::string("npuq_plan_") + npuq::to_string(best) + "_onnx"), conv_plan_run, s, best);
}

}  // namespace npuq_bench
