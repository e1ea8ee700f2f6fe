// Plans for the int4-weight ops (backends/simd/plan_int4.hpp): the bytes a plan's run writes are
// the scalar reference's and the one-shot simd call's, at every ISA level this CPU runs, on 1-4
// threads (the same bytes on each), for int8 and uint8 activations and every weight form (int4
// tensor, int4 view, packed); runs allocate nothing; and a run's tensors that disagree with the
// plan are refused by name before anything is written.
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
using npuq_test::random_zero_points;
using npuq_test::rng;
using npuq_test::values;

namespace {

const numerics_profile kProfiles[] = {numerics_profile::tflite(), numerics_profile::onnx(), numerics_profile::tosa_single()};

struct gemm_shape {
  std::int64_t M, N, K;
};

// GEMV, sizes 1..10, N and K off the 16-column panels and the quads, a deep K, and two shapes
// with enough work per panel that 2-4 threads split them (checked through simd_last_threads).
const gemm_shape kGemmShapes[] = {{1, 1, 1}, {1, 37, 70}, {3, 5, 9}, {7, 10, 33}, {10, 17, 6}, {5, 40, 1100}, {8, 70, 1100}, {1, 520, 2100}};

bool splits(const gemm_shape& s) { return s.M * s.N * s.K >= 500000; }

template <class T>
std::vector<unsigned char> bytes(const Tensor<T>& t) {
  std::vector<unsigned char> out(static_cast<std::size_t>(t.size()) * sizeof(T));
  if (!out.empty()) std::memcpy(out.data(), t.data(), out.size());
  return out;
}

// Runs `plan` on (a, got): the reference's bytes, and a second run allocates nothing.
template <class Plan, class A, class O>
void require_plan_writes(Plan& plan, const Tensor<A>& a, const Tensor<O>& got, const Tensor<O>& expect) {
  plan.run(a, got);  // the first run may create the OpenMP team (libgomp's own malloc)
  REQUIRE(bytes(got) == bytes(expect));
  std::memset(got.data(), 0x5A, static_cast<std::size_t>(got.size()) * sizeof(O));
  const long allocated = allocations_in([&] { plan.run(a, got); });
  if (kCountsAllocations) REQUIRE(allocated == 0);
  REQUIRE(bytes(got) == bytes(expect));
}

// One W4A8 GEMM case: scalar reference, one-shot simd (1 and 3 threads), plans on 1-4 threads
// made from each form of the weights.
template <class A>
void check_gemm_int4(rng& r, isa level, const gemm_shape& s, const numerics_profile& prof) {
  Tensor<A> a(Layout::matrix(s.M, s.K), Quant::per_tensor(0.02f, r.uniform(element_traits<A>::min, element_traits<A>::max)));
  Tensor<int4> b(Layout::matrix(s.K, s.N), Quant::per_axis(1, random_scales(r, s.N), random_zero_points(r, s.N, -8, 7)));
  Tensor<std::int32_t> bias(Layout::row_major({s.N}));
  fill(a, r);
  fill(b, r, -8, 7);
  fill(bias, r, -20000, 20000);
  gemm_params p;
  p.numerics = prof;
  const Quant oq = Quant::per_tensor(0.05f, -3);
  const Layout ol = Layout::matrix(s.M, s.N);
  Tensor<std::int8_t> expect(ol, oq), one_shot(ol, oq), got(ol, oq);
  gemm(scalar, p, a, b, bias, expect);
  for (int threads : {1, 3}) {
    fill(one_shot, r);
    gemm(simd_backend{level, threads}, p, a, b, bias, one_shot);
    REQUIRE(bytes(one_shot) == bytes(expect));
  }
  const std::string one_shot_kernel = simd_last_kernel();
  packed_int4_weights pw;
  REQUIRE(pack_gemm_weights(simd, b, &pw).ok());
  for (int threads : {1, 2, 3, 4}) {
    INFO("threads " << threads);
    const simd_backend be{level, threads};
    gemm_int4_plan<A, std::int8_t> plan;
    switch (threads) {  // every form of the weights
      case 1: plan = make_gemm_plan(be, p, a, b, bias, got); break;
      case 2: plan = make_gemm_plan(be, p, a, b.cview(), bias, got); break;
      case 3: plan = make_gemm_plan(be, p, a, pw, bias, got); break;
      default: REQUIRE(try_make_gemm_plan(be, p, a, b.view(), bias, got, &plan).ok());
    }
    CHECK(plan.kernel_name() == one_shot_kernel);
    CHECK(npuq_test::ends_with(plan.kernel_name(), npuq_test::family_suffix(level, &level_table::int4)));
    CHECK(plan.threads() == threads);
    require_plan_writes(plan, a, got, expect);
    if (threading_available && splits(s) && threads > 1) CHECK(simd_last_threads() > 1);
  }
}

struct grouped_shape {
  std::int64_t M, N, K, group_size;
};

// K a multiple of the group size and not, groups not a multiple of 4 (padded quads), N off the
// panels, a deep K, and shapes that 2-4 threads split.
const grouped_shape kGroupedShapes[] = {{1, 1, 32, 32},   {1, 33, 70, 32},    {3, 7, 9, 6},       {10, 16, 64, 20},
                                        {5, 19, 257, 64}, {4, 40, 1100, 128}, {8, 70, 1030, 32}, {1, 520, 2100, 32}};

template <class A, class O>
void check_grouped(rng& r, isa level, const grouped_shape& s, bool zero_points, bool with_bias, const gemm_grouped_params& p,
                   const Quant& oq) {
  const std::int64_t G = (s.K + s.group_size - 1) / s.group_size;
  Tensor<A> a(Layout::matrix(s.M, s.K), Quant::per_tensor(0.013f, r.uniform(element_traits<A>::min, element_traits<A>::max)));
  Tensor<int4> b(Layout::matrix(s.K, s.N),
                 Quant::per_group(1, 0, s.group_size, random_scales(r, s.N * G, 0.001f, 0.05f),
                                  zero_points ? random_zero_points(r, s.N * G, -8, 7) : std::vector<std::int32_t>{0}));
  fill(a, r);
  fill(b, r, -8, 7);
  Tensor<float> bias(Layout::row_major({s.N}));
  for (std::int64_t n = 0; n < s.N; ++n) bias.data()[n] = r.uniform_real(-1.0f, 1.0f);
  const Layout ol = Layout::matrix(s.M, s.N);
  Tensor<O> expect(ol, oq), one_shot(ol, oq), got(ol, oq);
  packed_int4_weights pw;
  REQUIRE(pack_gemm_weights(simd, b, &pw).ok());
  if (with_bias) gemm_grouped(scalar, p, a, b, bias, expect);
  else gemm_grouped(scalar, p, a, b, no_bias, expect);
  for (int threads : {1, 3}) {
    const simd_backend be{level, threads};
    if (with_bias) gemm_grouped(be, p, a, pw, bias, one_shot);
    else gemm_grouped(be, p, a, b, no_bias, one_shot);
    REQUIRE(bytes(one_shot) == bytes(expect));
  }
  const std::string one_shot_kernel = simd_last_kernel();
  for (int threads : {1, 2, 3, 4}) {
    INFO("threads " << threads);
    const simd_backend be{level, threads};
    gemm_grouped_plan<A, O> plan;
    if (with_bias) {
      if (threads % 2 == 0) plan = make_gemm_grouped_plan(be, p, a, pw, bias, got);
      else plan = make_gemm_grouped_plan(be, p, a, b, bias, got);
    } else {
      if (threads % 2 == 0) REQUIRE(try_make_gemm_grouped_plan(be, p, a, b.cview(), no_bias, got, &plan).ok());
      else plan = make_gemm_grouped_plan(be, p, a, pw, no_bias, got);
    }
    CHECK(plan.kernel_name() == one_shot_kernel);
    require_plan_writes(plan, a, got, expect);
    if (threading_available && s.M * s.N * s.K >= 500000 && threads > 1) CHECK(simd_last_threads() > 1);
  }
}

}  // namespace

