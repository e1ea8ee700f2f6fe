// The int16 softmax plan (softmax_int16_plan in backends/simd/plan.hpp) is the one-shot int16
// softmax split in two: its runs write the scalar reference's bytes and the one-shot simd call's,
// at every ISA level this CPU runs, on 1-4 threads, with both runtimes' tables, caller-supplied
// tables and a saturating input scale, for rows of one element, odd and 4000+ elements, and with
// strided views; runs allocate nothing (counted through a replaced global operator new); and a
// run whose tensors disagree with the plan is refused by name before anything is written.
#include "support/allocations.hpp"
#include "support/catch.hpp"
#include "support/levels.hpp"
#include "support/random.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <npuq/npuq.hpp>

using namespace npuq;
using npuq_test::allocations_in;
using npuq_test::fill;
using npuq_test::kCountsAllocations;
using npuq_test::rng;
using npuq_test::values;

namespace {

const Quant kOutQuant = Quant::per_tensor(1.0f / 32768.0f, 0);

struct variant {
  const char* name;
  softmax_int16_params params;
  float input_scale;
};

// Both runtimes' tables, a caller's own tables (exp of a steeper curve, TFLM's reciprocal) and
// beta * input scale >= 5, where the scaled difference saturates.
std::vector<variant> variants() {
  const int16_lut steep = int16_lut::generate([](double x) { return std::exp(1.5 * x); }, -10.0, 0.0);
  return {{"tflite", softmax_int16_params::tflite(1.0f, 0.002f), 0.002f},
          {"tflm", softmax_int16_params::tflm(0.7f, 0.0031f), 0.0031f},
          {"own tables", softmax_int16_params::tflite(1.0f, 0.001f).with_tables(
                             steep, softmax_int16_math::one_over_one_plus_x_lut(softmax_int16_runtime::tflm)),
           0.001f},
          {"saturating", softmax_int16_params::tflite(2.0f, 4.0f), 4.0f}};
}

}  // namespace

TEST_CASE("the allocation counter sees allocations", "[plan][softmax16]") {
  // Guards the zero-allocation checks below against a counter that cannot count.
  if (kCountsAllocations) CHECK(allocations_in([] { std::vector<int> v(100); (void)v; }) == 1);
}

TEST_CASE("int16 softmax plans write the reference's bytes on any thread count and allocate nothing", "[plan][softmax16]") {
  rng r(331);
  // Rows of one element, short and odd rows, long rows (several of them, so that they split over
  // threads), a 3-d tensor and many short rows.
  const Layout shapes[] = {Layout::matrix(1, 1),      Layout::matrix(5, 1),          Layout::matrix(3, 7),
                           Layout::matrix(9, 33),     Layout::matrix(2, 4001),       Layout::matrix(9, 4099),
                           Layout::row_major({2, 3, 17}), Layout::matrix(3000, 16)};
  for (const variant& var : variants())
    for (const Layout& shape : shapes) {
      Tensor<std::int16_t> in(shape, Quant::per_tensor(var.input_scale, 0));
      fill(in, r);
      Tensor<std::int16_t> expect(shape, kOutQuant);
      softmax(scalar, var.params, in, expect);
      for (isa level : cpu().levels())
        for (int threads : {1, 2, 3, 4}) {
          INFO(to_string(level) << " " << var.name << " " << shape.shape_string() << " threads " << threads);
          const simd_backend be{level, threads};
          Tensor<std::int16_t> one_shot(shape, kOutQuant), got(shape, kOutQuant);
          softmax(be, var.params, in, one_shot);
          REQUIRE(values(one_shot) == values(expect));
          auto plan = make_softmax_int16_plan(be, var.params, in, got);
          CHECK(plan.kernel_name() == simd_last_kernel());
          CHECK(plan.threads() == threads);
          plan.run(in, got);
          REQUIRE(values(got) == values(expect));
          fill(got, r);
          const long allocated = allocations_in([&] { plan.run(in, got); });
          if (kCountsAllocations) REQUIRE(allocated == 0);
          REQUIRE(values(got) == values(expect));
        }
    }
}

