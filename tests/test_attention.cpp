// Attention: the reference against the unfused graph and its own properties, then every other
// path against the reference.
//
// 1. scalar attention == BatchMatMul -> (+ mask) -> Softmax -> BatchMatMul composed from npuq's
//    separately tested GEMM and softmax, head by head.
// 2. Removing keys (causal, mask <= -256) == attention on K and V without those keys; a query
//    with no visible key outputs the output zero point.
// 3. simd == scalar over edge shapes, masks, profiles, zero points, signedness, int4 K/V, both
//    exp variants, at every ISA level (the prefill GEMMs must run at the forced level).
// 4. Decoding with a growing kv_cache == the last row of causal prefill over the same prefix.
// 5. Bad input is rejected with a named argument and nothing written.
#include "support/levels.hpp"
#include "support/catch.hpp"

#include <array>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <npuq/npuq.hpp>

#include "support/random.hpp"

using namespace npuq;
using namespace npuq_test;

namespace {

const numerics_profile kProfiles[] = {
    numerics_profile::tflite(),
    numerics_profile::tosa_single(),
    numerics_profile::onnx(),
    numerics_profile::q31(rounding::half_even),
    numerics_profile::tflite().with_accumulator(24, overflow_rule::wrap),
    numerics_profile::tflite().with_accumulator(20, overflow_rule::saturate_each_add),
};

struct attn_case {
  std::int64_t H, S, T, d, dv;
  attention_params params;
  Tensor<std::int8_t> q, k, v;
  attn_case(rng& r, std::int64_t H_, std::int64_t S_, std::int64_t T_, std::int64_t d_, std::int64_t dv_)
      : H(H_), S(S_), T(T_), d(d_), dv(dv_),
        q(Layout::row_major({H_, S_, d_}), Quant::per_tensor(0.05f, r.uniform(-10, 10))),
        k(Layout::row_major({H_, T_, d_}), Quant::per_tensor(0.04f, r.uniform(-10, 10))),
        v(Layout::row_major({H_, T_, dv_}), Quant::per_tensor(0.03f, r.uniform(-128, 127))) {
    fill(q, r);
    fill(k, r);
    fill(v, r);
    // Scores of a few units: random Q K^T with d terms of ~+-100*100 at 0.05*0.04 per unit.
    params.score = Quant::per_tensor(0.002f * static_cast<float>(d_ > 8 ? d_ : 8), r.uniform(-20, 20));
  }
  Tensor<std::int8_t> output() const { return Tensor<std::int8_t>(Layout::row_major({H, S, dv}), Quant::per_tensor(0.02f, 5)); }
};

// The unfused graph for one head: scores = gemm(Q, K^T), + mask, softmax, gemm(P, V).
std::vector<std::int64_t> unfused(const attn_case& c, const Tensor<std::int32_t>* mask_st) {
  std::vector<std::int64_t> out;
  const softmax_params sm = softmax_params::tflite(static_cast<float>(1.0 / std::sqrt(double(c.d))), c.params.score.scale());
  for (std::int64_t h = 0; h < c.H; ++h) {
    const TensorView<const std::int8_t> qm(c.q.data(), h * c.S * c.d, Layout::matrix(c.S, c.d), c.q.quant(), -1);
    const TensorView<const std::int8_t> kt(c.k.data(), h * c.T * c.d, Layout::strided({c.d, c.T}, {1, c.d}), c.k.quant(), -1);
    const TensorView<const std::int8_t> vm(c.v.data(), h * c.T * c.dv, Layout::matrix(c.T, c.dv), c.v.quant(), -1);
    Tensor<std::int8_t> scores(Layout::matrix(c.S, c.T), c.params.score);
    gemm_params gp;
    gp.numerics = c.params.numerics;
    gemm(scalar, gp, qm, kt, no_bias, scores);
    if (mask_st != nullptr) {
      for (std::int64_t s = 0; s < c.S; ++s)
        for (std::int64_t t = 0; t < c.T; ++t) {
          const std::int64_t x = std::int64_t{scores.data()[s * c.T + t]} + mask_st->data()[s * c.T + t];
          scores.data()[s * c.T + t] = static_cast<std::int8_t>(std::max<std::int64_t>(-128, std::min<std::int64_t>(127, x)));
        }
    }
    Tensor<std::int8_t> prob(Layout::matrix(c.S, c.T), Quant::per_tensor(1.0f / 256, -128));
    softmax(scalar, sm, scores, prob);
    Tensor<std::int8_t> o(Layout::matrix(c.S, c.dv), Quant::per_tensor(0.02f, 5));
    gemm(scalar, gp, prob, vm, no_bias, o);
    for (std::int64_t i = 0; i < c.S * c.dv; ++i) out.push_back(o.data()[i]);
  }
  return out;
}

// The kernel that ran must be the one the forced level's table lists: prefill names the level's
// GEMM kernel, decode the level's decode family.
void require_level_ran(isa level) {
  const std::string name = simd_last_kernel();
  REQUIRE(name.rfind("attention_", 0) == 0);
  const bool decode = name.rfind("attention_decode", 0) == 0;
  npuq_test::require_family_ran(level, decode ? &level_table::decode : &level_table::gemm, "attention");
}

}  // namespace

