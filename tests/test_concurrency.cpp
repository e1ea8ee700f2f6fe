// Concurrent calls (issue 14): gemm, conv2d, depthwise, softmax and attention plans (one per
// thread, threads = 1) and one-shot gemm, conv2d, depthwise, softmax and attention calls run at
// the same time from std::threads over shared read-only inputs, each several times, and every
// result must equal the reference computed before the threads start. Built like any test it
// checks results; built with -fsanitize=thread (and NPUQ_OPENMP=OFF: libgomp is not
// instrumented) it also proves that the shared state the calls touch (CPU detection, cached
// softmax tables, kernel-name storage, the emulator-free paths) is race-free: scripts/test.sh
// runs it so in its `tsan` pass.
#include "support/catch.hpp"

#include <cstdint>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include <npuq/npuq.hpp>
#include <npuq/simd.hpp>

using namespace npuq;

namespace {

template <class T>
void fill(const Tensor<T>& t, int seed) {
  auto* p = t.data();
  for (std::int64_t i = 0; i < t.capacity(); ++i) p[i] = static_cast<T>((i * 37 + seed * 11) % 251 - 125);
}

template <class T>
bool same(const Tensor<T>& a, const Tensor<T>& b) {
  return a.storage_bytes() == b.storage_bytes() && std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.storage_bytes())) == 0;
}

}  // namespace

