// int16 softmax against data npuq did not compute itself.
//
// 1. The 513-entry table generator against transcriptions, written here, of TFLite's three
//    generators (gen_lut(std::function<double(double)>, ...), gen_lut<FloatT, int16_t, int16_t>
//    and LUTPopulate<int16_t> in tensorflow/lite/kernels/internal/common.h) in double and TFLM's
//    float runs of them, and against values published in Cadence's TFLM HiFi4 kernel
//    (foss-xtensa/nnlib-hifi4, xa_nnlib/algo/kernels/activations/hifi4/xa_nn_softmax_sym16s_16.c).
// 2. The interpolated lookup against a transcription of generic_int16_table_lookup, every input.
// 3. Parameter preparation against transcriptions of TFLite's and TFLM's SoftmaxPrepare.
// 4. Whole rows against a transcription of reference_integer_ops::SoftmaxInt16 on gemmlowp's
//    SRDHM and RoundingDivideByPOT (int32 sum, exponentials cached in the output as TFLite does).
// 5. TFLM's softmax_test goldens (float softmax values, tolerance 1 or 7 quantized steps).
// 6. scalar == simd, strided views, npuq's definition where TFLite is undefined, bad input.
#include "support/catch.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <gemmlowp/fixedpoint/fixedpoint.h>
#include <npuq/npuq.hpp>

#include "support/random.hpp"

using namespace npuq;

