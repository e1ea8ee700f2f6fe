// Adversarial inputs (issue 14): each numbered case of the issue, as a regression test.
//
// Every rejected call must name the argument in its message and leave the output exactly as it
// was: outputs are filled with a canary byte first and compared byte for byte afterwards. Built
// under ASan + UBSan (the sanitize pass), the cases also prove that no arithmetic overflowed on
// the way to the error.
#include "support/catch.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <limits>
#include <string>
#include <vector>

#include <npuq/npu.hpp>
#include <npuq/npuq.hpp>

using namespace npuq;

namespace {

constexpr unsigned char kCanary = 0xA5;
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

// A byte buffer filled with the canary, viewed as T.
template <class T>
struct canary_buffer {
  std::vector<T> data;
  explicit canary_buffer(std::size_t n) : data(n) { std::memset(static_cast<void*>(data.data()), kCanary, n * sizeof(T)); }
  bool untouched() const {
    const auto* p = reinterpret_cast<const unsigned char*>(data.data());
    for (std::size_t i = 0; i < data.size() * sizeof(T); ++i)
      if (p[i] != kCanary) return false;
    return true;
  }
};

template <class T>
void fill_canary(const Tensor<T>& t) {
  std::memset(static_cast<void*>(t.data()), kCanary, static_cast<std::size_t>(t.storage_bytes()));
}
template <class T>
bool untouched(const Tensor<T>& t) {
  const auto* p = reinterpret_cast<const unsigned char*>(t.data());
  for (std::int64_t i = 0; i < t.storage_bytes(); ++i)
    if (p[i] != kCanary) return false;
  return true;
}

void expect_error(const status& s, errc code, const std::string& fragment) {
  INFO("status: " << s.to_string());
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == code);
  CHECK(s.message().find(fragment) != std::string::npos);
}

template <class T>
void fill_pattern(const Tensor<T>& t, int seed) {
  auto* p = t.data();
  for (std::int64_t i = 0; i < t.storage_bytes() / static_cast<std::int64_t>(sizeof(*p)); ++i)
    p[i] = static_cast<std::remove_reference_t<decltype(*p)>>((i * 37 + seed * 11) % 23 - 11);
}

}  // namespace

TEST_CASE("1: kv_cache append of INT64_MAX positions does not overflow the length", "[robustness][attention]") {
  const Quant q = Quant::per_tensor(0.5f, 0);
  kv_cache<std::int8_t> cache(1, 4, 1, 1, q, q);
  const std::int8_t one[1] = {3};
  const TensorView<const std::int8_t> step(one, Layout::row_major({1, 1, 1}), q);
  REQUIRE(cache.try_append(step, step).ok());
  const TensorView<const std::int8_t> keys = cache.keys();
  std::vector<std::int8_t> before(keys.data(), keys.data() + keys.capacity());

  // [1, INT64_MAX, 1] with stride 0: a valid view of one byte (size INT64_MAX, span 1).
  const TensorView<const std::int8_t> huge(one, 0, Layout::strided({1, kMax, 1}, {0, 0, 0}), q, 1);
  REQUIRE(huge.validate("k").ok());
  expect_error(cache.try_append(huge, huge), errc::buffer_too_small, "kv_cache: appending 9223372036854775807 positions");
  CHECK(cache.length() == 1);
  const TensorView<const std::int8_t> after = cache.keys();
  CHECK(std::vector<std::int8_t>(after.data(), after.data() + after.capacity()) == before);
}

TEST_CASE("2, 3: a layout whose span wraps is rejected on scalar and simd before any write", "[robustness][layout][gemm]") {
  const Layout huge = Layout::matrix(std::int64_t{1} << 62, 4);
  CHECK_FALSE(huge.fits());
  CHECK(huge.span() == kMax);  // saturated, never the wrapped 0
  // A Tensor cannot be built over it (it used to allocate 0 bytes).
  try {
    Tensor<std::int8_t> t(huge);
    FAIL("Tensor over a layout of 2^64 elements was constructed");
  } catch (const npuq::error& e) {
    CHECK(std::string(e.what()).find("Tensor: layout (4611686018427387904,4)") != std::string::npos);
  }

  gemm_params p;
  const std::int8_t a_data[1] = {1};
  const TensorView<const std::int8_t> a(a_data, 0, Layout::strided({std::int64_t{1} << 62, 1}, {0, 1}), Quant::per_tensor(0.5f, 0), 1);
  Tensor<std::int8_t> b(Layout::matrix(1, 4), Quant::per_tensor(0.5f, 0));
  canary_buffer<std::int8_t> out(16);
  const Quant oq = Quant::per_tensor(1.0f, 0);

  SECTION("2: scalar, no capacity given") {
    const TensorView<std::int8_t> o(out.data.data(), huge, oq);
    expect_error(try_gemm(scalar, p, a, b, no_bias, o), errc::invalid_layout, "output: layout (4611686018427387904,4):(4,1)");
    CHECK(out.untouched());
  }
  SECTION("3: simd, 16-byte buffer") {
    const TensorView<std::int8_t> o(out.data.data(), 0, huge, oq, 16);
    for (isa level : cpu().levels()) {
      INFO("level " << to_string(level));
      expect_error(try_gemm(simd_backend{level}, p, a, b, no_bias, o), errc::invalid_layout, "output: layout");
      CHECK(out.untouched());
    }
    // A span that fits but not in the buffer is still "buffer too small".
    const TensorView<std::int8_t> o2(out.data.data(), 0, Layout::matrix(8, 4), oq, 16);
    const TensorView<const std::int8_t> a2(a_data, 0, Layout::strided({8, 1}, {0, 1}), Quant::per_tensor(0.5f, 0), 1);
    expect_error(try_gemm(simd, p, a2, b, no_bias, o2), errc::buffer_too_small, "output: layout (8,4):(4,1) at offset 0 needs 32");
    CHECK(out.untouched());
  }
}

TEST_CASE("4: int4 depthwise weights whose span wraps to 0 are rejected before they are read", "[robustness][depthwise][int4]") {
  Tensor<std::int8_t> in(Layout::nhwc(1, 3, 3, 2), Quant::per_tensor(0.5f, 1));
  fill_pattern(in, 1);
  Tensor<std::int8_t> out(Layout::nhwc(1, 1, 1, 2), Quant::per_tensor(1.0f, 0));
  fill_canary(out);
  // span = 2 * 2^62 + 2 * (2^62 - 1) + 1 * 1 + 1 = 2^64, which wrapped to 0 and let null data through.
  const Layout l = Layout::strided({3, 3, 2}, {std::int64_t{1} << 62, (std::int64_t{1} << 62) - 1, 1});
  const TensorView<const int4> w(nullptr, l, Quant::per_tensor(0.25f, 0));
  expect_error(try_depthwise_conv2d_int4(scalar, depthwise_params{}, in, w, no_bias, out), errc::invalid_layout, "weights: layout (3,3,2)");
  CHECK(untouched(out));
  npu::emulator emu;
  expect_error(try_depthwise_conv2d_int4(emu, depthwise_params{}, in, w, no_bias, out), errc::invalid_layout, "weights: layout");
  CHECK(untouched(out));
}

