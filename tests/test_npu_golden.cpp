// Fixed expected statistics of the NPU emulator: representative ops (GEMM with bias, padded and
// strided conv, depthwise with a multiplier, int4 conv, sparse GEMM, group-wise int4 GEMM,
// softmax, attention) on every preset, its small-buffer variant and a narrow-accumulator profile,
// digested (outputs, every op_stats and tile_stats field with doubles by their bits, summary,
// CSV and JSON traces) and compared with values recorded from the emulator before its split into
// numerics engine, cost accountant and recorder (issue 15). A refactor that changes any output,
// cycle, byte, energy bit or trace row fails here. NPUQ_GOLDEN_PRINT=1 prints the digests.
#include "support/catch.hpp"
#include "support/npu_profiles.hpp"
#include "support/random.hpp"

#include <npuq/npu.hpp>
#include <npuq/npuq.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

using namespace npuq;
using npuq_test::fill;
using npuq_test::preset;
using npuq_test::rng;
using npuq_test::shrunk;

namespace {

// FNV-1a over everything the emulator reports.
struct digest {
  std::uint64_t h = 14695981039346656037ull;
  void bytes(const void* p, std::size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ c[i]) * 1099511628211ull;
  }
  void i(std::int64_t v) { bytes(&v, sizeof v); }
  // An op's status: every op runs on every golden profile.
  void run(const status& st) {
    INFO(st.to_string());
    CHECK(st.ok());
    i(st.ok());
  }
  void d(double v) { bytes(&v, sizeof v); }
  void s(const std::string& v) {
    i(static_cast<std::int64_t>(v.size()));
    bytes(v.data(), v.size());
  }
  template <class T>
  void tensor(const Tensor<T>& t) {
    bytes(t.data(), static_cast<std::size_t>(t.size()) * sizeof(T));  // contiguous tensors only
  }
  void cycles(const npu::cycle_split& c) {
    i(c.compute);
    i(c.fill_drain);
    i(c.dma_stall);
  }
  void traffic(const npu::dram_traffic& dr, const npu::sram_traffic& sr, const npu::energy_split& e) {
    for (std::int64_t v : {dr.input_read, dr.weight_read, dr.bias_read, dr.output_written, sr.ifmap.read, sr.ifmap.written,
                           sr.weight.read, sr.weight.written, sr.ofmap.read, sr.ofmap.written, sr.accumulator.read,
                           sr.accumulator.written})
      i(v);
    for (double v : {e.mac, e.sram, e.dram, e.ppu}) d(v);
  }
  void tile(const npu::tile_stats& t) {
    for (std::int64_t v : {t.instance, t.m0, t.mt, t.n0, t.nt, t.k0, t.kt, t.start_cycle, t.dma_in_cycles, t.dma_out_cycles, t.folds,
                           t.useful_macs, t.mac_slots, t.outputs, t.host_requantized, t.absent_weight_macs, t.skipped_macs})
      i(v);
    cycles(t.cycles);
    d(t.mapping_sum);
    traffic(t.dram, t.sram, t.energy);
  }
  void op(const npu::op_stats& o) {
    s(o.op);
    s(o.shape);
    s(o.tiling);
    for (std::int64_t v : {o.instances, o.macs, o.tile_count, o.useful_macs, o.mac_slots, o.folds, o.outputs, o.host_requantized,
                           o.softmax_elements, o.score_bytes, o.absent_weight_macs, o.skipped_macs, o.scalesim_layers})
      i(v);
    cycles(o.cycles);
    d(o.mapping_sum);
    traffic(o.dram, o.sram, o.energy);
    const npu::numeric_counters& n = o.numerics;
    for (std::int64_t v : {n.array_psum_overflows, n.accumulator_overflows, n.spill_saturations, n.clamped_low, n.clamped_high, n.max_abs_acc})
      i(v);
    const npu::scalesim_figures& f = o.scalesim;
    for (std::int64_t v : {f.total_cycles, f.stall_cycles, f.sram_ifmap_reads, f.sram_filter_reads, f.sram_ofmap_writes, f.dram_ifmap_reads,
                           f.dram_filter_reads, f.dram_ofmap_writes, f.macs, f.folds, f.compute_cycles, f.lines_walked})
      i(v);
    for (double v : {f.overall_util, f.mapping_eff, f.compute_util, f.mapping_sum, f.compute_util_sum}) d(v);
    d(o.utilisation());
    d(o.mapping_efficiency());
    d(o.pj_per_mac());
    i(static_cast<std::int64_t>(o.tiles.size()));
    for (const npu::tile_stats& t : o.tiles) tile(t);
  }
  void emulator(const npu::emulator& emu) {
    for (const npu::op_stats& o : emu.ops()) op(o);
    op(emu.totals());
    s(emu.summary());
    s(emu.summary_line());
    std::ostringstream csv, js;
    emu.write_trace_csv(csv);
    emu.write_trace_json(js);
    s(csv.str());
    s(js.str());
  }
};

