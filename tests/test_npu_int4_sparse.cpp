// INT4 and sparse weights on the NPU emulator: every preset (and a shrunken-buffer variant of
// it, so K and channels split into tiles) returns the scalar reference's integers, int4 weights
// move half the bytes of int8 ones, sparse weights move their compressed bytes, and the
// sparse_weights knob changes cycles but never results.
#include "support/catch.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <npuq/npuq.hpp>

#include "support/npu_profiles.hpp"
#include "support/random.hpp"

using namespace npuq;
using npuq_test::fill;
using npuq_test::all_profiles;
using npuq_test::preset;
using npuq_test::rng;
using npuq_test::shrunk;
using npuq_test::values;

namespace {

// The numerics an op asks of a profile: its own when fixed; otherwise a saturating 24-bit
// accumulator (results differ from wrap-around when sums are large) and tflite in turn.
std::vector<numerics_profile> numerics_for(const npu::profile& p) {
  if (p.fixed_numerics) return {p.numerics};
  return {numerics_profile::tflite(), numerics_profile::tosa_single().with_accumulator(24, overflow_rule::saturate_each_add)};
}

struct shape {
  std::int64_t M, K, N;
};
const shape shapes[] = {{1, 1, 1}, {3, 7, 5}, {1, 300, 33}, {17, 64, 16}, {5, 1031, 9}};

Tensor<std::int8_t> random_a(rng& r, const shape& s) {
  Tensor<std::int8_t> a(Layout::matrix(s.M, s.K), Quant::per_tensor(0.02f, r.uniform(-5, 5)));
  fill(a, r);
  return a;
}
Tensor<std::int32_t> random_bias(rng& r, std::int64_t n) {
  Tensor<std::int32_t> b(Layout::row_major({n}));
  fill(b, r, -30000, 30000);
  return b;
}

}  // namespace

TEST_CASE("npu int4 GEMM equals scalar on every preset and moves half the weight bytes", "[npu][int4]") {
  rng r(11);
  for (const npu::profile& prof : all_profiles()) {
    for (const numerics_profile& num : numerics_for(prof)) {
      for (const shape& s : shapes) {
        const Tensor<std::int8_t> a = random_a(r, s);
        const Quant wq = Quant::per_axis(1, npuq_test::random_scales(r, s.N));
        Tensor<std::int8_t> w8(Layout::matrix(s.K, s.N), wq);
        fill(w8, r, -8, 7);
        Tensor<int4> w4(Layout::matrix(s.K, s.N), wq);
        REQUIRE(pack_int4(w8.cview(), w4.view()).ok());
        const Tensor<std::int32_t> bias = random_bias(r, s.N);
        gemm_params p;
        p.numerics = num;
        Tensor<std::int8_t> want(Layout::matrix(s.M, s.N), Quant::per_tensor(0.3f, 1)), got(want.layout(), want.quant()),
            got8(want.layout(), want.quant());
        gemm(scalar, p, a, w8, bias, want);
        const npu::emulator emu(prof);
        gemm(emu, p, a, w8, bias, got8);
        gemm(emu, p, a, w4, bias, got);
        INFO(prof.name << " " << num.describe() << " M=" << s.M << " K=" << s.K << " N=" << s.N);
        CHECK(values(got) == values(want));
        CHECK(values(got8) == values(want));
        REQUIRE(emu.ops().size() == 2);
        const npu::op_stats &o8 = emu.ops()[0], &o4 = emu.ops()[1];
        // With the same tiles every weight fetch halves (an odd-sized tile rounds up to a whole
        // byte); smaller weights may also let the tiler pick larger tiles, which fetch less.
        if (o8.tiles.size() == o4.tiles.size()) {
          for (std::size_t t = 0; t < o8.tiles.size(); ++t)
            CHECK(o4.tiles[t].dram.weight_read == (o8.tiles[t].dram.weight_read + 1) / 2);
        } else {
          CHECK(o4.tiles.size() < o8.tiles.size());
        }
        if (s.K * s.N > 1) {
          CHECK(2 * o4.dram.weight_read <= o8.dram.weight_read + static_cast<std::int64_t>(o4.tiles.size()));
          CHECK(o4.energy.dram < o8.energy.dram);
        }
        CHECK(o4.useful_macs == s.M * s.N * s.K);
      }
    }
  }
}

