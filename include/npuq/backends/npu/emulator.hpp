// The NPU tile emulator: a backend object that runs ops the way an NPU would and records what
// that costs.
//
//   npuq::npu::emulator emu(npuq::npu::presets::ethos_u55_256());
//   npuq::gemm(emu, params, a, b, bias, out);   // params.numerics must be the profile's
//   std::puts(emu.summary().c_str());
//
// Per tile: DMA the operands the previous tile did not already hold into the modeled buffers, run
// the array over the tile (exact int32 sums from the simd backend's kernels on views of the
// tile's operands, or from compute_tile when partial sums must be checked inside a K tile; then
// the profile's partial-sum and accumulator rules), and after the last K tile run the PPU (bias,
// requantization, clamp) and DMA the outputs out.
// Cycles, bytes and energy are charged per tile from closed forms (cost_model.hpp), never per
// MAC. When the integers cannot depend on the tiling (one K tile, or K tiles whose exact sums
// add up), the arithmetic runs once per band of whole output rows instead of once per tile (one
// simd call and one vector PPU pass per band) while every tile is still charged as above: small
// buffers (thousands of tiles) then cost little more than the simd backend. An emulator keeps its statistics in mutable members: it is not thread-safe, use one per
// thread.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "npuq/backends/npu/compute.hpp"
#include "npuq/backends/npu/cost_model.hpp"
#include "npuq/backends/npu/presets.hpp"
#include "npuq/backends/npu/ppu.hpp"
#include "npuq/backends/npu/profile.hpp"
#include "npuq/backends/npu/scalesim.hpp"
#include "npuq/backends/npu/stats.hpp"
#include "npuq/backends/npu/tiler.hpp"
#include "npuq/ops/output_stage.hpp"

namespace npuq {
namespace npu {

namespace detail {

// Adds v to an accumulator value under a width and overflow rule; flags a change from the exact sum.
inline std::int64_t add_under(const accumulator_spec& spec, std::int64_t prev, std::int64_t v, std::int64_t* events) {
  accumulator a(spec);
  a.add(prev);
  a.add(v);
  const std::int64_t r = a.result();
  if (r != prev + v) ++*events;
  return r;
}

inline bool same_numerics(const numerics_profile& a, const numerics_profile& b) {
  return a.format == b.format && a.mode == b.mode && a.acc.bits == b.acc.bits && a.acc.overflow == b.acc.overflow;
}

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

struct scratch {
  std::vector<std::int16_t> a, b;
  std::vector<std::int32_t> part, out;
  std::vector<std::int64_t> acc, bias;
  std::vector<requant_channel> rq;
  std::vector<std::int32_t> bias32;
  ppu_lanes lanes;
};

// Requantizes rows of accumulators (already reduced to the accumulator width) for one profile
// format and rounding fixed at compile time, then clamps to [st.lo, st.hi] counting the clamps.
template <multiplier_format F, rounding R>
void requantize_tile(const output_stage& st, const std::int64_t* v, std::int64_t rows, std::int64_t nt, const requant_channel* rq,
                     std::int32_t* out, numeric_counters* nc) {
  numerics_profile num = st.numerics;
  num.format = F;
  num.mode = R;
  const std::int32_t lo = st.lo, hi = st.hi, zp = st.zero_point;
  std::int64_t low = 0, high = 0;
  for (std::int64_t i = 0; i < rows; ++i) {
    const std::int64_t* vi = v + i * nt;
    std::int32_t* oi = out + i * nt;
    for (std::int64_t j = 0; j < nt; ++j) {
      std::int32_t o = requantize(num, vi[j], rq[j], zp, INT32_MIN, INT32_MAX);
      low += o < lo;
      high += o > hi;
      o = o < lo ? lo : o;
      oi[j] = o > hi ? hi : o;
    }
  }
  nc->clamped_low += low;
  nc->clamped_high += high;
}

inline void requantize_tile(const output_stage& st, const std::int64_t* v, std::int64_t rows, std::int64_t nt,
                            const requant_channel* rq, std::int32_t* out, numeric_counters* nc) {
  using mf = multiplier_format;
  const rounding r = st.numerics.mode;
  if (st.numerics.format == mf::q31) {
    switch (r) {
      case rounding::tflite_double: return requantize_tile<mf::q31, rounding::tflite_double>(st, v, rows, nt, rq, out, nc);
      case rounding::half_up: return requantize_tile<mf::q31, rounding::half_up>(st, v, rows, nt, rq, out, nc);
      case rounding::half_away: return requantize_tile<mf::q31, rounding::half_away>(st, v, rows, nt, rq, out, nc);
      case rounding::half_even: return requantize_tile<mf::q31, rounding::half_even>(st, v, rows, nt, rq, out, nc);
      case rounding::truncate: return requantize_tile<mf::q31, rounding::truncate>(st, v, rows, nt, rq, out, nc);
      case rounding::floor: return requantize_tile<mf::q31, rounding::floor>(st, v, rows, nt, rq, out, nc);
    }
  } else {
    switch (r) {
      case rounding::tflite_double: break;  // rejected by numerics_profile::validate
      case rounding::half_up: return requantize_tile<mf::fp32, rounding::half_up>(st, v, rows, nt, rq, out, nc);
      case rounding::half_away: return requantize_tile<mf::fp32, rounding::half_away>(st, v, rows, nt, rq, out, nc);
      case rounding::half_even: return requantize_tile<mf::fp32, rounding::half_even>(st, v, rows, nt, rq, out, nc);
      case rounding::truncate: return requantize_tile<mf::fp32, rounding::truncate>(st, v, rows, nt, rq, out, nc);
      case rounding::floor: return requantize_tile<mf::fp32, rounding::floor>(st, v, rows, nt, rq, out, nc);
    }
  }
  // Not reached for a valid profile; the generic form keeps the behaviour defined.
  for (std::int64_t e = 0; e < rows * nt; ++e) {
    std::int32_t o = requantize(st.numerics, v[e], rq[e % nt], st.zero_point, INT32_MIN, INT32_MAX);
    if (o < st.lo) {
      o = st.lo;
      ++nc->clamped_low;
    } else if (o > st.hi) {
      o = st.hi;
      ++nc->clamped_high;
    }
    out[e] = o;
  }
}

}  // namespace detail

class emulator {
 public:
  explicit emulator(profile p = presets::generic()) : prof_(std::move(p)), valid_(prof_.validate()), tiling_(tiling_profile(prof_)) {}