numerics_profile numerics_of(const npu::profile& p) { return p.fixed_numerics ? p.numerics : numerics_profile::tflite(); }

// One op per block, all on one emulator; returns the digest of outputs and statistics.
std::uint64_t run_ops(const npu::profile& prof) {
  rng r(2024);
  digest dg;
  npu::emulator emu(prof);
  const numerics_profile num = numerics_of(prof);
  // GEMM with bias and per-channel weight scales (host fallback on per-tensor PPUs).
  {
    const std::int64_t M = 37, K = 300, N = 45;
    Tensor<std::int8_t> a(Layout::matrix(M, K), Quant::per_tensor(0.02f, 3));
    Tensor<std::int8_t> b(Layout::matrix(K, N), Quant::per_axis(1, npuq_test::random_scales(r, N)));
    Tensor<std::int32_t> bias(Layout::row_major({N}));
    fill(a, r);
    fill(b, r);
    fill(bias, r, -30000, 30000);
    gemm_params p;
    p.numerics = num;
    Tensor<std::int8_t> out(Layout::matrix(M, N), Quant::per_tensor(0.3f, -3));
    dg.run(try_gemm(emu, p, a, b, bias, out));
    dg.tensor(out);
  }
  // Deep GEMM (K split on small buffers), per-tensor weights, raw int32 output.
  {
    const std::int64_t M = 9, K = 1031, N = 17;
    Tensor<std::int8_t> a(Layout::matrix(M, K), Quant::per_tensor(0.02f, -2));
    Tensor<std::int8_t> b(Layout::matrix(K, N), Quant::per_tensor(0.01f));
    fill(a, r);
    fill(b, r);
    gemm_params p;
    p.numerics = num;
    Tensor<std::int8_t> out(Layout::matrix(M, N), Quant::per_tensor(0.5f, 1));
    dg.run(try_gemm(emu, p, a, b, no_bias, out));
    dg.tensor(out);
  }
  // Conv2d: padding, stride 2, batch 2.
  {
    Tensor<std::int8_t> in(Layout::nhwc(2, 15, 13, 24), Quant::per_tensor(0.05f, 4));
    Tensor<std::int8_t> w(Layout::ohwi(20, 3, 3, 24), Quant::per_tensor(0.01f));
    Tensor<std::int32_t> bias(Layout::row_major({20}));
    fill(in, r);
    fill(w, r, -127, 127);
    fill(bias, r, -3000, 3000);
    conv2d_params p;
    p.numerics = num;
    p.stride_h = p.stride_w = 2;
    p.padding = padding_spec::same();
    Tensor<std::int8_t> out(Layout::nhwc(2, 8, 7, 20), Quant::per_tensor(0.1f, -1));
    dg.run(try_conv2d(emu, p, in, w, bias, out));
    dg.tensor(out);
  }
  // Depthwise 3x3 with channel multiplier 2.
  {
    Tensor<std::int8_t> in(Layout::nhwc(1, 12, 11, 16), Quant::per_tensor(0.05f, 2));
    Tensor<std::int8_t> w(Layout::row_major({3, 3, 32}), Quant::per_axis(2, npuq_test::random_scales(r, 32)));
    fill(in, r);
    fill(w, r);
    depthwise_params p;
    p.numerics = num;
    p.padding = padding_spec::same();
    Tensor<std::int8_t> out(Layout::nhwc(1, 12, 11, 32), Quant::per_tensor(0.2f, 0));
    dg.run(try_depthwise_conv2d(emu, p, in, w, no_bias, out));
    dg.tensor(out);
  }
  // int4 conv2d.
  {
    Tensor<std::int8_t> x(Layout::nhwc(1, 7, 6, 5), Quant::per_tensor(0.1f, 2));
    fill(x, r);
    const Quant cq = Quant::per_axis(0, npuq_test::random_scales(r, 6));
    Tensor<std::int8_t> w8(Layout::ohwi(6, 3, 3, 5), cq);
    fill(w8, r, -8, 7);
    Tensor<int4> w4(Layout::ohwi(6, 3, 3, 5), cq);
    REQUIRE(pack_int4(w8.cview(), w4.view()).ok());
    conv2d_params cp;
    cp.numerics = num;
    cp.padding = padding_spec::same();
    Tensor<std::int8_t> out(Layout::nhwc(1, 7, 6, 6), Quant::per_tensor(0.2f, 0));
    dg.run(try_conv2d_int4(emu, cp, x, w4, no_bias, out));
    dg.tensor(out);
  }
  // 2:4 sparse GEMM.
  {
    const std::int64_t M = 13, K = 203, N = 45;
    Tensor<std::int8_t> a(Layout::matrix(M, K), Quant::per_tensor(0.02f, 1));
    Tensor<std::int8_t> w(Layout::matrix(K, N), Quant::per_axis(1, npuq_test::random_scales(r, N)));
    fill(a, r);
    fill(w, r);
    REQUIRE(prune_2_4(w.view()).ok());
    sparse_2_4_matrix<> s24;
    REQUIRE(compress_2_4(w.cview(), &s24).ok());
    gemm_params p;
    p.numerics = num;
    Tensor<std::int8_t> out(Layout::matrix(M, N), Quant::per_tensor(0.3f, -3));
    dg.run(try_gemm(emu, p, a, s24, no_bias, out));
    dg.tensor(out);
  }
  // Group-wise int4 GEMM (float output).
  {
    const std::int64_t M = 5, K = 256, N = 19, gs = 64, G = K / gs;
    Tensor<std::int8_t> a(Layout::matrix(M, K), Quant::per_tensor(0.02f, 0));
    fill(a, r);
    // Drawn one after the other: as two arguments of one call their order is the compiler's
    // (GCC evaluates them right to left on x86-64, left to right on aarch64), and the digests
    // were recorded with the zero points drawn first.
    const std::vector<std::int32_t> zero_points = npuq_test::random_zero_points(r, N * G, -8, 7);
    const std::vector<float> scales = npuq_test::random_scales(r, N * G);
    Tensor<int4> w(Layout::col_major(K, N), Quant::per_group(1, 0, gs, scales, zero_points));
    Tensor<std::int8_t> w8(Layout::col_major(K, N));
    fill(w8, r, -8, 7);
    REQUIRE(pack_int4(w8.cview(), w.view()).ok());
    Tensor<float> out(Layout::matrix(M, N));
    dg.run(try_gemm_grouped(emu, {}, a, w, no_bias, out));
    dg.tensor(out);
  }
  // Softmax and attention.
  {
    Tensor<std::int8_t> x(Layout::matrix(7, 300)), y(Layout::matrix(7, 300));
    fill(x, r);
    dg.run(try_softmax(emu, softmax_params::tflite(1.0f, 0.05f), x, y));
    dg.tensor(y);
    const std::int64_t H = 2, S = 5, T = 9, d = 16, dv = 8;
    Tensor<std::int8_t> q(Layout::row_major({H, S, d}), Quant::per_tensor(0.05f, 1));
    Tensor<std::int8_t> k(Layout::row_major({H, T, d}), Quant::per_tensor(0.05f, -2));
    Tensor<std::int8_t> v(Layout::row_major({H, T, dv}), Quant::per_tensor(0.02f, 5));
    fill(q, r, -55, 55);
    fill(k, r, -55, 55);
    fill(v, r);
    attention_params ap;
    ap.numerics = prof.fixed_numerics ? prof.numerics : numerics_profile::tosa_single();
    ap.score = Quant::per_tensor(0.05f, 1);
    ap.causal = true;
    Tensor<std::int8_t> out(Layout::row_major({H, S, dv}), Quant::per_tensor(0.01f, 3));
    dg.run(try_attention(emu, ap, q, k, v, TensorView<const std::int32_t>{}, out));
    dg.tensor(out);
  }
  dg.emulator(emu);
  return dg.h;
}

