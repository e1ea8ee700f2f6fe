// Sparse plans (backends/simd/plan_sparse.hpp): a gemm_sparse plan's and a conv2d_sparse plan's
// runs write the scalar reference's bytes and the one-shot simd call's, for 2:4, block CSR and
// CSR weights (unpacked and packed), at every ISA level this CPU runs, for every shipped
// wrapping profile and both activation types, on 1-4 threads with identical bytes; runs allocate
// nothing (counted through a replaced operator new); a run's tensors that disagree with the plan
// are refused by name before anything is written; saturating accumulators are refused at creation.
#include "support/allocations.hpp"
#include "support/catch.hpp"
#include "support/levels.hpp"
#include "support/random.hpp"

#include <cstring>
#include <string>
#include <vector>

#include <npuq/npuq.hpp>

using namespace npuq;
using npuq_test::allocations_in;
using npuq_test::fill;
using npuq_test::kCountsAllocations;
using npuq_test::random_scales;
using npuq_test::rng;
using npuq_test::values;

namespace {

const numerics_profile kProfiles[] = {numerics_profile::tflite(), numerics_profile::onnx(), numerics_profile::tosa_single()};

enum class fmt { s24, bsr_1x4, bsr_4x1, bsr_3x5, csr };
const fmt kFormats[] = {fmt::s24, fmt::bsr_1x4, fmt::bsr_4x1, fmt::bsr_3x5, fmt::csr};

const char* fmt_name(fmt f) {
  switch (f) {
    case fmt::s24: return "2:4";
    case fmt::bsr_1x4: return "bsr 1x4";
    case fmt::bsr_4x1: return "bsr 4x1";
    case fmt::bsr_3x5: return "bsr 3x5";
    case fmt::csr: return "csr";
  }
  return "?";
}

// Prunes w ([K, N], any layout) to f's pattern in place and calls fn(sparse matrix).
template <class Fn>
void with_format(fmt f, const TensorView<std::int8_t>& w, Fn&& fn) {
  if (f == fmt::s24) {
    throw_if_error(prune_2_4(w));
    sparse_2_4_matrix<std::int8_t> s;
    throw_if_error(compress_2_4(TensorView<const std::int8_t>(w), &s));
    fn(s);
  } else if (f == fmt::csr) {
    throw_if_error(prune_blocks(w, 1, 1, 0.7));
    csr_matrix s;
    throw_if_error(compress_csr(TensorView<const std::int8_t>(w), &s));
    fn(s);
  } else {
    const std::int64_t bn = f == fmt::bsr_1x4 ? 1 : f == fmt::bsr_4x1 ? 4 : 3, bk = f == fmt::bsr_1x4 ? 4 : f == fmt::bsr_4x1 ? 1 : 5;
    throw_if_error(prune_blocks(w, bn, bk, 0.5));
    block_csr_matrix s;
    throw_if_error(compress_block_csr(TensorView<const std::int8_t>(w), bn, bk, &s));
    fn(s);
  }
}

struct gemm_shape {
  std::int64_t M, N, K;
};

// One format, shape, profile and activation type at `level`: scalar == one-shot simd == plan run
// (threads 1-4, same bytes), the plan's kernel is the one-shot call's, runs allocate nothing.
template <class A>
void check_gemm(rng& r, fmt f, isa level, const gemm_shape& s, const numerics_profile& prof) {
  INFO(fmt_name(f) << " M=" << s.M << " N=" << s.N << " K=" << s.K << " " << to_string(level) << " " << prof.describe() << " a "
                   << (std::is_same<A, std::uint8_t>::value ? "u8" : "s8"));
  Tensor<A> a(Layout::matrix(s.M, s.K), Quant::per_tensor(0.02f, r.uniform(element_traits<A>::min, element_traits<A>::max)));
  fill(a, r);
  Tensor<std::int8_t> w(Layout::matrix(s.K, s.N), Quant::per_axis(1, random_scales(r, s.N)));
  fill(w, r);
  Tensor<std::int32_t> bias(Layout::row_major({s.N}));
  fill(bias, r, -20000, 20000);
  gemm_params p;
  p.numerics = prof;
  const Quant oq = Quant::per_tensor(0.05f, -3);
  with_format(f, w.view(), [&](const auto& sw) {
    Tensor<std::int8_t> expect(Layout::matrix(s.M, s.N), oq), one_shot(Layout::matrix(s.M, s.N), oq);
    gemm(scalar, p, a, sw, bias, expect);
    const simd_backend be{level, 1};
    gemm(be, p, a, sw, bias, one_shot);
    REQUIRE(values(one_shot) == values(expect));
    const std::string one_shot_kernel = simd_last_kernel();
    for (int threads : {1, 2, 3, 4}) {
      INFO("threads " << threads);
      Tensor<std::int8_t> got(Layout::matrix(s.M, s.N), oq);
      auto plan = make_gemm_sparse_plan(be.with_threads(threads), p, a, sw, bias, got);
      CHECK(plan.kernel_name() == one_shot_kernel);
      CHECK(npuq_test::ends_with(plan.kernel_name(), npuq_test::family_suffix(level, &level_table::sparse)));
      plan.run(a, got);  // the first run creates the OpenMP team (libgomp's own malloc)
      REQUIRE(values(got) == values(expect));
      fill(got, r);
      const long allocated = allocations_in([&] { plan.run(a, got); });
      if (kCountsAllocations) REQUIRE(allocated == 0);
      REQUIRE(values(got) == values(expect));
    }
  });
}

}  // namespace

