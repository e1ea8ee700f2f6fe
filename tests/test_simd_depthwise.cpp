// The simd backend's depthwise conv2d against the scalar reference, bit for bit, at every ISA
// level this CPU supports (each forced in turn): edge shapes and channel counts, channel
// multipliers, 1x1 / 3x3 / 5x5 / 7x3 kernels, strides, dilations, every padding kind, every
// numerics profile, both signednesses of input and weights (per-channel weight zero points),
// every output type, full-range accumulators through the vector output stage, and strided
// views. A level the CPU supports whose kernel did not run fails the test, as does a 3x3 or 5x5
// problem that missed its fast path.
#include "support/catch.hpp"
#include "support/levels.hpp"
#include "support/random.hpp"

#include <climits>
#include <cmath>
#include <optional>
#include <set>
#include <string>

#include <npuq/npuq.hpp>

using namespace npuq;
using npuq_test::ends_with;
using npuq_test::fill;
using npuq_test::random_scales;
using npuq_test::random_zero_points;
using npuq_test::rng;
using npuq_test::values;

namespace {

const numerics_profile kProfiles[] = {
    numerics_profile::tflite(),
    numerics_profile::tosa_single(),
    numerics_profile::onnx(),
    numerics_profile::q31(rounding::half_even),
    numerics_profile::q31(rounding::half_away),
    numerics_profile::q31(rounding::truncate),
    numerics_profile::q31(rounding::floor),
    numerics_profile::fp32(rounding::floor),
    numerics_profile::fp32(rounding::half_up),
    numerics_profile::fp32(rounding::half_away),
    numerics_profile::fp32(rounding::truncate),
    numerics_profile::tflite().with_accumulator(20, overflow_rule::wrap),
    numerics_profile::onnx().with_accumulator(24, overflow_rule::wrap),
    numerics_profile::q31(rounding::half_up, {24, overflow_rule::saturate_each_add}),  // reference fallback
};

struct dw_case {
  std::int64_t N = 1, H = 5, W = 5, C = 4, M = 1, KH = 3, KW = 3;
  std::int64_t stride = 1, dilation = 1;
  padding_spec pad = padding_spec::symmetric(1);
};

std::string describe(const dw_case& c) {
  return "N=" + std::to_string(c.N) + " H=" + std::to_string(c.H) + " W=" + std::to_string(c.W) + " C=" + std::to_string(c.C) +
         " M=" + std::to_string(c.M) + " K=" + std::to_string(c.KH) + "x" + std::to_string(c.KW) +
         " stride=" + std::to_string(c.stride) + " dilation=" + std::to_string(c.dilation) + " pad kind " +
         std::to_string(static_cast<int>(c.pad.kind)) + " (" + std::to_string(c.pad.top) + "," + std::to_string(c.pad.bottom) +
         "," + std::to_string(c.pad.left) + "," + std::to_string(c.pad.right) + ")";
}

// The tail of the kernel names each level runs: the family its table's depthwise column lists
// (32-channel AVX-512 kernels at avx512_vnni and amx_int8, 16-channel AVX2 ones at avx2 and
// avx_vnni, portable ones elsewhere), with the block width in front.
std::string dw_kernel_level(isa level) {
  const std::string tail = simd_detail::dw_family_suffix(level_kernels(level).depthwise);
  REQUIRE(ends_with(tail, to_string(level_kernels(level).depthwise)));
  return tail;
}

// The kernel that ran must be the forced level's (or the reference, when expected).
void require_kernel(isa level, bool reference) {
  const std::string name = simd_last_kernel();
  INFO("at " << to_string(level) << " ran " << name);
  if (reference) {
    REQUIRE(name == "dwconv_reference");
    return;
  }
  const std::string suffix = "_" + dw_kernel_level(level);
  REQUIRE(name.rfind("dwconv_", 0) == 0);
  REQUIRE(name.size() >= suffix.size());
  REQUIRE(name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0);
}

struct run_options {
  bool wide_bias = false;            // bias over the whole int32 range: accumulators everywhere
  std::vector<requant_channel> requant;  // integer requantization instead of derived scales
  std::optional<std::int32_t> out_zero_point;  // any int32 output offset (TFLite stores it as int32)
};

// Runs one problem on scalar and on simd at `level`; returns the kernel name, or "" when the
// problem is invalid (both backends must then reject it the same way).
template <class I, class W, class O>
std::string check_dw(rng& r, isa level, const dw_case& c, const numerics_profile& prof, const run_options& opt = {}) {
  const std::int64_t OC = c.C * c.M;
  const int i_lo = element_traits<I>::min, i_hi = element_traits<I>::max;
  Tensor<I> in(Layout::nhwc(c.N, c.H, c.W, c.C), Quant::per_tensor(0.02f, r.uniform(i_lo, i_hi)));
  const Quant wq = std::is_same<W, std::uint8_t>::value ? Quant::per_axis(2, random_scales(r, OC), random_zero_points(r, OC, 0, 255))
                   : r.uniform(0, 1) ? Quant::per_axis(2, random_scales(r, OC))
                                     : Quant::per_tensor(0.004f, r.uniform(-3, 3));
  Tensor<W> w(Layout::hwc_m(c.KH, c.KW, c.C, c.M), wq);
  Tensor<std::int32_t> bias(Layout::row_major({OC}));
  fill(in, r);
  fill(w, r);
  if (opt.wide_bias) fill(bias, r, INT_MIN, INT_MAX);
  else fill(bias, r, -20000, 20000);
  depthwise_params p;
  p.numerics = prof;
  p.stride_h = p.stride_w = c.stride;
  p.dilation_h = p.dilation_w = c.dilation;
  p.padding = c.pad;
  p.requant = opt.requant;
  constexpr bool raw = std::is_same<O, std::int32_t>::value;
  if (!raw && r.uniform(0, 1)) p.clamp = clamp_spec::relu6();
  conv_geometry g = detail::input_geometry(in.layout(), c.KH, c.KW);
  if (!detail::resolve_geometry(p, &g).ok()) return "";
  const Quant oq = raw ? Quant::none()
                       : Quant::per_tensor(0.05f, opt.out_zero_point ? *opt.out_zero_point : std::is_same<O, std::uint8_t>::value ? 128 : -3);
  Tensor<O> expect(Layout::nhwc(c.N, g.OH, g.OW, OC), oq), got(Layout::nhwc(c.N, g.OH, g.OW, OC), oq);
  const status se = try_depthwise_conv2d(scalar, p, in, w, bias, expect);
  const status sg = try_depthwise_conv2d(simd_backend{level}, p, in, w, bias, got);
  REQUIRE(se.ok() == sg.ok());
  if (!se.ok()) return "";
  INFO(describe(c) << " profile " << prof.describe() << " ran " << simd_last_kernel());
  require_kernel(level, !(prof.acc.overflow == overflow_rule::wrap && prof.acc.bits <= 32));
  REQUIRE(values(got) == values(expect));
  return simd_last_kernel();
}

}  // namespace

