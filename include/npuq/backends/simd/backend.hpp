// The simd backend value and the record of which kernel ran.
//
// `npuq::simd` runs the best kernels the CPU offers (see core/cpu_features.hpp). A backend
// value may carry its own cap, `npuq::simd_backend{npuq::isa::avx2}`, so a test or benchmark can
// force each level without touching process state. After every op, `npuq::simd_last_kernel()`
// names the kernel that ran on this thread (e.g. "gemm_s8s8_4x16c2_avx2"), so tests can prove a
// fast path was exercised rather than silently skipped.
#pragma once

#include <string>

#include "npuq/core/cpu_features.hpp"

namespace npuq {

struct simd_backend {
  isa cap = isa::best;
  static constexpr const char* name() { return "simd"; }
  // The level this backend value runs at on this CPU under the process cap.
  isa level() const { return active_isa(cap); }
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
