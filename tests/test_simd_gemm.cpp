// The simd backend's GEMM and conv2d against the scalar reference, bit for bit, at every ISA
// level this CPU supports (each forced in turn), over edge shapes, deep K, every numerics
// profile, both signednesses, per-channel zero points, batches and strided views. A level the
// CPU supports but whose kernel did not run (the name says which ran) fails the test: under
// `qemu-aarch64 -cpu max` that is neon, neon_dotprod and neon_i8mm, each with its own kernels.
#include "support/catch.hpp"
#include "support/levels.hpp"
#include "support/random.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include <sys/mman.h>  // guarded: operands that end at a page no one may read
#include <unistd.h>

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

#include <npuq/npuq.hpp>

using namespace npuq;
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
    numerics_profile::fp32(rounding::floor),
    numerics_profile::q31(rounding::half_away, {20, overflow_rule::wrap}),
    numerics_profile::tflite().with_accumulator(24, overflow_rule::wrap),
    numerics_profile::onnx().with_accumulator(16, overflow_rule::wrap),
    numerics_profile::tosa_single().with_accumulator(18, overflow_rule::wrap),
};

// The kernel that ran must belong to the forced level.
// GEMM kernel families are named like their level: every level has GEMM kernels of its own.
void require_level_ran(isa level, const char* op) {
  npuq_test::require_family_ran(level, &level_table::gemm, op);
  REQUIRE(npuq_test::ends_with(simd_last_kernel(), std::string("_") + to_string(level)));
}

template <class A, class B, class O>
void check_gemm(rng& r, isa level, std::int64_t M, std::int64_t N, std::int64_t K, const numerics_profile& prof) {
  const int a_lo = element_traits<A>::min, a_hi = element_traits<A>::max;
  Tensor<A> a(Layout::matrix(M, K), Quant::per_tensor(0.02f, r.uniform(a_lo, a_hi)));
  Quant bq = std::is_same<B, std::uint8_t>::value
                 ? Quant::per_axis(1, random_scales(r, N), random_zero_points(r, N, 0, 255))
                 : Quant::per_axis(1, random_scales(r, N));
  Tensor<B> b(Layout::matrix(K, N), bq);
  Tensor<std::int32_t> bias(Layout::row_major({N}));
  fill(a, r);
  fill(b, r);
  fill(bias, r, -20000, 20000);
  Quant oq = std::is_same<O, std::int32_t>::value ? Quant::none() : Quant::per_tensor(0.05f, std::is_same<O, std::uint8_t>::value ? 128 : -3);
  Tensor<O> expect(Layout::matrix(M, N), oq), got(Layout::matrix(M, N), oq);
  gemm_params p;
  p.numerics = prof;
  if (!std::is_same<O, std::int32_t>::value) p.clamp = clamp_spec::relu();
  REQUIRE(try_gemm(scalar, p, a, b, bias, expect).ok());
  REQUIRE(try_gemm(simd_backend{level}, p, a, b, bias, got).ok());
  require_level_ran(level, "gemm");
  INFO("M=" << M << " N=" << N << " K=" << K << " profile " << prof.describe());
  REQUIRE(values(got) == values(expect));
}

}  // namespace

TEST_CASE("simd gemm equals scalar at every ISA level over edge shapes", "[simd][gemm]") {
  rng r(11);
  std::set<std::string> kernels;
  for (isa level : cpu().levels()) {
    for (std::int64_t M : {1, 2, 3, 4, 5, 7, 8, 9}) {
      for (std::int64_t N : {1, 3, 8, 15, 16, 17, 31, 33}) {
        for (std::int64_t K : {1, 2, 3, 7, 8, 16, 31, 64, 65}) {
          check_gemm<std::int8_t, std::int8_t, std::int8_t>(r, level, M, N, K, numerics_profile::tflite());
          kernels.insert(simd_last_kernel());
        }
      }
    }
  }
  CHECK(kernels.size() == cpu().levels().size());
}

TEST_CASE("simd gemm equals scalar for every profile, signedness and output type", "[simd][gemm][numerics]") {
  rng r(12);
  for (isa level : cpu().levels()) {
    for (const auto& prof : kProfiles) {
      for (std::int64_t M : {1, 6, 13}) {
        const std::int64_t N = 19, K = 41;
        check_gemm<std::int8_t, std::int8_t, std::int8_t>(r, level, M, N, K, prof);
        check_gemm<std::uint8_t, std::int8_t, std::uint8_t>(r, level, M, N, K, prof);
        check_gemm<std::int8_t, std::uint8_t, std::int8_t>(r, level, M, N, K, prof);
        check_gemm<std::uint8_t, std::uint8_t, std::uint8_t>(r, level, M, N, K, prof);
      }
    }
    check_gemm<std::uint8_t, std::int8_t, std::int32_t>(r, level, 5, 33, 77, numerics_profile::tflite());
    check_gemm<std::int8_t, std::uint8_t, std::int32_t>(r, level, 9, 16, 128, numerics_profile::onnx());
  }
}

TEST_CASE("simd gemm is exact for deep K where int32 sums wrap", "[simd][gemm][deep]") {
  rng r(13);
  for (isa level : cpu().levels()) {
    // Extreme values: (255 - 0) * (255 - 0) summed 40000 times passes 2^31.
    const std::int64_t M = 3, N = 18, K = 40000;
    Tensor<std::uint8_t> a(Layout::matrix(M, K), Quant::per_tensor(1.0f, 0));
    Tensor<std::uint8_t> b(Layout::matrix(K, N), Quant::per_tensor(1.0f, 0));
    fill(a, r, 250, 255);
    fill(b, r, 250, 255);
    Tensor<std::int32_t> expect(Layout::matrix(M, N)), got(Layout::matrix(M, N));
    gemm(scalar, gemm_params{}, a, b, no_bias, expect);
    gemm(simd_backend{level}, gemm_params{}, a, b, no_bias, got);
    require_level_ran(level, "gemm");
    REQUIRE(values(got) == values(expect));
    for (std::int64_t k : {std::int64_t{4095}, std::int64_t{4096}, std::int64_t{4097}}) {
      check_gemm<std::int8_t, std::int8_t, std::int8_t>(r, level, 2, 40, k, numerics_profile::tflite());
    }
  }
}