namespace {

// ---- TFLite's table generators and lookup, transcribed ------------------------------------------

using table = std::vector<std::int16_t>;

// The original generator: gen_lut(const std::function<double(double)>&, min, max, table, num).
table tfl_gen_lut_function(const std::function<double(double)>& func, double min, double max) {
  const int num = 513;
  table t(num);
  const double step = (max - min) / (num - 1);
  const double half_step = step / 2.0;
  for (int i = 0; i < num - 1; i++) {
    const double sample_val = std::round(func(min + i * step) * 32768.0);
    const double midpoint_interp_val =
        std::round((func(min + (i + 1) * step) * 32768.0 + std::round(func(min + i * step) * 32768.0)) / 2.0);
    const double midpoint_val = std::round(func(min + i * step + half_step) * 32768.0);
    const double midpoint_err = midpoint_interp_val - midpoint_val;
    const double bias = std::round(midpoint_err / 2.0);
    t[static_cast<std::size_t>(i)] = static_cast<std::int16_t>(std::min(std::max(sample_val - bias, -32768.0), 32767.0));
  }
  t[num - 1] = static_cast<std::int16_t>(std::min(std::max(std::round(func(max) * 32768.0), -32768.0), 32767.0));
  return t;
}

// gen_lut<FloatT, int16_t, int16_t>(func, input_min, input_max, output_min, output_max, lut).
template <class FloatT>
table tfl_gen_lut_template(FloatT (*func)(FloatT), FloatT input_min, FloatT input_max, FloatT output_min, FloatT output_max) {
  const int nb_steps = 512;
  table lut(nb_steps + 1);
  const FloatT step = (input_max - input_min) / nb_steps;
  const FloatT half_step = step / 2;
  const FloatT output_scaling_inv = static_cast<FloatT>(32767 - (-32768) + 1) / (output_max - output_min);
  const FloatT table_min = -32768, table_max = 32767;
  for (int i = 0; i < nb_steps; i++) {
    const FloatT val = func(input_min + i * step);
    const FloatT val_midpoint = func(input_min + i * step + half_step);
    const FloatT val_next = func(input_min + (i + 1) * step);
    const FloatT sample_val = std::round(val * output_scaling_inv);
    const FloatT midpoint_interp_val = std::round((val_next * output_scaling_inv + std::round(val * output_scaling_inv)) / 2);
    const FloatT midpoint_val = std::round(val_midpoint * output_scaling_inv);
    const FloatT midpoint_err = midpoint_interp_val - midpoint_val;
    const FloatT bias = std::round(midpoint_err / 2);
    lut[static_cast<std::size_t>(i)] = static_cast<std::int16_t>(std::min<FloatT>(std::max<FloatT>(sample_val - bias, table_min), table_max));
  }
  lut[nb_steps] = static_cast<std::int16_t>(
      std::min<FloatT>(std::max<FloatT>(std::round(func(input_max) * output_scaling_inv), table_min), table_max));
  return lut;
}

// LUTPopulate<int16_t>(input_scale, input_zero_point, output_scale, output_zero_point, func, lut).
template <class FloatT>
table tfl_lut_populate(FloatT input_scale, std::int32_t input_zero_point, FloatT output_scale, std::int32_t output_zero_point,
                       FloatT (*func)(FloatT)) {
  const FloatT input_min = input_scale * (-32768 - input_zero_point);
  const FloatT input_max = input_scale * (32767 - input_zero_point);
  const FloatT output_min = output_scale * (-32768 - output_zero_point);
  const FloatT output_max = output_scale * (32767 - output_zero_point);
  return tfl_gen_lut_template<FloatT>(func, input_min, input_max, output_min, output_max);
}

double exp_d(double x) { return std::exp(x); }
double recip_d(double x) { return 1.0 / (1.0 + x); }
float exp_f(float x) { return std::exp(x); }
float recip_f(float x) { return 1.0f / (1.0f + x); }

// generic_int16_table_lookup / LUTLookup.
std::int16_t tfl_lookup(std::int16_t value, const std::int16_t* lut) {
  const std::uint16_t index = static_cast<std::uint16_t>(256 + (value >> 7));
  const std::int16_t offset = value & 0x7f;
  const std::int16_t base = lut[index];
  const std::int16_t slope = static_cast<std::int16_t>(lut[index + 1] - lut[index]);
  const int delta = (slope * offset + 64) >> 7;
  return static_cast<std::int16_t>(base + delta);
}

table entries(const int16_lut& l) { return table(l.entry.begin(), l.entry.end()); }

// ---- TFLite's preparation and SoftmaxInt16, transcribed -----------------------------------------

struct tfl_params {
  std::int32_t input_multiplier;
  int input_left_shift;
  table exp_lut, one_over_one_plus_x_lut;
};

// QuantizeMultiplier.
void tfl_quantize_multiplier(double double_multiplier, std::int32_t* quantized_multiplier, int* shift) {
  const double q = std::frexp(double_multiplier, shift);
  auto q_fixed = static_cast<std::int64_t>(std::round(q * (1LL << 31)));
  if (q_fixed == (1LL << 31)) {
    q_fixed /= 2;
    ++*shift;
  }
  if (*shift < -31) {
    *shift = 0;
    q_fixed = 0;
  }
  *quantized_multiplier = static_cast<std::int32_t>(q_fixed);
}

// SoftmaxPrepare, int16 branch: TFLite multiplies the float scale and beta in float, TFLM in double.
tfl_params tfl_prepare(float beta, float input_scale, bool tflm) {
  tfl_params p;
  const double input_scale_beta_rescale =
      (tflm ? static_cast<double>(input_scale) * static_cast<double>(beta) : static_cast<double>(input_scale * beta)) /
      (10.0 / 65535.0);
  tfl_quantize_multiplier(input_scale_beta_rescale, &p.input_multiplier, &p.input_left_shift);
  const std::int32_t range = 32767 - (-32768);
  if (tflm) {
    p.exp_lut = tfl_lut_populate<float>(10.0f / range, 32767, 2.0f / range, 0, exp_f);
    p.one_over_one_plus_x_lut = tfl_lut_populate<float>(1.0f / range, -32768, 2.0f / range, 0, recip_f);
  } else {
    p.exp_lut = tfl_lut_populate<double>(10.0 / range, 32767, 2.0 / range, 0, exp_d);
    p.one_over_one_plus_x_lut = tfl_lut_populate<double>(1.0 / range, -32768, 2.0 / range, 0, recip_d);
  }
  return p;
}

// MultiplyByQuantizedMultiplier (double rounding), on gemmlowp.
std::int32_t tfl_multiply_by_quantized_multiplier(std::int32_t x, std::int32_t quantized_multiplier, int shift) {
  const int left_shift = shift > 0 ? shift : 0;
  const int right_shift = shift > 0 ? 0 : -shift;
  REQUIRE(std::abs(static_cast<std::int64_t>(x) * (std::int64_t{1} << left_shift)) <= (std::int64_t{1} << 31));  // defined
  return gemmlowp::RoundingDivideByPOT(gemmlowp::SaturatingRoundingDoublingHighMul(x * (1 << left_shift), quantized_multiplier),
                                       right_shift);
}

// reference_integer_ops::SoftmaxInt16 on one row.
std::vector<int> tfl_softmax_int16_row(const tfl_params& params, const std::vector<int>& in) {
  const int depth = static_cast<int>(in.size());
  std::vector<std::int16_t> output_data(in.size());
  std::int16_t max_in_row = std::numeric_limits<std::int16_t>::min();
  for (int c = 0; c < depth; ++c) max_in_row = std::max(max_in_row, static_cast<std::int16_t>(in[static_cast<std::size_t>(c)]));
  std::int32_t sum_of_exps = 0;
  std::int16_t* exp_results_Q015 = output_data.data();
  for (int c = 0; c < depth; ++c) {
    const std::int32_t input_diff = in[static_cast<std::size_t>(c)] - max_in_row;
    const std::int32_t scaled_diff = tfl_multiply_by_quantized_multiplier(input_diff, params.input_multiplier, params.input_left_shift);
    const std::int32_t sym_scaled_diff = scaled_diff + 32767;
    const std::int16_t sat_sym_scaled_diff = static_cast<std::int16_t>(std::min(std::max(sym_scaled_diff, -32768), 32767));
    exp_results_Q015[c] = tfl_lookup(sat_sym_scaled_diff, params.exp_lut.data());
    REQUIRE(static_cast<std::int64_t>(sum_of_exps) + exp_results_Q015[c] <= std::numeric_limits<std::int32_t>::max());  // defined
    sum_of_exps += exp_results_Q015[c];
  }
  const int headroom_plus_one = __builtin_clz(static_cast<std::uint32_t>(sum_of_exps));
  const std::int32_t shifted_sum =
      static_cast<std::int32_t>(((static_cast<std::int64_t>(sum_of_exps) << (headroom_plus_one - 1)) + (1 << 13)) >> 14);
  const std::int32_t sym_shifted_sum = shifted_sum + (-((1 << 15) + (1 << 16)));
  const std::int16_t sat_sym_shifted_sum = static_cast<std::int16_t>(std::min(std::max(sym_shifted_sum, -32768), 32767));
  const std::int16_t reciprocal_scale_Q015 = tfl_lookup(sat_sym_shifted_sum, params.one_over_one_plus_x_lut.data());
  std::vector<int> out;
  for (int c = 0; c < depth; ++c) {
    const int right_shift = 31 - headroom_plus_one;
    const std::int64_t round = 1 << (right_shift - 1);
    const auto result = static_cast<std::int32_t>(
        (static_cast<std::int64_t>(exp_results_Q015[c]) * static_cast<std::int64_t>(reciprocal_scale_Q015) + round) >> right_shift);
    out.push_back(std::min(std::max(result, 0), 32767));
  }
  return out;
}

softmax_int16_params npuq_params(const tfl_params& t, softmax_int16_runtime runtime) {
  return softmax_int16_params::from_multiplier(t.input_multiplier, t.input_left_shift, runtime);
}

// ---- npuq on one row ----------------------------------------------------------------------------

template <class Backend>
std::vector<int> npuq_row(const Backend& backend, const softmax_int16_params& p, const std::vector<int>& in) {
  const auto n = static_cast<std::int64_t>(in.size());
  Tensor<std::int16_t> x(Layout::row_major({1, n}));
  Tensor<std::int16_t> y(Layout::row_major({1, n}), Quant::per_tensor(1.0f / 32768.0f, 0));
  for (std::int64_t i = 0; i < n; ++i) x.data()[i] = static_cast<std::int16_t>(in[static_cast<std::size_t>(i)]);
  softmax(backend, p, x, y);
  return std::vector<int>(y.data(), y.data() + n);
}

std::vector<int> random_row(npuq_test::rng& r, int n, int lo, int hi) {
  std::vector<int> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = r.uniform(lo, hi);
  return v;
}

}  // namespace

