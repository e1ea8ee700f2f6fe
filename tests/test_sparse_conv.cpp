// conv2d_sparse: every sparse format, window, stride, padding and dilation equals the dense
// conv2d on the decompressed OHWI weights (scalar), on scalar, on every simd ISA level forced in
// turn (its own sparse kernels must run) and on the NPU emulator; bad input is refused with
// nothing written.
#include "support/catch.hpp"

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <npuq/npuq.hpp>

#include "support/levels.hpp"
#include "support/random.hpp"

using namespace npuq;
using npuq_test::fill;
using npuq_test::random_scales;
using npuq_test::rng;
using npuq_test::values;

namespace {

enum class fmt { s24, s24_int4, bsr_1x4, bsr_4x1, bsr_16x4, csr };
const fmt kFormats[] = {fmt::s24, fmt::s24_int4, fmt::bsr_1x4, fmt::bsr_4x1, fmt::bsr_16x4, fmt::csr};
const char* name_of(fmt f) {
  switch (f) {
    case fmt::s24: return "2:4";
    case fmt::s24_int4: return "2:4 int4";
    case fmt::bsr_1x4: return "block 1x4";
    case fmt::bsr_4x1: return "block 4x1";
    case fmt::bsr_16x4: return "block 16x4";
    case fmt::csr: return "csr";
  }
  return "?";
}

struct conv_case {
  std::int64_t N, H, W, C, OC, KH, KW, stride, pad, dil;
};

// OHWI weights pruned to the format's pattern (in place) and compressed; calls f(sparse).
template <class F>
void with_sparse(fmt f, const Tensor<std::int8_t>& ohwi, const Quant& per_k_n, F&& fn) {
  const std::int64_t OC = ohwi.layout().dim(0), K = ohwi.layout().size() / (OC > 0 ? OC : 1);
  const TensorView<std::int8_t> kn(ohwi.data(), Layout::col_major(K, OC), per_k_n);  // OHWI read as [K, OC]
  switch (f) {
    case fmt::s24:
    case fmt::s24_int4: {
      REQUIRE(prune_2_4(kn).ok());
      if (f == fmt::s24) {
        sparse_2_4_matrix<> s;
        REQUIRE(compress_2_4(TensorView<const std::int8_t>(kn), &s).ok());
        fn(s);
      } else {
        sparse_2_4_matrix<int4> s;
        REQUIRE(compress_2_4(TensorView<const std::int8_t>(kn), &s).ok());
        fn(s);
      }
      return;
    }
    case fmt::csr: {
      REQUIRE(prune_blocks(kn, 1, 1, 0.7).ok());
      csr_matrix s;
      REQUIRE(compress_csr(TensorView<const std::int8_t>(kn), &s).ok());
      fn(s);
      return;
    }
    default: {
      const std::int64_t bn = f == fmt::bsr_4x1 ? 4 : (f == fmt::bsr_16x4 ? 16 : 1), bk = f == fmt::bsr_4x1 ? 1 : 4;
      REQUIRE(prune_blocks(kn, bn, bk, 0.6).ok());
      block_csr_matrix s;
      REQUIRE(compress_block_csr(TensorView<const std::int8_t>(kn), bn, bk, &s).ok());
      fn(s);
    }
  }
}

bool wraps32(const numerics_profile& p) { return p.acc.overflow == overflow_rule::wrap && p.acc.bits <= 32; }

template <class I, class O>
void check(rng& r, fmt f, const conv_case& c, const numerics_profile& num, bool per_channel, bool with_bias) {
  const int zp = std::is_same<I, std::uint8_t>::value ? r.uniform(100, 150) : r.uniform(-20, 20);
  Tensor<I> in(Layout::nhwc(c.N, c.H, c.W, c.C), Quant::per_tensor(0.05f, zp));
  fill(in, r);
  const std::vector<float> sc = per_channel ? random_scales(r, c.OC) : std::vector<float>{0.004f};
  Tensor<std::int8_t> w(Layout::ohwi(c.OC, c.KH, c.KW, c.C), per_channel ? Quant::per_axis(0, sc) : Quant::per_tensor(sc[0], 0));
  if (f == fmt::s24_int4) fill(w, r, -8, 7);
  else fill(w, r);
  Tensor<std::int32_t> bias(Layout::row_major({c.OC}));
  fill(bias, r, -5000, 5000);
  conv2d_params p;
  p.numerics = num;
  p.stride_h = p.stride_w = c.stride;
  p.dilation_h = p.dilation_w = c.dil;
  p.padding = padding_spec::symmetric(c.pad);
  const Quant kn_quant = per_channel ? Quant::per_axis(1, sc) : Quant::per_tensor(sc[0], 0);
  with_sparse(f, w, kn_quant, [&](const auto& s) {
    conv_geometry g = detail::input_geometry(in.layout(), c.KH, c.KW);
    REQUIRE(detail::resolve_geometry(p, &g).ok());
    const Layout ol = Layout::nhwc(c.N, g.OH, g.OW, c.OC);
    const Quant oq = std::is_same<O, std::int32_t>::value ? Quant{} : Quant::per_tensor(0.3f, 3);
    Tensor<O> want(ol, oq), got(ol, oq);
    const sparse_conv_kernel kernel{c.KH, c.KW};
    INFO(name_of(f) << " N" << c.N << " H" << c.H << " W" << c.W << " C" << c.C << " OC" << c.OC << " k" << c.KH << "x" << c.KW
                    << " s" << c.stride << " p" << c.pad << " d" << c.dil << " " << num.describe() << (with_bias ? " bias" : ""));
    if (with_bias) conv2d(scalar, p, in, w, bias, want);
    else conv2d(scalar, p, in, w, no_bias, want);
    if (with_bias) conv2d_sparse(scalar, p, in, s, kernel, bias, got);
    else conv2d_sparse(scalar, p, in, s, kernel, no_bias, got);
    CHECK(values(got) == values(want));
    for (isa level : cpu().levels()) {
      std::memset(got.data(), 0, static_cast<std::size_t>(got.layout().size() * static_cast<std::int64_t>(sizeof(O))));
      if (with_bias) conv2d_sparse(simd_backend{level}, p, in, s, kernel, bias, got);
      else conv2d_sparse(simd_backend{level}, p, in, s, kernel, no_bias, got);
      INFO("level " << to_string(level) << ", kernel " << simd_last_kernel());
      CHECK(values(got) == values(want));
      if (wraps32(num)) {
        const std::string k = simd_last_kernel();
        const bool own = k.find(npuq_test::family_suffix(level, &level_table::sparse)) != std::string::npos ||
                         k.find(npuq_test::family_suffix(level, &level_table::gemm)) != std::string::npos;
        CHECK(own);
      }
    }
  });
}

}  // namespace