TEST_CASE("reference attention equals the unfused GEMM -> softmax -> GEMM graph", "[attention][reference]") {
  rng r(1);
  for (const auto& prof : kProfiles) {
    for (auto shape : std::vector<std::array<std::int64_t, 5>>{{1, 1, 1, 1, 1}, {2, 3, 5, 4, 3}, {1, 9, 17, 16, 8}, {3, 4, 33, 64, 64}}) {
      attn_case c(r, shape[0], shape[1], shape[2], shape[3], shape[4]);
      c.params.numerics = prof;
      Tensor<std::int8_t> out = c.output();
      attention(scalar, c.params, c.q, c.k, c.v, no_mask, out);
      INFO("profile " << prof.describe() << " H,S,T,d,dv " << c.H << "," << c.S << "," << c.T << "," << c.d << "," << c.dv);
      CHECK(values(out.cview()) == unfused(c, nullptr));
      // A finite additive [S, T] mask (values that saturate but never remove a key).
      Tensor<std::int32_t> m(Layout::matrix(c.S, c.T));
      fill(m, r, -255, 255);
      attention(scalar, c.params, c.q, c.k, c.v, m, out);
      CHECK(values(out.cview()) == unfused(c, &m));
    }
  }
}

TEST_CASE("removed keys are the same as absent keys; a query that sees nothing outputs the zero point", "[attention][mask]") {
  rng r(2);
  for (int trial = 0; trial < 20; ++trial) {
    const std::int64_t S = r.uniform(1, 6), T = r.uniform(1, 40), d = r.uniform(1, 20);
    attn_case c(r, 1, S, T, d, 7);
    // Key padding mask [T] removing a random subset; the same attention on the kept keys.
    Tensor<std::int32_t> m(Layout::row_major({T}));
    std::vector<std::int64_t> kept;
    for (std::int64_t t = 0; t < T; ++t) {
      const bool drop = r.uniform(0, 3) == 0;
      m.data()[t] = drop ? (r.uniform(0, 1) ? attention_masked : -100000) : 0;
      if (!drop) kept.push_back(t);
    }
    Tensor<std::int8_t> out = c.output();
    attention(scalar, c.params, c.q, c.k, c.v, m, out);
    const auto n = static_cast<std::int64_t>(kept.size());
    if (n == 0) {
      CHECK(values(out.cview()) == std::vector<std::int64_t>(static_cast<std::size_t>(S * 7), 5));
      continue;
    }
    Tensor<std::int8_t> k2(Layout::row_major({1, n, d}), c.k.quant()), v2(Layout::row_major({1, n, 7}), c.v.quant());
    for (std::int64_t i = 0; i < n; ++i) {
      std::memcpy(k2.data() + i * d, c.k.data() + kept[static_cast<std::size_t>(i)] * d, static_cast<std::size_t>(d));
      std::memcpy(v2.data() + i * 7, c.v.data() + kept[static_cast<std::size_t>(i)] * 7, 7);
    }
    attention_params p2 = c.params;
    p2.beta = static_cast<float>(1.0 / std::sqrt(double(d)));
    Tensor<std::int8_t> out2 = c.output();
    attention(scalar, p2, c.q, k2, v2, no_mask, out2);
    CHECK(values(out.cview()) == values(out2.cview()));
  }
  // Causal: query s sees keys 0 .. s + T - S, i.e. non-causal attention on that prefix.
  for (auto st : std::vector<std::pair<int, int>>{{5, 5}, {3, 8}, {6, 4}, {1, 9}}) {
    attn_case c(r, 2, st.first, st.second, 8, 4);
    c.params.causal = true;
    Tensor<std::int8_t> out(Layout::row_major({2, c.S, 4}), Quant::per_tensor(0.02f, 5));
    attention(scalar, c.params, c.q, c.k, c.v, no_mask, out);
    for (std::int64_t h = 0; h < 2; ++h) {
      for (std::int64_t s = 0; s < c.S; ++s) {
        const std::int64_t vis = s + c.T - c.S + 1;
        Tensor<std::int8_t> o1(Layout::row_major({1, 4}), Quant::per_tensor(0.02f, 5));
        const auto qv = c.q.cview().slice(0, h, 1).slice(1, s, 1).with_layout(Layout::strided({1, 8}, {8, 1}));
        std::vector<std::int64_t> want(4, 5);
        if (vis > 0) {
          attention_params p1 = c.params;
          p1.causal = false;
          p1.beta = static_cast<float>(1.0 / std::sqrt(8.0));
          const auto kv = c.k.cview().slice(0, h, 1).slice(1, 0, vis).with_layout(Layout::strided({vis, 8}, {8, 1}));
          const auto vv = c.v.cview().slice(0, h, 1).slice(1, 0, vis).with_layout(Layout::strided({vis, 4}, {4, 1}));
          attention(scalar, p1, qv, kv, vv, no_mask, o1);
          want = values(o1.cview());
        }
        std::vector<std::int64_t> got;
        for (std::int64_t j = 0; j < 4; ++j) got.push_back(out.data()[(h * c.S + s) * 4 + j]);
        INFO("S " << c.S << " T " << c.T << " h " << h << " s " << s);
        CHECK(got == want);
      }
    }
  }
}

