// Plans (backends/simd/plan.hpp) are the one-shot call split in two: the bytes a plan's run
// writes are the scalar reference's and the one-shot simd call's, at every ISA level this CPU
// runs, on 1-3 threads, for every profile, with strided inputs; runs allocate nothing (counted
// through a replaced global operator new); and every way a run's tensors can disagree with the
// plan is refused by name before anything is written.
#include "support/allocations.hpp"
#include "support/catch.hpp"
#include "support/levels.hpp"
#include "support/random.hpp"

#include <atomic>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include <npuq/npuq.hpp>

using namespace npuq;
using npuq_test::allocations_in;
using npuq_test::fill;
using npuq_test::kCountsAllocations;
using npuq_test::random_scales;
using npuq_test::random_zero_points;
using npuq_test::rng;
using npuq_test::values;

namespace {

const numerics_profile kProfiles[] = {numerics_profile::tflite(), numerics_profile::onnx(), numerics_profile::tosa_single()};

}  // namespace

TEST_CASE("the allocation counter sees allocations", "[plan]") {
  // Guards the zero-allocation checks below against a counter that cannot count.
  if (kCountsAllocations) CHECK(allocations_in([] { std::vector<int> v(100); (void)v; }) == 1);
}

TEST_CASE("gemm plans write the reference's bytes and allocate nothing when run", "[plan][gemm]") {
  rng r(301);
  struct shape {
    std::int64_t M, N, K;
  };
  const shape shapes[] = {{1, 16, 16}, {1, 1, 1}, {7, 33, 9}, {64, 64, 64}, {65, 17, 300}, {3, 260, 31}, {256, 32, 1024}};
  for (isa level : cpu().levels())
    for (const shape& s : shapes)
      for (const numerics_profile& prof : kProfiles)
        for (int threads : {1, 3}) {
          INFO(to_string(level) << " M=" << s.M << " N=" << s.N << " K=" << s.K << " " << prof.describe() << " threads " << threads);
          Tensor<std::uint8_t> a(Layout::matrix(s.M, s.K), Quant::per_tensor(0.02f, r.uniform(0, 255)));
          Tensor<std::int8_t> b(Layout::matrix(s.K, s.N), Quant::per_axis(1, random_scales(r, s.N)));
          Tensor<std::int32_t> bias(Layout::row_major({s.N}));
          fill(a, r);
          fill(b, r);
          fill(bias, r, -20000, 20000);
          gemm_params p;
          p.numerics = prof;
          const Quant oq = Quant::per_tensor(0.05f, -3);
          Tensor<std::int8_t> expect(Layout::matrix(s.M, s.N), oq), one_shot(Layout::matrix(s.M, s.N), oq);
          gemm(scalar, p, a, b, bias, expect);
          const simd_backend be{level, threads};
          gemm(be, p, a, b, bias, one_shot);
          REQUIRE(values(one_shot) == values(expect));

          Tensor<std::int8_t> got(Layout::matrix(s.M, s.N), oq);
          auto plan = make_gemm_plan(be, p, a, b, bias, got);
          CHECK(npuq_test::ends_with(plan.kernel_name(), std::string("_") + to_string(level)));
          plan.run(a, got);  // the first run creates the OpenMP team (libgomp's own malloc)
          REQUIRE(values(got) == values(expect));
          fill(got, r);
          const long allocated = allocations_in([&] { plan.run(a, got); });
          if (kCountsAllocations) REQUIRE(allocated == 0);
          REQUIRE(values(got) == values(expect));
        }
}