// Profiles: every preset, its small-buffer variant, and narrow partial sums and accumulators
// (array partial sums checked per fold, saturating accumulator adds, narrow spills).
std::vector<npu::profile> golden_profiles() {
  std::vector<npu::profile> v = npuq_test::all_profiles();
  npu::profile narrow = shrunk(preset("generic"));
  narrow.name = "generic/narrow";
  narrow.array_psum = {14, overflow_rule::wrap};
  narrow.fixed_numerics = true;
  narrow.numerics = numerics_profile::tflite();
  narrow.numerics.acc = {22, overflow_rule::saturate_each_add};
  narrow.memory.psums = npu::psum_mode::spill;
  narrow.memory.spill_bits = 20;
  v.push_back(narrow);
  return v;
}

const std::map<std::string, std::uint64_t> expected = {
    // Recorded from the emulator at commit 136cfbf (before the split).
    {"generic", 0x1150d27027a79746ull},
    {"generic/small", 0x31b2e041cbaacc79ull},
    {"scalesim_compat", 0xd6e7d9fbe3687d3full},
    {"scalesim_compat/small", 0x9b69c7163c516420ull},
    {"tpu_256x256", 0xd9ede2f5d0b4a517ull},
    {"tpu_256x256/small", 0x5c103e3abcb1a4c2ull},
    {"ethos_u55_256", 0x147cc54ef7a35a55ull},
    {"ethos_u55_256/small", 0xfe6f9b762a276bbbull},
    {"ethos_u65_512", 0x847a87d15c226568ull},
    {"ethos_u65_512/small", 0x2113f492c0e1befcull},
    {"gemmini_16x16", 0xebe16fd58ba46518ull},
    {"gemmini_16x16/small", 0x33335043227dbd36ull},
    {"nvdla_small", 0xed1b643e9a037805ull},
    {"nvdla_small/small", 0x75e5106e7ef7d8fdull},
    {"nvdla_full", 0x8dc502bdc487814bull},
    {"nvdla_full/small", 0x526468434e706cbdull},
    {"generic/narrow", 0xc4c8b37986f72d5full},
};

}  // namespace

