// The NPU emulator's cost accountant: what each tile of a plan costs the modelled NPU (DMA bytes
// with buffer reuse, cycles of the array and of DMA stalls on the timeline, SRAM traffic,
// energy), from the tiling and closed forms (cost_model.hpp), never from the integers.
//
// It exists so the costs are a pure function of (profile, op shape, tile plan, weight format):
// the numerics engine may compute the same outputs in bands of many tiles, and the accountant
// still charges every tile of the plan in the plan's order, handing each finished tile to the
// recorder. The softmax unit's and the group-wise epilogue's costs are here for the same reason.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "npuq/backends/npu/cost_model.hpp"
#include "npuq/backends/npu/profile.hpp"
#include "npuq/backends/npu/recorder.hpp"
#include "npuq/backends/npu/stats.hpp"
#include "npuq/backends/npu/tiler.hpp"

namespace npuq {
namespace npu {
namespace detail {

// What a sparse weight tile (channels [n0, n0 + nt), K range [k0, k0 + kt)) holds: the bytes the
// DMA moves for it (values plus metadata, as the format stores them), its stored entries, and the
// most entries any one of its channels stores (a lockstep pass with zero skipping takes that many
// K steps). Operands with sparse weights provide sparse_tile(n0, nt, k0, kt, first_k).
struct sparse_tile_info {
  std::int64_t bytes = 0, stored = 0, max_column = 0;
};
template <class T, class = void>
struct has_sparse_weights : std::false_type {};
template <class T>
struct has_sparse_weights<T, std::void_t<decltype(std::declval<const T&>().sparse_tile(std::int64_t{}, std::int64_t{}, std::int64_t{},
                                                                                        std::int64_t{}, true))>> : std::true_type {};

}  // namespace detail

// Charges the tiles of one op, in the plan's order, to an op record. The DMA keeps what the
// buffers hold (the last ifmap and weight tile, or with resident weights every weight tile of the
// instance) and overlaps the previous tile's compute when double buffered; a tile is handed to the
// recorder when the next one starts, so the last one can still take the final DMA out.
template <class Operands>
class cost_accountant {
 public:
  // `acc_bits`: the op's accumulator width (partial sums in the accumulator memory);
  // `host_requant`: outputs leave as int32 for the host (s.out_bits is then 32).
  cost_accountant(const profile& prof, const op_shape& s, const tile_plan& plan, const Operands& src, int acc_bits, bool host_requant,
                  const recorder& sink, op_stats* rec)
      : P_(prof),
        s_(s),
        plan_(plan),
        src_(src),
        sink_(sink),
        rec_(rec),
        host_requant_(host_requant),
        acc_bytes_((acc_bits + 7) / 8),
        k_blocks_(k_tile_count(s, plan)),
        mpc_(prof.macs_per_cycle()) {
    const bool unified = P_.memory.unified_bytes > 0;
    pj_in_ = unified ? P_.pj_unified() : P_.pj_ifmap();
    pj_w_ = unified ? P_.pj_unified() : P_.pj_weight();
    if (plan.weights_resident) b_seen_.assign(static_cast<std::size_t>(ceil_div(s.N > 0 ? s.N : 1, plan.nt) * k_blocks_), char{0});
  }

  // Every tile of every instance, then the end of the op.
  void charge_all() {
    sink_.reserve_tiles(rec_, s_.instances * ceil_div(s_.OH, plan_.th) * ceil_div(s_.OW, plan_.tw) *
                                  ceil_div(s_.N > 0 ? s_.N : 1, plan_.nt) * k_blocks_);
    for (std::int64_t inst = 0; inst < s_.instances; ++inst)
      for_each_tile(s_, plan_, inst, [this](const tile_ref& t, bool first_k, bool last_k) { charge(t, first_k, last_k); });
    finish();
  }

