// The simd backend value and the record of which kernel ran.
//
// `npuq::simd` runs the best kernels the CPU offers (see core/cpu_features.hpp). A backend
// value may carry its own cap, `npuq::simd_backend{npuq::isa::avx2}`, so a test or benchmark can
// force each level without touching process state. After every op, `npuq::simd_last_kernel()`
// names the kernel that ran on this thread (e.g. "gemm_s8s8_4x16c2_avx2"), so tests can prove a
// fast path was exercised rather than silently skipped.
//
// Threads: `npuq::simd_backend{npuq::isa::best, 4}` (or `npuq::simd.with_threads(4)`) runs each
// op on up to 4 threads (0: every hardware thread; the default is 1). The result is the same
// bytes for any thread count (core/parallel.hpp); simd_last_threads() says how many ran.
#pragma once

#include <string>

#include "npuq/core/cpu_features.hpp"
#include "npuq/core/parallel.hpp"

namespace npuq {

struct simd_backend {
  isa cap = isa::best;
  int threads = 1;  // > 0: at most that many; 0: every hardware thread; < 0: 1
  static constexpr const char* name() { return "simd"; }
  // The level this backend value runs at on this CPU under the process cap.
  isa level() const { return active_isa(cap); }
  // How many threads an op may use (see `threads`).
  int thread_count() const { return npuq::thread_count(threads); }
  // This backend value with another thread count.
  constexpr simd_backend with_threads(int n) const { return {cap, n}; }
};
inline constexpr simd_backend simd{};

namespace detail {
inline std::string& simd_last_kernel_storage() {
  thread_local std::string name;
  return name;
}
}  // namespace detail

// Name of the kernel the last simd op on this thread ran.
inline const std::string& simd_last_kernel() { return detail::simd_last_kernel_storage(); }

}  // namespace npuq
