// Attention plans (backends/simd/plan_attention.hpp): a plan's run writes the bytes of the
// one-shot simd call and of the scalar reference, at every ISA level, for prefill and decode
// shapes, masks, causal and not, int8 and uint8, every profile with a plan; against a kv_cache a
// single plan serves a decode loop; any thread count gives the same bytes; runs allocate nothing;
// bad runs are refused with the operand named and nothing written.
#include "support/allocations.hpp"
#include "support/catch.hpp"
#include "support/levels.hpp"
#include "support/random.hpp"

#include <array>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include <npuq/npuq.hpp>

using namespace npuq;
using namespace npuq_test;

namespace {

template <class T>
Quant quant_of(rng& r, float scale) {
  return std::is_same<T, std::uint8_t>::value ? Quant::per_tensor(scale, r.uniform(90, 160)) : Quant::per_tensor(scale, r.uniform(-20, 20));
}

// One attention call's tensors: Q [H, S, d], K [H, T, d], V [H, T, dv], out [H, S, dv] and an
// optional mask (kind 1: [T], 2: [S, T], 3: [H, 1, T] with removed keys).
template <class Q, class KV, class O>
struct attn {
  std::int64_t H, S, T, d, dv;
  attention_params params;
  Tensor<Q> q;
  Tensor<KV> k, v;
  Tensor<std::int32_t> mask;
  bool has_mask = false;
  attn(rng& r, std::int64_t H_, std::int64_t S_, std::int64_t T_, std::int64_t d_, std::int64_t dv_, int mask_kind = 0)
      : H(H_), S(S_), T(T_), d(d_), dv(dv_),
        q(Layout::row_major({H_, S_, d_}), quant_of<Q>(r, 0.05f)),
        k(Layout::row_major({H_, T_, d_}), quant_of<KV>(r, 0.04f)),
        v(Layout::row_major({H_, T_, dv_}), quant_of<KV>(r, 0.03f)) {
    fill(q, r);
    fill(k, r);
    fill(v, r);
    params.score = Quant::per_tensor(0.002f * static_cast<float>(d_ > 8 ? d_ : 8), r.uniform(-20, 20));
    if (mask_kind == 1) mask = Tensor<std::int32_t>(Layout::row_major({T_}));
    if (mask_kind == 2) mask = Tensor<std::int32_t>(Layout::row_major({S_, T_}));
    if (mask_kind == 3) mask = Tensor<std::int32_t>(Layout::row_major({H_, 1, T_}));
    has_mask = mask_kind != 0;
    if (has_mask) fill(mask, r, -300, 60);
  }
  Tensor<O> output() const {
    return Tensor<O>(Layout::row_major({H, S, dv}), Quant::per_tensor(0.02f, std::is_same<O, std::uint8_t>::value ? 128 : 5));
  }
  TensorView<const std::int32_t> mask_view() const { return has_mask ? mask.cview() : TensorView<const std::int32_t>{}; }
};

template <class T>
void poison(const Tensor<T>& t) {
  std::memset(static_cast<void*>(t.data()), 0x5A, static_cast<std::size_t>(t.storage_bytes()));
}
template <class T>
bool untouched(const Tensor<T>& t) {
  const auto* b = reinterpret_cast<const unsigned char*>(t.data());
  for (std::int64_t i = 0; i < t.storage_bytes(); ++i)
    if (b[i] != 0x5A) return false;
  return true;
}

// plan.run == attention(simd) == attention(scalar) for one case; the plan runs twice (a new and
// a remembered set of views) and its second run must not allocate.
template <class Q, class KV, class O>
void check_plan(const attn<Q, KV, O>& c, const simd_backend& be) {
  Tensor<O> want = c.output(), one_shot = c.output(), got = c.output();
  REQUIRE(try_attention(scalar, c.params, c.q, c.k, c.v, c.mask_view(), want).ok());
  REQUIRE(try_attention(be, c.params, c.q, c.k, c.v, c.mask_view(), one_shot).ok());
  attention_plan<Q, KV, O> plan;
  const status made = try_make_attention_plan(be, c.params, c.q, c.k, c.v, c.mask_view(), got, &plan);
  INFO("level " << to_string(be.level()) << " H,S,T,d,dv " << c.H << "," << c.S << "," << c.T << "," << c.d << "," << c.dv << " causal "
                << c.params.causal << " mask " << c.has_mask << " profile " << c.params.numerics.describe() << " " << made.to_string());
  REQUIRE(made.ok());
  poison(got);
  REQUIRE(plan.try_run(c.q, c.k, c.v, c.mask_view(), got).ok());
  REQUIRE(values(one_shot) == values(want));
  REQUIRE(values(got) == values(want));
  poison(got);
  const long allocs = allocations_in([&] { plan.run(c.q, c.k, c.v, c.mask_view(), got); });
  if (kCountsAllocations) CHECK(allocs == 0);
  REQUIRE(values(got) == values(want));
}

}  // namespace