 private:
  void charge(const tile_ref& t, bool first_k, bool last_k) {
    tile_stats ts;
    ts.instance = t.inst;
    ts.m0 = t.oy0 * s_.OW + t.ox0;
    ts.mt = t.mt();
    ts.n0 = t.n0;
    ts.nt = t.nt;
    ts.k0 = t.kc0 * s_.k_unit;
    ts.kt = t.kcn * s_.k_unit;
    detail::sparse_tile_info sp;
    if constexpr (detail::has_sparse_weights<Operands>::value) sp = src_.sparse_tile(t.n0, ts.nt, ts.k0, ts.kt, first_k);
    const std::int64_t in_bytes = dma_in(t, first_k, sp, &ts);
    array_work(sp, &ts);
    buffer_traffic(first_k, last_k, &ts);
    const std::int64_t out_bytes = last_k ? bits_to_bytes(ts.mt * ts.nt, s_.out_bits) : 0;
    timeline(in_bytes, out_bytes, &ts);
    energy(&ts);
    if (has_pending_) commit();
    pending_ = ts;
    has_pending_ = true;
  }

  // DMA in: the ifmap tile unless the buffer holds it, the weight tile (and on the first K tile
  // the bias) unless held or resident. Returns the bytes moved.
  std::int64_t dma_in(const tile_ref& t, bool first_k, const detail::sparse_tile_info& sp, tile_stats* ts) {
    std::int64_t in_bytes = 0;
    const std::int64_t ak[5] = {t.inst, t.oy0, t.ox0, t.kc0, s_.depthwise ? t.n0 : 0};
    if (!std::equal(ak, ak + 5, a_key_)) {
      std::copy(ak, ak + 5, a_key_);
      const std::int64_t bytes = ifmap_dram_bytes(s_, t);
      ts->dram.input_read = bytes;
      ts->sram.ifmap.written = bytes;
      in_bytes += bytes;
    }
    const std::int64_t bk[3] = {src_.b_instance(t.inst), t.n0, t.kc0};
    // Resident weights: each weight tile once per weight instance; otherwise whenever the tile
    // differs from the one the buffer holds.
    bool load_b = !std::equal(bk, bk + 3, b_key_);
    if (plan_.weights_resident && load_b) {
      if (bk[0] != b_key_[0]) std::fill(b_seen_.begin(), b_seen_.end(), char{0});
      char& seen = b_seen_[static_cast<std::size_t>((t.n0 / plan_.nt) * k_blocks_ + (plan_.kc > 0 ? t.kc0 / plan_.kc : 0))];
      load_b = !seen;
      seen = 1;
    }
    std::copy(bk, bk + 3, b_key_);
    if (load_b) {
      const std::int64_t bytes = detail::has_sparse_weights<Operands>::value ? sp.bytes : bits_to_bytes(ts->nt * ts->kt, s_.w_bits);
      ts->dram.weight_read = bytes;
      ts->sram.weight.written = bytes;
      in_bytes += bytes;
      if (src_.has_bias() && first_k) {
        ts->dram.bias_read = 4 * ts->nt;
        in_bytes += 4 * ts->nt;
      }
    }
    return in_bytes;
  }

