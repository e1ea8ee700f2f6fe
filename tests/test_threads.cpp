// Threads change the speed of an op, never its bytes: GEMM, conv2d, depthwise and softmax on 1,
// 2, 3 and 4 threads give the scalar reference's result at every ISA level this CPU runs, for shapes split by rows
// and shapes split by column panels. With OpenMP (the test build has it when the compiler does)
// the op must really have run on the threads asked for: simd_last_threads() says how many.
#include "support/catch.hpp"
#include "support/random.hpp"

#include <string>
#include <vector>

#include <npuq/npuq.hpp>

using namespace npuq;
using npuq_test::fill;
using npuq_test::random_scales;
using npuq_test::random_zero_points;
using npuq_test::rng;
using npuq_test::values;

namespace {

const numerics_profile kProfiles[] = {numerics_profile::tflite(), numerics_profile::onnx(), numerics_profile::tosa_single()};

// The op ran on `threads` threads when OpenMP is there, else on one.
void require_threads(int threads) {
  INFO("asked for " << threads << " threads");
  REQUIRE(simd_last_threads() == (threading_available ? threads : 1));
}

}  // namespace

TEST_CASE("thread counts are read as documented", "[threads]") {
  CHECK(simd_backend{}.thread_count() == 1);
  CHECK(simd.with_threads(3).thread_count() == 3);
  CHECK(simd.with_threads(-2).thread_count() == 1);
  CHECK(simd.with_threads(0).thread_count() >= 1);
  CHECK(simd_backend{isa::avx2, 2}.with_threads(5).cap == isa::avx2);
}

TEST_CASE("simd gemm gives the same bytes on 1-4 threads", "[threads][gemm]") {
  rng r(91);
  struct shape {
    std::int64_t M, N, K;
  };
  // Row splits (tall A), panel splits (one row tile, many panels), and shapes with too little
  // work for every thread (the parts are fewer than the threads).
  const shape shapes[] = {{203, 40, 37}, {128, 96, 300}, {3, 300, 64}, {1, 517, 129}, {17, 33, 8}};
  for (isa level : cpu().levels())
    for (const shape& s : shapes)
      for (const numerics_profile& prof : kProfiles) {
        Tensor<std::int8_t> a(Layout::matrix(s.M, s.K), Quant::per_tensor(0.02f, r.uniform(-128, 127)));
        Tensor<std::uint8_t> b(Layout::matrix(s.K, s.N), Quant::per_axis(1, random_scales(r, s.N), random_zero_points(r, s.N, 0, 255)));
        Tensor<std::int32_t> bias(Layout::row_major({s.N}));
        fill(a, r);
        fill(b, r);
        fill(bias, r, -20000, 20000);
        gemm_params p;
        p.numerics = prof;
        Tensor<std::int8_t> expect(Layout::matrix(s.M, s.N), Quant::per_tensor(0.05f, 7));
        REQUIRE(try_gemm(scalar, p, a, b, bias, expect).ok());
        for (int threads = 1; threads <= 4; ++threads) {
          INFO(to_string(level) << " M=" << s.M << " N=" << s.N << " K=" << s.K << " " << prof.describe() << " threads " << threads);
          Tensor<std::int8_t> got(Layout::matrix(s.M, s.N), Quant::per_tensor(0.05f, 7));
          REQUIRE(try_gemm(simd_backend{level, threads}, p, a, b, bias, got).ok());
          REQUIRE(values(got) == values(expect));
          if (s.M >= 128 || s.N >= 300) require_threads(threads);  // 4 row tiles of 32 (AMX) or panel groups
        }
      }
}

TEST_CASE("simd conv2d gives the same bytes on 1-4 threads", "[threads][conv2d]") {
  rng r(92);
  struct cfg {
    std::int64_t N, H, W, C, OC, K, stride, groups;
  };
  // At least 4 row tiles of 32 output pixels (AMX's tile) per group, so every thread gets work.
  const cfg cases[] = {{1, 23, 21, 3, 16, 3, 2, 1}, {2, 9, 9, 16, 40, 3, 1, 2}, {1, 12, 12, 8, 24, 1, 1, 1}};
  for (isa level : cpu().levels())
    for (const cfg& c : cases)
      for (const numerics_profile& prof : kProfiles) {
        conv2d_params p;
        p.numerics = prof;
        p.stride_h = p.stride_w = c.stride;
        p.padding = padding_spec::same();
        p.groups = c.groups;
        conv_geometry g = detail::input_geometry(Layout::nhwc(c.N, c.H, c.W, c.C), c.K, c.K);
        REQUIRE(detail::resolve_geometry(p, &g).ok());
        Tensor<std::uint8_t> in(Layout::nhwc(c.N, c.H, c.W, c.C), Quant::per_tensor(0.03f, 117));
        Tensor<std::int8_t> w(Layout::ohwi(c.OC, c.K, c.K, c.C / c.groups), Quant::per_axis(0, random_scales(r, c.OC)));
        Tensor<std::int32_t> bias(Layout::row_major({c.OC}));
        fill(in, r);
        fill(w, r);
        fill(bias, r, -3000, 3000);
        Tensor<std::int8_t> expect(Layout::nhwc(c.N, g.OH, g.OW, c.OC), Quant::per_tensor(0.07f, -20));
        conv2d(scalar, p, in, w, bias, expect);
        for (int threads = 1; threads <= 4; ++threads) {
          INFO(to_string(level) << " conv " << c.H << "x" << c.W << "x" << c.C << " -> " << c.OC << " " << prof.describe() << " threads "
                                << threads);
          Tensor<std::int8_t> got(Layout::nhwc(c.N, g.OH, g.OW, c.OC), Quant::per_tensor(0.07f, -20));
          conv2d(simd_backend{level, threads}, p, in, w, bias, got);
          REQUIRE(values(got) == values(expect));
          require_threads(threads);
        }
      }
}

