// Numerics against external references: the vectors of NUMERICS.md sections 1-2 verbatim,
// random comparisons with gemmlowp's own fixed-point functions (the code TFLite, TFLM and
// CMSIS-NN inherit), and rounding ties, float rounding of large accumulators, accumulator
// overflow rules, profile validation and fused-activation clamps checked against
// straightforward computations written here (exact integer or long double arithmetic), never
// against npuq's own internals.
#include "support/catch.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wall"
#pragma GCC diagnostic ignored "-Wextra"
#include <gemmlowp/fixedpoint/fixedpoint.h>
#pragma GCC diagnostic pop

#include <npuq/npuq.hpp>

using namespace npuq;

namespace {

constexpr std::int32_t kMin = INT32_MIN;
constexpr std::int32_t kMax = INT32_MAX;
constexpr std::int64_t kP30 = std::int64_t{1} << 30;
constexpr std::int64_t kP31 = std::int64_t{1} << 31;

const rounding kModes[] = {rounding::half_up, rounding::half_away, rounding::half_even, rounding::truncate, rounding::floor};

// requantize with no zero point and no effective clamp (the whole int32 range).
std::int32_t rq(const numerics_profile& p, std::int64_t acc, std::int32_t m, std::int32_t shift) {
  return requantize(p, acc, requant_channel{m, shift, 0.0f}, 0, kMin, kMax);
}
std::int32_t rqf(const numerics_profile& p, std::int64_t acc, float scale) {
  return requantize(p, acc, requant_channel{0, 0, scale}, 0, kMin, kMax);
}

// ---- Independent references -------------------------------------------------------------------

using i128 = __int128;

// floor(n / 2^s) with C division (truncating) plus a correction: no shifts of negative values.
i128 floor_div_pow2(i128 n, int s) {
  const i128 d = i128{1} << s;
  i128 q = n / d;
  if (n % d != 0 && n < 0) q -= 1;
  return q;
}

// n / 2^s rounded under `mode`, by comparing twice the remainder with the divisor.
i128 ref_round_pow2(i128 n, int s, rounding mode) {
  const i128 d = i128{1} << s;
  const i128 q = floor_div_pow2(n, s);
  const i128 r2 = 2 * (n - q * d);  // 2 * remainder, in [0, 2d)
  const bool exact = r2 == 0;
  switch (mode) {
    case rounding::floor: return q;
    case rounding::truncate: return (n < 0 && !exact) ? q + 1 : q;
    case rounding::half_up: return r2 >= d ? q + 1 : q;
    case rounding::half_away: return r2 > d ? q + 1 : (r2 < d ? q : (n >= 0 ? q + 1 : q));
    case rounding::half_even: return r2 > d ? q + 1 : (r2 < d ? q : (q % 2 != 0 ? q + 1 : q));
    case rounding::tflite_double: break;
  }
  return q;
}

std::int64_t clamp_i128(i128 v, std::int64_t lo, std::int64_t hi) {
  return v < lo ? lo : (v > hi ? hi : static_cast<std::int64_t>(v));
}

// Rounding of a double to an integer with the C library's functions, one per mode.
double ref_round_double(double v, rounding mode) {
  switch (mode) {
    case rounding::floor: return std::floor(v);
    case rounding::truncate: return std::trunc(v);
    case rounding::half_up: return std::floor(v + 0.5);  // exact for |v| < 2^52
    case rounding::half_away: return std::round(v);
    case rounding::half_even: return std::nearbyint(v);  // default environment: to nearest even
    case rounding::tflite_double: break;
  }
  return v;
}

// TFLite's double-rounding formula composed from gemmlowp's functions. TFLite writes the left
// shift as x * (1 << left), which wraps in practice; here the wrap is written out in int64.
std::int32_t tflite_mbqm(std::int32_t x, std::int32_t m, int shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  const std::int64_t wide = static_cast<std::int64_t>(x) * (std::int64_t{1} << left);
  const auto shifted = static_cast<std::int32_t>(static_cast<std::uint32_t>(static_cast<std::uint64_t>(wide) & 0xffffffffu));
  return gemmlowp::RoundingDivideByPOT(gemmlowp::SaturatingRoundingDoublingHighMul(shifted, m), right);
}

// TOSA apply_scale_32(value, multiplier, shift, double_round), shift = 31 - tflite shift.
std::int32_t tosa_apply_scale_32(std::int32_t value, std::int32_t multiplier, int shift, bool double_round) {
  std::int64_t round = std::int64_t{1} << (shift - 1);
  if (double_round && shift > 31) round += value >= 0 ? kP30 : -kP30;
  const i128 result = floor_div_pow2(static_cast<i128>(value) * multiplier + round, shift);
  return static_cast<std::int32_t>(result);
}

// Deterministic generator of interesting int32 values.
struct gen {
  std::mt19937_64 rng{0x6e70757155ull};
  std::uint64_t bits() { return rng(); }
  std::int32_t any() { return static_cast<std::int32_t>(static_cast<std::uint32_t>(rng())); }
  int uniform(int lo, int hi) { return lo + static_cast<int>(rng() % static_cast<std::uint64_t>(hi - lo + 1)); }
  std::int32_t interesting() {
    switch (rng() % 5) {
      case 0: return any();
      case 1: return uniform(-65536, 65536);
      case 2: {  // +-2^k + small delta
        const std::int64_t v = (std::int64_t{1} << uniform(0, 31)) + uniform(-3, 3);
        const std::int64_t s = (rng() & 1) ? -v : v;
        return static_cast<std::int32_t>(s < kMin ? kMin : (s > kMax ? kMax : s));
      }
      case 3: {  // small odd * 2^k: products of two of these hit rounding ties often
        const std::int64_t v = static_cast<std::int64_t>(2 * uniform(-4, 3) + 1) * (std::int64_t{1} << uniform(0, 28));
        return static_cast<std::int32_t>(v);
      }
      default: {
        static const std::int32_t edge[] = {kMin, kMin + 1, kMax, kMax - 1, 0, 1, -1, 2, -2};
        return edge[rng() % 9];
      }
    }
  }
};

// Edge values: INT32_MIN/MAX, 0, +-1, +-2^k, +-2^k +- 1.
std::vector<std::int32_t> edge_values() {
  std::vector<std::int32_t> v = {kMin, kMin + 1, kMax, kMax - 1, 0, 1, -1};
  for (int k = 1; k <= 30; ++k) {
    const std::int32_t p = std::int32_t{1} << k;
    for (std::int32_t x : {p, p - 1, p + 1}) {
      v.push_back(x);
      v.push_back(-x);
    }
  }
  return v;
}

// Collects mismatches of a long comparison loop; reports the first one.
struct mismatch_log {
  std::int64_t count = 0;
  std::string first;
  void add(const std::string& what) {
    if (count++ == 0) first = what;
  }
};

constexpr int kRandomIterations = 1000000;

}  // namespace

// =================================================================================================
// 1. NUMERICS.md section 1 vectors
// =================================================================================================

TEST_CASE("SRDHM vectors of NUMERICS.md section 1", "[numerics][vectors]") {
  CHECK(srdhm(kMin, kMin) == kMax);
  CHECK(srdhm(std::int32_t{1} << 30, 1) == 1);
  CHECK(srdhm(-(std::int32_t{1} << 30), 1) == 0);
  // Ties toward +infinity: -2.5 -> -2, 2.5 -> 3 (-5 * 2^30 / 2^31 = -2.5).
  CHECK(srdhm(-5, std::int32_t{1} << 30) == -2);
  CHECK(srdhm(5, std::int32_t{1} << 30) == 3);
  static_assert(srdhm(kMin, kMin) == kMax, "srdhm is constexpr");
}

TEST_CASE("RoundingDivideByPOT vectors of NUMERICS.md section 1", "[numerics][vectors]") {
  CHECK(rounding_divide_by_pot(-3, 1) == -2);
  CHECK(rounding_divide_by_pot(-1, 1) == -1);
  CHECK(rounding_divide_by_pot(1, 1) == 1);
  CHECK(rounding_divide_by_pot(3, 1) == 2);
  CHECK(rounding_divide_by_pot(-5, 2) == -1);
  CHECK(rounding_divide_by_pot(-6, 2) == -2);
  CHECK(rounding_divide_by_pot(-7, 2) == -2);
  CHECK(rounding_divide_by_pot(kMin, 31) == -1);
  CHECK(rounding_divide_by_pot(kMax, 31) == 1);
  CHECK(rounding_divide_by_pot(12345, 0) == 12345);
}