namespace {
// A CSR weight matrix [K, N] with one nonzero in 7 (so outputs differ from the canary).
csr_matrix sparse_weights(std::int64_t K, std::int64_t N) {
  Tensor<std::int8_t> dense(Layout::matrix(K, N), Quant::per_tensor(0.5f, 0));
  for (std::int64_t i = 0; i < K * N; i += 7) dense.data()[i] = static_cast<std::int8_t>(1 + i % 5);
  csr_matrix s;
  REQUIRE(compress_csr(TensorView<const std::int8_t>(dense), &s).ok());
  return s;
}
}  // namespace

TEST_CASE("5: conv2d_sparse checks the bias against the whole output before the first band", "[robustness][sparse][conv2d]") {
  // K = 3 * 3 * 8192 makes one output row a band of its own (1 MiB of patches), so the old check,
  // done by each band's GEMM on that band's rows, found a bias inside row 1 after writing row 0.
  const std::int64_t C = 8192, OC = 8, OW = 8;
  Tensor<std::int8_t> in(Layout::nhwc(1, 4, OW + 2, C), Quant::per_tensor(0.5f, 0));
  fill_pattern(in, 11);
  const csr_matrix w = sparse_weights(3 * 3 * C, OC);
  canary_buffer<std::int32_t> out(2 * OW * OC);
  const TensorView<std::int32_t> o(out.data.data(), Layout::nhwc(1, 2, OW, OC));
  const TensorView<const std::int32_t> bias(out.data.data() + OW * OC, Layout::row_major({OC}));  // inside row 1
  for (int backend = 0; backend < 3; ++backend) {
    INFO("backend " << backend);
    const status s = backend == 0 ? try_conv2d_sparse(scalar, conv2d_params{}, in, w, sparse_conv_kernel{3, 3}, bias, o)
                   : backend == 1 ? try_conv2d_sparse(simd, conv2d_params{}, in, w, sparse_conv_kernel{3, 3}, bias, o)
                                  : try_conv2d_sparse(npu::emulator{}, conv2d_params{}, in, w, sparse_conv_kernel{3, 3}, bias, o);
    expect_error(s, errc::aliasing, "output: memory overlaps an input");
    CHECK(out.untouched());
  }
}

TEST_CASE("6: conv2d_sparse rejects an output whose batch stride is 0, like conv2d", "[robustness][sparse][conv2d]") {
  Tensor<std::int8_t> in(Layout::nhwc(2, 4, 4, 4), Quant::per_tensor(0.5f, 0));
  const csr_matrix w = sparse_weights(3 * 3 * 4, 4);
  canary_buffer<std::int32_t> out(2 * 2 * 4);
  const TensorView<std::int32_t> o(out.data.data(), Layout::strided({2, 2, 2, 4}, {0, 8, 4, 1}));
  const std::string fragment = "output: layout (2,2,2,4):(0,8,4,1) maps two elements to one address";
  expect_error(try_conv2d_sparse(scalar, conv2d_params{}, in, w, sparse_conv_kernel{3, 3}, no_bias, o), errc::invalid_layout, fragment);
  CHECK(out.untouched());
  expect_error(try_conv2d_sparse(simd, conv2d_params{}, in, w, sparse_conv_kernel{3, 3}, no_bias, o), errc::invalid_layout, fragment);
  CHECK(out.untouched());
  // The dense conv2d says the same through the same routine.
  Tensor<std::int8_t> wd(Layout::ohwi(4, 3, 3, 4), Quant::per_tensor(0.5f, 0));
  expect_error(try_conv2d(scalar, conv2d_params{}, in, wd, no_bias, o), errc::invalid_layout, fragment);
  CHECK(out.untouched());
}

TEST_CASE("7: int4 importers check sizes before they allocate", "[robustness][int4][import]") {
  const std::uint8_t bytes[64] = {};
  const float scales[4] = {1.0f, 1.0f, 1.0f, 1.0f};
  const std::uint16_t scales16[4] = {0x3C00, 0x3C00, 0x3C00, 0x3C00};
  const std::int64_t big = std::int64_t{1} << 32;
  int4_weights w;
  expect_error(import_ggml_q4_0(bytes, big, big, &w), errc::invalid_shape, "ggml_q4_0: N = 4294967296 rows of K = 4294967296");
  expect_error(import_matmul_nbits(bytes, scales, nullptr, big, big, 32, &w), errc::invalid_shape, "matmul_nbits: N = 4294967296");
  expect_error(import_matmul_nbits(bytes, scales16, bytes, big, big, 32, &w), errc::invalid_shape, "matmul_nbits: N = 4294967296");
  expect_error(import_matmul_nbits(bytes, scales, nullptr, 1, kMax, 16, &w), errc::invalid_shape, "matmul_nbits:");
  expect_error(import_ggml_q4_0(bytes, kMax, 32, &w), errc::invalid_shape, "ggml_q4_0: N = 9223372036854775807");
  CHECK(w.K == 0);
  CHECK(w.N == 0);
  CHECK(w.data.data() == nullptr);
  // Sizes that fit still import.
  REQUIRE(import_ggml_q4_0(bytes, 2, 32, &w).ok());
  CHECK(w.N == 2);
}

namespace {
struct conv_case {
  conv2d_params p;
  Tensor<std::int8_t> in{Layout::nhwc(1, 6, 6, 2), Quant::per_tensor(0.5f, 1)};
  Tensor<std::int8_t> w{Layout::ohwi(3, 3, 3, 2), Quant::per_tensor(0.25f, 0)};
  Tensor<std::int8_t> out{Layout::nhwc(1, 4, 4, 3), Quant::per_tensor(1.0f, 0)};
  conv_case() {
    fill_pattern(in, 2);
    fill_pattern(w, 3);
    fill_canary(out);
  }
};
}  // namespace