TEST_CASE("the allocation counter sees allocations", "[plan][int4]") {
  if (kCountsAllocations) CHECK(allocations_in([] { std::vector<int> v(100); (void)v; }) == 1);
}

TEST_CASE("int4 gemm plans write the reference's bytes on 1-4 threads and allocate nothing when run", "[plan][int4][gemm]") {
  rng r(401);
  for (isa level : cpu().levels())
    for (const gemm_shape& s : kGemmShapes)
      for (const numerics_profile& prof : kProfiles) {
        INFO(to_string(level) << " M=" << s.M << " N=" << s.N << " K=" << s.K << " " << prof.describe());
        check_gemm_int4<std::int8_t>(r, level, s, prof);
        check_gemm_int4<std::uint8_t>(r, level, s, prof);
      }
}

TEST_CASE("an int4 gemm plan runs batched, strided views and int32 output", "[plan][int4][gemm]") {
  rng r(402);
  const std::int64_t batches = 3, M = 11, N = 40, K = 70;
  // a is a column slice of a wider buffer; the output is batched and written with a row pitch.
  Tensor<std::uint8_t> wide(Layout::row_major({batches, M, K + 5}), Quant::per_tensor(0.03f, 140));
  fill(wide, r);
  const TensorView<const std::uint8_t> a(wide.data(), 2, Layout::strided({batches, M, K}, {M * (K + 5), K + 5, 1}), wide.quant(),
                                         wide.capacity());
  Tensor<std::uint8_t> a_dense(Layout::row_major({batches, M, K}), wide.quant());
  for (std::int64_t i = 0; i < batches; ++i)
    for (std::int64_t m = 0; m < M; ++m)
      for (std::int64_t k = 0; k < K; ++k) a_dense.view().set(a(i, m, k), i, m, k);
  Tensor<int4> b(Layout::matrix(K, N), Quant::per_tensor(0.01f, 3));
  fill(b, r, -8, 7);
  const gemm_params p;
  Tensor<std::int32_t> expect(Layout::row_major({batches, M, N}));
  gemm(scalar, p, a, b, no_bias, expect);
  for (isa level : cpu().levels()) {
    INFO(to_string(level));
    Tensor<std::int32_t> pitched(Layout::row_major({batches, M, N + 3}));
    const TensorView<std::int32_t> got(pitched.data(), 0, Layout::strided({batches, M, N}, {M * (N + 3), N + 3, 1}), Quant{},
                                       pitched.capacity());
    Tensor<std::int32_t> dense(Layout::row_major({batches, M, N}));
    // Made for the dense tensors, run on the strided ones and back.
    auto plan = make_gemm_plan(simd_backend{level, 2}, p, a_dense, b, no_bias, dense);
    plan.run(a, got);
    for (std::int64_t i = 0; i < batches; ++i)
      for (std::int64_t m = 0; m < M; ++m)
        for (std::int64_t n = 0; n < N; ++n) REQUIRE(got(i, m, n) == expect.view()(i, m, n));
    plan.run(a_dense, dense);
    REQUIRE(values(dense) == values(expect));
  }
}