TEST_CASE("QuantizeMultiplier table of NUMERICS.md section 1, both rounding variants", "[numerics][vectors]") {
  struct row {
    double d;
    std::int32_t m;
    std::int32_t shift;
  };
  const row table[] = {
      {0.0, 0, 0},
      {0.5, 1 << 30, 0},
      {0.25, 1 << 30, -1},
      {1.0, 1 << 30, 1},
      {0.1, 1717986918, -3},
      {1.0 / 3.0, 1431655765, -1},
      {2.5, 1342177280, 2},
      {1e-10, 0, 0},                        // shift < -31: flushed to zero
      {std::ldexp(1.0, -32), 1 << 30, -31},  // smallest kept power of two
      {std::ldexp(1.0, -33), 0, 0},          // frexp shift -32: flushed
      {1.0 - std::ldexp(1.0, -40), 1 << 30, 1},  // q * 2^31 rounds up to 2^31: halved, shift + 1
      // rounds up to 2^31 first (shift -32 -> -31), so it is kept, not flushed
      {std::ldexp(1.0 - std::ldexp(1.0, -40), -32), 1 << 30, -31},
      {std::ldexp(1.0, 29) * 1.5, 1610612736, 30},  // largest shift both variants share
  };
  for (const row& r : table) {
    for (bool single : {false, true}) {
      INFO("d = " << r.d << ", single_rounding = " << single);
      const quantized_multiplier q = quantize_multiplier(r.d, single);
      CHECK(q.multiplier == r.m);
      CHECK(q.shift == r.shift);
    }
  }
}

TEST_CASE("QuantizeMultiplier: single rounding caps the shift at 30", "[numerics][vectors]") {
  // d in [2^30, 2^31): frexp shift 31; d = 2^31: shift 32; 1e12: shift 40.
  struct row {
    double d;
    std::int32_t double_shift;
  };
  const row table[] = {{std::ldexp(1.0, 30), 31}, {std::ldexp(1.0, 31), 32}, {1e12, 40}, {std::ldexp(1.0, 31) * 1.75, 32}};
  for (const row& r : table) {
    INFO("d = " << r.d);
    const quantized_multiplier dbl = quantize_multiplier(r.d, false);
    CHECK(dbl.shift == r.double_shift);
    CHECK(std::ldexp(static_cast<double>(dbl.multiplier), dbl.shift - 31) == Approx(r.d).epsilon(1e-9));
    const quantized_multiplier one = quantize_multiplier(r.d, true);
    CHECK(one.multiplier == kMax);
    CHECK(one.shift == 30);
  }
  // 2^30 - 1 has frexp shift 30: not capped.
  CHECK(quantize_multiplier(std::ldexp(1.0, 30) - 1.0, true) == quantized_multiplier{kMax - 1, 30});
}

TEST_CASE("QuantizeMultiplier represents d to 31 bits", "[numerics]") {
  gen g;
  for (int i = 0; i < 20000; ++i) {
    const double d = std::ldexp(1.0 + static_cast<double>(g.bits() >> 11) * std::ldexp(1.0, -53), g.uniform(-31, 29));
    const quantized_multiplier q = quantize_multiplier(d);
    INFO("d = " << d);
    REQUIRE(q.multiplier >= (1 << 30));
    const double back = std::ldexp(static_cast<double>(q.multiplier), q.shift - 31);
    REQUIRE(std::fabs(back - d) <= std::ldexp(d, -31));
  }
}

// =================================================================================================
// 2. Double vs single rounding, NUMERICS.md section 2
// =================================================================================================

TEST_CASE("double vs single rounding vectors of NUMERICS.md section 2", "[numerics][vectors]") {
  // value = m * 2^(shift - 31); single rounding shifts right by 31 - shift in one step.
  struct row {
    std::int32_t x, m, shift, dbl, single;
  };
  const row table[] = {
      {-298, 1 << 30, -1, -75, -74},           // -74.5
      {984, 1395864371, -8, 3, 2},             // exactly 2.498...
      {7984, 1583594044, 31 - 40, 12, 11},     // total right shift 40: exactly 11.4991...
  };
  for (const row& r : table) {
    INFO("x = " << r.x << ", m = " << r.m << ", shift = " << r.shift);
    CHECK(multiply_by_quantized_multiplier_double(r.x, r.m, r.shift) == r.dbl);
    CHECK(multiply_by_quantized_multiplier_single(r.x, r.m, r.shift) == r.single);
    CHECK(tflite_mbqm(r.x, r.m, r.shift) == r.dbl);  // gemmlowp composition
    CHECK(tosa_apply_scale_32(r.x, r.m, 31 - r.shift, true) == r.dbl);
    CHECK(tosa_apply_scale_32(r.x, r.m, 31 - r.shift, false) == r.single);
    // Through the profiles.
    CHECK(rq(numerics_profile::tflite(), r.x, r.m, r.shift) == r.dbl);
    CHECK(rq(numerics_profile::tosa_single(), r.x, r.m, r.shift) == r.single);
    CHECK(rq(numerics_profile::q31(rounding::half_up), r.x, r.m, r.shift) == r.single);
  }
  // The exact values behind the 2nd and 3rd rows are below .5: single rounding is the exact one.
  CHECK(984.0L * 1395864371.0L / std::ldexp(1.0L, 39) == Approx(2.498).margin(0.001));
  CHECK(7984.0L * 1583594044.0L / std::ldexp(1.0L, 40) == Approx(11.4991).margin(0.0001));
}

TEST_CASE("scale 0.5 on {-5, 3, 5} under every rounding mode, q31 and fp32", "[numerics][vectors]") {
  struct row {
    rounding mode;
    std::int32_t out[3];
  };
  const row table[] = {
      {rounding::half_away, {-3, 2, 3}}, {rounding::half_even, {-2, 2, 2}}, {rounding::half_up, {-2, 2, 3}},
      {rounding::truncate, {-2, 1, 2}},  {rounding::floor, {-3, 1, 2}},
  };
  const std::int32_t in[3] = {-5, 3, 5};
  const quantized_multiplier half = quantize_multiplier(0.5);
  REQUIRE(half == quantized_multiplier{1 << 30, 0});
  for (const row& r : table) {
    for (int i = 0; i < 3; ++i) {
      INFO(to_string(r.mode) << " on " << in[i]);
      CHECK(rq(numerics_profile::q31(r.mode), in[i], half.multiplier, half.shift) == r.out[i]);
      CHECK(rqf(numerics_profile::fp32(r.mode), in[i], 0.5f) == r.out[i]);
    }
  }
  // The tflite profile (q31 only): shift 0 means SRDHM alone, which rounds ties up.
  CHECK(rq(numerics_profile::tflite(), -5, half.multiplier, half.shift) == -2);
  CHECK(rq(numerics_profile::tflite(), 3, half.multiplier, half.shift) == 2);
  CHECK(rq(numerics_profile::tflite(), 5, half.multiplier, half.shift) == 3);
  // Named profiles: tosa_single = q31 half_up, onnx = fp32 half_even.
  CHECK(rq(numerics_profile::tosa_single(), -5, half.multiplier, half.shift) == -2);
  CHECK(rqf(numerics_profile::onnx(), 3, 0.5f) == 2);
  CHECK(rqf(numerics_profile::onnx(), 5, 0.5f) == 2);
}

// =================================================================================================
// 3. Random comparisons with gemmlowp
// =================================================================================================

