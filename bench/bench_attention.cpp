// Attention benchmarks: BERT-base attention (12 heads, d = 64) at S = T = 128 and 512, and
// decode steps (one query) against a KV cache of T = 1024 and 4096, each beside its baselines:
//
//   npuq/<level>       npuq::attention on the simd backend forced to each ISA level
//   npuq-gemm/<level>  the same matrix work as two plain int8 GEMMs per head (Q K^T -> int8,
//                      P V -> int8; B unpacked, so packing is counted as in the attention)
//   onednn-f32         fp32 attention from oneDNN: batched f32 matmul, softmax primitive, matmul
//                      (for decode this reads an fp32 K/V cache: the "fp32 cache" baseline)
//
// GOPS counts 2 * H * S * T * (d + dv) operations (the two matrix products), for every variant.
#include <npuq/npuq.hpp>
#include <npuq/simd.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#if defined(NPUQ_BENCH_HAVE_ONEDNN)
#include <oneapi/dnnl/dnnl.hpp>

#include <unordered_map>
#endif

#include "bench_common.hpp"

namespace npuq_bench {
namespace {

struct attn_shape {
  const char* name;
  std::int64_t H, S, T, d;
  double macs() const { return double(H) * double(S) * double(T) * double(2 * d); }
};

const std::vector<attn_shape>& attn_shapes() {
  static const std::vector<attn_shape> s = {
      {"bert-base-s128", 12, 128, 128, 64},
      {"bert-base-s512", 12, 512, 512, 64},
      {"decode-t1024", 12, 1, 1024, 64},
      {"decode-t4096", 12, 1, 4096, 64},
  };
  return s;
}

struct attn_data {
  npuq::Tensor<std::int8_t> q, k, v, out;
  npuq::attention_params params;
  explicit attn_data(const attn_shape& s)
      : q(npuq::Layout::row_major({s.H, s.S, s.d}), npuq::Quant::per_tensor(0.1f, 0)),
        k(npuq::Layout::row_major({s.H, s.T, s.d}), npuq::Quant::per_tensor(0.1f, 0)),
        v(npuq::Layout::row_major({s.H, s.T, s.d}), npuq::Quant::per_tensor(0.02f, 0)),
        out(npuq::Layout::row_major({s.H, s.S, s.d}), npuq::Quant::per_tensor(0.02f, 0)) {
    // Q and K in [-20, 20] at scale 0.1 (real values within +-2), V over the full int8 range. The
    // int8 scores (scale 0.2) then spread over about +-56 units (1 sigma), about +-1.4 nats
    // after beta = 1/8: a realistic mix of peaked and flat probabilities, little saturation.
    const auto qv = random_s8(static_cast<std::size_t>(q.size()), 11), kv = random_s8(static_cast<std::size_t>(k.size()), 12),
               vv = random_s8(static_cast<std::size_t>(v.size()), 13);
    auto narrow = [](std::int8_t x) { return static_cast<std::int8_t>(x * 20 / 128); };
    std::transform(qv.begin(), qv.end(), q.data(), narrow);
    std::transform(kv.begin(), kv.end(), k.data(), narrow);
    std::copy(vv.begin(), vv.end(), v.data());
    params.score = npuq::Quant::per_tensor(0.2f, 0);
    params.exp = npuq::softmax_exp::table;
  }
};

void attention_npuq(benchmark::State& state, attn_shape s, npuq::isa level) {
  attn_data d(s);
  const npuq::simd_backend be{level};
  npuq::attention(be, d.params, d.q, d.k, d.v, npuq::no_mask, d.out);
  const std::string kernel = npuq::simd_last_kernel();
  for (auto _ : state) {
    npuq::attention(be, d.params, d.q, d.k, d.v, npuq::no_mask, d.out);
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(kernel);
  set_gops(state, s.macs());
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * (d.k.size() + d.v.size()));
}

// The attention's two matrix products as plain GEMMs, head by head.
void attention_gemms(benchmark::State& state, attn_shape s, npuq::isa level) {
  attn_data d(s);
  npuq::Tensor<std::int8_t> scores(npuq::Layout::matrix(s.S, s.T), d.params.score);
  npuq::Tensor<std::int8_t> prob(npuq::Layout::matrix(s.S, s.T), npuq::Quant::per_tensor(1.0f / 256, -128));
  const auto pv = random_s8(static_cast<std::size_t>(prob.size()), 14);
  std::copy(pv.begin(), pv.end(), prob.data());
  const npuq::simd_backend be{level};
  npuq::gemm_params gp;
  auto once = [&] {
    for (std::int64_t h = 0; h < s.H; ++h) {
      const npuq::TensorView<const std::int8_t> qh(d.q.data(), h * s.S * s.d, npuq::Layout::matrix(s.S, s.d), d.q.quant(), d.q.size());
      const npuq::TensorView<const std::int8_t> kt(d.k.data(), h * s.T * s.d, npuq::Layout::strided({s.d, s.T}, {1, s.d}), d.k.quant(),
                                                   d.k.size());
      const npuq::TensorView<const std::int8_t> vh(d.v.data(), h * s.T * s.d, npuq::Layout::matrix(s.T, s.d), d.v.quant(), d.v.size());
      const npuq::TensorView<std::int8_t> oh(d.out.data(), h * s.S * s.d, npuq::Layout::matrix(s.S, s.d), d.out.quant(), d.out.size());
      npuq::gemm(be, gp, qh, kt, npuq::no_bias, scores);
      npuq::gemm(be, gp, prob, vh, npuq::no_bias, oh);
    }
  };
  once();
  const std::string kernel = npuq::simd_last_kernel();
  for (auto _ : state) {
    once();
    benchmark::DoNotOptimize(d.out.data());
    benchmark::ClobberMemory();
  }
  state.SetLabel(kernel);
  set_gops(state, s.macs());
}

#if defined(NPUQ_BENCH_HAVE_ONEDNN)
// fp32 attention from oneDNN primitives: scores = (Q K^T) / sqrt(d), softmax over keys, P V.
void attention_onednn_f32(benchmark::State& state, attn_shape s) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  try {
    dnnl::engine eng(dnnl::engine::kind::cpu, 0);
    dnnl::stream strm(eng);
    const dnnl::memory::desc q_md({s.H, s.S, s.d}, dt::f32, tag::abc), kt_md({s.H, s.d, s.T}, dt::f32, tag::acb),  // K stored [H, T, d]
        sc_md({s.H, s.S, s.T}, dt::f32, tag::abc), v_md({s.H, s.T, s.d}, dt::f32, tag::abc), o_md({s.H, s.S, s.d}, dt::f32, tag::abc);
    dnnl::primitive_attr scale_attr;
    scale_attr.set_output_scales(0, {1.0f / std::sqrt(float(s.d))});
    const dnnl::matmul::primitive_desc qk_pd(dnnl::matmul::desc(q_md, kt_md, sc_md), scale_attr, eng);
    const dnnl::softmax_forward::primitive_desc sm_pd(dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, sc_md, 2), eng);
    const dnnl::matmul::primitive_desc pv_pd(dnnl::matmul::desc(sc_md, v_md, o_md), eng);
    auto fill = [&](const dnnl::memory::desc& md, unsigned seed) {
      dnnl::memory m(md, eng);
      const auto r = random_s8(md.get_size() / 4, seed);
      auto* p = static_cast<float*>(m.get_data_handle());
      for (std::size_t i = 0; i < r.size(); ++i) p[i] = 0.05f * float(r[i]);
      return m;
    };
    dnnl::memory q = fill(q_md, 11), k = fill(kt_md, 12), v = fill(v_md, 13), sc(sc_md, eng), o(o_md, eng);
    dnnl::matmul qk(qk_pd), pv(pv_pd);
    dnnl::softmax_forward sm(sm_pd);
    auto once = [&] {
      qk.execute(strm, {{DNNL_ARG_SRC, q}, {DNNL_ARG_WEIGHTS, k}, {DNNL_ARG_DST, sc}});
      sm.execute(strm, {{DNNL_ARG_SRC, sc}, {DNNL_ARG_DST, sc}});
      pv.execute(strm, {{DNNL_ARG_SRC, sc}, {DNNL_ARG_WEIGHTS, v}, {DNNL_ARG_DST, o}});
      strm.wait();
    };
    once();
    for (auto _ : state) {
      once();
      benchmark::ClobberMemory();
    }
    state.SetLabel(std::string(qk_pd.impl_info_str()) + " + " + sm_pd.impl_info_str());
    set_gops(state, s.macs());
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 2 * s.H * s.T * s.d * 4);
  } catch (const dnnl::error& e) {
    state.SkipWithError((std::string("oneDNN: ") + e.what()).c_str());
  }
}
#endif

}  // namespace

void register_attention() {
  for (const attn_shape& s : attn_shapes()) {
    for (npuq::isa level : npuq::cpu().levels()) {
      const std::string l = npuq::to_string(level);
      benchmark::RegisterBenchmark((std::string("attention/") + s.name + "/npuq/" + l).c_str(), attention_npuq, s, level)
          ->Unit(benchmark::kMicrosecond);
      if (s.S > 1)
        benchmark::RegisterBenchmark((std::string("attention/") + s.name + "/npuq-gemm/" + l).c_str(), attention_gemms, s, level)
            ->Unit(benchmark::kMicrosecond);
    }
#if defined(NPUQ_BENCH_HAVE_ONEDNN)
    benchmark::RegisterBenchmark((std::string("attention/") + s.name + "/onednn-f32").c_str(), attention_onednn_f32, s)
        ->Unit(benchmark::kMicrosecond);
#endif
  }
}

}  // namespace npuq_bench