TEST_CASE("8: huge padding and dilation are rejected quoting the caller's values", "[robustness][conv2d]") {
  conv_case c;
  c.p.padding = padding_spec::explicit_(kMax, 0, 0, 0);
  expect_error(try_conv2d(scalar, c.p, c.in, c.w, no_bias, c.out), errc::invalid_argument,
               "padding: height extent 6 plus padding 9223372036854775807 + 0 exceeds 2^63 - 1");
  CHECK(untouched(c.out));
  c.p.padding = padding_spec::explicit_(0, 0, kMax - 3, kMax - 3);
  expect_error(try_conv2d(simd, c.p, c.in, c.w, no_bias, c.out), errc::invalid_argument, "padding: width extent 6 plus padding");
  CHECK(untouched(c.out));
  c.p.padding = padding_spec{};
  c.p.dilation_h = std::int64_t{1} << 62;
  expect_error(try_conv2d(scalar, c.p, c.in, c.w, no_bias, c.out), errc::invalid_argument, "dilation: 4611686018427387904 along height");
  CHECK(untouched(c.out));
  c.p.dilation_h = 1;
  c.p.dilation_w = kMax / 2;  // window extent 2 * (2^62 - 1) + 1 = INT64_MAX: fits, SAME's total does not
  c.p.padding = padding_spec::same();
  expect_error(try_conv2d(scalar, c.p, c.in, c.w, no_bias, c.out), errc::invalid_argument,
               "padding: SAME padding along width with stride 1 and dilation 4611686018427387903 overflows");
  CHECK(untouched(c.out));
  // Depthwise shares the geometry.
  depthwise_params dp;
  dp.padding = padding_spec::explicit_(0, kMax, 0, 0);
  Tensor<std::int8_t> dw(Layout::hwc_m(3, 3, 2, 1), Quant::per_tensor(0.25f, 0));
  expect_error(try_depthwise_conv2d(scalar, dp, c.in, dw, no_bias, c.out), errc::invalid_argument, "plus padding 0 + 9223372036854775807");
  CHECK(untouched(c.out));
}

TEST_CASE("9: Layout size, span and stride arithmetic never overflows", "[robustness][layout]") {
  const std::int64_t big = std::int64_t{1} << 32;
  const Layout sq = Layout::row_major({big, big});
  CHECK_FALSE(sq.fits());
  std::int64_t n = 0;
  CHECK_FALSE(sq.try_size(&n));
  CHECK(sq.size() == kMax);
  CHECK(sq.span() == kMax);
  CHECK_FALSE(Layout::row_major({2, big, big}).fits());                 // a stride product overflows
  CHECK_FALSE(Layout::nchw(1, big, big, 2).fits());                     // c * h * w
  CHECK_FALSE(Layout::oihw(1, big, big, 2).fits());
  CHECK_FALSE(Layout::hwc_m(1, 1, big, big).fits());                    // c * m
  CHECK_FALSE(Layout::strided({3, 2}, {kMax / 2 + 1, 1}).fits());       // span: 2 * (2^62) + 1 + 1
  CHECK(Layout::strided({2, 2}, {kMax / 2 - 1, 1}).fits());
  CHECK(Layout::row_major({kMax}).fits());
  CHECK(Layout::row_major({kMax}).span() == kMax);
  CHECK(Layout::row_major({0, big, big}).span() == 0);
  CHECK(Layout::strided({2, 2}, {kMax, 1}).is_non_overlapping());      // stride * extent saturates
  // A view over a layout that fits, whose end (offset + span) does not, names the argument.
  std::int8_t x = 0;
  const TensorView<const std::int8_t> v(&x, kMax, Layout::row_major({2}), {}, TensorView<const std::int8_t>::unknown_capacity);
  expect_error(v.validate("a"), errc::invalid_layout, "a: layout (2):(1) at offset 9223372036854775807 reaches past");
  const std::int32_t y = 0;
  const TensorView<const std::int32_t> w32(&y, Layout::row_major({kMax / 2}));
  expect_error(w32.validate("bias"), errc::invalid_layout, "bias: layout");  // elements fit, bytes do not
  const TensorView<const std::int8_t> deep(&x, Layout::row_major({big, big}));
  expect_error(deep.validate("input"), errc::invalid_layout, "input: layout (4294967296,4294967296):(4294967296,1) addresses more than");
}

TEST_CASE("10: the onnx profile rejects a derived fp32 scale that underflows to 0", "[robustness][numerics]") {
  gemm_params p;
  p.numerics = numerics_profile::onnx();
  Tensor<std::int8_t> a(Layout::matrix(2, 4), Quant::per_tensor(1e-30f, 0));
  Tensor<std::int8_t> b(Layout::matrix(4, 3), Quant::per_tensor(1e-30f, 0));
  Tensor<std::int8_t> out(Layout::matrix(2, 3), Quant::per_tensor(1e30f, 0));
  fill_pattern(a, 4);
  fill_pattern(b, 5);
  fill_canary(out);
  expect_error(try_gemm(scalar, p, a, b, no_bias, out), errc::invalid_quantization, "output: effective scale input * weight / output of channel 0 underflows");
  CHECK(untouched(out));
  expect_error(try_gemm(simd, p, a, b, no_bias, out), errc::invalid_quantization, "underflows");
  CHECK(untouched(out));
  // The explicit 0 was already rejected; both now say which argument.
  p.requant = {requant_channel{}};
  p.requant[0].scale = 0.0f;
  expect_error(try_gemm(scalar, p, a, b, no_bias, out), errc::invalid_quantization, "requant[0]: fp32 scale must be > 0");
  CHECK(untouched(out));
}

TEST_CASE("11: int16 softmax on the NPU emulator is refused by name", "[robustness][softmax]") {
  Tensor<std::int16_t> x(Layout::row_major({2, 8}));
  Tensor<std::int16_t> y(Layout::row_major({2, 8}), Quant::per_tensor(1.0f / 32768.0f, 0));
  fill_canary(y);
  const softmax_int16_params p = softmax_int16_params::tflite(1.0f, 0.01f);
  const npu::emulator emu;
  expect_error(try_softmax(emu, p, x, y), errc::unsupported, "int16 softmax is not modelled by the npu emulator");
  CHECK(untouched(y));
  REQUIRE(try_softmax(scalar, p, x, y).ok());  // the same call runs on the reference
}

namespace {
// Runs one op on scalar, simd at every level of this CPU and the NPU emulator, and requires
// every result to equal scalar's and `expect` (when given).
template <class O, class Run>
// npu_may_refuse: the emulator may answer errc::unsupported (a shape past its tile limits),
// writing nothing.
void all_backends_agree(const Layout& out_layout, const Quant& oq, Run&& run, const std::vector<int>& expect = {},
                        bool npu_may_refuse = false) {
  Tensor<O> ref(out_layout, oq);
  REQUIRE(run(scalar, ref.view()).ok());
  if (!expect.empty())
    for (std::int64_t i = 0; i < ref.size(); ++i) CHECK(int{ref.data()[i]} == expect[static_cast<std::size_t>(i % static_cast<std::int64_t>(expect.size()))]);
  auto same = [&](const Tensor<O>& t) { return std::memcmp(t.data(), ref.data(), static_cast<std::size_t>(ref.storage_bytes())) == 0; };
  for (isa level : cpu().levels()) {
    INFO("simd level " << to_string(level));
    Tensor<O> got(out_layout, oq);
    REQUIRE(run(simd_backend{level}, got.view()).ok());
    CHECK(same(got));
  }
  Tensor<O> got(out_layout, oq);
  std::memset(got.data(), 0x5A, static_cast<std::size_t>(got.storage_bytes()));
  const status npu_status = run(npu::emulator{}, got.view());
  if (npu_may_refuse && npu_status.code() == errc::unsupported) {
    for (std::int64_t i = 0; i < got.storage_bytes(); ++i) CHECK(reinterpret_cast<const unsigned char*>(got.data())[i] == 0x5A);
    return;
  }
  REQUIRE(npu_status.ok());
  CHECK(same(got));
}
}  // namespace