namespace {

template <class KV>
void check_simd(rng& r, isa level, std::int64_t H, std::int64_t S, std::int64_t T, std::int64_t d, std::int64_t dv,
                const numerics_profile& prof, int mask_kind, bool causal, softmax_exp exp, std::set<std::string>* kernels) {
  attn_case c(r, H, S, T, d, dv);
  c.params.numerics = prof;
  c.params.causal = causal;
  c.params.exp = exp;
  // K and V in the cache type: int4 tensors hold values in [-8, 7].
  Tensor<KV> k(c.k.layout(), c.k.quant()), v(c.v.layout(), c.v.quant());
  if (std::is_same<KV, int4>::value) {
    k = Tensor<KV>(c.k.layout(), Quant::per_tensor(0.3f, r.uniform(-3, 3)));
    v = Tensor<KV>(c.v.layout(), Quant::per_tensor(0.2f, r.uniform(-8, 7)));
  }
  if (std::is_same<KV, std::uint8_t>::value) {
    k = Tensor<KV>(c.k.layout(), Quant::per_tensor(0.04f, r.uniform(100, 150)));
    v = Tensor<KV>(c.v.layout(), Quant::per_tensor(0.03f, r.uniform(0, 255)));
  }
  fill(k, r);
  fill(v, r);
  Tensor<std::int32_t> mask;
  TensorView<const std::int32_t> mv;
  if (mask_kind == 1) mask = Tensor<std::int32_t>(Layout::row_major({T}));
  if (mask_kind == 2) mask = Tensor<std::int32_t>(Layout::row_major({S, T}));
  if (mask_kind == 3) mask = Tensor<std::int32_t>(Layout::row_major({H, 1, T}));
  if (mask_kind != 0) {
    fill(mask, r, -300, 60);
    mv = mask.cview();
  }
  Tensor<std::int8_t> want = c.output(), got = c.output();
  const status ok = try_attention(scalar, c.params, c.q, k, v, mv, want);
  INFO(ok.to_string());
  REQUIRE(ok.ok());
  REQUIRE(try_attention(simd_backend{level}, c.params, c.q, k, v, mv, got).ok());
  if (kernels != nullptr) kernels->insert(simd_last_kernel());
  INFO("level " << to_string(level) << " kernel " << simd_last_kernel() << " H,S,T,d,dv " << H << "," << S << "," << T << "," << d << ","
                << dv << " profile " << prof.describe() << " mask " << mask_kind << " causal " << causal);
  REQUIRE(values(got.cview()) == values(want.cview()));
}

}  // namespace

