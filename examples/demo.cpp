// npuq demo: a small int8 network run end to end on the scalar reference backend.
//
// input 1x16x16x3 (int8)
//   -> conv2d 3x3 s2, 3 -> 16, per-channel weights, bias, ReLU     -> 1x8x8x16
//   -> depthwise 3x3 s1, multiplier 1, per-channel, ReLU6          -> 1x8x8x16
//   -> 1x1 conv 16 -> 32 (pointwise), per-channel                   -> 1x8x8x32
//   -> attention block over the 64 pixels as tokens: one GEMM [64, 32] x [32, 96] projects Q, K
//      and V; causal attention with 2 heads of 16 reads them as strided [2, 64, 16] views and
//      writes its output the same way into a [64, 32] matrix       -> 64x32
//   -> GEMM: the 64 tokens x 32 channels times a [32, 10] classifier -> 64x10
//
// Weights and inputs are deterministic, so the printed checksum is the same on every machine
// for a given numerics profile. The network then runs on the NPU tile emulator with every preset
// (each under its own numerics; Gemmini's per-tensor PPU leaves the per-channel layers to its
// host requantization fallback, reported in the statistics), checks that the outputs are
// bit-exact with the scalar reference under the same numerics, and prints what the NPU would
// spend: the full summary for Arm Ethos-U55-256 and NVDLA nv_full, one line for the others. The
// exit status is 1 if any preset's outputs differ. Usage: npuq_demo [tflite|tosa_single|onnx]
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <npuq/npu.hpp>
#include <npuq/npuq.hpp>