// ---- 1. the table generator ---------------------------------------------------------------------

TEST_CASE("the int16 table generator equals TFLite's three generators and TFLM's float ones", "[softmax16][lut]") {
  const std::int32_t range = 65535;
  const int16_lut exp_d_npuq = int16_lut::generate([](double x) { return std::exp(x); }, -10.0, 0.0);
  const int16_lut recip_d_npuq = int16_lut::generate([](double x) { return 1.0 / (1.0 + x); }, 0.0, 1.0);
  // TFLite: all three generators give one table per function.
  CHECK(entries(exp_d_npuq) == tfl_gen_lut_function(exp_d, -10.0, 0.0));
  CHECK(entries(exp_d_npuq) == tfl_gen_lut_template<double>(exp_d, -10.0, 0.0, -1.0, 1.0));
  CHECK(entries(exp_d_npuq) == tfl_lut_populate<double>(10.0 / range, 32767, 2.0 / range, 0, exp_d));
  CHECK(entries(recip_d_npuq) == tfl_gen_lut_function(recip_d, 0.0, 1.0));
  CHECK(entries(recip_d_npuq) == tfl_gen_lut_template<double>(recip_d, 0.0, 1.0, -1.0, 1.0));
  CHECK(entries(recip_d_npuq) == tfl_lut_populate<double>(1.0 / range, -32768, 2.0 / range, 0, recip_d));
  // TFLM: the same code in float (gen_lut<float, ...>, then LUTPopulate<int16_t> with float).
  const int16_lut exp_f_npuq = int16_lut::generate([](float x) { return std::exp(x); }, -10.0f, 0.0f);
  const int16_lut recip_f_npuq = int16_lut::generate([](float x) { return 1.0f / (1.0f + x); }, 0.0f, 1.0f);
  CHECK(entries(exp_f_npuq) == tfl_gen_lut_template<float>(exp_f, -10.0f, 0.0f, -1.0f, 1.0f));
  CHECK(entries(exp_f_npuq) == tfl_lut_populate<float>(10.0f / range, 32767, 2.0f / range, 0, exp_f));
  CHECK(entries(recip_f_npuq) == tfl_gen_lut_template<float>(recip_f, 0.0f, 1.0f, -1.0f, 1.0f));
  CHECK(entries(recip_f_npuq) == tfl_lut_populate<float>(1.0f / range, -32768, 2.0f / range, 0, recip_f));
  // float and double disagree in two entries of 1/(1+x) (float arithmetic only, no libm involved).
  std::vector<int> differ;
  for (int i = 0; i < int16_lut::size; ++i)
    if (recip_f_npuq.entry[static_cast<std::size_t>(i)] != recip_d_npuq.entry[static_cast<std::size_t>(i)]) differ.push_back(i);
  CHECK(differ == std::vector<int>{160, 294});
  CHECK(recip_d_npuq.entry[160] == 24967);
  CHECK(recip_d_npuq.entry[294] == 20815);
  // The tables the parameters carry.
  CHECK(softmax_int16_math::exp_lut(softmax_int16_runtime::tflite) == exp_d_npuq);
  CHECK(softmax_int16_math::one_over_one_plus_x_lut(softmax_int16_runtime::tflite) == recip_d_npuq);
  CHECK(softmax_int16_math::exp_lut(softmax_int16_runtime::tflm) == exp_f_npuq);
  CHECK(softmax_int16_math::one_over_one_plus_x_lut(softmax_int16_runtime::tflm) == recip_f_npuq);
  CHECK(softmax_int16_params{}.exp_lut == exp_d_npuq);
}