TEST_CASE("attention plans write the one-shot and reference bytes at every ISA level", "[plans][attention]") {
  rng r(11);
  for (isa level : cpu().levels()) {
    const simd_backend be{level, 1};
    int i = 0;
    for (std::int64_t S : {1, 2, 5, 7, 8, 9, 20, 65}) {
      for (std::int64_t T : {1, 6, 17, 64, 130}) {
        ++i;
        const std::int64_t d = std::vector<std::int64_t>{1, 5, 16, 33}[static_cast<std::size_t>(i % 4)];
        const std::int64_t H = 1 + i % 3, dv = d == 1 ? 3 : d + i % 2;
        attn<std::int8_t, std::int8_t, std::int8_t> c(r, H, S, T, d, dv, i % 4);
        c.params.causal = i % 3 == 1;
        check_plan(c, be);
      }
    }
    // The plan runs the level's row kernels.
    attn<std::int8_t, std::int8_t, std::int8_t> c(r, 2, 3, 9, 8, 8);
    Tensor<std::int8_t> out = c.output();
    const auto plan = make_attention_plan(be, c.params, c.q, c.k, c.v, no_mask, out);
    INFO("level " << to_string(level) << " plan kernel " << plan.kernel_name());
    CHECK(plan.kernel_name().rfind("attention_decode_s8_rows_", 0) == 0);
    CHECK(ends_with(plan.kernel_name(), family_suffix(level, &level_table::decode)));
  }
}

TEST_CASE("attention plans: uint8, profiles, exp variants and probability types", "[plans][attention][numerics]") {
  rng r(12);
  const isa level = cpu().levels().back();
  const simd_backend be{level, 1};
  const numerics_profile planned[] = {numerics_profile::tflite(), numerics_profile::tosa_single(), numerics_profile::onnx(),
                                      numerics_profile::q31(rounding::half_even),
                                      numerics_profile::tflite().with_accumulator(24, overflow_rule::wrap)};
  int i = 0;
  for (const auto& prof : planned) {
    for (std::int64_t S : {1, 4, 12}) {
      ++i;
      attn<std::int8_t, std::int8_t, std::int8_t> c(r, 2, S, 40, 24, 16, i % 4);
      c.params.numerics = prof;
      c.params.causal = i % 2 == 0;
      c.params.exp = i % 2 ? softmax_exp::table : softmax_exp::fixed_point;
      c.params.probabilities = i % 3 == 0 ? dtype::u8 : dtype::s8;
      check_plan(c, be);
      attn<std::uint8_t, std::uint8_t, std::uint8_t> u(r, 1, S, 33, 8, 8, (i + 1) % 4);
      u.params.numerics = prof;
      u.params.causal = i % 2 == 1;
      check_plan(u, be);
      attn<std::uint8_t, std::int8_t, std::int8_t> m(r, 3, S, 19, 7, 5, 0);
      m.params.numerics = prof;
      check_plan(m, be);
    }
  }
  // A precomputed softmax triple instead of beta.
  attn<std::int8_t, std::int8_t, std::int8_t> c(r, 2, 9, 21, 16, 16);
  c.params.softmax = softmax_params::tflite(0.25f, c.params.score.scale());
  check_plan(c, be);

  // A saturating accumulator has no plan (the one-shot call runs the reference).
  attn<std::int8_t, std::int8_t, std::int8_t> sat(r, 1, 3, 8, 8, 8);
  sat.params.numerics = numerics_profile::tflite().with_accumulator(20, overflow_rule::saturate_each_add);
  Tensor<std::int8_t> out = sat.output();
  attention_plan<std::int8_t, std::int8_t, std::int8_t> plan;
  const status s = try_make_attention_plan(be, sat.params, sat.q, sat.k, sat.v, no_mask, out, &plan);
  INFO(s.to_string());
  CHECK(s.code() == errc::unsupported);
  CHECK(s.message().find("attention plan") != std::string::npos);
  CHECK(plan.empty());
  CHECK_THROWS_AS(make_attention_plan(be, sat.params, sat.q, sat.k, sat.v, no_mask, out), npuq::error);
}