TEST_CASE("srdhm equals gemmlowp::SaturatingRoundingDoublingHighMul", "[numerics][gemmlowp]") {
  mismatch_log log;
  auto check = [&](std::int32_t a, std::int32_t b) {
    const std::int32_t want = gemmlowp::SaturatingRoundingDoublingHighMul(a, b);
    const std::int32_t got = srdhm(a, b);
    if (got != want) log.add("srdhm(" + std::to_string(a) + ", " + std::to_string(b) + ") = " + std::to_string(got) +
                             ", gemmlowp " + std::to_string(want));
  };
  const std::vector<std::int32_t> edge = edge_values();
  for (std::int32_t a : edge)
    for (std::int32_t b : edge) check(a, b);
  gen g;
  for (int i = 0; i < kRandomIterations; ++i) check(g.interesting(), g.interesting());
  INFO(log.first);
  CHECK(log.count == 0);
}

TEST_CASE("rounding_divide_by_pot equals gemmlowp::RoundingDivideByPOT for every exponent", "[numerics][gemmlowp]") {
  mismatch_log log;
  auto check = [&](std::int32_t x, int e) {
    const std::int32_t want = gemmlowp::RoundingDivideByPOT(x, e);
    const std::int32_t got = rounding_divide_by_pot(x, e);
    if (got != want) log.add("rdbpot(" + std::to_string(x) + ", " + std::to_string(e) + ") = " + std::to_string(got) +
                             ", gemmlowp " + std::to_string(want));
  };
  for (std::int32_t x : edge_values())
    for (int e = 0; e <= 31; ++e) check(x, e);
  // Exact ties x = (2k + 1) * 2^(e - 1), both signs.
  for (int e = 1; e <= 31; ++e)
    for (std::int64_t k = -4; k <= 3; ++k) {
      const std::int64_t x = (2 * k + 1) * (std::int64_t{1} << (e - 1));
      if (x >= kMin && x <= kMax) check(static_cast<std::int32_t>(x), e);
    }
  gen g;
  for (int i = 0; i < kRandomIterations; ++i) {
    const std::int32_t x = g.interesting();
    for (int e = 0; e <= 31; ++e) check(x, e);
  }
  INFO(log.first);
  CHECK(log.count == 0);
}

TEST_CASE("multiply_by_quantized_multiplier_double equals TFLite's gemmlowp composition", "[numerics][gemmlowp]") {
  mismatch_log log;
  auto check = [&](std::int32_t x, std::int32_t m, int shift) {
    const std::int32_t want = tflite_mbqm(x, m, shift);
    const std::int32_t got = multiply_by_quantized_multiplier_double(x, m, shift);
    if (got != want) log.add("mbqm_double(" + std::to_string(x) + ", " + std::to_string(m) + ", " + std::to_string(shift) +
                             ") = " + std::to_string(got) + ", TFLite " + std::to_string(want));
  };
  const std::int32_t multipliers[] = {0, 1 << 30, (1 << 30) + 1, 1431655765, 1717986918, kMax - 1, kMax};
  for (std::int32_t x : edge_values())
    for (std::int32_t m : multipliers)
      for (int shift = -31; shift <= 31; ++shift) check(x, m, shift);
  // The left shift wraps in int32: 2^30 * 2^2 = 2^32 -> 0; (2^30 + 1) * 2^2 -> 4; (2^29 + 1) * 2^2
  // -> -2^31 + 4.
  CHECK(multiply_by_quantized_multiplier_double(1 << 30, 1 << 30, 2) == 0);
  CHECK(multiply_by_quantized_multiplier_double((1 << 30) + 1, 1 << 30, 2) == 2);  // SRDHM(4, 2^30) = 2
  CHECK(multiply_by_quantized_multiplier_double((1 << 29) + 1, 1 << 30, 2) == -1073741822);
  gen g;
  for (int i = 0; i < kRandomIterations; ++i) {
    const std::int32_t m = (g.rng() % 16 == 0) ? g.interesting() & kMax
                                               : static_cast<std::int32_t>(kP30 + static_cast<std::int64_t>(g.rng() % kP30));
    check(g.interesting(), m, g.uniform(-31, 31));
  }
  INFO(log.first);
  CHECK(log.count == 0);
}

TEST_CASE("double rounding equals TOSA apply_scale_32 DOUBLE_ROUND, single equals SINGLE_ROUND", "[numerics][tosa]") {
  // NUMERICS.md: with shift_tosa = 31 - shift_tflite, DOUBLE_ROUND equals TFLite for shift <= 0.
  mismatch_log log;
  gen g;
  for (int i = 0; i < kRandomIterations; ++i) {
    const std::int32_t x = g.interesting();
    const auto m = static_cast<std::int32_t>(kP30 + static_cast<std::int64_t>(g.rng() % kP30));
    const int shift = g.uniform(-31, 30);
    const std::int32_t single = multiply_by_quantized_multiplier_single(x, m, shift);
    if (single != tosa_apply_scale_32(x, m, 31 - shift, false))
      log.add("single(" + std::to_string(x) + ", " + std::to_string(m) + ", " + std::to_string(shift) + ")");
    if (shift <= 0 && multiply_by_quantized_multiplier_double(x, m, shift) != tosa_apply_scale_32(x, m, 31 - shift, true))
      log.add("double(" + std::to_string(x) + ", " + std::to_string(m) + ", " + std::to_string(shift) + ")");
  }
  INFO(log.first);
  CHECK(log.count == 0);
}

// =================================================================================================
// 4. Rounding ties and random requantization against exact references
// =================================================================================================

namespace {
// Exact tie values k / 2 and what each mode makes of them.
struct tie_row {
  int k;  // value = k / 2
  std::int32_t up, away, even, trunc, floor;
};
const tie_row kTies[] = {
    {-5, -2, -3, -2, -2, -3}, {-3, -1, -2, -2, -1, -2}, {-1, 0, -1, 0, 0, -1},
    {1, 1, 1, 0, 0, 0},       {3, 2, 2, 2, 1, 1},       {5, 3, 3, 2, 2, 2},
};
std::int32_t tie_expect(const tie_row& t, rounding mode) {
  switch (mode) {
    case rounding::half_up: return t.up;
    case rounding::half_away: return t.away;
    case rounding::half_even: return t.even;
    case rounding::truncate: return t.trunc;
    case rounding::floor: return t.floor;
    case rounding::tflite_double: break;
  }
  return 0;
}
}  // namespace

TEST_CASE("q31 ties k/2 for every mode at total right shifts 1..62", "[numerics][ties]") {
  // value = acc * m / 2^ts with ts = 31 - shift. For ts <= 31: m = 2^(ts-1), acc = k. For ts > 31:
  // m = 2^30, acc = k * 2^(ts-31) (a 48-bit accumulator at ts = 62, except acc = -2^31).
  const int shifts[] = {1, 2, 3, 8, 16, 30, 31, 32, 33, 40, 47, 48, 61, 62};
  for (rounding mode : kModes) {
    const numerics_profile p = numerics_profile::q31(mode, {48, overflow_rule::wrap});
    for (int ts : shifts) {
      for (const tie_row& t : kTies) {
        std::int64_t acc = 0;
        std::int32_t m = 0;
        if (ts <= 31) {
          m = static_cast<std::int32_t>(std::int64_t{1} << (ts - 1));
          acc = t.k;
        } else {
          m = 1 << 30;
          acc = t.k * (std::int64_t{1} << (ts - 31));
        }
        INFO(to_string(mode) << ", ts = " << ts << ", value = " << t.k << "/2, acc = " << acc << ", m = " << m);
        const std::int32_t want = tie_expect(t, mode);
        REQUIRE(static_cast<std::int64_t>(ref_round_pow2(static_cast<i128>(acc) * m, ts, mode)) == want);
        CHECK(rq(p, acc, m, 31 - ts) == want);
        // Just above and below the tie (n +- 1): plain nearest for the half modes.
        if (ts >= 2) {
          const i128 n = static_cast<i128>(acc) * m;
          for (int d : {-1, 1}) {
            const i128 n2 = n + d;  // = acc2 * m2 with m2 = 1, acc2 = n2 only when it fits 48 bits
            if (n2 > (i128{1} << 47) - 1 || n2 < -(i128{1} << 47)) continue;
            CHECK(rq(p, static_cast<std::int64_t>(n2), 1, 31 - ts) == static_cast<std::int64_t>(ref_round_pow2(n2, ts, mode)));
          }
        }
      }
      // Negative tie with a plain int32 accumulator at ts = 62: -2^31 * 2^30 / 2^62 = -0.5.
      if (ts == 62) {
        CHECK(rq(numerics_profile::q31(mode), kMin, 1 << 30, -31) == tie_expect(kTies[2], mode));
      }
    }
  }
  // Total shift 1 with a normalized multiplier: 3 * (2^31 - 1) / 2 = 3221225470.5.
  const std::int64_t big = 3;
  CHECK(rq(numerics_profile::q31(rounding::half_even, {48, overflow_rule::wrap}), big, kMax, 30) == kMax);  // clamped
  CHECK(requantize(numerics_profile::q31(rounding::half_even), -1, {kMax, 30, 0.f}, 0, kMin, kMax) == -1073741824);  // -1073741823.5
  CHECK(requantize(numerics_profile::q31(rounding::half_away), -1, {kMax, 30, 0.f}, 0, kMin, kMax) == -1073741824);
  CHECK(requantize(numerics_profile::q31(rounding::half_up), -1, {kMax, 30, 0.f}, 0, kMin, kMax) == -1073741823);
}

