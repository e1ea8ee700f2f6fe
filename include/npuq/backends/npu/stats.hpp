// What the emulated NPU spent on an op: cycles, MAC-array occupancy, bytes per buffer and per
// DRAM tensor, energy, and numeric events; per op and per tile.
//
// Records are plain structs so composite and weight-format ops (attention, int4, sparse) add to
// the same ones: an op_stats is a sum of tile_stats plus what only the op knows (its name, shape
// and tiling, and its sparse-weight MAC counts).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

namespace npuq {
namespace npu {

struct cycle_split {
  std::int64_t compute = 0;     // cycles the array streams operands (useful or not)
  std::int64_t fill_drain = 0;  // per-fold pipeline fill and drain
  std::int64_t dma_stall = 0;   // waiting for DMA that compute could not hide
  std::int64_t total() const { return compute + fill_drain + dma_stall; }
  cycle_split& operator+=(const cycle_split& o) {
    compute += o.compute;
    fill_drain += o.fill_drain;
    dma_stall += o.dma_stall;
    return *this;
  }
};

struct buffer_traffic {
  std::int64_t read = 0, written = 0;  // bytes
  buffer_traffic& operator+=(const buffer_traffic& o) {
    read += o.read;
    written += o.written;
    return *this;
  }
};

// On-chip buffers (unified counts ifmap + weights when the profile has a unified scratchpad).
struct sram_traffic {
  buffer_traffic ifmap, weight, ofmap, accumulator;
  std::int64_t total() const {
    return ifmap.read + ifmap.written + weight.read + weight.written + ofmap.read + ofmap.written + accumulator.read +
           accumulator.written;
  }
  sram_traffic& operator+=(const sram_traffic& o) {
    ifmap += o.ifmap;
    weight += o.weight;
    ofmap += o.ofmap;
    accumulator += o.accumulator;
    return *this;
  }
};

// DRAM bytes per tensor.
struct dram_traffic {
  std::int64_t input_read = 0, weight_read = 0, bias_read = 0, output_written = 0;
  std::int64_t read() const { return input_read + weight_read + bias_read; }
  std::int64_t total() const { return read() + output_written; }
  dram_traffic& operator+=(const dram_traffic& o) {
    input_read += o.input_read;
    weight_read += o.weight_read;
    bias_read += o.bias_read;
    output_written += o.output_written;
    return *this;
  }
};

struct energy_split {
  double mac = 0, sram = 0, dram = 0, ppu = 0;  // pJ
  double total() const { return mac + sram + dram + ppu; }
  double data_movement_share() const { return total() > 0 ? (sram + dram) / total() : 0.0; }
  energy_split& operator+=(const energy_split& o) {
    mac += o.mac;
    sram += o.sram;
    dram += o.dram;
    ppu += o.ppu;
    return *this;
  }
};

// Numeric events. Counts are per output element and event.
struct numeric_counters {
  std::int64_t array_psum_overflows = 0;  // partial sums that wrapped or saturated inside the array
  std::int64_t accumulator_overflows = 0; // accumulator adds (or the final reduction) that saturated or wrapped
  std::int64_t spill_saturations = 0;     // partial sums clipped when spilled at memory.spill_bits
  std::int64_t clamped_low = 0, clamped_high = 0;  // outputs the PPU clamped (type range or activation)
  std::int64_t max_abs_acc = 0;           // largest |accumulator| reaching the PPU, before width reduction
  numeric_counters& operator+=(const numeric_counters& o) {
    array_psum_overflows += o.array_psum_overflows;
    accumulator_overflows += o.accumulator_overflows;
    spill_saturations += o.spill_saturations;
    clamped_low += o.clamped_low;
    clamped_high += o.clamped_high;
    max_abs_acc = std::max(max_abs_acc, o.max_abs_acc);
    return *this;
  }
};

struct tile_stats {
  std::int64_t instance = 0;             // batch / group / image index
  std::int64_t m0 = 0, mt = 0;           // output rows (pixels) [m0, m0 + mt) in row-major pixel order of the tile origin
  std::int64_t n0 = 0, nt = 0;           // output channels
  std::int64_t k0 = 0, kt = 0;           // reduction elements
  std::int64_t start_cycle = 0;          // within the op
  cycle_split cycles;
  std::int64_t dma_in_cycles = 0, dma_out_cycles = 0;
  std::int64_t folds = 0;
  std::int64_t useful_macs = 0, mac_slots = 0;
  double mapping_sum = 0;                // sum over folds of the fraction of PEs used
  dram_traffic dram;
  sram_traffic sram;
  energy_split energy;
  std::int64_t outputs = 0;              // elements through the PPU
  std::int64_t host_requantized = 0;     // of those, left as int32 for the host to requantize
  std::int64_t absent_weight_macs = 0;   // MACs whose weight a sparse format leaves out (zero)
  std::int64_t skipped_macs = 0;         // of those, skipped by the array (sparse_mode::skip_macs)
};

// What SCALE-Sim reports for a layer (COMPUTE_REPORT and the counts of DETAILED_ACCESS_REPORT).
// Utilisations and efficiency are percentages, computed in SCALE-Sim's order of operations.
struct scalesim_figures {
  std::int64_t total_cycles = 0, stall_cycles = 0;
  double overall_util = 0, mapping_eff = 0, compute_util = 0;
  std::int64_t sram_ifmap_reads = 0, sram_filter_reads = 0, sram_ofmap_writes = 0;
  std::int64_t dram_ifmap_reads = 0, dram_filter_reads = 0, dram_ofmap_writes = 0;
  // Not in SCALE-Sim's reports but what the figures derive from.
  std::int64_t macs = 0, folds = 0, compute_cycles = 0;  // compute: folds * T
  double mapping_sum = 0, compute_util_sum = 0;          // per-fold fractions, summed in fold order
  std::int64_t lines_walked = 0;  // demand lines simulated (0: buffers that never fill, outcome in closed form)
};

struct op_stats {
  std::string op;         // "gemm", "conv2d", "depthwise_conv2d"
  std::string shape;      // e.g. "M=64 N=10 K=32"
  std::string tiling;     // tile sizes and loop order the tiler chose
  std::int64_t instances = 1;
  std::int64_t macs = 0;  // the op's MAC count (M * N * K summed over instances)
  std::int64_t tile_count = 0;
  cycle_split cycles;
  std::int64_t useful_macs = 0, mac_slots = 0;
  std::int64_t folds = 0;
  double mapping_sum = 0;
  dram_traffic dram;
  sram_traffic sram;
  energy_split energy;
  numeric_counters numerics;
  std::int64_t outputs = 0;
  std::int64_t host_requantized = 0;  // outputs requantized on the host (profile::per_channel_fallback)
  std::int64_t softmax_elements = 0;  // elements through the softmax unit (one per element, not per pass)
  std::int64_t score_bytes = 0;       // DRAM bytes of attention scores and probabilities between its steps
  std::int64_t absent_weight_macs = 0;  // MACs of `macs` whose weight a sparse format leaves out (zero)
  std::int64_t skipped_macs = 0;        // of those, skipped by the array (profile::sparse_weights = skip_macs)
  std::vector<tile_stats> tiles;  // empty when the profile does not record tiles
  // cost_model::scalesim_v2: SCALE-Sim's own figures for the op (counts summed over its layers:
  // instances, groups, depthwise channels); `scalesim_layers` is 0 when the op was charged tiled.
  std::int64_t scalesim_layers = 0;
  scalesim_figures scalesim;

