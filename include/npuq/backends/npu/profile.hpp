// NPU profile: the knobs of the tile emulator (array, buffers, DRAM, numerics, energy).
//
// The emulator executes an op the way an NPU would (tiles staged through capacity-limited
// on-chip buffers, MAC-array passes, a post-processing unit) and charges cycles, bytes and
// energy for it. Everything it charges is derived from one `npu::profile`, so a user can start
// from a named preset (presets.hpp), change a knob, and see what it costs. `validate()` names the
// knob that is wrong; an emulator built from an invalid profile refuses every op.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "npuq/core/numerics.hpp"
#include "npuq/core/status.hpp"
#include "npuq/ops/softmax_params.hpp"

namespace npuq {
namespace npu {

// Which operand stays in the PEs while the others stream past (SCALE-Sim's three dataflows).
enum class dataflow : std::uint8_t { output_stationary, weight_stationary, input_stationary };

// systolic: operands ripple through a rows x cols grid; each fold pays SCALE-Sim's fill/drain.
// dot_product: rows x cols lanes each reduce `depth` products per cycle (Ethos-U micro-blocks,
// NVDLA atomics); each fold pays a fixed pipeline latency.
enum class array_kind : std::uint8_t { systolic, dot_product };

// Where partial sums live between K tiles: an on-chip accumulator memory, or spilled to the
// ofmap buffer at `memory_config::spill_bits` (saturating when narrower than the accumulator).
enum class psum_mode : std::uint8_t { accumulator, spill };

// What an op gets when its output channels need different multipliers and the profile's PPU
// holds one per op (per_channel_requant = false): `host` runs the MACs and the bias on the NPU,
// DMAs the int32 accumulators out and requantizes them on the host (counted in
// op_stats::host_requantized, charged as 4-byte outputs); `error` refuses the op.
enum class requant_fallback : std::uint8_t { host, error };

// What the array does with weights a sparse format leaves out (2:4, block CSR, CSR; the op's MAC
// count still counts them). `bandwidth_only`: they are DMAed and stored compressed (values plus
// metadata) and their MACs are zero-gated (no MAC energy), but the array still spends the dense
// cycles on them. `skip_macs`: additionally the array skips them, as sparse tensor cores do for
// 2:4 and zero-skipping accelerators for unstructured sparsity; the columns of a tile advance in
// lockstep, so a pass takes as many K steps as the tile's column with the most stored entries.
enum class sparse_mode : std::uint8_t { bandwidth_only, skip_macs };

// How the emulator charges conv and GEMM ops. `tiled`: per tile of the tiler's plan through the
// profile's buffers and DMA (cost_model.hpp). `scalesim_v2`: as SCALE-Sim v2 does (scalesim.hpp):
// the whole im2col GEMM on its output grid ceil((H - R + S) / S) of the padded input, with
// memory.ifmap_bytes / weight_bytes / ofmap_bytes as its ifmap, filter and ofmap SRAMs (1-byte
// words), its stall model and its DRAM counts; the arithmetic still runs on the true output.
// dram.ideal selects SCALE-Sim's InterfaceBandwidth CALC; otherwise USER at dram.bytes_per_cycle.
// SCALE-Sim has no dilation, sparsity or sub-byte weights: such ops keep the tiled charges.
enum class cost_model : std::uint8_t { tiled, scalesim_v2 };

inline const char* to_string(sparse_mode m) { return m == sparse_mode::skip_macs ? "skip_macs" : "bandwidth_only"; }

inline const char* to_string(dataflow d) {
  switch (d) {
    case dataflow::output_stationary: return "output stationary";
    case dataflow::weight_stationary: return "weight stationary";
    case dataflow::input_stationary: return "input stationary";
  }
  return "?";
}
inline const char* to_string(array_kind k) { return k == array_kind::systolic ? "systolic" : "dot-product"; }
inline const char* to_string(psum_mode m) { return m == psum_mode::accumulator ? "accumulator" : "spill"; }

struct array_config {
  std::int64_t rows = 16;   // systolic: PE rows; dot_product: output pixels per cycle
  std::int64_t cols = 16;   // PE columns / output channels per cycle
  std::int64_t depth = 1;   // products each PE reduces per cycle (1 for systolic arrays)
  array_kind kind = array_kind::systolic;
  dataflow flow = dataflow::output_stationary;
  std::int64_t pipeline_latency = 0;  // dot_product: fill/drain cycles per fold
  // Depthwise channels map onto the array columns (Ethos-U); otherwise each channel is its own
  // small GEMM (systolic arrays without depthwise support).
  bool native_depthwise = false;
};

// On-chip memory. Operands sit either in separate ifmap / weight buffers or in one unified
// scratchpad (then ifmap_bytes and weight_bytes are 0). Final outputs are staged in the ofmap
// buffer; ofmap_bytes may be 0 with psum_mode::accumulator (the PPU streams straight to DMA).
struct memory_config {
  std::int64_t ifmap_bytes = 256 * 1024;
  std::int64_t weight_bytes = 256 * 1024;
  std::int64_t unified_bytes = 0;
  std::int64_t ofmap_bytes = 128 * 1024;
  std::int64_t accumulator_bytes = 64 * 1024;
  bool double_buffer = true;  // operand and ofmap tiles use half of each buffer, DMA overlaps compute
  psum_mode psums = psum_mode::accumulator;
  int spill_bits = 32;  // width of spilled partial sums (psum_mode::spill)
};

struct dram_config {
  double bytes_per_cycle = 16.0;
  std::int64_t latency_cycles = 100;  // per DMA transfer
  bool ideal = false;                 // transfers cost nothing (SCALE-Sim compute cycles)
};

// Energy per action in pJ. SRAM entries of 0 are derived from the buffer size (see
// sram_pj_per_byte); defaults are 45 nm figures (Horowitz, ISSCC 2014).
struct energy_table {
  double mac_pj = 0.3;                // 8-bit multiply 0.2 pJ + 32-bit add 0.1 pJ
  double dram_pj_per_byte = 162.5;    // 1.3 nJ per 64 bits
  double ppu_pj_per_output = 3.2;     // 32-bit multiply 3.1 pJ + add 0.1 pJ
  double ifmap_pj_per_byte = 0, weight_pj_per_byte = 0, unified_pj_per_byte = 0, ofmap_pj_per_byte = 0,
         accumulator_pj_per_byte = 0;
};

// 64-bit SRAM read energy interpolated log-linearly between 10 pJ (8 KiB) and 100 pJ (1 MiB),
// clamped outside that range, per byte.
inline double sram_pj_per_byte(std::int64_t capacity_bytes) {
  if (capacity_bytes <= 0) return 0.0;
  double t = std::log(static_cast<double>(capacity_bytes) / 8192.0) / std::log(128.0);
  t = t < 0 ? 0 : (t > 1 ? 1 : t);
  return (10.0 + 90.0 * t) / 8.0;
}

// The unit that runs softmax (Ethos-U's output unit with its lookup table, NVDLA's SDP LUT, a TPU
// vector unit). `exp` says how it evaluates exp: the 256-entry table Vela builds, or gemmlowp's
// fixed-point pipeline; the integers are the same either way (TFLite's softmax). A row streams
// through the unit three times (maximum; exponentials and their sum; normalised outputs), at
// `elements_per_cycle` per pass, for `pj_per_element` per element and pass.
struct softmax_unit_config {
  softmax_exp exp = softmax_exp::table;
  double elements_per_cycle = 16.0;
  double pj_per_element = 1.0;  // a table read (or a short fixed-point pipeline) and an add
};

struct profile {
  std::string name = "generic";
  array_config array;
  memory_config memory;
  dram_config dram;
  double clock_mhz = 1000.0;
  // When fixed, ops must ask for exactly these numerics (errc::unsupported otherwise); when not,
  // the emulator follows each op's params.numerics.
  bool fixed_numerics = false;
  numerics_profile numerics = numerics_profile::tflite();
  // Width and overflow rule of the partial sums inside the array before they reach the
  // accumulator (bits 0: exact). Gemmini: 20-bit.
  accumulator_spec array_psum{0, overflow_rule::wrap};
  bool per_channel_requant = true;  // false: the PPU holds one multiplier per op
  requant_fallback per_channel_fallback = requant_fallback::host;  // ops that need more (see requant_fallback)
  energy_table energy;
  softmax_unit_config softmax;
  sparse_mode sparse_weights = sparse_mode::bandwidth_only;  // zero weights of sparse formats (see sparse_mode)
  bool record_tiles = true;  // keep per-tile records (the trace); op totals are always kept
  cost_model costs = cost_model::tiled;  // scalesim_v2: presets::scalesim_compat