TEST_CASE("conv2d_sparse equals the dense conv2d: windows, strides, padding, dilation, every format", "[sparse][conv]") {
  rng r(801);
  const conv_case cases[] = {
      {1, 5, 5, 8, 16, 1, 1, 1, 0, 1},   // 1x1 direct: one GEMM on the input as it is
      {2, 4, 3, 7, 5, 1, 1, 2, 0, 1},    // 1x1 strided: im2col
      {1, 1, 1, 1, 1, 1, 1, 1, 0, 1},    // smallest
      {1, 6, 7, 3, 4, 3, 3, 1, 1, 1},    // 3x3 same
      {1, 9, 8, 16, 17, 3, 3, 2, 1, 1},  // 3x3 stride 2
      {2, 10, 9, 5, 9, 3, 3, 1, 0, 2},   // 3x3 dilated, valid
      {1, 7, 7, 4, 8, 5, 5, 1, 2, 1},    // 5x5
      {1, 3, 10, 33, 31, 3, 3, 1, 1, 1}, // odd channel counts
  };
  for (fmt f : kFormats)
    for (const conv_case& c : cases) check<std::int8_t, std::int8_t>(r, f, c, numerics_profile::tflite(), true, true);
}

TEST_CASE("conv2d_sparse: every profile, uint8 input, int32 and uint8 output, per-tensor weights", "[sparse][conv][numerics]") {
  rng r(802);
  const numerics_profile profiles[] = {
      numerics_profile::tflite(),
      numerics_profile::tosa_single(),
      numerics_profile::onnx(),
      numerics_profile::fp32(rounding::floor),
      numerics_profile::tflite().with_accumulator(20, overflow_rule::wrap),
      numerics_profile::q31(rounding::half_up, {16, overflow_rule::saturate_each_add}),
      numerics_profile::q31(rounding::half_away, {40, overflow_rule::wrap}),
  };
  const conv_case c{1, 6, 5, 12, 10, 3, 3, 1, 1, 1};
  for (fmt f : {fmt::s24, fmt::bsr_16x4, fmt::csr})
    for (const numerics_profile& num : profiles) {
      check<std::uint8_t, std::uint8_t>(r, f, c, num, true, true);
      if (num.acc.bits <= 32) check<std::int8_t, std::int32_t>(r, f, c, num, false, false);  // int32 output: at most 32 bits
      check<std::uint8_t, std::int8_t>(r, f, {1, 4, 4, 8, 6, 1, 1, 1, 0, 1}, num, false, true);
    }
}

