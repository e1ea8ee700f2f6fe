// The NPU tile emulator: bit-exact against the scalar reference on every preset (and on shrunken
// buffers that force many tiles and K splits), SCALE-Sim v2 cycle vectors, numeric differences
// of narrow / saturating accumulators on purpose-built inputs, profile validation, traces and
// statistics consistency.
#include "support/catch.hpp"
#include "support/npu_profiles.hpp"
#include "support/random.hpp"

#include <npuq/npu.hpp>
#include <npuq/npuq.hpp>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

using namespace npuq;
using npuq_test::fill;
using npuq_test::all_profiles;
using npuq_test::preset;
using npuq_test::random_scales;
using npuq_test::rng;
using npuq_test::shrunk;
using npuq_test::values;

namespace {

// The numerics an op may ask of a profile: its own when fixed, a spread otherwise.
std::vector<numerics_profile> numerics_for(const npu::profile& p) {
  if (p.fixed_numerics) return {p.numerics};
  return {numerics_profile::tflite(), numerics_profile::onnx(), numerics_profile::q31(rounding::half_even)};
}

// Per-channel scales, except on half of the calls to a profile with a per-tensor PPU (the other
// half runs its host requantization fallback).
Quant weight_quant(const npu::profile& p, rng& r, std::int64_t channels, int axis) {
  if (!p.per_channel_requant && r.uniform(0, 1) == 0) return Quant::per_tensor(0.01f);
  std::vector<float> s(static_cast<std::size_t>(channels));
  for (auto& x : s) x = r.uniform_real(0.002f, 0.02f);
  return Quant::per_axis(axis, s);
}

// Runs the same call on scalar and on the emulator and requires identical outputs.
template <class Out, class Call>
void require_same(const npu::emulator& emu, const Layout& out_layout, const Quant& out_q, Call&& call) {
  Tensor<Out> ref(out_layout, out_q), got(out_layout, out_q);
  REQUIRE(call(scalar, ref.view()).ok());
  const status s = call(emu, got.view());
  INFO(emu.config().name << ": " << s.to_string());
  REQUIRE(s.ok());
  REQUIRE(values(ref) == values(got));
  const npu::op_stats& st = emu.last();
  REQUIRE(st.useful_macs == st.macs);
}

}  // namespace

TEST_CASE("every preset is a valid profile", "[npu][profile]") {
  for (const auto& p : all_profiles()) {
    INFO(p.name);
    REQUIRE(p.validate().ok());
    REQUIRE(npu::emulator(p).profile_status().ok());
  }
  npu::profile p;
  REQUIRE(npu::presets::by_name("tpu_9000", &p).message().find("tpu_256x256") != std::string::npos);
}

TEST_CASE("gemm on every preset equals scalar bit for bit", "[npu][gemm]") {
  rng r(11);
  for (const auto& prof : all_profiles()) {
    npu::emulator emu(prof);
    for (const auto& num : numerics_for(prof)) {
      struct dims { std::int64_t m, n, k; };
      for (dims d : {dims{1, 1, 1}, dims{7, 13, 37}, dims{33, 17, 300}, dims{64, 40, 1100}}) {
        INFO(prof.name << " " << num.describe() << " M=" << d.m << " N=" << d.n << " K=" << d.k);
        Tensor<std::int8_t> a(Layout::matrix(d.m, d.k), Quant::per_tensor(0.02f, -3));
        Tensor<std::int8_t> b(Layout::matrix(d.k, d.n), weight_quant(prof, r, d.n, 1));
        Tensor<std::int32_t> bias(Layout::row_major({d.n}));
        fill(a, r);
        fill(b, r, -127, 127);
        fill(bias, r, -5000, 5000);
        gemm_params p;
        p.numerics = num;
        p.clamp = d.m % 2 ? clamp_spec::relu() : clamp_spec::none();
        require_same<std::int8_t>(emu, Layout::matrix(d.m, d.n), Quant::per_tensor(0.05f, 4), [&](const auto& be, const auto& out) {
          return try_gemm(be, p, a, b, bias, out);
        });
        // B stored [N, K] and passed through a column-major view.
        Tensor<std::int8_t> bnk(Layout::matrix(d.n, d.k));
        fill(bnk, r, -127, 127);
        TensorView<const std::int8_t> bt(bnk.data(), Layout::col_major(d.k, d.n), b.quant(), d.n * d.k);
        require_same<std::int8_t>(emu, Layout::matrix(d.m, d.n), Quant::per_tensor(0.05f, 4), [&](const auto& be, const auto& out) {
          return try_gemm(be, p, a, bt, no_bias, out);
        });
        if (num.acc.bits <= 32) {  // raw accumulators
          gemm_params raw;
          raw.numerics = num;
          require_same<std::int32_t>(emu, Layout::matrix(d.m, d.n), Quant::none(), [&](const auto& be, const auto& out) {
            return try_gemm(be, raw, a, b, bias, out);
          });
        }
      }
    }
  }
}

TEST_CASE("uint8 and batched gemm on every preset equal scalar", "[npu][gemm][batch]") {
  rng r(12);
  for (const auto& prof : all_profiles()) {
    npu::emulator emu(prof);
    const numerics_profile num = numerics_for(prof).front();
    INFO(prof.name);
    const std::int64_t B0 = 2, B1 = 3, m = 9, k = 70, n = 11;
    Tensor<std::uint8_t> a(Layout::row_major({B0, B1, m, k}), Quant::per_tensor(0.03f, 128));
    Tensor<std::uint8_t> bshared(Layout::matrix(k, n), Quant::per_tensor(0.01f, 120));
    Tensor<std::uint8_t> bbatched(Layout::row_major({B0, B1, k, n}), Quant::per_tensor(0.01f, 0));
    fill(a, r);
    fill(bshared, r);
    fill(bbatched, r);
    gemm_params p;
    p.numerics = num;
    const Layout ol = Layout::row_major({B0, B1, m, n});
    require_same<std::uint8_t>(emu, ol, Quant::per_tensor(0.2f, 128),
                               [&](const auto& be, const auto& out) { return try_gemm(be, p, a, bshared, no_bias, out); });
    require_same<std::uint8_t>(emu, ol, Quant::per_tensor(0.2f, 128),
                               [&](const auto& be, const auto& out) { return try_gemm(be, p, a, bbatched, no_bias, out); });
    REQUIRE(emu.last().instances == B0 * B1);
  }
}

TEST_CASE("conv2d with stride, dilation, padding, groups and NCHW on every preset equals scalar", "[npu][conv]") {
  rng r(13);
  struct cfg {
    std::int64_t n, h, w, c, oc, kh, kw, groups, stride, dil;
    padding_spec pad;
    bool nchw;
  };
  const cfg cases[] = {
      {2, 9, 11, 6, 8, 3, 3, 1, 2, 1, padding_spec::same(), false},
      {1, 10, 10, 8, 4, 3, 3, 2, 1, 2, padding_spec::explicit_(1, 2, 0, 1), true},
      {1, 6, 7, 16, 24, 1, 1, 1, 1, 1, padding_spec::valid(), false},
      {1, 8, 8, 40, 12, 3, 3, 1, 1, 1, padding_spec::symmetric(1), false},
  };
  for (const auto& prof : all_profiles()) {
    npu::emulator emu(prof);
    for (const auto& num : numerics_for(prof)) {
      for (const cfg& c : cases) {
        INFO(prof.name << " " << num.describe() << " conv " << c.h << "x" << c.w << "x" << c.c << " -> " << c.oc << " groups "
                       << c.groups);
        const Quant iq = Quant::per_tensor(0.05f, 7);
        Tensor<std::int8_t> in(c.nchw ? Layout::nchw(c.n, c.c, c.h, c.w) : Layout::nhwc(c.n, c.h, c.w, c.c), iq);
        Tensor<std::int8_t> w(c.nchw ? Layout::oihw(c.oc, c.c / c.groups, c.kh, c.kw) : Layout::ohwi(c.oc, c.kh, c.kw, c.c / c.groups),
                              weight_quant(prof, r, c.oc, 0));
        Tensor<std::int32_t> bias(Layout::row_major({c.oc}));
        fill(in, r);
        fill(w, r, -127, 127);
        fill(bias, r, -3000, 3000);
        conv2d_params p;
        p.numerics = num;
        p.groups = c.groups;
        p.stride_h = p.stride_w = c.stride;
        p.dilation_h = p.dilation_w = c.dil;
        p.padding = c.pad;
        p.clamp = clamp_spec::relu6();
        conv_geometry g = detail::input_geometry(in.layout(), c.kh, c.kw);
        REQUIRE(detail::resolve_geometry(p, &g).ok());
        require_same<std::int8_t>(emu, Layout::nhwc(c.n, g.OH, g.OW, c.oc), Quant::per_tensor(0.1f, -20),
                                  [&](const auto& be, const auto& out) { return try_conv2d(be, p, in, w, bias, out); });
      }
    }
  }
}