TEST_CASE("the allocation counter sees allocations", "[plan][sparse]") {
  if (kCountsAllocations) CHECK(allocations_in([] { std::vector<int> v(100); (void)v; }) == 1);
}

TEST_CASE("sparse gemm plans write the reference's bytes on any thread count and allocate nothing", "[plan][sparse][gemm]") {
  rng r(401);
  // M = 1 (GEMV: the panels are split over threads), odd small sizes, N not a multiple of 16,
  // several row tiles of both drivers, deep K (several K blocks of both drivers).
  const gemm_shape shapes[] = {{1, 16, 16}, {1, 1, 1}, {3, 7, 5}, {5, 33, 9}, {10, 2, 10}, {9, 45, 64}, {70, 20, 31}, {1, 50, 1030},
                               {6, 24, 1100}};
  int i = 0;
  for (isa level : cpu().levels())
    for (fmt f : kFormats)
      for (const gemm_shape& s : shapes)
        for (const numerics_profile& prof : kProfiles) {
          if (++i % 2 == 0) check_gemm<std::int8_t>(r, f, level, s, prof);
          else check_gemm<std::uint8_t>(r, f, level, s, prof);
        }
}

TEST_CASE("sparse gemm plans take packed weights, batched and strided views, and every output type", "[plan][sparse][gemm]") {
  rng r(402);
  const std::int64_t batches = 3, M = 11, N = 40, K = 70;
  for (isa level : cpu().levels())
    for (fmt f : {fmt::s24, fmt::bsr_4x1, fmt::csr}) {
      INFO(fmt_name(f) << " " << to_string(level));
      // a is a column slice of a wider buffer; the output is batched with a row pitch.
      Tensor<std::uint8_t> wide(Layout::row_major({batches, M, K + 5}), Quant::per_tensor(0.03f, 140));
      fill(wide, r);
      const TensorView<const std::uint8_t> a(wide.data(), 2, Layout::strided({batches, M, K}, {M * (K + 5), K + 5, 1}), wide.quant(),
                                             wide.capacity());
      Tensor<std::int8_t> w(Layout::matrix(K, N), Quant::per_tensor(0.01f, 0));
      fill(w, r);
      gemm_params p;
      p.clamp = clamp_spec::relu();
      with_format(f, w.view(), [&](const auto& sw) {
        sparse_packed_t<std::decay_t<decltype(sw)>> packed;
        REQUIRE(pack_gemm_weights(simd, sw, &packed).ok());
        const Quant oq = Quant::per_tensor(0.2f, 100);
        Tensor<std::uint8_t> expect(Layout::row_major({batches, M, N}), oq);
        gemm(scalar, p, a, sw, no_bias, expect);
        Tensor<std::uint8_t> pitched(Layout::row_major({batches, M, N + 3}), oq);
        const TensorView<std::uint8_t> got(pitched.data(), 0, Layout::strided({batches, M, N}, {M * (N + 3), N + 3, 1}), oq,
                                           pitched.capacity());
        auto plan = make_gemm_sparse_plan(simd_backend{level, 2}, p, a, packed, no_bias, got);
        plan.run(a, got);
        REQUIRE(values(got) == values(expect));
        // The same plan on a contiguous copy of a (other batch strides), into a contiguous output.
        Tensor<std::uint8_t> dense_a(Layout::row_major({batches, M, K}), wide.quant()), flat(Layout::row_major({batches, M, N}), oq);
        for (std::int64_t b = 0; b < batches; ++b)
          for (std::int64_t m = 0; m < M; ++m)
            for (std::int64_t k = 0; k < K; ++k) dense_a.view().set(a(b, m, k), b, m, k);
        plan.run(dense_a, flat);
        REQUIRE(values(flat) == values(expect));
        // int32 output: the raw sums.
        Tensor<std::int32_t> raw_expect(Layout::row_major({batches, M, N})), raw(Layout::row_major({batches, M, N}));
        gemm(scalar, gemm_params{}, a, sw, no_bias, raw_expect);
        make_gemm_sparse_plan(simd_backend{level, 3}, gemm_params{}, a, sw, no_bias, raw).run(a, raw);
        REQUIRE(values(raw) == values(raw_expect));
      });
    }
}