  static constexpr const char* name() { return "npu"; }
  const profile& config() const { return prof_; }
  // ok() when the profile is valid; otherwise every op returns this error and writes nothing.
  const status& profile_status() const { return valid_; }

  // One record per op executed since construction or reset().
  const std::vector<op_stats>& ops() const { return ops_; }
  const op_stats& last() const { return ops_.back(); }  // requires !ops().empty()
  op_stats totals() const {
    op_stats t;
    t.op = "total";
    t.instances = 0;
    for (const op_stats& o : ops_) t.add(o);
    return t;
  }
  void reset() { ops_.clear(); }

  std::string summary() const {
    return summarize("npu emulator " + prof_.describe() + "\n  numerics: " +
                         (prof_.fixed_numerics ? prof_.numerics.describe() + " (fixed by the profile)" : std::string("the op's own")),
                     ops_, prof_.clock_mhz);
  }
  // The totals on one line (summarize_line in stats.hpp).
  std::string summary_line() const { return summarize_line(prof_.name, ops_, prof_.clock_mhz); }
  void write_trace_csv(std::ostream& os) const { npu::write_trace_csv(os, ops_); }
  void write_trace_json(std::ostream& os) const { npu::write_trace_json(os, prof_.name, ops_); }

  // Checks that the op's output stage is one the profile implements; `host_requant` (optional)
  // is set when the profile's per-tensor PPU leaves per-channel requantization to the host.
  status check_stage(const char* op, const output_stage& st, bool* host_requant = nullptr) const {
    if (!valid_.ok()) return {valid_.code(), "npu: " + valid_.message()};
    if (prof_.fixed_numerics && !detail::same_numerics(prof_.numerics, st.numerics))
      return {errc::unsupported, std::string("numerics: ") + op + " asks for " + st.numerics.describe() + ", NPU profile " + prof_.name +
                                     " implements " + prof_.numerics.describe() +
                                     "; set params.numerics = emulator.config().numerics"};
    if (host_requant) *host_requant = false;
    if (!prof_.per_channel_requant && !st.raw) {
      for (const requant_channel& r : st.channel)
        if (r.multiplier != st.channel[0].multiplier || r.shift != st.channel[0].shift || r.scale != st.channel[0].scale) {
          if (prof_.per_channel_fallback == requant_fallback::host) {
            if (host_requant) *host_requant = true;
            break;
          }
          return {errc::unsupported, std::string("requant: ") + op + " has " + std::to_string(st.channel.size()) +
                                         " different per-channel multipliers, NPU profile " + prof_.name +
                                         " requantizes with one multiplier per op (per tensor) and " +
                                         "per_channel_fallback = error; set it to requant_fallback::host to requantize on the host"};
        }
    }
    return {};
  }