TEST_CASE("simd depthwise equals scalar over channel counts, multipliers, kernels, strides and paddings", "[simd][depthwise]") {
  const std::int64_t channels[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17, 31, 32, 33, 64, 65};
  const std::int64_t kernels[][2] = {{1, 1}, {3, 3}, {5, 5}, {7, 3}};
  const padding_spec pads[] = {padding_spec::same(), padding_spec::valid(), padding_spec::symmetric(1),
                               padding_spec::explicit_(0, 2, 1, 0), padding_spec::explicit_(3, 1, 2, 4)};
  const std::int64_t sizes[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17};
  for (isa level : cpu().levels()) {
    rng r(31);
    std::set<std::string> ran;
    int i = 0;
    for (std::int64_t C : channels)
      for (std::int64_t M = 1; M <= 3; ++M)
        for (const auto& k : kernels) {
          ++i;
          dw_case c;
          c.C = C;
          c.M = M;
          c.KH = k[0];
          c.KW = k[1];
          c.stride = 1 + i % 3;
          c.dilation = 1 + (i / 3) % 2;
          c.pad = pads[i % 5];
          c.H = sizes[(i * 7) % 13];
          c.W = sizes[(i * 5 + 3) % 13];
          c.N = 1 + i % 2;
          const std::string name = ((i / 4) % 2) ? check_dw<std::int8_t, std::int8_t, std::int8_t>(r, level, c, kProfiles[i % 4])
                                           : check_dw<std::uint8_t, std::uint8_t, std::uint8_t>(r, level, c, kProfiles[i % 4]);
          if (!name.empty()) ran.insert(name);
        }
    INFO("at " << to_string(level));
    // Every kernel shape ran at this level (the fast paths were not skipped).
    const std::string sfx = "_" + dw_kernel_level(level);
    CHECK(ran.count(std::string("dwconv_s8s8_3x3") + sfx) == 1);
    CHECK(ran.count(std::string("dwconv_s8s8_5x5") + sfx) == 1);
    CHECK(ran.count(std::string("dwconv_s8s8_kxk") + sfx) == 1);
    CHECK(ran.count(std::string("dwconv_u8u8_3x3") + sfx) == 1);
  }
}