TEST_CASE("depthwise conv2d with a channel multiplier on every preset equals scalar", "[npu][depthwise]") {
  rng r(14);
  struct cfg {
    std::int64_t n, h, w, c, mult, k, stride, dil;
    padding_spec pad;
  };
  const cfg cases[] = {{1, 9, 9, 5, 2, 3, 1, 1, padding_spec::same()},
                       {2, 12, 10, 8, 1, 3, 2, 2, padding_spec::explicit_(2, 1, 2, 0)},
                       {1, 16, 16, 48, 1, 5, 1, 1, padding_spec::symmetric(2)}};
  for (const auto& prof : all_profiles()) {
    npu::emulator emu(prof);
    for (const auto& num : numerics_for(prof)) {
      for (const cfg& c : cases) {
        INFO(prof.name << " " << num.describe() << " depthwise C=" << c.c << " M=" << c.mult);
        Tensor<std::int8_t> in(Layout::nhwc(c.n, c.h, c.w, c.c), Quant::per_tensor(0.05f, -1));
        Tensor<std::int8_t> w(Layout::hwc_m(c.k, c.k, c.c, c.mult), weight_quant(prof, r, c.c * c.mult, 2));
        Tensor<std::int32_t> bias(Layout::row_major({c.c * c.mult}));
        fill(in, r);
        fill(w, r, -127, 127);
        fill(bias, r, -3000, 3000);
        depthwise_params p;
        p.numerics = num;
        p.stride_h = p.stride_w = c.stride;
        p.dilation_h = p.dilation_w = c.dil;
        p.padding = c.pad;
        conv_geometry g = detail::input_geometry(in.layout(), c.k, c.k);
        REQUIRE(detail::resolve_geometry(p, &g).ok());
        require_same<std::int8_t>(emu, Layout::nhwc(c.n, g.OH, g.OW, c.c * c.mult), Quant::per_tensor(0.1f, 3),
                                  [&](const auto& be, const auto& out) { return try_depthwise_conv2d(be, p, in, w, bias, out); });
      }
    }
  }
}

TEST_CASE("tile sums from the simd kernels: per-channel zero points, all-padding tiles, K splits", "[npu][simd]") {
  rng r(15);
  std::vector<npu::profile> profs = {npu::presets::generic(), shrunk(npu::presets::generic()), shrunk(npu::presets::ethos_u55_256()),
                                     shrunk(npu::presets::nvdla_small())};
  for (const auto& prof : profs) {
    npu::emulator emu(prof);
    const numerics_profile num = numerics_for(prof).front();
    INFO(prof.name);
    // uint8 weights with a zero point per output channel.
    std::vector<std::int32_t> zps(24);
    for (auto& z : zps) z = static_cast<std::int32_t>(r.uniform(0, 255));
    std::vector<float> scales(24, 0.01f);
    Tensor<std::uint8_t> a(Layout::matrix(37, 300), Quant::per_tensor(0.02f, 131));
    Tensor<std::uint8_t> b(Layout::matrix(300, 24), Quant::per_axis(1, scales, zps));
    fill(a, r);
    fill(b, r);
    gemm_params gp;
    gp.numerics = num;
    require_same<std::uint8_t>(emu, Layout::matrix(37, 24), Quant::per_tensor(0.5f, 100),
                               [&](const auto& be, const auto& out) { return try_gemm(be, gp, a, b, no_bias, out); });
    if (prof.name == "generic") REQUIRE(simd_last_kernel().find("reference") == std::string::npos);

    // Padding wider than the kernel reach: border tiles read no input at all.
    Tensor<std::int8_t> in(Layout::nhwc(1, 5, 6, 20), Quant::per_tensor(0.05f, 9));
    Tensor<std::uint8_t> w(Layout::ohwi(24, 3, 3, 20), Quant::per_axis(0, scales, zps));
    Tensor<std::int32_t> bias(Layout::row_major({24}));
    fill(in, r);
    fill(w, r);
    fill(bias, r, -3000, 3000);
    conv2d_params cp;
    cp.numerics = num;
    cp.padding = padding_spec::explicit_(4, 3, 5, 2);
    cp.stride_h = 2;
    conv_geometry g = detail::input_geometry(in.layout(), 3, 3);
    REQUIRE(detail::resolve_geometry(cp, &g).ok());
    require_same<std::int8_t>(emu, Layout::nhwc(1, g.OH, g.OW, 24), Quant::per_tensor(0.1f, -5),
                              [&](const auto& be, const auto& out) { return try_conv2d(be, cp, in, w, bias, out); });
    if (prof.name == "generic") REQUIRE(simd_last_kernel().find("reference") == std::string::npos);

    Tensor<std::uint8_t> dw(Layout::hwc_m(3, 3, 20, 1), Quant::per_axis(2, std::vector<float>(scales.begin(), scales.begin() + 20),
                                                                        std::vector<std::int32_t>(zps.begin(), zps.begin() + 20)));
    fill(dw, r);
    Tensor<std::int32_t> bias_dw(Layout::row_major({20}));
    fill(bias_dw, r, -3000, 3000);
    depthwise_params dp;
    dp.numerics = num;
    dp.padding = padding_spec::explicit_(3, 4, 2, 5);
    dp.stride_w = 2;
    dp.dilation_h = 2;
    g = detail::input_geometry(in.layout(), 3, 3);
    REQUIRE(detail::resolve_geometry(dp, &g).ok());
    require_same<std::int8_t>(emu, Layout::nhwc(1, g.OH, g.OW, 20), Quant::per_tensor(0.1f, 2), [&](const auto& be, const auto& out) {
      return try_depthwise_conv2d(be, dp, in, dw, bias_dw, out);
    });
    if (prof.name == "generic") REQUIRE(simd_last_kernel().find("reference") == std::string::npos);
  }
}

