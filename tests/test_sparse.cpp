// GEMM with sparse weights (2:4, block CSR, CSR): the scalar reference against the dense scalar
// GEMM on the decompressed weights, and the simd backend against the scalar reference at every
// ISA level this CPU supports (each forced in turn; the kernel name must say the level's own
// kernels ran), over edge shapes, deep K, every kind of profile including saturating
// accumulators, int8 and uint8 activations, packed and unpacked weights, and bad input.
#include "support/catch.hpp"
#include "support/levels.hpp"
#include "support/random.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <string>

#include <npuq/npuq.hpp>

using namespace npuq;
using npuq_test::edge_sizes;
using npuq_test::fill;
using npuq_test::random_scales;
using npuq_test::rng;
using npuq_test::values;

namespace {

const numerics_profile kProfiles[] = {
    numerics_profile::tflite(),
    numerics_profile::tosa_single(),
    numerics_profile::onnx(),
    numerics_profile::q31(rounding::half_even),
    numerics_profile::fp32(rounding::floor),
    numerics_profile::tflite().with_accumulator(24, overflow_rule::wrap),
    numerics_profile::onnx().with_accumulator(16, overflow_rule::wrap),
    // The order of additions matters for these: the simd backend runs the reference.
    numerics_profile::q31(rounding::half_up, {16, overflow_rule::saturate_each_add}),
    numerics_profile::fp32(rounding::half_even, {20, overflow_rule::saturate_at_end}),
    numerics_profile::q31(rounding::half_away, {40, overflow_rule::wrap}),
};

bool wraps32(const numerics_profile& p) { return p.acc.overflow == overflow_rule::wrap && p.acc.bits <= 32; }

using npuq_test::ends_with;

// The suffix of the sparse kernels the level's table lists.
std::string sparse_suffix(isa level) { return npuq_test::family_suffix(level, &level_table::sparse); }

enum class fmt { s24, s24_int4, bsr_1x4, bsr_4x1, bsr_16x4, bsr_3x5, csr };
const fmt kFormats[] = {fmt::s24, fmt::s24_int4, fmt::bsr_1x4, fmt::bsr_4x1, fmt::bsr_16x4, fmt::bsr_3x5, fmt::csr};

const char* fmt_name(fmt f) {
  switch (f) {
    case fmt::s24: return "2:4";
    case fmt::s24_int4: return "2:4 int4";
    case fmt::bsr_1x4: return "bsr 1x4";
    case fmt::bsr_4x1: return "bsr 4x1";
    case fmt::bsr_16x4: return "bsr 16x4";
    case fmt::bsr_3x5: return "bsr 3x5";
    case fmt::csr: return "csr";
  }
  return "?";
}
const char* fmt_op(fmt f) { return f == fmt::s24 || f == fmt::s24_int4 ? "gemm_sp24_" : f == fmt::csr ? "gemm_csr_" : "gemm_bsr_"; }

// Random [K, N] weights pruned to the format's pattern (zero point 0, per-channel scales).
Tensor<std::int8_t> sparse_dense_weights(rng& r, fmt f, std::int64_t K, std::int64_t N, int lo = -128, int hi = 127) {
  Tensor<std::int8_t> w(Layout::matrix(K, N), Quant::per_axis(1, random_scales(r, N)));
  if (f == fmt::s24_int4) lo = -8, hi = 7;
  fill(w, r, lo, hi);
  switch (f) {
    case fmt::s24:
    case fmt::s24_int4: throw_if_error(prune_2_4(w.view())); break;
    case fmt::bsr_1x4: throw_if_error(prune_blocks(w.view(), 1, 4, 0.6)); break;
    case fmt::bsr_4x1: throw_if_error(prune_blocks(w.view(), 4, 1, 0.6)); break;
    case fmt::bsr_16x4: throw_if_error(prune_blocks(w.view(), 16, 4, 0.6)); break;
    case fmt::bsr_3x5: throw_if_error(prune_blocks(w.view(), 3, 5, 0.5)); break;
    case fmt::csr:
      for (std::int64_t k = 0; k < K; ++k)
        for (std::int64_t n = 0; n < N; ++n)
          if (r.uniform(0, 9) < 7) w.view().set(0, k, n);
      break;
  }
  return w;
}

// Runs fn(sparse matrix) with w compressed into format f.
template <class Fn>
void with_format(fmt f, const Tensor<std::int8_t>& w, Fn&& fn) {
  switch (f) {
    case fmt::s24: {
      sparse_2_4_matrix<std::int8_t> s;
      throw_if_error(compress_2_4(w.cview(), &s));
      fn(s);
      return;
    }
    case fmt::s24_int4: {
      sparse_2_4_matrix<int4> s;
      throw_if_error(compress_2_4(w.cview(), &s));
      fn(s);
      return;
    }
    case fmt::csr: {
      csr_matrix s;
      throw_if_error(compress_csr(w.cview(), &s));
      fn(s);
      return;
    }
    default: {
      const std::int64_t bn = f == fmt::bsr_1x4 ? 1 : f == fmt::bsr_4x1 ? 4 : f == fmt::bsr_16x4 ? 16 : 3;
      const std::int64_t bk = f == fmt::bsr_1x4 ? 4 : f == fmt::bsr_4x1 ? 1 : f == fmt::bsr_16x4 ? 4 : 5;
      block_csr_matrix s;
      throw_if_error(compress_block_csr(w.cview(), bn, bk, &s));
      fn(s);
      return;
    }
  }
}

template <class O>
Quant out_quant() {
  if (std::is_same<O, std::int32_t>::value) return Quant::none();
  return Quant::per_tensor(0.05f, std::is_same<O, std::uint8_t>::value ? 128 : -3);
}

// Checks, for one format, shape, profile and types: scalar sparse == scalar dense on the
// decompressed weights; simd (unpacked and packed) == scalar at `level`, with the level's kernel.
template <class A, class O>
void check(rng& r, fmt f, isa level, std::int64_t M, std::int64_t N, std::int64_t K, const numerics_profile& prof, bool with_bias = true) {
  Tensor<A> a(Layout::matrix(M, K), Quant::per_tensor(0.02f, r.uniform(element_traits<A>::min, element_traits<A>::max)));
  fill(a, r);
  const Tensor<std::int8_t> w = sparse_dense_weights(r, f, K, N);
  Tensor<std::int32_t> bias(Layout::row_major({N}));
  fill(bias, r, -20000, 20000);
  gemm_params p;
  p.numerics = prof;
  if (!std::is_same<O, std::int32_t>::value) p.clamp = clamp_spec::relu();
  INFO(fmt_name(f) << " M=" << M << " N=" << N << " K=" << K << " level " << to_string(level) << " profile " << prof.describe());
  Tensor<O> dense(Layout::matrix(M, N), out_quant<O>());
  if (with_bias) REQUIRE(try_gemm(scalar, p, a, w, bias, dense).ok());
  else REQUIRE(try_gemm(scalar, p, a, w, no_bias, dense).ok());
  with_format(f, w, [&](const auto& s) {
    // The decompressed matrix is the pruned one.
    Tensor<std::int8_t> back(Layout::matrix(K, N), w.cview().quant());
    REQUIRE(decompress(s, back.view()).ok());
    REQUIRE(values(back) == values(w));

    Tensor<O> ref(Layout::matrix(M, N), out_quant<O>()), got(Layout::matrix(M, N), out_quant<O>());
    const status st = with_bias ? try_gemm(scalar, p, a, s, bias, ref) : try_gemm(scalar, p, a, s, no_bias, ref);
    INFO(st.message());
    REQUIRE(st.ok());
    REQUIRE(values(ref) == values(dense));

    const simd_backend be{level};
    REQUIRE(try_gemm(be, p, a, s, bias, got).ok());
    const std::string name = simd_last_kernel();
    INFO("ran " << name);
    if (with_bias) REQUIRE(values(got) == values(ref));
    if (wraps32(prof)) {
      REQUIRE(name.rfind(fmt_op(f), 0) == 0);
      REQUIRE(ends_with(name, sparse_suffix(level)));
    } else {
      REQUIRE(ends_with(name, "_reference"));
    }

    // Packed once, run at this level.
    using S = std::decay_t<decltype(s)>;
    using P = std::conditional_t<std::is_same<S, block_csr_matrix>::value || std::is_same<S, csr_matrix>::value,
                                 packed_sparse_pairs_weights, packed_sparse_2_4_weights>;
    P packed;
    REQUIRE(pack_gemm_weights(be, s, &packed).ok());
    Tensor<O> got2(Layout::matrix(M, N), out_quant<O>());
    const status sp = with_bias ? try_gemm(be, p, a, packed, bias, got2) : try_gemm(be, p, a, packed, no_bias, got2);
    if (wraps32(prof)) {
      REQUIRE(sp.ok());
      REQUIRE(ends_with(simd_last_kernel(), sparse_suffix(level)));
      REQUIRE(values(got2) == values(ref));
    } else {
      REQUIRE(sp.code() == errc::unsupported);
    }
  });
}

}  // namespace

