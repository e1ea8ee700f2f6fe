// Integer softmax against data npuq did not compute itself.
//
// 1. npuq's fixed-point exp and reciprocal against gemmlowp's own functions (the installed
//    <gemmlowp/fixedpoint/fixedpoint.h>, which TFLite's kernel calls), on random and edge inputs.
// 2. Whole rows against a transcription of TFLite's reference_ops::Softmax written here on
//    gemmlowp's FixedPoint types (not on npuq's functions), and TFLite's parameter preparation
//    (PreprocessSoftmaxScaling, CalculateInputRadius) transcribed with std::frexp.
// 3. Edge rows, the table variant, uint8, strided views, long rows, and bad input.
#include "support/levels.hpp"
#include "support/catch.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gemmlowp/fixedpoint/fixedpoint.h>
#include <npuq/npuq.hpp>

#include "support/random.hpp"

using namespace npuq;

namespace {

// ---- TFLite, transcribed on gemmlowp types ------------------------------------------------------

struct tflite_params {
  std::int32_t multiplier;
  int left_shift;
  int diff_min;
};

// PreprocessSoftmaxScaling + QuantizeMultiplierGreaterThanOne + CalculateInputRadius(5, shift).
tflite_params tflite_prepare(double beta, double scale) {
  const double real = std::min(beta * scale * double(1 << 26), double((std::int64_t{1} << 31) - 1));
  int shift = 0;
  const double q = std::frexp(real, &shift);
  auto q_fixed = static_cast<std::int64_t>(std::round(q * double(std::int64_t{1} << 31)));
  if (q_fixed == (std::int64_t{1} << 31)) {
    q_fixed /= 2;
    ++shift;
  }
  REQUIRE(shift >= 0);
  const double radius = 1.0 * 31 * double(std::int64_t{1} << 26) / double(std::int64_t{1} << shift);
  return {static_cast<std::int32_t>(q_fixed), shift, -static_cast<int>(std::floor(radius))};
}

// reference_ops::Softmax for one row of 8-bit values (OutT = int8 or uint8).
template <class OutT>
std::vector<int> tflite_softmax_row(const tflite_params& p, const std::vector<int>& in) {
  using scaled_diff = gemmlowp::FixedPoint<std::int32_t, 5>;
  using accum = gemmlowp::FixedPoint<std::int32_t, 12>;
  using fp0 = gemmlowp::FixedPoint<std::int32_t, 0>;
  const int max_in_row = *std::max_element(in.begin(), in.end());
  auto rescaled = [&](int diff) {
    return gemmlowp::SaturatingRoundingDoublingHighMul(diff * (1 << p.left_shift), p.multiplier);
  };
  accum sum = accum::Zero();
  for (int x : in) {
    const int diff = x - max_in_row;
    if (diff >= p.diff_min)
      sum = sum + gemmlowp::Rescale<12>(gemmlowp::exp_on_negative_values(scaled_diff::FromRaw(rescaled(diff))));
  }
  // GetReciprocal(sum, 12, &num_bits_over_unit)
  const int headroom_plus_one = __builtin_clz(static_cast<std::uint32_t>(sum.raw()));
  const int num_bits_over_unit = 12 - headroom_plus_one;
  const auto shifted_sum_minus_one =
      static_cast<std::int32_t>((static_cast<std::uint32_t>(sum.raw()) << headroom_plus_one) - (std::uint32_t{1} << 31));
  const fp0 shifted_scale = gemmlowp::one_over_one_plus_x_for_x_in_0_1(fp0::FromRaw(shifted_sum_minus_one));
  const int exponent = num_bits_over_unit + 31 - 8;
  REQUIRE(exponent <= 31);  // the row stays where TFLite's reference is defined
  std::vector<int> out;
  for (int x : in) {
    const int diff = x - max_in_row;
    if (diff >= p.diff_min) {
      const fp0 e = gemmlowp::exp_on_negative_values(scaled_diff::FromRaw(rescaled(diff)));
      const std::int32_t unsat = gemmlowp::RoundingDivideByPOT((shifted_scale * e).raw(), exponent);
      const std::int32_t shifted = unsat + std::numeric_limits<OutT>::min();
      out.push_back(std::max<std::int32_t>(std::min<std::int32_t>(shifted, std::numeric_limits<OutT>::max()),
                                           std::numeric_limits<OutT>::min()));
    } else {
      out.push_back(std::numeric_limits<OutT>::min());
    }
  }
  return out;
}

// ---- npuq on one row ----------------------------------------------------------------------------

template <class I, class O, class Backend>
std::vector<int> npuq_softmax_row(const Backend& backend, const softmax_params& p, const std::vector<int>& in) {
  const auto n = static_cast<std::int64_t>(in.size());
  Tensor<I> x(Layout::row_major({1, n}));
  Tensor<O> y(Layout::row_major({1, n}));
  for (std::int64_t i = 0; i < n; ++i) x.data()[i] = static_cast<I>(in[static_cast<std::size_t>(i)]);
  softmax(backend, p, x, y);
  std::vector<int> out;
  for (std::int64_t i = 0; i < n; ++i) out.push_back(y.data()[i]);
  return out;
}

std::vector<int> random_row(npuq_test::rng& r, int n, int lo, int hi) {
  std::vector<int> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = r.uniform(lo, hi);
  return v;
}

softmax_params npuq_params(const tflite_params& t) { return softmax_params::from_triple(t.multiplier, t.left_shift, t.diff_min); }

}  // namespace