TEST_CASE("depthwise tiles fused with the simd kernel's counting stage equal the PPU path", "[npu][ppu]") {
  // At a level whose depthwise kernels are AVX-512, finished depthwise tiles come from one simd
  // call that requantizes into the output and counts clamps and max |acc| (stage_tally); at avx2
  // the same op takes the int32 sums + PPU path. Outputs and numeric counters must be equal.
#if !(defined(__x86_64__) || defined(_M_X64))
  WARN("not an x86-64 build: the fused depthwise path (AVX-512) does not exist here");
  return;
#endif
  const isa saved = isa_cap();
  const std::vector<isa> levels = cpu().levels();  // one copy: levels() returns a new vector each call
  const bool fused_level = std::find(levels.begin(), levels.end(), isa::avx512_vnni) != levels.end();
  const bool avx2_level = std::find(levels.begin(), levels.end(), isa::avx2) != levels.end();
  if (!fused_level || !avx2_level) {
    WARN("no AVX-512 depthwise level on this machine: the fused path does not run here");
    return;
  }
  rng r(29);
  // tflite double rounding, fp32 ties to even, NVDLA's q31 half away from zero.
  for (const char* name : {"generic", "ethos_u55_256", "gemmini_16x16", "tpu_256x256", "nvdla_small"}) {
    const npu::profile prof = preset(name);
    const std::int64_t before = npu::detail::fused_tile_count();
    for (int round = 0; round < 12; ++round) {
      const std::int64_t C = r.uniform(1, 70), M = r.uniform(1, 2), H = r.uniform(1, 19), W = r.uniform(1, 23), k = r.uniform(0, 1) ? 3 : 5;
      Tensor<std::int8_t> in(Layout::nhwc(r.uniform(1, 2), H, W, C), Quant::per_tensor(0.05f, static_cast<std::int32_t>(r.uniform(-5, 5))));
      fill(in, r);
      const bool per_tensor = prof.per_channel_requant == false;
      Tensor<std::int8_t> w(Layout::hwc_m(k, k, C, M), per_tensor ? Quant::per_tensor(0.02f) : Quant::per_axis(2, random_scales(r, C * M)));
      fill(w, r);
      Tensor<std::int32_t> bias(Layout::row_major({C * M}));
      fill(bias, r, -3000, 3000);
      depthwise_params dp;
      dp.padding = r.uniform(0, 1) ? padding_spec::same() : padding_spec::valid();
      dp.stride_h = dp.stride_w = r.uniform(1, 2);
      // Bounds on either side of 0 and of the zero point: lanes past the last channel (sums 0)
      // would count as clamped if the kernel's tally did not leave them out.
      const std::int32_t clo = static_cast<std::int32_t>(r.uniform(-20, 8));
      dp.clamp = clamp_spec::range(clo, clo + static_cast<std::int32_t>(r.uniform(1, 40)));
      conv_geometry g = detail::input_geometry(in.layout(), k, k);
      if (!detail::resolve_geometry(dp, &g).ok() || g.OH < 1 || g.OW < 1) continue;
      const Quant oq = Quant::per_tensor(0.08f, static_cast<std::int32_t>(r.uniform(-10, 10)));
      Tensor<std::int8_t> got(Layout::nhwc(in.layout().dim(0), g.OH, g.OW, C * M), oq), want(got.layout(), oq);
      npu::emulator emu(prof);
      dp.numerics = emu.config().numerics;
      set_isa_cap(isa::avx512_vnni);
      depthwise_conv2d(emu, dp, in, w, bias, got);
      const npu::numeric_counters fused = emu.last().numerics;
      set_isa_cap(isa::avx2);
      depthwise_conv2d(emu, dp, in, w, bias, want);
      const npu::numeric_counters ppu = emu.last().numerics;
      set_isa_cap(saved);
      INFO(name << " round " << round << " C " << C << " M " << M << " " << H << "x" << W << " k " << k << " s " << dp.stride_h);
      REQUIRE(values(got) == values(want));
      REQUIRE(fused.clamped_low == ppu.clamped_low);
      REQUIRE(fused.clamped_high == ppu.clamped_high);
      REQUIRE(fused.max_abs_acc == ppu.max_abs_acc);
    }
    INFO(name);
    REQUIRE(npu::detail::fused_tile_count() > before);  // each preset's rounding has a counting stage
  }
}

// Checks one vector PPU (the one the process ISA cap selects) against requantize, element by
// element, clamps and max |acc| included. Returns how many tflite rounds ran the composed form.
static int check_vector_ppu(std::uint64_t seed) {
  rng r(seed);
  int composed_rounds = 0;
  const numerics_profile contracts[] = {numerics_profile::tflite(), numerics_profile::fp32(rounding::half_even),
                                        numerics_profile::q31(rounding::half_away), numerics_profile::q31(rounding::truncate)};
  REQUIRE(npu::detail::ppu_kind_of(false, numerics_profile::q31(rounding::half_even)) == npu::detail::ppu_kind::other);
  for (const numerics_profile& num : contracts) {
    for (int round = 0; round < 200; ++round) {
      const std::int64_t rows = r.uniform(1, 5), nt = r.uniform(1, 40);
      const int span = r.uniform(0, 3);  // magnitude of the sums: small, medium, near 2^31
      // Scales across every shift (left shifts, right shifts past 22), or only inside the
      // composed form's right shifts 1..22 every other round.
      const bool usual_scales = round % 2 == 1;
      std::vector<std::int32_t> sums(static_cast<std::size_t>(rows * nt)), bias(static_cast<std::size_t>(nt));
      npu::detail::ppu_lanes lanes;
      lanes.resize(static_cast<std::size_t>(nt));
      std::vector<requant_channel> rq(static_cast<std::size_t>(nt));
      for (std::int64_t j = 0; j < nt; ++j) {
        const double scale = usual_scales ? std::ldexp(r.uniform_real(0.5f, 1.0f), r.uniform(-21, -1))
                                          : std::ldexp(r.uniform_real(0.5f, 1.0f), r.uniform(-40, 8));
        const quantized_multiplier q = quantize_multiplier(scale);
        rq[static_cast<std::size_t>(j)] = {q.multiplier, q.shift, static_cast<float>(scale)};
        if (r.uniform(0, 9) == 0) rq[static_cast<std::size_t>(j)] = {0, 0, 0.0f};
        lanes.set(static_cast<std::size_t>(j), rq[static_cast<std::size_t>(j)]);
        bias[static_cast<std::size_t>(j)] = r.uniform(-1000, 1000);
      }
      for (auto& v : sums) {
        const int lim = span == 0 ? 100 : span == 1 ? 1 << 20 : 2147480000;
        v = r.uniform(-lim, lim);
      }
      // Exact ties for fp32 half-even: scale 0.5 on odd sums.
      if (round % 10 == 0) {
        for (std::int64_t j = 0; j < nt; ++j) {
          rq[static_cast<std::size_t>(j)] = {1 << 30, 0, 0.5f};
          lanes.set(static_cast<std::size_t>(j), rq[static_cast<std::size_t>(j)]);
        }
      }
      const std::int32_t zp = r.uniform(-128, 127), lo = r.uniform(-128, 0), hi = r.uniform(1, 127);
      lanes.compose(static_cast<std::size_t>(nt), zp);
      if (lanes.composed && num.mode == rounding::tflite_double) ++composed_rounds;
      if (npu::detail::ppu_kind_of(false, num) == npu::detail::ppu_kind::q31_symmetric) lanes.prepare_single(static_cast<std::size_t>(nt), num.mode);
      for (bool raw : {false, true}) {
        const npu::detail::ppu_kind kind = npu::detail::ppu_kind_of(raw, num);
        REQUIRE(kind != npu::detail::ppu_kind::other);
        std::vector<std::int32_t> got(sums.size());
        std::int64_t max_abs = 0, low = 0, high = 0;
        REQUIRE(npu::detail::ppu_tile(kind, sums.data(), bias.data(), lanes, rows, nt, num, zp, lo, hi, got.data(), &max_abs, &low,
                                      &high));
        std::int64_t emax = 0, elow = 0, ehigh = 0;
        for (std::int64_t e = 0; e < rows * nt; ++e) {
          const std::int64_t j = e % nt, v = std::int64_t{sums[static_cast<std::size_t>(e)]} + bias[static_cast<std::size_t>(j)];
          if (v > INT32_MAX || v < INT32_MIN) continue;  // outside the PPU's contract (the caller checks)
          emax = std::max(emax, v < 0 ? -v : v);
          std::int32_t o = static_cast<std::int32_t>(v);
          if (!raw) {
            o = requantize(num, v, rq[static_cast<std::size_t>(j)], zp, INT32_MIN, INT32_MAX);
            if (o < lo) {
              o = lo;
              ++elow;
            } else if (o > hi) {
              o = hi;
              ++ehigh;
            }
          }
          INFO(num.describe() << " round " << round << " e " << e << " v " << v << " m " << rq[static_cast<std::size_t>(j)].multiplier
                              << " shift " << rq[static_cast<std::size_t>(j)].shift << " scale " << rq[static_cast<std::size_t>(j)].scale
                              << " zp " << zp << " composed " << lanes.composed);
          REQUIRE(got[static_cast<std::size_t>(e)] == o);
        }
        if (span < 2) {  // no element skipped above
          REQUIRE(max_abs == emax);
          REQUIRE(low == elow);
          REQUIRE(high == ehigh);
        }
        if (raw) continue;
        // The same values written as int8 straight into a strided output (pixels of a tile row
        // apart, tile rows apart): equal to the int32 form, and nothing written between rows.
        npu::detail::ppu_out<std::int8_t> dst;
        dst.tw = r.uniform(1, 3);
        dst.pixel_step = nt + r.uniform(0, 3);
        dst.row_step = dst.tw * dst.pixel_step + r.uniform(0, 5);
        const std::int64_t lines = (rows + dst.tw - 1) / dst.tw;
        std::vector<std::int8_t> bytes(static_cast<std::size_t>(lines * dst.row_step + nt), std::int8_t{77});
        dst.base = bytes.data();
        std::int64_t max8 = 0, low8 = 0, high8 = 0;
        REQUIRE(npu::detail::ppu_tile(kind, sums.data(), bias.data(), lanes, rows, nt, num, zp, lo, hi, dst, &max8, &low8, &high8));
        std::vector<bool> written(bytes.size(), false);
        for (std::int64_t e = 0; e < rows * nt; ++e) {
          const std::size_t at = static_cast<std::size_t>(dst.at(e / nt) - bytes.data() + e % nt);
          written[at] = true;
          INFO("int8 destination, round " << round << " e " << e);
          REQUIRE(bytes[at] == static_cast<std::int8_t>(got[static_cast<std::size_t>(e)]));
        }
        for (std::size_t b = 0; b < bytes.size(); ++b)
          if (!written[b]) REQUIRE(bytes[b] == 77);
        REQUIRE(max8 == max_abs);
        REQUIRE(low8 == low);
        REQUIRE(high8 == high);
      }
    }
  }
  return composed_rounds;
}