TEST_CASE("simd attention equals scalar at every ISA level over edge shapes", "[attention][simd]") {
  rng r(3);
  for (isa level : cpu().levels()) {
    std::set<std::string> kernels;
    for (std::int64_t S : {1, 2, 7, 8, 9, 16, 63, 64, 65}) {
      for (std::int64_t T : {1, 3, 8, 17, 64, 513}) {
        for (std::int64_t d : {1, 5, 16, 64}) {
          const bool causal = (S + T + d) % 2 == 0;
          check_simd<std::int8_t>(r, level, S % 3 == 0 ? 2 : 1, S, T, d, d == 1 ? 3 : d, numerics_profile::tflite(), int((S + T) % 4),
                                  causal, softmax_exp::table, &kernels);
          require_level_ran(level);  // prefill (S >= 8) and decode kernels both belong to the level
        }
      }
    }
    CHECK(kernels.size() == 2);  // the prefill kernel of this level and the decode kernel
  }
}

TEST_CASE("simd attention equals scalar for every profile, mask, exp variant and K/V type", "[attention][simd][numerics]") {
  rng r(4);
  const isa level = cpu().levels().back();
  for (const auto& prof : kProfiles) {
    for (int mask_kind = 0; mask_kind < 4; ++mask_kind) {
      for (std::int64_t S : {1, 12}) {
        check_simd<std::int8_t>(r, level, 2, S, 40, 24, 16, prof, mask_kind, mask_kind % 2 == 0, softmax_exp::fixed_point, nullptr);
        check_simd<std::uint8_t>(r, level, 1, S, 33, 8, 8, prof, mask_kind, false, softmax_exp::table, nullptr);
        check_simd<int4>(r, level, 2, S, 19, 16, 9, prof, mask_kind, true, softmax_exp::table, nullptr);
      }
    }
  }
  // Long sequences: several key tiles and query blocks, causal and not.
  check_simd<std::int8_t>(r, level, 1, 130, 1100, 64, 64, numerics_profile::tflite(), 0, true, softmax_exp::table, nullptr);
  check_simd<std::int8_t>(r, level, 1, 70, 1030, 32, 16, numerics_profile::onnx(), 1, false, softmax_exp::table, nullptr);
}