TEST_CASE("simd gemm handles batches, shared and batched B, and strided views", "[simd][gemm][layout]") {
  rng r(14);
  for (isa level : cpu().levels()) {
    Tensor<std::int8_t> a(Layout::row_major({2, 3, 5, 11}), Quant::per_tensor(0.03f, 4));
    Tensor<std::int8_t> bshared(Layout::matrix(11, 9), Quant::per_tensor(0.01f, 0));
    Tensor<std::int8_t> bbatched(Layout::row_major({2, 3, 11, 9}), Quant::per_tensor(0.01f, 0));
    fill(a, r);
    fill(bshared, r);
    fill(bbatched, r);
    for (const Tensor<std::int8_t>* b : {&bshared, &bbatched}) {
      Tensor<std::int8_t> e(Layout::row_major({2, 3, 5, 9}), Quant::per_tensor(0.1f, 0)), g(Layout::row_major({2, 3, 5, 9}), Quant::per_tensor(0.1f, 0));
      gemm(scalar, gemm_params{}, a, *b, no_bias, e);
      gemm(simd_backend{level}, gemm_params{}, a, *b, no_bias, g);
      REQUIRE(values(g) == values(e));
    }
    // B stored [N, K] (column-major view), A transposed view, output written with a row stride.
    Tensor<std::int8_t> bnk(Layout::matrix(9, 11));
    Tensor<std::int8_t> akm(Layout::matrix(11, 5));
    fill(bnk, r);
    fill(akm, r);
    TensorView<const std::int8_t> bt(bnk.data(), Layout::col_major(11, 9), Quant::per_tensor(0.01f, 0));
    TensorView<const std::int8_t> at(akm.data(), Layout::col_major(5, 11), Quant::per_tensor(0.02f, -1));
    Tensor<std::int8_t> big_e(Layout::matrix(5, 20)), big_g(Layout::matrix(5, 20));
    TensorView<std::int8_t> oe(big_e.data(), Layout::strided({5, 9}, {20, 1}), Quant::per_tensor(0.1f, 2));
    TensorView<std::int8_t> og(big_g.data(), Layout::strided({5, 9}, {20, 1}), Quant::per_tensor(0.1f, 2));
    gemm(scalar, gemm_params{}, at, bt, no_bias, oe);
    gemm(simd_backend{level}, gemm_params{}, at, bt, no_bias, og);
    REQUIRE(values(big_g) == values(big_e));
  }
}

TEST_CASE("packed weights are reusable and validated like unpacked ones", "[simd][gemm][pack]") {
  rng r(15);
  Tensor<std::int8_t> b(Layout::matrix(50, 21), Quant::per_axis(1, random_scales(r, 21)));
  fill(b, r);
  packed_gemm_weights<std::int8_t> packed;
  REQUIRE(pack_gemm_weights(simd, b, &packed).ok());
  CHECK(packed.format() == pack_format_for(simd.level()));
  // bytes unchanged, K padded to KR (and c4 panels to whole 16-group AMX steps)
  CHECK(packed.panel_groups() == (packed.format() == gemm_pack_format::c4 ? 16 : packed.k_groups()));
  CHECK(packed.packed_bytes() == 2 * packed.panel_groups() * packed.kr() * 16);
  CHECK(packed.k_groups() * packed.kr() >= 50);
  CHECK(packed.k_groups() * packed.kr() < 50 + packed.kr());
  for (isa level : cpu().levels()) {
    for (std::int64_t M : {1, 4, 10}) {
      Tensor<std::int8_t> a(Layout::matrix(M, 50), Quant::per_tensor(0.02f, 7));
      fill(a, r);
      Tensor<std::int8_t> e(Layout::matrix(M, 21), Quant::per_tensor(0.04f, -5)), g(Layout::matrix(M, 21), Quant::per_tensor(0.04f, -5));
      gemm(scalar, gemm_params{}, a, b, no_bias, e);
      gemm(simd_backend{level}, gemm_params{}, a, packed, no_bias, g);
      require_level_ran(level, "packed gemm");
      REQUIRE(values(g) == values(e));
    }
  }
  Tensor<std::int8_t> a(Layout::matrix(3, 49), Quant::per_tensor(0.02f, 7));
  Tensor<std::int8_t> out(Layout::matrix(3, 21), Quant::per_tensor(0.04f, -5));
  const status s = try_gemm(simd, gemm_params{}, a, packed, no_bias, out);
  CHECK(s.code() == errc::invalid_shape);
  CHECK(s.message().find("has K = 50, a has K = 49") != std::string::npos);
  gemm_params sat;
  sat.numerics = numerics_profile::tflite().with_accumulator(24, overflow_rule::saturate_each_add);
  Tensor<std::int8_t> a50(Layout::matrix(3, 50), Quant::per_tensor(0.02f, 7));
  CHECK(try_gemm(simd, sat, a50, packed, no_bias, out).code() == errc::unsupported);
  Tensor<std::int8_t> bad(Layout::matrix(5, 5), Quant::per_tensor(-1.0f, 0));
  CHECK(pack_gemm_weights(simd, bad, &packed).code() == errc::invalid_quantization);
  CHECK(packed.K() == 50);  // a failed pack leaves the old weights in place
}

TEST_CASE("weights packed for one level run exactly at every level", "[simd][gemm][pack]") {
  // Each level's kernels read their own format (c2, c4, c8); weights packed for another level
  // are converted for the call. Every (pack level, run level) pair must give the reference's
  // integers and run the run level's kernel.
  rng r(21);
  Tensor<std::uint8_t> b(Layout::matrix(37, 35), Quant::per_axis(1, random_scales(r, 35), random_zero_points(r, 35, 0, 255)));
  Tensor<std::int8_t> a(Layout::matrix(6, 37), Quant::per_tensor(0.02f, -9));
  fill(b, r);
  fill(a, r);
  Tensor<std::int8_t> e(Layout::matrix(6, 35), Quant::per_tensor(0.3f, 1)), g(Layout::matrix(6, 35), Quant::per_tensor(0.3f, 1));
  gemm(scalar, gemm_params{}, a, b, no_bias, e);
  for (isa pack_level : cpu().levels()) {
    packed_gemm_weights<std::uint8_t> packed;
    REQUIRE(pack_gemm_weights(simd_backend{pack_level}, b, &packed).ok());
    CHECK(packed.format() == pack_format_for(pack_level));
    for (std::int64_t k = 0; k < 37; ++k)
      for (std::int64_t n = 0; n < 35; ++n) REQUIRE(packed.value(k, n) == b.data()[k * 35 + n]);
    for (isa run_level : cpu().levels()) {
      INFO("packed for " << to_string(pack_level) << " (" << to_string(packed.format()) << "), run at " << to_string(run_level));
      gemm(simd_backend{run_level}, gemm_params{}, a, packed, no_bias, g);
      require_level_ran(run_level, "packed gemm");
      REQUIRE(values(g) == values(e));
    }
  }
}