TEST_CASE("12: an output zero point outside the output type is an int32 offset, clamped after", "[robustness][numerics]") {
  // TFLite and CMSIS-NN: out = clamp(requant(acc) + output_offset, qmin, qmax), offset int32.
  const numerics_profile profiles[] = {numerics_profile::tflite(), numerics_profile::tosa_single(), numerics_profile::onnx()};
  const std::int32_t int8_zps[] = {128, 200, -129, 1000, -100000, max_output_offset, -max_output_offset};
  Tensor<std::int8_t> a(Layout::matrix(5, 19), Quant::per_tensor(0.05f, 3));
  Tensor<std::int8_t> b(Layout::matrix(19, 21), Quant::per_tensor(0.03f, 0));
  Tensor<std::int32_t> bias(Layout::row_major({21}));
  fill_pattern(a, 6);
  fill_pattern(b, 7);
  for (std::int64_t i = 0; i < 21; ++i) bias.data()[i] = static_cast<std::int32_t>(i * 97 - 900);
  for (const numerics_profile& prof : profiles)
    for (std::int32_t zp : int8_zps) {
      INFO("profile " << prof.name << ", int8 output zero point " << zp);
      gemm_params p;
      p.numerics = prof;
      const Quant oq = Quant::per_tensor(0.02f, zp);
      std::vector<int> expect;
      if (zp == max_output_offset) expect = {127};
      if (zp == -max_output_offset) expect = {-128};
      all_backends_agree<std::int8_t>(Layout::matrix(5, 21), oq, [&](const auto& be, const TensorView<std::int8_t>& o) {
        return try_gemm(be, p, a, b, bias, o);
      }, expect);
      // Against the same call with zero point 0: where that result is not clamped it is the
      // requantized value itself, so this one must be clamp(value + zp) in exact arithmetic.
      Tensor<std::int8_t> o0(Layout::matrix(5, 21), Quant::per_tensor(0.02f, 0)), o(Layout::matrix(5, 21), oq);
      REQUIRE(try_gemm(scalar, p, a, b, bias, o0).ok());
      REQUIRE(try_gemm(scalar, p, a, b, bias, o).ok());
      int unclamped = 0;
      for (std::int64_t i = 0; i < o.size(); ++i) {
        const std::int64_t v0 = o0.data()[i];
        if (v0 == -128 || v0 == 127) continue;
        ++unclamped;
        const std::int64_t v = v0 + zp;
        CHECK(std::int64_t{o.data()[i]} == (v < -128 ? -128 : (v > 127 ? 127 : v)));
      }
      CHECK(unclamped > 20);
      // relu with a zero point above the type: everything clamps to the top (TFLite's act_min > qmax).
      if (zp > 127) {
        p.clamp = clamp_spec::relu();
        all_backends_agree<std::int8_t>(Layout::matrix(5, 21), oq, [&](const auto& be, const TensorView<std::int8_t>& out) {
          return try_gemm(be, p, a, b, bias, out);
        }, {127});
        p.clamp = clamp_spec::relu6();
        all_backends_agree<std::int8_t>(Layout::matrix(5, 21), oq, [&](const auto& be, const TensorView<std::int8_t>& out) {
          return try_gemm(be, p, a, b, bias, out);
        }, {127});
      }
    }
  // uint8 outputs and conv2d / depthwise take the same offsets.
  for (const numerics_profile& prof : profiles)
  for (std::int32_t zp : {-1, 256, -300, 70000, max_output_offset, -max_output_offset}) {
    INFO("profile " << prof.name << ", uint8 output zero point " << zp);
    conv2d_params cp;
    cp.numerics = prof;
    Tensor<std::uint8_t> in(Layout::nhwc(1, 5, 5, 3), Quant::per_tensor(0.1f, 128));
    Tensor<std::int8_t> w(Layout::ohwi(4, 3, 3, 3), Quant::per_axis(0, {0.01f, 0.02f, 0.03f, 0.04f}));
    fill_pattern(in, 8);
    fill_pattern(w, 9);
    const Quant oq = Quant::per_tensor(0.05f, zp);
    all_backends_agree<std::uint8_t>(Layout::nhwc(1, 3, 3, 4), oq, [&](const auto& be, const TensorView<std::uint8_t>& o) {
      return try_conv2d(be, cp, in, w, no_bias, o);
    });
    depthwise_params dp;
    dp.numerics = prof;
    Tensor<std::int8_t> dw(Layout::hwc_m(3, 3, 3, 2), Quant::per_tensor(0.02f, 0));
    fill_pattern(dw, 10);
    all_backends_agree<std::uint8_t>(Layout::nhwc(1, 3, 3, 6), oq, [&](const auto& be, const TensorView<std::uint8_t>& o) {
      return try_depthwise_conv2d(be, dp, in, dw, no_bias, o);
    });
  }
}

TEST_CASE("12: output offsets beyond what every backend computes exactly are rejected by name", "[robustness][numerics]") {
  Tensor<std::int8_t> a(Layout::matrix(2, 4), Quant::per_tensor(0.05f, 3));
  Tensor<std::int8_t> b(Layout::matrix(4, 3), Quant::per_tensor(0.03f, 0));
  for (std::int32_t zp : {max_output_offset + 1, -max_output_offset - 1, std::numeric_limits<std::int32_t>::min(),
                          std::numeric_limits<std::int32_t>::max()}) {
    Tensor<std::int8_t> out(Layout::matrix(2, 3), Quant::per_tensor(0.02f, zp));
    fill_canary(out);
    expect_error(try_gemm(scalar, gemm_params{}, a, b, no_bias, out), errc::invalid_quantization,
                 "output: zero_point[0] = " + std::to_string(zp) + " is outside [-16776960, 16776960]");
    CHECK(untouched(out));
  }
  // int32 outputs are not requantized: their zero point stays 0.
  Tensor<std::int32_t> acc(Layout::matrix(2, 3), Quant::per_tensor(1.0f, 128));
  fill_canary(acc);
  expect_error(try_gemm(scalar, gemm_params{}, a, b, no_bias, acc), errc::invalid_quantization, "output: zero_point[0] = 128");
  CHECK(untouched(acc));
}