TEST_CASE("conv2d_sparse runs on the NPU emulator with the scalar results", "[sparse][conv][npu]") {
  rng r(803);
  for (const std::string& name : npu::presets::names()) {
    npu::profile prof;
    REQUIRE(npu::presets::by_name(name, &prof).ok());
    const npu::emulator emu(prof);
    Tensor<std::int8_t> in(Layout::nhwc(1, 6, 6, 8), Quant::per_tensor(0.05f, 1));
    fill(in, r);
    Tensor<std::int8_t> w(Layout::ohwi(12, 3, 3, 8), Quant::per_axis(0, random_scales(r, 12)));
    fill(w, r);
    conv2d_params p;
    if (prof.fixed_numerics) p.numerics = prof.numerics;
    p.padding = padding_spec::same();
    with_sparse(fmt::s24, w, Quant::per_axis(1, w.quant().scales), [&](const auto& s) {
      Tensor<std::int8_t> want(Layout::nhwc(1, 6, 6, 12), Quant::per_tensor(0.4f, 0)), got(want.layout(), want.quant());
      conv2d(scalar, p, in, w, no_bias, want);
      conv2d_sparse(emu, p, in, s, sparse_conv_kernel{3, 3}, no_bias, got);
      INFO(name);
      CHECK(values(got) == values(want));
      REQUIRE_FALSE(emu.ops().empty());
      CHECK(emu.last().op == "gemm_sparse");
      CHECK(emu.last().useful_macs == 36 * 12 * 36);  // half of the 72 taps per output are stored
    });
  }
}

TEST_CASE("conv2d_sparse rejects bad input and writes nothing", "[sparse][conv][validation]") {
  Tensor<std::int8_t> in(Layout::nhwc(1, 5, 5, 4), Quant::per_tensor(0.1f, 0));
  Tensor<std::int8_t> w(Layout::matrix(36, 6), Quant::per_tensor(0.01f, 0));
  sparse_2_4_matrix<> s;
  REQUIRE(compress_2_4(w.cview(), &s).ok());
  Tensor<std::int8_t> out(Layout::nhwc(1, 5, 5, 6), Quant::per_tensor(0.1f, 0));
  conv2d_params same;
  same.padding = padding_spec::same();
  auto expect = [&](const status& st, errc code, const std::string& words) {
    INFO(st.message());
    CHECK(st.code() == code);
    CHECK(st.message().find(words) != std::string::npos);
    for (std::int64_t i = 0; i < out.layout().size(); ++i) CHECK(out.data()[i] == 0x11);
  };
  std::memset(out.data(), 0x11, static_cast<std::size_t>(out.layout().size()));
  REQUIRE(try_conv2d_sparse(simd, same, in, s, sparse_conv_kernel{3, 3}, no_bias, out).ok());
  std::memset(out.data(), 0x11, static_cast<std::size_t>(out.layout().size()));
  expect(try_conv2d_sparse(simd, same, in, s, sparse_conv_kernel{3, 2}, no_bias, out), errc::invalid_shape, "KH * KW * C");
  expect(try_conv2d_sparse(simd, same, in, s, sparse_conv_kernel{0, 3}, no_bias, out), errc::invalid_shape, "kernel");
  conv2d_params grouped = same;
  grouped.groups = 2;
  expect(try_conv2d_sparse(simd, grouped, in, s, sparse_conv_kernel{3, 3}, no_bias, out), errc::unsupported, "groups");
  Tensor<std::int8_t> small(Layout::nhwc(1, 4, 5, 6), Quant::per_tensor(0.1f, 0));
  CHECK(try_conv2d_sparse(simd, same, in, s, sparse_conv_kernel{3, 3}, no_bias, small).code() == errc::invalid_shape);
  // Output aliasing the input.
  Tensor<std::int8_t> buf(Layout::row_major({1 * 5 * 5 * 6}), Quant::per_tensor(0.1f, 0));
  const TensorView<const std::int8_t> in_alias(buf.data(), Layout::nhwc(1, 5, 5, 4), Quant::per_tensor(0.1f, 0));
  const TensorView<std::int8_t> out_alias(buf.data(), Layout::nhwc(1, 5, 5, 6), Quant::per_tensor(0.1f, 0));
  CHECK(try_conv2d_sparse(simd, same, in_alias, s, sparse_conv_kernel{3, 3}, no_bias, out_alias).code() == errc::aliasing);
  // Per-channel input quantization is refused like conv2d refuses it.
  Tensor<std::int32_t> bias(Layout::row_major({5}));
  expect(try_conv2d_sparse(simd, same, in, s, sparse_conv_kernel{3, 3}, bias, out), errc::invalid_shape, "bias");
}