TEST_CASE("attention reads strided multi-head views of a [S, H*d] projection", "[attention][views]") {
  rng r(5);
  const std::int64_t S = 20, H = 3, d = 16;
  Tensor<std::int8_t> qkv(Layout::matrix(S, 3 * H * d), Quant::per_tensor(0.05f, 2));  // [S, (q|k|v) x H x d]
  fill(qkv, r);
  auto head_view = [&](int which) {
    return TensorView<const std::int8_t>(qkv.data(), which * H * d, Layout::strided({H, S, d}, {d, 3 * H * d, 1}), qkv.quant(), qkv.size());
  };
  Tensor<std::int8_t> out(Layout::strided({H, S, d}, {d, H * d, 1}), Quant::per_tensor(0.02f, 0));  // [S, H*d] storage
  Tensor<std::int8_t> out_simd(Layout::strided({H, S, d}, {d, H * d, 1}), Quant::per_tensor(0.02f, 0));
  attention_params p;
  p.score = Quant::per_tensor(0.05f, 0);
  p.causal = true;
  attention(scalar, p, head_view(0), head_view(1), head_view(2), no_mask, out);
  attention(simd, p, head_view(0), head_view(1), head_view(2), no_mask, out_simd);
  CHECK(values(out_simd.cview()) == values(out.cview()));
  // Head 1 equals the same attention on contiguous copies.
  Tensor<std::int8_t> q1(Layout::matrix(S, d), qkv.quant()), k1(Layout::matrix(S, d), qkv.quant()), v1(Layout::matrix(S, d), qkv.quant());
  for (std::int64_t s = 0; s < S; ++s)
    for (std::int64_t i = 0; i < d; ++i) {
      q1.data()[s * d + i] = qkv.data()[s * 3 * H * d + 0 * H * d + d + i];
      k1.data()[s * d + i] = qkv.data()[s * 3 * H * d + 1 * H * d + d + i];
      v1.data()[s * d + i] = qkv.data()[s * 3 * H * d + 2 * H * d + d + i];
    }
  Tensor<std::int8_t> o1(Layout::matrix(S, d), Quant::per_tensor(0.02f, 0));
  attention(scalar, p, q1, k1, v1, no_mask, o1);
  for (std::int64_t s = 0; s < S; ++s)
    for (std::int64_t i = 0; i < d; ++i) CHECK(o1.data()[s * d + i] == out.data()[s * H * d + d + i]);
}

TEST_CASE("decoding against a growing kv_cache equals the last row of causal prefill", "[attention][decode]") {
  rng r(6);
  const std::int64_t H = 2, d = 16, steps = 40;
  const Quant kq = Quant::per_tensor(0.04f, 3), vq = Quant::per_tensor(0.03f, -7), qq = Quant::per_tensor(0.05f, 1);
  Tensor<std::int8_t> q_all(Layout::row_major({H, steps, d}), qq), k_all(Layout::row_major({H, steps, d}), kq),
      v_all(Layout::row_major({H, steps, d}), vq);
  fill(q_all, r);
  fill(k_all, r);
  fill(v_all, r);
  kv_cache<std::int8_t> cache(H, steps, d, d, kq, vq);
  attention_params p;
  p.score = Quant::per_tensor(0.03f, -2);
  for (std::int64_t t = 0; t < steps; ++t) {
    cache.append(k_all.cview().slice(1, t, 1), v_all.cview().slice(1, t, 1));
    REQUIRE(cache.length() == t + 1);
    const auto q_t = q_all.cview().slice(1, t, 1);
    Tensor<std::int8_t> dec(Layout::row_major({H, 1, d}), Quant::per_tensor(0.02f, 0)), dec_scalar(Layout::row_major({H, 1, d}), Quant::per_tensor(0.02f, 0));
    attention(simd, p, q_t, cache, no_mask, dec);
    CHECK(simd_last_kernel().rfind("attention_decode_s8_rows_", 0) == 0);
    attention(scalar, p, q_t, cache, no_mask, dec_scalar);
    CHECK(values(dec.cview()) == values(dec_scalar.cview()));
    if (t % 13 == 0 || t == steps - 1) {
      attention_params pc = p;
      pc.causal = true;
      const std::int64_t L = t + 1;
      Tensor<std::int8_t> pre(Layout::row_major({H, L, d}), Quant::per_tensor(0.02f, 0));
      attention(simd, pc, q_all.cview().slice(1, 0, L), k_all.cview().slice(1, 0, L), v_all.cview().slice(1, 0, L), no_mask, pre);
      CHECK(values(dec.cview()) == values(pre.cview().slice(1, t, 1)));
    }
  }
  const status full = cache.try_append(k_all.cview().slice(1, 0, 1), v_all.cview().slice(1, 0, 1));
  CHECK(full.code() == errc::buffer_too_small);
  CHECK(full.message().find("capacity") != std::string::npos);
}