TEST_CASE("grouped int4 gemm plans write the reference's bytes on 1-4 threads and allocate nothing when run",
          "[plan][int4][grouped]") {
  rng r(403);
  gemm_grouped_params relu;
  relu.clamp = clamp_spec::relu();
  for (isa level : cpu().levels())
    for (const grouped_shape& s : kGroupedShapes) {
      INFO(to_string(level) << " M=" << s.M << " N=" << s.N << " K=" << s.K << " group " << s.group_size);
      check_grouped<std::uint8_t, float>(r, level, s, true, true, gemm_grouped_params{}, Quant{});
      check_grouped<std::int8_t, float>(r, level, s, false, false, gemm_grouped_params{}, Quant{});
      check_grouped<std::int8_t, std::int8_t>(r, level, s, true, true, relu, Quant::per_tensor(0.02f, -10));
      check_grouped<std::uint8_t, std::uint8_t>(r, level, s, false, false, gemm_grouped_params{}, Quant::per_tensor(0.03f, 120));
    }
}

TEST_CASE("int4 conv2d plans write conv2d_int4's bytes", "[plan][int4][conv2d]") {
  rng r(404);
  struct cfg {
    std::int64_t N, H, W, C, OC, K, stride, groups;
  };
  const cfg cases[] = {{1, 9, 11, 5, 7, 3, 1, 1}, {1, 17, 19, 3, 16, 3, 2, 1}, {2, 9, 9, 16, 40, 3, 1, 2}, {1, 6, 7, 33, 17, 1, 1, 1}};
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
          Tensor<int4> w(Layout::ohwi(c.OC, c.K, c.K, c.C / c.groups), Quant::per_axis(0, random_scales(r, c.OC)));
          Tensor<std::int32_t> bias(Layout::row_major({c.OC}));
          fill(in, r);
          fill(w, r, -7, 7);
          fill(bias, r, -3000, 3000);
          const Quant oq = Quant::per_tensor(0.07f, 5);
          const Layout ol = Layout::nhwc(c.N, g.OH, g.OW, c.OC);
          Tensor<std::int8_t> expect(ol, oq), one_shot(ol, oq), got(ol, oq);
          conv2d_int4(scalar, p, in, w, bias, expect, int4_range::symmetric);
          const simd_backend be{level, threads};
          conv2d_int4(be, p, in, w, bias, one_shot, int4_range::symmetric);
          REQUIRE(values(one_shot) == values(expect));
          auto plan = threads == 1 ? make_conv2d_plan(be, p, in, w, bias, got, int4_range::symmetric) : make_conv2d_plan(be, p, in, w.cview(), bias, got);
          static_assert(std::is_same<decltype(plan), conv2d_plan<std::int8_t, std::int8_t, std::int8_t>>::value,
                        "an int4 conv2d plan is the int8 plan on the widened weights");
          require_plan_writes(plan, in, got, expect);
        }
  // The range is checked once, at creation, naming the weights.
  Tensor<std::int8_t> in(Layout::nhwc(1, 5, 5, 3), Quant::per_tensor(0.03f, 0));
  Tensor<int4> w(Layout::ohwi(4, 3, 3, 3), Quant::per_axis(0, random_scales(r, 4)));
  fill(w, r, -7, 7);
  w.view().set(-8, 2, 1, 0, 2);
  Tensor<std::int8_t> out(Layout::nhwc(1, 3, 3, 4), Quant::per_tensor(0.1f, 0));
  conv2d_plan<std::int8_t, std::int8_t, std::int8_t> plan;
  const status st = try_make_conv2d_plan(simd, conv2d_params{}, in, w, no_bias, out, &plan, int4_range::symmetric);
  CHECK(st.code() == errc::invalid_argument);
  CHECK(st.message().find("weights: value -8 at [2, 1, 0, 2]") != std::string::npos);
  CHECK(plan.empty());
  REQUIRE(try_make_conv2d_plan(simd, conv2d_params{}, in, w, no_bias, out, &plan).ok());  // the full range holds -8
}