TEST_CASE("sparse gemm: scalar equals dense on decompressed weights, simd equals scalar, edge shapes", "[sparse][gemm]") {
  rng r(501);
  const std::vector<std::int64_t> small = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  for (isa level : cpu().levels()) {
    for (fmt f : kFormats) {
      for (std::int64_t M : small)
        for (std::int64_t N : {1, 3, 8, 9, 16, 17})
          for (std::int64_t K : {1, 2, 3, 4, 5, 7, 8, 10}) check<std::int8_t, std::int8_t>(r, f, level, M, N, K, numerics_profile::tflite());
      for (std::int64_t s : edge_sizes()) {
        check<std::int8_t, std::int8_t>(r, f, level, s, 13, 37, numerics_profile::tflite());
        check<std::uint8_t, std::uint8_t>(r, f, level, 5, s, 29, numerics_profile::tosa_single());
        check<std::int8_t, std::int32_t>(r, f, level, 3, 11, s, numerics_profile::tflite());
      }
      check<std::int8_t, std::int8_t>(r, f, level, 33, 40, 127, numerics_profile::onnx());
      check<std::uint8_t, std::int8_t>(r, f, level, 70, 35, 256, numerics_profile::tflite());
      check<std::int8_t, std::uint8_t>(r, f, level, 37, 21, 1100, numerics_profile::tosa_single());  // several K blocks
    }
  }
}