namespace {

struct conv_case {
  std::int64_t N, H, W, C, OC, K, stride, pad;
};

template <class I>
void check_conv(rng& r, fmt f, isa level, const conv_case& c, const numerics_profile& prof) {
  INFO(fmt_name(f) << " conv " << c.N << "x" << c.H << "x" << c.W << "x" << c.C << " -> " << c.OC << " k" << c.K << " s" << c.stride
                   << " p" << c.pad << " " << to_string(level) << " " << prof.describe());
  const int zp = std::is_same<I, std::uint8_t>::value ? r.uniform(100, 150) : r.uniform(-20, 20);
  Tensor<I> in(Layout::nhwc(c.N, c.H, c.W, c.C), Quant::per_tensor(0.05f, zp));
  fill(in, r);
  const std::vector<float> sc = random_scales(r, c.OC);
  Tensor<std::int8_t> w(Layout::ohwi(c.OC, c.K, c.K, c.C), Quant::per_axis(0, sc));
  fill(w, r);
  Tensor<std::int32_t> bias(Layout::row_major({c.OC}));
  fill(bias, r, -5000, 5000);
  conv2d_params p;
  p.numerics = prof;
  p.stride_h = p.stride_w = c.stride;
  p.padding = padding_spec::symmetric(c.pad);
  conv_geometry g = detail::input_geometry(in.layout(), c.K, c.K);
  REQUIRE(detail::resolve_geometry(p, &g).ok());
  const Layout ol = Layout::nhwc(c.N, g.OH, g.OW, c.OC);
  const Quant oq = Quant::per_tensor(0.3f, 3);
  const std::int64_t K = c.K * c.K * c.C;
  const TensorView<std::int8_t> kn(w.data(), Layout::col_major(K, c.OC), Quant::per_axis(1, sc));  // OHWI read as [K, OC]
  with_format(f, kn, [&](const auto& sw) {
    Tensor<std::int8_t> expect(ol, oq), one_shot(ol, oq);
    conv2d(scalar, p, in, w, bias, expect);  // the dense conv on the pruned weights
    const simd_backend be{level, 1};
    const sparse_conv_kernel kernel{c.K, c.K};
    conv2d_sparse(be, p, in, sw, kernel, bias, one_shot);
    REQUIRE(values(one_shot) == values(expect));
    const std::string one_shot_kernel = simd_last_kernel();
    for (int threads : {1, 2, 3, 4}) {
      INFO("threads " << threads);
      Tensor<std::int8_t> got(ol, oq);
      auto plan = make_conv2d_sparse_plan(be.with_threads(threads), p, in, sw, kernel, bias, got);
      CHECK(plan.kernel_name() == one_shot_kernel);
      plan.run(in, got);
      REQUIRE(values(got) == values(expect));
      fill(got, r);
      const long allocated = allocations_in([&] { plan.run(in, got); });
      if (kCountsAllocations) REQUIRE(allocated == 0);
      REQUIRE(values(got) == values(expect));
    }
    // Packed weights make the same plan.
    sparse_packed_t<std::decay_t<decltype(sw)>> packed;
    REQUIRE(pack_gemm_weights(be, sw, &packed).ok());
    Tensor<std::int8_t> got(ol, oq);
    make_conv2d_sparse_plan(be.with_threads(2), p, in, packed, kernel, bias, got).run(in, got);
    REQUIRE(values(got) == values(expect));
  });
}

}  // namespace