  // Useful MACs over the slots the array offered during the op's cycles.
  double utilisation() const { return mac_slots > 0 ? static_cast<double>(useful_macs) / static_cast<double>(mac_slots) : 0.0; }
  // Mean fraction of PEs a fold maps work onto (SCALE-Sim's mapping efficiency).
  double mapping_efficiency() const { return folds > 0 ? mapping_sum / static_cast<double>(folds) : 0.0; }
  double pj_per_mac() const { return useful_macs > 0 ? energy.total() / static_cast<double>(useful_macs) : 0.0; }

  // Adds a tile's counts (not its record).
  void add(const tile_stats& t) {
    ++tile_count;
    cycles += t.cycles;
    useful_macs += t.useful_macs;
    mac_slots += t.mac_slots;
    folds += t.folds;
    mapping_sum += t.mapping_sum;
    dram += t.dram;
    sram += t.sram;
    energy += t.energy;
    outputs += t.outputs;
    host_requantized += t.host_requantized;
    absent_weight_macs += t.absent_weight_macs;
    skipped_macs += t.skipped_macs;
  }
  // Adds another op's totals (for network totals).
  void add(const op_stats& o) {
    instances += o.instances;
    macs += o.macs;
    tile_count += o.tile_count;
    cycles += o.cycles;
    useful_macs += o.useful_macs;
    mac_slots += o.mac_slots;
    folds += o.folds;
    mapping_sum += o.mapping_sum;
    dram += o.dram;
    sram += o.sram;
    energy += o.energy;
    numerics += o.numerics;
    outputs += o.outputs;
    host_requantized += o.host_requantized;
    softmax_elements += o.softmax_elements;
    score_bytes += o.score_bytes;
    absent_weight_macs += o.absent_weight_macs;
    skipped_macs += o.skipped_macs;
  }
};

namespace detail {
inline std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}
}  // namespace detail

// Per-tile timeline as CSV: a header line, then one row per tile of every recorded op.
inline void write_trace_csv(std::ostream& os, const std::vector<op_stats>& ops) {
  os << "op_index,op,tile,instance,m0,mt,n0,nt,k0,kt,start_cycle,dma_stall,compute,fill_drain,total_cycles,"
        "dma_in_cycles,dma_out_cycles,folds,useful_macs,mac_slots,dram_read,dram_written,sram_bytes,energy_pj\n";
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const op_stats& o = ops[i];
    for (std::size_t t = 0; t < o.tiles.size(); ++t) {
      const tile_stats& s = o.tiles[t];
      os << i << ',' << o.op << ',' << t << ',' << s.instance << ',' << s.m0 << ',' << s.mt << ',' << s.n0 << ',' << s.nt << ','
         << s.k0 << ',' << s.kt << ',' << s.start_cycle << ',' << s.cycles.dma_stall << ',' << s.cycles.compute << ','
         << s.cycles.fill_drain << ',' << s.cycles.total() << ',' << s.dma_in_cycles << ',' << s.dma_out_cycles << ','
         << s.folds << ',' << s.useful_macs << ',' << s.mac_slots << ',' << s.dram.read() << ',' << s.dram.output_written
         << ',' << s.sram.total() << ',' << detail::fmt("%.3f", s.energy.total()) << '\n';
    }
  }
}