TEST_CASE("the vector PPU equals requantize element by element, clamps and max |acc| included", "[npu][ppu]") {
  // Every level this machine has, each with the PPU its table's output stage selects: the AVX2
  // form at avx2 and avx_vnni, the AVX-512 form at avx512_vnni and amx_int8, none at portable.
  const isa saved = isa_cap();
  int vector_levels = 0;
  for (isa level : cpu().levels()) {
    set_isa_cap(level);
    const kernel_family f = level_kernels(level).output_stage;
    const npu::detail::ppu_path expected = f == kernel_family::avx512_vnni ? npu::detail::ppu_path::avx512
                                           : f == kernel_family::avx2      ? npu::detail::ppu_path::avx2
                                                                           : npu::detail::ppu_path::none;
    INFO("level " << to_string(level));
#if defined(__x86_64__) || defined(_M_X64)
    REQUIRE(npu::detail::ppu_vector_path() == expected);
#else
    REQUIRE(npu::detail::ppu_vector_path() == npu::detail::ppu_path::none);
    (void)expected;
#endif
    if (npu::detail::ppu_vector_path() == npu::detail::ppu_path::none) continue;
    ++vector_levels;
    const int composed = check_vector_ppu(16);
    // The composed one-step form runs on the AVX-512 path whenever the lanes allow it: make sure
    // some rounds did (the AVX2 path ignores it).
    REQUIRE(composed > 0);
  }
  set_isa_cap(saved);
  if (vector_levels == 0) WARN("no vector PPU on this machine: the emulator runs the scalar PPU, nothing to compare");
}

namespace {

// GEMM of the given shape on a scalesim_compat emulator; returns the op's total cycles.
std::int64_t scalesim_cycles(std::int64_t rows, std::int64_t cols, npu::dataflow flow, std::int64_t M, std::int64_t N,
                             std::int64_t K, npu::op_stats* st = nullptr) {
  npu::emulator emu(npu::presets::scalesim_compat(rows, cols, flow));
  Tensor<std::int8_t> a(Layout::matrix(M, K), Quant::per_tensor(1.0f));
  Tensor<std::int8_t> b(Layout::matrix(K, N), Quant::per_tensor(1.0f));
  Tensor<std::int32_t> out(Layout::matrix(M, N));
  gemm(emu, gemm_params{}, a, b, no_bias, out);
  if (st) *st = emu.last();
  REQUIRE(emu.last().tile_count == 1);
  return emu.last().cycles.total();
}

}  // namespace

TEST_CASE("scalesim_compat reproduces SCALE-Sim v2 GEMM cycle counts", "[npu][scalesim]") {
  using npu::dataflow;
  const dataflow os = dataflow::output_stationary, ws = dataflow::weight_stationary, is = dataflow::input_stationary;
  // NPU_MODEL.md vectors.
  CHECK(scalesim_cycles(32, 32, os, 128, 64, 256) == 2543);
  CHECK(scalesim_cycles(32, 32, ws, 128, 64, 256) == 3551);
  CHECK(scalesim_cycles(32, 32, is, 128, 64, 256) == 5055);
  CHECK(scalesim_cycles(8, 8, os, 128, 64, 256) == 34559);
  CHECK(scalesim_cycles(8, 8, ws, 128, 64, 256) == 38399);
  CHECK(scalesim_cycles(8, 8, is, 128, 64, 256) == 44031);
  CHECK(scalesim_cycles(32, 32, os, 64, 64, 64) == 503);
  CHECK(scalesim_cycles(32, 32, ws, 64, 64, 64) == 631);
  CHECK(scalesim_cycles(32, 32, is, 64, 64, 64) == 631);
  // The closed form itself, on shapes that do not divide the array.
  for (dataflow f : {os, ws, is})
    for (std::int64_t m : {1, 5, 33, 100})
      for (std::int64_t n : {3, 32, 70})
        CHECK(scalesim_cycles(16, 8, f, m, n, 45) == npu::scalesim_gemm_cycles(16, 8, f, m, n, 45));

  // Utilisation = MACs / (cycles * rows * cols); mapping efficiency = mean fraction of PEs used per fold.
  npu::op_stats st;
  scalesim_cycles(32, 32, os, 40, 20, 50, &st);  // 2 x 1 folds: 32 x 20 and 8 x 20 PEs
  CHECK(st.folds == 2);
  CHECK(st.mapping_efficiency() == Approx((32.0 * 20 + 8.0 * 20) / (2 * 1024)));
  CHECK(st.utilisation() == Approx(40.0 * 20 * 50 / (static_cast<double>(st.cycles.total()) * 1024)));
  CHECK(st.cycles.dma_stall == 0);
}