TEST_CASE("simd gemm is exact at the extremes of both types and zero points", "[simd][gemm][extremes]") {
  // a - za and b - zb reach +-255: the 16-bit kernels multiply them as they are, the 8-bit ones
  // (dotprod, i8mm) move each A row into B's range and fold the zero points in afterwards.
  rng r(22);
  for (isa level : cpu().levels()) {
    for (int trial = 0; trial < 8; ++trial) {
      const std::int64_t M = 1 + trial, N = 17 + trial, K = 1 + 9 * trial;
      const bool extreme_a = trial % 2 == 0;
      Tensor<std::int8_t> as(Layout::matrix(M, K), Quant::per_tensor(1.0f, extreme_a ? -128 : 127));
      Tensor<std::uint8_t> au(Layout::matrix(M, K), Quant::per_tensor(1.0f, extreme_a ? 255 : 0));
      fill(as, r, extreme_a ? 120 : -128, extreme_a ? 127 : -120);
      fill(au, r, extreme_a ? 0 : 250, extreme_a ? 5 : 255);
      std::vector<std::int32_t> zs(static_cast<std::size_t>(N)), zu(static_cast<std::size_t>(N));
      for (std::int64_t n = 0; n < N; ++n) {
        zs[static_cast<std::size_t>(n)] = n % 2 ? -128 : 127;
        zu[static_cast<std::size_t>(n)] = n % 2 ? 0 : 255;
      }
      Tensor<std::int8_t> bs(Layout::matrix(K, N), Quant::per_axis(1, std::vector<float>(static_cast<std::size_t>(N), 1.0f), zs));
      Tensor<std::uint8_t> bu(Layout::matrix(K, N), Quant::per_axis(1, std::vector<float>(static_cast<std::size_t>(N), 1.0f), zu));
      fill(bs, r);
      fill(bu, r);
      for (std::int64_t i = 0; i < K * N; ++i) {  // columns at the far end from their zero point
        const bool odd = i % N % 2 != 0;
        if (r.uniform(0, 3) != 0) bs.data()[i] = static_cast<std::int8_t>(odd ? 127 : -128);
        if (r.uniform(0, 3) != 0) bu.data()[i] = static_cast<std::uint8_t>(odd ? 255 : 0);
      }
      const auto run = [&](const auto& a, const auto& b) {
        Tensor<std::int32_t> e(Layout::matrix(M, N)), g(Layout::matrix(M, N));
        gemm(scalar, gemm_params{}, a, b, no_bias, e);
        gemm(simd_backend{level}, gemm_params{}, a, b, no_bias, g);
        require_level_ran(level, "gemm");
        INFO("level " << to_string(level) << " M=" << M << " N=" << N << " K=" << K);
        REQUIRE(values(g) == values(e));
      };
      run(as, bs);
      run(as, bu);
      run(au, bs);
      run(au, bu);
    }
  }
}

TEST_CASE("saturating and wide accumulators run on the reference path with the reference's result", "[simd][gemm][fallback]") {
  rng r(16);
  Tensor<std::int8_t> a(Layout::matrix(4, 300), Quant::per_tensor(1.0f, 0));
  Tensor<std::int8_t> b(Layout::matrix(300, 5), Quant::per_tensor(1.0f, 0));
  fill(a, r, 100, 127);
  fill(b, r, 100, 127);
  for (const auto& prof : {numerics_profile::tflite().with_accumulator(20, overflow_rule::saturate_each_add),
                           numerics_profile::q31(rounding::half_up, {40, overflow_rule::wrap})}) {
    gemm_params p;
    p.numerics = prof;
    Tensor<std::int8_t> e(Layout::matrix(4, 5), Quant::per_tensor(1000.0f, 0)), g(Layout::matrix(4, 5), Quant::per_tensor(1000.0f, 0));
    gemm(scalar, p, a, b, no_bias, e);
    gemm(simd, p, a, b, no_bias, g);
    CHECK(simd_last_kernel() == "gemm_reference");
    REQUIRE(values(g) == values(e));
  }
}

TEST_CASE("simd conv2d equals scalar at every ISA level", "[simd][conv2d]") {
  rng r(17);
  struct cfg {
    std::int64_t N, H, W, C, OC, KH, KW, sh, sw, dh, dw, groups;
    padding_spec pad;
  };
  const cfg cases[] = {
      {1, 5, 5, 3, 4, 3, 3, 1, 1, 1, 1, 1, padding_spec::same()},
      {2, 7, 6, 4, 6, 3, 3, 2, 2, 1, 1, 2, padding_spec::explicit_(1, 0, 0, 1)},
      {1, 9, 9, 2, 17, 3, 3, 1, 2, 2, 2, 1, padding_spec::symmetric(2)},
      {1, 4, 4, 8, 8, 1, 1, 1, 1, 1, 1, 4, padding_spec::valid()},
      {1, 10, 3, 5, 7, 5, 1, 3, 1, 1, 1, 1, padding_spec::explicit_(2, 3, 0, 0)},
      {3, 1, 1, 16, 33, 1, 1, 1, 1, 1, 1, 1, padding_spec::valid()},
      {1, 16, 16, 3, 32, 3, 3, 2, 2, 1, 1, 1, padding_spec::same()},
      {1, 8, 8, 64, 16, 3, 3, 1, 1, 1, 1, 1, padding_spec::symmetric(1)},
      // The run gather's paths: padded edges left and right of 16-byte rows, rows longer than
      // 16 bytes, one-byte rows, and taps read up to the input's last byte.
      {1, 12, 13, 3, 8, 3, 3, 2, 2, 1, 1, 1, padding_spec::symmetric(1)},
      {2, 9, 11, 5, 16, 5, 5, 3, 2, 1, 1, 1, padding_spec::explicit_(2, 1, 3, 2)},
      {1, 6, 7, 1, 3, 1, 1, 1, 1, 1, 1, 1, padding_spec::valid()},
      {1, 7, 9, 2, 5, 2, 3, 1, 3, 1, 1, 1, padding_spec::explicit_(0, 1, 4, 0)},
  };
  for (isa level : cpu().levels()) {
    for (const cfg& c : cases) {
      for (const auto& prof : kProfiles) {
        conv2d_params p;
        p.numerics = prof;
        p.stride_h = c.sh;
        p.stride_w = c.sw;
        p.dilation_h = c.dh;
        p.dilation_w = c.dw;
        p.padding = c.pad;
        p.groups = c.groups;
        conv_geometry g = detail::input_geometry(Layout::nhwc(c.N, c.H, c.W, c.C), c.KH, c.KW);
        REQUIRE(detail::resolve_geometry(p, &g).ok());
        Tensor<std::uint8_t> in(Layout::nhwc(c.N, c.H, c.W, c.C), Quant::per_tensor(0.03f, 117));
        Tensor<std::uint8_t> w(Layout::ohwi(c.OC, c.KH, c.KW, c.C / c.groups), Quant::per_axis(0, random_scales(r, c.OC), random_zero_points(r, c.OC, 0, 255)));
        Tensor<std::int32_t> bias(Layout::row_major({c.OC}));
        fill(in, r);
        fill(w, r);
        fill(bias, r, -3000, 3000);
        Tensor<std::int8_t> e(Layout::nhwc(c.N, g.OH, g.OW, c.OC), Quant::per_tensor(0.07f, -20));
        Tensor<std::int8_t> got(Layout::nhwc(c.N, g.OH, g.OW, c.OC), Quant::per_tensor(0.07f, -20));
        conv2d(scalar, p, in, w, bias, e);
        conv2d(simd_backend{level}, p, in, w, bias, got);
        require_level_ran(level, "conv2d");
        REQUIRE(values(got) == values(e));
      }
    }
  }
}

