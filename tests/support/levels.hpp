// Proof that a simd op ran the kernels its forced level's table lists (core/level_table.hpp):
// the kernel name ends in the family's suffix (`_avx512_vnni`, `_avx2`, ...). A level that
// silently fell back to another family's kernels fails the test that forced it.
#pragma once

#include <set>
#include <string>

#include <npuq/npuq.hpp>

#include "support/catch.hpp"

namespace npuq_test {

inline bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The suffix the kernels of `op` (a member of level_table) carry at `level`.
inline std::string family_suffix(npuq::isa level, npuq::kernel_family npuq::level_table::*op) {
  return std::string("_") + npuq::to_string(npuq::level_kernels(level).*op);
}

// Requires that the last simd op on this thread ran the family `op`'s table entry names.
inline void require_family_ran(npuq::isa level, npuq::kernel_family npuq::level_table::*op, const char* what) {
  const std::string name = npuq::simd_last_kernel(), suffix = family_suffix(level, op);
  INFO(what << " at " << npuq::to_string(level) << " ran " << name << ", the level's table lists *" << suffix);
  REQUIRE(ends_with(name, suffix));
}

// How many different kernel families of `op` the levels of this CPU run.
inline std::size_t distinct_families(npuq::kernel_family npuq::level_table::*op) {
  std::set<npuq::kernel_family> f;
  for (npuq::isa level : npuq::cpu().levels()) f.insert(npuq::level_kernels(level).*op);
  return f.size();
}

}  // namespace npuq_test