TEST_CASE("the int16 tables hold the published and hand-derived values", "[softmax16][lut]") {
  const int16_lut& e = softmax_int16_math::exp_lut(softmax_int16_runtime::tflite);
  const int16_lut& r = softmax_int16_math::one_over_one_plus_x_lut(softmax_int16_runtime::tflite);
  // By hand: the last entries are plain round(f(x) * 32768), clamped: exp(0) -> 32768 -> 32767 and
  // 1/(1+1) -> 16384; 1/(1+0) -> 32768 -> 32767 (its bias is 0: f is nearly linear at that scale).
  CHECK(e.entry[512] == 32767);
  CHECK(r.entry[512] == 16384);
  CHECK(r.entry[0] == 32767);
  // exp(-10) * 32768 = 1.49; the interpolation bias raises the first entry to 2.
  CHECK(e.entry[0] == 2);
  // Monotone like the functions.
  for (std::size_t i = 1; i < 513; ++i) {
    CHECK(e.entry[i] >= e.entry[i - 1]);
    CHECK(r.entry[i] <= r.entry[i - 1]);
  }
  // Published: Cadence's TFLM HiFi4 kernel (xa_nn_softmax_sym16s_16.c) ships both tables; every
  // 32nd entry and the two where TFLM's float tables differ from TFLite's double ones.
  const std::vector<std::pair<int, int>> published_exp = {
      {0, 2},       {32, 3},      {64, 5},      {96, 10},     {128, 18},    {160, 34},    {192, 63},    {224, 118},  {256, 221},
      {288, 413},   {320, 771},   {352, 1440},  {384, 2690},  {416, 5024},  {448, 9387},  {480, 17539}, {512, 32767}};
  const std::vector<std::pair<int, int>> published_recip = {
      {0, 32767},   {32, 30840},  {64, 29127},  {96, 27594},  {128, 26214}, {160, 24966}, {192, 23831}, {224, 22795},
      {256, 21845}, {288, 20971}, {294, 20816}, {320, 20165}, {352, 19418}, {384, 18725}, {416, 18079}, {448, 17476},
      {480, 16913}, {512, 16384}};
  const int16_lut& e_tflm = softmax_int16_math::exp_lut(softmax_int16_runtime::tflm);
  const int16_lut& r_tflm = softmax_int16_math::one_over_one_plus_x_lut(softmax_int16_runtime::tflm);
  for (const auto& [i, v] : published_exp) {
    INFO("exp entry " << i);
    CHECK(e_tflm.entry[static_cast<std::size_t>(i)] == v);
    CHECK(e.entry[static_cast<std::size_t>(i)] == v);
  }
  for (const auto& [i, v] : published_recip) {
    INFO("1/(1+x) entry " << i);
    CHECK(r_tflm.entry[static_cast<std::size_t>(i)] == v);
    if (i != 160 && i != 294) CHECK(r.entry[static_cast<std::size_t>(i)] == v);
  }
}

// ---- 2. the lookup ------------------------------------------------------------------------------

TEST_CASE("the interpolated lookup equals generic_int16_table_lookup on every input", "[softmax16][lut]") {
  npuq_test::rng rng(61);
  std::vector<int16_lut> tables = {softmax_int16_math::exp_lut(softmax_int16_runtime::tflite),
                                   softmax_int16_math::one_over_one_plus_x_lut(softmax_int16_runtime::tflite)};
  // Random tables, including steps beyond 2^15 where TFLite's int16 slope wraps.
  for (int k = 0; k < 3; ++k) {
    int16_lut t;
    for (auto& v : t.entry) v = static_cast<std::int16_t>(k == 0 ? rng.uniform(-300, 300) : rng.uniform(-32768, 32767));
    tables.push_back(t);
  }
  for (std::size_t k = 0; k < tables.size(); ++k) {
    int mismatches = 0;
    for (int v = -32768; v <= 32767; ++v) {
      const auto x = static_cast<std::int16_t>(v);
      if (tables[k].lookup(x) != tfl_lookup(x, tables[k].entry.data()) && ++mismatches < 5)
        FAIL_CHECK("table " << k << " lookup(" << v << ") = " << tables[k].lookup(x) << ", TFLite " << tfl_lookup(x, tables[k].entry.data()));
    }
    CHECK(mismatches == 0);
  }
  // Sample points are exact: v = (i - 256) * 128 reads entry i.
  const int16_lut& e = tables[0];
  for (int i = 0; i < 512; ++i) CHECK(e.lookup(static_cast<std::int16_t>((i - 256) * 128)) == e.entry[static_cast<std::size_t>(i)]);
}

// ---- 3. parameters ------------------------------------------------------------------------------