TEST_CASE("scalesim_compat maps conv layers by im2col (M = pixels, K = R*S*C, N = filters)", "[npu][scalesim][conv]") {
  struct layer {
    std::int64_t h, w, r, s, c, filters, stride;
  };
  // (H - R) divisible by the stride: the real output size equals SCALE-Sim's ceil((H - R + S) / S).
  for (const layer& l : {layer{16, 16, 3, 3, 8, 16, 1}, layer{15, 15, 3, 3, 4, 24, 2}, layer{12, 10, 1, 1, 32, 40, 1},
                         layer{27, 27, 7, 7, 3, 64, 4}}) {
    for (npu::dataflow f : {npu::dataflow::output_stationary, npu::dataflow::weight_stationary, npu::dataflow::input_stationary}) {
      npu::emulator emu(npu::presets::scalesim_compat(32, 32, f));
      Tensor<std::int8_t> in(Layout::nhwc(1, l.h, l.w, l.c), Quant::per_tensor(1.0f));
      Tensor<std::int8_t> w(Layout::ohwi(l.filters, l.r, l.s, l.c), Quant::per_tensor(1.0f));
      const npu::scalesim_conv_gemm g = npu::scalesim_conv_mapping(l.h, l.w, l.r, l.s, l.c, l.filters, l.stride);
      const std::int64_t eh = (l.h - l.r) / l.stride + 1, ew = (l.w - l.s) / l.stride + 1;
      REQUIRE(g.M == eh * ew);
      Tensor<std::int32_t> out(Layout::nhwc(1, eh, ew, l.filters));
      conv2d_params p;
      p.stride_h = p.stride_w = l.stride;
      p.padding = padding_spec::valid();
      conv2d(emu, p, in, w, no_bias, out);
      INFO("conv " << l.h << "x" << l.w << "x" << l.c << " R=" << l.r << " filters " << l.filters << " " << npu::to_string(f));
      CHECK(emu.last().cycles.total() == npu::scalesim_gemm_cycles(32, 32, f, g.M, g.N, g.K));
      CHECK(emu.last().macs == g.M * g.N * g.K);
    }
  }
  // SCALE-Sim's output size rounds up where a real VALID conv rounds down: 8 - 3 = 5 is odd at stride 2.
  CHECK(npu::scalesim_conv_mapping(8, 8, 3, 3, 1, 1, 2).M == 16);  // real output is 3 x 3 = 9 pixels
}

TEST_CASE("Gemmini's 20-bit array partial sums wrap where the 32-bit reference does not", "[npu][overflow]") {
  // uint8 x uint8 with zero points 0: every product is 255 * 255 = 65025; a 16-row fold sums 16 of them,
  // 1040400, beyond 2^19 - 1, so Gemmini's truncating 20-bit partial sum wraps to 1040400 - 2^20 = -8176.
  npu::emulator emu(npu::presets::gemmini_16x16());
  const std::int64_t M = 4, N = 3, K = 40;  // folds of 16, 16 and 8 rows
  Tensor<std::uint8_t> a(Layout::matrix(M, K), Quant::per_tensor(1.0f, 0));
  Tensor<std::uint8_t> b(Layout::matrix(K, N), Quant::per_tensor(1.0f, 0));
  for (std::int64_t i = 0; i < M * K; ++i) a.data()[i] = 255;
  for (std::int64_t i = 0; i < K * N; ++i) b.data()[i] = 255;
  gemm_params p;
  p.numerics = emu.config().numerics;
  Tensor<std::int32_t> ref(Layout::matrix(M, N)), got(Layout::matrix(M, N));
  gemm(scalar, p, a, b, no_bias, ref);
  gemm(emu, p, a, b, no_bias, got);
  const std::int64_t wrapped = 16 * 65025 - (1 << 20);
  for (std::int64_t i = 0; i < M * N; ++i) {
    REQUIRE(ref.data()[i] == 40 * 65025);
    REQUIRE(got.data()[i] == 2 * wrapped + 8 * 65025);
  }
  REQUIRE(emu.last().numerics.array_psum_overflows == 2 * M * N);  // two full folds per output overflow
  REQUIRE(emu.last().numerics.accumulator_overflows == 0);
  const npu::op_stats checked = emu.last();  // partial sums checked per fold (host-packed path)

  // Inputs whose folds fit (int8 weights, |w| <= 127) stay bit-exact and count nothing.
  for (std::int64_t i = 0; i < K * N; ++i) b.data()[i] = 127;
  gemm(scalar, p, a, b, no_bias, ref);
  gemm(emu, p, a, b, no_bias, got);
  REQUIRE(values(ref) == values(got));
  REQUIRE(emu.last().numerics.array_psum_overflows == 0);
  // What the NPU spends does not depend on how the host computed the integers (per fold, per
  // tile or per band).
  REQUIRE(emu.last().cycles.total() == checked.cycles.total());
  REQUIRE(emu.last().tile_count == checked.tile_count);
  REQUIRE(emu.last().dram.total() == checked.dram.total());
  REQUIRE(emu.last().sram.total() == checked.sram.total());
}

TEST_CASE("a saturating accumulator adds per tile, not per product: different result, counted", "[npu][overflow]") {
  // NUMERICS.md example: 16-bit accumulator saturating at each add, products 16129 x 3 then -16256.
  // The reference saturates after the third product (16511); the emulator adds the tile's exact
  // partial sum (32131) once, which fits.
  npu::emulator emu(npu::presets::generic());
  Tensor<std::int8_t> a(Layout::matrix(1, 4), Quant::per_tensor(1.0f, 0));
  Tensor<std::int8_t> b(Layout::matrix(4, 1), Quant::per_tensor(1.0f, 0));
  const std::int8_t av[] = {127, 127, 127, -128}, bv[] = {127, 127, 127, 127};
  std::copy(av, av + 4, a.data());
  std::copy(bv, bv + 4, b.data());
  gemm_params p;
  p.numerics = numerics_profile::tflite().with_accumulator(16, overflow_rule::saturate_each_add);
  Tensor<std::int32_t> ref(Layout::matrix(1, 1)), got(Layout::matrix(1, 1));
  gemm(scalar, p, a, b, no_bias, ref);
  gemm(emu, p, a, b, no_bias, got);
  REQUIRE(ref.data()[0] == 16511);
  REQUIRE(got.data()[0] == 32131);
  REQUIRE(emu.last().numerics.accumulator_overflows == 0);
  REQUIRE(emu.last().numerics.max_abs_acc == 32131);
  // All products positive: both saturate at 32767, and the emulator counts the event.
  a.data()[3] = 127;
  gemm(scalar, p, a, b, no_bias, ref);
  gemm(emu, p, a, b, no_bias, got);
  REQUIRE(ref.data()[0] == 32767);
  REQUIRE(got.data()[0] == 32767);
  REQUIRE(emu.last().numerics.accumulator_overflows == 1);
}

TEST_CASE("partial sums spilled at a narrower width saturate between K tiles", "[npu][overflow][spill]") {
  npu::profile prof = npu::presets::generic();
  prof.name = "spill16";
  prof.memory.psums = npu::psum_mode::spill;
  prof.memory.spill_bits = 16;
  prof.memory.ifmap_bytes = prof.memory.weight_bytes = 32;  // K tiles of 16 bytes (double buffered)
  npu::emulator emu(prof);
  const std::int64_t K = 64;
  Tensor<std::int8_t> a(Layout::matrix(1, K), Quant::per_tensor(1.0f, 0));
  Tensor<std::int8_t> b(Layout::matrix(K, 1), Quant::per_tensor(1.0f, 0));
  for (std::int64_t i = 0; i < K; ++i) a.data()[i] = b.data()[i] = 127;
  gemm_params p;  // int32 wrap accumulator
  Tensor<std::int32_t> ref(Layout::matrix(1, 1)), got(Layout::matrix(1, 1));
  gemm(scalar, p, a, b, no_bias, ref);
  gemm(emu, p, a, b, no_bias, got);
  const npu::op_stats& st = emu.last();
  const std::int64_t kt = st.tiles.at(0).kt;
  REQUIRE(kt < K);
  // Model: after every K tile but the last, the partial sum is clipped to [-32768, 32767].
  std::int64_t acc = 0;
  for (std::int64_t k0 = 0; k0 < K; k0 += kt) {
    acc += std::min(kt, K - k0) * 16129;
    if (k0 + kt < K) acc = std::min<std::int64_t>(acc, 32767);
  }
  REQUIRE(ref.data()[0] == K * 16129);
  REQUIRE(got.data()[0] == acc);
  REQUIRE(got.data()[0] != ref.data()[0]);
  REQUIRE(st.numerics.spill_saturations == (K + kt - 1) / kt - 1);
}

