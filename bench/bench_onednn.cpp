// oneDNN (Debian libdnnl-dev 2.6) on the same shapes: int8 matmul and convolution primitives
// with s8 weights, s32 bias, s8 destination and per-output-channel output scales set through
// primitive attributes; depthwise is a grouped convolution with groups = C. Both s8 and u8
// sources are measured (oneDNN's x86 int8 kernels are built around u8 activations; s8 costs
// it a compensation term). Primitives, memories and the weight reorder into the layout the
// primitive chose (format_tag::any) are made outside the timed loop; the label is oneDNN's own
// implementation name (e.g. "brg:avx512_core_amx", "jit:avx2", "gemm:jit").
//
// Thread count: Debian's oneDNN uses OpenMP, so run with OMP_NUM_THREADS=1 for single-thread
// numbers (scripts/bench.sh does).
#include <oneapi/dnnl/dnnl.hpp>

#include <cstring>
#include <string>
#include <unordered_map>
#include <vector>

#include "bench_common.hpp"

namespace npuq_bench {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

dnnl::memory make_memory(const dnnl::memory::desc& md, const void* src, std::size_t bytes) {
  dnnl::memory m(md, engine());
  if (src != nullptr) std::memcpy(m.get_data_handle(), src, bytes);
  return m;
}

// Reorders user-format weights into the layout the primitive wants (outside the timed loop).
dnnl::memory reorder_weights(dnnl::memory user, const dnnl::memory::desc& want, dnnl::stream& s) {
  if (user.get_desc() == want) return user;
  dnnl::memory out(want, engine());
  dnnl::reorder(user, out).execute(s, user, out);
  s.wait();
  return out;
}

std::vector<float> output_scales(std::int64_t n, float oscale) {
  std::vector<float> s = weight_scales(n);
  for (auto& x : s) x = in_scale * x / oscale;
  return s;
}

// Runs a prepared primitive in the timed loop.
void run(benchmark::State& state, dnnl::primitive& prim, std::unordered_map<int, dnnl::memory>& args, dnnl::stream& s,
         const std::string& label, double macs) {
  prim.execute(s, args);  // warm-up
  s.wait();
  for (auto _ : state) {
    prim.execute(s, args);
    s.wait();
    benchmark::ClobberMemory();
  }
  state.SetLabel(label);
  set_gops(state, macs);
}

void gemm_onednn(benchmark::State& state, gemm_shape sh, dt src_type) {
  try {
    dnnl::stream strm(engine());
    const dnnl::memory::desc src_md({sh.M, sh.K}, src_type, tag::ab), user_w_md({sh.K, sh.N}, dt::s8, tag::ab),
        any_w_md({sh.K, sh.N}, dt::s8, tag::any), bias_md({1, sh.N}, dt::s32, tag::ab), dst_md({sh.M, sh.N}, dt::s8, tag::ab);
    dnnl::primitive_attr attr;
    attr.set_output_scales(1 << 1, output_scales(sh.N, out_scale(sh.K)));
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, any_w_md, bias_md, dst_md), attr, engine());
    const auto a = random_s8(static_cast<std::size_t>(sh.M * sh.K), 1);
    const auto b = random_s8(static_cast<std::size_t>(sh.K * sh.N), 2);
    const auto bias = random_bias(static_cast<std::size_t>(sh.N), 3);
    dnnl::memory w = reorder_weights(make_memory(user_w_md, b.data(), b.size()), pd.weights_desc(), strm);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, make_memory(src_md, a.data(), a.size())},
                                               {DNNL_ARG_WEIGHTS, w},
                                               {DNNL_ARG_BIAS, make_memory(bias_md, bias.data(), bias.size() * 4)},
                                               {DNNL_ARG_DST, make_memory(dst_md, nullptr, 0)}};
    dnnl::matmul prim(pd);
    run(state, prim, args, strm, std::string(pd.impl_info_str()) + (src_type == dt::u8 ? " u8s8" : " s8s8"), sh.macs());
    if (sh.M == 1) state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * sh.K * sh.N);
  } catch (const dnnl::error& e) {
    state.SkipWithError((std::string("oneDNN: ") + e.what()).c_str());
  }
}

void conv_onednn(benchmark::State& state, conv_shape sh, dt src_type) {
  try {
    dnnl::stream strm(engine());
    const std::int64_t G = sh.dw ? sh.C : 1, icg = sh.C / G, ocg = sh.OC / G;
    const dnnl::memory::dims w_dims = sh.dw ? dnnl::memory::dims{G, ocg, icg, sh.k, sh.k} : dnnl::memory::dims{sh.OC, sh.C, sh.k, sh.k};
    const dnnl::memory::desc src_md({1, sh.C, sh.H, sh.W}, src_type, tag::nhwc),
        user_w_md(w_dims, dt::s8, sh.dw ? tag::hwigo : tag::ohwi), any_w_md(w_dims, dt::s8, tag::any),
        bias_md({sh.OC}, dt::s32, tag::a), dst_md({1, sh.OC, sh.OH(), sh.OW()}, dt::s8, tag::nhwc);
    dnnl::primitive_attr attr;
    attr.set_output_scales(1 << 1, output_scales(sh.OC, out_scale(sh.dw ? 9 : 9 * sh.C)));
    // Padding 1 before; after, whatever makes the output extent come out as computed.
    const std::int64_t pr_h = (sh.OH() - 1) * sh.stride + sh.k - sh.H - sh.pad, pr_w = (sh.OW() - 1) * sh.stride + sh.k - sh.W - sh.pad;
    const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src_md,
                                               any_w_md, bias_md, dst_md, {sh.stride, sh.stride}, {sh.pad, sh.pad}, {pr_h, pr_w});
    const dnnl::convolution_forward::primitive_desc pd(desc, attr, engine());
    const auto x = random_s8(static_cast<std::size_t>(sh.H * sh.W * sh.C), 4);
    const auto wv = random_s8(static_cast<std::size_t>(sh.k * sh.k * sh.OC * icg), 5);
    const auto bias = random_bias(static_cast<std::size_t>(sh.OC), 6);
    dnnl::memory w = reorder_weights(make_memory(user_w_md, wv.data(), wv.size()), pd.weights_desc(), strm);
    std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, make_memory(src_md, x.data(), x.size())},
                                               {DNNL_ARG_WEIGHTS, w},
                                               {DNNL_ARG_BIAS, make_memory(bias_md, bias.data(), bias.size() * 4)},
                                               {DNNL_ARG_DST, make_memory(dst_md, nullptr, 0)}};
    dnnl::convolution_forward prim(pd);
    run(state, prim, args, strm, std::string(pd.impl_info_str()) + (src_type == dt::u8 ? " u8s8" : " s8s8"), sh.macs());
  } catch (const dnnl::error& e) {
    state.SkipWithError((std::string("oneDNN: ") + e.what()).c_str());
  }
}

}  // namespace

void register_onednn(const gemm_shape& s) {
  add(gemm_name(s, "onednn_s8"), gemm_onednn, s, dt::s8);
  add(gemm_name(s, "onednn_u8"), gemm_onednn, s, dt::u8);
}

void register_onednn(const conv_shape& s) {
  add(conv_name(s, "onednn_s8"), conv_onednn, s, dt::s8);
  add(conv_name(s, "onednn_u8"), conv_onednn, s, dt::u8);
}

}  // namespace npuq_bench
