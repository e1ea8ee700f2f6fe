// Softmax and attention on the NPU emulator: every preset's integers equal the scalar
// reference's under that preset's numerics, and the statistics show the softmax work and the
// score traffic.
#include "support/catch.hpp"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <npuq/npuq.hpp>

#include "support/random.hpp"

using namespace npuq;
using namespace npuq_test;

namespace {

numerics_profile numerics_of(const npu::emulator& emu) {
  return emu.config().fixed_numerics ? emu.config().numerics : numerics_profile::tosa_single();
}

}  // namespace

TEST_CASE("npu softmax equals scalar on every preset and is charged to the softmax unit", "[npu][softmax]") {
  rng r(1);
  for (const std::string& name : npu::presets::names()) {
    npu::profile prof;
    REQUIRE(npu::presets::by_name(name, &prof).ok());
    const npu::emulator emu(prof);
    Tensor<std::int8_t> x(Layout::matrix(7, 300)), want(Layout::matrix(7, 300)), got(Layout::matrix(7, 300));
    fill(x, r);
    const softmax_params p = softmax_params::tflite(1.0f, 0.05f);
    softmax(scalar, p, x, want);
    softmax(emu, p, x, got);
    INFO(name);
    CHECK(values(got.cview()) == values(want.cview()));
    REQUIRE(emu.ops().size() == 1);
    const npu::op_stats& o = emu.last();
    CHECK(o.op == "softmax");
    CHECK(o.softmax_elements == 7 * 300);
    CHECK(o.cycles.compute == static_cast<std::int64_t>(std::ceil(3.0 * 2100 / prof.softmax.elements_per_cycle)));
    CHECK(o.dram.input_read == 2100);
    CHECK(o.dram.output_written == 2100);
    CHECK(o.energy.ppu > 0);
    CHECK(emu.summary().find("softmax") != std::string::npos);
  }
}

TEST_CASE("npu attention equals scalar on every preset, with causal rule and masks", "[npu][attention]") {
  rng r(2);
  struct shape {
    std::int64_t H, S, T, d, dv;
    bool causal;
    int mask;
  };
  const shape shapes[] = {{1, 1, 9, 16, 8, false, 0}, {2, 5, 40, 16, 8, true, 0}, {2, 12, 33, 8, 16, false, 1},
                          {1, 70, 130, 16, 8, true, 2}, {3, 3, 3, 4, 4, false, 0}};
  for (const std::string& name : npu::presets::names()) {
    npu::profile prof;
    REQUIRE(npu::presets::by_name(name, &prof).ok());
    for (const shape& sh : shapes) {
      const npu::emulator emu(prof);
      // Q and K within [-60, 60] keep Q K^T inside Gemmini's 20-bit array partial sums; P V stays
      // small because the probabilities of a row sum to about 256.
      Tensor<std::int8_t> q(Layout::row_major({sh.H, sh.S, sh.d}), Quant::per_tensor(0.05f, r.uniform(-5, 5)));
      Tensor<std::int8_t> k(Layout::row_major({sh.H, sh.T, sh.d}), Quant::per_tensor(0.05f, r.uniform(-5, 5)));
      Tensor<std::int8_t> v(Layout::row_major({sh.H, sh.T, sh.dv}), Quant::per_tensor(0.02f, r.uniform(-20, 20)));
      fill(q, r, -55, 55);
      fill(k, r, -55, 55);
      fill(v, r);
      Tensor<std::int32_t> mask;
      TensorView<const std::int32_t> mv;
      if (sh.mask == 1) mask = Tensor<std::int32_t>(Layout::row_major({sh.T}));
      if (sh.mask == 2) mask = Tensor<std::int32_t>(Layout::row_major({sh.S, sh.T}));
      if (sh.mask != 0) {
        fill(mask, r, -400, 50);
        mv = mask.cview();
      }
      attention_params ap;
      ap.numerics = numerics_of(emu);
      ap.score = Quant::per_tensor(0.05f, r.uniform(-3, 3));
      ap.causal = sh.causal;
      Tensor<std::int8_t> want(Layout::row_major({sh.H, sh.S, sh.dv}), Quant::per_tensor(0.01f, 3)), got(want.layout(), want.quant());
      REQUIRE(try_attention(scalar, ap, q, k, v, mv, want).ok());
      const status s = try_attention(emu, ap, q, k, v, mv, got);
      INFO(name << " H,S,T,d,dv " << sh.H << "," << sh.S << "," << sh.T << "," << sh.d << "," << sh.dv << " " << s.to_string());
      REQUIRE(s.ok());
      REQUIRE(emu.ops().size() == 1);
      const npu::op_stats& o = emu.last();
      CHECK(o.op == "attention");
      CHECK(o.numerics.array_psum_overflows == 0);
      CHECK(o.numerics.accumulator_overflows == 0);
      CHECK(values(got.cview()) == values(want.cview()));
      CHECK(o.softmax_elements == sh.H * sh.S * sh.T);
      CHECK(o.score_bytes == 4 * sh.H * sh.S * sh.T);
      CHECK(o.macs == sh.H * sh.S * sh.T * (sh.d + sh.dv));
      CHECK(o.cycles.total() > 0);
      CHECK(o.energy.ppu > 0);
      CHECK(o.dram.output_written >= sh.H * sh.S * (sh.T + sh.dv));  // scores, probabilities and outputs
    }
  }
}

