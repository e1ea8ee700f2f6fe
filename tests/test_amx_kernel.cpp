// The AMX-INT8 GEMM microkernel (x86/gemm_c4_amx.hpp) against a naive triple loop: every row
// count and panel count, both weight types, K tails of every shape class, extreme bytes and
// int32 wrap-around. Built with NPUQ_X86_EMULATED=1 it runs the portable tile layer on any
// x86-64 machine (which also aborts on a tile shape the hardware would reject); built natively
// it runs the real instructions where the CPU has AMX-INT8 and says so where it has not. The
// operands sit at the very end of exactly sized heap buffers (B's panels as long as the c4
// format pads them), so a sanitizer build catches any over-read.
#include "support/catch.hpp"

#include <cstdint>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include <npuq/backends/simd/x86/gemm_c4_amx.hpp>
#include <npuq/core/cpu_features.hpp>

#if defined(NPUQ_ARCH_X86_64)

using namespace npuq;
using npuq::simd_detail::dot_a_t;

namespace {

template <class T>
T random_byte(std::mt19937& rng) {
  constexpr int lo = std::is_signed<T>::value ? -128 : 0, hi = lo + 255;
  const unsigned r = rng() % 8;
  if (r == 0) return static_cast<T>(lo);
  if (r == 1) return static_cast<T>(hi);
  return static_cast<T>(lo + static_cast<int>(rng() % 256));
}

enum class fill { random, extreme };

#if defined(NPUQ_X86_EMULATED) && NPUQ_X86_EMULATED
constexpr bool emulated = true;
#else
constexpr bool emulated = false;
#endif

// True where the kernel can run: always emulated, natively on a CPU with AMX-INT8.
bool amx_runs() {
  if (emulated) return true;
  static const bool native = cpu().supports(isa::amx_int8);
  if (!native) WARN("this CPU has no AMX-INT8: the native AMX kernel test is skipped (the emulated build runs it)");
  return native;
}

// One call of gemm_c4_amx<MR, NP, B> with kg groups; A rows of lda bytes (garbage beyond 4 * kg),
// panels ldp bytes apart of c4_panel_groups(kg) groups (zero beyond kg), both ending their
// buffers; c prefilled with garbage. The tiles are released after the call unless `keep`.
template <int MR, int NP, class B>
void check_kernel(std::int64_t kg, std::int64_t lda_extra, std::int64_t ldp_extra, fill f, std::mt19937& rng, bool keep = false) {
  using A = dot_a_t<B>;
  const std::int64_t k = 4 * kg;
  const std::int64_t lda = (k + 63) / 64 * 64 + lda_extra;
  const std::int64_t pg = simd_detail::panel_groups(gemm_pack_format::c4, kg);
  const std::int64_t ldp = pg * 64 + ldp_extra;
  const std::int64_t a_size = MR * lda, b_size = (NP - 1) * ldp + pg * 64;
  std::unique_ptr<A[]> a(new A[static_cast<std::size_t>(a_size)]);
  std::unique_ptr<B[]> b(new B[static_cast<std::size_t>(b_size)]);
  constexpr A a_ext = std::is_signed<A>::value ? A(-128) : A(255);
  constexpr B b_ext = std::is_signed<B>::value ? B(127) : B(255);
  for (std::int64_t i = 0; i < a_size; ++i) a[i] = f == fill::extreme || i % lda >= k ? a_ext : random_byte<A>(rng);
  for (std::int64_t i = 0; i < b_size; ++i) b[i] = i % ldp < kg * 64 ? (f == fill::extreme ? b_ext : random_byte<B>(rng)) : B(0);
  std::vector<std::int32_t> c(static_cast<std::size_t>(NP * MR * 16), std::int32_t(0x5A5A5A5A));

  simd_detail::gemm_c4_amx<MR, NP, B>(kg, a.get(), lda, b.get(), ldp, c.data());
  if (!keep) simd_detail::amx_release_tiles();

  int bad = 0;
  for (int p = 0; p < NP; ++p)
    for (int m = 0; m < MR; ++m)
      for (int j = 0; j < 16; ++j) {
        std::int64_t want = 0;
        for (std::int64_t kk = 0; kk < k; ++kk) want += std::int64_t(a[m * lda + kk]) * b[p * ldp + (kk / 4) * 64 + j * 4 + kk % 4];
        const auto want32 = static_cast<std::int32_t>(static_cast<std::uint32_t>(want));  // modulo 2^32
        const std::int32_t got = c[static_cast<std::size_t>(p * MR * 16 + m * 16 + j)];
        if (got != want32 && bad++ < 4) {
          INFO("MR " << MR << " NP " << NP << " kg " << kg << " p " << p << " m " << m << " j " << j);
          CHECK(got == want32);
        }
      }
  if (bad) FAIL_CHECK(bad << " wrong sums, MR " << MR << " NP " << NP << " kg " << kg);
}

template <int MR, class B>
void check_rows(std::mt19937& rng) {
  for (std::int64_t kg : {1, 2, 3, 15, 16, 17, 31, 32, 33, 100}) {
    if (!amx_runs()) return;
    check_kernel<MR, 1, B>(kg, 0, 0, fill::random, rng);
    check_kernel<MR, 2, B>(kg, 0, 0, fill::random, rng);
    check_kernel<MR, 2, B>(kg, 64, 64 * 3, fill::random, rng);  // padded rows, a gap between panels
    check_kernel<MR, 2, B>(kg, 0, 0, fill::extreme, rng);
  }
}

template <class B, int... M>
void check_all_rows(std::integer_sequence<int, M...>, std::mt19937& rng) {
  (check_rows<M + 1, B>(rng), ...);
}

}  // namespace

