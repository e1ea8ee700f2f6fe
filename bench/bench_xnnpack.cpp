// XNNPACK (Debian libxnnpack-dev, a February 2022 snapshot) on the same shapes, through its
// operator API: xnn_create_fully_connected_nc_qs8 for GEMM (that snapshot has no per-channel
// "qc8" fully-connected operator, so its weights carry one scale) and
// xnn_create_convolution2d_nhwc_qc8 (per-channel weight scales) for conv and, with
// XNN_FLAG_DEPTHWISE_CONVOLUTION and groups = C, depthwise. Operators are created and set up
// outside the timed loop; the loop calls xnn_run_operator with a pthreadpool of
// bench_threads() threads (none for one thread).
#include <pthreadpool.h>
#include <xnnpack.h>

#include <string>
#include <vector>

#include "bench_common.hpp"

namespace npuq_bench {
namespace {

bool xnn_ready() {
  static const bool ok = xnn_initialize(nullptr) == xnn_status_success;
  return ok;
}

struct op_holder {
  xnn_operator_t op = nullptr;
  ~op_holder() {
    if (op != nullptr) xnn_delete_operator(op);
  }
};

// The pool XNNPACK runs on: null (the calling thread) for one thread.
pthreadpool_t xnn_pool() {
  static pthreadpool_t pool = bench_threads() > 1 ? pthreadpool_create(static_cast<size_t>(bench_threads())) : nullptr;
  return pool;
}

void run(benchmark::State& state, xnn_operator_t op, const char* label, double macs) {
  if (xnn_run_operator(op, xnn_pool()) != xnn_status_success) {  // warm-up
    state.SkipWithError("XNNPACK: xnn_run_operator failed");
    return;
  }
  for (auto _ : state) {
    xnn_run_operator(op, xnn_pool());
    benchmark::ClobberMemory();
  }
  state.SetLabel(label);
  set_gops(state, macs);
}

void gemm_xnnpack(benchmark::State& state, gemm_shape sh) {
  if (!xnn_ready()) return state.SkipWithError("XNNPACK: xnn_initialize failed");
  const auto a = random_s8(static_cast<std::size_t>(sh.M * sh.K), 1);
  const auto w = random_s8(static_cast<std::size_t>(sh.K * sh.N), 2);  // [N][K], XNNPACK's default
  const auto bias = random_bias(static_cast<std::size_t>(sh.N), 3);
  std::vector<std::int8_t> out(static_cast<std::size_t>(sh.M * sh.N));
  op_holder h;
  if (xnn_create_fully_connected_nc_qs8(static_cast<size_t>(sh.K), static_cast<size_t>(sh.N), static_cast<size_t>(sh.K),
                                        static_cast<size_t>(sh.N), static_cast<std::int8_t>(in_zero_point), in_scale,
                                        w_scale_nominal, w.data(), bias.data(), 0, out_scale(sh.K), -128, 127, 0,
                                        &h.op) != xnn_status_success)
    return state.SkipWithError("XNNPACK: xnn_create_fully_connected_nc_qs8 failed");
  if (xnn_setup_fully_connected_nc_qs8(h.op, static_cast<size_t>(sh.M), a.data(), out.data(), xnn_pool()) != xnn_status_success)
    return state.SkipWithError("XNNPACK: xnn_setup_fully_connected_nc_qs8 failed");
  run(state, h.op, "fully_connected_nc_qs8", sh.macs());
  if (sh.M == 1) state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * sh.K * sh.N);
}

void conv_xnnpack(benchmark::State& state, conv_shape sh) {
  if (!xnn_ready()) return state.SkipWithError("XNNPACK: xnn_initialize failed");
  const std::int64_t groups = sh.dw ? sh.C : 1, icg = sh.C / groups, ocg = sh.OC / groups;
  const auto x = random_s8(static_cast<std::size_t>(sh.H * sh.W * sh.C), 4);
  // Regular: [OC][KH][KW][IC]; depthwise (the flag): [KH][KW][C].
  const auto w = random_s8(static_cast<std::size_t>(sh.k * sh.k * sh.OC * icg), 5);
  const auto bias = random_bias(static_cast<std::size_t>(sh.OC), 6);
  std::vector<float> wscales = weight_scales(sh.OC);
  std::vector<std::int8_t> out(static_cast<std::size_t>(sh.OH() * sh.OW() * sh.OC));
  const auto pad = static_cast<std::uint32_t>(sh.pad), k = static_cast<std::uint32_t>(sh.k), st = static_cast<std::uint32_t>(sh.stride);
  op_holder h;
  if (xnn_create_convolution2d_nhwc_qc8(pad, pad, pad, pad, k, k, st, st, 1, 1, static_cast<std::uint32_t>(groups),
                                        static_cast<size_t>(icg), static_cast<size_t>(ocg), static_cast<size_t>(sh.C),
                                        static_cast<size_t>(sh.OC), static_cast<std::int8_t>(in_zero_point), in_scale,
                                        wscales.data(), w.data(), bias.data(), 0, out_scale(sh.dw ? 9 : 9 * sh.C), -128, 127,
                                        sh.dw ? XNN_FLAG_DEPTHWISE_CONVOLUTION : 0, &h.op) != xnn_status_success)
    return state.SkipWithError("XNNPACK: xnn_create_convolution2d_nhwc_qc8 failed");
  if (xnn_setup_convolution2d_nhwc_qc8(h.op, 1, static_cast<size_t>(sh.H), static_cast<size_t>(sh.W), x.data(), out.data(),
                                       xnn_pool()) != xnn_status_success)
    return state.SkipWithError("XNNPACK: xnn_setup_convolution2d_nhwc_qc8 failed");
  run(state, h.op, sh.dw ? "convolution2d_nhwc_qc8 depthwise" : "convolution2d_nhwc_qc8", sh.macs());
}

}  // namespace

void register_xnnpack(const gemm_shape& s) { add(gemm_name(s, "xnnpack_qs8"), gemm_xnnpack, s); }

void register_xnnpack(const conv_shape& s) { add(conv_name(s, "xnnpack_qc8"), conv_xnnpack, s); }

}  // namespace npuq_bench