TEST_CASE("a kernel of 2^62 rows over padding costs the taps inside the image", "[robustness][conv2d][depthwise]") {
  // The reference used to walk all 2^62 kernel rows (a valid call that never returned); simd
  // packed them (K * 16 wrapped int64: a heap overflow). Now the reference visits the 3 rows each
  // output meets, simd runs the reference for windows it cannot pack, the emulator refuses.
  const std::int64_t KH = std::int64_t{1} << 62, half = std::int64_t{1} << 61;
  const std::int8_t in_data[3] = {5, -7, 11};
  const std::int8_t w_data[1] = {3};
  const TensorView<const std::int8_t> in(in_data, Layout::nhwc(1, 3, 1, 1), Quant::per_tensor(0.5f, 1));
  const TensorView<const std::int8_t> w(w_data, 0, Layout::strided({1, KH, 1, 1}, {0, 0, 0, 0}), Quant::per_tensor(0.5f, 0), 1);
  const TensorView<const std::int8_t> dw(w_data, 0, Layout::strided({KH, 1, 1}, {0, 0, 0}), Quant::per_tensor(0.5f, 0), 1);
  conv2d_params p;
  p.padding = padding_spec::explicit_(half, half, 0, 0);  // OH = 3 + 2^62 - 2^62 + 1 = 4
  depthwise_params dp;
  dp.padding = p.padding;
  const std::vector<std::int32_t> expect(4, ((5 - 1) + (-7 - 1) + (11 - 1)) * 3);  // every output meets all 3 rows
  auto check = [&](const auto& backend, bool depthwise) {
    Tensor<std::int32_t> out(Layout::nhwc(1, 4, 1, 1));
    const status s = depthwise ? try_depthwise_conv2d(backend, dp, in, dw, no_bias, out) : try_conv2d(backend, p, in, w, no_bias, out);
    REQUIRE(s.ok());
    CHECK(std::vector<std::int32_t>(out.data(), out.data() + 4) == expect);
  };
  for (bool depthwise : {false, true}) {
    INFO("depthwise " << depthwise);
    check(scalar, depthwise);
    for (isa level : cpu().levels()) {
      INFO("simd level " << to_string(level));
      check(simd_backend{level}, depthwise);
    }
    Tensor<std::int32_t> out(Layout::nhwc(1, 4, 1, 1));
    fill_canary(out);
    const status s = depthwise ? try_depthwise_conv2d(npu::emulator{}, dp, in, dw, no_bias, out)
                               : try_conv2d(npu::emulator{}, p, in, w, no_bias, out);
    expect_error(s, errc::unsupported, "exceed the emulator's K tile limit");
    CHECK(untouched(out));
  }
  // Plans and packed weights hold every tap: they refuse the window by name.
  Tensor<std::int32_t> out(Layout::nhwc(1, 4, 1, 1));
  conv2d_plan<std::int8_t, std::int8_t, std::int32_t> plan;
  expect_error(try_make_conv2d_plan(simd, p, in, w, no_bias, out, &plan), errc::unsupported, "conv2d plan: the window is too large");
  packed_conv2d_weights<std::int8_t> packed;
  expect_error(pack_conv2d_weights(simd, p, w, &packed), errc::unsupported, "weights: a window of 4611686018427387904x1x1 values");
}

TEST_CASE("attention with a uint8 output runs on the NPU emulator (fuzz_attention: it did not compile)", "[robustness][attention]") {
  Tensor<std::int8_t> q(Layout::row_major({2, 3, 8}), Quant::per_tensor(0.05f, 0)), k(Layout::row_major({2, 5, 8}), Quant::per_tensor(0.05f, 1)),
      v(Layout::row_major({2, 5, 4}), Quant::per_tensor(0.04f, -1));
  fill_pattern(q, 1);
  fill_pattern(k, 2);
  fill_pattern(v, 3);
  attention_params ap;
  ap.score = Quant::per_tensor(0.1f, 0);
  ap.causal = true;
  all_backends_agree<std::uint8_t>(Layout::row_major({2, 3, 4}), Quant::per_tensor(0.02f, 128), [&](const auto& be, const TensorView<std::uint8_t>& o) {
    return try_attention(be, ap, q, k, v, no_mask, o);
  });
}

TEST_CASE("batched B with per-column quantization on simd (fuzz_gemm: simd wrote nothing)", "[robustness][gemm]") {
  // simd packs each batch's [K, N] slice of a rank-3 B; the slice kept B's quantization axis 2,
  // so packing failed silently and the call returned ok with the output unwritten.
  Tensor<std::int8_t> a(Layout::row_major({2, 7, 26}), Quant::per_tensor(0.1f, 118));
  std::vector<float> scales(23);
  for (std::size_t i = 0; i < scales.size(); ++i) scales[i] = 0.01f * static_cast<float>(i + 1);
  Tensor<std::int8_t> b(Layout::row_major({2, 26, 23}), Quant::per_axis(2, scales, {-38}));
  fill_pattern(a, 1);
  fill_pattern(b, 2);
  gemm_params p;
  all_backends_agree<std::int32_t>(Layout::row_major({2, 7, 23}), Quant{}, [&](const auto& be, const TensorView<std::int32_t>& o) {
    return try_gemm(be, p, a, b, no_bias, o);
  });
  all_backends_agree<std::int8_t>(Layout::row_major({2, 7, 23}), Quant::per_tensor(2.0f, 3), [&](const auto& be, const TensorView<std::int8_t>& o) {
    return try_gemm(be, p, a, b, no_bias, o);
  });
  // The same on int4 B (its own per-batch packing had the same slip).
  Tensor<int4> b4(Layout::row_major({2, 26, 23}), Quant::per_axis(2, scales, {0}));
  fill_pattern(b4, 3);
  all_backends_agree<std::int8_t>(Layout::row_major({2, 7, 23}), Quant::per_tensor(0.5f, 3), [&](const auto& be, const TensorView<std::int8_t>& o) {
    return try_gemm(be, p, a, b4, no_bias, o);
  });
}