namespace {

// Deterministic pseudo-random int8 values in [lo, hi].
struct lcg {
  std::uint32_t state;
  std::int8_t next(int lo, int hi) {
    state = state * 1664525u + 1013904223u;
    return static_cast<std::int8_t>(lo + static_cast<int>((state >> 8) % static_cast<std::uint32_t>(hi - lo + 1)));
  }
};

template <class T>
void fill(npuq::Tensor<T>& t, lcg& g, int lo, int hi) {
  for (std::int64_t i = 0; i < t.layout().span(); ++i) t.data()[i] = static_cast<T>(g.next(lo, hi));
}

std::vector<float> channel_scales(std::int64_t n, float base) {
  std::vector<float> s(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) s[static_cast<std::size_t>(i)] = base * (1.0f + 0.05f * static_cast<float>(i % 7));
  return s;
}

npuq::Tensor<std::int32_t> make_bias(std::int64_t n, lcg& g) {
  npuq::Tensor<std::int32_t> b(npuq::Layout::row_major({n}));
  for (std::int64_t i = 0; i < n; ++i) b.data()[i] = 40 * g.next(-100, 100);
  return b;
}

// FNV-1a over the output bytes.
template <class T>
std::uint32_t checksum(const npuq::Tensor<T>& t) {
  std::uint32_t h = 2166136261u;
  const auto* p = reinterpret_cast<const unsigned char*>(t.data());
  for (std::int64_t i = 0; i < t.storage_bytes(); ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}

}  // namespace

// The layers' outputs.
struct activations {
  npuq::Tensor<std::int8_t> a0, a1, a2, qkv, attn, logits;
  bool operator==(const activations& o) const {
    return checksum(a0) == checksum(o.a0) && checksum(a1) == checksum(o.a1) && checksum(a2) == checksum(o.a2) &&
           checksum(qkv) == checksum(o.qkv) && checksum(attn) == checksum(o.attn) && checksum(logits) == checksum(o.logits);
  }
};

// The network on any backend under the given numerics.
template <class Backend>
activations run_network(const Backend& backend, const npuq::numerics_profile& profile) {
  using namespace npuq;
  lcg g{12345u};

  Tensor<std::int8_t> input(Layout::nhwc(1, 16, 16, 3), Quant::per_tensor(0.02f, -5));
  fill(input, g, -128, 127);

  Tensor<std::int8_t> w0(Layout::ohwi(16, 3, 3, 3), Quant::per_axis(0, channel_scales(16, 0.004f)));
  fill(w0, g, -127, 127);
  Tensor<std::int32_t> b0 = make_bias(16, g);
  Tensor<std::int8_t> a0(Layout::nhwc(1, 8, 8, 16), Quant::per_tensor(0.05f, -128));
  conv2d_params c0;
  c0.numerics = profile;
  c0.stride_h = c0.stride_w = 2;
  c0.padding = padding_spec::same();
  c0.clamp = clamp_spec::relu();
  conv2d(backend, c0, input, w0, b0, a0);

  Tensor<std::int8_t> w1(Layout::hwc_m(3, 3, 16, 1), Quant::per_axis(2, channel_scales(16, 0.01f)));
  fill(w1, g, -127, 127);
  Tensor<std::int32_t> b1 = make_bias(16, g);
  Tensor<std::int8_t> a1(Layout::nhwc(1, 8, 8, 16), Quant::per_tensor(0.04f, -128));
  depthwise_params d1;
  d1.numerics = profile;
  d1.padding = padding_spec::symmetric(1);
  d1.clamp = clamp_spec::relu6();
  depthwise_conv2d(backend, d1, a0, w1, b1, a1);

  Tensor<std::int8_t> w2(Layout::ohwi(32, 1, 1, 16), Quant::per_axis(0, channel_scales(32, 0.006f)));
  fill(w2, g, -127, 127);
  Tensor<std::int32_t> b2 = make_bias(32, g);
  Tensor<std::int8_t> a2(Layout::nhwc(1, 8, 8, 32), Quant::per_tensor(0.08f, 3));
  conv2d_params c2;
  c2.numerics = profile;
  conv2d(backend, c2, a1, w2, b2, a2);

  // The 1x8x8x32 activation viewed as 64 tokens x 32 channels, without a copy.
  TensorView<const std::int8_t> pixels = a2.cview().with_layout(Layout::matrix(64, 32));

  // Attention block: Q, K and V from one projection GEMM, then 2 causal heads of 16 read
  // straight out of it through strided [heads, tokens, 16] views (no copies).
  Tensor<std::int8_t> wqkv(Layout::matrix(32, 96), Quant::per_axis(1, channel_scales(96, 0.002f)));
  fill(wqkv, g, -127, 127);
  Tensor<std::int8_t> qkv(Layout::matrix(64, 96), Quant::per_tensor(0.25f, 0));
  gemm_params pq;
  pq.numerics = profile;
  gemm(backend, pq, pixels, wqkv, no_bias, qkv);
  auto heads = [&](std::int64_t which) {  // [2, 64, 16] over columns [32 * which, 32 * which + 32)
    return TensorView<const std::int8_t>(qkv.data(), 32 * which, Layout::strided({2, 64, 16}, {16, 96, 1}), qkv.quant(), qkv.size());
  };
  Tensor<std::int8_t> attn(Layout::matrix(64, 32), Quant::per_tensor(0.2f, 0));
  const TensorView<std::int8_t> attn_heads(attn.data(), 0, Layout::strided({2, 64, 16}, {16, 32, 1}), attn.quant(), attn.size());
  attention_params pa;
  pa.numerics = profile;
  pa.score = Quant::per_tensor(0.5f, 0);
  pa.causal = true;
  attention(backend, pa, heads(0), heads(1), heads(2), no_mask, attn_heads);

  Tensor<std::int8_t> w3(Layout::matrix(32, 10), Quant::per_axis(1, channel_scales(10, 0.005f)));
  fill(w3, g, -127, 127);
  Tensor<std::int32_t> b3 = make_bias(10, g);
  Tensor<std::int8_t> logits(Layout::matrix(64, 10), Quant::per_tensor(0.1f, 0));
  gemm_params p3;
  p3.numerics = profile;
  gemm(backend, p3, attn, w3, b3, logits);

  return {std::move(a0), std::move(a1), std::move(a2), std::move(qkv), std::move(attn), std::move(logits)};
}

int main(int argc, char** argv) {
  using namespace npuq;
  numerics_profile profile = numerics_profile::tflite();
  if (argc > 1) {
    if (std::strcmp(argv[1], "tosa_single") == 0) profile = numerics_profile::tosa_single();
    else if (std::strcmp(argv[1], "onnx") == 0) profile = numerics_profile::onnx();
    else if (std::strcmp(argv[1], "tflite") != 0) {
      std::fprintf(stderr, "usage: %s [tflite|tosa_single|onnx]\n", argv[0]);
      return 2;
    }
  }
  const activations r = run_network(scalar, profile);
  const Tensor<std::int8_t>& a0 = r.a0;
  const Tensor<std::int8_t>& a1 = r.a1;
  const Tensor<std::int8_t>& a2 = r.a2;
  const Tensor<std::int8_t>& logits = r.logits;
  const Layout input_layout = Layout::nhwc(1, 16, 16, 3), pixels_layout = Layout::matrix(64, 32), w3_layout = Layout::matrix(32, 10);

  std::printf("npuq %s demo, backend %s\n", NPUQ_VERSION_STRING, scalar_backend::name());
  std::printf("numerics profile: %s\n", profile.describe().c_str());
  std::printf("conv2d 3x3 s2      %s -> %s  checksum %08x\n", input_layout.shape_string().c_str(), a0.layout().shape_string().c_str(), checksum(a0));
  std::printf("depthwise 3x3 s1   %s -> %s  checksum %08x\n", a0.layout().shape_string().c_str(), a1.layout().shape_string().c_str(), checksum(a1));
  std::printf("conv2d 1x1         %s -> %s  checksum %08x\n", a1.layout().shape_string().c_str(), a2.layout().shape_string().c_str(), checksum(a2));
  std::printf("gemm (QKV)         %s x [32, 96] -> %s  checksum %08x\n", pixels_layout.shape_string().c_str(),
              r.qkv.layout().shape_string().c_str(), checksum(r.qkv));
  std::printf("attention          2 heads x 64 tokens x 16, causal -> %s  checksum %08x\n", r.attn.layout().shape_string().c_str(),
              checksum(r.attn));
  std::printf("gemm               %s x %s -> %s  checksum %08x\n", r.attn.layout().shape_string().c_str(),
              w3_layout.shape_string().c_str(), logits.layout().shape_string().c_str(), checksum(logits));
  std::printf("logits[0] =");
  for (int i = 0; i < 10; ++i) std::printf(" %d", logits.data()[i]);
  std::printf("\n");

  // The same network on the simd backend (every kernel at the best ISA level of this CPU).
  const bool simd_exact = run_network(simd, profile) == r;
  std::printf("simd backend (%s): %s with scalar\n", to_string(simd.level()), simd_exact ? "bit-exact" : "MISMATCH");
  int status = simd_exact ? 0 : 1;

  // The same network on the NPU tile emulator, on every preset under the preset's numerics (its
  // own when it fixes them, tflite otherwise): outputs checked bit for bit against the scalar
  // reference under the same numerics, the full statistics for two presets, one line for the rest.
  std::printf("\nNPU tile emulator, every preset (outputs vs scalar under the preset's numerics):\n");
  for (const std::string& name : npu::presets::names()) {
    npu::profile prof;
    if (!npu::presets::by_name(name, &prof).ok()) return 1;
    npu::emulator emu(prof);
    const bool exact = run_network(emu, prof.numerics) == run_network(scalar, prof.numerics);
    if (!exact) status = 1;
    const char* verdict = exact ? "bit-exact" : "MISMATCH";
    if (name == "ethos_u55_256" || name == "nvdla_full")
      std::printf("\n%s  outputs %s with scalar under %s\n\n", emu.summary().c_str(), verdict, prof.numerics.name);
    else
      std::printf("  %s; %s (%s)\n", emu.summary_line().c_str(), verdict, prof.numerics.name);
  }
  return status;
}
