// The NPU tile emulator: a backend object that runs ops the way an NPU would and records what
// that costs.
//
//   npuq::npu::emulator emu(npuq::npu::presets::ethos_u55_256());
//   npuq::gemm(emu, params, a, b, bias, out);   // params.numerics must be the profile's
//   std::puts(emu.summary().c_str());
//
// An op runs in three parts with one job each: the tiler plans the tiles (tiler.hpp); the
// numerics engine computes the integers tile by tile, or per band of tiles when the tiling cannot
// change them (numerics_engine.hpp); the cost accountant charges every tile of the plan its DMA
// bytes, cycles and energy from closed forms (cost_accountant.hpp, cost_model.hpp); the recorder
// keeps the op and tile records and prints them (recorder.hpp). Under cost_model::scalesim_v2
// conv and GEMM layers are then charged as SCALE-Sim v2 does (scalesim.hpp).
//
// This header holds the user API (the profile, the records, summaries and traces) and, apart
// from it, the hooks the backend's execute overloads call (emulator_hooks). Ops take every
// backend by const reference (one call shape for all backends), so an emulator's records and
// scratch are not part of its constness: only emulator_hooks writes them. An emulator is not
// thread-safe; use one per thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "npuq/backends/npu/cost_accountant.hpp"
#include "npuq/backends/npu/cost_model.hpp"
#include "npuq/backends/npu/numerics_engine.hpp"
#include "npuq/backends/npu/presets.hpp"
#include "npuq/backends/npu/profile.hpp"
#include "npuq/backends/npu/recorder.hpp"
#include "npuq/backends/npu/scalesim.hpp"
#include "npuq/backends/npu/stats.hpp"
#include "npuq/backends/npu/tiler.hpp"
#include "npuq/ops/output_stage.hpp"

namespace npuq {
namespace npu {

namespace detail {
inline bool same_numerics(const numerics_profile& a, const numerics_profile& b) {
  return a.format == b.format && a.mode == b.mode && a.acc.bits == b.acc.bits && a.acc.overflow == b.acc.overflow;
}
}  // namespace detail

class emulator_hooks;

class emulator {
 public:
  explicit emulator(profile p = presets::generic())
      : prof_(std::move(p)), valid_(prof_.validate()), tiling_(tiling_profile(prof_)), recorder_(prof_.record_tiles) {}

  static constexpr const char* name() { return "npu"; }
  const profile& config() const { return prof_; }
  // ok() when the profile is valid; otherwise every op returns this error and writes nothing.
  const status& profile_status() const { return valid_; }

  // One record per op executed since construction or reset().
  const std::vector<op_stats>& ops() const { return recorder_.ops(); }
  const op_stats& last() const { return recorder_.last(); }  // requires !ops().empty()
  op_stats totals() const { return recorder_.totals(); }
  void reset() { recorder_.clear(); }

  std::string summary() const {
    return recorder_.summary("npu emulator " + prof_.describe() + "\n  numerics: " +
                                 (prof_.fixed_numerics ? prof_.numerics.describe() + " (fixed by the profile)" : std::string("the op's own")),
                             prof_.clock_mhz);
  }
  // The totals on one line (summarize_line in stats.hpp).
  std::string summary_line() const { return recorder_.summary_line(prof_.name, prof_.clock_mhz); }
  void write_trace_csv(std::ostream& os) const { recorder_.write_trace_csv(os); }
  void write_trace_json(std::ostream& os) const { recorder_.write_trace_json(os, prof_.name); }

  // The backend hooks (see emulator_hooks), for the execute overloads of npu/*.hpp.
  emulator_hooks hooks() const;

 private:
  friend class emulator_hooks;

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
  // Written only through emulator_hooks (ops hold the backend by const reference).
  mutable recorder recorder_;
  mutable numerics_engine engine_;
  mutable bool int4_weights_ = false;
};

// What the execute overloads (npu/gemm.hpp, conv2d.hpp, gemm_sparse.hpp, gemm_grouped.hpp,
// softmax.hpp, attention.hpp) ask of an emulator: check an output stage, run a tiled op, charge
// the softmax unit and a group-wise epilogue, fuse or drop a composite op's records, mark int4
// weights. Not for users: they read the records through the emulator.
class emulator_hooks {
 public:
  explicit emulator_hooks(const emulator& e) : emu_(e), recorder_(e.recorder_), engine_(e.engine_), int4_weights_(e.int4_weights_) {}

  const profile& config() const { return emu_.prof_; }
  std::size_t op_count() const { return recorder_.size(); }

  // Checks that the op's output stage is one the profile implements; `host_requant` (optional)
  // is set when the profile's per-tensor PPU leaves per-channel requantization to the host.
  status check_stage(const char* op, const output_stage& st, bool* host_requant = nullptr) const {
    const profile& prof = emu_.prof_;
    if (!emu_.valid_.ok()) return {emu_.valid_.code(), "npu: " + emu_.valid_.message()};
    if (prof.fixed_numerics && !detail::same_numerics(prof.numerics, st.numerics))
      return {errc::unsupported, std::string("numerics: ") + op + " asks for " + st.numerics.describe() + ", NPU profile " + prof.name +
                                     " implements " + prof.numerics.describe() +
                                     "; set params.numerics = emulator.config().numerics"};
    if (host_requant) *host_requant = false;
    if (!prof.per_channel_requant && !st.raw) {
      for (const requant_channel& r : st.channel)
        if (r.multiplier != st.channel[0].multiplier || r.shift != st.channel[0].shift || r.scale != st.channel[0].scale) {
          if (prof.per_channel_fallback == requant_fallback::host) {
            if (host_requant) *host_requant = true;
            break;
          }
          return {errc::unsupported, std::string("requant: ") + op + " has " + std::to_string(st.channel.size()) +
                                         " different per-channel multipliers, NPU profile " + prof.name +
                                         " requantizes with one multiplier per op (per tensor) and " +
                                         "per_channel_fallback = error; set it to requant_fallback::host to requantize on the host"};
        }
    }
    return {};
  }