TEST_CASE("a gemm plan runs strided and batched inputs", "[plan][gemm]") {
  rng r(302);
  const std::int64_t batches = 3, M = 11, N = 40, K = 70;
  for (isa level : cpu().levels()) {
    INFO(to_string(level));
    // a is a column slice of a wider buffer, the output is batched and written with a row pitch.
    Tensor<std::int8_t> wide(Layout::row_major({batches, M, K + 5}), Quant::per_tensor(0.03f, 4));
    fill(wide, r);
    const TensorView<const std::int8_t> a(wide.data(), 2, Layout::strided({batches, M, K}, {M * (K + 5), K + 5, 1}), wide.quant(),
                                          wide.capacity());
    Tensor<std::int8_t> b(Layout::matrix(K, N), Quant::per_tensor(0.01f));
    fill(b, r);
    gemm_params p;
    const Quant oq = Quant::per_tensor(0.2f, 1);
    Tensor<std::int8_t> expect(Layout::row_major({batches, M, N}), oq);
    gemm(scalar, p, a, b, no_bias, expect);
    Tensor<std::int8_t> pitched(Layout::row_major({batches, M, N + 3}), oq);
    const TensorView<std::int8_t> got(pitched.data(), 0, Layout::strided({batches, M, N}, {M * (N + 3), N + 3, 1}), oq, pitched.capacity());
    auto plan = make_gemm_plan(simd_backend{level, 2}, p, a, b, no_bias, got);
    plan.run(a, got);
    for (std::int64_t i = 0; i < batches; ++i)
      for (std::int64_t m = 0; m < M; ++m)
        for (std::int64_t n = 0; n < N; ++n) REQUIRE(got(i, m, n) == expect.view()(i, m, n));
    // The same plan on dense views: other batch strides than at creation (found reading the
    // creation's strides, i.e. past the end of these buffers).
    Tensor<std::int8_t> dense_a(Layout::row_major({batches, M, K}), wide.quant());
    for (std::int64_t i = 0; i < batches; ++i)
      for (std::int64_t m = 0; m < M; ++m)
        for (std::int64_t k = 0; k < K; ++k) dense_a.data()[(i * M + m) * K + k] = a(i, m, k);
    Tensor<std::int8_t> dense_out(Layout::row_major({batches, M, N}), oq);
    plan.run(dense_a, dense_out);
    for (std::int64_t i = 0; i < batches; ++i)
      for (std::int64_t m = 0; m < M; ++m)
        for (std::int64_t n = 0; n < N; ++n) REQUIRE(dense_out.view()(i, m, n) == expect.view()(i, m, n));
  }
}