TEST_CASE("npu int4 conv2d and depthwise are charged 4-bit weights", "[npu][int4]") {
  rng r(12);
  for (const std::string& name : npu::presets::names()) {
    const npu::profile prof = preset(name);
    const npu::emulator emu(prof);
    Tensor<std::int8_t> x(Layout::nhwc(1, 7, 6, 5), Quant::per_tensor(0.1f, 2));
    fill(x, r);
    const Quant cq = Quant::per_axis(0, npuq_test::random_scales(r, 6));
    Tensor<std::int8_t> w8(Layout::ohwi(6, 3, 3, 5), cq);
    fill(w8, r, -8, 7);
    Tensor<int4> w4(Layout::ohwi(6, 3, 3, 5), cq);
    REQUIRE(pack_int4(w8.cview(), w4.view()).ok());
    conv2d_params cp;
    cp.padding = padding_spec::same();
    if (prof.fixed_numerics) cp.numerics = prof.numerics;
    Tensor<std::int8_t> want(Layout::nhwc(1, 7, 6, 6), Quant::per_tensor(0.2f, 0)), got(want.layout(), want.quant());
    conv2d(scalar, cp, x, w8, no_bias, want);
    conv2d(emu, cp, x, w8, no_bias, got);
    const std::int64_t bytes8 = emu.last().dram.weight_read;
    conv2d_int4(emu, cp, x, w4, no_bias, got);
    INFO(name);
    CHECK(values(got) == values(want));
    CHECK(emu.last().dram.weight_read == (bytes8 + 1) / 2);

    const Quant dq = Quant::per_axis(2, npuq_test::random_scales(r, 5));
    Tensor<std::int8_t> d8(Layout::row_major({3, 3, 5}), dq);
    fill(d8, r, -8, 7);
    Tensor<int4> d4(Layout::row_major({3, 3, 5}), dq);
    REQUIRE(pack_int4(d8.cview(), d4.view()).ok());
    depthwise_params dp;
    dp.padding = padding_spec::same();
    if (prof.fixed_numerics) dp.numerics = prof.numerics;
    Tensor<std::int8_t> dwant(Layout::nhwc(1, 7, 6, 5), Quant::per_tensor(0.2f, 0)), dgot(dwant.layout(), dwant.quant());
    depthwise_conv2d(scalar, dp, x, d8, no_bias, dwant);
    depthwise_conv2d(emu, dp, x, d8, no_bias, dgot);
    const std::int64_t dbytes8 = emu.last().dram.weight_read;
    depthwise_conv2d_int4(emu, dp, x, d4, no_bias, dgot);
    CHECK(values(dgot) == values(dwant));
    CHECK(emu.last().dram.weight_read < dbytes8);
    CHECK(emu.last().dram.weight_read >= dbytes8 / 2);
    // The int4 marking ends with the call: the next int8 op is charged 8 bits again.
    conv2d(emu, cp, x, w8, no_bias, got);
    CHECK(emu.last().dram.weight_read == bytes8);
  }
}

TEST_CASE("npu group-wise int4 GEMM equals scalar and is charged nibbles plus scales", "[npu][int4]") {
  rng r(13);
  for (const std::string& name : npu::presets::names()) {
    npu::emulator emu(preset(name));
    for (std::int64_t gs : {32, 64, 128}) {
      const std::int64_t M = 5, K = 256, N = 19, G = K / gs;
      const Tensor<std::int8_t> a = random_a(r, {M, K, N});
      Tensor<int4> w(Layout::col_major(K, N),
                     Quant::per_group(1, 0, gs, npuq_test::random_scales(r, N * G), npuq_test::random_zero_points(r, N * G, -8, 7)));
      Tensor<std::int8_t> w8(Layout::col_major(K, N));
      fill(w8, r, -8, 7);
      REQUIRE(pack_int4(w8.cview(), w.view()).ok());
      Tensor<float> want(Layout::matrix(M, N)), got(Layout::matrix(M, N));
      gemm_grouped(scalar, {}, a, w, no_bias, want);
      emu.reset();
      gemm_grouped(emu, {}, a, w, no_bias, got);
      INFO(name << " group " << gs);
      CHECK(std::memcmp(want.data(), got.data(), sizeof(float) * M * N) == 0);
      REQUIRE(emu.ops().size() == 1);
      const npu::op_stats& o = emu.last();
      CHECK(o.op == "gemm_grouped");
      CHECK(o.macs == M * N * K);
      // Nibbles (fetched once per channel tile here: A and the weights fit) plus 4-byte scales.
      CHECK(o.dram.weight_read >= K * N / 2 + 4 * N * G);
      CHECK(o.dram.output_written == 4 * M * N);
    }
  }
}