TEST_CASE("int16 softmax parameters follow TFLite's and TFLM's preparation", "[softmax16][params]") {
  // beta = 1, scale = 0.5: 0.5 * 6553.5 = 3276.75 = (13107 / 16384) * 2^12, multiplier 13107 * 2^17.
  const softmax_int16_params half = softmax_int16_params::tflite(1.0f, 0.5f);
  CHECK(half.input_multiplier == 13107 * (1 << 17));
  CHECK(half.input_shift == 12);
  npuq_test::rng r(62);
  for (int i = 0; i < 3000; ++i) {
    const float beta = i % 3 == 0 ? 1.0f : r.uniform_real(0.05f, 4.0f);
    const float scale = std::ldexp(r.uniform_real(1.0f, 2.0f), -r.uniform(2, 18));
    for (const bool tflm : {false, true}) {
      const tfl_params t = tfl_prepare(beta, scale, tflm);
      const softmax_int16_params q = tflm ? softmax_int16_params::tflm(beta, scale) : softmax_int16_params::tflite(beta, scale);
      INFO("beta " << beta << " scale " << scale << (tflm ? " tflm" : " tflite"));
      CHECK(q.input_multiplier == t.input_multiplier);
      CHECK(q.input_shift == t.input_left_shift);
      CHECK(entries(q.exp_lut) == t.exp_lut);
      CHECK(entries(q.one_over_one_plus_x_lut) == t.one_over_one_plus_x_lut);
    }
  }
}

// ---- 4. whole rows ------------------------------------------------------------------------------

TEST_CASE("int16 softmax rows equal TFLite's SoftmaxInt16", "[softmax16][tflite]") {
  npuq_test::rng r(63);
  for (int trial = 0; trial < 800; ++trial) {
    const bool tflm = trial % 4 == 3;
    const softmax_int16_runtime runtime = tflm ? softmax_int16_runtime::tflm : softmax_int16_runtime::tflite;
    const float beta = trial % 2 == 0 ? 1.0f : r.uniform_real(0.1f, 3.0f);
    const float scale = std::ldexp(r.uniform_real(1.0f, 2.0f), -r.uniform(3, 17));  // beta * scale < 5: no overflow
    const tfl_params t = tfl_prepare(beta, scale, tflm);
    const int n = trial < 100 ? 1 + trial % 25 : r.uniform(1, trial % 10 == 0 ? 5000 : 400);
    const int lo = trial % 5 == 0 ? -32768 : r.uniform(-32768, 32767);
    const int hi = trial % 7 == 0 ? 32767 : r.uniform(lo, 32767);
    const std::vector<int> row = random_row(r, n, lo, hi);
    const std::vector<int> want = tfl_softmax_int16_row(t, row);
    INFO("trial " << trial << " n " << n << " beta " << beta << " scale " << scale << (tflm ? " tflm" : ""));
    const softmax_int16_params p = npuq_params(t, runtime);
    CHECK(npuq_row(scalar, p, row) == want);
    CHECK(npuq_row(simd, p, row) == want);
  }
}

TEST_CASE("int16 softmax edge rows", "[softmax16][edges]") {
  const float scale = 1.0f / 2048;  // typical int16 activations: [-16, 16)
  const softmax_int16_params p = softmax_int16_params::tflite(1.0f, scale);
  const tfl_params t = tfl_prepare(1.0f, scale, false);
  std::vector<std::vector<int>> rows = {
      {-32768},
      {32767},
      {0},
      std::vector<int>(2, 5),
      std::vector<int>(3, -32768),
      std::vector<int>(7, 32767),
      std::vector<int>(100, 1234),
      std::vector<int>(1000, -7),
      {32767, -32768},
      {-32768, 32767, -32768, 32767},
      {32767, 32766, 32765, -32768},
  };
  std::vector<int> one_large(50, -32768);
  one_large[17] = 32767;
  rows.push_back(one_large);
  std::vector<int> one_large_close(50, 0);
  one_large_close[3] = 2048;  // e^1 times the others
  rows.push_back(one_large_close);
  for (const auto& row : rows) {
    INFO("row of " << row.size() << " starting " << row[0]);
    const std::vector<int> want = tfl_softmax_int16_row(t, row);
    CHECK(npuq_row(scalar, p, row) == want);
    CHECK(npuq_row(simd, p, row) == want);
  }
  // A single element: the whole probability, 32767 (1.0 saturated).
  CHECK(npuq_row(scalar, p, {-32768}) == std::vector<int>{32767});
  // One large value among values 65535 steps (32 in real units) below it: they sit at the exp
  // table's floor, entry 0 = 2 (exp(-10) * 32768 = 1.5, raised by the bias), so each of the 49
  // gets 2 / (32762 + 49 * 2) of the mass: 2 steps; the large one 32762 / 32860 of it.
  const std::vector<int> got = npuq_row(scalar, p, one_large);
  CHECK(std::abs(got[17] - 32670) <= 1);
  for (std::size_t i = 0; i < got.size(); ++i)
    if (i != 17) CHECK(got[i] == 2);
  // All equal: about 32768 / n each.
  for (int n : {2, 3, 4, 8, 100, 1000}) {
    const std::vector<int> eq = npuq_row(scalar, p, std::vector<int>(static_cast<std::size_t>(n), 42));
    CHECK(std::abs(eq[0] - 32768 / n) <= 1);
    CHECK(std::count(eq.begin(), eq.end(), eq[0]) == n);
  }
}