TEST_CASE("conv2d plans write the reference's bytes and allocate nothing when run", "[plan][conv2d]") {
  rng r(303);
  struct cfg {
    std::int64_t N, H, W, C, OC, K, stride, groups;
  };
  // 64 channels per group and small kernel rows: the AMX direct convolution where the level has AMX.
  const cfg cases[] = {{1, 17, 19, 3, 16, 3, 2, 1}, {2, 9, 9, 16, 40, 3, 1, 2}, {1, 12, 12, 8, 24, 1, 1, 1},
                       {1, 5, 6, 33, 17, 5, 1, 1},  {1, 9, 11, 64, 40, 3, 1, 1}, {1, 7, 8, 128, 48, 3, 2, 2}};
  for (isa level : cpu().levels())
    for (const cfg& c : cases)
      for (const numerics_profile& prof : kProfiles)
        for (int threads : {1, 2}) {
          INFO(to_string(level) << " conv " << c.H << "x" << c.W << "x" << c.C << " -> " << c.OC << " " << prof.describe() << " threads "
                                << threads);
          conv2d_params p;
          p.numerics = prof;
          p.stride_h = p.stride_w = c.stride;
          p.padding = padding_spec::same();
          p.groups = c.groups;
          conv_geometry g = detail::input_geometry(Layout::nhwc(c.N, c.H, c.W, c.C), c.K, c.K);
          REQUIRE(detail::resolve_geometry(p, &g).ok());
          Tensor<std::int8_t> in(Layout::nhwc(c.N, c.H, c.W, c.C), Quant::per_tensor(0.03f, -7));
          Tensor<std::int8_t> w(Layout::ohwi(c.OC, c.K, c.K, c.C / c.groups), Quant::per_axis(0, random_scales(r, c.OC)));
          Tensor<std::int32_t> bias(Layout::row_major({c.OC}));
          fill(in, r);
          fill(w, r);
          fill(bias, r, -3000, 3000);
          const Quant oq = Quant::per_tensor(0.07f, -20);
          const Layout ol = Layout::nhwc(c.N, g.OH, g.OW, c.OC);
          Tensor<std::int8_t> expect(ol, oq), got(ol, oq);
          conv2d(scalar, p, in, w, bias, expect);
          auto plan = make_conv2d_plan(simd_backend{level, threads}, p, in, w, bias, got);
          CHECK(npuq_test::ends_with(plan.kernel_name(), std::string("_") + to_string(level)));
          // The direct convolution: on AMX 64-channel groups, or one group with kernel rows of <= 64
          // bytes that take no more K steps than the gathered rows; on AVX-512 VNNI one group whose
          // kernel rows are whole groups of 4 bytes, at stride 2.
          const bool rows_form = c.groups == 1 && c.K * c.C <= 64 && c.K <= (c.K * c.K * c.C + 63) / 64;
          const bool direct = (level == isa::amx_int8 && ((c.C / c.groups) % 64 == 0 || rows_form)) ||
                              (level == isa::avx512_vnni && c.groups == 1 && c.K * c.C % 4 == 0 && c.stride >= 2);
          CHECK(plan.kernel_name().rfind("conv2d_direct_", 0) == (direct ? 0u : std::string::npos));
          plan.run(in, got);
          REQUIRE(values(got) == values(expect));
          fill(got, r);
          const long allocated = allocations_in([&] { plan.run(in, got); });
          if (kCountsAllocations) REQUIRE(allocated == 0);
          REQUIRE(values(got) == values(expect));
          // The same plan on an input whose channels are 2 apart (no direct convolution there).
          Tensor<std::int8_t> spread(Layout::row_major({c.N * c.H * c.W * c.C * 2}), in.quant());
          const TensorView<const std::int8_t> sin(spread.data(), 0,
                                                  Layout::strided({c.N, c.H, c.W, c.C}, {c.H * c.W * c.C * 2, c.W * c.C * 2, c.C * 2, 2}),
                                                  in.quant(), spread.capacity());
          for (std::int64_t i = 0; i < c.N * c.H * c.W * c.C; ++i) spread.data()[2 * i] = in.data()[i];
          fill(got, r);
          plan.run(sin, got);
          REQUIRE(values(got) == values(expect));
        }
}