  // The array's pass over the tile (closed forms of cost_model.hpp); sparse weights: compressed
  // bytes, and with skip_macs a pass over the longest column only.
  void array_work(const detail::sparse_tile_info& sp, tile_stats* ts) const {
    constexpr bool sparse = detail::has_sparse_weights<Operands>::value;
    const std::int64_t mt = ts->mt, nt = ts->nt, kt = ts->kt;
    const std::int64_t kt_pass = sparse && P_.sparse_weights == sparse_mode::skip_macs ? sp.max_column : kt;
    const bool per_group = s_.depthwise && !P_.array.native_depthwise;
    const array_pass_cost pc = per_group ? array_pass(P_.array, mt, s_.n_step, kt) : array_pass(P_.array, mt, nt, kt_pass);
    const std::int64_t reps = per_group ? nt / s_.n_step : 1;
    ts->folds = pc.folds * reps;
    ts->cycles.compute = pc.compute * reps;
    ts->cycles.fill_drain = pc.fill_drain * reps;
    ts->mapping_sum = pc.mapping_sum * static_cast<double>(reps);
    ts->useful_macs = sparse ? mt * sp.stored : mt * nt * kt;
    ts->sram.ifmap.read = bits_to_bytes(pc.a_reads * reps, s_.in_bits);
    ts->sram.weight.read = bits_to_bytes(pc.b_reads * reps, s_.w_bits);
    if (sparse) {  // the array reads the compressed tile as often as it would read the dense one
      ts->absent_weight_macs = mt * nt * kt - ts->useful_macs;
      ts->skipped_macs = mt * nt * (kt - kt_pass);
      ts->sram.weight.read = nt * kt_pass > 0 ? static_cast<std::int64_t>(std::llround(static_cast<double>(pc.b_reads) *
                                                                                        static_cast<double>(sp.bytes) /
                                                                                        static_cast<double>(nt * kt_pass)))
                                              : 0;
    }
  }

  // Partial sums between K tiles, and after the last K tile the PPU's outputs and their DMA out.
  void buffer_traffic(bool first_k, bool last_k, tile_stats* ts) const {
    const std::int64_t outs = ts->mt * ts->nt;
    if (P_.memory.psums == psum_mode::accumulator) {
      ts->sram.accumulator.written = outs * acc_bytes_;
      ts->sram.accumulator.read = (first_k ? 0 : outs * acc_bytes_) + (last_k ? outs * acc_bytes_ : 0);
    } else {
      if (!last_k) ts->sram.ofmap.written += bits_to_bytes(outs, P_.memory.spill_bits);
      if (!first_k) ts->sram.ofmap.read += bits_to_bytes(outs, P_.memory.spill_bits);
    }
    if (!last_k) return;
    const std::int64_t out_bytes = bits_to_bytes(outs, s_.out_bits);
    ts->outputs = outs;
    if (host_requant_) ts->host_requantized = outs;
    ts->dram.output_written = out_bytes;
    if (P_.memory.ofmap_bytes > 0) {
      ts->sram.ofmap.written += out_bytes;
      ts->sram.ofmap.read += out_bytes;
    }
  }

  // DMA overlaps the previous tile's compute when double buffered.
  void timeline(std::int64_t in_bytes, std::int64_t out_bytes, tile_stats* ts) {
    ts->dma_in_cycles = dma_cycles(P_.dram, in_bytes);
    ts->dma_out_cycles = dma_cycles(P_.dram, out_bytes);
    const std::int64_t wait = ts->dma_in_cycles + prev_dma_out_;
    ts->cycles.dma_stall = P_.memory.double_buffer ? (wait > prev_busy_ ? wait - prev_busy_ : 0) : wait;
    prev_busy_ = ts->cycles.compute + ts->cycles.fill_drain;
    prev_dma_out_ = ts->dma_out_cycles;
    ts->start_cycle = clock_;
    clock_ += ts->cycles.total();
  }

  void energy(tile_stats* ts) const {
    ts->energy.mac = static_cast<double>(ts->useful_macs) * P_.energy.mac_pj;
    ts->energy.sram = static_cast<double>(ts->sram.ifmap.read + ts->sram.ifmap.written) * pj_in_ +
                      static_cast<double>(ts->sram.weight.read + ts->sram.weight.written) * pj_w_ +
                      static_cast<double>(ts->sram.ofmap.read + ts->sram.ofmap.written) * P_.pj_ofmap() +
                      static_cast<double>(ts->sram.accumulator.read + ts->sram.accumulator.written) * P_.pj_accumulator();
    ts->energy.dram = static_cast<double>(ts->dram.total()) * P_.energy.dram_pj_per_byte;
    ts->energy.ppu = static_cast<double>(ts->outputs) * P_.energy.ppu_pj_per_output;
  }

  void commit() {
    pending_.mac_slots = pending_.cycles.total() * mpc_;
    sink_.add_tile(rec_, pending_);
  }