namespace {

struct direct_cfg {
  std::int64_t N, H, W, C, OC, KH, KW, sh, sw, dh, dw, groups;
  padding_spec pad;
};

// `count` elements whose last one sits right before a page that may not be read: the direct
// paths load AMX tiles from the caller's memory (ASan does not see tile loads), so a read past
// the operand faults here on the real instructions.
template <class T>
class guarded {
 public:
  explicit guarded(const T* src, std::int64_t count) {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE)), bytes = static_cast<std::size_t>(count) * sizeof(T);
    const std::size_t body = (bytes + page - 1) / page * page;
    total_ = body + page;
    void* m = mmap(nullptr, total_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(m != MAP_FAILED);
    base_ = static_cast<unsigned char*>(m);
    REQUIRE(mprotect(base_ + body, page, PROT_NONE) == 0);
    data_ = reinterpret_cast<T*>(base_ + body - bytes);
    std::memcpy(data_, src, bytes);
  }
  ~guarded() { munmap(base_, total_); }
  guarded(const guarded&) = delete;
  guarded& operator=(const guarded&) = delete;
  const T* data() const { return data_; }

 private:
  unsigned char* base_ = nullptr;
  std::size_t total_ = 0;
  T* data_ = nullptr;
};

// One conv2d through `be` against scalar, I input, W weights (zero points 0: the direct path's
// case), O output; returns the kernel that ran.
template <class I, class W, class O>
std::string check_direct_conv(rng& r, const simd_backend& be, const direct_cfg& c, const numerics_profile& prof) {
  conv2d_params p;
  p.numerics = prof;
  p.stride_h = c.sh, p.stride_w = c.sw, p.dilation_h = c.dh, p.dilation_w = c.dw;
  p.padding = c.pad;
  p.groups = c.groups;
  conv_geometry g = detail::input_geometry(Layout::nhwc(c.N, c.H, c.W, c.C), c.KH, c.KW);
  REQUIRE(detail::resolve_geometry(p, &g).ok());
  Tensor<I> in(Layout::nhwc(c.N, c.H, c.W, c.C), Quant::per_tensor(0.03f, r.uniform(element_traits<I>::min, element_traits<I>::max)));
  Tensor<W> w(Layout::ohwi(c.OC, c.KH, c.KW, c.C / c.groups), Quant::per_axis(0, random_scales(r, c.OC)));
  Tensor<std::int32_t> bias(Layout::row_major({c.OC}));
  fill(in, r);
  fill(w, r);
  fill(bias, r, -30000, 30000);
  const Quant oq = Quant::per_tensor(0.5f, std::is_same<O, std::int32_t>::value ? 0 : r.uniform(element_traits<O>::min, element_traits<O>::max));
  Tensor<O> e(Layout::nhwc(c.N, g.OH, g.OW, c.OC), oq), got(Layout::nhwc(c.N, g.OH, g.OW, c.OC), oq);
  conv2d(scalar, p, in, w, bias, e);
  const std::int64_t span = in.layout().span();
  const guarded<I> edge(in.data(), span);  // the input ends at a page no one may read
  conv2d(be, p, TensorView<const I>(edge.data(), 0, in.layout(), in.quant(), span), w, bias, got);
  INFO(simd_last_kernel() << " " << c.H << "x" << c.W << "x" << c.C << " -> " << c.OC << " " << c.KH << "x" << c.KW << " s" << c.sh << c.sw
                          << " d" << c.dh << c.dw << " g" << c.groups << " " << prof.describe());
  REQUIRE(values(got) == values(e));
  return simd_last_kernel();
}

}  // namespace