TEST_CASE("sparse gemm: every profile, both activation types, with and without bias", "[sparse][gemm][numerics]") {
  rng r(502);
  for (isa level : cpu().levels())
    for (fmt f : kFormats)
      for (const auto& prof : kProfiles) {
        check<std::int8_t, std::int8_t>(r, f, level, 6, 19, 41, prof);
        check<std::uint8_t, std::uint8_t>(r, f, level, 9, 17, 64, prof);
        check<std::uint8_t, std::int8_t>(r, f, level, 1, 24, 33, prof, false);
        if (prof.acc.bits <= 32) check<std::int8_t, std::int32_t>(r, f, level, 4, 16, 65, prof);
      }
}

TEST_CASE("sparse gemm: saturate-each-add accumulators skip zeros without changing a partial sum", "[sparse][gemm][saturate]") {
  // Extreme values drive a 16-bit accumulator into saturation in both directions mid-row; the
  // dense reference adds the zero products too, the sparse one skips them: the same results.
  rng r(503);
  const numerics_profile prof = numerics_profile::tflite().with_accumulator(16, overflow_rule::saturate_each_add);
  const numerics_profile q = numerics_profile::q31(rounding::half_up, {12, overflow_rule::saturate_each_add});
  for (fmt f : kFormats)
    for (const auto& pr : {prof, q}) {
      const std::int64_t M = 4, N = 12, K = 96;
      Tensor<std::uint8_t> a(Layout::matrix(M, K), Quant::per_tensor(0.02f, 0));
      Tensor<std::int8_t> w = sparse_dense_weights(r, f, K, N);
      for (std::int64_t m = 0; m < M; ++m)
        for (std::int64_t k = 0; k < K; ++k) a.view().set(static_cast<std::uint8_t>(k < K / 2 ? 255 : 200 + m), m, k);
      // First half pushes up, second half pulls down.
      for (std::int64_t k = 0; k < K; ++k)
        for (std::int64_t n = 0; n < N; ++n) {
          const std::int8_t v = w.cview()(k, n);
          const int mag = std::min(v < 0 ? -v : v, f == fmt::s24_int4 ? 7 : 127);
          if (v != 0) w.view().set(static_cast<std::int8_t>(k < K / 2 ? mag : -mag), k, n);
        }
      gemm_params p;
      p.numerics = pr;
      Tensor<std::int8_t> dense(Layout::matrix(M, N), out_quant<std::int8_t>());
      REQUIRE(try_gemm(scalar, p, a, w, no_bias, dense).ok());
      // The data does saturate mid-row: saturating once at the end gives other results.
      gemm_params at_end = p;
      at_end.numerics = pr.with_accumulator(pr.acc.bits, overflow_rule::saturate_at_end);
      Tensor<std::int8_t> end(Layout::matrix(M, N), out_quant<std::int8_t>());
      REQUIRE(try_gemm(scalar, at_end, a, w, no_bias, end).ok());
      CHECK(values(end) != values(dense));
      with_format(f, w, [&](const auto& s) {
        Tensor<std::int8_t> got(Layout::matrix(M, N), out_quant<std::int8_t>()), got2(Layout::matrix(M, N), out_quant<std::int8_t>());
        REQUIRE(try_gemm(scalar, p, a, s, no_bias, got).ok());
        INFO(fmt_name(f) << " " << pr.describe());
        REQUIRE(values(got) == values(dense));
        REQUIRE(try_gemm(simd, p, a, s, no_bias, got2).ok());
        REQUIRE(ends_with(simd_last_kernel(), "_reference"));
        REQUIRE(values(got2) == values(dense));
      });
    }
}