TEST_CASE("depthwise plans write the reference's bytes and allocate nothing when run", "[plan][depthwise]") {
  rng r(305);
  struct cfg {
    std::int64_t N, H, W, C, M, KH, KW, stride, dilation;
  };
  // 3x3 and 5x5 (taps fixed at compile time), 7x3 (any size), M = 2, stride 2, dilation 2,
  // channel counts around the 16 and 32 channel blocks, the 8x8x16 tiny shape.
  const cfg cases[] = {{1, 8, 8, 16, 1, 3, 3, 1, 1}, {2, 11, 13, 33, 1, 3, 3, 2, 1}, {1, 9, 10, 40, 1, 5, 5, 1, 2},
                       {1, 12, 7, 17, 2, 7, 3, 1, 1}, {1, 20, 20, 64, 1, 3, 3, 1, 1}};
  for (isa level : cpu().levels())
    for (const cfg& c : cases)
      for (const numerics_profile& prof : kProfiles)
        for (int threads : {1, 3}) {
          INFO(to_string(level) << " depthwise " << c.H << "x" << c.W << "x" << c.C << " M=" << c.M << " " << c.KH << "x" << c.KW
                                << " " << prof.describe() << " threads " << threads);
          const std::int64_t OC = c.C * c.M;
          depthwise_params p;
          p.numerics = prof;
          p.stride_h = p.stride_w = c.stride;
          p.dilation_h = p.dilation_w = c.dilation;
          p.padding = padding_spec::same();
          conv_geometry g = detail::input_geometry(Layout::nhwc(c.N, c.H, c.W, c.C), c.KH, c.KW);
          REQUIRE(detail::resolve_geometry(p, &g).ok());
          Tensor<std::uint8_t> in(Layout::nhwc(c.N, c.H, c.W, c.C), Quant::per_tensor(0.03f, 131));
          Tensor<std::int8_t> w(Layout::hwc_m(c.KH, c.KW, c.C, c.M), Quant::per_axis(2, random_scales(r, OC)));
          Tensor<std::int32_t> bias(Layout::row_major({OC}));
          fill(in, r);
          fill(w, r);
          fill(bias, r, -3000, 3000);
          const Quant oq = Quant::per_tensor(0.07f, -20);
          const Layout ol = Layout::nhwc(c.N, g.OH, g.OW, OC);
          Tensor<std::int8_t> expect(ol, oq), one_shot(ol, oq), got(ol, oq);
          depthwise_conv2d(scalar, p, in, w, bias, expect);
          const simd_backend be{level, threads};
          depthwise_conv2d(be, p, in, w, bias, one_shot);
          REQUIRE(values(one_shot) == values(expect));
          auto plan = make_depthwise_plan(be, p, in, w, bias, got);
          CHECK(plan.kernel_name() == simd_last_kernel());
          plan.run(in, got);
          REQUIRE(values(got) == values(expect));
          fill(got, r);
          const long allocated = allocations_in([&] { plan.run(in, got); });
          if (kCountsAllocations) REQUIRE(allocated == 0);
          REQUIRE(values(got) == values(expect));
        }
}

TEST_CASE("a depthwise plan runs inputs and outputs with other strides than at creation", "[plan][depthwise]") {
  rng r(306);
  const std::int64_t N = 2, H = 9, W = 11, C = 24;
  depthwise_params p;
  p.padding = padding_spec::same();
  Tensor<std::int8_t> in(Layout::nhwc(N, H, W, C), Quant::per_tensor(0.03f, -5));
  Tensor<std::int8_t> w(Layout::hwc_m(3, 3, C, 1), Quant::per_axis(2, random_scales(r, C)));
  fill(in, r);
  fill(w, r);
  const Quant oq = Quant::per_tensor(0.05f, 2);
  Tensor<std::int8_t> expect(Layout::nhwc(N, H, W, C), oq);
  depthwise_conv2d(scalar, p, in, w, no_bias, expect);
  // The same values as NCHW (channels not contiguous), written to an NCHW output.
  Tensor<std::int8_t> in_store(Layout::row_major({N, C, H, W}));
  const TensorView<std::int8_t> in_nchw(in_store.data(), Layout::nchw(N, C, H, W), in.quant());
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t y = 0; y < H; ++y)
      for (std::int64_t x = 0; x < W; ++x)
        for (std::int64_t c = 0; c < C; ++c) in_store.data()[in_nchw.layout()(n, y, x, c)] = in.view()(n, y, x, c);
  Tensor<std::int8_t> out_store(Layout::row_major({N, C, H, W}));
  const TensorView<std::int8_t> out_nchw(out_store.data(), Layout::nchw(N, C, H, W), oq);
  for (isa level : cpu().levels()) {
    INFO(to_string(level));
    Tensor<std::int8_t> got(Layout::nhwc(N, H, W, C), oq);
    auto plan = make_depthwise_plan(simd_backend{level, 2}, p, in, w, no_bias, got);
    plan.run(in_nchw, out_nchw);
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t y = 0; y < H; ++y)
        for (std::int64_t x = 0; x < W; ++x)
          for (std::int64_t c = 0; c < C; ++c) REQUIRE(out_nchw(n, y, x, c) == expect.view()(n, y, x, c));
    plan.run(in, got);
    REQUIRE(values(got) == values(expect));
  }
  // Refusals name the operand and write nothing.
  Tensor<std::int8_t> out(Layout::nhwc(N, H, W, C), oq);
  auto plan = make_depthwise_plan(simd, p, in, w, no_bias, out);
  const auto untouched = values(out);
  Tensor<std::int8_t> wider(Layout::nhwc(N, H, W + 1, C), in.quant());
  const status st = plan.try_run(wider, out);
  CHECK(st.code() == errc::invalid_shape);
  CHECK(st.message().find("input: shape") != std::string::npos);
  CHECK(values(out) == untouched);
  depthwise_params saturating = p;
  saturating.numerics = numerics_profile::tflite().with_accumulator(32, overflow_rule::saturate_each_add);
  depthwise_plan<std::int8_t, std::int8_t, std::int8_t> bad;
  CHECK(try_make_depthwise_plan(simd, saturating, in, w, no_bias, out, &bad).code() == errc::unsupported);
  CHECK(bad.empty());
}

