// Analytic cost of one MAC-array pass and one DMA transfer.
//
// Costs are closed forms per tile, never per MAC, so charging them does not slow the emulation
// down. For a systolic array they are SCALE-Sim v2's: a tile's (M, N, K) maps to (Sr, Sc, T) per
// dataflow (OS: (M, N, K), WS: (K, N, M), IS: (K, M, N)), folds = ceil(Sr / rows) *
// ceil(Sc / cols), and each fold takes T + rows + cols - 2 (OS) or T + 2 * rows + cols - 2 (WS,
// IS) cycles; SCALE-Sim reports one cycle less per layer (the index of the last cycle), which the
// emulator takes off the op's last tile. A dot-product array reduces `depth` K elements per lane
// per cycle and pays a fixed pipeline latency per fold instead.
#pragma once

#include <cstdint>

#include "npuq/backends/npu/profile.hpp"

namespace npuq {
namespace npu {

inline std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

struct array_pass_cost {
  std::int64_t folds = 0;
  std::int64_t compute = 0;      // folds * T
  std::int64_t fill_drain = 0;   // folds * per-fold overhead
  double mapping_sum = 0;        // sum over folds of the fraction of PEs mapped
  std::int64_t a_reads = 0;      // elements the array reads from the ifmap buffer
  std::int64_t b_reads = 0;      // elements the array reads from the weight buffer
};

// One pass of an (mt x kt) by (kt x nt) product over the array.
inline array_pass_cost array_pass(const array_config& a, std::int64_t mt, std::int64_t nt, std::int64_t kt) {
  array_pass_cost c;
  if (mt <= 0 || nt <= 0 || kt <= 0) return c;
  const std::int64_t krows = a.rows * a.depth;  // K elements the rows cover in WS / IS
  std::int64_t sr_folds = 0, sc_folds = 0, t = 0;
  double mapped = 0;
  switch (a.flow) {
    case dataflow::output_stationary:
      sr_folds = ceil_div(mt, a.rows);
      sc_folds = ceil_div(nt, a.cols);
      t = ceil_div(kt, a.depth);
      mapped = static_cast<double>(mt) * static_cast<double>(nt) / static_cast<double>(a.rows * a.cols);
      c.a_reads = mt * kt * sc_folds;
      c.b_reads = nt * kt * sr_folds;
      break;
    case dataflow::weight_stationary:
      sr_folds = ceil_div(kt, krows);
      sc_folds = ceil_div(nt, a.cols);
      t = mt;
      mapped = static_cast<double>(kt) * static_cast<double>(nt) / static_cast<double>(krows * a.cols);
      c.a_reads = mt * kt * sc_folds;
      c.b_reads = nt * kt;
      break;
    case dataflow::input_stationary:
      sr_folds = ceil_div(kt, krows);
      sc_folds = ceil_div(mt, a.cols);
      t = nt;
      mapped = static_cast<double>(kt) * static_cast<double>(mt) / static_cast<double>(krows * a.cols);
      c.a_reads = mt * kt;
      c.b_reads = nt * kt * sc_folds;
      break;
  }
  c.folds = sr_folds * sc_folds;
  c.compute = c.folds * t;
  std::int64_t overhead = a.pipeline_latency;
  if (a.kind == array_kind::systolic)
    overhead = a.flow == dataflow::output_stationary ? a.rows + a.cols - 2 : 2 * a.rows + a.cols - 2;
  c.fill_drain = c.folds * overhead;
  c.mapping_sum = mapped;
  return c;
}

// SCALE-Sim v2's compute cycles of a whole GEMM (M, N, K) on a systolic array: the closed form
// the emulator reproduces under presets::scalesim_compat.
inline std::int64_t scalesim_gemm_cycles(std::int64_t rows, std::int64_t cols, dataflow flow, std::int64_t M, std::int64_t N,
                                         std::int64_t K) {
  array_config a;
  a.rows = rows;
  a.cols = cols;
  a.flow = flow;
  const array_pass_cost c = array_pass(a, M, N, K);
  return c.compute + c.fill_drain - 1;
}

// SCALE-Sim's conv mapping (im2col, no padding): M = E_h * E_w with E = ceil((H - R + S) / S),
// K = R * S_w * C, N = filters.
struct scalesim_conv_gemm {
  std::int64_t M, N, K;
};
inline scalesim_conv_gemm scalesim_conv_mapping(std::int64_t ifmap_h, std::int64_t ifmap_w, std::int64_t filt_h, std::int64_t filt_w,
                                                std::int64_t channels, std::int64_t filters, std::int64_t stride) {
  const std::int64_t eh = ceil_div(ifmap_h - filt_h + stride, stride);
  const std::int64_t ew = ceil_div(ifmap_w - filt_w + stride, stride);
  return {eh * ew, filters, filt_h * filt_w * channels};
}

// Cycles of one DMA transfer.
inline std::int64_t dma_cycles(const dram_config& d, std::int64_t bytes) {
  if (bytes <= 0 || d.ideal) return 0;
  return d.latency_cycles + static_cast<std::int64_t>(std::ceil(static_cast<double>(bytes) / d.bytes_per_cycle));
}

// Bytes occupied by n elements of `bits` bits.
inline std::int64_t bits_to_bytes(std::int64_t n, int bits) { return (n * bits + 7) / 8; }

}  // namespace npu
}  // namespace npuq