// ---- 1. fixed-point functions -------------------------------------------------------------------

TEST_CASE("exp_on_negative_values equals gemmlowp's", "[softmax][gemmlowp]") {
  npuq_test::rng r(11);
  std::vector<std::int32_t> xs = {0, -1, -2, std::numeric_limits<std::int32_t>::min(), -(1 << 26), -(1 << 25), -(1 << 24) - 1,
                                  -(31 << 26) - 1, -(31 << 26), -(30 << 26) - 7, -123456789};
  for (int i = 0; i < 200000; ++i)
    xs.push_back(-static_cast<std::int32_t>(std::uniform_int_distribution<std::int64_t>(0, std::int64_t{1} << 31)(r.engine()) &
                                            0x7fffffff));
  for (int i = 0; i < 20000; ++i) xs.push_back(-r.uniform(0, 1 << 20));  // small differences, the common case
  int mismatches = 0;
  for (std::int32_t a : xs) {
    const std::int32_t want5 = gemmlowp::exp_on_negative_values(gemmlowp::FixedPoint<std::int32_t, 5>::FromRaw(a)).raw();
    const std::int32_t want0 = gemmlowp::exp_on_negative_values(gemmlowp::FixedPoint<std::int32_t, 0>::FromRaw(a)).raw();
    const std::int32_t want12 = gemmlowp::exp_on_negative_values(gemmlowp::FixedPoint<std::int32_t, 12>::FromRaw(a)).raw();
    if (fxp::exp_on_negative_values<5>(a) != want5 || fxp::exp_on_negative_values<0>(a) != want0 ||
        fxp::exp_on_negative_values<12>(a) != want12) {
      if (++mismatches < 5) FAIL_CHECK("exp_on_negative_values(" << a << ") differs from gemmlowp");
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("one_over_one_plus_x_for_x_in_0_1 equals gemmlowp's", "[softmax][gemmlowp]") {
  npuq_test::rng r(12);
  std::vector<std::int32_t> xs = {0, 1, 2, std::numeric_limits<std::int32_t>::max(), 1 << 30, (1 << 30) - 1, 1 << 23};
  for (int i = 0; i < 200000; ++i) xs.push_back(static_cast<std::int32_t>(r.engine()() & 0x7fffffffu));
  int mismatches = 0;
  for (std::int32_t a : xs) {
    const std::int32_t want = gemmlowp::one_over_one_plus_x_for_x_in_0_1(gemmlowp::FixedPoint<std::int32_t, 0>::FromRaw(a)).raw();
    if (fxp::one_over_one_plus_x_for_x_in_0_1(a) != want && ++mismatches < 5)
      FAIL_CHECK("one_over_one_plus_x(" << a << ") differs from gemmlowp");
  }
  CHECK(mismatches == 0);
}

TEST_CASE("the helper primitives equal gemmlowp's", "[softmax][gemmlowp]") {
  npuq_test::rng r(13);
  for (int i = 0; i < 100000; ++i) {
    const auto a = static_cast<std::int32_t>(r.engine()());
    const auto b = static_cast<std::int32_t>(r.engine()());
    CHECK(fxp::rounding_half_sum(a, b) == gemmlowp::RoundingHalfSum(a, b));
    CHECK(fxp::saturating_shift_left(a, 1) == gemmlowp::SaturatingRoundingMultiplyByPOT<1>(a));
    CHECK(fxp::saturating_shift_left(a, 5) == gemmlowp::SaturatingRoundingMultiplyByPOT<5>(a));
    const int e = r.uniform(0, 62);
    const std::int64_t w = static_cast<std::int64_t>(a) * (std::int64_t{1} << 31) + b;
    // The wide rounding divide agrees with exact rounding half away from zero.
    const long double exact = static_cast<long double>(w) / std::ldexp(1.0L, e);
    const auto want = static_cast<std::int64_t>(exact < 0 ? -std::floor(-exact + 0.5L) : std::floor(exact + 0.5L));
    CHECK(softmax_math::rounding_divide_by_pot_wide(w, e) == want);
    if (e <= 31) CHECK(softmax_math::rounding_divide_by_pot_wide(a, e) == gemmlowp::RoundingDivideByPOT(a, e));
  }
}

// ---- 2. parameters and whole rows ---------------------------------------------------------------

TEST_CASE("softmax parameters from beta and input scale follow TFLite's preparation", "[softmax][params]") {
  // beta = 1, scale = 1/16: 2^26 / 16 = 2^22 = 0.5 * 2^23 -> multiplier 2^30, shift 23, radius 31 * 2^3.
  const softmax_params p = softmax_params::tflite(1.0f, 1.0f / 16);
  CHECK(p.input_multiplier == (1 << 30));
  CHECK(p.input_left_shift == 23);
  CHECK(p.diff_min == -248);
  npuq_test::rng r(21);
  for (int i = 0; i < 2000; ++i) {
    const float beta = i % 3 == 0 ? 1.0f : r.uniform_real(0.05f, 4.0f);
    const float scale = r.uniform_real(0.001f, 1.0f);
    const tflite_params t = tflite_prepare(beta, scale);
    const softmax_params q = softmax_params::tflite(beta, scale);
    CHECK(q.input_multiplier == t.multiplier);
    CHECK(q.input_left_shift == t.left_shift);
    CHECK(q.diff_min == t.diff_min);
  }
}

TEST_CASE("int8 softmax rows equal TFLite's reference on gemmlowp", "[softmax][tflite]") {
  npuq_test::rng r(22);
  for (int trial = 0; trial < 600; ++trial) {
    const float beta = trial % 2 == 0 ? 1.0f : r.uniform_real(0.1f, 3.0f);
    const float scale = r.uniform_real(0.002f, 0.5f);
    const tflite_params t = tflite_prepare(beta, scale);
    const int n = trial < 100 ? 1 + trial % 20 : r.uniform(1, 500);
    const int lo = r.uniform(-128, 127);
    const std::vector<int> row = random_row(r, n, trial % 3 == 0 ? -128 : lo, 127);
    const std::vector<int> want = tflite_softmax_row<std::int8_t>(t, row);
    INFO("trial " << trial << " n " << n << " beta " << beta << " scale " << scale);
    CHECK(npuq_softmax_row<std::int8_t, std::int8_t>(scalar, npuq_params(t), row) == want);
    CHECK(npuq_softmax_row<std::int8_t, std::int8_t>(scalar, npuq_params(t).with_exp(softmax_exp::table), row) == want);
    for (isa level : cpu().levels()) {
      CHECK(npuq_softmax_row<std::int8_t, std::int8_t>(simd_backend{level}, npuq_params(t), row) == want);
      npuq_test::require_family_ran(level, &level_table::softmax, "softmax");
    }
  }
}

TEST_CASE("uint8 softmax rows equal TFLite's reference on gemmlowp", "[softmax][tflite]") {
  npuq_test::rng r(23);
  for (int trial = 0; trial < 300; ++trial) {
    const tflite_params t = tflite_prepare(1.0, r.uniform_real(0.002f, 0.3f));
    const std::vector<int> row = random_row(r, r.uniform(1, 300), 0, 255);
    const std::vector<int> want = tflite_softmax_row<std::uint8_t>(t, row);
    CHECK(npuq_softmax_row<std::uint8_t, std::uint8_t>(scalar, npuq_params(t), row) == want);
    CHECK(npuq_softmax_row<std::uint8_t, std::uint8_t>(simd, npuq_params(t).with_exp(softmax_exp::table), row) == want);
  }
}

// ---- 3. edge rows, tables, views, long rows -----------------------------------------------------

TEST_CASE("softmax edge rows", "[softmax][edges]") {
  const softmax_params p = softmax_params::tflite(1.0f, 1.0f / 16);
  const tflite_params t{p.input_multiplier, p.input_left_shift, p.diff_min};
  // Length 1: the whole probability, 1.0, saturates to 127.
  CHECK(npuq_softmax_row<std::int8_t, std::int8_t>(scalar, p, {-128}) == std::vector<int>{127});
  CHECK(npuq_softmax_row<std::int8_t, std::int8_t>(scalar, p, {55}) == std::vector<int>{127});
  // All equal: 1/n of 256 steps, minus 128.
  for (int n : {2, 4, 8, 16, 64, 256}) {
    const std::vector<int> row(static_cast<std::size_t>(n), 17);
    const std::vector<int> got = npuq_softmax_row<std::int8_t, std::int8_t>(scalar, p, row);
    CHECK(got == tflite_softmax_row<std::int8_t>(t, row));
    CHECK(got == std::vector<int>(static_cast<std::size_t>(n), 256 / n - 128));
  }
  // One large value among values far below diff_min: it takes everything, they get nothing.
  std::vector<int> one_large(40, -128);
  one_large[13] = 127;
  std::vector<int> want(40, -128);
  want[13] = 127;
  CHECK(npuq_softmax_row<std::int8_t, std::int8_t>(scalar, p, one_large) == want);
  CHECK(tflite_softmax_row<std::int8_t>(t, one_large) == want);
  // Saturating inputs: -128/127 mixes and a huge beta * scale (multiplier clamped at 2^31 - 1).
  const softmax_params steep = softmax_params::tflite(1000.0f, 1.0f);
  const tflite_params ts = tflite_prepare(1000.0, 1.0);
  for (const std::vector<int>& row : {std::vector<int>{127, -128, 127, -128, 126}, std::vector<int>{-128, -128, -127}}) {
    CHECK(npuq_softmax_row<std::int8_t, std::int8_t>(scalar, p, row) == tflite_softmax_row<std::int8_t>(t, row));
    CHECK(npuq_softmax_row<std::int8_t, std::int8_t>(scalar, steep, row) == tflite_softmax_row<std::int8_t>(ts, row));
  }
  // The smallest legal beta * scale (multiplier just above 1) and diff_min reaching -255.
  const tflite_params flat = tflite_prepare(1.0, 1.5 / double(1 << 26));
  const std::vector<int> wide = {-128, 127, 0, 5, -100};
  CHECK(npuq_softmax_row<std::int8_t, std::int8_t>(scalar, npuq_params(flat), wide) == tflite_softmax_row<std::int8_t>(flat, wide));
}

TEST_CASE("the exp table holds e() of every difference and is what the table variant uses", "[softmax][table]") {
  npuq_test::rng r(31);
  for (int trial = 0; trial < 50; ++trial) {
    const softmax_params p = softmax_params::tflite(r.uniform_real(0.2f, 2.0f), r.uniform_real(0.005f, 0.2f));
    const auto table = softmax_math::exp_table::generate(p);
    CHECK(table(0) == std::numeric_limits<std::int32_t>::max());  // exp(0) = 1.0
    for (int d = -255; d <= 0; ++d) {
      const std::int32_t want = d < p.diff_min ? 0
                                               : gemmlowp::exp_on_negative_values(gemmlowp::FixedPoint<std::int32_t, 5>::FromRaw(
                                                                                      gemmlowp::SaturatingRoundingDoublingHighMul(
                                                                                          d * (1 << p.input_left_shift), p.input_multiplier)))
                                                     .raw();
      CHECK(table(d) == want);
      if (d < 0) CHECK(table(d) <= table(d + 1));  // monotone
    }
  }
}

TEST_CASE("softmax runs over the last axis of any view", "[softmax][views]") {
  npuq_test::rng r(41);
  const softmax_params p = softmax_params::tflite(1.0f, 0.05f);
  // A [2, 3, 7] tensor, and the same data read through a transposed (column-major) view.
  Tensor<std::int8_t> x(Layout::row_major({2, 3, 7}));
  npuq_test::fill(x, r);
  Tensor<std::int8_t> y(Layout::row_major({2, 3, 7}));
  softmax(scalar, p, x, y);
  const tflite_params t{p.input_multiplier, p.input_left_shift, p.diff_min};
  for (int row = 0; row < 6; ++row) {
    std::vector<int> in, got;
    for (int i = 0; i < 7; ++i) {
      in.push_back(x.data()[row * 7 + i]);
      got.push_back(y.data()[row * 7 + i]);
    }
    CHECK(got == tflite_softmax_row<std::int8_t>(t, in));
  }
  // Softmax over the columns of a 5x4 matrix = softmax over the rows of its transpose.
  Tensor<std::int8_t> m(Layout::matrix(5, 4));
  npuq_test::fill(m, r);
  const TensorView<const std::int8_t> mt(m.data(), Layout::col_major(4, 5));  // [4, 5] view, element (i, j) = m(j, i)
  Tensor<std::int8_t> out_t(Layout::col_major(4, 5));                        // written through the same transposed layout
  softmax(scalar, p, mt, out_t);
  Tensor<std::int8_t> out_t_simd(Layout::col_major(4, 5));
  softmax(simd, p, mt, out_t_simd);
  for (int col = 0; col < 4; ++col) {
    std::vector<int> in, got, got_simd;
    for (int i = 0; i < 5; ++i) {
      in.push_back(m.data()[i * 4 + col]);
      got.push_back(out_t.data()[col + 4 * i]);
      got_simd.push_back(out_t_simd.data()[col + 4 * i]);
    }
    CHECK(got == tflite_softmax_row<std::int8_t>(t, in));
    CHECK(got_simd == got);
  }
  // Rank 1 and empty rows.
  Tensor<std::int8_t> v(Layout::row_major({3})), w(Layout::row_major({3}));
  v.data()[0] = 1, v.data()[1] = 1, v.data()[2] = 1;
  softmax(scalar, p, v, w);
  CHECK((w.data()[0] == -43 && w.data()[1] == -43 && w.data()[2] == -43));
  Tensor<std::int8_t> e(Layout::row_major({4, 0})), eo(Layout::row_major({4, 0}));
  CHECK(try_softmax(scalar, p, e, eo).ok());
}

TEST_CASE("long rows: TFLite's range, then npuq's exact extension", "[softmax][long]") {
  const softmax_params p = softmax_params::tflite(1.0f, 1.0f / 16);
  const tflite_params t{p.input_multiplier, p.input_left_shift, p.diff_min};
  // 511 equal values: the last length where TFLite's output shift is <= 31; 1/511 of 256 rounds to 1.
  const std::vector<int> r511(511, 3);
  CHECK(npuq_softmax_row<std::int8_t, std::int8_t>(scalar, p, r511) == tflite_softmax_row<std::int8_t>(t, r511));
  CHECK(npuq_softmax_row<std::int8_t, std::int8_t>(scalar, p, r511) == std::vector<int>(511, -127));
  // From 512 equal values on TFLite's shift exceeds 31 (undefined there); npuq divides exactly:
  // 256 / n < 0.5 rounds to 0, so every element is -128, including where an int32 sum would wrap.
  for (int n : {512, 600, 1024, 4096, 5000}) {
    const std::vector<int> row(static_cast<std::size_t>(n), 3);
    CHECK(npuq_softmax_row<std::int8_t, std::int8_t>(scalar, p, row) == std::vector<int>(static_cast<std::size_t>(n), -128));
    CHECK(npuq_softmax_row<std::int8_t, std::int8_t>(simd, p, row) == std::vector<int>(static_cast<std::size_t>(n), -128));
  }
  // A long row with one clear maximum keeps most of the mass on it.
  std::vector<int> peak(5000, -128);
  peak[4321] = 127;
  const std::vector<int> got = npuq_softmax_row<std::int8_t, std::int8_t>(scalar, p, peak);
  CHECK(got[4321] == 127);
  CHECK(std::count(got.begin(), got.end(), -128) == 4999);
}

// ---- bad input ----------------------------------------------------------------------------------

TEST_CASE("softmax rejects bad parameters and tensors without writing", "[softmax][validation]") {
  softmax_params p;
  CHECK(softmax_params::from_beta(0.0f, 0.1f, &p).code() == errc::invalid_argument);
  CHECK(softmax_params::from_beta(std::nanf(""), 0.1f, &p).code() == errc::invalid_argument);
  CHECK(softmax_params::from_beta(1.0f, -0.1f, &p).code() == errc::invalid_quantization);
  const status tiny = softmax_params::from_beta(1.0f, 1e-9f, &p);
  CHECK(tiny.code() == errc::invalid_argument);
  CHECK(tiny.message().find("too small") != std::string::npos);
  CHECK_THROWS_AS(softmax_params::tflite(-1.0f, 0.1f), npuq::error);

  const softmax_params good = softmax_params::tflite(1.0f, 0.1f);
  Tensor<std::int8_t> x(Layout::matrix(3, 8));
  auto run = [&](const softmax_params& q, const auto& out) {
    std::memset(static_cast<void*>(out.data()), 0x5A, static_cast<std::size_t>(out.storage_bytes()));
    const status s = try_softmax(scalar, q, x, out);
    const auto* b = reinterpret_cast<const unsigned char*>(out.data());
    for (std::int64_t i = 0; i < out.storage_bytes(); ++i) REQUIRE(b[i] == 0x5A);
    return s;
  };
  Tensor<std::int8_t> y(Layout::matrix(3, 8));
  CHECK(run(softmax_params::from_triple(1 << 29, 3, -10), y).message().find("input multiplier") != std::string::npos);
  CHECK(run(softmax_params::from_triple(1 << 30, 32, -10), y).message().find("left shift") != std::string::npos);
  CHECK(run(softmax_params::from_triple(1 << 30, 3, 1), y).message().find("diff_min") != std::string::npos);
  Tensor<std::int8_t> wrong_shape(Layout::matrix(3, 7));
  CHECK(run(good, wrong_shape).code() == errc::invalid_shape);
  Tensor<std::int8_t> wrong_rank(Layout::row_major({24}));
  CHECK(run(good, wrong_rank).code() == errc::invalid_shape);
  Tensor<std::int8_t> wrong_quant(Layout::matrix(3, 8), Quant::per_tensor(1.0f / 256, 0));
  const status q = run(good, wrong_quant);
  CHECK(q.code() == errc::invalid_quantization);
  CHECK(q.message().find("1/256") != std::string::npos);
  Tensor<std::int8_t> right_quant(Layout::matrix(3, 8), Quant::per_tensor(1.0f / 256, -128));
  CHECK(try_softmax(scalar, good, x, right_quant).ok());
  Tensor<std::uint8_t> right_quant_u8(Layout::matrix(3, 8), Quant::per_tensor(1.0f / 256, 0));
  Tensor<std::uint8_t> xu(Layout::matrix(3, 8));
  CHECK(try_softmax(scalar, good, xu, right_quant_u8).ok());
  // In place is rejected: the third pass reads inputs the first outputs would have overwritten.
  const status alias = try_softmax(scalar, good, x, x);
  CHECK(alias.code() == errc::aliasing);
  CHECK_THROWS_AS(softmax(scalar, good, x, x), npuq::error);
}

TEST_CASE("the simd row kernels: dense rows and the non-zero list decode uses agree with the reference", "[softmax][simd]") {
  npuq_test::rng r(51);
  for (int trial = 0; trial < 400; ++trial) {
    const softmax_params p = softmax_params::tflite(r.uniform_real(0.1f, 2.0f), r.uniform_real(0.01f, 0.5f));
    const isa level = cpu().levels()[static_cast<std::size_t>(trial) % cpu().levels().size()];
    const auto& tables = simd_detail::softmax_tables::cached(p, level);
    const int n = trial % 4 == 0 ? r.uniform(1, 70) : r.uniform(1, 2000);
    std::vector<std::int8_t> row(static_cast<std::size_t>(n));
    const int lo = trial % 5 == 0 ? -128 : r.uniform(-128, 127), hi = trial % 7 == 0 ? lo : r.uniform(lo, 127);
    for (auto& x : row) x = static_cast<std::int8_t>(r.uniform(lo, hi));
    std::vector<int> want_s8;
    {
      std::vector<int> in(row.begin(), row.end());
      want_s8 = npuq_softmax_row<std::int8_t, std::int8_t>(scalar, p, in);
    }
    std::vector<std::uint8_t> dense(static_cast<std::size_t>(n));
    simd_detail::softmax_row_s8(tables, row.data(), n, dense.data());
    std::vector<std::uint8_t> w(static_cast<std::size_t>(n));
    std::vector<std::int32_t> index(static_cast<std::size_t>(n));
    const std::int64_t count = simd_detail::softmax_row_nonzero(tables, row.data(), n, w.data(), index.data());
    std::vector<int> from_list(static_cast<std::size_t>(n), 0);
    for (std::int64_t i = 0; i < count; ++i) {
      CHECK(w[static_cast<std::size_t>(i)] != 0);
      if (i > 0) CHECK(index[static_cast<std::size_t>(i)] > index[static_cast<std::size_t>(i - 1)]);
      from_list[static_cast<std::size_t>(index[static_cast<std::size_t>(i)])] = w[static_cast<std::size_t>(i)];
    }
    for (int i = 0; i < n; ++i) {
      REQUIRE(int(dense[static_cast<std::size_t>(i)]) == want_s8[static_cast<std::size_t>(i)] + 128);  // uint8 P = int8 P + 128
      REQUIRE(from_list[static_cast<std::size_t>(i)] == want_s8[static_cast<std::size_t>(i)] + 128);
    }
  }
}