TEST_CASE("an int4 kv_cache gives the int8 cache's results for the same values", "[attention][decode][int4]") {
  rng r(7);
  const std::int64_t H = 3, d = 32, T = 50;
  const Quant kq = Quant::per_tensor(0.3f, 0), vq = Quant::per_tensor(0.2f, -1);
  Tensor<int4> k4(Layout::row_major({H, T, d}), kq), v4(Layout::row_major({H, T, d}), vq);
  fill(k4, r);
  fill(v4, r);
  Tensor<std::int8_t> k8(Layout::row_major({H, T, d}), kq), v8(Layout::row_major({H, T, d}), vq);
  for (std::int64_t i = 0; i < H * T * d; ++i) {
    k8.data()[i] = static_cast<std::int8_t>(k4.cview().load(i));
    v8.data()[i] = static_cast<std::int8_t>(v4.cview().load(i));
  }
  kv_cache<int4> c4(H, T, d, d, kq, vq);
  kv_cache<std::int8_t> c8(H, T, d, d, kq, vq);
  c4.append(k4.cview().slice(1, 0, 20), v4.cview().slice(1, 0, 20));
  c4.append(k4.cview().slice(1, 20, 30), v4.cview().slice(1, 20, 30));
  c8.append(k8, v8);
  Tensor<std::int8_t> q(Layout::row_major({H, 1, d}), Quant::per_tensor(0.05f, 0));
  fill(q, r);
  attention_params p;
  p.score = Quant::per_tensor(0.1f, 0);
  Tensor<std::int8_t> o4(Layout::row_major({H, 1, d}), Quant::per_tensor(0.01f, 0)), o8(Layout::row_major({H, 1, d}), Quant::per_tensor(0.01f, 0));
  attention(simd, p, q, c4, no_mask, o4);
  CHECK(simd_last_kernel().rfind("attention_decode_s4_rows_", 0) == 0);
  attention(simd, p, q, c8, no_mask, o8);
  CHECK(values(o4.cview()) == values(o8.cview()));
  Tensor<std::int8_t> o4s(Layout::row_major({H, 1, d}), Quant::per_tensor(0.01f, 0));
  attention(scalar, p, q, c4, no_mask, o4s);
  CHECK(values(o4s.cview()) == values(o8.cview()));
}

