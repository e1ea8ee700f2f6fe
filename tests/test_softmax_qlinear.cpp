// ONNX Runtime's QLinearSoftmax (softmax_contract::onnxruntime_qlinear) against ORT itself.
//
// 1. Rows worked out by hand from the contract (include/npuq/ops/softmax_qlinear.hpp): equal
//    values, a 3:1 pair, saturation at the type's maximum, ties to even, the input zero point.
// 2. ONNX Runtime's own outputs on random rows of many lengths, scales, zero points and both
//    8-bit types (tests/data/qlinear_softmax/ort_rows.txt, made by
//    tools/digits/qlinear_softmax_reference.py with onnxruntime-node), on scalar, simd and the
//    NPU emulator, contiguous and strided.
// 3. Bad input: scales, zero points, rows ORT leaves undefined, output quantization, and the ops
//    that do not implement the contract (attention, the simd softmax plan).
#include "support/catch.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <npuq/npu.hpp>
#include <npuq/npuq.hpp>

using namespace npuq;

namespace {

template <class T, class Backend>
std::vector<int> run_rows(const Backend& be, const softmax_params& p, const std::vector<int>& x, std::int64_t depth) {
  const std::int64_t rows = static_cast<std::int64_t>(x.size()) / depth;
  Tensor<T> in(Layout::matrix(rows, depth));
  Tensor<T> out(Layout::matrix(rows, depth));
  for (std::size_t i = 0; i < x.size(); ++i) in.data()[i] = static_cast<T>(x[i]);
  throw_if_error(try_softmax(be, p, in, out));
  return std::vector<int>(out.data(), out.data() + x.size());
}

std::vector<int> s8(const softmax_params& p, const std::vector<int>& row) {
  return run_rows<std::int8_t>(scalar, p, row, static_cast<std::int64_t>(row.size()));
}

struct ort_case {
  std::string type;
  std::int64_t depth = 0, rows = 0;
  float x_scale = 0, y_scale = 0;
  int y_zero_point = 0;
  std::vector<int> x, y;
};

std::vector<int> ints_after(const std::string& line, char tag) {
  REQUIRE((!line.empty() && line[0] == tag));
  std::istringstream s(line.substr(1));
  std::vector<int> v;
  for (int a; s >> a;) v.push_back(a);
  return v;
}

std::vector<ort_case> ort_cases() {
  std::ifstream f(NPUQ_QLINEAR_SOFTMAX_DATA);
  REQUIRE(f.good());
  std::vector<ort_case> out;
  for (std::string line; std::getline(f, line);) {
    if (line.rfind("case ", 0) != 0) continue;
    ort_case c;
    std::istringstream s(line.substr(5));
    s >> c.type >> c.depth >> c.rows >> c.x_scale >> c.y_scale >> c.y_zero_point;
    REQUIRE(!s.fail());
    std::string xl, yl;
    REQUIRE(std::getline(f, xl));
    REQUIRE(std::getline(f, yl));
    c.x = ints_after(xl, 'x');
    c.y = ints_after(yl, 'y');
    REQUIRE(static_cast<std::int64_t>(c.x.size()) == c.rows * c.depth);
    REQUIRE(c.y.size() == c.x.size());
    out.push_back(std::move(c));
  }
  return out;
}

template <class Backend>
std::vector<int> run_case(const Backend& be, const ort_case& c) {
  const softmax_params p = softmax_params::onnxruntime_qlinear(c.x_scale, c.y_scale, c.y_zero_point);
  return c.type == "int8" ? run_rows<std::int8_t>(be, p, c.x, c.depth) : run_rows<std::uint8_t>(be, p, c.x, c.depth);
}

}  // namespace