TEST_CASE("sparse gemm: deep K where int32 sums wrap", "[sparse][gemm][deep]") {
  rng r(504);
  for (isa level : cpu().levels())
    for (fmt f : {fmt::s24, fmt::bsr_16x4, fmt::csr}) {
      // (255 - 0) * 127 summed over ~70000 kept entries passes 2^31.
      const std::int64_t M = 3, N = 9, K = 140000;
      Tensor<std::uint8_t> a(Layout::matrix(M, K), Quant::per_tensor(1.0f, 0));
      fill(a, r, 250, 255);
      Tensor<std::int8_t> w(Layout::matrix(K, N), Quant::per_tensor(1.0f));
      fill(w, r, 120, 127);
      if (f == fmt::s24) throw_if_error(prune_2_4(w.view()));
      else if (f == fmt::bsr_16x4) throw_if_error(prune_blocks(w.view(), 16, 4, 0.3));
      else
        for (std::int64_t k = 0; k < K; k += 3)
          for (std::int64_t n = 0; n < N; ++n) w.view().set(0, k, n);
      Tensor<std::int32_t> dense(Layout::matrix(M, N)), ref(Layout::matrix(M, N)), got(Layout::matrix(M, N));
      gemm(scalar, gemm_params{}, a, w, no_bias, dense);
      with_format(f, w, [&](const auto& s) {
        gemm(scalar, gemm_params{}, a, s, no_bias, ref);
        gemm(simd_backend{level}, gemm_params{}, a, s, no_bias, got);
        INFO(fmt_name(f) << " at " << to_string(level) << " ran " << simd_last_kernel());
        REQUIRE(ends_with(simd_last_kernel(), sparse_suffix(level)));
        REQUIRE(values(ref) == values(dense));
        REQUIRE(values(got) == values(ref));
      });
      bool wrapped = false;
      for (auto v : values(dense)) wrapped = wrapped || v < 0;
      CHECK(wrapped);
    }
}

TEST_CASE("sparse gemm: batched and strided activations and outputs", "[sparse][gemm][layout]") {
  rng r(505);
  for (isa level : cpu().levels())
    for (fmt f : kFormats) {
      const std::int64_t B = 3, M = 5, N = 18, K = 23;
      // A [B, M, K] stored as [B, K, M] (transposed rows); output [B, M, N] stored column-major per batch.
      Tensor<std::int8_t> astore(Layout::row_major({B, K, M}), Quant::per_tensor(0.03f, 7));
      fill(astore, r);
      const TensorView<const std::int8_t> a(astore.data(), Layout::strided({B, M, K}, {K * M, 1, M}), Quant::per_tensor(0.03f, 7));
      const Tensor<std::int8_t> w = sparse_dense_weights(r, f, K, N);
      gemm_params p;
      Tensor<std::int8_t> dense(Layout::row_major({B, M, N}), out_quant<std::int8_t>());
      REQUIRE(try_gemm(scalar, p, a, w, no_bias, dense).ok());
      with_format(f, w, [&](const auto& s) {
        Tensor<std::int8_t> ref(Layout::row_major({B, M, N}), out_quant<std::int8_t>());
        Tensor<std::int8_t> ostore(Layout::row_major({B, N, M}), out_quant<std::int8_t>());
        const TensorView<std::int8_t> got(ostore.data(), Layout::strided({B, M, N}, {N * M, 1, M}), out_quant<std::int8_t>());
        REQUIRE(try_gemm(scalar, p, a, s, no_bias, ref).ok());
        REQUIRE(values(ref) == values(dense));
        REQUIRE(try_gemm(simd_backend{level}, p, a, s, no_bias, got).ok());
        REQUIRE(values(got) == values(ref));
      });
    }
}