TEST_CASE("npu attention decodes against a kv_cache and rejects numerics its profile lacks", "[npu][attention]") {
  rng r(3);
  const npu::emulator emu(npu::presets::ethos_u55_256());
  const Quant kq = Quant::per_tensor(0.05f, 0), vq = Quant::per_tensor(0.02f, 0);
  kv_cache<std::int8_t> cache(2, 64, 16, 16, kq, vq);
  Tensor<std::int8_t> k(Layout::row_major({2, 20, 16}), kq), v(Layout::row_major({2, 20, 16}), vq);
  fill(k, r, -50, 50);
  fill(v, r);
  cache.append(k, v);
  Tensor<std::int8_t> q(Layout::row_major({2, 1, 16}), Quant::per_tensor(0.05f, 0));
  fill(q, r, -50, 50);
  attention_params ap;
  ap.numerics = emu.config().numerics;
  ap.score = Quant::per_tensor(0.04f, 0);
  Tensor<std::int8_t> want(Layout::row_major({2, 1, 16}), Quant::per_tensor(0.01f, 0)), got(want.layout(), want.quant());
  attention(scalar, ap, q, cache, no_mask, want);
  attention(emu, ap, q, cache, no_mask, got);
  CHECK(values(got.cview()) == values(want.cview()));

  ap.numerics = numerics_profile::onnx();  // Ethos-U implements TFLite's double rounding only
  std::memset(got.data(), 0x5A, static_cast<std::size_t>(got.storage_bytes()));
  const std::size_t before = emu.ops().size();
  const status s = try_attention(emu, ap, q, cache, no_mask, got);
  CHECK(s.code() == errc::unsupported);
  CHECK(s.message().find("attention") != std::string::npos);
  CHECK(emu.ops().size() == before);
  for (std::int64_t i = 0; i < got.size(); ++i) CHECK(got.data()[i] == 0x5A);
}

TEST_CASE("a softmax unit without throughput is a bad profile", "[npu][softmax][profile]") {
  npu::profile p = npu::presets::generic();
  p.softmax.elements_per_cycle = 0;
  const status s = p.validate();
  CHECK(s.code() == errc::invalid_argument);
  CHECK(s.message().find("softmax.elements_per_cycle") != std::string::npos);
  const npu::emulator emu(p);
  Tensor<std::int8_t> x(Layout::matrix(2, 4)), y(Layout::matrix(2, 4));
  CHECK(try_softmax(emu, softmax_params::tflite(1.0f, 0.1f), x, y).code() == errc::invalid_argument);
  p.softmax.elements_per_cycle = 4;
  p.softmax.pj_per_element = -1;
  CHECK(p.validate().message().find("softmax.pj_per_element") != std::string::npos);
}