TEST_CASE("QLinearSoftmax rows worked out by hand", "[softmax][qlinear]") {
  const float sixteenth = 1.0f / 16;
  // Four equal values: 256 / 4 = 64 each, minus 128.
  CHECK(s8(softmax_params::onnxruntime_qlinear(sixteenth, 1.0f / 256, -128), {3, 3, 3, 3}) == std::vector<int>{-64, -64, -64, -64});
  // A difference of one unit at scale ln 3: exponentials 3:1, so 192 and 64 of 256.
  const float ln3 = static_cast<float>(std::log(3.0));
  CHECK(s8(softmax_params::onnxruntime_qlinear(ln3, 1.0f / 256, -128), {10, 9}) == std::vector<int>{64, -64});
  // The input zero point does not enter: only differences to the row maximum do.
  CHECK(s8(softmax_params::onnxruntime_qlinear(ln3, 1.0f / 256, -128), {-100, -101}) == std::vector<int>{64, -64});
  // One element takes everything: 256 - 128 = 128 saturates at 127 (ORT 1.31.1 clamps; older
  // releases wrapped it to -128). The others' exp(-255) vanish next to it in the float sum.
  CHECK(s8(softmax_params::onnxruntime_qlinear(1.0f, 1.0f / 256, -128), {127, -128, -128}) == std::vector<int>{127, -128, -128});
  CHECK(run_rows<std::uint8_t>(scalar, softmax_params::onnxruntime_qlinear(1.0f, 1.0f / 256, 0), {255, 0, 0}, 3) ==
        std::vector<int>{255, 0, 0});
  // Y = floor(1 / y_scale) in float: y_scale = 1/255 gives 254 (1.0f / 0.003921569f < 255).
  CHECK(softmax_math::qlinear::output_multiplier(softmax_params::onnxruntime_qlinear(1.0f, 1.0f / 255, 0)) == 254.0f);
  // Ties to even: two equal values with Y = 249 give 124.5 each, rounded to 124 (not 125).
  const softmax_params odd = softmax_params::onnxruntime_qlinear(1.0f, 1.0f / 249, 0);
  REQUIRE(softmax_math::qlinear::output_multiplier(odd) == 249.0f);
  CHECK(s8(odd, {7, 7}) == std::vector<int>{124, 124});
  // The table: E[0] = exp(max(0, logf(FLT_MAX / n) - 5)), so n * E[0] stays below FLT_MAX / e^5.
  const auto t = softmax_math::qlinear::exp_table::generate(softmax_params::onnxruntime_qlinear(0.5f, 1.0f / 256, -128), 16);
  const double e0 = std::exp(std::max(0.0, double(std::log(std::numeric_limits<float>::max() / 16.0f)) - 5.0));
  CHECK(std::fabs(double(t(0)) / e0 - 1.0) < 1e-6);
  CHECK(std::fabs(double(t(1)) / double(t(0)) - std::exp(-0.5)) < 1e-6);
  CHECK(double(t(0)) * 16 < double(std::numeric_limits<float>::max()) / std::exp(5.0) * 1.0001);
}

TEST_CASE("QLinearSoftmax equals ONNX Runtime's outputs on random rows", "[softmax][qlinear][ort]") {
  const std::vector<ort_case> cases = ort_cases();
  REQUIRE(cases.size() >= 32);
  std::size_t values = 0;
  for (const ort_case& c : cases) {
    INFO(c.type << " rows " << c.rows << " x " << c.depth << " x_scale " << c.x_scale << " y_scale " << c.y_scale << " y_zero_point "
                 << c.y_zero_point);
    CHECK(run_case(scalar, c) == c.y);
    CHECK(run_case(simd, c) == c.y);
    CHECK(simd_last_kernel() == "softmax_8bit_qlinear_reference");
    values += c.y.size();
  }
  npu::profile prof;
  REQUIRE(npu::presets::by_name("generic", &prof).ok());
  const npu::emulator emu(prof);
  for (const ort_case& c : cases) CHECK(run_case(emu, c) == cases[&c - cases.data()].y);
  CHECK(!emu.ops().empty());
  CHECK(values > 10000);
}

TEST_CASE("QLinearSoftmax runs over the last axis of strided views", "[softmax][qlinear][views]") {
  const std::vector<ort_case> cases = ort_cases();
  const ort_case& c = cases.front();  // int8 rows of 16: the digits transformer's attention
  REQUIRE(c.type == "int8");
  const softmax_params p = softmax_params::onnxruntime_qlinear(c.x_scale, c.y_scale, c.y_zero_point);
  // Rows stored as columns: element (r, i) at i * rows + r, in and out.
  Tensor<std::int8_t> in(Layout::strided({c.rows, c.depth}, {1, c.rows}));
  Tensor<std::int8_t> out(Layout::strided({c.rows, c.depth}, {1, c.rows}), Quant::per_tensor(c.y_scale, c.y_zero_point));
  for (std::int64_t r = 0; r < c.rows; ++r)
    for (std::int64_t i = 0; i < c.depth; ++i) in.data()[i * c.rows + r] = static_cast<std::int8_t>(c.x[std::size_t(r * c.depth + i)]);
  for (int be = 0; be < 2; ++be) {
    std::memset(out.data(), 0, static_cast<std::size_t>(out.storage_bytes()));
    throw_if_error(be == 0 ? try_softmax(scalar, p, in, out) : try_softmax(simd, p, in, out));
    for (std::int64_t r = 0; r < c.rows; ++r)
      for (std::int64_t i = 0; i < c.depth; ++i) REQUIRE(int(out.data()[i * c.rows + r]) == c.y[std::size_t(r * c.depth + i)]);
  }
}