TEST_CASE("sparse 1x1 conv is a sparse GEMM on NHWC activations viewed as [pixels, C]", "[sparse][conv]") {
  rng r(506);
  const std::int64_t H = 5, W = 7, C = 24, OC = 20;
  Tensor<std::int8_t> in(Layout::nhwc(1, H, W, C), Quant::per_tensor(0.02f, -5));
  fill(in, r);
  // OHWI [OC, 1, 1, C] weights; their [K = C, N = OC] view is col_major(C, OC).
  Tensor<std::int8_t> wt(Layout::ohwi(OC, 1, 1, C), Quant::per_axis(0, random_scales(r, OC)));
  fill(wt, r);
  const TensorView<std::int8_t> wkn(wt.data(), Layout::col_major(C, OC), Quant::per_axis(1, wt.cview().quant().scales));
  throw_if_error(prune_2_4(wkn));
  Tensor<std::int32_t> bias(Layout::row_major({OC}));
  fill(bias, r, -1000, 1000);
  Tensor<std::int8_t> expect(Layout::nhwc(1, H, W, OC), Quant::per_tensor(0.1f, 2));
  conv2d(scalar, conv2d_params{}, in, wt, bias, expect);
  sparse_2_4_matrix<> s;
  throw_if_error(compress_2_4(TensorView<const std::int8_t>(wkn), &s));
  for (isa level : cpu().levels()) {
    Tensor<std::int8_t> out(Layout::nhwc(1, H, W, OC), Quant::per_tensor(0.1f, 2));
    const TensorView<const std::int8_t> a(in.data(), Layout::matrix(H * W, C), in.cview().quant());
    const TensorView<std::int8_t> o(out.data(), Layout::matrix(H * W, OC), out.cview().quant());
    gemm(simd_backend{level}, gemm_params{}, a, s, bias, o);
    REQUIRE(values(out) == values(expect));
  }
}