TEST_CASE("conv2d_sparse plans write the reference's bytes on any thread count and allocate nothing", "[plan][sparse][conv]") {
  rng r(403);
  // 1x1 stride 1 (the direct GEMM on the input), 3x3 padded at stride 2 and 1, a 5x5 window, and
  // one with bands of im2col rows of two sizes (28 rows of 64 x 576 patches, then 2).
  const conv_case cases[] = {{2, 5, 7, 16, 24, 1, 1, 0}, {1, 9, 11, 8, 17, 3, 2, 1}, {1, 6, 5, 12, 16, 3, 1, 1},
                             {1, 7, 7, 4, 9, 5, 1, 2}};
  int i = 0;
  for (isa level : cpu().levels())
    for (fmt f : {fmt::s24, fmt::bsr_1x4, fmt::csr})
      for (const conv_case& c : cases)
        for (const numerics_profile& prof : kProfiles) {
          if (++i % 2 == 0) check_conv<std::int8_t>(r, f, level, c, prof);
          else check_conv<std::uint8_t>(r, f, level, c, prof);
        }
  for (isa level : cpu().levels())
    check_conv<std::int8_t>(r, fmt::bsr_4x1, level, {1, 30, 64, 64, 16, 3, 1, 1}, numerics_profile::tflite());
}