TEST_CASE("tflite double rounding at ties: SRDHM ties up, then RoundingDivideByPOT ties away", "[numerics][ties]") {
  const numerics_profile p = numerics_profile::tflite();
  // Straightforward two-stage reference: s1 = floor(x * m / 2^31 + 1/2); s1 / 2^r, ties away.
  auto ref = [](std::int32_t x, std::int32_t m, int shift) {
    const int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    const i128 xs = static_cast<i128>(x) * (i128{1} << left);
    REQUIRE(xs >= kMin);
    REQUIRE(xs <= kMax);
    const i128 s1 = ref_round_pow2(xs * m, 31, rounding::half_up);
    return static_cast<std::int32_t>(right == 0 ? s1 : ref_round_pow2(s1, right, rounding::half_away));
  };
  // -298 * 2^30 / 2^32 = -74.5: SRDHM exact (-149), then -149 / 2 ties away -> -75.
  CHECK(rq(p, -298, 1 << 30, -1) == -75);
  CHECK(rq(p, 298, 1 << 30, -1) == 75);
  // Stage-1 tie: -5 * 2^30 / 2^31 = -2.5 -> -2 (up), then -2 / 2 = -1 (exact value -1.25).
  CHECK(rq(p, -5, 1 << 30, -1) == -1);
  // Stage-1 tie that creates a stage-2 tie: 3 * 2^30 / 2^31 = 1.5 -> 2; 2 / 4 = 0.5 -> 1 (exact 0.375).
  CHECK(rq(p, 3, 1 << 30, -2) == 1);
  CHECK(rq(numerics_profile::tosa_single(), 3, 1 << 30, -2) == 0);
  // Stage-1 tie going up on a negative value: -3 * 2^30 / 2^31 = -1.5 -> -1; -1 / 4 = -0.25 -> 0.
  CHECK(rq(p, -3, 1 << 30, -2) == 0);
  // Odd multiples of small powers of two against m = 2^30 and 3 * 2^29: ties at one or both stages.
  for (int shift : {1, 0, -1, -2, -8, -30, -31})
    for (std::int64_t k = -9; k <= 9; k += 2) {
      for (std::int32_t xx : {static_cast<std::int32_t>(k), static_cast<std::int32_t>(k * 2), static_cast<std::int32_t>(k * 6),
                              static_cast<std::int32_t>(k * (1 << 20))}) {
        INFO("x = " << xx << ", shift = " << shift);
        CHECK(rq(p, xx, 1 << 30, shift) == ref(xx, 1 << 30, shift));
        CHECK(rq(p, xx, 3 << 29, shift) == ref(xx, 3 << 29, shift));
      }
    }
}

TEST_CASE("fp32 ties (exact .5 products) for every mode", "[numerics][ties]") {
  struct tie {
    std::int64_t acc;
    float scale;
  };
  std::vector<tie> ties;
  for (int k : {-5, -3, -1, 1, 3, 5}) {
    ties.push_back({k, 0.5f});
    ties.push_back({k * (std::int64_t{1} << 29), std::ldexp(1.0f, -30)});
    ties.push_back({k * 3, 0.5f});                                // 1.5 * k
    ties.push_back({k * (std::int64_t{1} << 40), std::ldexp(1.0f, -41)});  // 48-bit accumulator
  }
  ties.push_back({(1 << 23) + 1, 0.5f});  // 4194304.5
  ties.push_back({-((1 << 23) + 1), 0.5f});
  ties.push_back({(1 << 24) - 1, 0.5f});  // 8388607.5: the largest float with a .5 fraction
  ties.push_back({-((1 << 24) - 1), 0.5f});
  ties.push_back({3, 2.5f});               // 7.5
  ties.push_back({-3, 2.5f});
  for (rounding mode : kModes) {
    const numerics_profile p = numerics_profile::fp32(mode, {48, overflow_rule::wrap});
    for (const tie& t : ties) {
      // The product is exact (long double holds it) and exactly halfway.
      const long double exact = static_cast<long double>(t.acc) * static_cast<long double>(t.scale);
      const float v = static_cast<float>(t.acc) * t.scale;
      REQUIRE(static_cast<long double>(v) == exact);
      REQUIRE(exact - std::floor(exact) == 0.5L);
      INFO(to_string(mode) << ": " << t.acc << " * " << t.scale << " = " << static_cast<double>(exact));
      CHECK(rqf(p, t.acc, t.scale) == static_cast<std::int64_t>(ref_round_double(static_cast<double>(exact), mode)));
    }
  }
  // Spot values written out: 4194304.5 and -8388607.5.
  CHECK(rqf(numerics_profile::onnx(), (1 << 23) + 1, 0.5f) == 4194304);
  CHECK(rqf(numerics_profile::fp32(rounding::half_away), (1 << 23) + 1, 0.5f) == 4194305);
  CHECK(rqf(numerics_profile::onnx(), -((1 << 24) - 1), 0.5f) == -8388608);
  CHECK(rqf(numerics_profile::fp32(rounding::half_up), -((1 << 24) - 1), 0.5f) == -8388607);
}

TEST_CASE("random q31 requantization matches exact integer rounding for every mode", "[numerics][random]") {
  gen g;
  for (rounding mode : kModes) {
    mismatch_log log;
    const numerics_profile p = numerics_profile::q31(mode, {48, overflow_rule::wrap});
    for (int i = 0; i < kRandomIterations / 4; ++i) {
      const std::int64_t acc = static_cast<std::int64_t>(g.bits() >> (17 + g.rng() % 32)) * ((g.rng() & 1) ? -1 : 1);
      const auto m = static_cast<std::int32_t>(g.rng() % 8 == 0 ? g.rng() % kP31 : kP30 + g.rng() % kP30);
      const int shift = g.uniform(-31, 30);
      const std::int32_t zp = g.uniform(-128, 127);
      const std::int64_t want = clamp_i128(ref_round_pow2(static_cast<i128>(acc) * m, 31 - shift, mode) + zp, -128, 127);
      const std::int32_t got = requantize(p, acc, {m, shift, 0.f}, zp, -128, 127);
      if (got != want)
        log.add(std::string(to_string(mode)) + ": acc " + std::to_string(acc) + ", m " + std::to_string(m) + ", shift " +
                std::to_string(shift) + ", zp " + std::to_string(zp) + ": got " + std::to_string(got) + ", want " +
                std::to_string(want));
    }
    INFO(log.first);
    CHECK(log.count == 0);
  }
}