TEST_CASE("sparse gemm rejects bad input and writes nothing", "[sparse][gemm][validation]") {
  rng r(507);
  const std::int64_t M = 4, N = 8, K = 16;
  Tensor<std::int8_t> a(Layout::matrix(M, K), Quant::per_tensor(0.02f, 0));
  fill(a, r);
  const Tensor<std::int8_t> w = sparse_dense_weights(r, fmt::s24, K, N);
  sparse_2_4_matrix<> s;
  REQUIRE(compress_2_4(w.cview(), &s).ok());
  block_csr_matrix bs;
  REQUIRE(compress_block_csr(w.cview(), 1, 4, &bs).ok());
  Tensor<std::int8_t> out(Layout::matrix(M, N), out_quant<std::int8_t>());
  auto untouched = [&] {
    for (std::int64_t i = 0; i < M * N; ++i)
      if (out.data()[i] != 77) return false;
    return true;
  };
  auto expect_error = [&](const status& st, errc code, const std::string& prefix) {
    INFO(st.message());
    REQUIRE(!st.ok());
    REQUIRE(st.code() == code);
    REQUIRE(st.message().find(prefix) != std::string::npos);
    REQUIRE(untouched());
  };
  std::memset(out.data(), 77, static_cast<std::size_t>(M * N));
  for (auto be : {simd_backend{isa::portable}, simd}) {
    // K mismatch between a and the sparse matrix.
    Tensor<std::int8_t> a2(Layout::matrix(M, K + 4), Quant::per_tensor(0.02f, 0));
    expect_error(try_gemm(be, gemm_params{}, a2, s, no_bias, out), errc::invalid_shape, "b: sparse matrix is [16,8] with K = 16");
    expect_error(try_gemm(scalar, gemm_params{}, a2, bs, no_bias, out), errc::invalid_shape, "b: ");
    // Output shape.
    Tensor<std::int8_t> o2(Layout::matrix(M, N + 1), out_quant<std::int8_t>());
    expect_error(try_gemm(be, gemm_params{}, a, s, no_bias, o2), errc::invalid_shape, "output: shape");
    // Bias length.
    Tensor<std::int32_t> b2(Layout::row_major({N + 1}));
    expect_error(try_gemm(be, gemm_params{}, a, s, b2, out), errc::invalid_shape, "bias: ");
    // Weight zero point must be 0.
    sparse_2_4_matrix<> bad = s;
    bad.quant = Quant::per_tensor(0.01f, 3);
    expect_error(try_gemm(be, gemm_params{}, a, bad, no_bias, out), errc::invalid_quantization, "b: zero_point");
    // No scales for an int8 output.
    bad.quant = Quant::none();
    expect_error(try_gemm(be, gemm_params{}, a, bad, no_bias, out), errc::invalid_quantization, "b: scales are needed");
    // Activations per channel.
    Tensor<std::int8_t> a3(Layout::matrix(M, K), Quant::per_axis(1, random_scales(r, K)));
    expect_error(try_gemm(be, gemm_params{}, a3, s, no_bias, out), errc::invalid_quantization, "a: ");
    // Corrupted index byte.
    bad = s;
    bad.indices[5] = 0x05;  // idx0 = 1, idx1 = 1
    expect_error(try_gemm(be, gemm_params{}, a, bad, no_bias, out), errc::invalid_argument, "b: index byte 5 of column 1, group 1");
    // Corrupted block index.
    block_csr_matrix bb = bs;
    if (!bb.col_idx.empty()) bb.col_idx.back() = 1000;
    expect_error(try_gemm(be, gemm_params{}, a, bb, no_bias, out), errc::invalid_argument, "b: block column");
    // Output overlapping the activations, and the sparse values.
    const TensorView<std::int8_t> alias(a.data(), Layout::matrix(M, N), out_quant<std::int8_t>());
    const std::vector<std::int8_t> a_before(a.data(), a.data() + M * K);
    const status sa = try_gemm(be, gemm_params{}, a, s, no_bias, alias);
    REQUIRE(sa.code() == errc::aliasing);
    REQUIRE(std::vector<std::int8_t>(a.data(), a.data() + M * K) == a_before);
    block_csr_matrix big;
    Tensor<std::int8_t> wbig(Layout::matrix(K, 64), Quant::per_tensor(0.01f));
    fill(wbig, r, 1, 5);
    REQUIRE(compress_block_csr(wbig.cview(), 1, 4, &big).ok());
    Tensor<std::int8_t> a4(Layout::matrix(1, K), Quant::per_tensor(0.02f, 0));
    const TensorView<std::int8_t> into_values(big.values.data(), Layout::matrix(1, 64), out_quant<std::int8_t>());
    const auto before = big.values;
    const status sv = try_gemm(be, gemm_params{}, a4, big, no_bias, into_values);
    INFO(sv.message());
    REQUIRE(sv.code() == errc::aliasing);
    REQUIRE(big.values == before);
    // Clamp on an int32 output.
    Tensor<std::int32_t> o32(Layout::matrix(M, N));
    gemm_params pc;
    pc.clamp = clamp_spec::relu();
    REQUIRE(try_gemm(be, pc, a, s, no_bias, o32).code() == errc::unsupported);
  }
  // Packed weights: saturating profiles are refused, changed shapes are caught.
  packed_sparse_2_4_weights packed;
  REQUIRE(pack_gemm_weights(simd, s, &packed).ok());
  gemm_params sat;
  sat.numerics = numerics_profile::tflite().with_accumulator(20, overflow_rule::saturate_each_add);
  expect_error(try_gemm(simd, sat, a, packed, no_bias, out), errc::unsupported, "params: packed sparse weights");
  packed.K = 12;
  expect_error(try_gemm(simd, gemm_params{}, a, packed, no_bias, out), errc::invalid_argument, "b: K, N changed after packing");
  sparse_2_4_matrix<> broken = s;
  broken.indices.pop_back();
  REQUIRE(pack_gemm_weights(simd, broken, &packed).code() == errc::invalid_shape);
}

TEST_CASE("2:4 compression names the first offending group", "[sparse][format]") {
  Tensor<std::int8_t> w(Layout::matrix(12, 3), Quant::per_tensor(0.01f));
  for (std::int64_t k = 0; k < 12; ++k)
    for (std::int64_t n = 0; n < 3; ++n) w.view().set(static_cast<std::int8_t>(k % 4 < 2 ? 1 : 0), k, n);
  w.view().set(5, 6, 1);  // column 1, group 1 (k = 4..7) now has 3 nonzeros
  w.view().set(5, 10, 2);
  sparse_2_4_matrix<> s;
  const status st = compress_2_4(w.cview(), &s);
  INFO(st.message());
  REQUIRE(st.code() == errc::invalid_argument);
  REQUIRE(st.message().find("column n = 1, group g = 1 (k = 4..7) has 3 nonzeros") != std::string::npos);
  REQUIRE(s.K == 0);  // nothing written
}