  // Runs an op described by `shape` whose operands `src` provides (see npu/gemm.hpp and
  // npu/conv2d.hpp for the interface). Used by the execute overloads.
  template <class Operands>
  status run(op_shape shape, const Operands& src, const output_stage& st) const {
    if (int4_weights_) shape.w_bits = 4;
    bool host_requant = false;
    NPUQ_RETURN_IF_ERROR(check_stage(shape.op, st, &host_requant));
    shape.acc_bits = st.numerics.acc.bits;
    if (host_requant) shape.out_bits = 32;  // int32 accumulators leave the NPU
    // cost_model::scalesim_v2 charges conv and GEMM layers as SCALE-Sim does (scalesim.hpp); the
    // arithmetic then runs on one tile of the unbounded tiling profile.
    scalesim_layer layer;
    std::int64_t layers = 0;
    const bool scalesim = prof_.costs == cost_model::scalesim_v2 &&
                          scalesim_layer_of(shape, detail::has_sparse_weights<Operands>::value, &layer, &layers) && layers > 0 &&
                          shape.M() > 0 && shape.N > 0;
    if (scalesim) {  // a valid op SCALE-Sim cannot describe (e.g. a dimension past 2^24): not modelled
      const status v = layer.validate();
      if (!v.ok()) return {errc::unsupported, std::string("npu: ") + shape.op + ": " + v.message()};
    }
    tile_plan plan;
    NPUQ_RETURN_IF_ERROR(plan_tiles(tiling_, shape, &plan));
    op_stats rec;
    rec.op = shape.op;
    rec.shape = src.shape_string();
    rec.tiling = describe(shape, plan);
    rec.instances = shape.instances;
    rec.macs = shape.macs();
    // An empty output (no instance, pixel or channel) is recorded and moves nothing; the tile
    // arithmetic below divides by its extents.
    if (shape.instances > 0 && shape.M() > 0 && shape.N > 0)
      NPUQ_RETURN_IF_ERROR(execute_plan(shape, plan, src, st, host_requant, &rec));
    if (scalesim) NPUQ_RETURN_IF_ERROR(scalesim_charge(prof_, layer, layers, &rec));
    ops_.push_back(std::move(rec));
    return {};
  }

  // Charges `rows` softmax rows of `depth` 8-bit elements streamed from DRAM through the
  // profile's softmax unit and back (three passes over each row, see softmax_unit_config), and
  // records them as one "softmax" op. The integers are computed by the caller.
  void charge_softmax(std::int64_t rows, std::int64_t depth, const std::string& shape) const {
    const std::int64_t n = rows * depth;
    const softmax_unit_config& u = prof_.softmax;
    tile_stats t;
    t.mt = rows;
    t.kt = depth;
    t.cycles.compute = static_cast<std::int64_t>(std::ceil(3.0 * static_cast<double>(n) / u.elements_per_cycle));
    const std::int64_t dma = prof_.dram.ideal ? 0
                                              : static_cast<std::int64_t>(std::ceil(2.0 * static_cast<double>(n) / prof_.dram.bytes_per_cycle)) +
                                                    2 * prof_.dram.latency_cycles;
    t.dma_in_cycles = t.dma_out_cycles = dma / 2;
    t.cycles.dma_stall = prof_.memory.double_buffer ? std::max<std::int64_t>(0, dma - t.cycles.compute) : dma;
    t.dram.input_read = n;
    t.dram.output_written = n;
    // The row is staged once (ifmap buffer, or the unified scratchpad, which the ifmap counters
    // stand for) and read by each pass; outputs are staged once and read by the DMA.
    const bool unified = prof_.memory.unified_bytes > 0;
    t.sram.ifmap.written += n;
    t.sram.ifmap.read += 3 * n;
    t.sram.ofmap.written += n;
    t.sram.ofmap.read += n;
    const double pj_in = unified ? prof_.pj_unified() : prof_.pj_ifmap();
    const double pj_out = prof_.memory.ofmap_bytes > 0 ? prof_.pj_ofmap() : pj_in;
    t.energy.sram = static_cast<double>(4 * n) * pj_in + static_cast<double>(2 * n) * pj_out;
    t.energy.dram = static_cast<double>(2 * n) * prof_.energy.dram_pj_per_byte;
    t.energy.ppu = static_cast<double>(3 * n) * u.pj_per_element;
    t.outputs = n;
    op_stats rec;
    rec.op = "softmax";
    rec.shape = shape;
    rec.tiling = std::string("rows streamed through the ") + to_string(u.exp) + " softmax unit, " +
                 detail::fmt("%g", u.elements_per_cycle) + " elements/cycle";
    rec.instances = 1;
    rec.add(t);
    rec.softmax_elements = n;
    if (prof_.record_tiles) rec.tiles.push_back(t);
    ops_.push_back(std::move(rec));
  }

  // Composite ops (attention): the records from index `first` on become one record named `op`
  // (totals added, tiles kept in order, plus the composite's own DRAM traffic between its steps
  // in `score_bytes`); `discard_from` drops them instead (an op that failed).
  void fuse_from(std::size_t first, const std::string& op, const std::string& shape, const std::string& tiling,
                 std::int64_t score_bytes = 0) const {
    if (first >= ops_.size()) return;
    op_stats rec;
    rec.op = op;
    rec.shape = shape;
    rec.tiling = tiling;
    rec.instances = 0;
    for (std::size_t i = first; i < ops_.size(); ++i) {
      rec.add(ops_[i]);
      rec.tiles.insert(rec.tiles.end(), ops_[i].tiles.begin(), ops_[i].tiles.end());
    }
    rec.instances = 1;
    rec.score_bytes += score_bytes;
    ops_.resize(first);
    ops_.push_back(std::move(rec));
  }
  // Adds a group-wise op's epilogue to the last record (npu/gemm_grouped.hpp): `scale_bytes` of
  // group scales read from DRAM with the weights, and `scale_ops` float scale multiply-adds in the
  // PPU, each charged like one PPU output.
  void charge_group_epilogue(std::int64_t scale_bytes, std::int64_t scale_ops) const {
    if (ops_.empty()) return;
    op_stats& r = ops_.back();
    r.dram.weight_read += scale_bytes;
    r.sram.weight.written += scale_bytes;
    r.energy.dram += static_cast<double>(scale_bytes) * prof_.energy.dram_pj_per_byte;
    r.energy.ppu += static_cast<double>(scale_ops) * prof_.energy.ppu_pj_per_output;
  }
  void discard_from(std::size_t first) const {
    if (first < ops_.size()) ops_.resize(first);
  }
  // Ops run while this is set are charged 4-bit weights (conv2d_int4 widens int4 weights to int8
  // for the arithmetic; the NPU still moves and stores nibbles). See set_int4_weights below.
  void int4_weights(bool on) const { int4_weights_ = on; }