TEST_CASE("sparse plans refuse what the one-shot calls refuse, and saturating accumulators", "[plan][sparse][validation]") {
  Tensor<std::int8_t> a(Layout::matrix(4, 8), Quant::per_tensor(0.1f, 1));
  Tensor<std::int8_t> w(Layout::matrix(8, 6), Quant::per_tensor(0.01f, 0));
  rng r(404);
  fill(w, r);
  throw_if_error(prune_2_4(w.view()));
  sparse_2_4_matrix<> s;
  REQUIRE(compress_2_4(w.cview(), &s).ok());
  Tensor<std::int8_t> out(Layout::matrix(4, 6), Quant::per_tensor(0.1f, 0));
  gemm_params p;
  SECTION("saturating and wider accumulators") {
    for (const numerics_profile& prof : {numerics_profile::q31(rounding::half_up, {16, overflow_rule::saturate_each_add}),
                                         numerics_profile::q31(rounding::half_away, {40, overflow_rule::wrap})}) {
      p.numerics = prof;
      gemm_sparse_plan<std::int8_t, packed_sparse_2_4_weights, std::int8_t> plan;
      const status st = try_make_gemm_sparse_plan(simd, p, a, s, no_bias, out, &plan);
      INFO(st.message());
      CHECK(st.code() == errc::unsupported);
      CHECK(st.message().find("accumulator saturates or is wider than 32 bits") != std::string::npos);
      CHECK(plan.empty());
      conv2d_params cp;
      cp.numerics = prof;
      Tensor<std::int8_t> in(Layout::nhwc(1, 3, 3, 8), Quant::per_tensor(0.1f, 0));
      Tensor<std::int8_t> cout(Layout::nhwc(1, 3, 3, 6), Quant::per_tensor(0.1f, 0));
      conv2d_sparse_plan<std::int8_t, packed_sparse_2_4_weights, std::int8_t> cplan;
      const status cs = try_make_conv2d_sparse_plan(simd, cp, in, s, sparse_conv_kernel{1, 1}, no_bias, cout, &cplan);
      CHECK(cs.code() == errc::unsupported);
      CHECK(cs.message().find("conv2d_sparse plan") != std::string::npos);
    }
  }
  SECTION("creation validates like the one-shot call") {
    Tensor<std::int8_t> wrong_k(Layout::matrix(4, 9), Quant::per_tensor(0.1f, 1));
    gemm_sparse_plan<std::int8_t, packed_sparse_2_4_weights, std::int8_t> plan;
    const status one_shot = try_gemm(simd, p, wrong_k, s, no_bias, out);
    const status st = try_make_gemm_sparse_plan(simd, p, wrong_k, s, no_bias, out, &plan);
    CHECK(st.code() == errc::invalid_shape);
    CHECK(st.code() == one_shot.code());
    CHECK(st.message() == one_shot.message());
    Tensor<std::int32_t> bias(Layout::row_major({5}));
    CHECK(try_make_gemm_sparse_plan(simd, p, a, s, bias, out, &plan).message() == try_gemm(simd, p, a, s, bias, out).message());
    CHECK(plan.empty());
  }
  SECTION("runs refuse other shapes and quantization by name and write nothing") {
    auto plan = make_gemm_sparse_plan(simd_backend{isa::best, 2}, p, a, s, no_bias, out);
    Tensor<std::int8_t> got(Layout::matrix(4, 6), out.quant());
    auto expect_refused = [&](const status& st, errc code, const std::string& words, const Tensor<std::int8_t>& target) {
      INFO(st.message());
      CHECK(st.code() == code);
      CHECK(st.message().rfind(words, 0) == 0);
      for (std::int64_t i = 0; i < target.layout().size(); ++i) CHECK(target.data()[i] == 0x5a);
    };
    std::memset(got.data(), 0x5a, 24);
    Tensor<std::int8_t> short_a(Layout::matrix(3, 8), a.quant()), wide_out(Layout::matrix(4, 7), out.quant());
    std::memset(wide_out.data(), 0x5a, 28);
    expect_refused(plan.try_run(short_a, got), errc::invalid_shape, "a: shape", got);
    expect_refused(plan.try_run(a, wide_out), errc::invalid_shape, "output: shape", wide_out);
    Tensor<std::int8_t> other_zp(Layout::matrix(4, 8), Quant::per_tensor(0.1f, 2));
    expect_refused(plan.try_run(other_zp, got), errc::invalid_quantization, "a: quantization differs", got);
    Tensor<std::int8_t> other_scale(Layout::matrix(4, 6), Quant::per_tensor(0.2f, 0));
    std::memset(other_scale.data(), 0x5a, 24);
    expect_refused(plan.try_run(a, other_scale), errc::invalid_quantization, "output: quantization differs", other_scale);
    // A good run, then the same memory with other quantization (the run's memo of checked views).
    REQUIRE(plan.try_run(a, got).ok());
    std::memset(got.data(), 0x5a, 24);
    Tensor<std::int8_t> a2(Layout::matrix(4, 8), a.quant());
    REQUIRE(plan.try_run(a2, got).ok());
    std::memset(got.data(), 0x5a, 24);
    const TensorView<const std::int8_t> a2_requantized(a2.data(), a2.layout(), Quant::per_tensor(0.1f, 3), a2.capacity());
    expect_refused(plan.try_run(a2_requantized, got), errc::invalid_quantization, "a: quantization differs", got);
    gemm_sparse_plan<std::int8_t, packed_sparse_2_4_weights, std::int8_t> empty;
    CHECK(empty.try_run(a, got).code() == errc::invalid_argument);
  }
  SECTION("conv plan runs refuse other shapes and quantization by name and write nothing") {
    Tensor<std::int8_t> in(Layout::nhwc(1, 5, 5, 4), Quant::per_tensor(0.1f, 0));
    Tensor<std::int8_t> cw(Layout::matrix(36, 6), Quant::per_tensor(0.01f, 0));
    fill(cw, r);
    throw_if_error(prune_2_4(cw.view()));
    sparse_2_4_matrix<> cs;
    REQUIRE(compress_2_4(cw.cview(), &cs).ok());
    Tensor<std::int8_t> cout(Layout::nhwc(1, 5, 5, 6), Quant::per_tensor(0.1f, 0));
    conv2d_params same;
    same.padding = padding_spec::same();
    conv2d_sparse_plan<std::int8_t, packed_sparse_2_4_weights, std::int8_t> bad;
    const status wrong_kernel = try_make_conv2d_sparse_plan(simd, same, in, cs, sparse_conv_kernel{3, 2}, no_bias, cout, &bad);
    CHECK(wrong_kernel.code() == errc::invalid_shape);
    CHECK(wrong_kernel.message() == try_conv2d_sparse(simd, same, in, cs, sparse_conv_kernel{3, 2}, no_bias, cout).message());
    auto plan = make_conv2d_sparse_plan(simd, same, in, cs, sparse_conv_kernel{3, 3}, no_bias, cout);
    std::memset(cout.data(), 0x5a, 150);
    const auto untouched = [&] {
      for (std::int64_t i = 0; i < 150; ++i) CHECK(cout.data()[i] == 0x5a);
    };
    Tensor<std::int8_t> taller(Layout::nhwc(1, 6, 5, 4), in.quant());
    status st = plan.try_run(taller, cout);
    CHECK(st.code() == errc::invalid_shape);
    CHECK(st.message().rfind("input: shape", 0) == 0);
    untouched();
    Tensor<std::int8_t> shifted(Layout::nhwc(1, 5, 5, 4), Quant::per_tensor(0.1f, 7));
    st = plan.try_run(shifted, cout);
    CHECK(st.code() == errc::invalid_quantization);
    CHECK(st.message().rfind("input: quantization differs", 0) == 0);
    untouched();
    // Output aliasing the input.
    Tensor<std::int8_t> buf(Layout::row_major({150}), Quant::per_tensor(0.1f, 0));
    const TensorView<const std::int8_t> in_alias(buf.data(), Layout::nhwc(1, 5, 5, 4), in.quant());
    const TensorView<std::int8_t> out_alias(buf.data(), Layout::nhwc(1, 5, 5, 6), cout.quant());
    CHECK(plan.try_run(in_alias, out_alias).code() == errc::aliasing);
    REQUIRE(plan.try_run(in, cout).ok());
  }
}