TEST_CASE("direct conv2d (taps read in place) equals scalar on AMX and AVX-512 VNNI", "[simd][conv2d][amx][vnni]") {
  rng r(33);
  // AMX's taps form: groups of a multiple of 64 channels; interior runs longer than a tile, shorter
  // ones, rows and columns over the padding, strides, dilation, groups, 1x1 and windows the size of
  // the image. Stride-1 rows as wide as the input run as one sequence per image (the first two:
  // several tiles over several rows, two images). AVX-512 VNNI runs those of one group without
  // horizontal dilation in the rows form.
  const direct_cfg cases[] = {
      {1, 9, 10, 64, 40, 3, 3, 1, 1, 1, 1, 1, padding_spec::same()},
      {2, 12, 14, 64, 20, 3, 3, 1, 1, 1, 1, 1, padding_spec::same()},
      {2, 7, 40, 128, 16, 3, 3, 1, 2, 1, 1, 2, padding_spec::explicit_(1, 0, 2, 1)},
      {1, 6, 75, 64, 33, 3, 5, 2, 1, 2, 2, 1, padding_spec::symmetric(2)},
      {1, 5, 5, 64, 8, 5, 5, 1, 1, 1, 1, 1, padding_spec::valid()},
      {1, 3, 3, 64, 8, 3, 3, 1, 1, 1, 1, 1, padding_spec::same()},
      {1, 4, 37, 192, 24, 1, 1, 1, 1, 1, 1, 1, padding_spec::valid()},
      {1, 4, 37, 64, 24, 1, 3, 1, 1, 1, 1, 1, padding_spec::explicit_(0, 0, 1, 1)},
      // The rows form (one group, one K step per kernel row; on AMX kernel rows of at most 64
      // bytes and no more steps than the gathered rows): stride 2 with the padding of "same",
      // padding on every side, stride 1 over two images, kernel rows of 63 and exactly 64 bytes,
      // vertical dilation, 1x1 with a horizontal stride.
      {1, 16, 16, 16, 32, 3, 3, 2, 2, 1, 1, 1, padding_spec::same()},
      {1, 12, 13, 21, 8, 3, 3, 2, 2, 1, 1, 1, padding_spec::symmetric(1)},
      {2, 9, 40, 12, 16, 5, 5, 1, 1, 1, 1, 1, padding_spec::explicit_(2, 1, 3, 2)},
      {1, 6, 70, 21, 16, 3, 3, 1, 1, 2, 1, 1, padding_spec::same()},
      {1, 5, 9, 32, 8, 3, 2, 1, 1, 1, 1, 1, padding_spec::valid()},
      {1, 7, 30, 32, 5, 1, 1, 1, 3, 1, 1, 1, padding_spec::valid()},
      // AVX-512 VNNI's rows form (kernel rows of whole groups of 4 bytes, horizontal stride 2 or
      // more): kernel rows of 12 bytes over runs of more than one block of 8 tiles (150 pixels
      // wide), over two images with padding, deep kernel rows (3x3x200: 600-byte steps), 2x2
      // kernels, a last tile whose dropped row would read past the input; and the gathered path's
      // cases: kernel rows that are not whole groups (3x3x3; 1x1x7, which AMX's rows form takes),
      // stride 1.
      {1, 20, 150, 4, 32, 3, 3, 2, 2, 1, 1, 1, padding_spec::same()},
      {2, 9, 11, 8, 17, 3, 3, 2, 2, 1, 1, 1, padding_spec::symmetric(1)},
      {1, 5, 6, 200, 40, 3, 3, 2, 2, 1, 1, 1, padding_spec::same()},
      {1, 10, 140, 4, 16, 2, 2, 2, 3, 1, 1, 1, padding_spec::valid()},
      {1, 10, 31, 4, 8, 3, 3, 2, 2, 1, 1, 1, padding_spec::valid()},
      {1, 20, 150, 3, 32, 3, 3, 2, 2, 1, 1, 1, padding_spec::same()},
      {1, 6, 13, 7, 24, 1, 1, 1, 1, 1, 1, 1, padding_spec::valid()},
      {1, 9, 8, 4, 9, 5, 1, 1, 1, 1, 1, 1, padding_spec::explicit_(1, 2, 0, 0)},
  };
  int direct_runs = 0, vnni_direct_runs = 0;
  for (isa level : cpu().levels()) {
    const kernel_family family = level_kernels(level).gemm;
    if (family != kernel_family::amx_int8 && family != kernel_family::avx512_vnni) continue;
    const bool amx = family == kernel_family::amx_int8;
    for (const direct_cfg& c : cases)
      for (const auto& prof : kProfiles) {
        const simd_backend be{level};
        const std::string names[] = {check_direct_conv<std::int8_t, std::int8_t, std::int8_t>(r, be, c, prof),
                                     check_direct_conv<std::uint8_t, std::int8_t, std::uint8_t>(r, be, c, prof),
                                     check_direct_conv<std::int8_t, std::uint8_t, std::int8_t>(r, be, c, prof),
                                     check_direct_conv<std::uint8_t, std::uint8_t, std::int32_t>(r, be, c, prof)};
        // The real contracts' stages (the first three profiles) all take the direct path where the
        // level's form fits; stages the AVX-512 store does not handle (some narrow accumulators)
        // run the gathered one.
        const bool contract = &prof - kProfiles < 3;
        const std::int64_t cg = c.C / c.groups, row = c.KW * c.C;
        const bool rows_form = c.groups == 1 && c.dw == 1 &&
                               (amx ? row <= 64 && c.KH <= (c.KH * row + 63) / 64 : row % 4 == 0 && c.sw >= 2);
        const bool fits = (amx && cg % 64 == 0) || rows_form;
        for (const std::string& n : names) {
          INFO(n);
          const bool direct = n.rfind("conv2d_direct_", 0) == 0;
          if (contract && fits) REQUIRE(direct);
          if (!fits) REQUIRE(!direct);
          (amx ? direct_runs : vnni_direct_runs) += direct ? 1 : 0;
        }
      }
    // Threads split the output rows; the same bytes on 1-3 of them.
    for (int threads = 2; threads <= 3; ++threads)
      for (int i : {0, 1, 8, 10, 14, 15})
        check_direct_conv<std::int8_t, std::int8_t, std::int8_t>(r, simd_backend{level, threads}, cases[i], numerics_profile::tflite());
  }
  // Each level the CPU has ran its direct path on every case that fits it, under the 3 contracts
  // and 4 type combinations.
  const bool amx = cpu().supports(isa::amx_int8), vnni = cpu().supports(isa::avx512_vnni);
  CHECK(direct_runs >= (amx ? 15 * 3 * 4 : 0));
  if (!amx) CHECK(direct_runs == 0);
  CHECK(vnni_direct_runs >= (vnni ? 7 * 3 * 4 : 0));
  if (!vnni) CHECK(vnni_direct_runs == 0);
}

namespace {

struct direct_gemm_cfg {
  std::int64_t batches, M, N, K, pitch;  // pitch: A's row stride (>= K)
};

// One GEMM through `be` against scalar, A read from a buffer that ends right after its last row,
// before a page no one may read (so a tile read in place must stop short of it), weights without
// zero points; returns the kernel that ran.
template <class A, class W, class O>
std::string check_direct_gemm(rng& r, const simd_backend& be, const direct_gemm_cfg& c, const numerics_profile& prof) {
  const std::int64_t rows_span = (c.M - 1) * c.pitch + c.K, batch_stride = rows_span + 3;
  Tensor<A> buf(Layout::row_major({c.batches * batch_stride}),
                Quant::per_tensor(0.02f, r.uniform(element_traits<A>::min, element_traits<A>::max)));
  fill(buf, r);
  const std::int64_t span = (c.batches - 1) * batch_stride + rows_span;
  const guarded<A> edge(buf.data(), span);  // A ends at a page no one may read
  const TensorView<const A> a(edge.data(), 0, Layout::strided({c.batches, c.M, c.K}, {batch_stride, c.pitch, 1}), buf.quant(), span);
  Tensor<W> b(Layout::matrix(c.K, c.N), Quant::per_axis(1, random_scales(r, c.N)));
  Tensor<std::int32_t> bias(Layout::row_major({c.N}));
  fill(b, r);
  fill(bias, r, -30000, 30000);
  gemm_params p;
  p.numerics = prof;
  const Quant oq = Quant::per_tensor(0.4f, std::is_same<O, std::int32_t>::value ? 0 : r.uniform(element_traits<O>::min, element_traits<O>::max));
  Tensor<O> e(Layout::row_major({c.batches, c.M, c.N}), oq), got(Layout::row_major({c.batches, c.M, c.N}), oq);
  gemm(scalar, p, a, b, bias, e);
  gemm(be, p, a, b, bias, got);
  INFO(simd_last_kernel() << " batches " << c.batches << " M=" << c.M << " N=" << c.N << " K=" << c.K << " pitch " << c.pitch << " "
                          << prof.describe() << " threads " << be.thread_count());
  REQUIRE(values(got) == values(e));
  return simd_last_kernel();
}

}  // namespace