TEST_CASE("bad profiles are rejected naming the knob, and nothing is written", "[npu][validation]") {
  struct bad {
    const char* knob;
    void (*edit)(npu::profile&);
  };
  const bad cases[] = {
      {"array.rows", [](npu::profile& p) { p.array.rows = 0; }},
      {"array.cols", [](npu::profile& p) { p.array.cols = -4; }},
      {"array.depth", [](npu::profile& p) { p.array.depth = 4; }},  // systolic
      {"memory.ifmap_bytes", [](npu::profile& p) { p.memory.ifmap_bytes = 0; }},
      {"memory.weight_bytes", [](npu::profile& p) { p.memory.weight_bytes = 0; }},
      {"memory.unified_bytes", [](npu::profile& p) { p.memory.unified_bytes = 4096; }},
      {"memory.accumulator_bytes", [](npu::profile& p) { p.memory.accumulator_bytes = 0; }},
      {"memory.spill_bits", [](npu::profile& p) { p.memory.psums = npu::psum_mode::spill; p.memory.spill_bits = 4; }},
      {"dram.bytes_per_cycle", [](npu::profile& p) { p.dram.bytes_per_cycle = 0; }},
      {"dram.bytes_per_cycle", [](npu::profile& p) { p.dram.bytes_per_cycle = std::nan(""); }},
      {"clock_mhz", [](npu::profile& p) { p.clock_mhz = 0; }},
      {"clock_mhz", [](npu::profile& p) { p.clock_mhz = 1e12; }},
      {"array_psum.bits", [](npu::profile& p) { p.array_psum.bits = 4; }},
      {"energy", [](npu::profile& p) { p.energy.mac_pj = -1; }},
      {"numerics", [](npu::profile& p) { p.fixed_numerics = true; p.numerics = numerics_profile::fp32(rounding::tflite_double); }},
  };
  Tensor<std::int8_t> a(Layout::matrix(2, 3), Quant::per_tensor(1.0f));
  Tensor<std::int8_t> b(Layout::matrix(3, 2), Quant::per_tensor(1.0f));
  for (const bad& c : cases) {
    npu::profile p = npu::presets::generic();
    c.edit(p);
    const status s = p.validate();
    INFO(c.knob << ": " << s.to_string());
    REQUIRE(!s.ok());
    REQUIRE(s.message().find(c.knob) != std::string::npos);
    npu::emulator emu(p);
    Tensor<std::int32_t> out(Layout::matrix(2, 2));
    for (int i = 0; i < 4; ++i) out.data()[i] = 77;
    const status r = try_gemm(emu, gemm_params{}, a, b, no_bias, out);
    REQUIRE(r.code() == s.code());
    REQUIRE(values(out) == std::vector<std::int64_t>(4, 77));
    REQUIRE(emu.ops().empty());
  }
}

TEST_CASE("an op that fits no tile, or asks for other numerics, is refused without writing", "[npu][validation]") {
  rng r(15);
  Tensor<std::int8_t> in(Layout::nhwc(1, 8, 8, 64), Quant::per_tensor(0.05f));
  Tensor<std::int8_t> w(Layout::ohwi(8, 3, 3, 64), Quant::per_tensor(0.01f));
  fill(in, r);
  fill(w, r, -127, 127);
  conv2d_params p;
  p.padding = padding_spec::same();
  Tensor<std::int8_t> out(Layout::nhwc(1, 8, 8, 8), Quant::per_tensor(0.1f));
  for (std::int64_t i = 0; i < 512; ++i) out.data()[i] = 99;

  npu::profile tiny = npu::presets::gemmini_16x16();
  tiny.memory.unified_bytes = 32;  // a 3x3 patch of one channel plus 9 weights, double buffered, needs 36
  npu::emulator emu(tiny);
  p.numerics = tiny.numerics;
  const status s = try_conv2d(emu, p, in, w, no_bias, out);
  INFO(s.to_string());
  REQUIRE(s.code() == errc::unsupported);
  REQUIRE(s.message().find("memory.unified_bytes") != std::string::npos);

  npu::emulator ethos(npu::presets::ethos_u55_256());
  p.numerics = numerics_profile::onnx();
  const status n = try_conv2d(ethos, p, in, w, no_bias, out);
  INFO(n.to_string());
  REQUIRE(n.code() == errc::unsupported);
  REQUIRE(n.message().find("onnx") != std::string::npos);
  REQUIRE(n.message().find("tflite") != std::string::npos);

  npu::profile strict = npu::presets::gemmini_16x16();
  strict.per_channel_fallback = npu::requant_fallback::error;
  npu::emulator gemmini(strict);
  p.numerics = gemmini.config().numerics;
  std::vector<float> scales(8);
  for (std::size_t i = 0; i < 8; ++i) scales[i] = 0.01f * static_cast<float>(i + 1);
  const status g = try_conv2d(gemmini, p, in, w.cview().with_quant(Quant::per_axis(0, scales)), no_bias, out);
  INFO(g.to_string());
  REQUIRE(g.code() == errc::unsupported);
  REQUIRE(g.message().find("per tensor") != std::string::npos);
  REQUIRE(g.message().find("per_channel_fallback") != std::string::npos);

  REQUIRE(values(out) == std::vector<std::int64_t>(512, 99));
  REQUIRE(emu.ops().empty());
  REQUIRE(ethos.ops().empty());
  REQUIRE(gemmini.ops().empty());
}