TEST_CASE("random fp32 requantization matches float product + C library rounding", "[numerics][random]") {
  gen g;
  for (rounding mode : kModes) {
    mismatch_log log;
    const numerics_profile p = numerics_profile::fp32(mode, {48, overflow_rule::wrap});
    for (int i = 0; i < kRandomIterations / 4; ++i) {
      const std::int64_t acc = static_cast<std::int64_t>(g.bits() >> (17 + g.rng() % 40)) * ((g.rng() & 1) ? -1 : 1);
      const float scale = std::ldexp(1.0f + static_cast<float>(g.rng() % (1u << 23)) * std::ldexp(1.0f, -23), g.uniform(-40, 8));
      const std::int32_t zp = g.uniform(-128, 127);
      const float v = static_cast<float>(acc) * scale;  // the contract: float(acc) * scale in float
      double q = ref_round_double(static_cast<double>(v), mode) + zp;
      q = q < kMin ? kMin : (q > kMax ? kMax : q);
      const std::int32_t got = requantize(p, acc, {0, 0, scale}, zp, kMin, kMax);
      if (got != static_cast<std::int32_t>(q))
        log.add(std::string(to_string(mode)) + ": acc " + std::to_string(acc) + ", scale " + std::to_string(scale));
    }
    INFO(log.first);
    CHECK(log.count == 0);
  }
}

TEST_CASE("q31 requantization of wide accumulators saturates instead of wrapping", "[numerics][random]") {
  // 48-bit accumulator, scale ~2^30: the exact result (~2^70) is far outside int64.
  const numerics_profile p = numerics_profile::q31(rounding::half_up, {48, overflow_rule::wrap});
  const requant_channel r{kMax, 30, 0.f};
  for (std::int64_t acc : {std::int64_t{1} << 40, (std::int64_t{1} << 47) - 1, std::int64_t{1} << 33}) {
    INFO("acc = " << acc);
    CHECK(requantize(p, acc, r, 0, -128, 127) == 127);
    CHECK(requantize(p, -acc, r, 0, -128, 127) == -128);
    CHECK(requantize(p, acc, r, 0, kMin, kMax) == kMax);
    CHECK(requantize(p, -acc, r, 5, kMin, kMax) == kMin);
  }
}

// =================================================================================================
// 5. The onnx profile
// =================================================================================================

TEST_CASE("onnx: the fp32 scale is in * w / out computed in float", "[numerics][onnx]") {
  const numerics_profile p = numerics_profile::onnx();
  CHECK(p.format == multiplier_format::fp32);
  CHECK(p.mode == rounding::half_even);
  const float in = 0.1f, w = 0.1f, out = 0.1f;
  const float in_float = in * w / out;
  const auto via_double = static_cast<float>(static_cast<double>(in) * w / out);
  REQUIRE(in_float != via_double);  // 0.100000009 vs 0.100000001
  CHECK(derive_requant(p, in, w, out).scale == in_float);
  // The difference decides a result: 5 * 0.100000009 = 0.50000006 -> 1, 5 * 0.1f = 0.5 -> 0.
  CHECK(rqf(p, 5, in_float) == 1);
  CHECK(rqf(p, 5, via_double) == 0);

  // End to end through a 1x1 GEMM: acc = 5 from a bias, scales from the tensors.
  Tensor<std::int8_t> a(Layout::matrix(1, 1), Quant::per_tensor(in, 0));
  Tensor<std::int8_t> b(Layout::matrix(1, 1), Quant::per_tensor(w, 0));
  Tensor<std::int32_t> bias(Layout::row_major({1}));
  Tensor<std::int8_t> o(Layout::matrix(1, 1), Quant::per_tensor(out, 0));
  bias.data()[0] = 5;
  gemm_params gp;
  gp.numerics = numerics_profile::onnx();
  gemm(scalar, gp, a, b, bias, o);
  CHECK(o.data()[0] == 1);
}

TEST_CASE("onnx: float(acc) rounding above 2^24 is part of the contract", "[numerics][onnx]") {
  const numerics_profile p = numerics_profile::onnx();
  // 2^24 + 1 is not a float: float(acc) = 2^24.
  const std::int64_t acc1 = (1 << 24) + 1;
  REQUIRE(static_cast<std::int64_t>(static_cast<float>(acc1)) != acc1);
  CHECK(rqf(p, acc1, 1.0f) == 1 << 24);
  CHECK(rqf(p, -acc1, 1.0f) == -(1 << 24));
  // acc = 2^24 + 2^17 + 1, scale 2^-18: exact 64.5000038 -> 65, but float(acc) = 2^24 + 2^17
  // (tie to even) and 64.5 -> 64 under ties to even.
  const std::int64_t acc = (1 << 24) + (1 << 17) + 1;
  const float s = std::ldexp(1.0f, -18);
  REQUIRE(static_cast<float>(acc) == static_cast<float>((1 << 24) + (1 << 17)));
  CHECK(rqf(p, acc, s) == 64);
  CHECK(std::nearbyint(static_cast<long double>(acc) * s) == 65);  // what exact arithmetic gives
  CHECK(rqf(p, -acc, s) == -64);

  // Same accumulator through a GEMM (bias), onnx vs tflite: 64 vs 65.
  Tensor<std::int8_t> a(Layout::matrix(1, 1), Quant::per_tensor(std::ldexp(1.0f, -9), 0));
  Tensor<std::int8_t> b(Layout::matrix(1, 1), Quant::per_tensor(std::ldexp(1.0f, -9), 0));
  Tensor<std::int32_t> bias(Layout::row_major({1}));
  Tensor<std::int8_t> o(Layout::matrix(1, 1), Quant::per_tensor(1.0f, 0));
  bias.data()[0] = static_cast<std::int32_t>(acc);
  gemm_params gp;
  gp.numerics = numerics_profile::onnx();
  gemm(scalar, gp, a, b, bias, o);
  CHECK(o.data()[0] == 64);
  gp.numerics = numerics_profile::tflite();
  gemm(scalar, gp, a, b, bias, o);
  CHECK(o.data()[0] == 65);
}

TEST_CASE("onnx: huge scales clamp without undefined behaviour", "[numerics][onnx]") {
  const numerics_profile p = numerics_profile::onnx();
  const numerics_profile wide = numerics_profile::fp32(rounding::half_even, {48, overflow_rule::wrap});
  const requant_channel huge{0, 0, 1e30f};
  CHECK(requantize(p, 1, huge, 0, -128, 127) == 127);
  CHECK(requantize(p, -1, huge, 0, -128, 127) == -128);
  CHECK(requantize(p, 0, huge, 3, -128, 127) == 3);
  CHECK(requantize(p, kMax, huge, 0, -128, 127) == 127);  // float overflows to +inf
  CHECK(requantize(p, kMin, huge, 0, -128, 127) == -128);  // -inf
  CHECK(requantize(wide, (std::int64_t{1} << 47) - 1, {0, 0, FLT_MAX}, 0, kMin, kMax) == kMax);
  CHECK(requantize(wide, -(std::int64_t{1} << 47), {0, 0, FLT_MAX}, 0, kMin, kMax) == kMin);
  CHECK(requantize(p, 7, huge, -5, 0, 255) == 255);
  // Through a GEMM: in * w / out = 1e30 in float.
  Tensor<std::int8_t> a(Layout::matrix(1, 3), Quant::per_tensor(1e15f, 0));
  Tensor<std::int8_t> b(Layout::matrix(3, 3), Quant::per_tensor(1e15f, 0));
  Tensor<std::int8_t> o(Layout::matrix(1, 3), Quant::per_tensor(1.0f, 0));
  a.data()[0] = 1;  // row [1, 0, 0]
  b.data()[0] = 1;  // column 0: +1, column 1: -1, column 2: 0
  b.data()[1] = -1;
  gemm_params gp;
  gp.numerics = p;
  gemm(scalar, gp, a, b, no_bias, o);
  CHECK(o.data()[0] == 127);
  CHECK(o.data()[1] == -128);
  CHECK(o.data()[2] == 0);
}