 private:
  template <class Operands>
  status execute_plan(const op_shape& s, const tile_plan& plan, const Operands& src, const output_stage& st, bool host_requant,
                      op_stats* rec) const {
    const profile& P = prof_;
    const numerics_profile& num = st.numerics;
    detail::scratch& sc = scratch_;
    const std::int64_t kt_max = plan.kt(s);
    const std::int64_t M = s.M();
    const std::int64_t k_blocks = s.k_units > 0 ? ceil_div(s.k_units, plan.kc) : 1;

    // Partial sums inside the array are checked only when they can overflow.
    const std::int64_t max_product = src.max_abs_a() * src.max_abs_b();
    const std::int64_t fold_k = P.array.flow == dataflow::output_stationary ? kt_max : P.array.rows * P.array.depth;
    const bool psum_checked = P.array_psum.bits > 0 && (fold_k < kt_max ? fold_k : kt_max) * max_product >=
                                                              (std::int64_t{1} << (P.array_psum.bits - 1));
    const std::int64_t chunk = psum_checked ? fold_k : kt_max;
    // A tile whose partial sums are checked per fold, inside the K tile, needs the sum of each
    // fold: compute_tile on operands packed by the host. Otherwise one exact sum per tile: the
    // simd kernels on views of the tile's operands (src.tile_sums).
    const bool host_packed = chunk < kt_max;
    if (host_packed) {
      sc.a.resize(static_cast<std::size_t>(M * s.K() * (s.depthwise ? s.N / s.n_step : 1)));
      sc.b.resize(static_cast<std::size_t>(s.N * s.K()));
    }
    // When no sum of K products plus the bias can leave the accumulator, no accumulator rule
    // changes a sum: a saturating accumulator adds exactly, and the PPU skips the rule.
    const bool acc_safe = static_cast<double>(s.K()) * static_cast<double>(max_product) + static_cast<double>(src.max_abs_bias()) <
                          static_cast<double>(std::int64_t{1} << (num.acc.bits - 1));
    const bool sat_each = num.acc.overflow == overflow_rule::saturate_each_add && !acc_safe;
    const bool spill_narrow = P.memory.psums == psum_mode::spill && P.memory.spill_bits < num.acc.bits;

    // Banded arithmetic. When a tile's integers do not depend on where the K tiles split (one K
    // tile, or K tiles whose exact sums simply add up) and K is short enough for exact int32
    // sums, the outputs are computed for bands of whole output rows x all channels x all of K,
    // one simd call and one vector PPU pass per band, while the tiles below are only charged
    // (cycles, bytes, energy per tile, unchanged). Same integers, same numeric counters (every
    // rule applied after the sums is per element); far fewer calls when buffers are small.
    const bool banded = !host_packed && s.K() <= max_tile_k && (k_blocks == 1 || (!psum_checked && !sat_each && !spill_narrow));
    tile_plan band = plan;
    if (banded) {
      constexpr std::int64_t band_sums = std::int64_t{1} << 16;  // about 256 KiB of int32 sums per band
      band.nt = s.N;
      band.kc = s.k_units;
      const std::int64_t row = s.OW * (s.N > 0 ? s.N : 1);
      band.tw = s.OH > 1 ? s.OW : std::max<std::int64_t>(1, std::min<std::int64_t>(s.OW, band_sums / (s.N > 0 ? s.N : 1)));
      band.th = s.OH > 1 ? std::max<std::int64_t>(1, std::min<std::int64_t>(s.OH, band_sums / row)) : 1;
    }
    const std::int64_t plan_elems = plan.th * plan.tw * plan.nt, band_elems = band.th * band.tw * band.nt;
    sc.part.resize(static_cast<std::size_t>(banded && band_elems > plan_elems ? band_elems : plan_elems));
    sc.acc.resize(sc.part.size());
    sc.out.resize(sc.part.size());

    const int acc_bytes = (num.acc.bits + 7) / 8;
    const bool unified = P.memory.unified_bytes > 0;
    const double pj_in = unified ? P.pj_unified() : P.pj_ifmap(), pj_w = unified ? P.pj_unified() : P.pj_weight();
    const std::int64_t mpc = P.macs_per_cycle();
    status failed;

    // The integers of one tile (or band): MAC array (exact int32 sums per chunk, then the
    // profile's partial-sum and accumulator rules), spill, and after the last K tile the PPU and
    // the store.
    auto arith = [&](const tile_ref& t, bool first_k, bool last_k) {
      const std::int64_t mt = t.mt(), nt = t.nt, kt = t.kcn * s.k_unit;
      std::int64_t* acc = sc.acc.data();
      std::int32_t* part = sc.part.data();
      const std::int64_t groups = s.depthwise ? nt / s.n_step : 1, gcols = nt / groups;
      bool direct = false;  // the PPU reads the tile sums: one K tile, nothing to check or reduce
      if (!host_packed) {  // one chunk: the whole K tile
        const status ok = src.tile_sums(t, part);
        if (!ok.ok() && failed.ok()) failed = ok;
        direct = first_k && last_k && !psum_checked && !sat_each && acc_safe && ppu_direct(t, st, src, rec);
        if (!direct && !psum_checked && !sat_each) {
          if (first_k) {
            for (std::int64_t e = 0; e < mt * nt; ++e) acc[e] = part[e];
          } else {
            for (std::int64_t e = 0; e < mt * nt; ++e) acc[e] += part[e];
          }
        } else if (!direct) {
          if (first_k) std::fill(acc, acc + mt * nt, std::int64_t{0});
          for (std::int64_t e = 0; e < mt * nt; ++e) {
            std::int64_t v = part[e];
            if (psum_checked) v = detail::add_under(P.array_psum, 0, v, &rec->numerics.array_psum_overflows);
            acc[e] = sat_each ? detail::add_under(num.acc, acc[e], v, &rec->numerics.accumulator_overflows) : acc[e] + v;
          }
        }
      }
      if (host_packed && first_k) std::fill(acc, acc + mt * nt, std::int64_t{0});
      const std::int16_t* a_blk = host_packed ? sc.a.data() + M * t.kc0 * s.k_unit : nullptr;
      const std::int16_t* b_blk = host_packed ? sc.b.data() + s.N * t.kc0 * s.k_unit + t.n0 * kt : nullptr;
      for (std::int64_t k0 = 0; host_packed && k0 < kt; k0 += chunk) {
        const std::int64_t len = kt - k0 < chunk ? kt - k0 : chunk;
        for (std::int64_t g = 0; g < groups; ++g) {
          const std::int16_t* a_g = a_blk + (s.depthwise ? (t.n0 / s.n_step + g) * M * kt : 0);
          for (std::int64_t r = 0; r < t.th; ++r)  // one call per output row of the pixel rectangle
            compute_tile(a_g + ((t.oy0 + r) * s.OW + t.ox0) * kt + k0, kt, b_blk + g * gcols * kt + k0, kt, t.tw, gcols, len,
                         part + r * t.tw * nt + g * gcols, nt);
        }
        for (std::int64_t e = 0; e < mt * nt; ++e) {
          std::int64_t v = part[e];
          if (psum_checked) v = detail::add_under(P.array_psum, 0, v, &rec->numerics.array_psum_overflows);
          acc[e] = sat_each ? detail::add_under(num.acc, acc[e], v, &rec->numerics.accumulator_overflows) : acc[e] + v;
        }
      }
      if (spill_narrow && !last_k)
        for (std::int64_t e = 0; e < mt * nt; ++e) {
          const std::int64_t w = detail::add_under(num.acc, 0, acc[e], &rec->numerics.accumulator_overflows);
          acc[e] = detail::add_under({P.memory.spill_bits, overflow_rule::saturate_at_end}, 0, w, &rec->numerics.spill_saturations);
        }
      if (last_k && !direct) ppu(t, st, src, acc_safe, rec);
    };

    // What one tile costs, from closed forms (cost_model.hpp); the integers are arith's.
    // DMA reuse: what the buffers hold now.
    std::int64_t a_key[5] = {-1, -1, -1, -1, -1}, b_key[3] = {-1, -1, -1};
    std::vector<char> b_seen(plan.weights_resident ? static_cast<std::size_t>(ceil_div(s.N > 0 ? s.N : 1, plan.nt) * k_blocks) : 0);
    std::int64_t clock = 0, prev_busy = 0, prev_dma_out = 0;
    // Each tile is committed when the next one starts, so the last one can still be adjusted.
    tile_stats pending;
    bool has_pending = false;
    auto commit = [&] {
      pending.mac_slots = pending.cycles.total() * mpc;
      rec->add(pending);
      if (P.record_tiles) rec->tiles.push_back(pending);
    };
    auto account = [&](const tile_ref& t, bool first_k, bool last_k) {
      const std::int64_t mt = t.mt(), nt = t.nt, kt = t.kcn * s.k_unit;
      const std::int64_t groups = s.depthwise ? nt / s.n_step : 1;
      tile_stats ts;
      ts.instance = t.inst;
      ts.m0 = t.oy0 * s.OW + t.ox0;
      ts.mt = mt;
      ts.n0 = t.n0;
      ts.nt = nt;
      ts.k0 = t.kc0 * s.k_unit;
      ts.kt = kt;
      // DMA in.
      std::int64_t in_bytes = 0;
      const std::int64_t ak[5] = {t.inst, t.oy0, t.ox0, t.kc0, s.depthwise ? t.n0 : 0};
      if (!std::equal(ak, ak + 5, a_key)) {
        std::copy(ak, ak + 5, a_key);
        const std::int64_t bytes = ifmap_dram_bytes(s, t);
        ts.dram.input_read = bytes;
        ts.sram.ifmap.written = bytes;
        in_bytes += bytes;
      }
      // Sparse weights: compressed bytes, and with skip_macs a pass over the longest column only.
      detail::sparse_tile_info sp;
      bool sparse = false;
      if constexpr (detail::has_sparse_weights<Operands>::value) {
        sp = src.sparse_tile(t.n0, nt, ts.k0, kt, first_k);
        sparse = true;
      }
      const std::int64_t kt_pass = sparse && P.sparse_weights == sparse_mode::skip_macs ? sp.max_column : kt;
      const std::int64_t bk[3] = {src.b_instance(t.inst), t.n0, t.kc0};
      // Resident weights: each weight tile once per weight instance; otherwise whenever the tile
      // differs from the one the buffer holds.
      bool load_b = !std::equal(bk, bk + 3, b_key);
      if (plan.weights_resident && load_b) {
        if (bk[0] != b_key[0]) std::fill(b_seen.begin(), b_seen.end(), char{0});
        char& seen = b_seen[static_cast<std::size_t>((t.n0 / plan.nt) * k_blocks + (plan.kc > 0 ? t.kc0 / plan.kc : 0))];
        load_b = !seen;
        seen = 1;
      }
      std::copy(bk, bk + 3, b_key);
      if (load_b) {
        const std::int64_t bytes = sparse ? sp.bytes : bits_to_bytes(nt * kt, s.w_bits);
        ts.dram.weight_read = bytes;
        ts.sram.weight.written = bytes;
        in_bytes += bytes;
        if (src.has_bias() && first_k) {
          ts.dram.bias_read = 4 * nt;
          in_bytes += 4 * nt;
        }
      }
      // Analytic costs of the pass.
      const array_pass_cost pc = s.depthwise && !P.array.native_depthwise ? array_pass(P.array, mt, s.n_step, kt)
                                                                          : array_pass(P.array, mt, nt, kt_pass);
      const std::int64_t reps = s.depthwise && !P.array.native_depthwise ? groups : 1;
      ts.folds = pc.folds * reps;
      ts.cycles.compute = pc.compute * reps;
      ts.cycles.fill_drain = pc.fill_drain * reps;
      ts.mapping_sum = pc.mapping_sum * static_cast<double>(reps);
      ts.useful_macs = sparse ? mt * sp.stored : mt * nt * kt;
      ts.sram.ifmap.read = bits_to_bytes(pc.a_reads * reps, s.in_bits);
      ts.sram.weight.read = bits_to_bytes(pc.b_reads * reps, s.w_bits);
      if (sparse) {  // the array reads the compressed tile as often as it would read the dense one
        ts.absent_weight_macs = mt * nt * kt - ts.useful_macs;
        ts.skipped_macs = mt * nt * (kt - kt_pass);
        ts.sram.weight.read = nt * kt_pass > 0 ? static_cast<std::int64_t>(std::llround(static_cast<double>(pc.b_reads) *
                                                                                       static_cast<double>(sp.bytes) /
                                                                                       static_cast<double>(nt * kt_pass)))
                                               : 0;
      }
      const std::int64_t outs = mt * nt;
      if (P.memory.psums == psum_mode::accumulator) {
        ts.sram.accumulator.written = outs * acc_bytes;
        ts.sram.accumulator.read = (first_k ? 0 : outs * acc_bytes) + (last_k ? outs * acc_bytes : 0);
      } else {
        if (!last_k) ts.sram.ofmap.written += bits_to_bytes(outs, P.memory.spill_bits);
        if (!first_k) ts.sram.ofmap.read += bits_to_bytes(outs, P.memory.spill_bits);
      }
      // PPU and DMA out after the last K tile (s.out_bits is 32 when the host requantizes).
      std::int64_t out_bytes = 0;
      if (last_k) {
        out_bytes = bits_to_bytes(outs, s.out_bits);
        ts.outputs = outs;
        if (host_requant) ts.host_requantized = outs;
        ts.dram.output_written = out_bytes;
        if (P.memory.ofmap_bytes > 0) {
          ts.sram.ofmap.written += out_bytes;
          ts.sram.ofmap.read += out_bytes;
        }
      }
      // Timeline: DMA overlaps the previous tile's compute when double buffered.
      ts.dma_in_cycles = dma_cycles(P.dram, in_bytes);
      ts.dma_out_cycles = dma_cycles(P.dram, out_bytes);
      const std::int64_t wait = ts.dma_in_cycles + prev_dma_out;
      ts.cycles.dma_stall = P.memory.double_buffer ? (wait > prev_busy ? wait - prev_busy : 0) : wait;
      prev_busy = ts.cycles.compute + ts.cycles.fill_drain;
      prev_dma_out = ts.dma_out_cycles;
      // Energy of the tile's actions.
      ts.energy.mac = static_cast<double>(ts.useful_macs) * P.energy.mac_pj;
      ts.energy.sram = static_cast<double>(ts.sram.ifmap.read + ts.sram.ifmap.written) * pj_in +
                       static_cast<double>(ts.sram.weight.read + ts.sram.weight.written) * pj_w +
                       static_cast<double>(ts.sram.ofmap.read + ts.sram.ofmap.written) * P.pj_ofmap() +
                       static_cast<double>(ts.sram.accumulator.read + ts.sram.accumulator.written) * P.pj_accumulator();
      ts.energy.dram = static_cast<double>(ts.dram.total()) * P.energy.dram_pj_per_byte;
      ts.energy.ppu = static_cast<double>(ts.outputs) * P.energy.ppu_pj_per_output;
      ts.start_cycle = clock;
      clock += ts.cycles.total();
      if (has_pending) commit();
      pending = ts;
      has_pending = true;
    };

    // The host packs each operand once per instance (the DMA accounting above is separate): one
    // [pixels][kt] block of A and one [channels][kt] block of B per K tile, depthwise A as
    // [channels][pixels][taps].
    auto pack_whole = [&](std::int64_t inst, bool a_side) {
      for (std::int64_t kb = 0; kb < k_blocks; ++kb) {
        tile_ref w;
        w.inst = inst;
        w.th = s.OH;
        w.tw = s.OW;
        w.nt = s.N;
        w.kc0 = kb * plan.kc;
        w.kcn = s.k_units - w.kc0 < plan.kc ? s.k_units - w.kc0 : plan.kc;
        if (a_side) src.load_a(w, sc.a.data() + M * w.kc0 * s.k_unit);
        else src.load_b(w, sc.b.data() + s.N * w.kc0 * s.k_unit);
      }
    };
    const std::int64_t kunits = s.k_units;
    if (P.record_tiles)
      rec->tiles.reserve(static_cast<std::size_t>(s.instances * ceil_div(s.OH, plan.th) * ceil_div(s.OW, plan.tw) *
                                                  ceil_div(s.N > 0 ? s.N : 1, plan.nt) * k_blocks));
    std::int64_t packed_b = -1;
    for (std::int64_t inst = 0; inst < s.instances; ++inst) {
      if (host_packed) pack_whole(inst, true);
      if (host_packed && src.b_instance(inst) != packed_b) {
        packed_b = src.b_instance(inst);
        pack_whole(inst, false);
      }
      if (banded) {
        for (std::int64_t oy0 = 0; oy0 < s.OH; oy0 += band.th)
          for (std::int64_t ox0 = 0; ox0 < s.OW; ox0 += band.tw) {
            tile_ref b;
            b.inst = inst;
            b.oy0 = oy0;
            b.th = s.OH - oy0 < band.th ? s.OH - oy0 : band.th;
            b.ox0 = ox0;
            b.tw = s.OW - ox0 < band.tw ? s.OW - ox0 : band.tw;
            b.n0 = 0;
            b.nt = s.N;
            b.kc0 = 0;
            b.kcn = kunits;
            arith(b, true, true);
          }
      }
      auto run_mn = [&](std::int64_t oy0, std::int64_t ox0, std::int64_t n0) {
        tile_ref t;
        t.inst = inst;
        t.oy0 = oy0;
        t.th = s.OH - oy0 < plan.th ? s.OH - oy0 : plan.th;
        t.ox0 = ox0;
        t.tw = s.OW - ox0 < plan.tw ? s.OW - ox0 : plan.tw;
        t.n0 = n0;
        t.nt = s.N - n0 < plan.nt ? s.N - n0 : plan.nt;
        std::int64_t kc0 = 0;
        do {  // at least one K tile, so K = 0 still produces bias-only outputs
          t.kc0 = kc0;
          t.kcn = kunits - kc0 < plan.kc ? kunits - kc0 : plan.kc;
          const bool first_k = kc0 == 0, last_k = kc0 + plan.kc >= kunits;
          if (!banded) arith(t, first_k, last_k);
          account(t, first_k, last_k);
          kc0 += plan.kc;
        } while (kc0 < kunits);
      };
      if (plan.n_outer) {
        for (std::int64_t n0 = 0; n0 < s.N; n0 += plan.nt)
          for (std::int64_t oy0 = 0; oy0 < s.OH; oy0 += plan.th)
            for (std::int64_t ox0 = 0; ox0 < s.OW; ox0 += plan.tw) run_mn(oy0, ox0, n0);
      } else {
        for (std::int64_t oy0 = 0; oy0 < s.OH; oy0 += plan.th)
          for (std::int64_t ox0 = 0; ox0 < s.OW; ox0 += plan.tw)
            for (std::int64_t n0 = 0; n0 < s.N; n0 += plan.nt) run_mn(oy0, ox0, n0);
      }
    }
    // The last outputs leave after the last tile; SCALE-Sim counts one cycle less per layer.
    if (has_pending) {
      pending.cycles.dma_stall += pending.dma_out_cycles;
      if (P.array.kind == array_kind::systolic && pending.cycles.fill_drain > 0) pending.cycles.fill_drain -= 1;
      commit();
    }
    return failed;
  }

