// The smallest useful npuq program: a 2x4 by 4x3 int8 GEMM on the scalar reference backend,
// once with raw int32 accumulators and once requantized to int8 with a bias, each checked
// against numbers worked out by hand below. Prints the results and the library version;
// exits non-zero on any mismatch. Built by the packaging tests in every way npuq can be
// consumed (installed package, add_subdirectory, FetchContent, pkg-config).
#include <npuq/npuq.hpp>
#include <npuq/version.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>

namespace {

// A: int8, scale 0.5, zero point 3.      A - 3:
const std::int8_t kA[2][4] = {{5, -1, 7, 3},  //  2  -4   4   0
                              {0, 10, -4, 2}};  // -3   7  -7  -1
// B: int8 weights, scale 0.25, zero point 0.
const std::int8_t kB[4][3] = {{1, 2, -3}, {0, -1, 4}, {5, 6, 7}, {-8, 9, 10}};
// (A - 3) * B, by hand:
//   row 0:  2*1 + 4*5 = 22     2*2 - 4*-1 + 4*6 = 32          2*-3 - 4*4 + 4*7 = 6
//   row 1: -3*1 - 7*5 + 8 = -30  -3*2 - 7 - 42 - 9 = -64      9 + 28 - 49 - 10 = -22
const std::int32_t kRaw[2][3] = {{22, 32, 6}, {-30, -64, -22}};
// With bias {4, -8, 3} (scale 0.5 * 0.25 = 0.125) into int8 with scale 1, zero point -1:
//   (acc + bias) * 0.125 = {3.25, 3, 1.125}, {-3.25, -9, -2.375}; round to nearest (no ties
//   here, so every rounding mode agrees), then add the zero point -1.
const std::int32_t kBias[3] = {4, -8, 3};
const std::int8_t kQuantized[2][3] = {{2, 2, 0}, {-4, -10, -3}};

template <class T, class U>
int check(const char* what, const npuq::Tensor<T>& got, const U (&expect)[2][3]) {
  int errors = 0;
  std::printf("%s:\n", what);
  for (int m = 0; m < 2; ++m) {
    std::printf("  ");
    for (int n = 0; n < 3; ++n) {
      const long value = static_cast<long>(got.data()[m * 3 + n]);
      const bool ok = value == static_cast<long>(expect[m][n]);
      errors += ok ? 0 : 1;
      if (ok) std::printf(" %4ld", value);
      else std::printf(" %4ld (expected %ld)", value, static_cast<long>(expect[m][n]));
    }
    std::printf("\n");
  }
  return errors;
}

}  // namespace

int main() {
  std::printf("npuq %s (%d.%d.%d)\n", NPUQ_VERSION_STRING, NPUQ_VERSION_MAJOR, NPUQ_VERSION_MINOR, NPUQ_VERSION_PATCH);
  try {
    npuq::Tensor<std::int8_t> a(npuq::Layout::matrix(2, 4), npuq::Quant::per_tensor(0.5f, 3));
    npuq::Tensor<std::int8_t> b(npuq::Layout::matrix(4, 3), npuq::Quant::per_tensor(0.25f, 0));
    npuq::Tensor<std::int32_t> bias(npuq::Layout::row_major({3}));
    npuq::Tensor<std::int32_t> raw(npuq::Layout::matrix(2, 3));
    npuq::Tensor<std::int8_t> quantized(npuq::Layout::matrix(2, 3), npuq::Quant::per_tensor(1.0f, -1));
    for (int m = 0; m < 2; ++m)
      for (int k = 0; k < 4; ++k) a.data()[m * 4 + k] = kA[m][k];
    for (int k = 0; k < 4; ++k)
      for (int n = 0; n < 3; ++n) b.data()[k * 3 + n] = kB[k][n];
    for (int n = 0; n < 3; ++n) bias.data()[n] = kBias[n];

    npuq::gemm(npuq::scalar, npuq::gemm_params{}, a, b, npuq::no_bias, raw);
    npuq::gemm(npuq::scalar, npuq::gemm_params{}, a, b, bias, quantized);

    const int errors = check("int32 accumulators", raw, kRaw) + check("int8, bias, requantized", quantized, kQuantized);
    if (errors != 0) {
      std::printf("FAIL: %d values differ\n", errors);
      return 1;
    }
    std::printf("OK\n");
    return 0;
  } catch (const std::exception& e) {
    std::printf("FAIL: %s\n", e.what());
    return 1;
  }
}