TEST_CASE("gemm_c4_amx matches a naive GEMM for every tile shape, int8 weights", "[amx]") {
  std::mt19937 rng(20240611);
  check_all_rows<std::int8_t>(std::make_integer_sequence<int, simd_detail::amx_tile_rows>{}, rng);
}

TEST_CASE("gemm_c4_amx matches a naive GEMM for every tile shape, uint8 weights", "[amx]") {
  std::mt19937 rng(977);
  check_all_rows<std::uint8_t>(std::make_integer_sequence<int, simd_detail::amx_tile_rows>{}, rng);
}

TEST_CASE("gemm_c4_amx sums wrap modulo 2^32", "[amx]") {
  // 255 * 127 * 4 * 17000 and -128 * 255 * 4 * 17000 both leave the int32 range.
  if (!amx_runs()) return;
  std::mt19937 rng(5);
  check_kernel<32, 2, std::int8_t>(17000, 0, 0, fill::extreme, rng);
  check_kernel<16, 2, std::uint8_t>(17000, 0, 0, fill::extreme, rng);
  check_kernel<5, 1, std::int8_t>(17003, 0, 0, fill::extreme, rng);
  check_kernel<21, 1, std::uint8_t>(17003, 0, 0, fill::extreme, rng);
}

TEST_CASE("gemm_c4_amx with no K groups writes zeros", "[amx]") {
  if (!amx_runs()) return;
  std::vector<std::int32_t> c(2 * 32 * 16, 7);
  const std::uint8_t a[64] = {};
  const std::int8_t b[1] = {};
  simd_detail::gemm_c4_amx<32, 2, std::int8_t>(0, a, 64, b, 0, c.data());
  simd_detail::amx_release_tiles();
  for (std::int32_t v : c) CHECK(v == 0);
}

TEST_CASE("calls of other shapes in between reconfigure the tiles; release returns them to init", "[amx]") {
  if (!amx_runs()) return;
  std::mt19937 rng(1);
  // Without a release in between: each call must load its own shape over the previous one's.
  for (int round = 0; round < 2; ++round) {
    check_kernel<4, 2, std::int8_t>(20, 0, 0, fill::random, rng, true);
    check_kernel<32, 1, std::int8_t>(20, 0, 0, fill::random, rng, true);
    check_kernel<17, 2, std::uint8_t>(3, 0, 0, fill::random, rng, true);
    check_kernel<17, 2, std::uint8_t>(40, 0, 0, fill::random, rng, true);  // the same shape again: no reload
  }
  CHECK(simd_detail::amx_loaded_rows() == 17);
  simd_detail::amx_release_tiles();
  CHECK(simd_detail::amx_loaded_rows() == 0);
  if (emulated) {
#if NPUQ_X86_EMULATED
    const auto& s = simd_detail::amx_state();
    CHECK_FALSE(s.configured);
    for (int t = 0; t < simd_detail::amx_tiles; ++t) CHECK(s.rows[t] == 0);
#endif
  }
}

#endif