TEST_CASE("softmax plans write the reference's bytes and allocate nothing when run", "[plan][softmax]") {
  rng r(307);
  // Rows x depth: one element, short rows, rows past the kernels' vector widths, a 3-d tensor.
  const Layout shapes[] = {Layout::matrix(1, 1),     Layout::matrix(3, 7),           Layout::matrix(5, 300),
                           Layout::matrix(64, 1000), Layout::row_major({2, 3, 17}), Layout::matrix(4096, 16)};
  const softmax_params p = softmax_params::tflite(1.3f, 0.05f);
  for (isa level : cpu().levels())
    for (const Layout& shape : shapes)
      for (int threads : {1, 3}) {
        INFO(to_string(level) << " softmax " << shape.shape_string() << " threads " << threads);
        Tensor<std::uint8_t> in(shape, Quant::per_tensor(0.05f, 128));
        fill(in, r);
        const Quant oq = Quant::per_tensor(1.0f / 256.0f, 0);
        Tensor<std::uint8_t> expect(shape, oq), one_shot(shape, oq), got(shape, oq);
        softmax(scalar, p, in, expect);
        const simd_backend be{level, threads};
        softmax(be, p, in, one_shot);
        REQUIRE(values(one_shot) == values(expect));
        auto plan = make_softmax_plan(be, p, in, got);
        CHECK(plan.kernel_name() == simd_last_kernel());
        plan.run(in, got);
        REQUIRE(values(got) == values(expect));
        fill(got, r);
        const long allocated = allocations_in([&] { plan.run(in, got); });
        if (kCountsAllocations) REQUIRE(allocated == 0);
        REQUIRE(values(got) == values(expect));
      }
}