TEST_CASE("AMX direct GEMM (A read in place) equals scalar", "[simd][gemm][amx]") {
  rng r(34);
  // Whole tiles in blocks, partial last tiles, the last rows copied where a tile read in place
  // would pass the end of A (K = 1: rows of 1 byte, 64 read), row pitches above K, batches, the
  // deepest K taken (1024) and one past it (the blocked copy).
  const direct_gemm_cfg cases[] = {{1, 32, 16, 1, 1},     {1, 33, 40, 7, 7},       {1, 100, 33, 64, 64}, {1, 256, 24, 200, 211},
                                   {1, 64, 32, 1024, 1024}, {2, 40, 17, 24, 30},   {1, 1100, 20, 24, 24}, {1, 70, 16, 1025, 1025}};
  int direct_runs = 0;
  for (isa level : cpu().levels()) {
    if (level_kernels(level).gemm != kernel_family::amx_int8) continue;
    for (const direct_gemm_cfg& c : cases)
      for (const auto& prof : kProfiles)
        for (int threads : {1, 3}) {
          const simd_backend be{level, threads};
          const std::string names[] = {check_direct_gemm<std::int8_t, std::int8_t, std::int8_t>(r, be, c, prof),
                                       check_direct_gemm<std::uint8_t, std::int8_t, std::uint8_t>(r, be, c, prof),
                                       check_direct_gemm<std::int8_t, std::uint8_t, std::int32_t>(r, be, c, prof),
                                       check_direct_gemm<std::uint8_t, std::uint8_t, std::int8_t>(r, be, c, prof)};
          // The real contracts' stages (the first three profiles) take the direct path up to K = 1024.
          const bool contract = &prof - kProfiles < 3;
          for (const std::string& n : names) {
            INFO(n << " K=" << c.K);
            const bool direct = n.rfind("gemm_direct_", 0) == 0;
            if (contract) REQUIRE(direct == (c.K <= 1024));
            direct_runs += direct ? 1 : 0;
          }
        }
  }
  const bool amx = cpu().supports(isa::amx_int8);
  CHECK(direct_runs >= (amx ? 7 * 3 * 4 * 2 : 0));
  if (!amx) CHECK(direct_runs == 0);
}

TEST_CASE("simd conv2d reads NCHW input and OIHW weights through layouts", "[simd][conv2d][layout]") {
  rng r(18);
  const std::int64_t N = 2, C = 5, H = 6, W = 7, O = 9;
  Tensor<std::int8_t> nchw(Layout::row_major({N, C, H, W}));
  Tensor<std::int8_t> oihw(Layout::row_major({O, C, 3, 3}));
  fill(nchw, r);
  fill(oihw, r);
  TensorView<const std::int8_t> in(nchw.data(), Layout::nchw(N, C, H, W), Quant::per_tensor(0.05f, 3));
  TensorView<const std::int8_t> w(oihw.data(), Layout::oihw(O, C, 3, 3), Quant::per_axis(0, random_scales(r, O)));
  conv2d_params p;
  p.padding = padding_spec::symmetric(1);
  p.numerics = numerics_profile::onnx();
  for (isa level : cpu().levels()) {
    Tensor<std::int8_t> e(Layout::nhwc(N, H, W, O), Quant::per_tensor(0.2f, 0)), g(Layout::nhwc(N, H, W, O), Quant::per_tensor(0.2f, 0));
    conv2d(scalar, p, in, w, no_bias, e);
    conv2d(simd_backend{level}, p, in, w, no_bias, g);
    REQUIRE(values(g) == values(e));
  }
}