TEST_CASE("derived scales that no multiplier can represent are rejected", "[numerics][validate]") {
  Tensor<std::int8_t> a(Layout::matrix(1, 1), Quant::per_tensor(1e30f, 0));
  Tensor<std::int8_t> b(Layout::matrix(1, 1), Quant::per_tensor(1e30f, 0));
  Tensor<std::int8_t> o(Layout::matrix(1, 1), Quant::per_tensor(1.0f, 0));
  gemm_params gp;
  // fp32: 1e30f * 1e30f overflows to inf (0 * inf would be NaN).
  gp.numerics = numerics_profile::onnx();
  CHECK(try_gemm(scalar, gp, a, b, no_bias, o).code() == errc::invalid_quantization);
  // tflite: in * w / out = 2^32 needs a left shift of 33.
  Tensor<std::int8_t> a2(Layout::matrix(1, 1), Quant::per_tensor(65536.0f, 0));
  Tensor<std::int8_t> b2(Layout::matrix(1, 1), Quant::per_tensor(65536.0f, 0));
  gp.numerics = numerics_profile::tflite();
  CHECK(try_gemm(scalar, gp, a2, b2, no_bias, o).code() == errc::invalid_quantization);
  // Single rounding caps such a multiplier at (2^31 - 1, 30), as TFLite does: accepted, saturates.
  gp.numerics = numerics_profile::tosa_single();
  a2.data()[0] = 1;
  b2.data()[0] = 1;
  CHECK(try_gemm(scalar, gp, a2, b2, no_bias, o).ok());
  CHECK(o.data()[0] == 127);
}

// =================================================================================================
// 6. Accumulator rules
// =================================================================================================

TEST_CASE("accumulator wraps at 32 bits and at a narrow width", "[numerics][accumulator]") {
  {
    accumulator acc({32, overflow_rule::wrap});
    acc.add(kMax);
    acc.add(1);
    CHECK(acc.result() == kMin);
    acc.add(-1);
    CHECK(acc.result() == kMax);
  }
  {
    accumulator acc({20, overflow_rule::wrap});
    acc.add((1 << 19) - 1);
    CHECK(acc.result() == (1 << 19) - 1);
    acc.add(1);
    CHECK(acc.result() == -(1 << 19));
    acc.add(1 << 20);  // a full turn
    CHECK(acc.result() == -(1 << 19));
    acc.add(-1);
    CHECK(acc.result() == (1 << 19) - 1);
  }
  {
    accumulator acc({8, overflow_rule::wrap});
    for (int i = 0; i < 200; ++i) acc.add(1);
    CHECK(acc.result() == 200 - 256);
  }
  {
    accumulator acc({48, overflow_rule::wrap});
    acc.add((std::int64_t{1} << 47) - 1);
    acc.add(2);
    CHECK(acc.result() == -(std::int64_t{1} << 47) + 1);
  }
}

TEST_CASE("saturate_each_add vs saturate_at_end vs wrap on one sequence", "[numerics][accumulator]") {
  const int bits = 20;
  const std::int64_t mx = (1 << 19) - 1, mn = -(1 << 19);
  const std::int64_t seq[] = {mx - 5, 100, -200, 300, -400};  // running sum crosses the top once
  auto run = [&](overflow_rule o) {
    accumulator acc({bits, o});
    for (std::int64_t v : seq) acc.add(v);
    return acc.result();
  };
  // Exact sum = mx - 205: inside the range, so saturate_at_end and wrap keep it.
  CHECK(run(overflow_rule::saturate_at_end) == mx - 205);
  CHECK(run(overflow_rule::wrap) == mx - 205);
  // Per add: mx-5, mx, mx-200, mx, mx-400.
  CHECK(run(overflow_rule::saturate_each_add) == mx - 400);
  // Results exactly at the bounds.
  for (overflow_rule o : {overflow_rule::wrap, overflow_rule::saturate_each_add, overflow_rule::saturate_at_end}) {
    INFO(to_string(o));
    accumulator hi({bits, o});
    hi.add(mx);
    CHECK(hi.result() == mx);
    accumulator lo({bits, o});
    lo.add(mn);
    CHECK(lo.result() == mn);
  }
  // One past the bounds.
  accumulator a({bits, overflow_rule::saturate_at_end}), b({bits, overflow_rule::wrap}), c({bits, overflow_rule::saturate_each_add});
  for (accumulator* x : {&a, &b, &c}) {
    x->add(mx);
    x->add(1);
  }
  CHECK(a.result() == mx);
  CHECK(b.result() == mn);
  CHECK(c.result() == mx);
  accumulator d({bits, overflow_rule::saturate_at_end});
  d.add(mn);
  d.add(-1);
  CHECK(d.result() == mn);
}

TEST_CASE("reference GEMM: products in K order, then the bias, under the accumulator rule", "[numerics][accumulator]") {
  // Products 16129, 16129, 16129, -16256 (127*127 x3, -128*127) in K order with a 16-bit accumulator.
  Tensor<std::int8_t> a(Layout::matrix(1, 4), Quant::per_tensor(1.0f, 0));
  Tensor<std::int8_t> b(Layout::matrix(4, 1), Quant::per_tensor(1.0f, 0));
  Tensor<std::int32_t> bias(Layout::row_major({1}));
  Tensor<std::int32_t> o(Layout::matrix(1, 1));
  const std::int8_t av[] = {127, 127, 127, -128};
  for (int k = 0; k < 4; ++k) {
    a.data()[k] = av[k];
    b.data()[k] = 127;
  }
  gemm_params gp;
  gp.numerics = numerics_profile::tflite().with_accumulator(16, overflow_rule::saturate_each_add);
  gemm(scalar, gp, a, b, no_bias, o);
  CHECK(o.data()[0] == 32767 - 16256);  // 16129, 32258, 32767 (sat), 16511
  gp.numerics = numerics_profile::tflite().with_accumulator(16, overflow_rule::saturate_at_end);
  gemm(scalar, gp, a, b, no_bias, o);
  CHECK(o.data()[0] == 3 * 16129 - 16256);  // 32131 fits
  gp.numerics = numerics_profile::tflite().with_accumulator(16, overflow_rule::wrap);
  gemm(scalar, gp, a, b, no_bias, o);
  CHECK(o.data()[0] == 32131);

  // Bias is added after the products: 127*127*3 saturates to 32767, then -16000 -> 16767.
  a.data()[3] = 0;
  bias.data()[0] = -16000;
  gp.numerics = numerics_profile::tflite().with_accumulator(16, overflow_rule::saturate_each_add);
  gemm(scalar, gp, a, b, bias, o);
  CHECK(o.data()[0] == 16767);  // bias first would give 32387
  gp.numerics = numerics_profile::tflite();  // int32 wrap: exact
  gemm(scalar, gp, a, b, bias, o);
  CHECK(o.data()[0] == 3 * 16129 - 16000);

  // 32-bit wrap through a bias: 127*127 + INT32_MAX wraps.
  a.data()[1] = a.data()[2] = 0;
  bias.data()[0] = kMax;
  gemm(scalar, gp, a, b, bias, o);
  CHECK(o.data()[0] == static_cast<std::int32_t>(static_cast<std::int64_t>(kMin) + 16129 - 1));
  gp.numerics = numerics_profile::tflite().with_accumulator(32, overflow_rule::saturate_each_add);
  gemm(scalar, gp, a, b, bias, o);
  CHECK(o.data()[0] == kMax);
}