TEST_CASE("a softmax plan runs strided rows and refuses what differs from its creation", "[plan][softmax]") {
  rng r(308);
  const std::int64_t rows = 40, depth = 70;
  const softmax_params p = softmax_params::tflite(1.0f, 0.07f);
  Tensor<std::int8_t> in(Layout::matrix(rows, depth), Quant::per_tensor(0.07f, 0));
  fill(in, r);
  const Quant oq = Quant::per_tensor(1.0f / 256.0f, -128);
  Tensor<std::int8_t> expect(Layout::matrix(rows, depth), oq), out(Layout::matrix(rows, depth), oq);
  softmax(scalar, p, in, expect);
  // The same values stored transposed, written to a transposed output.
  Tensor<std::int8_t> in_store(Layout::matrix(depth, rows)), out_store(Layout::matrix(depth, rows));
  const TensorView<std::int8_t> in_t(in_store.data(), Layout::matrix(depth, rows).transpose(0, 1), in.quant(), in_store.capacity());
  const TensorView<std::int8_t> out_t(out_store.data(), Layout::matrix(depth, rows).transpose(0, 1), oq, out_store.capacity());
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < depth; ++j) in_store.data()[in_t.layout()(i, j)] = in.view()(i, j);
  for (isa level : cpu().levels()) {
    INFO(to_string(level));
    auto plan = make_softmax_plan(simd_backend{level, 2}, p, in, out);
    const long allocated = allocations_in([&] { plan.run(in_t, out_t); });
    if (kCountsAllocations) CHECK(allocated == 0);
    for (std::int64_t i = 0; i < rows; ++i)
      for (std::int64_t j = 0; j < depth; ++j) REQUIRE(out_t(i, j) == expect.view()(i, j));
    plan.run(in, out);
    REQUIRE(values(out) == values(expect));
  }
  auto plan = make_softmax_plan(simd, p, in, out);
  const auto untouched = values(out);
  Tensor<std::int8_t> longer(Layout::matrix(rows, depth + 1), in.quant());
  const status st = plan.try_run(longer, out);
  CHECK(st.code() == errc::invalid_shape);
  CHECK(st.message().find("input: shape") != std::string::npos);
  const TensorView<std::int8_t> wrong_quant(out.data(), out.layout(), Quant::per_tensor(1.0f / 128.0f, -128), out.capacity());
  CHECK(plan.try_run(in, wrong_quant).code() == errc::invalid_quantization);
  const TensorView<std::int8_t> over_input(in.data(), out.layout(), oq, in.capacity());
  CHECK(plan.try_run(in, over_input).code() == errc::aliasing);
  CHECK(values(out) == untouched);
  softmax_plan<std::int8_t, std::int8_t> bad;
  Tensor<std::int8_t> bad_out(Layout::matrix(rows, depth), Quant::per_tensor(0.1f, 0));
  CHECK(try_make_softmax_plan(simd, p, in, bad_out, &bad).code() == errc::invalid_quantization);
  CHECK(bad.empty());
  CHECK(softmax_plan<std::int8_t, std::int8_t>{}.try_run(in, out).code() == errc::invalid_argument);
}

TEST_CASE("a run on the same views as the last accepted one still refuses what can change", "[plan][errors]") {
  // Runs skip re-validating views equal to the last accepted ones (address, offset, layout,
  // capacity); these runs follow accepted ones and change one thing each.
  rng r(305);
  Tensor<std::int8_t> in(Layout::nhwc(1, 6, 6, 16), Quant::per_tensor(0.02f, 3));
  Tensor<std::int8_t> w(Layout::hwc_m(3, 3, 16, 1), Quant::per_axis(2, random_scales(r, 16)));
  Tensor<std::int32_t> bias(Layout::row_major({16}));
  fill(in, r);
  fill(w, r);
  fill(bias, r, -500, 500);
  depthwise_params p;
  p.padding = padding_spec::symmetric(1);
  Tensor<std::int8_t> out(Layout::nhwc(1, 6, 6, 16), Quant::per_tensor(0.05f, -2));
  Tensor<std::int8_t> ref(out.layout(), out.quant());
  depthwise_conv2d(scalar, p, in, w, bias, ref);
  auto plan = make_depthwise_plan(simd, p, in, w, bias, out);
  const TensorView<const std::int8_t> in_view(in.data(), 0, in.layout(), in.quant(), in.capacity());
  const TensorView<std::int8_t> out_view(out.data(), 0, out.layout(), out.quant(), out.capacity());
  const Quant other = Quant::per_tensor(0.05f, -1);
  for (int round = 0; round < 2; ++round) {
    std::fill(out.data(), out.data() + out.size(), std::int8_t{0});
    REQUIRE(plan.try_run(in_view, out_view).ok());
    CHECK(values(out) == values(ref));
    const auto written = values(out);
    // Same address, offset, layout and capacity; other quantization.
    const TensorView<const std::int8_t> in_other(in.data(), 0, in.layout(), other, in.capacity());
    CHECK(plan.try_run(in_other, out_view).code() == errc::invalid_quantization);
    const TensorView<std::int8_t> out_other(out.data(), 0, out.layout(), other, out.capacity());
    CHECK(plan.try_run(in_view, out_other).code() == errc::invalid_quantization);
    // Same but a smaller buffer.
    const TensorView<std::int8_t> out_short(out.data(), 0, out.layout(), out.quant(), out.size() - 1);
    CHECK(plan.try_run(in_view, out_short).code() == errc::buffer_too_small);
    // The output at the input's address.
    const TensorView<std::int8_t> out_on_in(reinterpret_cast<std::int8_t*>(in.data()), 0, out.layout(), out.quant(), in.capacity());
    CHECK(plan.try_run(in_view, out_on_in).code() == errc::aliasing);
    CHECK(values(out) == written);
  }
}