TEST_CASE("plans and one-shot calls run concurrently and give the reference's bytes", "[concurrency]") {
  constexpr int rounds = 3;
  // Shared read-only operands.
  Tensor<std::int8_t> a(Layout::matrix(37, 64), Quant::per_tensor(0.05f, 3));
  Tensor<std::int8_t> b(Layout::matrix(64, 40), Quant::per_axis(1, std::vector<float>(40, 0.02f)));
  Tensor<std::int32_t> bias(Layout::row_major({40}));
  Tensor<std::int8_t> in(Layout::nhwc(1, 12, 12, 16), Quant::per_tensor(0.1f, -2));
  Tensor<std::int8_t> w(Layout::ohwi(24, 3, 3, 16), Quant::per_tensor(0.01f, 0));
  Tensor<std::int8_t> dw(Layout::hwc_m(3, 3, 16, 1), Quant::per_tensor(0.02f, 0));
  Tensor<std::int8_t> sx(Layout::row_major({8, 50}), Quant::per_tensor(0.1f, 0));
  Tensor<std::int8_t> q(Layout::row_major({2, 4, 16}), Quant::per_tensor(0.05f, 0)), k(Layout::row_major({2, 9, 16}), Quant::per_tensor(0.05f, 1)),
      v(Layout::row_major({2, 9, 8}), Quant::per_tensor(0.04f, -1));
  fill(a, 1), fill(b, 2), fill(bias, 3), fill(in, 4), fill(w, 5), fill(dw, 6), fill(sx, 7), fill(q, 8), fill(k, 9), fill(v, 10);
  const gemm_params gp;
  conv2d_params cp;
  cp.padding = padding_spec::same();
  depthwise_params dp;
  dp.padding = padding_spec::same();
  softmax_params sp = softmax_params::tflite(1.0f, 0.1f);
  attention_params ap;
  ap.score = Quant::per_tensor(0.1f, 0);
  ap.causal = true;
  const Quant gq = Quant::per_tensor(0.5f, 1), cq = Quant::per_tensor(0.3f, -3), smq = Quant::per_tensor(1.0f / 256.0f, -128);

  // The references, one thread, before anything else runs.
  auto gemm_out = [&] { return Tensor<std::int8_t>(Layout::matrix(37, 40), gq); };
  auto conv_out = [&] { return Tensor<std::int8_t>(Layout::nhwc(1, 12, 12, 24), cq); };
  auto dw_out = [&] { return Tensor<std::int8_t>(Layout::nhwc(1, 12, 12, 16), cq); };
  auto sm_out = [&] { return Tensor<std::int8_t>(Layout::row_major({8, 50}), smq); };
  auto att_out = [&] { return Tensor<std::int8_t>(Layout::row_major({2, 4, 8}), cq); };
  const Tensor<std::int8_t> gemm_ref = gemm_out(), conv_ref = conv_out(), dw_ref = dw_out(), sm_ref = sm_out(), att_ref = att_out();
  REQUIRE(try_gemm(scalar, gp, a, b, bias, gemm_ref).ok());
  REQUIRE(try_conv2d(scalar, cp, in, w, no_bias, conv_ref).ok());
  REQUIRE(try_depthwise_conv2d(scalar, dp, in, dw, no_bias, dw_ref).ok());
  REQUIRE(try_softmax(scalar, sp, sx, sm_ref).ok());
  REQUIRE(try_attention(scalar, ap, q, k, v, no_mask, att_ref).ok());

  // Each job writes its own outputs (one per round) and records its statuses.
  struct job {
    std::function<status(int)> run;
    std::vector<status> statuses = std::vector<status>(rounds);
  };
  std::vector<Tensor<std::int8_t>> outs;
  std::vector<const Tensor<std::int8_t>*> refs;
  std::vector<job> jobs;
  const simd_backend one = simd.with_threads(1);
  std::vector<gemm_plan<std::int8_t, std::int8_t, std::int8_t>> gemm_plans(2);
  std::vector<conv2d_plan<std::int8_t, std::int8_t, std::int8_t>> conv_plans(2);
  for (auto& p : gemm_plans) REQUIRE(try_make_gemm_plan(one, gp, a, b, bias, gemm_ref, &p).ok());
  for (auto& p : conv_plans) REQUIRE(try_make_conv2d_plan(one, cp, in, w, no_bias, conv_ref, &p).ok());
  auto dw_plan = make_depthwise_plan(one, dp, in, dw, no_bias, dw_ref);
  auto sm_plan = make_softmax_plan(one, sp, sx, sm_ref);
  auto att_plan = make_attention_plan(one, ap, q, k, v, no_mask, att_ref);
  auto add = [&](std::function<Tensor<std::int8_t>()> make, const Tensor<std::int8_t>& ref, std::function<status(const Tensor<std::int8_t>&)> call) {
    const std::size_t first = outs.size();
    for (int r = 0; r < rounds; ++r) {
      outs.push_back(make());
      refs.push_back(&ref);
    }
    jobs.push_back({[&outs, first, call](int r) { return call(outs[first + static_cast<std::size_t>(r)]); }});
  };
  outs.reserve(64);
  for (auto& p : gemm_plans) add(gemm_out, gemm_ref, [&p, &a](const Tensor<std::int8_t>& o) { return p.try_run(a, o); });
  for (auto& p : conv_plans) add(conv_out, conv_ref, [&p, &in](const Tensor<std::int8_t>& o) { return p.try_run(in, o); });
  add(dw_out, dw_ref, [&](const Tensor<std::int8_t>& o) { return dw_plan.try_run(in, o); });
  add(sm_out, sm_ref, [&](const Tensor<std::int8_t>& o) { return sm_plan.try_run(sx, o); });
  add(att_out, att_ref, [&](const Tensor<std::int8_t>& o) { return att_plan.try_run(q, k, v, no_mask, o); });
  add(gemm_out, gemm_ref, [&](const Tensor<std::int8_t>& o) { return try_gemm(one, gp, a, b, bias, o); });
  add(conv_out, conv_ref, [&](const Tensor<std::int8_t>& o) { return try_conv2d(one, cp, in, w, no_bias, o); });
  add(dw_out, dw_ref, [&](const Tensor<std::int8_t>& o) { return try_depthwise_conv2d(one, dp, in, dw, no_bias, o); });
  add(sm_out, sm_ref, [&](const Tensor<std::int8_t>& o) { return try_softmax(one, sp, sx, o); });
  add(att_out, att_ref, [&](const Tensor<std::int8_t>& o) { return try_attention(one, ap, q, k, v, no_mask, o); });
  add(gemm_out, gemm_ref, [&](const Tensor<std::int8_t>& o) { return try_gemm(scalar, gp, a, b, bias, o); });

  std::vector<std::thread> threads;
  for (job& j : jobs)
    threads.emplace_back([&j] {
      for (int r = 0; r < rounds; ++r) j.statuses[static_cast<std::size_t>(r)] = j.run(r);
    });
  for (std::thread& t : threads) t.join();

  for (std::size_t i = 0; i < jobs.size(); ++i)
    for (int r = 0; r < rounds; ++r) {
      INFO("job " << i << " round " << r << ": " << jobs[i].statuses[static_cast<std::size_t>(r)].to_string());
      CHECK(jobs[i].statuses[static_cast<std::size_t>(r)].ok());
      CHECK(same(outs[i * rounds + static_cast<std::size_t>(r)], *refs[i * rounds + static_cast<std::size_t>(r)]));
    }
}