TEST_CASE("each buffer too small for the smallest tile gets an error naming it", "[npu][validation]") {
  // A 3x3 conv over 4 channels: the smallest tile is 1 output pixel, 1 channel, one input
  // channel's 9 taps (a 3x3 input patch, 9 weights, 1 output, 4 accumulator bytes).
  struct small {
    const char* knob;
    void (*edit)(npu::profile&);
  };
  const small cases[] = {
      {"memory.ifmap_bytes", [](npu::profile& p) { p.memory.ifmap_bytes = 17; }},     // 2 x 9 needed
      {"memory.weight_bytes", [](npu::profile& p) { p.memory.weight_bytes = 10; }},    // 2 x 9 needed
      {"memory.ofmap_bytes", [](npu::profile& p) { p.memory.ofmap_bytes = 1; }},       // 2 x 1 needed
      {"memory.accumulator_bytes", [](npu::profile& p) { p.memory.accumulator_bytes = 3; }},  // 4 needed
      {"memory.unified_bytes", [](npu::profile& p) {
         p.memory.ifmap_bytes = p.memory.weight_bytes = 0;
         p.memory.unified_bytes = 35;  // 2 x (9 + 9) needed
       }},
      {"memory.ofmap_bytes", [](npu::profile& p) {  // spilled 32-bit partial sums need 4 bytes
         p.memory.psums = npu::psum_mode::spill;
         p.memory.double_buffer = false;
         p.memory.ofmap_bytes = 4;
       }},
  };
  rng r(19);
  Tensor<std::int8_t> in(Layout::nhwc(1, 5, 5, 4), Quant::per_tensor(0.05f));
  Tensor<std::int8_t> w(Layout::ohwi(3, 3, 3, 4), Quant::per_tensor(0.01f));
  fill(in, r);
  fill(w, r, -127, 127);
  conv2d_params p;
  p.padding = padding_spec::same();
  for (const small& c : cases) {
    npu::profile prof = npu::presets::generic();
    prof.name = "tiny";
    c.edit(prof);
    REQUIRE(prof.validate().ok());  // a valid profile; only this op does not fit
    npu::emulator emu(prof);
    Tensor<std::int8_t> out(Layout::nhwc(1, 5, 5, 3), Quant::per_tensor(0.1f));
    for (std::int64_t i = 0; i < 75; ++i) out.data()[i] = 99;
    const status s = try_conv2d(emu, p, in, w, no_bias, out);
    INFO(c.knob << ": " << s.to_string());
    REQUIRE(s.code() == errc::unsupported);
    REQUIRE(s.message().find(c.knob) != std::string::npos);
    REQUIRE(s.message().find("does not fit profile tiny") != std::string::npos);
    REQUIRE(values(out) == std::vector<std::int64_t>(75, 99));
    REQUIRE(emu.ops().empty());
  }
  // One byte more than each need above fits, and the op runs bit-exact on its tiny tiles.
  npu::profile roomy = npu::presets::generic();
  roomy.memory.ifmap_bytes = 18;
  roomy.memory.weight_bytes = 18;
  roomy.memory.ofmap_bytes = 2;
  roomy.memory.accumulator_bytes = 4;
  npu::emulator emu(roomy);
  require_same<std::int8_t>(emu, Layout::nhwc(1, 5, 5, 3), Quant::per_tensor(0.1f),
                            [&](const auto& be, const auto& out) { return try_conv2d(be, p, in, w, no_bias, out); });
  REQUIRE(emu.last().tile_count == 25 * 3 * 4);  // every pixel, channel and input channel its own tile
}

TEST_CASE("per-channel scales on a per-tensor PPU are requantized on the host, bit-exact and reported", "[npu][fallback]") {
  rng r(18);
  npu::emulator emu(npu::presets::gemmini_16x16());  // per_channel_requant = false, fallback host
  REQUIRE(emu.config().per_channel_fallback == npu::requant_fallback::host);
  const std::int64_t M = 40, N = 24, K = 70;
  Tensor<std::int8_t> a(Layout::matrix(M, K), Quant::per_tensor(0.02f, 3));
  std::vector<float> scales(static_cast<std::size_t>(N));
  for (auto& x : scales) x = r.uniform_real(0.002f, 0.02f);
  Tensor<std::int8_t> b(Layout::matrix(K, N), Quant::per_axis(1, scales));
  Tensor<std::int32_t> bias(Layout::row_major({N}));
  fill(a, r);
  fill(b, r, -127, 127);
  fill(bias, r, -3000, 3000);
  gemm_params p;
  p.numerics = emu.config().numerics;
  p.clamp = clamp_spec::relu();
  require_same<std::int8_t>(emu, Layout::matrix(M, N), Quant::per_tensor(0.05f, -2),
                            [&](const auto& be, const auto& out) { return try_gemm(be, p, a, b, bias, out); });
  const npu::op_stats pc = emu.last();
  REQUIRE(pc.host_requantized == M * N);
  REQUIRE(pc.outputs == M * N);
  REQUIRE(pc.dram.output_written == 4 * M * N);  // int32 accumulators leave the NPU
  REQUIRE(emu.summary().find("requantized on the host") != std::string::npos);
  REQUIRE(emu.summary_line().find("host-requantized") != std::string::npos);

  // The same op with one scale: requantized on the NPU, 1-byte outputs, nothing for the host.
  require_same<std::int8_t>(emu, Layout::matrix(M, N), Quant::per_tensor(0.05f, -2), [&](const auto& be, const auto& out) {
    return try_gemm(be, p, a, b.cview().with_quant(Quant::per_tensor(0.01f)), bias, out);
  });
  REQUIRE(emu.last().host_requantized == 0);
  REQUIRE(emu.last().dram.output_written == M * N);
  REQUIRE(emu.last().cycles.compute == pc.cycles.compute);  // same MAC-array work
}

namespace {
std::vector<std::vector<std::string>> parse_csv(const std::string& text) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream is(text);
  std::string line;
  while (std::getline(is, line)) {
    std::vector<std::string> cells;
    std::string cell;
    std::istringstream ls(line);
    while (std::getline(ls, cell, ',')) cells.push_back(cell);
    rows.push_back(cells);
  }
  return rows;
}
}  // namespace

TEST_CASE("the CSV trace has one row per tile and adds up to the op totals", "[npu][trace]") {
  rng r(16);
  npu::emulator emu(shrunk(npu::presets::ethos_u55_256()));
  Tensor<std::int8_t> in(Layout::nhwc(1, 12, 12, 24), Quant::per_tensor(0.05f));
  Tensor<std::int8_t> w(Layout::ohwi(20, 3, 3, 24), Quant::per_tensor(0.01f));
  fill(in, r);
  fill(w, r, -127, 127);
  conv2d_params p;
  p.padding = padding_spec::same();
  Tensor<std::int8_t> out(Layout::nhwc(1, 12, 12, 20), Quant::per_tensor(0.1f));
  conv2d(emu, p, in, w, no_bias, out);
  Tensor<std::int8_t> a(Layout::matrix(144, 20), Quant::per_tensor(0.1f));
  Tensor<std::int8_t> b(Layout::matrix(20, 10), Quant::per_tensor(0.01f));
  Tensor<std::int8_t> o2(Layout::matrix(144, 10), Quant::per_tensor(0.1f));
  gemm(emu, gemm_params{}, a, b, no_bias, o2);

  std::ostringstream csv;
  emu.write_trace_csv(csv);
  const auto rows = parse_csv(csv.str());
  REQUIRE(rows.size() == 1 + emu.ops()[0].tiles.size() + emu.ops()[1].tiles.size());
  REQUIRE(emu.ops()[0].tile_count > 4);
  const auto& hdr = rows[0];
  auto col = [&](const char* name) {
    const auto it = std::find(hdr.begin(), hdr.end(), name);
    REQUIRE(it != hdr.end());
    return static_cast<std::size_t>(it - hdr.begin());
  };
  for (std::size_t op = 0; op < 2; ++op) {
    std::int64_t cycles = 0, macs = 0, expect_start = 0, dram = 0;
    for (std::size_t i = 1; i < rows.size(); ++i) {
      if (std::stoll(rows[i][col("op_index")]) != static_cast<long long>(op)) continue;
      REQUIRE(rows[i].size() == hdr.size());
      const std::int64_t total = std::stoll(rows[i][col("total_cycles")]);
      REQUIRE(total == std::stoll(rows[i][col("dma_stall")]) + std::stoll(rows[i][col("compute")]) + std::stoll(rows[i][col("fill_drain")]));
      REQUIRE(std::stoll(rows[i][col("start_cycle")]) == expect_start);
      expect_start += total;
      cycles += total;
      macs += std::stoll(rows[i][col("useful_macs")]);
      dram += std::stoll(rows[i][col("dram_read")]) + std::stoll(rows[i][col("dram_written")]);
    }
    const npu::op_stats& st = emu.ops()[op];
    REQUIRE(cycles == st.cycles.total());
    REQUIRE(macs == st.macs);
    REQUIRE(dram == st.dram.total());
  }

  std::ostringstream js;
  emu.write_trace_json(js);
  const std::string j = js.str();
  REQUIRE(std::count(j.begin(), j.end(), '{') == std::count(j.begin(), j.end(), '}'));
  std::size_t tiles = 0;
  for (std::size_t pos = 0; (pos = j.find("\"instance\":", pos)) != std::string::npos; ++pos) ++tiles;
  REQUIRE(tiles == rows.size() - 1);
  REQUIRE(j.find("\"profile\":\"ethos_u55_256/small\"") != std::string::npos);

  const std::string s = emu.summary();
  REQUIRE(s.find("ethos_u55_256/small") != std::string::npos);
  REQUIRE(s.find("pJ/MAC") != std::string::npos);
  REQUIRE(s.find("conv2d") != std::string::npos);
}