  // Runs an op described by `shape` whose operands `src` provides (see npu/gemm.hpp and
  // npu/conv2d.hpp for the interface): plan, compute, charge, record.
  template <class Operands>
  status run(op_shape shape, const Operands& src, const output_stage& st) {
    const profile& prof = emu_.prof_;
    if (int4_weights_) shape.w_bits = 4;
    bool host_requant = false;
    NPUQ_RETURN_IF_ERROR(check_stage(shape.op, st, &host_requant));
    shape.acc_bits = st.numerics.acc.bits;
    if (host_requant) shape.out_bits = 32;  // int32 accumulators leave the NPU
    // cost_model::scalesim_v2 charges conv and GEMM layers as SCALE-Sim does (scalesim.hpp); the
    // arithmetic then runs on one tile of the unbounded tiling profile.
    scalesim_layer layer;
    std::int64_t layers = 0;
    const bool scalesim = prof.costs == cost_model::scalesim_v2 &&
                          scalesim_layer_of(shape, detail::has_sparse_weights<Operands>::value, &layer, &layers) && layers > 0 &&
                          shape.M() > 0 && shape.N > 0;
    if (scalesim) {  // a valid op SCALE-Sim cannot describe (e.g. a dimension past 2^24): not modelled
      const status v = layer.validate();
      if (!v.ok()) return {errc::unsupported, std::string("npu: ") + shape.op + ": " + v.message()};
    }
    tile_plan plan;
    NPUQ_RETURN_IF_ERROR(plan_tiles(emu_.tiling_, shape, &plan));
    op_stats rec;
    rec.op = shape.op;
    rec.shape = src.shape_string();
    rec.tiling = describe(shape, plan);
    rec.instances = shape.instances;
    rec.macs = shape.macs();
    // An empty output (no instance, pixel or channel) is recorded and moves nothing; the tile
    // arithmetic divides by its extents.
    if (shape.instances > 0 && shape.M() > 0 && shape.N > 0) {
      NPUQ_RETURN_IF_ERROR(engine_.run(prof, shape, plan, src, st, &rec.numerics));
      cost_accountant<Operands>(prof, shape, plan, src, st.numerics.acc.bits, host_requant, recorder_, &rec).charge_all();
    }
    if (scalesim) NPUQ_RETURN_IF_ERROR(scalesim_charge(prof, layer, layers, &rec));
    recorder_.push(std::move(rec));
    return {};
  }

  // Records `rows` softmax rows of `depth` 8-bit elements through the profile's softmax unit as
  // one "softmax" op (softmax_cost). The integers are computed by the caller.
  void charge_softmax(std::int64_t rows, std::int64_t depth, const std::string& shape) {
    const softmax_unit_config& u = emu_.prof_.softmax;
    op_stats rec;
    rec.op = "softmax";
    rec.shape = shape;
    rec.tiling = std::string("rows streamed through the ") + to_string(u.exp) + " softmax unit, " +
                 detail::fmt("%g", u.elements_per_cycle) + " elements/cycle";
    rec.instances = 1;
    recorder_.add_tile(&rec, softmax_cost(emu_.prof_, rows, depth));
    rec.softmax_elements = rows * depth;
    recorder_.push(std::move(rec));
  }

  // Composite ops (attention): see recorder::fuse_from and recorder::discard_from.
  void fuse_from(std::size_t first, const std::string& op, const std::string& shape, const std::string& tiling,
                 std::int64_t score_bytes = 0) {
    recorder_.fuse_from(first, op, shape, tiling, score_bytes);
  }
  void discard_from(std::size_t first) { recorder_.discard_from(first); }
  // Adds a group-wise op's epilogue to the last record (charge_group_epilogue in
  // cost_accountant.hpp).
  void charge_group_epilogue(std::int64_t scale_bytes, std::int64_t scale_ops) {
    if (op_stats* r = recorder_.last_record()) npu::charge_group_epilogue(emu_.prof_, scale_bytes, scale_ops, r);
  }
  // Ops run while this is set are charged 4-bit weights (conv2d_int4 widens int4 weights to int8
  // for the arithmetic; the NPU still moves and stores nibbles). See set_int4_weights below.
  void int4_weights(bool on) { int4_weights_ = on; }

 private:
  const emulator& emu_;
  recorder& recorder_;  // the emulator's mutable parts
  numerics_engine& engine_;
  bool& int4_weights_;
};

inline emulator_hooks emulator::hooks() const { return emulator_hooks(*this); }

// conv2d_int4 / depthwise_conv2d_int4 (ops/conv2d_int4.hpp) call this through
// int4_weight_scope, so the emulator charges their weights as 4-bit values.
inline void set_int4_weights(const emulator& emu, bool on) { emu.hooks().int4_weights(on); }

}  // namespace npu
}  // namespace npuq