// The same timeline as JSON: {"ops": [{op totals..., "tiles": [{...}, ...]}, ...]}.
inline void write_trace_json(std::ostream& os, const std::string& profile_name, const std::vector<op_stats>& ops) {
  os << "{\"profile\":\"" << profile_name << "\",\"ops\":[";
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const op_stats& o = ops[i];
    os << (i ? "," : "") << "{\"op\":\"" << o.op << "\",\"shape\":\"" << o.shape << "\",\"tiling\":\"" << o.tiling
       << "\",\"cycles\":" << o.cycles.total() << ",\"compute\":" << o.cycles.compute << ",\"fill_drain\":" << o.cycles.fill_drain
       << ",\"dma_stall\":" << o.cycles.dma_stall << ",\"macs\":" << o.macs << ",\"mac_slots\":" << o.mac_slots
       << ",\"utilisation\":" << detail::fmt("%.6f", o.utilisation())
       << ",\"mapping_efficiency\":" << detail::fmt("%.6f", o.mapping_efficiency()) << ",\"dram_read\":" << o.dram.read()
       << ",\"dram_written\":" << o.dram.output_written << ",\"energy_pj\":" << detail::fmt("%.3f", o.energy.total())
       << ",\"host_requantized\":" << o.host_requantized << ",\"absent_weight_macs\":" << o.absent_weight_macs
       << ",\"skipped_macs\":" << o.skipped_macs << ",\"tiles\":[";
    for (std::size_t t = 0; t < o.tiles.size(); ++t) {
      const tile_stats& s = o.tiles[t];
      os << (t ? "," : "") << "{\"instance\":" << s.instance << ",\"m0\":" << s.m0 << ",\"mt\":" << s.mt << ",\"n0\":" << s.n0
         << ",\"nt\":" << s.nt << ",\"k0\":" << s.k0 << ",\"kt\":" << s.kt << ",\"start\":" << s.start_cycle
         << ",\"dma_stall\":" << s.cycles.dma_stall << ",\"compute\":" << s.cycles.compute << ",\"fill_drain\":" << s.cycles.fill_drain
         << ",\"useful_macs\":" << s.useful_macs << ",\"dram_read\":" << s.dram.read() << ",\"dram_written\":" << s.dram.output_written
         << "}";
    }
    os << "]}";
  }
  os << "]}\n";
}