// ---- 5. TFLM's goldens --------------------------------------------------------------------------

TEST_CASE("int16 softmax meets TFLM's softmax_test goldens", "[softmax16][tflm]") {
  // tensorflow/lite/micro/kernels/softmax_test.cc: input scale 0.1, zero point 0, beta 1; goldens
  // are float softmax values quantized with scale 1/32768; tolerance 1 (1-D, 2-D) or 7 (3-D).
  const float input_1d[] = {1.0, 2.0, 3.0, 4.0, 5.0};
  const float golden_1d[] = {0.011656231f, 0.031684921f, 0.086128544f, 0.234121657f, 0.636408647f};
  const float input_3d[] = {3.00,  6.00,  -5.00,  4.00,  -9.00, -10.00, -10.00, -8.00, 2.00,  2.00,  8.00,  -5.00,
                            -8.00, 5.00,  -6.00,  -8.00, 6.00,  1.00,   -10.00, -8.00, 7.00,  6.00,  -10.00, -4.00,
                            -5.00, 2.00,  7.00,   9.00,  -9.00, 7.00,   -4.00,  -2.00, 8.00,  2.00,  2.00,  3.00,
                            6.00,  6.00,  2.00,   4.00,  9.00,  7.00,   -7.00,  0.00,  4.00,  -3.00, 8.00,  8.00,
                            -3.00, -4.00, -9.00,  -9.00, 4.00,  -8.00,  -1.00,  -10.00, -2.00, 6.00, -7.00, 0.00};
  const float golden_3d[] = {
      0.042009463f, 0.843782625f, 0.000014093f, 0.114193561f, 0.000000258f, 0.000003072f, 0.000003072f, 0.000022699f,
      0.499985578f, 0.499985578f, 0.952571219f, 0.000002153f, 0.000000107f, 0.047425728f, 0.000000792f, 0.000000826f,
      0.993305397f, 0.006692839f, 0.000000112f, 0.000000826f, 0.731046347f, 0.268936922f, 0.000000030f, 0.000012210f,
      0.000004492f, 0.000717124f, 0.106430599f, 0.786421666f, 0.000000012f, 0.106430599f, 0.000006114f, 0.000045174f,
      0.995015917f, 0.002466398f, 0.002466398f, 0.022595176f, 0.453836234f, 0.453836234f, 0.008312301f, 0.061420055f,
      0.875505904f, 0.118486839f, 0.000000099f, 0.000108046f, 0.005899112f, 0.000008351f, 0.499990113f, 0.499990113f,
      0.000008351f, 0.000003072f, 0.000002245f, 0.000002245f, 0.993296627f, 0.000006103f, 0.006692780f, 0.000000112f,
      0.000334520f, 0.997191323f, 0.000002254f, 0.002471790f};
  static_assert(sizeof(input_3d) == sizeof(golden_3d) && sizeof(input_3d) == 60 * sizeof(float), "12 rows of 5");
  auto check = [](const softmax_int16_params& p, const float* input, const float* golden, int rows, int tolerance) {
    Tensor<std::int16_t> x(Layout::row_major({rows, 5}), Quant::per_tensor(0.1f, 0));
    Tensor<std::int16_t> y(Layout::row_major({rows, 5}), Quant::per_tensor(1.0f / 32768, 0));
    for (int i = 0; i < rows * 5; ++i) x.data()[i] = static_cast<std::int16_t>(std::round(input[i] / 0.1f));
    softmax(scalar, p, x, y);
    for (int i = 0; i < rows * 5; ++i) {
      INFO("element " << i);
      CHECK(std::abs(y.data()[i] - static_cast<int>(std::round(golden[i] * 32768.0f))) <= tolerance);
    }
  };
  for (const softmax_int16_params& p : {softmax_int16_params::tflite(1.0f, 0.1f), softmax_int16_params::tflm(1.0f, 0.1f)}) {
    check(p, input_1d, golden_1d, 1, 1);
    check(p, input_3d, golden_3d, 12, 7);
  }
}

// ---- 6. views, npuq's extension, bad input ------------------------------------------------------

