// NPU profiles the emulator tests run over: every preset, and each preset with buffers so small
// that ops split into many tiles (K included), so tiling and partial-sum paths are exercised.
#pragma once

#include <string>
#include <vector>

#include <npuq/npu.hpp>

#include "catch.hpp"

namespace npuq_test {

inline npuq::npu::profile preset(const std::string& name) {
  npuq::npu::profile p;
  REQUIRE(npuq::npu::presets::by_name(name, &p).ok());
  return p;
}

// The same NPU with buffers so small that ops split into many tiles, K included.
inline npuq::npu::profile shrunk(npuq::npu::profile p) {
  p.name += "/small";
  npuq::npu::memory_config& m = p.memory;
  if (m.unified_bytes > 0) m.unified_bytes = 4096;
  else m.ifmap_bytes = m.weight_bytes = 2048;
  if (m.ofmap_bytes > 0) m.ofmap_bytes = 4096;
  if (m.accumulator_bytes > 0) m.accumulator_bytes = 1024;
  return p;
}

inline std::vector<npuq::npu::profile> all_profiles() {
  std::vector<npuq::npu::profile> v;
  for (const auto& n : npuq::npu::presets::names()) {
    v.push_back(preset(n));
    v.push_back(shrunk(preset(n)));
  }
  return v;
}

}  // namespace npuq_test
