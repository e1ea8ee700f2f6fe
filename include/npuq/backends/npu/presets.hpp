// Named NPU profiles built from public specifications.
//
// Each preset's numbers and where they come from are listed in docs/npu-emulator.md; numbers no
// public source gives are marked there as assumptions. Presets are plain values: copy one and
// change a knob to explore a variant.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "npuq/backends/npu/profile.hpp"

namespace npuq {
namespace npu {
namespace presets {

constexpr std::int64_t KiB = 1024, MiB = 1024 * 1024;

// A 16x16 output-stationary systolic array with separate buffers; follows each op's numerics.
inline profile generic() { return profile{}; }

// SCALE-Sim v2 (scale-sim-v2, InterfaceBandwidth CALC): conv and GEMM ops are charged exactly as
// SCALE-Sim reports them (cost_model::scalesim_v2, see scalesim.hpp): its im2col mapping with
// output size ceil((H - R + S) / S), its fill/drain per fold, its ofmap-buffer stalls and its SRAM
// and DRAM counts. The SRAM sizes (KiB, as in a SCALE-Sim config) go to memory.ifmap_bytes,
// weight_bytes and ofmap_bytes; 0 leaves a buffer unbounded (no stalls, DRAM = distinct words).
// `bandwidth` > 0 is InterfaceBandwidth USER with that many words (bytes) per cycle
// (dram.bytes_per_cycle, dram.ideal = false): reads can then stall too.
inline profile scalesim_compat(std::int64_t rows = 32, std::int64_t cols = 32, dataflow flow = dataflow::output_stationary,
                               std::int64_t ifmap_kib = 0, std::int64_t filter_kib = 0, std::int64_t ofmap_kib = 0,
                               std::int64_t bandwidth = 0) {
  profile p;
  p.name = "scalesim_compat";
  p.array = {rows, cols, 1, array_kind::systolic, flow, 0, false};
  const std::int64_t huge = std::int64_t{1} << 40;
  auto size = [&](std::int64_t kib) { return kib > 0 ? kib * KiB : huge; };
  p.memory = {size(ifmap_kib), size(filter_kib), 0, size(ofmap_kib), 0, false, psum_mode::spill, 48};
  p.dram = {static_cast<double>(bandwidth > 0 ? bandwidth : 16), 0, bandwidth <= 0};
  p.costs = cost_model::scalesim_v2;
  return p;
}

// SCALE-Sim v2 configs/google.cfg: 256x256 WS, 6 MiB ifmap, 6 MiB filter, 2 MiB ofmap SRAM,
// bandwidth 10 words (bytes) per cycle, double-buffered scratchpads.
inline profile tpu_256x256() {
  profile p;
  p.name = "tpu_256x256";
  p.array = {256, 256, 1, array_kind::systolic, dataflow::weight_stationary, 0, false};
  p.memory = {6 * MiB, 6 * MiB, 0, 2 * MiB, 0, true, psum_mode::spill, 32};
  p.dram = {10.0, 0, false};
  p.clock_mhz = 700.0;  // assumption: TPU v1 clock
  p.softmax = {softmax_exp::fixed_point, 256.0, 1.0};  // assumption: a vector unit as wide as the array
  return p;
}

// Arm Ethos-U55-256: 2x2 OFM pixels x 8 OFM channels x 8-deep dot products, 48 KiB SHRAM,
// TFLite double rounding, int32 accumulators.
inline profile ethos_u55_256() {
  profile p;
  p.name = "ethos_u55_256";
  p.array = {4, 8, 8, array_kind::dot_product, dataflow::output_stationary, 8, true};
  p.memory = {0, 0, 32 * KiB, 0, 16 * KiB, true, psum_mode::accumulator, 32};  // SHRAM 48 KiB split 32/16
  p.dram = {8.0, 32, false};
  p.clock_mhz = 500.0;
  p.fixed_numerics = true;
  p.numerics = numerics_profile::tflite();
  p.softmax = {softmax_exp::table, 8.0, 1.0};  // Vela's exp LUT in the output unit; throughput: assumption
  return p;
}

// Arm Ethos-U65-512: 512 MAC/cycle (modeled 2x2 pixels x 16 channels x 8 deep), 48 KiB SHRAM.
inline profile ethos_u65_512() {
  profile p = ethos_u55_256();
  p.name = "ethos_u65_512";
  p.array.cols = 16;
  p.dram = {16.0, 32, false};
  p.clock_mhz = 1000.0;
  p.softmax.elements_per_cycle = 16.0;  // assumption: twice the U55-256's
  return p;
}

// Gemmini default config: 16x16 WS systolic array, 256 KiB scratchpad, 64 KiB int32 accumulator,
// 20-bit partial sums inside the array (truncating), fp32 per-layer scale with ties to even,
// 128-bit DMA bus.
inline profile gemmini_16x16() {
  profile p;
  p.name = "gemmini_16x16";
  p.array = {16, 16, 1, array_kind::systolic, dataflow::weight_stationary, 0, false};
  p.memory = {0, 0, 256 * KiB, 0, 64 * KiB, true, psum_mode::accumulator, 32};
  p.dram = {16.0, 100, false};
  p.clock_mhz = 1000.0;
  p.fixed_numerics = true;
  p.numerics = numerics_profile::fp32(rounding::half_even);
  p.array_psum = {20, overflow_rule::wrap};
  p.per_channel_requant = false;
  p.softmax = {softmax_exp::fixed_point, 1.0, 5.0};  // no softmax unit: the host core, one element per cycle (assumption)
  return p;
}

// NVDLA nv_small: 8 (atomic-C) x 8 (atomic-K) int8 MACs, 128 KiB CBUF, 34-bit accumulators
// saturating at every add, output shift rounding half away from zero.
inline profile nvdla_small() {
  profile p;
  p.name = "nvdla_small";
  p.array = {1, 8, 8, array_kind::dot_product, dataflow::weight_stationary, 16, false};
  p.memory = {0, 0, 128 * KiB, 0, 32 * KiB, true, psum_mode::accumulator, 32};
  p.dram = {8.0, 100, false};
  p.clock_mhz = 1000.0;
  p.fixed_numerics = true;
  p.numerics = numerics_profile::q31(rounding::half_away, {34, overflow_rule::saturate_each_add});
  p.softmax = {softmax_exp::table, 1.0, 1.0};  // SDP LUT, 1 element per cycle (nv_small SDP throughput)
  return p;
}

// NVDLA nv_full: 64 (atomic-C) x 32 (atomic-K) int8 MACs, 512 KiB CBUF.
inline profile nvdla_full() {
  profile p = nvdla_small();
  p.name = "nvdla_full";
  p.array.cols = 32;
  p.array.depth = 64;
  p.memory.unified_bytes = 512 * KiB;
  p.memory.accumulator_bytes = 128 * KiB;
  p.dram = {64.0, 100, false};
  p.softmax.elements_per_cycle = 16.0;  // SDP throughput of nv_full
  return p;
}

inline std::vector<std::string> names() {
  return {"generic", "scalesim_compat", "tpu_256x256", "ethos_u55_256", "ethos_u65_512", "gemmini_16x16", "nvdla_small", "nvdla_full"};
}

// Looks a preset up by name.
inline status by_name(const std::string& name, profile* out) {
  if (name == "generic") *out = generic();
  else if (name == "scalesim_compat") *out = scalesim_compat();
  else if (name == "tpu_256x256") *out = tpu_256x256();
  else if (name == "ethos_u55_256") *out = ethos_u55_256();
  else if (name == "ethos_u65_512") *out = ethos_u65_512();
  else if (name == "gemmini_16x16") *out = gemmini_16x16();
  else if (name == "nvdla_small") *out = nvdla_small();
  else if (name == "nvdla_full") *out = nvdla_full();
  else {
    std::string all;
    for (const auto& n : names()) all += (all.empty() ? "" : ", ") + n;
    return {errc::invalid_argument, "preset: unknown NPU preset '" + name + "' (known: " + all + ")"};
  }
  return {};
}

}  // namespace presets
}  // namespace npu
}  // namespace npuq