TEST_CASE("int16 softmax runs over the last axis of any view on both backends", "[softmax16][views]") {
  npuq_test::rng r(64);
  const softmax_int16_params p = softmax_int16_params::tflite(1.0f, 1.0f / 1024);
  const tfl_params t = tfl_prepare(1.0f, 1.0f / 1024, false);
  Tensor<std::int16_t> x(Layout::row_major({2, 3, 11}));
  npuq_test::fill(x, r, -4000, 4000);
  Tensor<std::int16_t> y(Layout::row_major({2, 3, 11})), y_simd(Layout::row_major({2, 3, 11}));
  softmax(scalar, p, x, y);
  softmax(simd, p, x, y_simd);
  CHECK(simd_last_kernel() == "softmax_s16_lut");
  for (int row = 0; row < 6; ++row) {
    const std::vector<int> in(x.data() + row * 11, x.data() + row * 11 + 11);
    CHECK(std::vector<int>(y.data() + row * 11, y.data() + row * 11 + 11) == tfl_softmax_int16_row(t, in));
  }
  CHECK(std::equal(y.data(), y.data() + 66, y_simd.data()));
  // Softmax over the columns of a 9x6 matrix = over the rows of its transposed view.
  Tensor<std::int16_t> m(Layout::matrix(9, 6));
  npuq_test::fill(m, r);
  const TensorView<const std::int16_t> mt(m.data(), Layout::col_major(6, 9));
  Tensor<std::int16_t> out_t(Layout::col_major(6, 9)), out_t_simd(Layout::col_major(6, 9));
  softmax(scalar, p, mt, out_t);
  softmax(simd, p, mt, out_t_simd);
  CHECK(simd_last_kernel() == "softmax_s16_lut_strided");
  for (int col = 0; col < 6; ++col) {
    std::vector<int> in, got, got_simd;
    for (int i = 0; i < 9; ++i) {
      in.push_back(m.data()[i * 6 + col]);
      got.push_back(out_t.data()[col + 6 * i]);
      got_simd.push_back(out_t_simd.data()[col + 6 * i]);
    }
    CHECK(got == tfl_softmax_int16_row(t, in));
    CHECK(got_simd == got);
  }
  // Empty rows.
  Tensor<std::int16_t> e(Layout::row_major({4, 0})), eo(Layout::row_major({4, 0}));
  CHECK(try_softmax(scalar, p, e, eo).ok());
  CHECK(try_softmax(simd, p, e, eo).ok());
}

TEST_CASE("int16 softmax where TFLite is undefined: npuq's exact extension", "[softmax16][extension]") {
  // (1) d * 2^left overflowing int32: multiplier 2^30 with shift 20 (beta * scale ~ 80); d = -2048
  // is the last difference TFLite computes, and every d below it lands on the same table input.
  const softmax_int16_params steep = softmax_int16_params::from_multiplier(1 << 30, 20);
  const tfl_params t_steep{1 << 30, 20, entries(steep.exp_lut), entries(steep.one_over_one_plus_x_lut)};
  const std::vector<int> defined = {0, -2048, -3, -2043};
  const std::vector<int> want = tfl_softmax_int16_row(t_steep, defined);
  for (const std::vector<int>& row : {std::vector<int>{0, -2049, -3, -2043}, std::vector<int>{0, -30000, -3, -2043},
                                      std::vector<int>{32767, -32768, 32764, -2043}}) {
    CHECK(npuq_row(scalar, steep, row) == want);
    CHECK(npuq_row(simd, steep, row) == want);
  }
  // (2) Sums of 2^31 and more. Equal values each give e = lookup(32767) = 32762, so the int32 sum
  // stays below 2^31 up to 65548 elements; beyond, npuq evaluates the same formula exactly.
  const softmax_int16_params p = softmax_int16_params::tflite(1.0f, 1.0f / 2048);
  const tfl_params t = tfl_prepare(1.0f, 1.0f / 2048, false);
  const std::int16_t e = p.exp_lut.lookup(32767);
  REQUIRE(e == 32762);
  const std::vector<int> last_defined(65548, 9);
  const std::vector<int> got_defined = npuq_row(scalar, p, last_defined);
  CHECK(got_defined == tfl_softmax_int16_row(t, last_defined));
  for (const int n : {65549, 70000, 131072, 200000}) {
    // The definition in long double (exact at these sizes): h = 32 - bit length of the sum,
    // x = round(sum * 2^(h - 15)) - 3 * 2^15, out = round(e * recip / 2^(31 - h)), ties up.
    const long double sum = static_cast<long double>(n) * e;
    int h = 32;
    for (long double s = sum; s >= 1.0L; s /= 2.0L) --h;
    const long double shifted = std::floor(std::ldexp(sum, h - 15) + 0.5L);
    const auto sym = static_cast<std::int16_t>(std::min<long double>(std::max<long double>(shifted - 98304.0L, -32768.0L), 32767.0L));
    const std::int16_t recip = tfl_lookup(sym, p.one_over_one_plus_x_lut.entry.data());
    const auto expect = static_cast<int>(std::floor(std::ldexp(static_cast<long double>(e) * recip, -(31 - h)) + 0.5L));
    const std::vector<int> row(static_cast<std::size_t>(n), 9);
    const std::vector<int> got = npuq_row(scalar, p, row);
    INFO("n " << n << " h " << h << " expect " << expect);
    CHECK(got == std::vector<int>(static_cast<std::size_t>(n), expect));
    CHECK(npuq_row(simd, p, row) == got);
    CHECK(expect <= got_defined[0]);
  }
  // A long row with one clear maximum: the others sit at the table's floor (2 each), their int32
  // sum stays defined, and the maximum keeps 32762 / (32762 + 99999 * 2) of the mass.
  std::vector<int> peak(100000, -30000);
  peak[4321] = 30000;
  const std::vector<int> got = npuq_row(scalar, p, peak);
  CHECK(got == tfl_softmax_int16_row(t, peak));
  CHECK(npuq_row(simd, p, peak) == got);
  CHECK(std::abs(got[4321] - 4612) <= 1);
  CHECK(std::count(got.begin(), got.end(), 0) == 99999);
}