TEST_CASE("reference conv2d reduces in (ky, kx, ic) order, depthwise in (ky, kx) order", "[numerics][accumulator]") {
  // 16-bit accumulator, products +-16129 / -16256 placed so that only the documented order
  // saturates (three positive products in a row).
  const numerics_profile sat = numerics_profile::tflite().with_accumulator(16, overflow_rule::saturate_each_add);
  const numerics_profile end = numerics_profile::tflite().with_accumulator(16, overflow_rule::saturate_at_end);
  {
    // conv2d: 1x3 kernel, 2 input channels; channel 0 taps positive, channel 1 taps negative.
    // (ky, kx, ic) order: +, -, +, -, +, - -> no saturation, exact -381.
    // (ic, ky, kx) order would be +, +, +, -, -, - -> 32767 after the third, then -16001.
    Tensor<std::int8_t> in(Layout::nhwc(1, 1, 3, 2), Quant::per_tensor(1.0f, 0));
    Tensor<std::int8_t> w(Layout::ohwi(1, 1, 3, 2), Quant::per_tensor(1.0f, 0));
    Tensor<std::int32_t> out(Layout::nhwc(1, 1, 1, 1));
    for (int kx = 0; kx < 3; ++kx) {
      in.data()[kx * 2 + 0] = 127;
      in.data()[kx * 2 + 1] = -128;
      w.data()[kx * 2 + 0] = 127;
      w.data()[kx * 2 + 1] = 127;
    }
    conv2d_params cp;
    cp.numerics = sat;
    conv2d(scalar, cp, in, w, no_bias, out);
    CHECK(out.data()[0] == 3 * 16129 - 3 * 16256);
    // kx = 0, 1 positive in both channels, kx = 2 negative: (ky, kx, ic) order +, +, +, +, -, -
    // gives 16129, 32258, 32767, 32767, 16511, 255; (ic, ky, kx) order would give 16511.
    for (int kx = 0; kx < 2; ++kx) in.data()[kx * 2 + 1] = 127;
    in.data()[4] = -128;  // kx = 2: -, -
    in.data()[5] = -128;
    conv2d(scalar, cp, in, w, no_bias, out);
    CHECK(out.data()[0] == 32767 - 2 * 16256);
    cp.numerics = end;
    conv2d(scalar, cp, in, w, no_bias, out);
    CHECK(out.data()[0] == 4 * 16129 - 2 * 16256);  // 32004
  }
  {
    // depthwise: 2x3 kernel, one channel; row ky = 0 positive, row ky = 1 negative.
    // (ky, kx) order: +, +, +, -, -, - -> saturates: 16129, 32258, 32767, 16511, 255, -16001.
    // (kx, ky) order would be +, -, +, -, +, - -> exact -381.
    Tensor<std::int8_t> in(Layout::nhwc(1, 2, 3, 1), Quant::per_tensor(1.0f, 0));
    Tensor<std::int8_t> w(Layout::hwc_m(2, 3, 1, 1), Quant::per_tensor(1.0f, 0));
    Tensor<std::int32_t> out(Layout::nhwc(1, 1, 1, 1));
    for (int i = 0; i < 6; ++i) {
      in.data()[i] = i < 3 ? 127 : -128;
      w.data()[i] = 127;
    }
    depthwise_params dp;
    dp.numerics = sat;
    depthwise_conv2d(scalar, dp, in, w, no_bias, out);
    CHECK(out.data()[0] == 32767 - 3 * 16256);
    dp.numerics = end;
    depthwise_conv2d(scalar, dp, in, w, no_bias, out);
    CHECK(out.data()[0] == 3 * 16129 - 3 * 16256);
  }
}

TEST_CASE("int32 outputs: raw accumulators, no clamp, at most 32 bits", "[numerics][validate]") {
  Tensor<std::int8_t> a(Layout::matrix(1, 1), Quant::per_tensor(1.0f, 0));
  Tensor<std::int8_t> b(Layout::matrix(1, 1), Quant::per_tensor(1.0f, 0));
  Tensor<std::int32_t> o(Layout::matrix(1, 1));
  gemm_params p;
  p.numerics = numerics_profile::q31(rounding::half_up, {40, overflow_rule::wrap});
  CHECK(try_gemm(scalar, p, a, b, no_bias, o).code() == errc::unsupported);
  p.numerics = numerics_profile::q31(rounding::half_up, {20, overflow_rule::wrap});
  a.data()[0] = -128;
  b.data()[0] = -128;
  CHECK(try_gemm(scalar, p, a, b, no_bias, o).ok());
  CHECK(o.data()[0] == 16384);
  p.clamp = clamp_spec::relu();
  CHECK(try_gemm(scalar, p, a, b, no_bias, o).code() == errc::unsupported);
  p.clamp = clamp_spec::none();
  p.requant = {{1 << 30, 0, 0.f}};
  CHECK(try_gemm(scalar, p, a, b, no_bias, o).code() == errc::invalid_argument);
}

// =================================================================================================
// 7. Profile validation
// =================================================================================================

TEST_CASE("profile validation", "[numerics][validate]") {
  CHECK(numerics_profile::tflite().validate().ok());
  CHECK(numerics_profile::tosa_single().validate().ok());
  CHECK(numerics_profile::onnx().validate().ok());
  numerics_profile bad = numerics_profile::onnx();
  bad.mode = rounding::tflite_double;
  CHECK(bad.validate().code() == errc::invalid_argument);
  CHECK(numerics_profile::fp32(rounding::tflite_double).validate().code() == errc::invalid_argument);
  for (int bits : {0, 7, 49, 64}) {
    INFO("bits = " << bits);
    CHECK(numerics_profile::q31(rounding::half_up, {bits, overflow_rule::wrap}).validate().code() == errc::invalid_argument);
  }
  for (int bits : {8, 20, 32, 48}) {
    INFO("bits = " << bits);
    CHECK(numerics_profile::q31(rounding::half_up, {bits, overflow_rule::wrap}).validate().ok());
    CHECK(numerics_profile::fp32(rounding::half_even, {bits, overflow_rule::saturate_each_add}).validate().ok());
  }
  CHECK(numerics_profile::tflite().with_accumulator(32, overflow_rule::saturate_at_end).validate().ok());
  CHECK(numerics_profile::tflite().with_accumulator(33, overflow_rule::wrap).validate().code() == errc::unsupported);
  CHECK(numerics_profile::tflite().with_accumulator(48, overflow_rule::wrap).validate().code() == errc::unsupported);
  CHECK(numerics_profile::tflite().describe() == "tflite (multiplier q31, rounding tflite_double, accumulator 32-bit wrap)");
}

TEST_CASE("validate_requant_channel", "[numerics][validate]") {
  const numerics_profile q = numerics_profile::tflite();
  CHECK(validate_requant_channel(q, {1 << 30, 30, 0.f}, 0).ok());
  CHECK(validate_requant_channel(q, {1 << 30, -31, 0.f}, 0).ok());
  CHECK(validate_requant_channel(q, {0, 0, 0.f}, 0).ok());
  CHECK(validate_requant_channel(q, {1 << 30, 31, 0.f}, 0).code() == errc::invalid_quantization);
  CHECK(validate_requant_channel(q, {1 << 30, -32, 0.f}, 0).code() == errc::invalid_quantization);
  CHECK(validate_requant_channel(q, {-1, 0, 0.f}, 3).code() == errc::invalid_quantization);
  CHECK(validate_requant_channel(q, {kMin, 0, 0.f}, 0).code() == errc::invalid_quantization);
  CHECK(validate_requant_channel(q, {-1, 0, 0.f}, 3).message().find("requant[3]") != std::string::npos);
  const numerics_profile f = numerics_profile::onnx();
  CHECK(validate_requant_channel(f, {0, 0, 0.25f}, 0).ok());
  for (float s : {0.0f, -1.0f, INFINITY, NAN}) {
    INFO("scale = " << s);
    CHECK(validate_requant_channel(f, {0, 0, s}, 0).code() == errc::invalid_quantization);
  }
}