TEST_CASE("emulator outputs and statistics equal the recorded values on every preset", "[npu][golden]") {
  const bool print = std::getenv("NPUQ_GOLDEN_PRINT") != nullptr;
  for (const npu::profile& p : golden_profiles()) {
    INFO(p.name);
    REQUIRE(p.validate().ok());
    const std::uint64_t h = run_ops(p);
    if (print) std::printf("    {\"%s\", 0x%016llxull},\n", p.name.c_str(), static_cast<unsigned long long>(h));
    if (print) continue;
    const auto it = expected.find(p.name);
    REQUIRE(it != expected.end());
    CHECK(h == it->second);
  }
}

TEST_CASE("the engine's int64 rounding shift equals round_shift wherever it is used", "[npu][ppu]") {
  rng r(77);
  const auto check = [&](auto mode) {
    constexpr rounding R = decltype(mode)::value;
    for (int i = 0; i < 200000; ++i) {
      const int s = r.uniform(1, 62);
      std::int64_t v = (static_cast<std::int64_t>(r.uniform(0, INT32_MAX)) << 31) ^ r.uniform(0, INT32_MAX);  // < 2^62
      if (i % 3 == 1) v >>= r.uniform(0, 61);
      if (i % 3 == 2 && s < 50) v = static_cast<std::int64_t>(r.uniform(-500, 500)) * (std::int64_t{1} << s) + (r.uniform(0, 1) ? std::int64_t{1} << (s - 1) : 0);
      if (r.uniform(0, 1)) v = -v;
      INFO(to_string(R) << " v=" << v << " s=" << s);
      REQUIRE(npu::detail::round_shift_int64<R>(v, s) == npuq::detail::round_shift<std::int64_t>(v, s, R));
    }
  };
  check(std::integral_constant<rounding, rounding::floor>{});
  check(std::integral_constant<rounding, rounding::half_up>{});
  check(std::integral_constant<rounding, rounding::half_away>{});
  check(std::integral_constant<rounding, rounding::truncate>{});
  check(std::integral_constant<rounding, rounding::half_even>{});
}