TEST_CASE("int4 depthwise plans write depthwise_conv2d_int4's bytes", "[plan][int4][depthwise]") {
  rng r(406);
  struct cfg {
    std::int64_t N, H, W, C, M, K, stride;
  };
  // 3x3 and 5x5 at stride 1 and 2, channel counts off the 16-channel blocks, M = 2.
  const cfg cases[] = {{1, 8, 8, 16, 1, 3, 1}, {2, 11, 13, 33, 1, 3, 2}, {1, 9, 10, 7, 1, 5, 1},
                       {1, 12, 11, 20, 1, 5, 2}, {1, 7, 9, 5, 2, 3, 1}};
  for (isa level : cpu().levels())
    for (const cfg& c : cases)
      for (const numerics_profile& prof : kProfiles)
        for (int threads : {1, 3}) {
          INFO(to_string(level) << " depthwise " << c.H << "x" << c.W << "x" << c.C << " M=" << c.M << " " << c.K << "x" << c.K
                                << " stride " << c.stride << " " << prof.describe() << " threads " << threads);
          const std::int64_t OC = c.C * c.M;
          depthwise_params p;
          p.numerics = prof;
          p.stride_h = p.stride_w = c.stride;
          p.padding = padding_spec::same();
          conv_geometry g = detail::input_geometry(Layout::nhwc(c.N, c.H, c.W, c.C), c.K, c.K);
          REQUIRE(detail::resolve_geometry(p, &g).ok());
          Tensor<std::uint8_t> in(Layout::nhwc(c.N, c.H, c.W, c.C), Quant::per_tensor(0.03f, 131));
          Tensor<int4> w(Layout::hwc_m(c.K, c.K, c.C, c.M), Quant::per_axis(2, random_scales(r, OC)));
          Tensor<std::int32_t> bias(Layout::row_major({OC}));
          fill(in, r);
          fill(w, r, -8, 7);
          fill(bias, r, -3000, 3000);
          const Quant oq = Quant::per_tensor(0.07f, -20);
          const Layout ol = Layout::nhwc(c.N, g.OH, g.OW, OC);
          Tensor<std::int8_t> expect(ol, oq), one_shot(ol, oq), got(ol, oq);
          depthwise_conv2d_int4(scalar, p, in, w, bias, expect);
          const simd_backend be{level, threads};
          depthwise_conv2d_int4(be, p, in, w, bias, one_shot);
          REQUIRE(values(one_shot) == values(expect));
          auto plan = threads == 1 ? make_depthwise_plan(be, p, in, w, bias, got) : make_depthwise_plan(be, p, in, w.cview(), bias, got);
          static_assert(std::is_same<decltype(plan), depthwise_plan<std::uint8_t, std::int8_t, std::int8_t>>::value,
                        "an int4 depthwise plan is the int8 plan on the widened weights");
          CHECK(plan.kernel_name() == simd_last_kernel());
          require_plan_writes(plan, in, got, expect);
        }
  // The range is checked once, at creation, naming the weights.
  Tensor<std::int8_t> in(Layout::nhwc(1, 5, 5, 3), Quant::per_tensor(0.03f, 0));
  Tensor<int4> w(Layout::hwc_m(3, 3, 3, 1), Quant::per_axis(2, random_scales(r, 3)));
  fill(w, r, -7, 7);
  w.view().set(-8, 1, 2, 2);
  Tensor<std::int8_t> out(Layout::nhwc(1, 3, 3, 3), Quant::per_tensor(0.1f, 0));
  depthwise_plan<std::int8_t, std::int8_t, std::int8_t> plan;
  status st = try_make_depthwise_plan(simd, depthwise_params{}, in, w, no_bias, out, &plan, int4_range::symmetric);
  CHECK(st.code() == errc::invalid_argument);
  CHECK(st.message().find("weights: value -8 at [1, 2, 2]") != std::string::npos);
  CHECK(plan.empty());
  CHECK_THROWS_AS(make_depthwise_plan(simd, depthwise_params{}, in, w, no_bias, out, int4_range::symmetric), npuq::error);
  REQUIRE(try_make_depthwise_plan(simd, depthwise_params{}, in, w, no_bias, out, &plan).ok());  // the full range holds -8
  Tensor<std::int8_t> expect(out.layout(), out.quant());
  fill(in, r);
  depthwise_conv2d_int4(scalar, depthwise_params{}, in, w, no_bias, expect);
  plan.run(in, out);
  CHECK(values(out) == values(expect));
}