TEST_CASE("simd depthwise gives the same bytes on 1-4 threads", "[threads][depthwise]") {
  rng r(93);
  struct cfg {
    std::int64_t N, H, W, C, M, K, stride;
  };
  // Large enough to be split (at least 2^17 multiply-adds a part); 3x3, 5x5 and 7x7 kernels.
  const cfg cases[] = {{1, 56, 56, 48, 1, 3, 1}, {2, 30, 31, 40, 2, 5, 2}, {1, 28, 28, 72, 1, 7, 1}};
  for (isa level : cpu().levels())
    for (const cfg& c : cases)
      for (const numerics_profile& prof : kProfiles) {
        const std::int64_t OC = c.C * c.M;
        depthwise_params p;
        p.numerics = prof;
        p.stride_h = p.stride_w = c.stride;
        p.padding = padding_spec::same();
        conv_geometry g = detail::input_geometry(Layout::nhwc(c.N, c.H, c.W, c.C), c.K, c.K);
        REQUIRE(detail::resolve_geometry(p, &g).ok());
        Tensor<std::uint8_t> in(Layout::nhwc(c.N, c.H, c.W, c.C), Quant::per_tensor(0.03f, 117));
        Tensor<std::int8_t> w(Layout::hwc_m(c.K, c.K, c.C, c.M), Quant::per_axis(2, random_scales(r, OC)));
        Tensor<std::int32_t> bias(Layout::row_major({OC}));
        fill(in, r);
        fill(w, r);
        fill(bias, r, -3000, 3000);
        Tensor<std::int8_t> expect(Layout::nhwc(c.N, g.OH, g.OW, OC), Quant::per_tensor(0.07f, -20));
        depthwise_conv2d(scalar, p, in, w, bias, expect);
        for (int threads = 1; threads <= 4; ++threads) {
          INFO(to_string(level) << " depthwise " << c.H << "x" << c.W << "x" << c.C << " K=" << c.K << " " << prof.describe()
                                << " threads " << threads);
          Tensor<std::int8_t> got(Layout::nhwc(c.N, g.OH, g.OW, OC), Quant::per_tensor(0.07f, -20));
          depthwise_conv2d(simd_backend{level, threads}, p, in, w, bias, got);
          REQUIRE(values(got) == values(expect));
          require_threads(threads);
        }
      }
}

TEST_CASE("simd softmax gives the same bytes on 1-4 threads", "[threads][softmax]") {
  rng r(94);
  // Rows x depth: enough work to be split (16K elements a part), contiguous and strided rows.
  const std::int64_t cases[][2] = {{256, 300}, {97, 1000}, {4096, 16}};
  const softmax_params p = softmax_params::tflite(1.0f, 0.06f);
  for (isa level : cpu().levels())
    for (const auto& c : cases)
      for (bool strided : {false, true}) {
        const std::int64_t rows = c[0], depth = c[1];
        Tensor<std::int8_t> in(Layout::matrix(rows, depth), Quant::per_tensor(0.06f, 0));
        fill(in, r);
        const Quant oq = Quant::per_tensor(1.0f / 256.0f, -128);
        Tensor<std::int8_t> expect(Layout::matrix(rows, depth), oq);
        softmax(scalar, p, in, expect);
        for (int threads = 1; threads <= 4; ++threads) {
          INFO(to_string(level) << " softmax " << rows << "x" << depth << (strided ? " strided" : "") << " threads " << threads);
          // Strided: the output transposed in memory ([depth, rows] storage viewed as [rows, depth]).
          Tensor<std::int8_t> store(Layout::matrix(depth, rows));
          const TensorView<std::int8_t> got(store.data(), strided ? Layout::matrix(depth, rows).transpose(0, 1) : Layout::matrix(rows, depth),
                                            oq, store.capacity());
          softmax(simd_backend{level, threads}, p, in, got);
          std::vector<std::int64_t> got_values;
          for (std::int64_t i = 0; i < rows; ++i)
            for (std::int64_t j = 0; j < depth; ++j) got_values.push_back(got(i, j));
          REQUIRE(got_values == values(expect));
          require_threads(threads);
        }
      }
}