TEST_CASE("simd depthwise equals scalar over image sizes", "[simd][depthwise]") {
  const std::int64_t sizes[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17, 31, 32, 33, 63, 64, 65};
  for (isa level : cpu().levels()) {
    rng r(32);
    int i = 0;
    for (std::int64_t H : sizes)
      for (std::int64_t W : sizes) {
        ++i;
        if (H > 17 && W > 17 && i % 3 != 0) continue;  // keep the large ones sparse
        dw_case c;
        c.H = H;
        c.W = W;
        c.C = i % 3 == 0 ? 17 : 16;
        c.KH = c.KW = i % 4 == 0 ? 5 : 3;
        c.stride = 1 + i % 2;
        c.pad = i % 3 == 1 ? padding_spec::valid() : padding_spec::same();
        check_dw<std::int8_t, std::int8_t, std::int8_t>(r, level, c, numerics_profile::tflite());
      }
  }
}

TEST_CASE("simd depthwise equals scalar for every profile, signedness and output type", "[simd][depthwise][numerics]") {
  for (isa level : cpu().levels()) {
    rng r(33);
    for (const numerics_profile& prof : kProfiles) {
      const dw_case cases[] = {
          {1, 9, 7, 33, 1, 3, 3, 1, 1, padding_spec::symmetric(1)},
          {1, 6, 8, 17, 2, 5, 5, 2, 1, padding_spec::same()},
          {2, 7, 5, 5, 3, 7, 3, 1, 2, padding_spec::same()},
      };
      for (const dw_case& c : cases) {
        check_dw<std::int8_t, std::int8_t, std::int8_t>(r, level, c, prof);
        check_dw<std::uint8_t, std::int8_t, std::uint8_t>(r, level, c, prof);
        check_dw<std::uint8_t, std::uint8_t, std::int8_t>(r, level, c, prof);
        check_dw<std::int8_t, std::uint8_t, std::uint8_t>(r, level, c, prof);
        check_dw<std::int8_t, std::int8_t, std::int32_t>(r, level, c, prof);
        check_dw<std::uint8_t, std::uint8_t, std::int32_t>(r, level, c, prof);
      }
    }
  }
}