TEST_CASE("the ISA cap: process-wide and per backend value", "[simd][dispatch]") {
  const isa best = active_isa();
  CHECK(simd.level() == best);
  CHECK(simd_backend{isa::portable}.level() == isa::portable);
  const isa saved = isa_cap();
  set_isa_cap(isa::portable);
  CHECK(simd.level() == isa::portable);
  set_isa_cap(saved);
  CHECK(simd.level() == best);
  isa parsed = isa::best;
  CHECK(parse_isa("avx512_vnni", &parsed));
  CHECK(parsed == isa::avx512_vnni);
  CHECK_FALSE(parse_isa("avx9000", &parsed));
  // The detected levels are what the CPU reports: the first is always the portable one.
  REQUIRE_FALSE(cpu().levels().empty());
  CHECK(cpu().levels().front() == isa::portable);
#if defined(__x86_64__) && defined(NPUQ_X86_EMULATED) && NPUQ_X86_EMULATED
  // The emulated-ISA build runs every x86 level's kernels, whatever this CPU has.
  CHECK(cpu().levels() == std::vector<isa>{isa::portable, isa::avx2, isa::avx_vnni, isa::avx512_vnni, isa::amx_int8});
#elif defined(__x86_64__)
  // Every level the hardware offers has kernels: none is dropped from levels().
  CHECK(cpu().levels() == cpu().hardware_levels());
  CHECK(cpu().supports(isa::avx2) == (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")));
  CHECK(cpu().supports(isa::avx512_vnni) == (__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw") &&
                                             __builtin_cpu_supports("avx512vl")));
#elif defined(__aarch64__) && defined(__linux__)
  // HWCAP_ASIMDDP (bit 20) and HWCAP2_I8MM (bit 13): qemu's cortex-a53 has neither, max both.
  const bool dotprod = (getauxval(AT_HWCAP) >> 20) & 1, i8mm = (getauxval(AT_HWCAP2) >> 13) & 1;
  CHECK(cpu().supports(isa::neon));
  CHECK(cpu().supports(isa::neon_dotprod) == dotprod);
  CHECK(cpu().supports(isa::neon_i8mm) == (dotprod && i8mm));
#endif
}

TEST_CASE("vectorized output stages equal the reference's over the full parameter range", "[simd][requant]") {
  rng r(19);
  const numerics_profile profiles[] = {numerics_profile::tflite(), numerics_profile::tosa_single(), numerics_profile::onnx(),
                                       numerics_profile::tflite().with_accumulator(12, overflow_rule::wrap),
                                       numerics_profile::onnx().with_accumulator(20, overflow_rule::wrap),
                                       // the q31_single kind (the AVX-512 stage; the reference's elsewhere)
                                       numerics_profile::q31(rounding::half_away), numerics_profile::q31(rounding::half_even),
                                       numerics_profile::q31(rounding::truncate), numerics_profile::q31(rounding::floor),
                                       numerics_profile::q31(rounding::half_away, {20, overflow_rule::wrap})};
  int fused_checked = 0;
  for (isa level : cpu().levels()) {
    const simd_detail::gemm_kernel_set<std::int8_t> kern = simd_detail::gemm_kernels<std::int8_t>(level);
    for (const auto& prof : profiles) {
      for (int trial = 0; trial < 300; ++trial) {
        output_stage st;
        st.numerics = prof;
        st.raw = trial % 10 == 0;
        st.zero_point = r.uniform(-128, 127);
        st.lo = r.uniform(-128, 0);
        st.hi = r.uniform(0, 127);
        for (int c = 0; c < 16; ++c) {
          requant_channel ch;
          // m = 2^30 makes x * m land exactly on SRDHM's rounding tie for every odd x.
          ch.multiplier = trial % 11 == 0 ? (1 << 30) : trial % 7 == 0 ? INT32_MAX - r.uniform(0, 3) : r.uniform(1 << 30, INT32_MAX);
          ch.shift = trial % 5 == 0 ? r.uniform(-31, 30) : r.uniform(-12, 3);
          if (prof.mode != rounding::tflite_double && ch.shift > 30) ch.shift = 30;
          const int e = trial % 3 == 0 ? r.uniform(-40, 40) : r.uniform(-16, 2);
          ch.scale = std::ldexp(r.uniform_real(1.0f, 2.0f), e);
          st.channel.push_back(ch);
        }
        Tensor<std::int32_t> bias(Layout::row_major({16}));
        fill(bias, r, INT32_MIN, INT32_MAX);
        const simd_detail::tile_output_stage t(st, bias.cview(), 16);
        const bool single = prof.format == multiplier_format::q31 && prof.mode != rounding::tflite_double && prof.mode != rounding::half_up;
        REQUIRE((t.kind == simd_detail::tile_requant::q31_single) == (single && !st.raw));
        std::int32_t c[4 * 16], e_out[4 * 16], g_out[4 * 16];
        for (int i = 0; i < 64; ++i) {
          const int kind = r.uniform(0, 3);
          c[i] = kind == 0 ? r.uniform(INT32_MIN, INT32_MAX) : kind == 1 ? r.uniform(-300000, 300000) : r.uniform(-100, 100);
        }
        simd_detail::apply_tile_portable(t, c, 4, 0, 0, 16, e_out);
        kern.apply(t, c, 4, 0, 0, 16, g_out);
#if defined(__x86_64__)
        // The fused AVX-512 stage stores into the output directly (int32 here: every value).
        if (kern.output == kernel_family::avx512_vnni && simd_detail::avx512_stage_supported(t)) {
          std::int32_t f_out[4 * 16];
          simd_detail::store_tile_avx512_strided(t, c, 4, 0, 16, f_out, 16);
          for (int i = 0; i < 64; ++i) {
            INFO("avx512 stage: " << prof.describe() << " sum " << c[i] << " channel " << i % 16);
            REQUIRE(f_out[i] == e_out[i]);
          }
          ++fused_checked;
        }
#endif
        for (int i = 0; i < 64; ++i) {
          INFO(prof.describe() << " sum " << c[i] << " channel " << i % 16 << " m " << st.channel[i % 16].multiplier << " shift "
                               << st.channel[i % 16].shift << " scale " << st.channel[i % 16].scale << " zp " << st.zero_point
                               << " bias " << bias.data()[i % 16]);
          REQUIRE(g_out[i] == e_out[i]);
        }
      }
    }
  }
  // Every level whose table lists the AVX-512 output stage had it checked.
  int fused_levels = 0;
  for (isa level : cpu().levels()) fused_levels += level_kernels(level).output_stage == kernel_family::avx512_vnni ? 1 : 0;
  CHECK(fused_checked >= fused_levels * 9 * 270);
  (void)fused_checked;
}

TEST_CASE("the fp32 stage's no-overflow bound holds exactly where sums times scales stay below 2^30", "[simd][requant]") {
  output_stage st;
  st.numerics = numerics_profile::onnx();
  st.raw = false;
  requant_channel ch;
  ch.scale = 16384.0f;  // 2^14: 65025 * 2^14 < 2^30 < 2 * 65025 * 2^14
  st.channel.assign(16, ch);
  Tensor<std::int32_t> bias(Layout::row_major({16}));
  for (int c = 0; c < 16; ++c) bias.data()[c] = 0;
  simd_detail::tile_output_stage t(st, bias.cview(), 16);
  t.bound_sums(1);
  CHECK(t.fp32_in_range);
  t.bound_sums(2);
  CHECK_FALSE(t.fp32_in_range);
  bias.data()[15] = 100;  // one column's bias counts: 65025 + 100 still fits, 65025 + 500000 does not
  t = simd_detail::tile_output_stage(st, bias.cview(), 16);
  t.bound_sums(1);
  CHECK(t.fp32_in_range);
  bias.data()[15] = -500000;
  t = simd_detail::tile_output_stage(st, bias.cview(), 16);
  t.bound_sums(1);
  CHECK_FALSE(t.fp32_in_range);
  st.numerics = numerics_profile::tflite();  // only the fp32 kind has the clamp
  t = simd_detail::tile_output_stage(st, bias.cview(), 16);
  t.bound_sums(1);
  CHECK_FALSE(t.fp32_in_range);
}

#if defined(__x86_64__)
namespace {

// Whole tiles (tile_rows x 16 * np columns) through a kernel with the stage inside against the
// same tiles through the int32-tile kernel and the portable stage, over random stages of `prof`.
// in_range counts the tiles staged without the fp32 conversion's clamp (fp32_in_range).
template <class B>
int check_stage_kernels(rng& r, isa level, const numerics_profile& prof, int& in_range) {
  using AB = simd_detail::dot_a_t<B>;
  const simd_detail::gemm_kernel_set<B> kern = simd_detail::gemm_kernels<B>(level);
  int ran = 0;
  for (int trial = 0; trial < 40; ++trial) {
    const int np = 1 + trial % 2, N = 16 * np;
    const int cols = trial % 4 == 3 ? r.uniform(16 * np - 15, 16 * np) : 16 * np;  // partial last panel: masked stores
    const std::int64_t K = trial % 7 == 0 ? r.uniform(200, 300) : r.uniform(1, 40);
    Tensor<B> b(Layout::matrix(K, N), Quant::per_tensor(0.1f, 0));
    fill(b, r);
    packed_gemm_weights<B> w;
    REQUIRE(w.pack(b.cview(), level).ok());
    const std::int64_t kg = w.k_groups(), lda = (kg * 4 + 63) / 64 * 64;
    const int tr = kern.tile_rows, tiles = 1 + trial % 3, R = tr * tiles;
    std::vector<AB> a(static_cast<std::size_t>(R * lda + 16));
    for (AB& v : a) v = static_cast<AB>(r.uniform(element_traits<AB>::min, element_traits<AB>::max));
    const bool is_unsigned = (trial / 3) % 2 == 0;
    output_stage st;
    st.numerics = prof;
    st.raw = false;
    st.lo = is_unsigned ? r.uniform(0, 100) : r.uniform(-128, 0);
    st.hi = is_unsigned ? r.uniform(150, 255) : r.uniform(0, 127);
    // Zero points inside the output range, and (fp32) up to the kernels' bound outside it.
    st.zero_point = trial % 5 == 1 ? r.uniform(-simd_detail::stage_kernel_max_zero_point, simd_detail::stage_kernel_max_zero_point)
                                   : r.uniform(st.lo, st.hi);
    for (int c = 0; c < N; ++c) {
      requant_channel ch;
      ch.multiplier = trial % 5 == 0 ? (1 << 30) : r.uniform(1 << 30, INT32_MAX);
      ch.shift = trial % 4 == 0 ? r.uniform(-31, 30) : r.uniform(-14, 0);
      if (prof.mode != rounding::tflite_double && ch.shift > 30) ch.shift = 30;
      ch.scale = std::ldexp(r.uniform_real(1.0f, 2.0f), trial % 4 == 0 ? r.uniform(-40, 10) : r.uniform(-14, -6));
      st.channel.push_back(ch);
    }
    Tensor<std::int32_t> bias(Layout::row_major({N}));
    fill(bias, r, trial % 6 == 0 ? INT32_MIN : -100000, trial % 6 == 0 ? INT32_MAX : 100000);
    simd_detail::tile_output_stage t(st, bias.cview(), N);
    if (trial % 2 == 1) t.bound_sums(K);  // every |a * b| here is at most 255 * 128
    in_range += t.fp32_in_range ? 1 : 0;
    const int kind = simd_detail::stage_kernel_index(t.kind);
    REQUIRE(kind >= 0);
    REQUIRE(kern.x86_stage[kind][np - 1] != nullptr);
    // Expected: each tile's int32 sums, then the portable stage, as bytes; rows ldo apart with
    // bytes between them that must stay untouched.
    const std::int64_t ldo = N + 7;
    std::vector<unsigned char> expect(static_cast<std::size_t>(R * ldo), 0xA5), got = expect;
    std::vector<std::int64_t> rows;
    for (int m = 0; m < R; ++m) rows.push_back((trial % 2 == 0 ? m : R - 1 - m) * ldo);  // any row order
    alignas(64) std::int32_t c[simd_detail::max_mr * 2 * 16], e[simd_detail::max_mr * 16];
    for (int i = 0; i < tiles; ++i) {
      kern.x86[tr - 1][np - 1](kg, a.data() + tr * i * lda, lda, w.panel(0), w.panel_stride(), c);
      for (int q = 0; q < np; ++q) {
        simd_detail::apply_tile_portable(t, c + q * tr * 16, tr, 16 * q, 0, 16, e);
        for (int m = 0; m < tr; ++m)
          for (int j = 0; j < 16 && 16 * q + j < cols; ++j)
            expect[static_cast<std::size_t>(rows[static_cast<std::size_t>(tr * i + m)] + 16 * q + j)] = static_cast<unsigned char>(e[m * 16 + j]);
      }
    }
    kern.x86_stage[kind][np - 1](kg, a.data(), lda, w.panel(0), w.panel_stride(), t, 0, cols,
                                  simd_detail::stage_tile_out{got.data(), rows.data(), is_unsigned}, tiles);
    if (kern.x86_done != nullptr) kern.x86_done();
    INFO(prof.describe() << " K=" << K << " np=" << np << " cols=" << cols << (is_unsigned ? " uint8" : " int8") << " zp " << st.zero_point);
    REQUIRE(got == expect);
    ++ran;
  }
  return ran;
}

}  // namespace

TEST_CASE("AVX-512 and AMX kernels with the stage inside equal the int32 tile and the portable stage", "[simd][gemm][requant]") {
  rng r(24);
  const numerics_profile profiles[] = {numerics_profile::tflite(), numerics_profile::tosa_single(), numerics_profile::onnx(),
                                       numerics_profile::tflite().with_accumulator(20, overflow_rule::wrap)};
  int ran = 0, levels_with = 0, in_range = 0;
  for (isa level : cpu().levels()) {
    if (simd_detail::gemm_kernels<std::int8_t>(level).x86_stage[0][0] == nullptr) continue;
    ++levels_with;
    for (const auto& prof : profiles)
      ran += check_stage_kernels<std::int8_t>(r, level, prof, in_range) + check_stage_kernels<std::uint8_t>(r, level, prof, in_range);
  }
  CHECK((levels_with == 0 || in_range >= levels_with * 10));  // the fp32 kind ran both ways
  // Every level whose table has them ran them (avx512_vnni and amx_int8 where the CPU has them;
  // every level in the emulated build).
  CHECK(levels_with == (cpu().supports(isa::avx512_vnni) ? 1 : 0) + (cpu().supports(isa::amx_int8) ? 1 : 0));
  CHECK(ran == levels_with * 4 * 2 * 40);
}
#endif

TEST_CASE("packed conv2d weights are reusable and validated like unpacked ones", "[simd][conv2d][pack]") {
  rng r(20);
  conv2d_params p;
  p.groups = 2;
  p.padding = padding_spec::same();
  p.stride_h = 2;
  Tensor<std::int8_t> w(Layout::ohwi(6, 3, 3, 4), Quant::per_axis(0, random_scales(r, 6)));
  fill(w, r);
  packed_conv2d_weights<std::int8_t> packed;
  REQUIRE(pack_conv2d_weights(simd, p, w, &packed).ok());
  CHECK(packed.groups() == 2);
  for (isa level : cpu().levels()) {
    Tensor<std::int8_t> in(Layout::nhwc(2, 7, 5, 8), Quant::per_tensor(0.05f, -4));
    fill(in, r);
    Tensor<std::int8_t> e(Layout::nhwc(2, 4, 5, 6), Quant::per_tensor(0.1f, 3)), g(Layout::nhwc(2, 4, 5, 6), Quant::per_tensor(0.1f, 3));
    conv2d(scalar, p, in, w, no_bias, e);
    conv2d(simd_backend{level}, p, in, packed, no_bias, g);
    require_level_ran(level, "packed conv2d");
    REQUIRE(values(g) == values(e));
  }
  Tensor<std::int8_t> in(Layout::nhwc(1, 7, 5, 8), Quant::per_tensor(0.05f, -4));
  Tensor<std::int8_t> out(Layout::nhwc(1, 4, 5, 6), Quant::per_tensor(0.1f, 3));
  conv2d_params other = p;
  other.groups = 1;
  CHECK(try_conv2d(simd, other, in, packed, no_bias, out).message() == "groups: params say 1, the weights were packed for 2");
  Tensor<std::int8_t> in_bad(Layout::nhwc(1, 7, 5, 6), Quant::per_tensor(0.05f, -4));
  CHECK(try_conv2d(simd, p, in_bad, packed, no_bias, out).message() ==
        "weights: shape [6,3,3,4] has 4 input channels per group, expected 3");
  CHECK(pack_conv2d_weights(simd, other, Tensor<std::int8_t>(Layout::row_major({6, 3, 3})), &packed).code() == errc::invalid_shape);
  CHECK(packed.groups() == 2);
}