TEST_CASE("int16 softmax rejects bad parameters and tensors without writing", "[softmax16][validation]") {
  softmax_int16_params p;
  CHECK(softmax_int16_params::from_beta(0.0f, 0.1f, &p).code() == errc::invalid_argument);
  CHECK(softmax_int16_params::from_beta(std::nanf(""), 0.1f, &p).code() == errc::invalid_argument);
  CHECK(softmax_int16_params::from_beta(1.0f, -0.1f, &p).code() == errc::invalid_quantization);
  CHECK(softmax_int16_params::from_beta(1.0f, std::numeric_limits<float>::infinity(), &p).code() == errc::invalid_quantization);
  const status tiny = softmax_int16_params::from_beta(1e-20f, 1e-20f, &p);
  CHECK(tiny.code() == errc::invalid_argument);
  CHECK(tiny.message().find("too small") != std::string::npos);
  const status huge = softmax_int16_params::from_beta(1e20f, 1e10f, &p);
  CHECK(huge.code() == errc::invalid_argument);
  CHECK(huge.message().find("too large") != std::string::npos);
  CHECK_THROWS_AS(softmax_int16_params::tflite(-1.0f, 0.1f), npuq::error);
  CHECK_THROWS_AS(softmax_int16_params::tflm(1.0f, 0.0f), npuq::error);

  const softmax_int16_params good = softmax_int16_params::tflite(1.0f, 0.001f);
  Tensor<std::int16_t> x(Layout::matrix(3, 8));
  auto run = [&](const softmax_int16_params& q, const auto& in, const auto& out) {
    std::memset(static_cast<void*>(out.data()), 0x5A, static_cast<std::size_t>(out.storage_bytes()));
    const status s = try_softmax(scalar, q, in, out);
    const status s_simd = try_softmax(simd, q, in, out);
    CHECK(s.code() == s_simd.code());
    const auto* b = reinterpret_cast<const unsigned char*>(out.data());
    for (std::int64_t i = 0; i < out.storage_bytes(); ++i) REQUIRE(b[i] == 0x5A);
    return s;
  };
  Tensor<std::int16_t> y(Layout::matrix(3, 8));
  CHECK(run(softmax_int16_params::from_multiplier(1 << 29, 3), x, y).message().find("input multiplier") != std::string::npos);
  CHECK(run(softmax_int16_params::from_multiplier(1 << 30, 32), x, y).message().find("input shift") != std::string::npos);
  CHECK(run(softmax_int16_params::from_multiplier(1 << 30, -32), x, y).message().find("input shift") != std::string::npos);
  int16_lut negative = good.exp_lut;
  negative.entry[3] = -1;
  CHECK(run(good.with_tables(negative, good.one_over_one_plus_x_lut), x, y).message().find("negative") != std::string::npos);
  CHECK(run(good.with_tables(int16_lut{}, good.one_over_one_plus_x_lut), x, y).message().find("exp(0)") != std::string::npos);
  Tensor<std::int16_t> wrong_shape(Layout::matrix(3, 7));
  CHECK(run(good, x, wrong_shape).code() == errc::invalid_shape);
  Tensor<std::int16_t> wrong_rank(Layout::row_major({24}));
  CHECK(run(good, x, wrong_rank).code() == errc::invalid_shape);
  for (const Quant& q : {Quant::per_tensor(1.0f / 32767, 0), Quant::per_tensor(1.0f / 32768, 1), Quant::per_tensor(1.0f / 65536, -32768),
                         Quant::per_axis(1, std::vector<float>(8, 1.0f / 32768))}) {
    Tensor<std::int16_t> wrong_quant(Layout::matrix(3, 8), q);
    const status s = run(good, x, wrong_quant);
    CHECK(s.code() == errc::invalid_quantization);
    CHECK(s.message().find("1/32768") != std::string::npos);
  }
  Tensor<std::int16_t> x_zp(Layout::matrix(3, 8), Quant::per_tensor(0.001f, 3));
  const status zp = run(good, x_zp, y);
  CHECK(zp.code() == errc::invalid_quantization);
  CHECK(zp.message().find("input") != std::string::npos);
  Tensor<std::int16_t> x_bad_scale(Layout::matrix(3, 8), Quant::per_tensor(-1.0f, 0));
  CHECK(run(good, x_bad_scale, y).code() == errc::invalid_quantization);
  // Right quantization on both sides is accepted.
  Tensor<std::int16_t> x_q(Layout::matrix(3, 8), Quant::per_tensor(0.001f, 0));
  Tensor<std::int16_t> y_q(Layout::matrix(3, 8), Quant::per_tensor(1.0f / 32768, 0));
  CHECK(try_softmax(scalar, good, x_q, y_q).ok());
  CHECK(try_softmax(simd, good, x_q, y_q).ok());
  // In place and partial overlap are rejected.
  CHECK(try_softmax(scalar, good, x, x).code() == errc::aliasing);
  const TensorView<std::int16_t> shifted(x.data() + 1, Layout::matrix(2, 8));
  const TensorView<const std::int16_t> first_rows(x.data(), Layout::matrix(2, 8));
  CHECK(try_softmax(simd, good, first_rows, shifted).code() == errc::aliasing);
  CHECK_THROWS_AS(softmax(scalar, good, x, x), npuq::error);
}
