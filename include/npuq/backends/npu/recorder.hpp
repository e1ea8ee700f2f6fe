// The NPU emulator's recorder: the op records (per-op totals and per-tile rows) an emulator has
// collected, and what is read from them: totals, the summary, CSV and JSON traces.
//
// It exists so that keeping statistics is one job with one owner: the numerics engine never sees
// a record, the cost accountant hands it finished tiles, and composite ops (attention, group-wise
// GEMM) edit records here (fuse, drop, add an epilogue) instead of reaching into the emulator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "npuq/backends/npu/stats.hpp"

namespace npuq {
namespace npu {

class recorder {
 public:
  // `keep_tiles`: keep every tile's record in its op's `tiles` (profile::record_tiles).
  explicit recorder(bool keep_tiles = true) : keep_tiles_(keep_tiles) {}

  // One record per op, in the order they ran.
  const std::vector<op_stats>& ops() const { return ops_; }
  const op_stats& last() const { return ops_.back(); }  // requires !ops().empty()
  std::size_t size() const { return ops_.size(); }
  op_stats totals() const {
    op_stats t;
    t.op = "total";
    t.instances = 0;
    for (const op_stats& o : ops_) t.add(o);
    return t;
  }
  void clear() { ops_.clear(); }

  // Adds a finished tile to the op record being built (and its row, when tiles are kept).
  void add_tile(op_stats* rec, const tile_stats& t) const {
    rec->add(t);
    if (keep_tiles_) rec->tiles.push_back(t);
  }
  // Room for `tiles` rows in a record about to receive them.
  void reserve_tiles(op_stats* rec, std::int64_t tiles) const {
    if (keep_tiles_) rec->tiles.reserve(static_cast<std::size_t>(tiles));
  }
  void push(op_stats rec) { ops_.push_back(std::move(rec)); }
  // The last record, for an epilogue charged after the op ran; null when there is none.
  op_stats* last_record() { return ops_.empty() ? nullptr : &ops_.back(); }

  // Composite ops (attention): the records from index `first` on become one record named `op`
  // (totals added, tiles kept in order, plus the composite's own DRAM traffic between its steps
  // in `score_bytes`).
  void fuse_from(std::size_t first, const std::string& op, const std::string& shape, const std::string& tiling, std::int64_t score_bytes) {
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
  // Drops the records from index `first` on (an op that failed after some of its steps ran).
  void discard_from(std::size_t first) {
    if (first < ops_.size()) ops_.resize(first);
  }

  // `header` names the NPU; see summarize / summarize_line / write_trace_* in stats.hpp.
  std::string summary(const std::string& header, double clock_mhz) const { return summarize(header, ops_, clock_mhz); }
  std::string summary_line(const std::string& profile_name, double clock_mhz) const {
    return summarize_line(profile_name, ops_, clock_mhz);
  }
  void write_trace_csv(std::ostream& os) const { npu::write_trace_csv(os, ops_); }
  void write_trace_json(std::ostream& os, const std::string& profile_name) const { npu::write_trace_json(os, profile_name, ops_); }

 private:
  bool keep_tiles_;
  std::vector<op_stats> ops_;
};

}  // namespace npu
}  // namespace npuq