TEST_CASE("int4 plans refuse what differs from their creation, writing nothing", "[plan][int4][errors]") {
  rng r(405);
  Tensor<std::int8_t> a(Layout::matrix(8, 40), Quant::per_tensor(0.02f, 1));
  Tensor<int4> b(Layout::matrix(40, 20), Quant::per_axis(1, random_scales(r, 20)));
  fill(a, r);
  fill(b, r, -7, 7);
  Tensor<std::int8_t> out(Layout::matrix(8, 20), Quant::per_tensor(0.1f, 0));
  fill(out, r);
  const auto untouched = values(out);
  auto refused = [&](const status& st, errc code, const char* words) {
    INFO(st.message());
    CHECK(st.code() == code);
    CHECK(st.message().find(words) != std::string::npos);
    CHECK(values(out) == untouched);
  };

  auto plan = make_gemm_plan(simd, gemm_params{}, a, b, no_bias, out);
  Tensor<std::int8_t> taller(Layout::matrix(9, 40), a.quant());
  refused(plan.try_run(taller, out), errc::invalid_shape, "a: shape [9,40], the plan was made for [8,40]");
  Tensor<std::int8_t> other_zp(Layout::matrix(8, 40), Quant::per_tensor(0.02f, 2));
  refused(plan.try_run(other_zp, out), errc::invalid_quantization, "a: quantization differs from the plan's");
  const TensorView<std::int8_t> other_out(out.data(), out.layout(), Quant::per_tensor(0.2f, 0), out.capacity());
  refused(plan.try_run(a, other_out), errc::invalid_quantization, "output: quantization differs");
  const TensorView<std::int8_t> wider_out(out.data(), Layout::matrix(8, 19), out.quant(), out.capacity());
  refused(plan.try_run(a, wider_out), errc::invalid_shape, "output: shape [8,19]");
  const TensorView<std::int8_t> short_out(out.data(), 0, out.layout(), out.quant(), out.size() - 1);
  refused(plan.try_run(a, short_out), errc::buffer_too_small, "output");
  const TensorView<std::int8_t> out_on_a(a.data(), out.layout(), out.quant(), a.capacity());
  CHECK(plan.try_run(a, out_on_a).code() == errc::aliasing);
  refused(gemm_int4_plan<std::int8_t, std::int8_t>{}.try_run(a, out), errc::invalid_argument, "empty plan");

  // Creation validates like the one-shot call and refuses what plans do not run.
  gemm_int4_plan<std::int8_t, std::int8_t> bad;
  Tensor<int4> b_wrong_k(Layout::matrix(39, 20), b.quant());
  refused(try_make_gemm_plan(simd, gemm_params{}, a, b_wrong_k, no_bias, out, &bad), errc::invalid_shape, "b: shape [39,20] has K = 39");
  gemm_params sat;
  sat.numerics = numerics_profile::tflite().with_accumulator(32, overflow_rule::saturate_each_add);
  refused(try_make_gemm_plan(simd, sat, a, b, no_bias, out, &bad), errc::unsupported,
          "int4 gemm plan: the profile's accumulator saturates or is wider than 32 bits");
  gemm_params wide;
  wide.numerics = numerics_profile::q31(rounding::half_up, {40, overflow_rule::wrap});
  refused(try_make_gemm_plan(simd, wide, a, b, no_bias, out, &bad), errc::unsupported, "saturates or is wider than 32 bits");
  packed_int4_weights pw;
  REQUIRE(pack_gemm_weights(simd, b, &pw).ok());
  refused(try_make_gemm_plan(simd, sat, a, pw, no_bias, out, &bad), errc::unsupported, "saturates or is wider than 32 bits");
  Tensor<int4> batched_b(Layout::row_major({1, 40, 20}), Quant::per_axis(2, random_scales(r, 20)));
  Tensor<std::int8_t> a3(Layout::row_major({1, 8, 40}), a.quant());
  Tensor<std::int8_t> out3(Layout::row_major({1, 8, 20}), out.quant());
  refused(try_make_gemm_plan(simd, gemm_params{}, a3, batched_b, no_bias, out3, &bad), errc::unsupported, "b: a plan takes 2-D weights");
  // TOSA's symmetric range: -8 refused in int4 tensors (by index) and in packed weights.
  b.view().set(-8, 3, 4);
  gemm_params tosa;
  tosa.int4_weights = int4_range::symmetric;
  refused(try_make_gemm_plan(simd, tosa, a, b, no_bias, out, &bad), errc::invalid_argument, "b: value -8 at [3, 4]");
  REQUIRE(pack_gemm_weights(simd, b, &pw).ok());
  refused(try_make_gemm_plan(simd, tosa, a, pw, no_bias, out, &bad), errc::invalid_argument, "b: packed weights hold -8");
  CHECK(bad.empty());

  // The grouped plan.
  Tensor<int4> bg(Layout::matrix(40, 20), Quant::per_group(1, 0, 16, random_scales(r, 20 * 3)));
  fill(bg, r, -8, 7);
  Tensor<float> of(Layout::matrix(8, 20));
  auto gp = make_gemm_grouped_plan(simd_backend{isa::best, 2}, gemm_grouped_params{}, a, bg, no_bias, of);
  std::vector<float> before(static_cast<std::size_t>(of.size()), 0.5f);
  std::memcpy(of.data(), before.data(), before.size() * sizeof(float));
  const auto of_bytes = bytes(of);
  CHECK(gp.try_run(taller, of).code() == errc::invalid_shape);
  const status gq = gp.try_run(other_zp, of);
  CHECK(gq.code() == errc::invalid_quantization);
  CHECK(gq.message().find("a: quantization differs") != std::string::npos);
  CHECK(bytes(of) == of_bytes);
  gemm_grouped_plan<std::int8_t, float> gbad;
  gemm_grouped_params relu;
  relu.clamp = clamp_spec::relu();
  const status gr = try_make_gemm_grouped_plan(simd, relu, a, bg, no_bias, of, &gbad);
  CHECK(gr.code() == errc::unsupported);
  CHECK(gr.message().find("clamp") != std::string::npos);
  CHECK(gbad.empty());
  CHECK(gemm_grouped_plan<std::int8_t, float>{}.try_run(a, of).code() == errc::invalid_argument);
}

TEST_CASE("int4 plans with an empty output check their views and compute nothing", "[plan][int4][errors]") {
  Tensor<std::int8_t> a(Layout::matrix(0, 16), Quant::per_tensor(0.02f, 1));
  Tensor<int4> b(Layout::matrix(16, 5), Quant::per_tensor(0.01f));
  Tensor<std::int8_t> out(Layout::matrix(0, 5), Quant::per_tensor(0.1f, 0));
  auto plan = make_gemm_plan(simd, gemm_params{}, a, b, no_bias, out);
  CHECK(plan.try_run(a, out).ok());
  Tensor<std::int8_t> one_row(Layout::matrix(1, 16), a.quant());
  CHECK(plan.try_run(one_row, out).code() == errc::invalid_shape);
}