TEST_CASE("an empty A's batch strides are never multiplied (libFuzzer fuzz_gemm: UBSan in batch_offsets)", "[robustness][gemm]") {
  // K = 0: A [3, 3, 3, 0] addresses nothing, so its strides pass validation whatever they are, and
  // its batch offset 2 * INT64_MAX overflowed; the output is the bias alone, requantized.
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  std::vector<std::int8_t> a_bytes(16, 5), b_bytes(16, 7);
  const TensorView<const std::int8_t> a(a_bytes.data(), 0, Layout::strided({3, 3, 3, 0}, {0, big, 1, 1}), Quant::per_tensor(0.1f, 103), 16);
  const TensorView<const std::int8_t> b(b_bytes.data(), 0, Layout::strided({3, 3, 0, 10}, {0, 0, 10, 1}), Quant::per_tensor(0.2f, 116), 16);
  Tensor<std::int32_t> bias(Layout::row_major({10}));
  for (std::int64_t i = 0; i < 10; ++i) bias.data()[i] = static_cast<std::int32_t>(100 * i - 450);
  gemm_params p;
  const Quant oq = Quant::per_tensor(0.5f, -22);
  std::vector<int> expect;  // round(bias * 0.1 * 0.2 / 0.5) - 22, the stage on a sum of 0
  for (std::int64_t i = 0; i < 10; ++i) expect.push_back(static_cast<int>(std::lround(static_cast<double>(100 * i - 450) * 0.04)) - 22);
  all_backends_agree<std::int8_t>(Layout::row_major({3, 3, 3, 10}), oq, [&](const auto& be, const TensorView<std::int8_t>& o) {
    return try_gemm(be, p, a, b, bias, o);
  }, expect);
}

TEST_CASE("an empty A's row stride is never multiplied (libFuzzer fuzz_gemm, 30-minute run: UBSan in the simd row copy)", "[robustness][gemm]") {
  // K = 0: A [9, 0] with row stride INT64_MAX (valid: it addresses nothing); the simd row copy
  // formed row 2's address as 2 * INT64_MAX. The output is the bias-free stage on a sum of 0.
  const std::int64_t big = std::numeric_limits<std::int64_t>::max();
  std::vector<std::int8_t> a_bytes(16, 5), b_bytes(16, 7);
  const TensorView<const std::int8_t> a(a_bytes.data(), 0, Layout::strided({9, 0}, {big, 1}), Quant::per_tensor(0.1f, -75), 16);
  const TensorView<const std::int8_t> b(b_bytes.data(), 0, Layout::strided({0, 23}, {big, big}), Quant::per_tensor(0.2f, 29), 16);
  gemm_params p;
  const Quant oq = Quant::per_tensor(0.5f, 30);
  all_backends_agree<std::int8_t>(Layout::row_major({9, 23}), oq, [&](const auto& be, const TensorView<std::int8_t>& o) {
    return try_gemm(be, p, a, b, no_bias, o);
  }, std::vector<int>(23, 30));
}

TEST_CASE("empty inputs' strides are never multiplied, one-shot and in plan runs (libFuzzer fuzz_conv2d, 30-minute run)", "[robustness][conv2d][gemm]") {
  // Input [1, 6, 1, 0] (no channels: it addresses nothing) with a row stride of 2^62: the simd
  // gather formed row 2's offset as 2 * 2^62. Every output is the stage on a sum of 0.
  const std::int64_t h = std::int64_t{1} << 62;
  std::vector<std::int8_t> bytes(64, 3);
  const TensorView<const std::int8_t> in(bytes.data(), 33, Layout::strided({1, 6, 1, 0}, {0, h, 0, 1}), Quant::per_tensor(0.1f, 38), -1);
  const TensorView<const std::int8_t> w(bytes.data(), 0, Layout::strided({1, 1, 1, 0}, {0, 0, 0, 1}), Quant::per_axis(0, {0.02f}, {-28}), 64);
  const Quant oq = Quant::per_tensor(0.5f, -77);
  all_backends_agree<std::int8_t>(Layout::nhwc(1, 6, 1, 1), oq, [&](const auto& be, const TensorView<std::int8_t>& o) {
    return try_conv2d(be, conv2d_params{}, in, w, no_bias, o);
  }, std::vector<int>(6, -77));
  // Plans made on ordinary strides, run on such views (runs take new strides; an empty one gets
  // row-major ones, as the one-shot problems give it).
  const TensorView<const std::int8_t> in_plain(bytes.data(), 0, Layout::nhwc(1, 6, 1, 0), Quant::per_tensor(0.1f, 38), 64);
  const TensorView<const std::int8_t> a_plain(bytes.data(), 0, Layout::matrix(9, 0), Quant::per_tensor(0.1f, -75), 64);
  const TensorView<const std::int8_t> a_huge(bytes.data(), 0, Layout::strided({9, 0}, {std::numeric_limits<std::int64_t>::max(), 1}),
                                             Quant::per_tensor(0.1f, -75), 64);
  const TensorView<const std::int8_t> b(bytes.data(), 0, Layout::matrix(0, 23), Quant::per_tensor(0.2f, 29), 64);
  for (isa level : cpu().levels()) {
    INFO(to_string(level));
    Tensor<std::int8_t> out(Layout::nhwc(1, 6, 1, 1), oq);
    auto conv = make_conv2d_plan(simd_backend{level}, conv2d_params{}, in_plain, w, no_bias, out);
    REQUIRE(conv.try_run(in, out).ok());
    for (std::int64_t i = 0; i < 6; ++i) CHECK(int{out.data()[i]} == -77);
    Tensor<std::int8_t> y(Layout::matrix(9, 23), Quant::per_tensor(0.5f, 30));
    auto gemm = make_gemm_plan(simd_backend{level}, gemm_params{}, a_plain, b, no_bias, y);
    REQUIRE(gemm.try_run(a_huge, y).ok());
    for (std::int64_t i = 0; i < 9 * 23; ++i) CHECK(int{y.data()[i]} == 30);
  }
}

TEST_CASE("an output of one image with batch stride INT64_MAX at an offset (libFuzzer fuzz_conv2d, third 30-minute run)", "[robustness][conv2d]") {
  // The simd conv's output offsets stepped to the next image after the last pixel of the last
  // row: 26 + 1 * INT64_MAX, signed overflow (UBSan), though no such pixel exists.
  std::vector<std::int8_t> in_bytes(28), w_bytes(36);
  for (std::size_t i = 0; i < in_bytes.size(); ++i) in_bytes[i] = static_cast<std::int8_t>(i * 37 % 251);
  for (std::size_t i = 0; i < w_bytes.size(); ++i) w_bytes[i] = static_cast<std::int8_t>(i * 53 % 241);
  const TensorView<const std::int8_t> in(in_bytes.data(), Layout::nhwc(1, 7, 1, 4), Quant::per_tensor(0.1f, -22));
  const TensorView<const std::int8_t> w(w_bytes.data(), Layout::ohwi(3, 3, 1, 4), Quant::per_tensor(0.05f, -123));
  conv2d_params p;
  p.stride_h = 2;
  p.dilation_h = p.dilation_w = 2;
  p.padding = padding_spec::explicit_(2, 2, 1, 2);
  const Layout ol = Layout::strided({1, 4, 4, 3}, {std::numeric_limits<std::int64_t>::max(), 12, 3, 1});
  const Quant oq = Quant::per_tensor(0.4f, -102);
  std::vector<std::int8_t> want(128, 7), got(128, 7);
  REQUIRE(try_conv2d(scalar, p, in, w, no_bias, TensorView<std::int8_t>(want.data(), 26, ol, oq, 128)).ok());
  for (isa level : cpu().levels()) {
    INFO(to_string(level));
    std::fill(got.begin(), got.end(), std::int8_t{7});
    REQUIRE(try_conv2d(simd_backend{level}, p, in, w, no_bias, TensorView<std::int8_t>(got.data(), 26, ol, oq, 128)).ok());
    CHECK(got == want);
    std::fill(got.begin(), got.end(), std::int8_t{7});
    const TensorView<std::int8_t> out(got.data(), 26, ol, oq, 128);
    auto plan = make_conv2d_plan(simd_backend{level}, p, in, w, no_bias, out);
    REQUIRE(plan.try_run(in, out).ok());
    CHECK(got == want);
  }
}