TEST_CASE("attention plans give the same bytes on 1, 2, 3 and 4 threads", "[plans][attention][threads]") {
  rng r(13);
  const isa level = cpu().levels().back();
  for (auto shape : std::vector<std::array<std::int64_t, 5>>{{3, 20, 100, 32, 24}, {2, 1, 300, 64, 64}, {5, 3, 77, 17, 9}, {1, 9, 2000, 16, 8}}) {
    attn<std::int8_t, std::int8_t, std::int8_t> c(r, shape[0], shape[1], shape[2], shape[3], shape[4], shape[1] == 3 ? 3 : 0);
    c.params.causal = shape[1] != 1;
    Tensor<std::int8_t> want = c.output();
    attention(scalar, c.params, c.q, c.k, c.v, c.mask_view(), want);
    for (int threads : {1, 2, 3, 4}) {
      const simd_backend be{level, threads};
      Tensor<std::int8_t> got = c.output(), one_shot = c.output();
      auto plan = make_attention_plan(be, c.params, c.q, c.k, c.v, c.mask_view(), got);
      CHECK(plan.threads() == threads);
      plan.run(c.q, c.k, c.v, c.mask_view(), got);
      attention(be, c.params, c.q, c.k, c.v, c.mask_view(), one_shot);
      INFO("threads " << threads << " H,S,T " << c.H << "," << c.S << "," << c.T);
      REQUIRE(values(got) == values(want));
      REQUIRE(values(one_shot) == values(want));
      poison(got);
      const long allocs = allocations_in([&] { plan.run(c.q, c.k, c.v, c.mask_view(), got); });
      if (kCountsAllocations) CHECK(allocs == 0);
      REQUIRE(values(got) == values(want));
    }
  }
}

