// Seeded fuzz driver for the GEMM family (issue 14): int8 GEMM (batched, strided and transposed
// views; int8, uint8 and int32 outputs), W4A8 GEMM on int4 B, group-wise int4 GEMM (float and
// int8 outputs) and sparse GEMM (2:4, block CSR, CSR, sometimes with corrupted indices), on
// scalar, simd at every level and the NPU emulator. Calls mix valid shapes with adversarial ones
// (see fuzz_support.hpp for what is checked). Usage: fuzz_gemm [seconds] [seed].
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.hpp"

using namespace npuq;
using namespace npuq::fuzz;

namespace {

// A giant reduction (K of 2^62 through zero strides) may be a valid call that takes forever:
// skipped. Negative extents are left to validation.
bool too_much_work(double batch, std::int64_t M, std::int64_t N, std::int64_t K) {
  return batch >= 0 && M >= 0 && N >= 0 && K >= 0 && batch * double(M) * double(N) * double(std::max<std::int64_t>(K, 1)) > 2e6;
}

gemm_params random_gemm_params(gen& g) {
  gemm_params p;
  const numerics_profile profiles[] = {numerics_profile::tflite(), numerics_profile::tosa_single(), numerics_profile::onnx()};
  p.numerics = profiles[g.in(0, 2)];
  if (g.chance(20)) p.clamp = g.chance(50) ? clamp_spec::relu() : clamp_spec::relu6();
  if (g.chance(20)) p.int4_weights = int4_range::symmetric;
  return p;
}

// int8 / uint8 A times int8 or int4 B (rank 2, or batched like A), output O.
template <class A, class B, class O>
void dense_call(gen& g, driver& d, const char* op) {
  const int rank = static_cast<int>(g.chance(70) ? 2 : g.in(3, 4));
  std::int64_t a_dims[6], b_dims[6], o_dims[6];
  double batch = 1;
  for (int i = 0; i < rank - 2; ++i) {
    a_dims[i] = b_dims[i] = o_dims[i] = g.extent(1, 3);
    batch = a_dims[i] < 0 || batch < 0 ? -1 : batch * double(a_dims[i]);
  }
  const std::int64_t M = g.extent(0, 9), K = g.extent(0, 40), N = g.extent(0, 40);
  if (too_much_work(batch, M, N, K)) return;
  a_dims[rank - 2] = M, a_dims[rank - 1] = K;
  o_dims[rank - 2] = g.chance(3) ? g.extent(0, 9) : M, o_dims[rank - 1] = g.chance(3) ? g.extent(0, 40) : N;
  const bool b_batched = rank > 2 && g.chance(50);
  const int b_rank = b_batched ? rank : 2;
  std::int64_t* bd = b_batched ? b_dims : b_dims + rank - 2;
  bd[b_rank - 2] = K, bd[b_rank - 1] = N;
  pool pa(4096), pb(4096), pbias(512), pout(8192);
  pa.fill(g);
  pb.fill(g);
  pbias.fill(g);
  pout.fill_canary();
  const int zp_lo = std::is_same<A, std::uint8_t>::value ? 0 : -128, zp_hi = zp_lo + 255;
  const TensorView<const A> a = random_view<const A>(g, pa, a_dims, rank, random_quant(g, 0, 0, zp_lo, zp_hi));
  Quant bq = std::is_same<B, int4>::value ? random_quant(g, N, b_rank - 1, -8, 7) : random_quant(g, N, b_rank - 1, -128, 127);
  if (std::is_same<B, int4>::value && g.chance(70)) bq.zero_points.assign(bq.zero_points.size(), 0);
  TensorView<const B> b = random_view<const B>(g, pb, bd, b_rank, bq);
  if (g.chance(10) && b_rank == 2) {  // a weight stored [N, K], passed transposed
    b = TensorView<const B>(b.data(), 0, Layout::col_major(K, N), bq, b.capacity());
  }
  TensorView<const std::int32_t> bias;
  const std::int64_t bias_dims[1] = {N};
  if (g.chance(50)) bias = random_view<const std::int32_t>(g, pbias, bias_dims, 1, {});
  const int alias = g.chance(6) ? static_cast<int>(g.in(1, 3)) : 0;
  pool& outp = alias == 1 ? pa : (alias == 2 ? pb : (alias == 3 ? pbias : pout));
  const Quant oq = std::is_same<O, std::int32_t>::value ? (g.chance(90) ? Quant{} : random_quant(g, 0, 0, 0, 0))
                                                         : random_quant(g, 0, 0, std::is_same<O, std::uint8_t>::value ? 0 : -128,
                                                                        std::is_same<O, std::uint8_t>::value ? 255 : 127);
  const TensorView<O> out = random_view<O>(g, outp, o_dims, rank, oq);
  const gemm_params p = random_gemm_params(g);
  const npu::emulator emu = random_emulator(g);
  d.context = describe("a", a) + describe("b", b) + describe("bias", bias) + describe("out", out) + " profile " + p.numerics.name;
  check_call(d, op, outp, {&pa, &pb, &pbias}, &emu, [&](const auto& be) { return try_gemm(be, p, a, b, bias, out); });
}

// Group-wise int4: A [M, K], B int4 [K, N] with per-group scales, float or int8 output.
template <class A, class O>
void grouped_call(gen& g, driver& d) {
  const std::int64_t M = g.extent(0, 6), K = g.extent(0, 96), N = g.extent(0, 24);
  if (too_much_work(1, M, N, K)) return;
  const std::int64_t gs = g.chance(10) ? g.extent(0, 8192) : (std::int64_t{1} << g.in(2, 6));
  const std::int64_t G = (K >= 0 && gs > 0) ? ceil_div(K, gs) : 1;
  std::vector<float> scales;
  if (N >= 0 && N <= 64 && G <= 64) scales.resize(static_cast<std::size_t>(N * G + (g.chance(5) ? 1 : 0)));
  for (float& s : scales) s = g.chance(2) ? 0.0f : static_cast<float>(g.in(1, 1000)) * 1e-3f;
  std::vector<std::int32_t> zps = {0};
  if (g.chance(40)) {
    zps.resize(scales.size());
    for (auto& z : zps) z = static_cast<std::int32_t>(g.chance(3) ? g.in(-20, 20) : g.in(-8, 7));
  }
  const Quant bq = g.chance(10) ? random_quant(g, N, 1, -8, 7) : Quant::per_group(1, 0, gs, scales, zps);
  pool pa(4096), pb(4096), pbias(512), pout(8192);
  pa.fill(g);
  pb.fill(g);
  pbias.fill(g);
  for (std::size_t i = 0; i < pbias.bytes.size(); i += 4) pbias.bytes[i + 3] = static_cast<unsigned char>(g.in(0x3c, 0x43));  // finite floats
  pout.fill_canary();
  const std::int64_t a_dims[2] = {M, K}, b_dims[2] = {K, N}, o_dims[2] = {g.chance(3) ? g.extent(0, 6) : M, N}, bias_dims[1] = {N};
  const TensorView<const A> a = random_view<const A>(g, pa, a_dims, 2, random_quant(g, 0, 0, std::is_same<A, std::uint8_t>::value ? 0 : -128,
                                                                                  std::is_same<A, std::uint8_t>::value ? 255 : 127));
  const TensorView<const int4> b = random_view<const int4>(g, pb, b_dims, 2, bq);
  TensorView<const float> bias;
  if (g.chance(50)) bias = random_view<const float>(g, pbias, bias_dims, 1, {});
  const int alias = g.chance(6) ? static_cast<int>(g.in(1, 3)) : 0;
  pool& outp = alias == 1 ? pa : (alias == 2 ? pb : (alias == 3 ? pbias : pout));
  const Quant oq = std::is_same<O, float>::value ? Quant{} : random_quant(g, 0, 0, -128, 127);
  const TensorView<O> out = random_view<O>(g, outp, o_dims, 2, oq);
  gemm_grouped_params p;
  if (g.chance(20)) p.clamp = clamp_spec::relu();
  if (g.chance(20)) p.int4_weights = int4_range::symmetric;
  const npu::emulator emu = random_emulator(g);
  d.context = describe("a", a) + describe("b", b) + " group " + std::to_string(bq.group_size) + describe("bias", bias) + describe("out", out);
  check_call(d, "gemm_grouped", outp, {&pa, &pb, &pbias}, &emu, [&](const auto& be) {
    return bias.rank() == 0 ? try_gemm_grouped(be, p, a, b, no_bias, out) : try_gemm_grouped(be, p, a, b, bias, out);
  });
}

// Sparse B: a random dense [K, N] compressed to 2:4, block CSR or CSR, sometimes corrupted.
void sparse_call(gen& g, driver& d) {
  const std::int64_t M = g.extent(0, 8), K = g.in(0, 48), N = g.in(0, 24);
  Tensor<std::int8_t> dense(Layout::matrix(K, N), random_quant(g, N, 1, -128, 127));
  for (std::int64_t i = 0; i < K * N; ++i) dense.data()[i] = static_cast<std::int8_t>(g.chance(50) ? 0 : g.in(-128, 127));
  pool pa(4096), pbias(512), pout(8192);
  pa.fill(g);
  pbias.fill(g);
  pout.fill_canary();
  const std::int64_t a_dims[2] = {M, g.chance(4) ? g.extent(0, 48) : K}, o_dims[2] = {M, g.chance(3) ? g.extent(0, 24) : N}, bias_dims[1] = {N};
  if (too_much_work(1, M, N, K)) return;
  const TensorView<const std::int8_t> a = random_view<const std::int8_t>(g, pa, a_dims, 2, random_quant(g, 0, 0, -128, 127));
  TensorView<const std::int32_t> bias;
  if (g.chance(50)) bias = random_view<const std::int32_t>(g, pbias, bias_dims, 1, {});
  const bool alias = g.chance(5);
  pool& outp = alias ? pa : pout;
  const TensorView<std::int8_t> out = random_view<std::int8_t>(g, outp, o_dims, 2, random_quant(g, 0, 0, -128, 127));
  const gemm_params p = random_gemm_params(g);
  const npu::emulator emu = random_emulator(g);
  // Corrupts one index array entry or a shape field (the op must refuse it by name).
  auto corrupt = [&](std::vector<std::int32_t>& v, std::int64_t& dim) {
    if (!g.chance(10)) return;
    if (!v.empty() && g.chance(70)) v[static_cast<std::size_t>(g.in(0, static_cast<std::int64_t>(v.size()) - 1))] = static_cast<std::int32_t>(g.extent(-2, 60));
    else dim = g.extent(0, 60);
  };
  d.context = describe("a", a) + describe("bias", bias) + describe("out", out) + " dense B [" + std::to_string(K) + ", " + std::to_string(N) + "]";
  const int kind = static_cast<int>(g.in(0, 2));
  if (kind == 0) {
    if (!prune_2_4(dense.view()).ok()) return;
    sparse_2_4_matrix<std::int8_t> s;
    if (!compress_2_4(dense.cview(), &s).ok()) return;
    if (g.chance(10) && !s.indices.empty()) s.indices[static_cast<std::size_t>(g.in(0, static_cast<std::int64_t>(s.indices.size()) - 1))] = static_cast<std::uint8_t>(g.in(0, 255));
    if (g.chance(5)) s.K = g.extent(0, 60);
    check_call(d, "gemm 2:4", outp, {&pa, &pbias}, &emu, [&](const auto& be) { return try_gemm(be, p, a, s, bias, out); });
  } else if (kind == 1) {
    block_csr_matrix s;
    const std::int64_t bn = g.in(1, 4), bk = g.in(1, 8);
    if (!compress_block_csr(dense.cview(), bn, bk, &s).ok()) return;
    corrupt(g.chance(50) ? s.row_ptr : s.col_idx, g.chance(50) ? s.K : s.N);
    check_call(d, "gemm block_csr", outp, {&pa, &pbias}, &emu, [&](const auto& be) { return try_gemm(be, p, a, s, bias, out); });
  } else {
    csr_matrix s;
    if (!compress_csr(dense.cview(), &s).ok()) return;
    corrupt(g.chance(50) ? s.row_ptr : s.col_idx, g.chance(50) ? s.K : s.N);
    check_call(d, "gemm csr", outp, {&pa, &pbias}, &emu, [&](const auto& be) { return try_gemm(be, p, a, s, bias, out); });
  }
}

void one_call(gen& g, driver& d) {
  switch (d.call % 7) {
    case 0: return dense_call<std::int8_t, std::int8_t, std::int8_t>(g, d, "gemm s8s8s8");
    case 1: return dense_call<std::uint8_t, std::int8_t, std::uint8_t>(g, d, "gemm u8s8u8");
    case 2: return dense_call<std::int8_t, std::int8_t, std::int32_t>(g, d, "gemm s8s8s32");
    case 3: return dense_call<std::int8_t, int4, std::int8_t>(g, d, "gemm s8s4s8");
    case 4: return grouped_call<std::int8_t, float>(g, d);
    case 5: return grouped_call<std::uint8_t, std::int8_t>(g, d);
    default: return sparse_call(g, d);
  }
}

}  // namespace

NPUQ_FUZZ_MAIN("fuzz_gemm", one_call)