TEST_CASE("simd depthwise output stage matches on full-range accumulators and extreme multipliers",
          "[simd][depthwise][numerics]") {
  const numerics_profile profiles[] = {numerics_profile::tflite(), numerics_profile::tosa_single(), numerics_profile::onnx(),
                                       numerics_profile::q31(rounding::half_away), numerics_profile::q31(rounding::half_even),
                                       numerics_profile::q31(rounding::truncate), numerics_profile::q31(rounding::floor),
                                       numerics_profile::fp32(rounding::half_up), numerics_profile::fp32(rounding::half_away),
                                       numerics_profile::fp32(rounding::truncate), numerics_profile::fp32(rounding::floor),
                                       numerics_profile::tflite().with_accumulator(20, overflow_rule::wrap)};
  const dw_case c{1, 4, 5, 40, 1, 3, 3, 1, 1, padding_spec::same()};
  for (isa level : cpu().levels()) {
    rng r(34);
    for (const numerics_profile& prof : profiles)
      for (int rep = 0; rep < 12; ++rep) {
        // Odd repetitions: accumulators over the whole int32 range. Every third: exact powers of
        // two and small sums, so the roundings meet exact ties.
        run_options opt;
        opt.wide_bias = rep % 2 == 1;
        const bool ties = rep % 3 == 0;
        for (std::int64_t ch = 0; ch < c.C; ++ch) {
          requant_channel q;
          if (prof.format == multiplier_format::fp32) {
            q.scale = ties ? std::ldexp(1.0f, r.uniform(-6, -1)) : std::ldexp(r.uniform_real(1.0f, 2.0f), r.uniform(-40, 40));
          } else {
            q.multiplier = ties ? (1 << 30) : r.uniform(0, INT_MAX);
            q.shift = ties ? r.uniform(-6, 0) : r.uniform(-31, 30);
          }
          opt.requant.push_back(q);
        }
        if (rep % 4 < 2) opt.requant.resize(1);  // per tensor
        // Output offsets past the 8-bit range (valid int32 offsets; the result is still clamped).
        const std::int32_t wide_zp[] = {36460, -40000, 1 << 20, -(1 << 29)};
        if (rep % 3 == 2) opt.out_zero_point = wide_zp[rep / 3 % 4];
        check_dw<std::int8_t, std::int8_t, std::int8_t>(r, level, c, prof, opt);
        check_dw<std::uint8_t, std::uint8_t, std::uint8_t>(r, level, c, prof, opt);
        opt.requant.clear();
        check_dw<std::int8_t, std::uint8_t, std::int32_t>(r, level, c, prof, opt);
      }
  }
}