TEST_CASE("one attention plan serves a decode loop over a growing kv_cache", "[plans][attention][decode]") {
  rng r(14);
  const std::int64_t H = 2, d = 16, dv = 12, capacity = 40;
  const Quant kq = Quant::per_tensor(0.04f, 3), vq = Quant::per_tensor(0.03f, -7), qq = Quant::per_tensor(0.05f, 1);
  Tensor<std::int8_t> k_all(Layout::row_major({H, capacity, d}), kq), v_all(Layout::row_major({H, capacity, dv}), vq);
  fill(k_all, r);
  fill(v_all, r);
  for (std::int64_t S : {1, 3}) {
    for (int threads : {1, 3}) {
      for (bool masked : {false, true}) {
        const simd_backend be = simd.with_threads(threads);
        kv_cache<std::int8_t> cache(H, capacity, d, dv, kq, vq);
        attention_params p;
        p.score = Quant::per_tensor(0.03f, -2);
        p.causal = S > 1;
        Tensor<std::int8_t> q(Layout::row_major({H, S, d}), qq), out(Layout::row_major({H, S, dv}), Quant::per_tensor(0.02f, 0));
        Tensor<std::int32_t> mask_full(Layout::row_major({capacity}));
        fill(mask_full, r, -300, 40);
        // The plan is made against the empty cache: it fixes heads, capacity, d and dv.
        const auto mask_at = [&](std::int64_t len) {
          return masked ? mask_full.cview().slice(0, 0, len) : TensorView<const std::int32_t>{};
        };
        auto plan = make_attention_plan(be, p, q, cache, mask_at(0), out);
        for (std::int64_t t = 0; t + S <= capacity; t += S) {
          cache.append(k_all.cview().slice(1, t, S), v_all.cview().slice(1, t, S));
          fill(q, r);
          Tensor<std::int8_t> want(out.layout(), out.quant()), one_shot(out.layout(), out.quant());
          attention(scalar, p, q, cache, mask_at(cache.length()), want);
          attention(be, p, q, cache, mask_at(cache.length()), one_shot);
          poison(out);
          const TensorView<const std::int32_t> mv = mask_at(cache.length());
          const long allocs = allocations_in([&] { plan.run(q, cache, mv, out); });
          INFO("S " << S << " threads " << threads << " masked " << masked << " length " << cache.length());
          if (kCountsAllocations) CHECK(allocs == 0);
          REQUIRE(values(out) == values(want));
          REQUIRE(values(one_shot) == values(want));
        }
      }
    }
  }
  // An int4 cache (its heads are unpacked into the plan's scratch).
  const Quant k4q = Quant::per_tensor(0.3f, 1), v4q = Quant::per_tensor(0.2f, -1);
  Tensor<int4> k4(Layout::row_major({H, capacity, d}), k4q), v4(Layout::row_major({H, capacity, dv}), v4q);
  fill(k4, r);
  fill(v4, r);
  kv_cache<int4> c4(H, capacity, d, dv, k4q, v4q);
  attention_params p;
  p.score = Quant::per_tensor(0.1f, 0);
  Tensor<std::int8_t> q(Layout::row_major({H, 1, d}), qq), out(Layout::row_major({H, 1, dv}), Quant::per_tensor(0.01f, 0));
  c4.append(k4.cview().slice(1, 0, 1), v4.cview().slice(1, 0, 1));
  auto plan = make_attention_plan(simd.with_threads(2), p, q, c4, no_mask, out);
  CHECK(plan.kernel_name().rfind("attention_decode_s4_rows_", 0) == 0);
  for (std::int64_t t = 1; t < capacity; ++t) {
    c4.append(k4.cview().slice(1, t, 1), v4.cview().slice(1, t, 1));
    fill(q, r);
    Tensor<std::int8_t> want(out.layout(), out.quant());
    attention(scalar, p, q, c4, no_mask, want);
    const long allocs = allocations_in([&] { plan.run(q, c4, no_mask, out); });
    if (kCountsAllocations) CHECK(allocs == 0);
    REQUIRE(values(out) == values(want));
  }
}

TEST_CASE("attention plans read strided views: column-strided K and V, a [S, H*d] projection", "[plans][attention][views]") {
  rng r(15);
  const std::int64_t S = 20, H = 3, d = 16;
  Tensor<std::int8_t> qkv(Layout::matrix(S, 3 * H * d), Quant::per_tensor(0.05f, 2));
  fill(qkv, r);
  auto head_view = [&](int which) {
    return TensorView<const std::int8_t>(qkv.data(), which * H * d, Layout::strided({H, S, d}, {d, 3 * H * d, 1}), qkv.quant(), qkv.size());
  };
  attention_params p;
  p.score = Quant::per_tensor(0.05f, 0);
  p.causal = true;
  Tensor<std::int8_t> want(Layout::strided({H, S, d}, {d, H * d, 1}), Quant::per_tensor(0.02f, 0)), got(want.layout(), want.quant());
  attention(scalar, p, head_view(0), head_view(1), head_view(2), no_mask, want);
  auto plan = make_attention_plan(simd.with_threads(2), p, head_view(0), head_view(1), head_view(2), no_mask, got);
  plan.run(head_view(0), head_view(1), head_view(2), no_mask, got);
  CHECK(values(got) == values(want));

  // K and V whose columns are not contiguous ([H, T, d] over a [H, d, T] buffer): copied head by
  // head into the plan's scratch, sized at creation.
  attn<std::int8_t, std::int8_t, std::int8_t> c(r, 2, 9, 30, 12, 10);
  Tensor<std::int8_t> kt(Layout::strided({2, 30, 12}, {360, 1, 30}), c.k.quant()), vt(Layout::strided({2, 30, 10}, {300, 1, 30}), c.v.quant());
  for (std::int64_t h = 0; h < 2; ++h)
    for (std::int64_t t = 0; t < 30; ++t) {
      for (std::int64_t i = 0; i < 12; ++i) kt.view().set(c.k.cview()(h, t, i), h, t, i);
      for (std::int64_t j = 0; j < 10; ++j) vt.view().set(c.v.cview()(h, t, j), h, t, j);
    }
  Tensor<std::int8_t> w2 = c.output(), g2 = c.output();
  attention(scalar, c.params, c.q, c.k, c.v, no_mask, w2);
  auto strided_plan = make_attention_plan(simd.with_threads(3), c.params, c.q, kt, vt, no_mask, g2);
  const long allocs = allocations_in([&] { strided_plan.run(c.q, kt, vt, no_mask, g2); });
  if (kCountsAllocations) CHECK(allocs == 0);
  CHECK(values(g2) == values(w2));
  // A plan made with contiguous K and V also takes the strided ones (its copy buffers grow once).
  auto plan2 = make_attention_plan(simd, c.params, c.q, c.k, c.v, no_mask, g2);
  poison(g2);
  plan2.run(c.q, kt, vt, no_mask, g2);
  CHECK(values(g2) == values(w2));
  poison(g2);
  plan2.run(c.q, c.k, c.v, no_mask, g2);
  CHECK(values(g2) == values(w2));
}