TEST_CASE("QLinearSoftmax rejects bad input by name without writing", "[softmax][qlinear][validation]") {
  softmax_params p;
  CHECK(softmax_params::from_qlinear(0.0f, 1.0f / 256, -128, &p).code() == errc::invalid_quantization);
  CHECK(softmax_params::from_qlinear(std::nanf(""), 1.0f / 256, -128, &p).message().find("x_scale") != std::string::npos);
  CHECK(softmax_params::from_qlinear(0.1f, -1.0f, -128, &p).message().find("y_scale") != std::string::npos);
  CHECK(softmax_params::from_qlinear(0.1f, 1e-9f, -128, &p).code() == errc::invalid_quantization);  // floor(1 / y_scale) > 2^24
  CHECK(softmax_params::from_qlinear(0.1f, 1.0f / 256, 300, &p).message().find("y_zero_point") != std::string::npos);
  CHECK_THROWS_AS(softmax_params::onnxruntime_qlinear(0.1f, 0.0f, 0), npuq::error);

  const softmax_params good = softmax_params::onnxruntime_qlinear(0.1f, 1.0f / 256, -128);
  auto run = [&](const softmax_params& q, const auto& in, const auto& out) {
    std::memset(static_cast<void*>(out.data()), 0x5A, static_cast<std::size_t>(out.storage_bytes()));
    const status s = try_softmax(scalar, q, in, out);
    const auto* b = reinterpret_cast<const unsigned char*>(out.data());
    for (std::int64_t i = 0; i < out.storage_bytes(); ++i) REQUIRE(b[i] == 0x5A);
    return s;
  };
  Tensor<std::int8_t> x(Layout::matrix(3, 8)), y(Layout::matrix(3, 8));
  CHECK(try_softmax(scalar, good, x, y).ok());
  // Rows of one element: ORT's E[0] = FLT_MAX / e^5 times Y = 256 overflows float (undefined there).
  Tensor<std::int8_t> x1(Layout::matrix(3, 1)), y1(Layout::matrix(3, 1));
  const status shortrow = run(good, x1, y1);
  CHECK(shortrow.code() == errc::invalid_argument);
  CHECK(shortrow.message().find("overflow") != std::string::npos);
  CHECK(try_softmax(scalar, softmax_params::onnxruntime_qlinear(0.1f, 1.0f / 100, -128), x1, y1).ok());  // Y = 100 fits
  // A uint8 output cannot take y_zero_point -128; an output view must carry the same quantization.
  Tensor<std::uint8_t> yu(Layout::matrix(3, 8));
  const status zp = run(good, x, yu);
  CHECK(zp.code() == errc::invalid_quantization);
  CHECK(zp.message().find("y_zero_point -128") != std::string::npos);
  Tensor<std::int8_t> y_other(Layout::matrix(3, 8), Quant::per_tensor(1.0f / 255, -128));
  CHECK(run(good, x, y_other).code() == errc::invalid_quantization);
  Tensor<std::int8_t> y_same(Layout::matrix(3, 8), Quant::per_tensor(1.0f / 256, -128));
  CHECK(try_softmax(scalar, good, x, y_same).ok());

  // Ops that compute TFLite's softmax refuse the contract by name.
  Tensor<std::int8_t> o(Layout::matrix(3, 8));
  softmax_plan<std::int8_t, std::int8_t> plan;
  const status ps = plan.create(simd, good, x, o);
  CHECK(ps.code() == errc::unsupported);
  CHECK(ps.message().find("onnxruntime_qlinear") != std::string::npos);
  attention_params ap;
  ap.score = Quant::per_tensor(0.05f, 0);
  ap.softmax = good;
  Tensor<std::int8_t> q(Layout::row_major({1, 2, 4}), Quant::per_tensor(0.05f, 0)), k(Layout::row_major({1, 3, 4}), Quant::per_tensor(0.05f, 0)),
      v(Layout::row_major({1, 3, 4}), Quant::per_tensor(0.05f, 0)), a(Layout::row_major({1, 2, 4}), Quant::per_tensor(0.05f, 0));
  const status as = try_attention(scalar, ap, q, k, v, no_mask, a);
  CHECK(as.code() == errc::unsupported);
  CHECK(as.message().find("onnxruntime_qlinear") != std::string::npos);
}