  // The PPU straight from a single K tile's int32 sums (accumulator known not to overflow), when
  // the output is raw or its contract has a vector path (ppu.hpp) here; false otherwise.
  template <class Operands>
  bool ppu_direct(const tile_ref& t, const output_stage& st, const Operands& src, op_stats* rec) const {
    const detail::ppu_kind kind = detail::ppu_kind_of(st.raw, st.numerics);
    if (kind == detail::ppu_kind::other || !detail::ppu_avx2_available()) return false;
    detail::scratch& sc = scratch_;
    const std::int64_t mt = t.mt(), nt = t.nt;
    sc.bias32.resize(static_cast<std::size_t>(nt));
    sc.lanes.resize(static_cast<std::size_t>(nt));
    for (std::int64_t j = 0; j < nt; ++j) {
      const std::int64_t ch = src.channel(t.inst, t.n0 + j);
      sc.bias32[static_cast<std::size_t>(j)] = src.has_bias() ? src.bias(ch) : 0;
      if (!st.raw) sc.lanes.set(static_cast<std::size_t>(j), st.at(ch));
    }
    numeric_counters& nc = rec->numerics;
    if (!detail::ppu_tile(kind, sc.part.data(), sc.bias32.data(), sc.lanes, mt, nt, st.numerics, st.zero_point, st.lo, st.hi,
                          sc.out.data(), &nc.max_abs_acc, &nc.clamped_low, &nc.clamped_high))
      return false;
    src.store(t, sc.out.data());
    return true;
  }