namespace {

// Dense int8 weights pruned to a pattern, and the sparse matrix that holds them.
struct sparse_case {
  std::string name;
  Tensor<std::int8_t> dense;
  std::int64_t stored = 0, storage = 0;
};

template <class S>
void check_sparse(const S& sw, const Tensor<std::int8_t>& dense, const shape& s, rng& r, const std::string& what) {
  const Tensor<std::int8_t> a = random_a(r, s);
  const Tensor<std::int32_t> bias = random_bias(r, s.N);
  std::int64_t stored = 0;
  for (std::int64_t n = 0; n < s.N; ++n) for_each_entry(sw, n, [&](std::int64_t, std::int8_t) { ++stored; });
  for (const npu::profile& base : all_profiles()) {
    for (const numerics_profile& num : numerics_for(base)) {
      gemm_params p;
      p.numerics = num;
      Tensor<std::int8_t> want(Layout::matrix(s.M, s.N), Quant::per_tensor(0.3f, -3));
      gemm(scalar, p, a, dense, bias, want);
      std::int64_t compute[2] = {0, 0}, bytes[2] = {0, 0};
      for (int skip = 0; skip < 2; ++skip) {
        npu::profile prof = base;
        prof.sparse_weights = skip ? npu::sparse_mode::skip_macs : npu::sparse_mode::bandwidth_only;
        const npu::emulator emu(prof);
        Tensor<std::int8_t> got(want.layout(), want.quant());
        gemm(emu, p, a, sw, bias, got);
        INFO(what << " " << prof.name << " " << npu::to_string(prof.sparse_weights) << " " << num.describe() << " M=" << s.M
                  << " K=" << s.K << " N=" << s.N);
        CHECK(values(got) == values(want));
        const npu::op_stats& o = emu.last();
        CHECK(o.op == "gemm_sparse");
        CHECK(o.macs == s.M * s.N * s.K);
        CHECK(o.useful_macs == s.M * stored);
        CHECK(o.absent_weight_macs == o.macs - o.useful_macs);
        if (skip) {
          CHECK(o.skipped_macs > 0);
          CHECK(o.skipped_macs <= o.absent_weight_macs);
        } else {
          CHECK(o.skipped_macs == 0);
        }
        compute[skip] = o.cycles.compute;
        bytes[skip] = o.dram.weight_read;
        // One weight fetch of the whole matrix (unshrunk presets hold it): exactly the format's bytes.
        if (o.tile_count == 1) CHECK(o.dram.weight_read == storage_bytes(sw));
        CHECK(o.dram.weight_read >= storage_bytes(sw));
      }
      CHECK(compute[1] <= compute[0]);
      CHECK(bytes[1] == bytes[0]);
    }
  }
}

}  // namespace

