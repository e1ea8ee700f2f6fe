// Backend tags.
//
// A backend is a value passed as the first argument of every op, so one call shape serves all of
// them: `npuq::gemm(npuq::scalar, params, a, b, bias, out)`. Stateless backends are empty tag
// types; stateful ones (the NPU emulator, which keeps a profile and statistics) are objects.
// Each backend provides `execute(backend, problem)` overloads for the validated problems that the
// op headers build; an op that a backend does not implement fails to compile with a clear name.
#pragma once

#include "npuq/core/status.hpp"

namespace npuq {

// The reference backend: plain loops that define the numerics contract.
struct scalar_backend {
  static constexpr const char* name() { return "scalar"; }
};
inline constexpr scalar_backend scalar{};

namespace detail {
// Runs a validated problem on a backend. An empty output has nothing to compute on any backend,
// however large the other extents (batches, depth, T) are, so it returns at once.
template <class Backend, class Problem>
status run_validated(const Backend& backend, const Problem& problem) {
  if (problem.out.size() == 0) return {};
  return execute(backend, problem);
}
}  // namespace detail

}  // namespace npuq