TEST_CASE("attention plans refuse bad runs with the operand named and nothing written", "[plans][attention][validation]") {
  rng r(16);
  attn<std::int8_t, std::int8_t, std::int8_t> c(r, 2, 4, 6, 8, 5);
  Tensor<std::int8_t> out = c.output();
  auto plan = make_attention_plan(simd, c.params, c.q, c.k, c.v, no_mask, out);
  auto expect = [&](const status& s, errc code, const char* fragment) {
    INFO(s.to_string());
    CHECK(s.code() == code);
    CHECK(s.message().find(fragment) != std::string::npos);
    CHECK(untouched(out));
  };
  poison(out);
  // Shapes.
  Tensor<std::int8_t> q_bad(Layout::row_major({2, 5, 8}), c.q.quant());
  expect(plan.try_run(q_bad, c.k, c.v, no_mask, out), errc::invalid_shape, "q: shape");
  Tensor<std::int8_t> k_bad(Layout::row_major({2, 7, 8}), c.k.quant());
  expect(plan.try_run(c.q, k_bad, c.v, no_mask, out), errc::invalid_shape, "k: shape");
  Tensor<std::int8_t> v_bad(Layout::row_major({2, 6, 4}), c.v.quant());
  expect(plan.try_run(c.q, c.k, v_bad, no_mask, out), errc::invalid_shape, "v: shape");
  Tensor<std::int8_t> out_bad(Layout::row_major({2, 4, 6}), out.quant());
  poison(out_bad);
  {
    const status s = plan.try_run(c.q, c.k, c.v, no_mask, out_bad);
    INFO(s.to_string());
    CHECK(s.code() == errc::invalid_shape);
    CHECK(s.message().find("output: shape") != std::string::npos);
    CHECK(untouched(out_bad));
  }
  // Quantization: every operand's, also after an accepted run on the same views.
  REQUIRE(plan.try_run(c.q, c.k, c.v, no_mask, out).ok());
  poison(out);
  for (int which = 0; which < 4; ++which) {
    Tensor<std::int8_t> q2(c.q.layout(), which == 0 ? Quant::per_tensor(0.06f, 0) : c.q.quant());
    Tensor<std::int8_t> k2(c.k.layout(), which == 1 ? Quant::per_tensor(0.04f, 100) : c.k.quant());
    Tensor<std::int8_t> v2(c.v.layout(), which == 2 ? Quant::per_tensor(0.5f, 0) : c.v.quant());
    Tensor<std::int8_t> o2(out.layout(), which == 3 ? Quant::per_tensor(0.02f, 6) : out.quant());
    poison(o2);
    const char* names[4] = {"q:", "k:", "v:", "output:"};
    const status s = plan.try_run(q2, k2, v2, no_mask, o2);
    INFO(s.to_string());
    CHECK(s.code() == errc::invalid_quantization);
    CHECK(s.message().rfind(names[which], 0) == 0);
    CHECK(untouched(o2));
  }
  Tensor<std::int8_t> q_same(c.q.layout(), c.q.quant());  // accepted, then its quantization changes in place
  std::memcpy(q_same.data(), c.q.data(), static_cast<std::size_t>(c.q.storage_bytes()));
  REQUIRE(plan.try_run(q_same, c.k, c.v, no_mask, out).ok());
  poison(out);
  q_same.set_quant(Quant::per_tensor(0.07f, 1));
  expect(plan.try_run(q_same, c.k, c.v, no_mask, out), errc::invalid_quantization, "q:");
  // Masks: a plan made with no_mask takes none, one made with a mask needs one that broadcasts.
  Tensor<std::int32_t> m(Layout::row_major({6}));
  expect(plan.try_run(c.q, c.k, c.v, m, out), errc::invalid_argument, "mask:");
  Tensor<std::int8_t> out_m = c.output();
  auto masked = make_attention_plan(simd, c.params, c.q, c.k, c.v, m, out_m);
  poison(out_m);
  const status no_m = masked.try_run(c.q, c.k, c.v, no_mask, out_m);
  CHECK(no_m.code() == errc::invalid_argument);
  CHECK(no_m.message().rfind("mask:", 0) == 0);
  Tensor<std::int32_t> m_bad(Layout::row_major({7}));
  const status bad_m = masked.try_run(c.q, c.k, c.v, m_bad, out_m);
  CHECK(bad_m.code() == errc::invalid_shape);
  CHECK(bad_m.message().rfind("mask: shape", 0) == 0);
  CHECK(untouched(out_m));
  // Output overlapping an input.
  const TensorView<std::int8_t> alias(c.q.data(), Layout::row_major({2, 4, 5}), out.quant());
  expect(plan.try_run(c.q, c.k, c.v, no_mask, alias), errc::aliasing, "overlaps");
  // A view plan does not take a cache, and a cache plan checks the cache.
  kv_cache<std::int8_t> cache(2, 6, 8, 5, c.k.quant(), c.v.quant());
  expect(plan.try_run(c.q, cache, no_mask, out), errc::invalid_argument, "cache:");
  auto cplan = make_attention_plan(simd, c.params, c.q, cache, no_mask, out);
  expect(cplan.try_run(c.q, c.k, c.v, no_mask, out), errc::invalid_argument, "k:");
  kv_cache<std::int8_t> other_capacity(2, 7, 8, 5, c.k.quant(), c.v.quant());
  expect(cplan.try_run(c.q, other_capacity, no_mask, out), errc::invalid_shape, "cache: heads 2, capacity 7");
  kv_cache<std::int8_t> other_quant(2, 6, 8, 5, Quant::per_tensor(0.5f, 0), c.v.quant());
  expect(cplan.try_run(c.q, other_quant, no_mask, out), errc::invalid_quantization, "cache: k");
  // An empty plan.
  attention_plan<std::int8_t, std::int8_t, std::int8_t> empty;
  expect(empty.try_run(c.q, c.k, c.v, no_mask, out), errc::invalid_argument, "empty plan");
  // Creation validates exactly like the one-shot call.
  attention_params no_score = c.params;
  no_score.score = Quant::none();
  Tensor<std::int8_t> k_bad_d(Layout::row_major({2, 6, 7}), c.k.quant());
  for (int which = 0; which < 2; ++which) {
    attention_plan<std::int8_t, std::int8_t, std::int8_t> p2;
    const attention_params& ap = which == 0 ? no_score : c.params;
    const Tensor<std::int8_t>& kk = which == 0 ? c.k : k_bad_d;
    const status made = try_make_attention_plan(simd, ap, c.q, kk, c.v, no_mask, out, &p2);
    const status one_shot = try_attention(simd, ap, c.q, kk, c.v, no_mask, out);
    INFO(made.to_string());
    CHECK(!made.ok());
    CHECK(made.code() == one_shot.code());
    CHECK(made.message() == one_shot.message());
    CHECK(p2.empty());
    CHECK(untouched(out));
  }
}