// Readable report of a list of ops and their total; `clock_mhz` converts cycles to time.
inline std::string summarize(const std::string& header, const std::vector<op_stats>& ops, double clock_mhz) {
  using detail::fmt;
  std::string s = header + "\n";
  op_stats total;
  total.instances = 0;
  for (std::size_t i = 0; i < ops.size(); ++i) {
    const op_stats& o = ops[i];
    total.add(o);
    s += "  [" + std::to_string(i) + "] " + o.op + " " + o.shape + ": " + std::to_string(o.cycles.total()) + " cycles (compute " +
         std::to_string(o.cycles.compute) + ", fill/drain " + std::to_string(o.cycles.fill_drain) + ", DMA stall " +
         std::to_string(o.cycles.dma_stall) + "), " + std::to_string(o.tile_count) + " tiles [" + o.tiling + "], util " +
         fmt("%.1f%%", 100 * o.utilisation()) + ", mapping " + fmt("%.1f%%", 100 * o.mapping_efficiency()) + ", DRAM " +
         fmt("%.1f", static_cast<double>(o.dram.read()) / 1024) + " KiB in / " +
         fmt("%.1f", static_cast<double>(o.dram.output_written) / 1024) + " KiB out, " + fmt("%.3f", o.energy.total() / 1e6) +
         " uJ" + (o.host_requantized > 0 ? "; requantized on the host (int32 out): " + std::to_string(o.host_requantized) + " outputs" : "") +
         (o.softmax_elements > 0 ? "; softmax " + std::to_string(o.softmax_elements) + " elements" : "") +
         (o.score_bytes > 0 ? ", score/probability DRAM traffic " + fmt("%.1f", static_cast<double>(o.score_bytes) / 1024) + " KiB" : "") +
         (o.absent_weight_macs > 0 ? "; sparse weights: " + std::to_string(o.absent_weight_macs) + " of " + std::to_string(o.macs) +
                                         " MACs have absent weights, " + std::to_string(o.skipped_macs) + " skipped"
                                   : "") +
         "\n";
  }
  const double us = static_cast<double>(total.cycles.total()) / clock_mhz;
  s += "  total: " + std::to_string(total.cycles.total()) + " cycles = " + fmt("%.2f", us) + " us; " +
       std::to_string(total.useful_macs) + " MACs, utilisation " + fmt("%.1f%%", 100 * total.utilisation()) + ", mapping efficiency " +
       fmt("%.1f%%", 100 * total.mapping_efficiency()) + "\n";
  s += "  cycles: compute " + std::to_string(total.cycles.compute) + ", fill/drain " + std::to_string(total.cycles.fill_drain) +
       ", DMA stall " + std::to_string(total.cycles.dma_stall) + "\n";
  s += "  DRAM bytes: input " + std::to_string(total.dram.input_read) + ", weights " + std::to_string(total.dram.weight_read) +
       ", bias " + std::to_string(total.dram.bias_read) + ", output " + std::to_string(total.dram.output_written) + "\n";
  s += "  SRAM bytes (read/written): ifmap " + std::to_string(total.sram.ifmap.read) + "/" + std::to_string(total.sram.ifmap.written) +
       ", weights " + std::to_string(total.sram.weight.read) + "/" + std::to_string(total.sram.weight.written) + ", ofmap " +
       std::to_string(total.sram.ofmap.read) + "/" + std::to_string(total.sram.ofmap.written) + ", accumulator " +
       std::to_string(total.sram.accumulator.read) + "/" + std::to_string(total.sram.accumulator.written) + "\n";
  const energy_split& e = total.energy;
  const double et = e.total() > 0 ? e.total() : 1;
  s += "  energy: " + fmt("%.3f", e.total() / 1e6) + " uJ (MAC " + fmt("%.1f%%", 100 * e.mac / et) + ", SRAM " +
       fmt("%.1f%%", 100 * e.sram / et) + ", DRAM " + fmt("%.1f%%", 100 * e.dram / et) + ", PPU " + fmt("%.1f%%", 100 * e.ppu / et) +
       "), " + fmt("%.2f", total.pj_per_mac()) + " pJ/MAC, data movement " + fmt("%.1f%%", 100 * e.data_movement_share()) + "\n";
  const numeric_counters& n = total.numerics;
  s += "  numerics: max |acc| " + std::to_string(n.max_abs_acc) + ", accumulator overflows " + std::to_string(n.accumulator_overflows) +
       ", array psum overflows " + std::to_string(n.array_psum_overflows) + ", spill saturations " +
       std::to_string(n.spill_saturations) + ", clamped " + std::to_string(n.clamped_low) + " low / " +
       std::to_string(n.clamped_high) + " high\n";
  if (total.softmax_elements > 0)
    s += "  softmax: " + std::to_string(total.softmax_elements) + " elements; attention scores and probabilities moved " +
         std::to_string(total.score_bytes) + " DRAM bytes\n";
  if (total.absent_weight_macs > 0)
    s += "  sparse weights: " + std::to_string(total.absent_weight_macs) + " of " + std::to_string(total.macs) +
         " MACs have weights the format leaves out (zero-gated, no MAC energy); " + std::to_string(total.skipped_macs) +
         " of them skipped by the array" + (total.skipped_macs == 0 ? " (their cycles are spent: sparse_mode::bandwidth_only)" : "") +
         "\n";
  if (total.host_requantized > 0)
    s += "  host fallback: " + std::to_string(total.host_requantized) + " of " + std::to_string(total.outputs) +
         " outputs left the NPU as int32 and were requantized on the host (per-channel scales, per-tensor PPU)\n";
  return s;
}