TEST_CASE("integer (multiplier, shift) pairs supplied through gemm_params::requant", "[numerics][validate]") {
  // acc = -298 (bias), requant (2^30, -1) = 0.25: tflite -75, tosa_single -74.
  Tensor<std::int8_t> a(Layout::matrix(1, 1), Quant::per_tensor(1.0f, 0));
  Tensor<std::int8_t> b(Layout::matrix(1, 2), Quant::per_tensor(1.0f, 0));
  Tensor<std::int32_t> bias(Layout::row_major({2}));
  Tensor<std::int8_t> o(Layout::matrix(1, 2), Quant::per_tensor(1.0f, 0));
  bias.data()[0] = -298;
  bias.data()[1] = -298;
  gemm_params p;
  p.requant = {{1 << 30, -1, 0.f}};  // one entry: per tensor
  p.numerics = numerics_profile::tflite();
  gemm(scalar, p, a, b, bias, o);
  CHECK(o.data()[0] == -75);
  CHECK(o.data()[1] == -75);
  p.numerics = numerics_profile::tosa_single();
  gemm(scalar, p, a, b, bias, o);
  CHECK(o.data()[0] == -74);
  // Per channel: column 1 with (2^30, -2) = 0.125 -> -37.25 -> -37.
  p.requant = {{1 << 30, -1, 0.f}, {1 << 30, -2, 0.f}};
  gemm(scalar, p, a, b, bias, o);
  CHECK(o.data()[0] == -74);
  CHECK(o.data()[1] == -37);
  // fp32 profiles read the scale field.
  p.numerics = numerics_profile::onnx();
  p.requant = {{0, 0, 0.25f}};
  gemm(scalar, p, a, b, bias, o);
  CHECK(o.data()[0] == -74);  // -74.5 to even
  p.numerics = numerics_profile::fp32(rounding::half_away);
  gemm(scalar, p, a, b, bias, o);
  CHECK(o.data()[0] == -75);
  // Derived from the tensor scales instead: 1 * 1 / 4 = 0.25.
  p.requant.clear();
  o.set_quant(Quant::per_tensor(4.0f, 0));
  p.numerics = numerics_profile::tflite();
  gemm(scalar, p, a, b, bias, o);
  CHECK(o.data()[0] == -75);
  p.numerics = numerics_profile::onnx();
  gemm(scalar, p, a, b, bias, o);
  CHECK(o.data()[0] == -74);
  // Rejected pairs and counts.
  p.numerics = numerics_profile::tflite();
  p.requant = {{1 << 30, 31, 0.f}};
  CHECK(try_gemm(scalar, p, a, b, bias, o).code() == errc::invalid_quantization);
  p.requant = {{1 << 30, -32, 0.f}};
  CHECK(try_gemm(scalar, p, a, b, bias, o).code() == errc::invalid_quantization);
  p.requant = {{-5, 0, 0.f}};
  CHECK(try_gemm(scalar, p, a, b, bias, o).code() == errc::invalid_quantization);
  p.requant = {{1 << 30, 0, 0.f}, {1 << 30, 0, 0.f}, {1 << 30, 0, 0.f}};
  CHECK(try_gemm(scalar, p, a, b, bias, o).code() == errc::invalid_quantization);
  p.numerics = numerics_profile::onnx();
  p.requant = {{0, 0, 0.0f}};
  CHECK(try_gemm(scalar, p, a, b, bias, o).code() == errc::invalid_quantization);
  // Invalid profiles are rejected by the op.
  p.requant.clear();
  p.numerics = numerics_profile::fp32(rounding::tflite_double);
  CHECK(try_gemm(scalar, p, a, b, bias, o).code() == errc::invalid_argument);
  p.numerics = numerics_profile::tflite().with_accumulator(40, overflow_rule::wrap);
  CHECK(try_gemm(scalar, p, a, b, bias, o).code() == errc::unsupported);
}

// =================================================================================================
// 8. Output stage clamps
// =================================================================================================

namespace {
// TFLite CalculateActivationRangeQuantized: quantize(f) = zp + (int)round(f / scale) in float.
struct tfl_range {
  std::int32_t lo, hi;
};
tfl_range tflite_activation_range(activation act, float scale, std::int32_t zp, std::int32_t qmin, std::int32_t qmax) {
  auto quantize = [&](float f) { return zp + static_cast<std::int32_t>(std::round(f / scale)); };
  if (act == activation::relu) return {std::max(qmin, quantize(0.0f)), qmax};
  if (act == activation::relu6) return {std::max(qmin, quantize(0.0f)), std::min(qmax, quantize(6.0f))};
  return {qmin, qmax};
}

template <class O>
output_stage stage_for(activation act, float out_scale, std::int32_t out_zp) {
  Tensor<std::int8_t> in(Layout::matrix(1, 1), Quant::per_tensor(0.5f, 0));
  Tensor<std::int8_t> w(Layout::matrix(1, 1), Quant::per_tensor(0.5f, 0));
  Tensor<O> out(Layout::matrix(1, 1), Quant::per_tensor(out_scale, out_zp));
  output_params p;
  p.clamp.kind = act;
  output_stage st;
  const status s = detail::make_output_stage(p, in.cview(), w.cview(), out.view(), 1, 1, &st);
  REQUIRE(s.ok());
  return st;
}
}  // namespace

TEST_CASE("relu / relu6 bounds as TFLite computes them", "[numerics][clamp]") {
  struct row {
    float scale;
    std::int32_t zp;
  };
  const row s8[] = {{0.05f, -10}, {0.05f, -128}, {6.0f / 255.0f, -128}, {0.1f, 20}, {0.8f, 0}, {0.02f, 0}, {1.0f, 127}};
  for (const row& r : s8)
    for (activation act : {activation::none, activation::relu, activation::relu6}) {
      INFO("int8, scale " << r.scale << ", zp " << r.zp << ", activation " << static_cast<int>(act));
      const output_stage st = stage_for<std::int8_t>(act, r.scale, r.zp);
      const tfl_range want = tflite_activation_range(act, r.scale, r.zp, -128, 127);
      CHECK(st.lo == want.lo);
      CHECK(st.hi == want.hi);
    }
  const row u8[] = {{0.1f, 128}, {6.0f / 255.0f, 0}, {0.03f, 30}, {0.8f, 250}};
  for (const row& r : u8)
    for (activation act : {activation::none, activation::relu, activation::relu6}) {
      INFO("uint8, scale " << r.scale << ", zp " << r.zp << ", activation " << static_cast<int>(act));
      const output_stage st = stage_for<std::uint8_t>(act, r.scale, r.zp);
      const tfl_range want = tflite_activation_range(act, r.scale, r.zp, 0, 255);
      CHECK(st.lo == want.lo);
      CHECK(st.hi == want.hi);
    }
  // Literal values.
  CHECK(stage_for<std::int8_t>(activation::relu, 0.05f, -10).lo == -10);
  CHECK(stage_for<std::int8_t>(activation::relu6, 0.05f, -10).hi == 110);  // -10 + 120
  CHECK(stage_for<std::uint8_t>(activation::relu6, 0.1f, 128).hi == 188);   // 128 + 60
  CHECK(stage_for<std::int8_t>(activation::relu6, 0.05f, 20).hi == 127);    // 20 + 120 capped
  // 6 / 0.8f is exactly 7.5 in float (7.4999999 in double): TFLite rounds the float -> 8.
  REQUIRE(6.0f / 0.8f == 7.5f);
  CHECK(stage_for<std::int8_t>(activation::relu6, 0.8f, 0).hi == 8);
}

TEST_CASE("fused clamps applied by a GEMM", "[numerics][clamp]") {
  // out scale 0.05, zp -10: relu6 -> [-10, 110]. Accumulators from the bias, requant 1.0.
  Tensor<std::int8_t> a(Layout::matrix(1, 1), Quant::per_tensor(1.0f, 0));
  Tensor<std::int8_t> b(Layout::matrix(1, 4), Quant::per_tensor(1.0f, 0));
  Tensor<std::int32_t> bias(Layout::row_major({4}));
  Tensor<std::int8_t> o(Layout::matrix(1, 4), Quant::per_tensor(0.05f, -10));
  const std::int32_t accs[] = {-50, 5, 200, 119};
  for (int i = 0; i < 4; ++i) bias.data()[i] = accs[i];
  gemm_params p;
  p.requant = {{1 << 30, 1, 0.f}};  // 1.0
  p.clamp = clamp_spec::relu6();
  gemm(scalar, p, a, b, bias, o);
  CHECK(o.data()[0] == -10);  // -60 -> lo
  CHECK(o.data()[1] == -5);
  CHECK(o.data()[2] == 110);  // 190 -> hi
  CHECK(o.data()[3] == 109);
  p.clamp = clamp_spec::relu();
  gemm(scalar, p, a, b, bias, o);
  CHECK(o.data()[0] == -10);
  CHECK(o.data()[2] == 127);
  p.clamp = clamp_spec::none();
  gemm(scalar, p, a, b, bias, o);
  CHECK(o.data()[0] == -60);
  p.clamp = clamp_spec::range(-20, 20);
  gemm(scalar, p, a, b, bias, o);
  CHECK(o.data()[0] == -20);
  CHECK(o.data()[1] == -5);
  CHECK(o.data()[2] == 20);
  p.clamp = clamp_spec::range(20, -20);
  CHECK(try_gemm(scalar, p, a, b, bias, o).code() == errc::invalid_argument);
  p.clamp = clamp_spec::range(-129, 0);
  CHECK(try_gemm(scalar, p, a, b, bias, o).code() == errc::invalid_argument);
}