// The 32c kernels' own q31 single-rounding stage (x86/dwconv_avx512.hpp) must be the one the
// comparisons above ran for these profiles on 8-bit outputs, whatever the zero point.
TEST_CASE("simd depthwise AVX-512 selects its q31 single-rounding stage", "[simd][depthwise][numerics]") {
#if defined(NPUQ_ARCH_X86_64)
  const rounding modes[] = {rounding::half_up, rounding::half_away, rounding::half_even, rounding::truncate, rounding::floor};
  Tensor<std::int8_t> in(Layout::nhwc(1, 6, 7, 40), Quant::per_tensor(0.02f, 3));
  Tensor<std::int8_t> w(Layout::hwc_m(3, 3, 40, 1), Quant::per_tensor(0.004f));
  const Tensor<std::int32_t> bias(Layout::row_major({40}));
  for (const rounding mode : modes)
    for (const std::int32_t zp : {-3, 16776960, -16776960}) {  // the widest 8-bit offsets
      Tensor<std::int8_t> out(Layout::nhwc(1, 6, 7, 40), Quant::per_tensor(0.05f, zp));
      depthwise_params p;
      p.numerics = numerics_profile::q31(mode);
      p.padding = padding_spec::same();
      depthwise_problem<std::int8_t, std::int8_t, std::int8_t> pb;
      const status made = make_depthwise_problem(p, in.cview(), w.cview(), bias.cview(), out.view(), &pb);
      INFO(made.message());
      REQUIRE(made.ok());
      const simd_detail::dw_prepared<std::int8_t, std::int8_t, std::int8_t> pr(kernel_family::avx512_vnni, pb);
      INFO(to_string(mode) << " zero point " << zp);
      REQUIRE(pr.single_ok);
      REQUIRE(!pr.q31_ok);
      REQUIRE(!pr.fp32_ok);
    }
  // Small sums (inputs within 2 of the zero point, weights and bias small) and scales 2^-2..2^-5,
  // so that ties and negative values land inside the output range: the comparisons above clamp
  // nearly every output. Each mode must differ from half_up somewhere, or the data could not tell
  // the roundings apart.
  int levels = 0;
  for (isa level : cpu().levels()) {
    if (level_kernels(level).depthwise != kernel_family::avx512_vnni) continue;
    ++levels;
    rng r(36);
    for (const rounding mode : modes) {
      fill(in, r, 1, 5);
      fill(w, r, -2, 2);
      Tensor<std::int32_t> small_bias(Layout::row_major({40}));
      fill(small_bias, r, -40, 40);
      depthwise_params p;
      p.padding = padding_spec::same();
      for (int ch = 0; ch < 40; ++ch) {
        requant_channel q;
        q.multiplier = 1 << 30;
        q.shift = -r.uniform(1, 4);
        p.requant.push_back(q);
      }
      const Quant oq = Quant::per_tensor(0.05f, -3);
      Tensor<std::int8_t> expect(Layout::nhwc(1, 6, 7, 40), oq), got(Layout::nhwc(1, 6, 7, 40), oq), up(Layout::nhwc(1, 6, 7, 40), oq);
      p.numerics = numerics_profile::q31(rounding::half_up);
      REQUIRE(try_depthwise_conv2d(scalar, p, in, w, small_bias, up).ok());
      p.numerics = numerics_profile::q31(mode);
      REQUIRE(try_depthwise_conv2d(scalar, p, in, w, small_bias, expect).ok());
      REQUIRE(try_depthwise_conv2d(simd_backend{level}, p, in, w, small_bias, got).ok());
      INFO(to_string(level) << " " << to_string(mode) << " ran " << simd_last_kernel());
      require_kernel(level, false);
      REQUIRE(values(got) == values(expect));
      if (mode != rounding::half_up) REQUIRE(values(expect) != values(up));
    }
  }
  INFO("levels with the 32c kernels: " << levels);
#endif
}

TEST_CASE("simd depthwise handles NCHW views and TFLite 4-D weights", "[simd][depthwise][layout]") {
  for (isa level : cpu().levels()) {
    rng r(35);
    for (std::int64_t M : {1, 2}) {
      const std::int64_t N = 2, C = 19, H = 6, W = 9, OC = C * M;
      depthwise_params p;
      p.padding = padding_spec::same();
      const std::vector<float> ws = random_scales(r, OC);
      Tensor<std::int8_t> in_store(Layout::row_major({N, C, H, W}));
      fill(in_store, r);
      const TensorView<const std::int8_t> in(in_store.data(), Layout::nchw(N, C, H, W), Quant::per_tensor(0.02f, 5));
      Tensor<std::int8_t> w(Layout::row_major({1, 3, 3, OC}), Quant::per_axis(3, ws));
      fill(w, r);
      Tensor<std::int32_t> bias(Layout::row_major({OC}));
      fill(bias, r, -9000, 9000);
      Tensor<std::int8_t> expect(Layout::nhwc(N, H, W, OC), Quant::per_tensor(0.05f, 1));
      Tensor<std::int8_t> out_store(Layout::row_major({N, OC, H, W}));
      const TensorView<std::int8_t> got(out_store.data(), Layout::nchw(N, OC, H, W), Quant::per_tensor(0.05f, 1));
      depthwise_conv2d(scalar, p, in, w, bias, expect);
      depthwise_conv2d(simd_backend{level}, p, in, w, bias, got);
      require_kernel(level, false);
      REQUIRE(values(got) == values(expect));
    }
  }
}