TEST_CASE("the NPU emulator refuses a zero-stride image its tiler cannot size (libFuzzer fuzz_conv2d, fourth 30-minute run)", "[robustness][conv2d][npu]") {
  // Input [1, 2^62, 7, 0] with zero strides: the tiler formed a patch's rows times columns,
  // 2^62 * 7 (UBSan). The other backends compute it (every output is the stage on a sum of 0);
  // the emulator refuses it by name, writing nothing.
  const std::int64_t h = std::int64_t{1} << 62;
  std::vector<std::int8_t> bytes(64, 3);
  const TensorView<const std::int8_t> in(bytes.data(), 0, Layout::strided({1, h, 7, 0}, {0, 0, 0, 1}), Quant::per_tensor(0.1f, 40), 64);
  const TensorView<const std::int8_t> w(bytes.data(), 0, Layout::strided({5, 1, 1, 0}, {0, 0, 0, 1}),
                                        Quant::per_axis(0, {0.1f, 0.1f, 0.1f, 0.1f, 0.1f}, {-88}), 64);
  conv2d_params p;
  p.stride_h = h - 1;
  p.padding = padding_spec::explicit_(0, 1, 2, 1);
  all_backends_agree<std::int8_t>(Layout::nhwc(1, 2, 10, 5), Quant::per_tensor(0.5f, -69), [&](const auto& be, const TensorView<std::int8_t>& o) {
    return try_conv2d(be, p, in, w, no_bias, o);
  }, std::vector<int>(5, -69), /*npu_may_refuse=*/true);
  Tensor<std::int8_t> o(Layout::nhwc(1, 2, 10, 5), Quant::per_tensor(0.5f, -69));
  expect_error(try_conv2d(npu::emulator{}, p, in, w, no_bias, o), errc::unsupported, "exceeds the emulator's image limit");
}

TEST_CASE("a 2^62-row window over an empty image costs nothing (libFuzzer fuzz_conv2d, 30-minute run: timeout)", "[robustness][conv2d]") {
  // Input [1, 2^62, 0, 0] and weights [3, 2^62, 3, 0] with zero strides (valid: they address
  // nothing); every output is the stage on a sum of 0. The reference visited each of the 2^62
  // kernel rows inside the image, finding no column in any: the call ran for half an hour.
  const std::int64_t huge = std::int64_t{1} << 62;
  std::vector<std::int8_t> in_bytes(16, 1), w_bytes(16, 2);
  const TensorView<const std::int8_t> in(in_bytes.data(), 0, Layout::strided({1, huge, 0, 0}, {0, 0, 0, 1}), Quant::per_tensor(0.1f, 1), 16);
  const TensorView<const std::int8_t> w(w_bytes.data(), 0, Layout::strided({3, huge, 3, 0}, {0, 0, 0, 1}),
                                        Quant::per_axis(0, {0.01f, 0.02f, 0.03f}, {24}), 16);
  conv2d_params p;
  p.stride_h = p.stride_w = 3;
  p.padding = padding_spec::symmetric(2);
  const Quant oq = Quant::per_tensor(0.5f, -91);
  all_backends_agree<std::int8_t>(Layout::nhwc(1, 2, 1, 3), oq, [&](const auto& be, const TensorView<std::int8_t>& o) {
    return try_conv2d(be, p, in, w, no_bias, o);
  }, std::vector<int>(3, -91), /*npu_may_refuse=*/true);  // its K tile limit: "unsupported", nothing written
}

TEST_CASE("empty layouts and outputs whatever their other extents (fuzz_formats, fuzz_attention)", "[robustness][layout][attention]") {
  // A zero extent makes a layout empty: its span is 0 even when another extent times its stride
  // overflows (try_span gave up on the overflow first and an empty view failed validation).
  const Layout empty = Layout::strided({300795, 0, 3}, {(std::int64_t{1} << 62) - 1, 7, 1});
  CHECK(empty.fits());
  CHECK(empty.span() == 0);
  CHECK(Layout::strided({5, kMax / 2, 0, 4}, {11, 12, 11, 7}).size() == 0);  // the size too (fuzz_formats)
  CHECK(Layout::strided({5, kMax / 2, 0, 4}, {11, 12, 11, 7}).fits());
  CHECK(TensorView<const std::int8_t>(nullptr, empty).validate("x").ok());
  // Attention with no query over 2^62 - 1 keys (a zero-stride view): nothing to compute, and
  // simd sized its per-key buffers before finding that out (std::length_error).
  const std::int8_t kv[4] = {1, 2, 3, 4};
  const Quant q = Quant::per_tensor(0.1f, 0);
  const TensorView<const std::int8_t> k(kv, 0, Layout::strided({1, kMax / 2, 1}, {0, 0, 0}), q, 1);
  const TensorView<const std::int8_t> qs(kv, Layout::row_major({1, 0, 1}), q);
  attention_params ap;
  ap.score = q;
  std::int8_t out_byte = 0;
  const TensorView<std::int8_t> out(&out_byte, Layout::row_major({1, 0, 1}), q);
  const status s0 = try_attention(scalar, ap, qs, k, k, no_mask, out);
  INFO(s0.to_string());
  CHECK(s0.ok());
  for (isa level : cpu().levels()) {
    INFO("simd level " << to_string(level));
    CHECK(try_attention(simd_backend{level}, ap, qs, k, k, no_mask, out).ok());
  }
  const status s = try_attention(npu::emulator{}, ap, qs, k, k, no_mask, out);
  INFO(s.to_string());
  CHECK((s.ok() || s.code() == errc::unsupported));
}