TEST_CASE("attention rejects bad shapes, masks, quantization and caches without writing", "[attention][validation]") {
  rng r(8);
  attn_case c(r, 2, 4, 6, 8, 5);
  Tensor<std::int8_t> out = c.output();
  auto run = [&](const attention_params& p, const auto& q, const auto& k, const auto& v, const auto& m, const auto& o) {
    std::memset(static_cast<void*>(o.data()), 0x5A, static_cast<std::size_t>(o.storage_bytes()));
    const status s = try_attention(scalar, p, q, k, v, m, o);
    const auto* b = reinterpret_cast<const unsigned char*>(o.data());
    for (std::int64_t i = 0; i < o.storage_bytes(); ++i) REQUIRE(b[i] == 0x5A);
    INFO(s.to_string());
    return s;
  };
  auto expect = [](const status& s, errc code, const char* fragment) {
    INFO(s.to_string());
    CHECK(s.code() == code);
    CHECK(s.message().find(fragment) != std::string::npos);
  };
  REQUIRE(try_attention(scalar, c.params, c.q, c.k, c.v, no_mask, out).ok());
  attention_params no_score = c.params;
  no_score.score = Quant::none();
  expect(run(no_score, c.q, c.k, c.v, no_mask, out), errc::invalid_quantization, "score");
  Tensor<std::int8_t> k_bad_d(Layout::row_major({2, 6, 7}), c.k.quant());
  expect(run(c.params, c.q, k_bad_d, c.v, no_mask, out), errc::invalid_shape, "k:");
  Tensor<std::int8_t> v_bad_t(Layout::row_major({2, 5, 5}), c.v.quant());
  expect(run(c.params, c.q, c.k, v_bad_t, no_mask, out), errc::invalid_shape, "v:");
  Tensor<std::int8_t> k_bad_h(Layout::row_major({3, 6, 8}), c.k.quant());
  expect(run(c.params, c.q, k_bad_h, c.v, no_mask, out), errc::invalid_shape, "k:");
  Tensor<std::int8_t> out_bad(Layout::row_major({2, 4, 6}), Quant::per_tensor(0.02f, 5));
  expect(run(c.params, c.q, c.k, c.v, no_mask, out_bad), errc::invalid_shape, "output");
  Tensor<std::int8_t> q_rank4(Layout::row_major({1, 2, 4, 8}), c.q.quant());
  expect(run(c.params, q_rank4, c.k, c.v, no_mask, out), errc::invalid_shape, "q: rank");
  Tensor<std::int8_t> k_axis(Layout::row_major({2, 6, 8}), Quant::per_axis(2, std::vector<float>(8, 0.1f)));
  expect(run(c.params, c.q, k_axis, c.v, no_mask, out), errc::invalid_quantization, "per-tensor");
  Tensor<std::int8_t> v_none(Layout::row_major({2, 6, 5}));
  expect(run(c.params, c.q, c.k, v_none, no_mask, out), errc::invalid_quantization, "v");
  Tensor<std::int32_t> mask_bad(Layout::row_major({4, 7}));
  expect(run(c.params, c.q, c.k, c.v, mask_bad, out), errc::invalid_shape, "mask");
  Tensor<std::int32_t> mask_rank4(Layout::row_major({1, 2, 4, 6}));
  expect(run(c.params, c.q, c.k, c.v, mask_rank4, out), errc::invalid_shape, "mask: rank");
  Tensor<std::int32_t> mask_ok(Layout::row_major({2, 1, 6}));
  CHECK(try_attention(scalar, c.params, c.q, c.k, c.v, mask_ok, out).ok());
  attention_params bad_beta = c.params;
  bad_beta.beta = -1.0f;
  expect(run(bad_beta, c.q, c.k, c.v, no_mask, out), errc::invalid_argument, "beta");
  attention_params bad_triple = c.params;
  bad_triple.softmax = softmax_params::from_triple(5, 0, 0);
  expect(run(bad_triple, c.q, c.k, c.v, no_mask, out), errc::invalid_argument, "multiplier");
  attention_params bad_prob = c.params;
  bad_prob.probabilities = dtype::s32;
  expect(run(bad_prob, c.q, c.k, c.v, no_mask, out), errc::invalid_dtype, "probabilities");
  // Output aliasing an input.
  {
    attn_case a(r, 1, 4, 4, 4, 4);
    const TensorView<std::int8_t> alias(a.q.data(), Layout::row_major({1, 4, 4}), Quant::per_tensor(0.02f, 0));
    expect(try_attention(scalar, a.params, a.q, a.k, a.v, no_mask, alias), errc::aliasing, "overlaps");
  }
  // Caches: wrong quantization, shape, and the throwing form.
  kv_cache<std::int8_t> cache(2, 3, 8, 5, c.k.quant(), c.v.quant());
  Tensor<std::int8_t> kn(Layout::row_major({2, 1, 8}), Quant::per_tensor(0.5f, 0)), vn(Layout::row_major({2, 1, 5}), c.v.quant());
  expect(cache.try_append(kn, vn), errc::invalid_quantization, "k");
  Tensor<std::int8_t> kn2(Layout::row_major({2, 1, 9}), c.k.quant());
  expect(cache.try_append(kn2, vn), errc::invalid_shape, "k has shape");
  CHECK(cache.length() == 0);
  CHECK_THROWS_AS(kv_cache<std::int8_t>(1, 4, 4, 4, Quant::none(), c.v.quant()), npuq::error);
}