TEST_CASE("statistics are consistent with the tensors for single-tile ops", "[npu][stats]") {
  rng r(17);
  npu::emulator emu(npu::presets::generic());
  const std::int64_t M = 20, N = 12, K = 50;
  Tensor<std::int8_t> a(Layout::matrix(M, K), Quant::per_tensor(0.1f));
  Tensor<std::int8_t> b(Layout::matrix(K, N), Quant::per_tensor(0.01f));
  Tensor<std::int32_t> bias(Layout::row_major({N}));
  Tensor<std::int8_t> out(Layout::matrix(M, N), Quant::per_tensor(0.1f));
  fill(a, r);
  fill(b, r, -127, 127);
  gemm(emu, gemm_params{}, a, b, bias, out);
  const npu::op_stats& st = emu.last();
  REQUIRE(st.tile_count == 1);
  REQUIRE(st.dram.input_read == M * K);
  REQUIRE(st.dram.weight_read == K * N);
  REQUIRE(st.dram.bias_read == 4 * N);
  REQUIRE(st.dram.output_written == M * N);
  REQUIRE(st.useful_macs == M * N * K);
  REQUIRE(st.mac_slots == st.cycles.total() * 256);
  REQUIRE(st.outputs == M * N);
  REQUIRE(st.energy.total() > 0);
  REQUIRE(st.energy.dram == Approx(static_cast<double>(st.dram.total()) * 162.5));
  REQUIRE(st.energy.mac == Approx(static_cast<double>(M * N * K) * 0.3));
  REQUIRE(st.pj_per_mac() == Approx(st.energy.total() / static_cast<double>(M * N * K)));
  REQUIRE(st.cycles.dma_stall > 0);  // the first load and the last store cannot be hidden

  // Conv: the input patch of a SAME conv is the whole image.
  Tensor<std::int8_t> in(Layout::nhwc(1, 10, 9, 6), Quant::per_tensor(0.05f));
  Tensor<std::int8_t> w(Layout::ohwi(8, 3, 3, 6), Quant::per_tensor(0.01f));
  Tensor<std::int8_t> co(Layout::nhwc(1, 10, 9, 8), Quant::per_tensor(0.1f));
  conv2d_params cp;
  cp.padding = padding_spec::same();
  conv2d(emu, cp, in, w, no_bias, co);
  const npu::op_stats& cs = emu.last();
  REQUIRE(cs.tile_count == 1);
  REQUIRE(cs.dram.input_read == 10 * 9 * 6);
  REQUIRE(cs.dram.weight_read == 8 * 3 * 3 * 6);
  REQUIRE(cs.dram.output_written == 10 * 9 * 8);
  REQUIRE(cs.macs == 10 * 9 * 8 * 3 * 3 * 6);

  // Clamps are counted: relu on an output whose zero point is the type minimum clamps nothing
  // below; a narrow range clamps.
  gemm_params narrow;
  narrow.clamp = clamp_spec::range(-1, 1);
  gemm(emu, narrow, a, b, bias, out);
  const npu::numeric_counters& nc = emu.last().numerics;
  std::int64_t at_bounds = 0;
  for (std::int64_t i = 0; i < M * N; ++i) at_bounds += (out.data()[i] == -1 || out.data()[i] == 1);
  REQUIRE(nc.clamped_low + nc.clamped_high > 0);
  REQUIRE(nc.clamped_low + nc.clamped_high <= at_bounds);

  // Double buffering hides DMA: never more stall than without it.
  npu::profile single = shrunk(npu::presets::generic());
  single.memory.double_buffer = false;
  npu::emulator e1(shrunk(npu::presets::generic())), e2(single);
  Tensor<std::int8_t> big_a(Layout::matrix(64, 200), Quant::per_tensor(0.1f));
  Tensor<std::int8_t> big_b(Layout::matrix(200, 40), Quant::per_tensor(0.01f));
  Tensor<std::int8_t> big_o(Layout::matrix(64, 40), Quant::per_tensor(0.1f));
  gemm(e1, gemm_params{}, big_a, big_b, no_bias, big_o);
  gemm(e2, gemm_params{}, big_a, big_b, no_bias, big_o);
  REQUIRE(e1.last().tile_count > 1);
  REQUIRE(e1.last().cycles.dma_stall < e2.last().cycles.dma_stall);

  // Totals add up, and reset clears.
  REQUIRE(emu.totals().useful_macs == emu.ops()[0].useful_macs + emu.ops()[1].useful_macs + emu.ops()[2].useful_macs);
  emu.reset();
  REQUIRE(emu.ops().empty());
}

TEST_CASE("weights that fit the weight buffer are loaded once, whatever the output tiling", "[npu][tiler]") {
  // ResNet-18 conv3_1b shape: 128 filters of 3x3x128 (147456 weight bytes) over 28x28 pixels.
  Tensor<std::int8_t> in(Layout::nhwc(1, 28, 28, 128), Quant::per_tensor(0.05f));
  Tensor<std::int8_t> w(Layout::ohwi(128, 3, 3, 128), Quant::per_tensor(0.01f));
  Tensor<std::int8_t> out(Layout::nhwc(1, 28, 28, 128), Quant::per_tensor(0.1f));
  rng r(5);
  fill(in, r);
  fill(w, r);
  const std::int64_t weight_bytes = 128 * 9 * 128;
  auto run = [&](const npu::profile& p) {
    npu::emulator emu(p);
    conv2d_params cp;
    cp.numerics = p.fixed_numerics ? p.numerics : numerics_profile::tflite();
    cp.padding = padding_spec::same();
    REQUIRE(try_conv2d(emu, cp, in, w, no_bias, out).ok());
    return emu.last();
  };
  // generic (256 KiB weight buffer): the outputs split the op, the weights stay resident.
  const npu::op_stats g = run(npu::presets::generic());
  CHECK(g.tile_count > 1);
  CHECK(g.tiling.find("weights resident") != std::string::npos);
  CHECK(g.dram.weight_read == weight_bytes);
  // The same NPU with a weight buffer that holds a tile but not all weights reloads them.
  npu::profile small_w = npu::presets::generic();
  small_w.memory.weight_bytes = 96 * 1024;
  const npu::op_stats s = run(small_w);
  CHECK(s.tiling.find("weights resident") == std::string::npos);
  CHECK(s.dram.weight_read > weight_bytes);
  // Whichever order the tiler picks moves no more than the other would: with resident weights
  // and one K tile, each input patch and each weight tile is fetched once.
  CHECK(g.dram.input_read + g.dram.weight_read <= s.dram.input_read + s.dram.weight_read);
  // Ethos-U55: 48 KiB of SHRAM split the op into many pixel and channel tiles and the 32 KiB
  // scratchpad cannot hold the weights: the tiler picks the loop order that moves fewer bytes.
  const npu::op_stats e = run(npu::presets::ethos_u55_256());
  CHECK(e.tile_count > 100);
  CHECK(e.tiling.find("weights resident") == std::string::npos);
  // Channel tiles outer: each weight tile once, the input patches once per channel tile.
  CHECK(e.tiling.find("channel tiles outer") != std::string::npos);
  CHECK(e.dram.weight_read == weight_bytes);
}