  // The last outputs leave after the last tile; SCALE-Sim counts one cycle less per layer.
  void finish() {
    if (!has_pending_) return;
    pending_.cycles.dma_stall += pending_.dma_out_cycles;
    if (P_.array.kind == array_kind::systolic && pending_.cycles.fill_drain > 0) pending_.cycles.fill_drain -= 1;
    commit();
    has_pending_ = false;
  }

  const profile& P_;
  const op_shape& s_;
  const tile_plan& plan_;
  const Operands& src_;
  const recorder& sink_;
  op_stats* rec_;
  bool host_requant_;
  int acc_bytes_;
  std::int64_t k_blocks_, mpc_;
  double pj_in_ = 0, pj_w_ = 0;
  // What the buffers hold now.
  std::int64_t a_key_[5] = {-1, -1, -1, -1, -1}, b_key_[3] = {-1, -1, -1};
  std::vector<char> b_seen_;
  std::int64_t clock_ = 0, prev_busy_ = 0, prev_dma_out_ = 0;
  tile_stats pending_;
  bool has_pending_ = false;
};

// The cost of `rows` softmax rows of `depth` 8-bit elements streamed from DRAM through the
// profile's softmax unit and back (three passes over each row, see softmax_unit_config), as one
// tile.
inline tile_stats softmax_cost(const profile& p, std::int64_t rows, std::int64_t depth) {
  const std::int64_t n = rows * depth;
  const softmax_unit_config& u = p.softmax;
  tile_stats t;
  t.mt = rows;
  t.kt = depth;
  t.cycles.compute = static_cast<std::int64_t>(std::ceil(3.0 * static_cast<double>(n) / u.elements_per_cycle));
  const std::int64_t dma = p.dram.ideal ? 0
                                        : static_cast<std::int64_t>(std::ceil(2.0 * static_cast<double>(n) / p.dram.bytes_per_cycle)) +
                                              2 * p.dram.latency_cycles;
  t.dma_in_cycles = t.dma_out_cycles = dma / 2;
  t.cycles.dma_stall = p.memory.double_buffer ? std::max<std::int64_t>(0, dma - t.cycles.compute) : dma;
  t.dram.input_read = n;
  t.dram.output_written = n;
  // The row is staged once (ifmap buffer, or the unified scratchpad, which the ifmap counters
  // stand for) and read by each pass; outputs are staged once and read by the DMA.
  const bool unified = p.memory.unified_bytes > 0;
  t.sram.ifmap.written += n;
  t.sram.ifmap.read += 3 * n;
  t.sram.ofmap.written += n;
  t.sram.ofmap.read += n;
  const double pj_in = unified ? p.pj_unified() : p.pj_ifmap();
  const double pj_out = p.memory.ofmap_bytes > 0 ? p.pj_ofmap() : pj_in;
  t.energy.sram = static_cast<double>(4 * n) * pj_in + static_cast<double>(2 * n) * pj_out;
  t.energy.dram = static_cast<double>(2 * n) * p.energy.dram_pj_per_byte;
  t.energy.ppu = static_cast<double>(3 * n) * u.pj_per_element;
  t.outputs = n;
  return t;
}

// A group-wise op's epilogue added to its record (npu/gemm_grouped.hpp): `scale_bytes` of group
// scales read from DRAM with the weights, and `scale_ops` float scale multiply-adds in the PPU,
// each charged like one PPU output.
inline void charge_group_epilogue(const profile& p, std::int64_t scale_bytes, std::int64_t scale_ops, op_stats* r) {
  r->dram.weight_read += scale_bytes;
  r->sram.weight.written += scale_bytes;
  r->energy.dram += static_cast<double>(scale_bytes) * p.energy.dram_pj_per_byte;
  r->energy.ppu += static_cast<double>(scale_ops) * p.energy.ppu_pj_per_output;
}

}  // namespace npu
}  // namespace npuq