TEST_CASE("work is bounded by what a call addresses (fuzz_formats, fuzz_gemm: hangs)", "[robustness][int4][gemm]") {
  // import_ggml_q4_0 with K = 0 and N = 2^40 rows walked every (empty) row.
  int4_weights w;
  REQUIRE(import_ggml_q4_0(nullptr, std::int64_t{1} << 40, 0, &w).ok());
  CHECK(w.N == std::int64_t{1} << 40);
  CHECK(w.K == 0);
  // A GEMM with no output element over 2^58 batches (zero strides) looped over every batch.
  const std::int8_t x[1] = {1};
  const Quant q = Quant::per_tensor(0.5f, 0);
  const std::int64_t B = std::int64_t{1} << 58;  // 12 * B elements of b still fit in int64
  const TensorView<const std::int8_t> a(x, 0, Layout::strided({B, 0, 4}, {0, 0, 0}), q, 1);
  const TensorView<const std::int8_t> b(x, 0, Layout::strided({B, 4, 3}, {0, 0, 0}), q, 1);
  const TensorView<const int4> b4(reinterpret_cast<const std::uint8_t*>(x), 0, Layout::strided({B, 4, 3}, {0, 0, 0}), q, 1);
  std::int32_t o = 7;
  const TensorView<std::int32_t> out(&o, Layout::strided({B, 0, 3}, {0, 0, 1}));
  CHECK(try_gemm(scalar, gemm_params{}, a, b, no_bias, out).ok());
  CHECK(try_gemm(simd, gemm_params{}, a, b, no_bias, out).ok());
  CHECK(try_gemm(simd, gemm_params{}, a, b4, no_bias, out).ok());
  CHECK(try_gemm(npu::emulator{}, gemm_params{}, a, b, no_bias, out).ok());
  CHECK(o == 7);
}

TEST_CASE("GEMM weights repeated past memory size nothing from N or K x N (fuzz_gemm: std::length_error)", "[robustness][gemm]") {
  // An empty [0, 2^62] output over zero-stride weights is valid: validation sized one zero point
  // per column (std::length_error) before the empty output returned, and packing those weights
  // for a plan computed 2^58 panels * 32 side entries in int64 (signed overflow).
  const std::int8_t x[1] = {1};
  const Quant q = Quant::per_tensor(0.5f, 0);
  const std::int64_t N = std::int64_t{1} << 62;
  const TensorView<const std::int8_t> a(x, Layout::matrix(0, 0), q);
  const TensorView<const std::int8_t> b(x, 0, Layout::strided({0, N}, {0, 0}), q, 1);
  std::int32_t o = 7;
  const TensorView<std::int32_t> out(&o, Layout::strided({0, N}, {0, 1}));
  CHECK(try_gemm(scalar, gemm_params{}, a, b, no_bias, out).ok());
  for (isa level : cpu().levels()) {
    INFO("simd level " << to_string(level));
    CHECK(try_gemm(simd_backend{level}, gemm_params{}, a, b, no_bias, out).ok());
  }
  CHECK(try_gemm(npu::emulator{}, gemm_params{}, a, b, no_bias, out).ok());
  CHECK(o == 7);
  gemm_plan<std::int8_t, std::int8_t, std::int32_t> plan;
  expect_error(try_make_gemm_plan(simd, gemm_params{}, a, b, no_bias, out, &plan), errc::unsupported, "b: [0, 4611686018427387904] weights");
  CHECK(plan.empty());
  packed_gemm_weights<std::int8_t> packed;
  expect_error(pack_gemm_weights(simd, b, &packed), errc::unsupported, "too large to pack");
  CHECK(packed.K() == 0);
  // A valid reduction over 2^25 repeated values: simd would pack 2^29 bytes for one column; it
  // runs on the reference instead, with the same result.
  const std::int64_t K = std::int64_t{1} << 25;
  const TensorView<const std::int8_t> ak(x, 0, Layout::strided({1, K}, {0, 0}), q, 1);
  const TensorView<const std::int8_t> bk(x, 0, Layout::strided({K, 1}, {0, 0}), q, 1);
  for (isa level : cpu().levels()) {
    INFO("simd level " << to_string(level));
    std::int32_t acc = 0;
    REQUIRE(try_gemm(simd_backend{level}, gemm_params{}, ak, bk, no_bias, TensorView<std::int32_t>(&acc, Layout::matrix(1, 1))).ok());
    CHECK(acc == K);
    CHECK(simd_last_kernel() == "gemm_reference");
  }
}

TEST_CASE("group counts along an INT64_MAX-long axis do not overflow (fuzz_gemm: UBSan in validate_quant)", "[robustness][int4][gemm]") {
  // ceil(K / group_size) was (K + group_size - 1) / group_size: signed overflow for K = INT64_MAX
  // (a zero-stride view), and the wrapped count rejected the right number of scales.
  const float s = 0.5f;
  CHECK(validate_quant(Quant::per_group(1, 0, std::int64_t{1} << 62, {s, s}), Layout::strided({kMax, 1}, {0, 0}), dtype::s4, "b", true).ok());
  // N x groups itself overflows: refused by name, with the count it could not hold.
  expect_error(validate_quant(Quant::per_group(1, 0, 1, {s}), Layout::strided({kMax, 2}, {0, 0}), dtype::s4, "b", true),
               errc::invalid_quantization, "b: 1 scales given, 2 x 9223372036854775807 groups expected");
}

TEST_CASE("a window of more than 2^63 - 1 taps is refused by the emulator (fuzz_conv2d: UBSan in npu conv2d)", "[robustness][conv2d]") {
  // With no input channel the weights [1, KH, 3, 0] hold no element, so KH = 2^62 - 1 rows of 3
  // taps is a valid window (the outputs are 0): the emulator formed KH * KW in int64 (signed
  // overflow) before tiling. It refuses the window like any window past its K tile limit.
  const std::int64_t KH = (std::int64_t{1} << 62) - 1, pad = (std::int64_t{1} << 61) - 1;
  const std::int8_t x[1] = {1};
  const TensorView<const std::int8_t> in(x, Layout::nhwc(1, 3, 3, 0), Quant::per_tensor(0.5f, 1));
  const TensorView<const std::int8_t> w(x, Layout::row_major({1, KH, 3, 0}), Quant::per_tensor(0.5f, 0));
  conv2d_params p;
  p.padding = padding_spec::explicit_(pad, pad, 0, 0);  // OH = 3 + 2 pad - KH + 1 = 3, OW = 1
  Tensor<std::int32_t> out(Layout::nhwc(1, 3, 1, 1));
  fill_canary(out);
  REQUIRE(try_conv2d(scalar, p, in, w, no_bias, out).ok());
  CHECK(std::vector<std::int32_t>(out.data(), out.data() + 3) == std::vector<std::int32_t>(3, 0));
  fill_canary(out);
  expect_error(try_conv2d(npu::emulator{}, p, in, w, no_bias, out), errc::unsupported,
               "npu: conv2d: a 4611686018427387903x3 window (more than 2^63 - 1 taps per input channel) exceeds the emulator's K tile limit");
  CHECK(untouched(out));
}