TEST_CASE("a plan refuses tensors that differ from the ones it was made for, writing nothing", "[plan][errors]") {
  rng r(304);
  Tensor<std::int8_t> a(Layout::matrix(8, 32), Quant::per_tensor(0.02f, 1));
  Tensor<std::int8_t> b(Layout::matrix(32, 16), Quant::per_tensor(0.01f));
  fill(a, r);
  fill(b, r);
  const gemm_params p;
  Tensor<std::int8_t> out(Layout::matrix(8, 16), Quant::per_tensor(0.1f));
  auto plan = make_gemm_plan(simd, p, a, b, no_bias, out);
  const auto untouched = values(out);

  auto refused = [&](status st, errc code, const char* words) {
    INFO(st.message());
    CHECK(st.code() == code);
    CHECK(st.message().find(words) != std::string::npos);
    CHECK(values(out) == untouched);
  };
  Tensor<std::int8_t> taller(Layout::matrix(9, 32), a.quant());
  refused(plan.try_run(taller, out), errc::invalid_shape, "a: shape [9,32], the plan was made for [8,32]");
  Tensor<std::int8_t> other_zp(Layout::matrix(8, 32), Quant::per_tensor(0.02f, 2));
  refused(plan.try_run(other_zp, out), errc::invalid_quantization, "a: quantization differs from the plan's");
  Tensor<std::int8_t> other_out(Layout::matrix(8, 16), Quant::per_tensor(0.2f));
  CHECK(plan.try_run(a, other_out).code() == errc::invalid_quantization);
  // The output over the input's bytes.
  Tensor<std::int8_t> shared(Layout::row_major({8 * 32}), Quant::per_tensor(0.1f));
  const TensorView<const std::int8_t> a_in(shared.data(), 0, Layout::matrix(8, 32), a.quant(), shared.capacity());
  const TensorView<std::int8_t> out_in(shared.data(), 0, Layout::matrix(8, 16), out.quant(), shared.capacity());
  CHECK(plan.try_run(a_in, out_in).code() == errc::aliasing);
  // A view whose buffer is too small.
  const TensorView<std::int8_t> short_out(out.data(), 0, Layout::matrix(8, 16), out.quant(), 100);
  CHECK(plan.try_run(a, short_out).code() == errc::buffer_too_small);
  refused(gemm_plan<std::int8_t, std::int8_t, std::int8_t>{}.try_run(a, out), errc::invalid_argument, "empty plan");

  // Creation validates like the one-shot call, and refuses what plans do not run.
  gemm_plan<std::int8_t, std::int8_t, std::int8_t> bad;
  Tensor<std::int8_t> b_wrong_k(Layout::matrix(31, 16), Quant::per_tensor(0.01f));
  CHECK(try_make_gemm_plan(simd, p, a, b_wrong_k, no_bias, out, &bad).code() == errc::invalid_shape);
  CHECK(bad.empty());
  gemm_params saturating;
  saturating.numerics = numerics_profile::tflite().with_accumulator(32, overflow_rule::saturate_each_add);
  const status sat = try_make_gemm_plan(simd, saturating, a, b, no_bias, out, &bad);
  CHECK(sat.code() == errc::unsupported);
  CHECK(sat.message().find("one-shot call") != std::string::npos);
}