  // The four SRAM energies actually used (derived when the table says 0).
  double pj_ifmap() const { return pick(energy.ifmap_pj_per_byte, memory.ifmap_bytes); }
  double pj_weight() const { return pick(energy.weight_pj_per_byte, memory.weight_bytes); }
  double pj_unified() const { return pick(energy.unified_pj_per_byte, memory.unified_bytes); }
  double pj_ofmap() const { return pick(energy.ofmap_pj_per_byte, memory.ofmap_bytes); }
  double pj_accumulator() const { return pick(energy.accumulator_pj_per_byte, memory.accumulator_bytes); }
  std::int64_t macs_per_cycle() const { return array.rows * array.cols * array.depth; }

  status validate() const {
    const std::string at = "profile " + name + ": ";
    auto positive = [&](const char* knob, std::int64_t v) -> status {
      if (v < 1) return {errc::invalid_argument, at + knob + " must be >= 1, got " + std::to_string(v)};
      return {};
    };
    NPUQ_RETURN_IF_ERROR(positive("array.rows", array.rows));
    NPUQ_RETURN_IF_ERROR(positive("array.cols", array.cols));
    NPUQ_RETURN_IF_ERROR(positive("array.depth", array.depth));
    if (array.kind == array_kind::systolic && array.depth != 1)
      return {errc::invalid_argument, at + "array.depth must be 1 for a systolic array, got " + std::to_string(array.depth)};
    if (array.pipeline_latency < 0) return {errc::invalid_argument, at + "array.pipeline_latency must be >= 0"};
    if (array.rows > (1 << 16) || array.cols > (1 << 16) || array.depth > (1 << 16))
      return {errc::invalid_argument, at + "array dimensions above 65536 are not plausible"};
    const memory_config& m = memory;
    if (m.ifmap_bytes < 0 || m.weight_bytes < 0 || m.unified_bytes < 0 || m.ofmap_bytes < 0 || m.accumulator_bytes < 0)
      return {errc::invalid_argument, at + "memory sizes must be >= 0"};
    if (m.unified_bytes > 0) {
      if (m.ifmap_bytes != 0 || m.weight_bytes != 0)
        return {errc::invalid_argument, at + "memory.unified_bytes is set: memory.ifmap_bytes and memory.weight_bytes must be 0"};
    } else {
      NPUQ_RETURN_IF_ERROR(positive("memory.ifmap_bytes", m.ifmap_bytes));
      NPUQ_RETURN_IF_ERROR(positive("memory.weight_bytes", m.weight_bytes));
    }
    if (m.psums == psum_mode::accumulator) {
      NPUQ_RETURN_IF_ERROR(positive("memory.accumulator_bytes (psum_mode::accumulator)", m.accumulator_bytes));
    } else {
      NPUQ_RETURN_IF_ERROR(positive("memory.ofmap_bytes (psum_mode::spill)", m.ofmap_bytes));
      if (m.spill_bits < 8 || m.spill_bits > 48)
        return {errc::invalid_argument, at + "memory.spill_bits must be in [8, 48], got " + std::to_string(m.spill_bits)};
    }
    if (!dram.ideal) {
      if (!(dram.bytes_per_cycle > 0) || !std::isfinite(dram.bytes_per_cycle) || dram.bytes_per_cycle > 1e6)
        return {errc::invalid_argument, at + "dram.bytes_per_cycle must be finite and in (0, 1e6], got " +
                                            std::to_string(dram.bytes_per_cycle)};
      if (dram.latency_cycles < 0) return {errc::invalid_argument, at + "dram.latency_cycles must be >= 0"};
    }
    if (!(clock_mhz > 0) || !std::isfinite(clock_mhz) || clock_mhz > 1e5)
      return {errc::invalid_argument, at + "clock_mhz must be finite and in (0, 100000], got " + std::to_string(clock_mhz)};
    if (array_psum.bits != 0 && (array_psum.bits < 8 || array_psum.bits > 48))
      return {errc::invalid_argument, at + "array_psum.bits must be 0 (exact) or in [8, 48], got " + std::to_string(array_psum.bits)};
    if (!(softmax.elements_per_cycle > 0) || !std::isfinite(softmax.elements_per_cycle) || softmax.elements_per_cycle > 1e6)
      return {errc::invalid_argument, at + "softmax.elements_per_cycle must be finite and in (0, 1e6], got " +
                                          std::to_string(softmax.elements_per_cycle)};
    if (!(softmax.pj_per_element >= 0) || !std::isfinite(softmax.pj_per_element))
      return {errc::invalid_argument, at + "softmax.pj_per_element must be finite and >= 0"};
    if (sparse_weights != sparse_mode::bandwidth_only && sparse_weights != sparse_mode::skip_macs)
      return {errc::invalid_argument, at + "sparse_weights must be sparse_mode::bandwidth_only or sparse_mode::skip_macs, got " +
                                          std::to_string(static_cast<int>(sparse_weights))};
    if (costs == cost_model::scalesim_v2) {
      if (array.kind != array_kind::systolic)
        return {errc::invalid_argument, at + "costs = cost_model::scalesim_v2 needs a systolic array (array.kind)"};
      if (!dram.ideal && (dram.bytes_per_cycle != std::floor(dram.bytes_per_cycle) || dram.bytes_per_cycle < 1))
        return {errc::invalid_argument, at + "costs = cost_model::scalesim_v2 with a user bandwidth (dram.ideal = false) needs a "
                                                 "whole dram.bytes_per_cycle >= 1, got " + std::to_string(dram.bytes_per_cycle)};
      if (array.rows > 4096 || array.cols > 4096)
        return {errc::invalid_argument, at + "costs = cost_model::scalesim_v2 simulates arrays up to 4096x4096"};
      if (m.unified_bytes > 0 || m.ifmap_bytes < 100 || m.weight_bytes < 100 || m.ofmap_bytes < 2)
        return {errc::invalid_argument, at + "costs = cost_model::scalesim_v2 needs separate SRAMs: memory.ifmap_bytes and "
                                                 "memory.weight_bytes >= 100, memory.ofmap_bytes >= 2, memory.unified_bytes = 0"};
    } else if (costs != cost_model::tiled) {
      return {errc::invalid_argument, at + "costs must be cost_model::tiled or cost_model::scalesim_v2, got " +
                                          std::to_string(static_cast<int>(costs))};
    }
    if (fixed_numerics) {
      const status s = numerics.validate();
      if (!s.ok()) return {s.code(), at + "numerics: " + s.message()};
    }
    const double e[] = {energy.mac_pj, energy.dram_pj_per_byte, energy.ppu_pj_per_output, energy.ifmap_pj_per_byte,
                        energy.weight_pj_per_byte, energy.unified_pj_per_byte, energy.ofmap_pj_per_byte,
                        energy.accumulator_pj_per_byte};
    for (double v : e)
      if (!(v >= 0) || !std::isfinite(v)) return {errc::invalid_argument, at + "energy table entries must be finite and >= 0"};
    return {};
  }

  std::string describe() const {
    std::string s = name + ": " + to_string(array.kind) + " " + std::to_string(array.rows) + "x" + std::to_string(array.cols);
    if (array.depth > 1) s += "x" + std::to_string(array.depth);
    s += " (" + std::to_string(macs_per_cycle()) + " MAC/cycle), " + to_string(array.flow) + ", " +
         std::to_string(static_cast<long long>(std::llround(clock_mhz))) + " MHz";
    return s;
  }

 private:
  static double pick(double given, std::int64_t size) { return given > 0 ? given : sram_pj_per_byte(size); }
};

}  // namespace npu
}  // namespace npuq