TEST_CASE("an int16 softmax plan runs strided rows and refuses what differs from its creation", "[plan][softmax16]") {
  rng r(332);
  const std::int64_t rows = 40, depth = 71;
  const softmax_int16_params p = softmax_int16_params::tflite(1.0f, 0.003f);
  const Quant iq = Quant::per_tensor(0.003f, 0);
  Tensor<std::int16_t> in(Layout::matrix(rows, depth), iq);
  fill(in, r);
  Tensor<std::int16_t> expect(Layout::matrix(rows, depth), kOutQuant), out(Layout::matrix(rows, depth), kOutQuant);
  softmax(scalar, p, in, expect);
  // The same values stored transposed, written to a transposed output.
  Tensor<std::int16_t> in_store(Layout::matrix(depth, rows)), out_store(Layout::matrix(depth, rows));
  const TensorView<std::int16_t> in_t(in_store.data(), Layout::matrix(depth, rows).transpose(0, 1), iq, in_store.capacity());
  const TensorView<std::int16_t> out_t(out_store.data(), Layout::matrix(depth, rows).transpose(0, 1), kOutQuant, out_store.capacity());
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < depth; ++j) in_store.data()[in_t.layout()(i, j)] = in.view()(i, j);
  for (isa level : cpu().levels())
    for (int threads : {1, 2, 3}) {
      INFO(to_string(level) << " threads " << threads);
      // Made on contiguous views, run on strided ones: the row buffers are the plan's.
      auto plan = make_softmax_int16_plan(simd_backend{level, threads}, p, in, out);
      fill(out_store, r);
      const long allocated = allocations_in([&] { plan.run(in_t, out_t); });
      if (kCountsAllocations) CHECK(allocated == 0);
      for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < depth; ++j) REQUIRE(out_t(i, j) == expect.view()(i, j));
      fill(out, r);
      plan.run(in, out);
      REQUIRE(values(out) == values(expect));
    }

  auto plan = make_softmax_int16_plan(simd, p, in, out);
  fill(out, r);
  const auto untouched = values(out);
  Tensor<std::int16_t> longer(Layout::matrix(rows, depth + 1), iq);
  status st = plan.try_run(longer, out);
  CHECK(st.code() == errc::invalid_shape);
  CHECK(st.message().find("input: shape") != std::string::npos);
  Tensor<std::int16_t> short_out(Layout::matrix(rows - 1, depth), kOutQuant);
  st = plan.try_run(in, short_out);
  CHECK(st.code() == errc::invalid_shape);
  CHECK(st.message().find("output: shape") != std::string::npos);
  // Quantization the one-shot call would accept, but not the plan's.
  const TensorView<std::int16_t> rescaled_in(in.data(), in.layout(), Quant::per_tensor(0.004f, 0), in.capacity());
  st = plan.try_run(rescaled_in, out);
  CHECK(st.code() == errc::invalid_quantization);
  CHECK(st.message().find("input: quantization differs") != std::string::npos);
  const TensorView<std::int16_t> bare_out(out.data(), out.layout(), Quant{}, out.capacity());
  st = plan.try_run(in, bare_out);
  CHECK(st.code() == errc::invalid_quantization);
  CHECK(st.message().find("output: quantization differs") != std::string::npos);
  const TensorView<std::int16_t> over_input(in.data(), out.layout(), kOutQuant, in.capacity());
  CHECK(plan.try_run(in, over_input).code() == errc::aliasing);
  CHECK(values(out) == untouched);
  // After an accepted run on the same views, a quantization changed in place is still refused.
  plan.run(in, out);
  REQUIRE(values(out) == values(expect));
  fill(out, r);
  const auto before = values(out);
  out.set_quant(Quant::per_tensor(1.0f / 16384.0f, 0));
  st = plan.try_run(in, out);
  CHECK(st.code() == errc::invalid_quantization);
  CHECK(st.message().find("output: quantization differs") != std::string::npos);
  CHECK(values(out) == before);
  out.set_quant(kOutQuant);

  // Creation validates like the one-shot call, with its messages.
  softmax_int16_plan bad;
  Tensor<std::int16_t> bad_out(Layout::matrix(rows, depth), Quant::per_tensor(1.0f / 256.0f, 0));
  Tensor<std::int16_t> one_shot_out(Layout::matrix(rows, depth), Quant::per_tensor(1.0f / 256.0f, 0));
  st = try_make_softmax_int16_plan(simd, p, in, bad_out, &bad);
  const status one_shot = try_softmax(simd, p, in, one_shot_out);
  CHECK(st.code() == errc::invalid_quantization);
  CHECK(st.code() == one_shot.code());
  CHECK(st.message() == one_shot.message());
  CHECK(st.message().find("output:") == 0);
  CHECK(bad.empty());
  Tensor<std::int16_t> wrong_shape(Layout::matrix(rows, depth - 1), kOutQuant);
  st = try_make_softmax_int16_plan(simd, p, in, wrong_shape, &bad);
  CHECK(st.code() == errc::invalid_shape);
  CHECK(st.message() == try_softmax(simd, p, in, wrong_shape).message());
  softmax_int16_params broken = p;
  broken.input_multiplier = 5;
  st = try_make_softmax_int16_plan(simd, broken, in, out, &bad);
  CHECK(st.code() == errc::invalid_argument);
  CHECK(st.message() == try_softmax(simd, broken, in, out).message());
  CHECK(bad.empty());
  CHECK_THROWS_AS(make_softmax_int16_plan(simd, broken, in, out), npuq::error);
  CHECK(softmax_int16_plan{}.try_run(in, out).code() == errc::invalid_argument);
}