// The same totals on one line: ops, cycles and time at the clock, utilisation, DRAM bytes,
// energy with pJ per MAC, and the numeric events (and host-requantized outputs, if any).
inline std::string summarize_line(const std::string& name, const std::vector<op_stats>& ops, double clock_mhz) {
  using detail::fmt;
  op_stats t;
  t.instances = 0;
  for (const op_stats& o : ops) t.add(o);
  const numeric_counters& n = t.numerics;
  std::string s = name + ": " + std::to_string(ops.size()) + " ops, " + std::to_string(t.tile_count) + " tiles, " +
                  std::to_string(t.cycles.total()) + " cycles = " + fmt("%.2f", static_cast<double>(t.cycles.total()) / clock_mhz) +
                  " us, util " + fmt("%.1f%%", 100 * t.utilisation()) + ", DRAM " + fmt("%.1f", static_cast<double>(t.dram.total()) / 1024) +
                  " KiB, " + fmt("%.3f", t.energy.total() / 1e6) + " uJ (" + fmt("%.2f", t.pj_per_mac()) + " pJ/MAC), overflows " +
                  std::to_string(n.accumulator_overflows + n.array_psum_overflows + n.spill_saturations) + ", clamped " +
                  std::to_string(n.clamped_low + n.clamped_high);
  if (t.host_requantized > 0) s += ", host-requantized " + std::to_string(t.host_requantized);
  return s;
}

}  // namespace npu
}  // namespace npuq
