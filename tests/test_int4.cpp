// INT4 weights (issue 5, W4A8): fp16 scale storage, the importers (checked against hand-made
// blocks), the per-channel GEMM with int4 B (bit-identical to the int8 GEMM on the unpacked
// weights under every profile), the group-wise float contract, int4 conv2d / depthwise, and the
// simd kernels at every ISA level this CPU supports (each forced; a level whose kernel did not
// run fails), bit for bit against the scalar reference.
#include "support/catch.hpp"
#include "support/levels.hpp"
#include "support/random.hpp"

#include <cmath>
#include <cstring>
#include <set>
#include <string>

#include <npuq/npuq.hpp>

using namespace npuq;
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
    numerics_profile::q31(rounding::half_away, {20, overflow_rule::wrap}),
    numerics_profile::tflite().with_accumulator(24, overflow_rule::wrap),
    numerics_profile::onnx().with_accumulator(16, overflow_rule::wrap),
    numerics_profile::tflite().with_accumulator(24, overflow_rule::saturate_each_add),
    numerics_profile::q31(rounding::half_up, {40, overflow_rule::wrap}),
};

void require_level_ran(isa level, const char* op) { npuq_test::require_family_ran(level, &level_table::int4, op); }

// Random int4 weights stored [N, K] (rows start mid-byte for odd K), viewed as [K, N], and the
// same values as an int8 [K, N] tensor.
struct w4_pair {
  Tensor<int4> store;
  TensorView<const int4> b;
  Tensor<std::int8_t> b8;
};

w4_pair make_weights(rng& r, std::int64_t K, std::int64_t N, Quant q, int lo = -8, int hi = 7) {
  w4_pair w{Tensor<int4>(Layout::matrix(N, K)), {}, Tensor<std::int8_t>(Layout::matrix(K, N), q)};
  fill(w.store, r, lo, hi);
  w.b = TensorView<const int4>(w.store.data(), 0, Layout::col_major(K, N), q, N * K);
  for (std::int64_t k = 0; k < K; ++k)
    for (std::int64_t n = 0; n < N; ++n) w.b8.view().set(w.b(k, n), k, n);
  return w;
}

// The grouped contract written out in the test's own words (see gemm_grouped_problem.hpp).
float grouped_expect(const std::vector<std::int32_t>& isums, const std::vector<float>& scales, float a_scale) {
  float acc = 0.0f;
  for (std::size_t g = 0; g < isums.size(); ++g) {
    volatile float s = a_scale * scales[g];
    volatile float prod = static_cast<float>(isums[g]) * s;
    acc = acc + prod;
  }
  return acc;
}

}  // namespace