  // Bias, accumulator width, requantization and clamp for one finished (pixels x channels) tile,
  // then the store to the output tensor. The accumulator (with bias) is reduced in place, then
  // requantized a tile at a time with the profile's format and rounding fixed (requantize_tile).
  template <class Operands>
  void ppu(const tile_ref& t, const output_stage& st, const Operands& src, bool acc_safe, op_stats* rec) const {
    detail::scratch& sc = scratch_;
    const numerics_profile& num = st.numerics;
    const std::int64_t mt = t.mt(), nt = t.nt;
    numeric_counters& nc = rec->numerics;
    sc.bias.resize(static_cast<std::size_t>(nt));
    sc.rq.resize(static_cast<std::size_t>(nt));
    for (std::int64_t j = 0; j < nt; ++j) {
      const std::int64_t ch = src.channel(t.inst, t.n0 + j);
      sc.bias[static_cast<std::size_t>(j)] = src.has_bias() ? src.bias(ch) : 0;
      if (!st.raw) sc.rq[static_cast<std::size_t>(j)] = st.at(ch);
    }
    std::int64_t* acc = sc.acc.data();
    const std::int64_t* bias = sc.bias.data();
    std::int64_t max_abs = nc.max_abs_acc;
    for (std::int64_t i = 0; i < mt; ++i) {
      std::int64_t* ai = acc + i * nt;
      for (std::int64_t j = 0; j < nt; ++j) {
        const std::int64_t exact = ai[j] + bias[j];
        const std::int64_t mag = exact < 0 ? -exact : exact;
        max_abs = mag > max_abs ? mag : max_abs;
        ai[j] = exact;
      }
    }
    nc.max_abs_acc = max_abs;
    if (!acc_safe) {
      for (std::int64_t i = 0; i < mt; ++i)
        for (std::int64_t j = 0; j < nt; ++j) {
          std::int64_t& v = acc[i * nt + j];
          accumulator a(num.acc);
          a.add(v - bias[j]);
          if (src.has_bias()) a.add(bias[j]);
          const std::int64_t r = a.result();
          if (r != v) ++nc.accumulator_overflows;
          v = r;
        }
    }
    std::int32_t* out = sc.out.data();
    if (st.raw) {
      for (std::int64_t e = 0; e < mt * nt; ++e) out[e] = static_cast<std::int32_t>(acc[e]);
    } else {
      detail::requantize_tile(st, acc, mt, nt, sc.rq.data(), out, &nc);
    }
    src.store(t, out);
  }

  // The profile the tiler plans with: the emulator's own, or under cost_model::scalesim_v2 the
  // same with unbounded buffers (SCALE-Sim's SRAM sizes feed its stall model, not the schedule).
  static profile tiling_profile(const profile& p) {
    if (p.costs != cost_model::scalesim_v2) return p;
    profile t = p;
    const std::int64_t huge = std::int64_t{1} << 40;
    t.memory.ifmap_bytes = t.memory.weight_bytes = t.memory.ofmap_bytes = huge;
    return t;
  }

  profile prof_;
  status valid_;
  profile tiling_;
  mutable std::vector<op_stats> ops_;
  mutable bool int4_weights_ = false;
  mutable detail::scratch scratch_;
};

// conv2d_int4 / depthwise_conv2d_int4 (ops/conv2d_int4.hpp) call this through
// int4_weight_scope, so the emulator charges their weights as 4-bit values.
inline void set_int4_weights(const emulator& emu, bool on) { emu.int4_weights(on); }

}  // namespace npu
}  // namespace npuq