TEST_CASE("npu sparse GEMM equals scalar on every preset; skip_macs saves cycles, not results", "[npu][sparse]") {
  rng r(14);
  for (const shape& s : {shape{1, 256, 40}, shape{13, 203, 45}, shape{4, 1031, 9}}) {
    Tensor<std::int8_t> w(Layout::matrix(s.K, s.N), Quant::per_axis(1, npuq_test::random_scales(r, s.N)));
    fill(w, r);
    Tensor<std::int8_t> w24(w.layout(), w.quant());
    std::memcpy(w24.data(), w.data(), static_cast<std::size_t>(s.K * s.N));
    REQUIRE(prune_2_4(w24.view()).ok());
    sparse_2_4_matrix<> s24;
    REQUIRE(compress_2_4(w24.cview(), &s24).ok());
    check_sparse(s24, w24, s, r, "2:4 int8");

    Tensor<std::int8_t> w24q(w.layout(), w.quant());
    fill(w24q, r, -8, 7);
    REQUIRE(prune_2_4(w24q.view()).ok());
    sparse_2_4_matrix<int4> s24q;
    REQUIRE(compress_2_4(w24q.cview(), &s24q).ok());
    check_sparse(s24q, w24q, s, r, "2:4 int4");

    for (const auto& blk : {std::pair<int, int>{1, 4}, {4, 1}, {16, 4}}) {
      Tensor<std::int8_t> wb(w.layout(), w.quant());
      std::memcpy(wb.data(), w.data(), static_cast<std::size_t>(s.K * s.N));
      REQUIRE(prune_blocks(wb.view(), blk.first, blk.second, 0.8).ok());
      block_csr_matrix bsr;
      REQUIRE(compress_block_csr(wb.cview(), blk.first, blk.second, &bsr).ok());
      check_sparse(bsr, wb, s, r, "block " + std::to_string(blk.first) + "x" + std::to_string(blk.second));
      if (blk.first == 1) {
        csr_matrix csr;
        REQUIRE(compress_csr(wb.cview(), &csr).ok());
        check_sparse(csr, wb, s, r, "csr");
      }
    }
  }
}

TEST_CASE("npu 2:4 with skip_macs halves the compute cycles of a weight-streaming array", "[npu][sparse]") {
  rng r(15);
  npu::profile prof = preset("ethos_u55_256");
  const std::int64_t M = 64, K = 512, N = 64;
  Tensor<std::int8_t> w(Layout::matrix(K, N), Quant::per_tensor(0.01f, 0));
  fill(w, r);
  REQUIRE(prune_2_4(w.view()).ok());
  sparse_2_4_matrix<> s24;
  REQUIRE(compress_2_4(w.cview(), &s24).ok());
  const Tensor<std::int8_t> a = random_a(r, {M, K, N});
  gemm_params p;
  p.numerics = prof.numerics;
  Tensor<std::int8_t> out(Layout::matrix(M, N), Quant::per_tensor(0.5f, 0));
  const npu::emulator dense_emu(prof);
  gemm(dense_emu, p, a, w, no_bias, out);
  prof.sparse_weights = npu::sparse_mode::skip_macs;
  const npu::emulator skip_emu(prof);
  gemm(skip_emu, p, a, s24, no_bias, out);
  // Every channel keeps exactly K/2 entries, so each pass runs K/2 steps.
  CHECK(2 * skip_emu.last().cycles.compute == dense_emu.last().cycles.compute);
  CHECK(skip_emu.last().skipped_macs == M * N * K / 2);
  // Zero-gated MACs cost no MAC energy in either mode.
  CHECK(skip_emu.last().energy.mac == Approx(dense_emu.last().energy.mac / 2));
  const std::string sum = skip_emu.summary();
  CHECK(sum.find("sparse weights: ") != std::string::npos);
  CHECK(sum.find(std::to_string(M * N * K / 2) + " of them skipped") != std::string::npos);
}

TEST_CASE("npu sparse_weights knob is validated", "[npu][sparse]") {
  npu::profile prof = preset("generic");
  prof.sparse_weights = static_cast<npu::sparse_mode>(7);
  const npu::emulator emu(prof);
  const status s = emu.profile_status();
  REQUIRE_FALSE(s.ok());
  CHECK(s.message().find("sparse_weights") != std::string::npos);
  // Every op is refused and writes nothing.
  sparse_2_4_matrix<> s24;
  Tensor<std::int8_t> w(Layout::matrix(8, 4), Quant::per_tensor(0.01f, 0));
  REQUIRE(compress_2_4(w.cview(), &s24).ok());
  Tensor<std::int8_t> a(Layout::matrix(2, 8), Quant::per_tensor(0.1f, 0)), out(Layout::matrix(2, 4), Quant::per_tensor(0.1f, 0));
  std::memset(out.data(), 0x5A, 8);
  CHECK_FALSE(try_gemm(emu, gemm_params{}, a, s24, no_bias, out).ok());
  for (int i = 0; i < 8; ++i) CHECK(out.data()[i] == 0x5A);
  CHECK(emu.ops().empty());
}