TEST_CASE("fp16 conversion is exact and rounds to nearest even", "[int4][fp16]") {
  CHECK(fp16_to_float(0x3C00) == 1.0f);
  CHECK(fp16_to_float(0x3800) == 0.5f);
  CHECK(fp16_to_float(0xC000) == -2.0f);
  CHECK(fp16_to_float(0x7BFF) == 65504.0f);
  CHECK(fp16_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(fp16_to_float(0x03FF) == std::ldexp(1023.0f, -24));
  CHECK(fp16_to_float(0x0400) == std::ldexp(1.0f, -14));
  CHECK(std::isinf(fp16_to_float(0x7C00)));
  CHECK(std::isnan(fp16_to_float(0x7E00)));
  CHECK(std::signbit(fp16_to_float(0x8000)));
  CHECK(float_to_fp16(1.0f + std::ldexp(1.0f, -11)) == 0x3C00);      // tie -> even
  CHECK(float_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3C02);  // tie -> even (up)
  CHECK(float_to_fp16(65520.0f) == 0x7C00);                          // rounds past the largest
  CHECK(float_to_fp16(std::ldexp(1.0f, -25)) == 0x0000);             // tie with 0 -> even
  CHECK(float_to_fp16(std::ldexp(3.0f, -26)) == 0x0001);
  CHECK(float_to_fp16(0.1f) == 0x2E66);
  for (std::uint32_t h = 0; h < 0x10000; ++h) {
    const auto x = static_cast<std::uint16_t>(h);
    if ((x & 0x7C00) == 0x7C00 && (x & 0x3FF) != 0) continue;  // NaN
    REQUIRE(float_to_fp16(fp16_to_float(x)) == x);
  }
  CHECK(fp16_exact(0.375f));
  CHECK_FALSE(fp16_exact(0.1f));
}

TEST_CASE("importer: ONNX Runtime MatMulNBits blocks, by hand", "[int4][import]") {
  // N = 2 rows, K = 20, block 16: 2 blocks per row (the second holds 4 values), blob 8 bytes.
  const std::int64_t N = 2, K = 20, bs = 16;
  std::uint8_t b[2 * 2 * 8] = {};
  // Row 0, block 0: codes 0..15 in order (element i: byte i/2, even i low nibble).
  for (int i = 0; i < 16; ++i) b[i / 2] |= static_cast<std::uint8_t>(i << ((i & 1) * 4));
  // Row 0, block 1: codes 15, 0, 9, 7.
  b[8] = 0x0F;
  b[9] = 0x79;
  // Row 1, block 0: all code 3; block 1: codes 1, 2, 3, 4.
  for (int i = 0; i < 8; ++i) b[16 + i] = 0x33;
  b[24] = 0x21;
  b[25] = 0x43;
  const float scales[4] = {0.5f, -0.25f, 0.0f, 2.0f};  // a negative and a zero scale
  // Zero points packed two per byte per row: row 0 (5, 8), row 1 (8, 0).
  const std::uint8_t zps[2] = {0x85, 0x08};
  int4_weights w;
  REQUIRE(import_matmul_nbits(b, scales, zps, N, K, bs, &w).ok());
  REQUIRE(w.groups() == 2);
  const TensorView<const int4> v = w.view();
  auto real = [&](std::int64_t n, std::int64_t k) {
    const std::int64_t g = k / bs;
    return (v(k, n) - w.quant.zero_point(n * 2 + g)) * w.quant.scale(n * 2 + g);
  };
  // Row 0 block 0: (q - 5) * 0.5.
  for (int i = 0; i < 16; ++i) CHECK(real(0, i) == (i - 5) * 0.5f);
  // Row 0 block 1: (q - 8) * -0.25 for q = 15, 0, 9, 7.
  CHECK(real(0, 16) == -1.75f);
  CHECK(real(0, 17) == 2.0f);
  CHECK(real(0, 18) == -0.25f);
  CHECK(real(0, 19) == 0.25f);
  CHECK(w.quant.scale(1) == 0.25f);
  // Row 1 block 0: scale 0 -> every value 0.
  for (int i = 0; i < 16; ++i) CHECK(real(1, i) == 0.0f);
  // Row 1 block 1: (q - 0) * 2 for q = 1..4.
  for (int i = 0; i < 4; ++i) CHECK(real(1, 16 + i) == (i + 1) * 2.0f);

  // Default zero point 8 and fp16 scales (0x3800 = 0.5): symmetric weights, one shared zp 0.
  const std::uint16_t s16[4] = {0x3800, 0x3800, 0x3C00, 0x3C00};
  REQUIRE(import_matmul_nbits(b, s16, nullptr, N, K, bs, &w).ok());
  CHECK(w.quant.zero_points.size() == 1);
  CHECK(w.view()(3, 0) == 3 - 8);
  CHECK(w.quant.scale(0) == 0.5f);
  CHECK(import_matmul_nbits(b, scales, zps, N, K, 24, &w).code() == errc::invalid_argument);
}

TEST_CASE("importer: ggml Q4_0 blocks, by hand", "[int4][import]") {
  // One row, K = 64: two blocks of 18 bytes (fp16 d little endian, 16 bytes of codes).
  std::uint8_t blk[36] = {};
  blk[0] = 0x00, blk[1] = 0x38;    // d = 0.5
  blk[18] = 0x00, blk[19] = 0xB4;  // d = -0.25
  for (int j = 0; j < 16; ++j) {
    blk[2 + j] = static_cast<std::uint8_t>((j & 0x0F) | ((15 - j) << 4));  // element j: j; element j + 16: 15 - j
    blk[20 + j] = static_cast<std::uint8_t>(0x80 | (j == 3 ? 0x0 : 0x8));  // element 3: code 0; others 8; high: 8
  }
  int4_weights w;
  REQUIRE(import_ggml_q4_0(blk, 1, 64, &w).ok());
  const TensorView<const int4> v = w.view();
  auto real = [&](std::int64_t k) {
    const std::int64_t g = k / 32;
    return (v(k, 0) - w.quant.zero_point(g)) * w.quant.scale(g);
  };
  CHECK(real(0) == -4.0f);   // (0 - 8) * 0.5
  CHECK(real(5) == -1.5f);   // (5 - 8) * 0.5
  CHECK(real(15) == 3.5f);   // (15 - 8) * 0.5
  CHECK(real(16) == 3.5f);   // code 15
  CHECK(real(31) == -4.0f);  // code 0
  CHECK(real(32) == 0.0f);   // code 8
  CHECK(real(35) == 2.0f);   // (0 - 8) * -0.25
  CHECK(real(50) == 0.0f);
  CHECK(w.quant.scale(1) == 0.25f);
  CHECK(w.quant.zero_point(1) == -1);
  CHECK(v(35, 0) == 7);  // 7 - code: +8 does not fit int4, 7 - (-1) does
  CHECK(import_ggml_q4_0(blk, 1, 48, &w).code() == errc::invalid_shape);
}

TEST_CASE("importer: TFLite / CMSIS-NN packed int4 rows that start mid-byte", "[int4][import]") {
  // [N = 3, K = 3] flattened: 1 -2 3 | -8 7 0 | 5 -1 -4; element 2i low nibble.
  const std::uint8_t bytes[5] = {0xE1, 0x83, 0x07, 0xF5, 0x0C};
  const int expect[3][3] = {{1, -2, 3}, {-8, 7, 0}, {5, -1, -4}};
  const TensorView<const int4> v = tflite_int4_view(bytes, 3, 3, {0.5f, 0.25f, 0.125f}, 0, 10);
  REQUIRE(v.validate("b").ok());
  for (int n = 0; n < 3; ++n)
    for (int k = 0; k < 3; ++k) CHECK(v(k, n) == expect[n][k]);
  int4_weights w;
  REQUIRE(import_int4(v, &w).ok());
  for (int n = 0; n < 3; ++n)
    for (int k = 0; k < 3; ++k) CHECK(w.view()(k, n) == expect[n][k]);
  // The view feeds the GEMM directly, equal to the int8 GEMM on the same values.
  Tensor<std::int8_t> b8(Layout::matrix(3, 3), v.quant());
  for (int n = 0; n < 3; ++n)
    for (int k = 0; k < 3; ++k) b8.view().set(static_cast<std::int8_t>(expect[n][k]), k, n);
  Tensor<std::int8_t> a(Layout::matrix(2, 3), Quant::per_tensor(0.1f, 3));
  rng r(1);
  fill(a, r);
  Tensor<std::int8_t> o4(Layout::matrix(2, 3), Quant::per_tensor(0.05f, -2)), o8(Layout::matrix(2, 3), Quant::per_tensor(0.05f, -2));
  gemm(scalar, gemm_params{}, a, v, no_bias, o4);
  gemm(scalar, gemm_params{}, a, b8, no_bias, o8);
  CHECK(values(o4) == values(o8));
  gemm(simd, gemm_params{}, a, v, no_bias, o4);
  CHECK(values(o4) == values(o8));
  // TOSA's range rejects the -8 at row 1, naming it.
  gemm_params tosa;
  tosa.int4_weights = int4_range::symmetric;
  const status s = try_gemm(scalar, tosa, a, v, no_bias, o4);
  CHECK(s.code() == errc::invalid_argument);
  CHECK(s.message() == "b: value -8 at [0, 1] is outside the symmetric int4 range [-7, 7] (TOSA); use int4_range::full for TFLite's [-8, 7]");
}

TEST_CASE("W4A8 per-channel GEMM equals the int8 GEMM on the unpacked weights, every profile", "[int4][gemm]") {
  rng r(2);
  for (const auto& prof : kProfiles) {
    for (std::int64_t K : {1, 7, 16, 33}) {
      const std::int64_t M = 3, N = 19;
      w4_pair w = make_weights(r, K, N, Quant::per_axis(1, random_scales(r, N), npuq_test::random_zero_points(r, N, -8, 7)));
      Tensor<std::uint8_t> a(Layout::matrix(M, K), Quant::per_tensor(0.02f, 131));
      fill(a, r);
      Tensor<std::int32_t> bias(Layout::row_major({N}));
      fill(bias, r, -3000, 3000);
      gemm_params p;
      p.numerics = prof;
      p.clamp = clamp_spec::relu();
      Tensor<std::uint8_t> o4(Layout::matrix(M, N), Quant::per_tensor(0.01f, 120)), o8(Layout::matrix(M, N), Quant::per_tensor(0.01f, 120));
      REQUIRE(try_gemm(scalar, p, a, w.b, bias, o4).ok());
      REQUIRE(try_gemm(scalar, p, a, w.b8, bias, o8).ok());
      INFO(prof.describe() << " K=" << K);
      REQUIRE(values(o4) == values(o8));
    }
  }
}

TEST_CASE("simd W4A8 GEMM / GEMV equal scalar at every ISA level over edge shapes", "[int4][simd]") {
  rng r(3);
  std::set<std::string> kernels;
  for (isa level : cpu().levels()) {
    for (std::int64_t M : {1, 2, 3, 4, 5, 7, 9}) {
      for (std::int64_t N : {1, 3, 8, 15, 16, 17, 33}) {
        for (std::int64_t K : {1, 2, 3, 4, 5, 7, 8, 9, 31, 32, 33, 63, 64, 65}) {
          w4_pair w = make_weights(r, K, N, Quant::per_axis(1, random_scales(r, N)));
          Tensor<std::int8_t> a(Layout::matrix(M, K), Quant::per_tensor(0.02f, r.uniform(-128, 127)));
          fill(a, r);
          Tensor<std::int8_t> e(Layout::matrix(M, N), Quant::per_tensor(0.03f, -3)), g(Layout::matrix(M, N), Quant::per_tensor(0.03f, -3));
          gemm(scalar, gemm_params{}, a, w.b, no_bias, e);
          gemm(simd_backend{level}, gemm_params{}, a, w.b, no_bias, g);
          require_level_ran(level, "int4 gemm");
          kernels.insert(simd_last_kernel());
          INFO("M=" << M << " N=" << N << " K=" << K);
          REQUIRE(values(g) == values(e));
        }
      }
    }
  }
  CHECK(kernels.size() == 2 * npuq_test::distinct_families(&level_table::int4));  // gemv and gemm per level
}

TEST_CASE("simd W4A8 equals scalar for every profile, signedness, output and zero points", "[int4][simd][numerics]") {
  rng r(4);
  for (isa level : cpu().levels()) {
    for (const auto& prof : kProfiles) {
      for (std::int64_t M : {1, 6}) {
        const std::int64_t N = 21, K = 45;
        w4_pair w = make_weights(r, K, N, Quant::per_axis(1, random_scales(r, N), npuq_test::random_zero_points(r, N, -8, 7)));
        Tensor<std::int32_t> bias(Layout::row_major({N}));
        fill(bias, r, -20000, 20000);
        gemm_params p;
        p.numerics = prof;
        Tensor<std::int8_t> a8(Layout::matrix(M, K), Quant::per_tensor(0.02f, -7));
        Tensor<std::uint8_t> au(Layout::matrix(M, K), Quant::per_tensor(0.02f, 200));
        fill(a8, r);
        fill(au, r);
        Tensor<std::int8_t> e8(Layout::matrix(M, N), Quant::per_tensor(0.05f, 4)), g8(Layout::matrix(M, N), Quant::per_tensor(0.05f, 4));
        Tensor<std::uint8_t> eu(Layout::matrix(M, N), Quant::per_tensor(0.05f, 128)), gu(Layout::matrix(M, N), Quant::per_tensor(0.05f, 128));
        REQUIRE(try_gemm(scalar, p, a8, w.b8, bias, e8).ok());
        REQUIRE(try_gemm(simd_backend{level}, p, a8, w.b, bias, g8).ok());
        INFO(prof.describe() << " M=" << M);
        REQUIRE(values(g8) == values(e8));
        REQUIRE(try_gemm(scalar, p, au, w.b8, bias, eu).ok());
        REQUIRE(try_gemm(simd_backend{level}, p, au, w.b, bias, gu).ok());
        REQUIRE(values(gu) == values(eu));
        if (prof.acc.bits <= 32 && prof.acc.overflow == overflow_rule::wrap) require_level_ran(level, "int4 gemm");
        else CHECK(simd_last_kernel() == "gemm_reference");
      }
    }
    // int32 output, packed weights reused, batches of A with a shared B.
    const std::int64_t K = 70, N = 18;
    w4_pair w = make_weights(r, K, N, Quant::per_tensor(0.01f, 3));
    packed_int4_weights pw;
    REQUIRE(pack_gemm_weights(simd, w.b, &pw).ok());
    Tensor<std::uint8_t> a(Layout::row_major({2, 5, K}), Quant::per_tensor(0.02f, 9));
    fill(a, r);
    Tensor<std::int32_t> e(Layout::row_major({2, 5, N})), g(Layout::row_major({2, 5, N})), g2(Layout::row_major({2, 5, N}));
    gemm(scalar, gemm_params{}, a, w.b8, no_bias, e);
    gemm(simd_backend{level}, gemm_params{}, a, w.b, no_bias, g);
    require_level_ran(level, "int4 gemm batched");
    gemm(simd_backend{level}, gemm_params{}, a, pw, no_bias, g2);
    require_level_ran(level, "int4 gemm packed");
    REQUIRE(values(g) == values(e));
    REQUIRE(values(g2) == values(e));
  }
}

TEST_CASE("simd W4A8 is exact for deep K where int32 sums wrap", "[int4][simd][deep]") {
  rng r(5);
  // 255 * 8 * 1.1M > 2^31: the int32 sum wraps; the reference's 32-bit accumulator wraps too.
  const std::int64_t M = 1, N = 3, K = 1100000;
  Tensor<std::uint8_t> a(Layout::matrix(M, K), Quant::per_tensor(1.0f, 0));
  fill(a, r, 250, 255);
  w4_pair w = make_weights(r, K, N, Quant::per_tensor(1.0f, 0), -8, -8);
  Tensor<std::int32_t> e(Layout::matrix(M, N)), g(Layout::matrix(M, N));
  gemm(scalar, gemm_params{}, a, w.b, no_bias, e);
  for (isa level : cpu().levels()) {
    gemm(simd_backend{level}, gemm_params{}, a, w.b, no_bias, g);
    require_level_ran(level, "int4 gemv deep");
    REQUIRE(values(g) == values(e));
  }
  CHECK(values(e)[0] > 0);  // -8 * 255 * 1.1M wrapped around
  for (isa level : cpu().levels()) {
    for (std::int64_t k : {4095, 4096, 4097}) {
      w4_pair w2 = make_weights(r, k, 40, Quant::per_axis(1, random_scales(r, 40)));
      Tensor<std::int8_t> a2(Layout::matrix(2, k), Quant::per_tensor(0.02f, 1));
      fill(a2, r);
      Tensor<std::int8_t> e2(Layout::matrix(2, 40), Quant::per_tensor(0.5f, 0)), g2(Layout::matrix(2, 40), Quant::per_tensor(0.5f, 0));
      gemm(scalar, gemm_params{}, a2, w2.b, no_bias, e2);
      gemm(simd_backend{level}, gemm_params{}, a2, w2.b, no_bias, g2);
      REQUIRE(values(g2) == values(e2));
    }
  }
}

TEST_CASE("grouped GEMM: the scalar reference is the documented float contract", "[int4][grouped]") {
  rng r(6);
  const std::int64_t M = 2, N = 3, K = 70, gs = 32, G = 3;  // last group holds 6 values
  std::vector<float> scales = random_scales(r, N * G, 0.001f, 0.1f);
  std::vector<std::int32_t> zps = npuq_test::random_zero_points(r, N * G, -8, 7);
  w4_pair w = make_weights(r, K, N, Quant::per_group(1, 0, gs, scales, zps));
  Tensor<std::int8_t> a(Layout::matrix(M, K), Quant::per_tensor(0.037f, -5));
  fill(a, r);
  Tensor<float> bias(Layout::row_major({N}));
  for (std::int64_t n = 0; n < N; ++n) bias.view().set(0.25f * static_cast<float>(n) - 0.3f, n);
  Tensor<float> out(Layout::matrix(M, N));
  gemm_grouped(scalar, gemm_grouped_params{}, a, w.b, bias, out);
  for (std::int64_t m = 0; m < M; ++m) {
    for (std::int64_t n = 0; n < N; ++n) {
      std::vector<std::int32_t> isums;
      std::vector<float> sc;
      for (std::int64_t g = 0; g < G; ++g) {
        std::int32_t s = 0;
        for (std::int64_t k = g * gs; k < std::min(K, (g + 1) * gs); ++k)
          s += (a.view()(m, k) + 5) * (w.b(k, n) - zps[static_cast<std::size_t>(n * G + g)]);
        isums.push_back(s);
        sc.push_back(scales[static_cast<std::size_t>(n * G + g)]);
      }
      volatile float y = grouped_expect(isums, sc, 0.037f);
      y = y + bias.view()(n);
      CHECK(out.view()(m, n) == y);
    }
  }
  // int8 output: QuantizeLinear of the float result (ties to even), then the clamp.
  Tensor<std::int8_t> q(Layout::matrix(M, N), Quant::per_tensor(0.01f, 3));
  gemm_grouped(scalar, gemm_grouped_params{}, a, w.b, bias, q);
  for (std::int64_t m = 0; m < M; ++m)
    for (std::int64_t n = 0; n < N; ++n) {
      const float v = out.view()(m, n) / 0.01f;
      const long expect = std::lround(std::nearbyint(v)) + 3;
      CHECK(q.view()(m, n) == std::max(-128L, std::min(127L, expect)));
    }
}

TEST_CASE("simd grouped GEMM equals scalar bit for bit at every ISA level", "[int4][grouped][simd]") {
  rng r(7);
  std::set<std::string> kernels;
  for (isa level : cpu().levels()) {
    for (std::int64_t gs : {32, 64, 128, 20, 6}) {
      for (std::int64_t M : {1, 2, 3, 4, 5, 9}) {
        for (std::int64_t N : {1, 15, 16, 17, 33}) {
          for (std::int64_t K : {gs, 2 * gs, 3 * gs + 5, std::int64_t{7}, std::int64_t{257}}) {
            const std::int64_t G = (K + gs - 1) / gs;
            const bool zp = r.uniform(0, 1) == 1;
            Quant q = Quant::per_group(1, 0, gs, random_scales(r, N * G, 0.001f, 0.05f),
                                       zp ? npuq_test::random_zero_points(r, N * G, -8, 7) : std::vector<std::int32_t>{0});
            w4_pair w = make_weights(r, K, N, q);
            Tensor<std::uint8_t> au(Layout::matrix(M, K), Quant::per_tensor(0.013f, 128));
            Tensor<std::int8_t> a8(Layout::matrix(M, K), Quant::per_tensor(0.021f, -3));
            fill(au, r);
            fill(a8, r);
            Tensor<float> bias(Layout::row_major({N}));
            for (std::int64_t n = 0; n < N; ++n) bias.view().set(r.uniform_real(-1.0f, 1.0f), n);
            Tensor<float> e(Layout::matrix(M, N)), g(Layout::matrix(M, N));
            gemm_grouped(scalar, gemm_grouped_params{}, au, w.b, bias, e);
            gemm_grouped(simd_backend{level}, gemm_grouped_params{}, au, w.b, bias, g);
            require_level_ran(level, "grouped gemm");
            kernels.insert(simd_last_kernel());
            INFO("gs=" << gs << " M=" << M << " N=" << N << " K=" << K);
            for (std::int64_t i = 0; i < M * N; ++i) REQUIRE(std::memcmp(&e.data()[i], &g.data()[i], 4) == 0);
            gemm_grouped(scalar, gemm_grouped_params{}, a8, w.b, no_bias, e);
            gemm_grouped(simd_backend{level}, gemm_grouped_params{}, a8, w.b, no_bias, g);
            for (std::int64_t i = 0; i < M * N; ++i) REQUIRE(std::memcmp(&e.data()[i], &g.data()[i], 4) == 0);
            gemm_grouped_params rp;
            rp.clamp = clamp_spec::relu();
            Tensor<std::int8_t> eq(Layout::matrix(M, N), Quant::per_tensor(0.02f, -10)), gq(Layout::matrix(M, N), Quant::per_tensor(0.02f, -10));
            gemm_grouped(scalar, rp, a8, w.b, bias, eq);
            gemm_grouped(simd_backend{level}, rp, a8, w.b, bias, gq);
            REQUIRE(values(gq) == values(eq));
          }
        }
      }
    }
  }
  CHECK(kernels.size() == 2 * npuq_test::distinct_families(&level_table::int4));
}

TEST_CASE("packed int4 weights: fp16 scale storage, reuse, and validation", "[int4][grouped][pack]") {
  rng r(8);
  const std::int64_t K = 256, N = 40, gs = 32, G = 8;
  std::vector<float> scales(static_cast<std::size_t>(N * G));
  for (auto& s : scales) s = fp16_to_float(float_to_fp16(r.uniform_real(0.001f, 0.05f)));
  w4_pair w = make_weights(r, K, N, Quant::per_group(1, 0, gs, scales));
  packed_int4_weights p16, p32;
  REQUIRE(pack_gemm_weights(simd, w.b, &p16, scale_storage::fp16).ok());
  REQUIRE(pack_gemm_weights(simd, w.b, &p32).ok());
  CHECK(p16.packed_bytes() == K * 16 * ((N + 15) / 16) / 2);  // half a byte per (padded) weight
  CHECK(p16.total_bytes() < p32.total_bytes());
  for (isa level : cpu().levels()) {
    for (std::int64_t M : {1, 5}) {
      Tensor<std::int8_t> a(Layout::matrix(M, K), Quant::per_tensor(0.02f, 0));
      fill(a, r);
      Tensor<float> e(Layout::matrix(M, N)), g16(Layout::matrix(M, N)), g32(Layout::matrix(M, N));
      gemm_grouped(scalar, gemm_grouped_params{}, a, w.b, no_bias, e);
      gemm_grouped(simd_backend{level}, gemm_grouped_params{}, a, p16, no_bias, g16);
      require_level_ran(level, "grouped packed fp16");
      gemm_grouped(simd_backend{level}, gemm_grouped_params{}, a, p32, no_bias, g32);
      REQUIRE(std::memcmp(e.data(), g16.data(), static_cast<std::size_t>(M * N) * 4) == 0);
      REQUIRE(std::memcmp(e.data(), g32.data(), static_cast<std::size_t>(M * N) * 4) == 0);
    }
  }
  // Scales that are not fp16 values are refused for fp16 storage.
  w4_pair bad = make_weights(r, 64, 4, Quant::per_group(1, 0, 32, std::vector<float>(8, 0.1f)));
  packed_int4_weights pb;
  CHECK(pack_gemm_weights(simd, bad.b, &pb, scale_storage::fp16).code() == errc::invalid_quantization);
  // Group scales do not fold into one output multiplier.
  Tensor<std::int8_t> a(Layout::matrix(2, K), Quant::per_tensor(0.02f, 0));
  Tensor<std::int8_t> o(Layout::matrix(2, N), Quant::per_tensor(0.1f, 0));
  CHECK(try_gemm(simd, gemm_params{}, a, p32, no_bias, o).code() == errc::unsupported);
  // Symmetric range with packed weights holding -8.
  w4_pair full = make_weights(r, 64, 4, Quant::per_axis(1, {0.1f, 0.1f, 0.1f, 0.1f}), -8, -8);
  packed_int4_weights pf;
  REQUIRE(pack_gemm_weights(simd, full.b, &pf).ok());
  gemm_params tosa;
  tosa.int4_weights = int4_range::symmetric;
  Tensor<std::int8_t> a64(Layout::matrix(2, 64), Quant::per_tensor(0.02f, 0));
  Tensor<std::int8_t> o4(Layout::matrix(2, 4), Quant::per_tensor(0.1f, 0));
  CHECK(try_gemm(simd, tosa, a64, pf, no_bias, o4).code() == errc::invalid_argument);
  CHECK(try_gemm(simd, gemm_params{}, a64, pf, no_bias, o4).ok());
  // Float output rejects a fused clamp; a missing activation scale is an error.
  gemm_grouped_params relu;
  relu.clamp = clamp_spec::relu();
  Tensor<float> of(Layout::matrix(2, N));
  CHECK(try_gemm_grouped(simd, relu, a, p32, no_bias, of).code() == errc::unsupported);
  Tensor<std::int8_t> anq(Layout::matrix(2, K));
  CHECK(try_gemm_grouped(scalar, gemm_grouped_params{}, anq, w.b, no_bias, of).code() == errc::invalid_quantization);
}

TEST_CASE("imported MatMulNBits and Q4_0 weights run the grouped GEMM identically on every level", "[int4][import][simd]") {
  rng r(9);
  const std::int64_t N = 20, K = 96;
  // Q4_0 blocks with random codes and fp16 scales of both signs.
  std::vector<std::uint8_t> q(static_cast<std::size_t>(N * (K / 32) * 18));
  for (std::size_t i = 0; i < q.size(); i += 18) {
    const std::uint16_t d = float_to_fp16(r.uniform_real(-0.05f, 0.05f));
    q[i] = static_cast<std::uint8_t>(d & 0xFF);
    q[i + 1] = static_cast<std::uint8_t>(d >> 8);
    for (int j = 0; j < 16; ++j) q[i + 2 + static_cast<std::size_t>(j)] = static_cast<std::uint8_t>(r.uniform(0, 255));
  }
  int4_weights w;
  REQUIRE(import_ggml_q4_0(q.data(), N, K, &w).ok());
  packed_int4_weights pw;
  REQUIRE(pack_gemm_weights(simd, w.view(), &pw, scale_storage::fp16).ok());
  Tensor<std::int8_t> a(Layout::matrix(3, K), Quant::per_tensor(0.05f, 0));
  fill(a, r);
  Tensor<float> e(Layout::matrix(3, N)), g(Layout::matrix(3, N));
  gemm_grouped(scalar, gemm_grouped_params{}, a, w.view(), no_bias, e);
  // The result is the dequantized dot product up to float rounding.
  for (std::int64_t n = 0; n < N; ++n) {
    double ref = 0;
    for (std::int64_t k = 0; k < K; ++k) {
      const std::uint8_t* blk = q.data() + (n * (K / 32) + k / 32) * 18;
      const int j = static_cast<int>(k % 32);
      const int code = j < 16 ? blk[2 + j] & 15 : blk[2 + j - 16] >> 4;
      ref += 0.05 * a.view()(0, k) * (code - 8) * fp16_to_float(static_cast<std::uint16_t>(blk[0] | (blk[1] << 8)));
    }
    CHECK(std::fabs(e.view()(0, n) - ref) <= 1e-4 * (1 + std::fabs(ref)));
  }
  for (isa level : cpu().levels()) {
    gemm_grouped(simd_backend{level}, gemm_grouped_params{}, a, pw, no_bias, g);
    require_level_ran(level, "grouped q4_0");
    REQUIRE(std::memcmp(e.data(), g.data(), static_cast<std::size_t>(3 * N) * 4) == 0);
  }
}

TEST_CASE("int4 conv2d and depthwise equal the int8 ops on the unpacked weights", "[int4][conv]") {
  rng r(10);
  Tensor<std::int8_t> in(Layout::nhwc(1, 6, 7, 5), Quant::per_tensor(0.05f, 2));
  fill(in, r);
  // conv2d OHWI [4, 3, 3, 5]: 45 values per row (odd: rows start mid-byte).
  Tensor<int4> w4(Layout::ohwi(4, 3, 3, 5), Quant::per_axis(0, random_scales(r, 4)));
  fill(w4, r, -7, 7);
  Tensor<std::int8_t> w8(Layout::ohwi(4, 3, 3, 5), w4.quant());
  REQUIRE(unpack_int4(w4.cview(), w8.view()).ok());
  conv2d_params cp;
  cp.padding = padding_spec::symmetric(1);
  for (const auto& prof : kProfiles) {
    cp.numerics = prof;
    Tensor<std::int8_t> e(Layout::nhwc(1, 6, 7, 4), Quant::per_tensor(0.1f, 0)), g(Layout::nhwc(1, 6, 7, 4), Quant::per_tensor(0.1f, 0));
    conv2d(scalar, cp, in, w8, no_bias, e);
    conv2d_int4(scalar, cp, in, w4, no_bias, g, int4_range::symmetric);
    REQUIRE(values(g) == values(e));
    conv2d_int4(simd, cp, in, w4, no_bias, g);
    REQUIRE(values(g) == values(e));
  }
  Tensor<int4> d4(Layout::hwc_m(3, 3, 5, 1), Quant::per_axis(2, random_scales(r, 5)));
  fill(d4, r, -8, 7);
  Tensor<std::int8_t> d8(Layout::hwc_m(3, 3, 5, 1), d4.quant());
  REQUIRE(unpack_int4(d4.cview(), d8.view()).ok());
  depthwise_params dp;
  dp.padding = padding_spec::symmetric(1);
  Tensor<std::int8_t> e(Layout::nhwc(1, 6, 7, 5), Quant::per_tensor(0.1f, 0)), g(Layout::nhwc(1, 6, 7, 5), Quant::per_tensor(0.1f, 0));
  depthwise_conv2d(scalar, dp, in, d8, no_bias, e);
  depthwise_conv2d_int4(simd, dp, in, d4, no_bias, g);
  REQUIRE(values(g) == values(e));
  d4.view().set(-8, 0, 0, 0);
  CHECK(try_depthwise_conv2d_int4(scalar, dp, in, d4, no_bias, g, int4_range::symmetric).code() == errc::invalid_argument);
}

TEST_CASE("conv2d and depthwise_conv2d take int4 weights in the same call as int8 ones", "[int4][conv]") {
  rng r(11);
  Tensor<std::int8_t> in(Layout::nhwc(1, 5, 6, 3), Quant::per_tensor(0.05f, -1));
  fill(in, r);
  Tensor<int4> w4(Layout::ohwi(4, 3, 3, 3), Quant::per_axis(0, random_scales(r, 4)));
  fill(w4, r, -8, 7);
  conv2d_params cp;
  cp.padding = padding_spec::symmetric(1);
  Tensor<std::int8_t> e(Layout::nhwc(1, 5, 6, 4), Quant::per_tensor(0.1f, 0)), g(e.layout(), e.quant());
  conv2d_int4(scalar, cp, in, w4, no_bias, e);
  conv2d(simd, cp, in, w4, no_bias, g);  // Tensor<int4>
  REQUIRE(values(g) == values(e));
  const TensorView<const int4> w4_view = w4.cview();
  REQUIRE(try_conv2d(scalar, cp, in, w4_view, no_bias, g).ok());  // TensorView<const int4>
  REQUIRE(values(g) == values(e));

  Tensor<int4> d4(Layout::hwc_m(3, 3, 3, 2), Quant::per_axis(2, random_scales(r, 6)));
  fill(d4, r, -8, 7);
  depthwise_params dp;
  Tensor<std::int8_t> de(Layout::nhwc(1, 3, 4, 6), Quant::per_tensor(0.1f, 0)), dg(de.layout(), de.quant());
  depthwise_conv2d_int4(scalar, dp, in, d4, no_bias, de);
  depthwise_conv2d(simd, dp, in, d4.view(), no_bias, dg);  // TensorView<int4>
  REQUIRE(values(dg) == values(de));
  // Validation errors come from the int4 path, naming the weights.
  Tensor<int4> bad(Layout::ohwi(4, 3, 3, 2), Quant::per_axis(0, random_scales(r, 4)));
  CHECK(try_conv2d(scalar, cp, in, bad, no_bias, g).code() == errc::invalid_shape);
}
