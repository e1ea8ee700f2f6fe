// SCALE-Sim v2's performance model of one layer, reproduced exactly (presets::scalesim_compat).
//
// Users compare NPU designs with SCALE-Sim v2 (scalesim-project/scale-sim-v2) and expect the
// same figures from npuq for the same config. The closed forms in cost_model.hpp give its
// compute cycles only; its stall cycles and DRAM counts come from a line-by-line memory model
// whose outcome depends on the exact order of operand addresses. This header re-derives that
// model from SCALE-Sim's published behaviour (no code of it is copied) and runs it in C++:
//
// - The layer is the whole im2col GEMM with SCALE-Sim's output size ceil((H - R + S) / S) (no
//   padding); window taps past the input edge are empty requests. The GEMM input (M, N, K) is the
//   conv (ifmap M x K, filter 1 x K, N filters, stride 1).
// - Each fold of the (Sr, Sc, T) mapping streams a block of demand lines (one per cycle) to the
//   ifmap, filter and ofmap SRAMs: skewed operand streams, the stationary operand loaded in
//   reverse row order, fill and drain gaps of empty requests, as SCALE-Sim builds them.
// - Read SRAMs (InterfaceBandwidth CALC): never stall; DRAM reads are the addresses that miss,
//   where the buffer is tracked in 100 sets of floor(bytes / 100) distinct addresses and an
//   address hits when it is in a completed set of the current active window.
// - Ofmap SRAM: a double buffer draining half its size to DRAM at `cols` words per cycle; a
//   request that finds it full waits for the drain, and the wait is a stall cycle.
// - Reported figures: total cycles (index of the last ofmap write), stall cycles, overall and
//   compute utilisation, mapping efficiency (means over folds, summed in fold order), SRAM and
//   DRAM counts per operand, with SCALE-Sim's own counting conventions (e.g. OS adds rows + cols
//   ofmap writes per fold; drained partial DRAM lines count as full ones except the last).
//
// - InterfaceBandwidth USER (scalesim_config::user_bandwidth): the read SRAMs follow each
//   operand's prefetch order in 100ths of the buffer and stall until a missing set is fetched;
//   the ofmap drains at the user bandwidth.
// Not modelled: traces and start/stop cycles. tests/test_npu_scalesim.cpp checks every figure against SCALE-Sim's own
// reports in tests/data/scalesim/vectors.csv.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "npuq/backends/npu/profile.hpp"
#include "npuq/backends/npu/stats.hpp"
#include "npuq/backends/npu/tiler.hpp"
#include "npuq/core/status.hpp"

namespace npuq {
namespace npu {

// A layer as SCALE-Sim's topology file gives it.
struct scalesim_layer {
  std::int64_t ifmap_h = 1, ifmap_w = 1, filt_h = 1, filt_w = 1, channels = 1, filters = 1, stride_h = 1, stride_w = 1;

  // A GEMM row of an mnk topology file, mapped as SCALE-Sim maps it.
  static scalesim_layer gemm(std::int64_t M, std::int64_t N, std::int64_t K) { return {M, K, 1, K, 1, N, 1, 1}; }
  std::int64_t ofmap_h() const { return (ifmap_h - filt_h + stride_h + stride_h - 1) / stride_h; }
  std::int64_t ofmap_w() const { return (ifmap_w - filt_w + stride_w + stride_w - 1) / stride_w; }
  std::int64_t window() const { return filt_h * filt_w * channels; }
  std::int64_t ofmap_pixels() const { return ofmap_h() * ofmap_w(); }
  // SCALE-Sim's MAC count ("num_compute"), on its (possibly larger) output grid.
  std::int64_t macs() const { return ofmap_pixels() * filters * window(); }

  status validate() const {
    const std::int64_t v[] = {ifmap_h, ifmap_w, filt_h, filt_w, channels, filters, stride_h, stride_w};
    for (std::int64_t x : v)
      if (x < 1 || x > (std::int64_t{1} << 24)) return {errc::invalid_argument, "scalesim: layer dimensions must be in [1, 2^24]"};
    if (filt_h > ifmap_h || filt_w > ifmap_w)
      return {errc::invalid_argument, "scalesim: filter " + std::to_string(filt_h) + "x" + std::to_string(filt_w) +
                                          " is larger than the ifmap " + std::to_string(ifmap_h) + "x" + std::to_string(ifmap_w)};
    if (ofmap_pixels() * window() > (std::int64_t{1} << 40) || window() * filters > (std::int64_t{1} << 28) ||
        static_cast<std::int64_t>(ifmap_h) * ifmap_w * channels > (std::int64_t{1} << 28))
      return {errc::invalid_argument, "scalesim: layer too large to simulate"};
    return {};
  }
};

// A SCALE-Sim config: array, dataflow and SRAM sizes in bytes (its config file gives KiB).
struct scalesim_config {
  std::int64_t rows = 32, cols = 32;
  dataflow flow = dataflow::output_stationary;
  std::int64_t ifmap_sram_bytes = 64 * 1024, filter_sram_bytes = 64 * 1024, ofmap_sram_bytes = 64 * 1024;
  // InterfaceBandwidth USER with this DRAM bandwidth in words per cycle; 0: CALC (SCALE-Sim
  // estimates the bandwidth; reads never stall, the ofmap drains `cols` words per cycle).
  std::int64_t user_bandwidth = 0;
};

namespace detail {

// A small row-major block of addresses (-1: no request).
struct addr_block {
  std::int64_t rows = 0, cols = 0;
  std::vector<std::int64_t> v;
  addr_block() = default;
  addr_block(std::int64_t r, std::int64_t c) : rows(r), cols(c), v(static_cast<std::size_t>(r * c), -1) {}
  std::int64_t& at(std::int64_t r, std::int64_t c) { return v[static_cast<std::size_t>(r * cols + c)]; }
  std::int64_t at(std::int64_t r, std::int64_t c) const { return v[static_cast<std::size_t>(r * cols + c)]; }
};

// A fold's demand block of `width` columns: `body` (rows x used columns, the rest empty) placed
// after `prefix` empty rows and before `suffix` empty rows, optionally flipped upside down
// (stationary operands) and skewed (column c delayed by c cycles).
template <class Body>
addr_block demand_block(std::int64_t width, std::int64_t body_rows, std::int64_t pad_rows, std::int64_t used_cols, bool flip,
                        std::int64_t prefix, std::int64_t suffix, bool skew, Body body) {
  const std::int64_t rows = prefix + pad_rows + suffix;
  addr_block out(rows + (skew ? width - 1 : 0), width);
  for (std::int64_t r = 0; r < body_rows; ++r) {
    const std::int64_t rr = prefix + (flip ? pad_rows - 1 - r : r);
    for (std::int64_t c = 0; c < used_cols; ++c) out.at(rr + (skew ? c : 0), c) = body(r, c);
  }
  return out;
}

// A read SRAM in SCALE-Sim's bandwidth-estimation mode: stall-free; counts the DRAM reads.
class scalesim_read_buffer {
 public:
  scalesim_read_buffer(std::int64_t bytes, std::int64_t address_space)
      : per_set_(bytes / 100), last_set_(static_cast<std::size_t>(address_space), -1) {}
  void request(std::int64_t addr) {
    std::int64_t& last = last_set_[static_cast<std::size_t>(addr)];
    // A hit in a completed set of the active window, or already in the set being filled.
    if (last >= window_start_) return;
    last = set_id_;
    ++dram_reads_;
    if (++in_set_ == per_set_) {
      in_set_ = 0;
      if (++set_id_ == window_end_) {  // the active window moves on by the prefetch half
        window_start_ += kPrefetchSets;
        window_end_ += kPrefetchSets;
      }
    }
  }
  // A demand line at `cycle`: CALC-mode reads never wait.
  std::int64_t read_line(const std::int64_t* addrs, std::int64_t n, std::int64_t) {
    for (std::int64_t i = 0; i < n; ++i)
      if (addrs[i] >= 0) request(addrs[i]);
    return 0;
  }
  std::int64_t dram_reads() const { return dram_reads_; }

 private:
  static constexpr std::int64_t kActiveSets = 50, kPrefetchSets = 50;  // active fraction 0.5 of 100 sets
  std::int64_t per_set_;
  std::vector<std::int64_t> last_set_;  // per address: the set it was last added to
  std::int64_t set_id_ = 0, in_set_ = 0, window_start_ = 0, window_end_ = kActiveSets;
  std::int64_t dram_reads_ = 0;
};

// A read SRAM in USER-bandwidth mode: the operand's prefetch order (`stream`, -1 for padding)
// is cut into 100ths of the buffer (sets of ceil(bytes / 100) requests); the active half holds a
// window of sets, and a request outside it waits for the window to advance by the prefetch half,
// each advance a DRAM burst of ceil(prefetch bytes / bw) lines of `bw` words (counted in full).
class scalesim_user_read_buffer {
 public:
  scalesim_user_read_buffer(std::int64_t bytes, std::int64_t bw, const std::vector<std::int64_t>& stream, std::int64_t address_space)
      : bw_(bw), active_(bytes - bytes / 2), prefetch_(bytes / 2) {
    const std::int64_t per_set = (bytes + 99) / 100;
    std::int64_t n = 0;
    first_.assign(static_cast<std::size_t>(address_space + 1), 0);
    for (std::int64_t a : stream)
      if (a >= 0) ++first_[static_cast<std::size_t>(a + 1)];
    for (std::size_t i = 1; i < first_.size(); ++i) first_[i] += first_[i - 1];
    sets_.resize(static_cast<std::size_t>(first_.back()));
    std::vector<std::int64_t> fill(first_.begin(), first_.end() - 1);
    for (std::int64_t a : stream)
      if (a >= 0) sets_[static_cast<std::size_t>(fill[static_cast<std::size_t>(a)]++)] = n++ / per_set;
    num_sets_ = n / per_set + 1;
    fetch_lines_ = (static_cast<std::int64_t>(stream.size()) + bw - 1) / bw;
    num_active_ = std::min(num_sets_, (active_ + per_set - 1) / per_set);
    num_prefetch_ = std::min(num_sets_ - num_active_, (prefetch_ + per_set - 1) / per_set);
  }
  // A demand line issued at `cycle`; returns the cycles it waited.
  status read_line(const std::int64_t* addrs, std::int64_t n, std::int64_t cycle, std::int64_t* wait) {
    if (!started_) {  // the active half is filled before the first request
      started_ = true;
      dram_reads_ += std::min((active_ + bw_ - 1) / bw_, fetch_lines_) * bw_;
      last_fetch_ = cycle - 1;
      end_ = num_active_;
    }
    std::int64_t offset = 1;  // hit latency
    for (std::int64_t i = 0; i < n; ++i) {
      if (addrs[i] < 0) continue;
      for (std::int64_t tries = 0; !hit(addrs[i]); ++tries) {
        if (tries > num_sets_)
          return {errc::unsupported, "scalesim: address " + std::to_string(addrs[i]) +
                                         " never enters the read buffer (SCALE-Sim would not terminate)"};
        start_ = (start_ + num_prefetch_) % num_sets_;
        end_ = (start_ + num_active_) % num_sets_;
        const std::int64_t lines = (prefetch_ + bw_ - 1) / bw_;
        dram_reads_ += lines * bw_;
        last_fetch_ += lines + 1;
        if (last_fetch_ - (cycle + offset) > 0) offset = last_fetch_ - cycle;
      }
    }
    *wait = offset - 1;
    return {};
  }
  std::int64_t dram_reads() const { return dram_reads_; }

 private:
  bool in_sets(std::int64_t addr, std::int64_t lo, std::int64_t hi) const {  // a set id in [lo, hi)
    const auto b = sets_.begin() + first_[static_cast<std::size_t>(addr)], e = sets_.begin() + first_[static_cast<std::size_t>(addr) + 1];
    const auto it = std::lower_bound(b, e, lo);
    return it != e && *it < hi;
  }
  bool hit(std::int64_t addr) const {
    if (start_ < end_) return in_sets(addr, start_, end_);
    return in_sets(addr, start_, num_sets_) || in_sets(addr, 0, end_);
  }

  std::int64_t bw_, active_, prefetch_;
  std::vector<std::int64_t> first_, sets_;  // per address, its set ids (ascending) in sets_[first_[a], first_[a + 1])
  std::int64_t num_sets_ = 0, fetch_lines_ = 0, num_active_ = 0, num_prefetch_ = 0;
  bool started_ = false;
  std::int64_t start_ = 0, end_ = 0, last_fetch_ = 0, dram_reads_ = 0;
};

// The ofmap SRAM: double buffer drained to DRAM `bw` words per cycle.
class scalesim_write_buffer {
 public:
  scalesim_write_buffer(std::int64_t bytes, std::int64_t bw)
      : total_(bytes), drain_size_(bytes - (bytes + 1) / 2), bw_(bw), free_(bytes) {}

  // Writes one demand line issued at `cycle`; returns the cycles it waited.
  std::int64_t write_line(const std::int64_t* addrs, std::int64_t n, std::int64_t cycle) {
    std::int64_t offset = 0, now = cycle;
    for (std::int64_t i = 0; i < n; ++i) {
      if (addrs[i] < 0) continue;
      store();
      if (now < drain_end_) {
        if (free_ <= 0) {
          offset += drain_end_ - now;
          now = drain_end_;
        }
      } else if (free_ < total_ - drain_size_) {
        flush_line();
        drain_end_ = drain(now);
      }
    }
    return offset;
  }
  // Drains everything left, starting at `cycle`.
  void finish(std::int64_t cycle) {
    flush_line();
    while (drain_start_ < static_cast<std::int64_t>(lines_.size())) cycle = drain(cycle) + 1;
  }
  std::int64_t dram_writes() const { return dram_writes_; }

 private:
  void store() {
    ++line_fill_;
    --free_;
    if (line_fill_ == bw_) flush_line();
  }
  void flush_line() {
    if (line_fill_ == 0) return;
    lines_.push_back(line_fill_);
    line_fill_ = 0;
  }
  // Sends the next drain-buffer's worth of lines; a partially filled line counts as full unless
  // it is the last one sent. Returns the cycle of the last line.
  std::int64_t drain(std::int64_t start) {
    const std::int64_t want = (drain_size_ + bw_ - 1) / bw_;
    const std::int64_t have = static_cast<std::int64_t>(lines_.size()) - drain_start_;
    const std::int64_t n = want < have ? want : have;
    const std::int64_t words = n * bw_ - (bw_ - lines_[static_cast<std::size_t>(drain_start_ + n - 1)]);
    dram_writes_ += words;
    free_ += words;
    drain_start_ += n;
    return start + n - 1;
  }

  std::int64_t total_, drain_size_, bw_, free_;
  std::int64_t line_fill_ = 0, drain_start_ = 0, drain_end_ = 0, dram_writes_ = 0;
  std::vector<std::int64_t> lines_;  // words in each line handed to the DRAM port
};

// The order SCALE-Sim prefetches an operand in (USER mode): the (rows x cols) matrix `at` gives,
// row-major, or by anti-diagonals (each from its bottom row up) when `diagonal`.
template <class At>
std::vector<std::int64_t> prefetch_order(std::int64_t rows, std::int64_t cols, bool diagonal, At at) {
  std::vector<std::int64_t> out;
  out.reserve(static_cast<std::size_t>(rows * cols));
  if (!diagonal) {
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c) out.push_back(at(r, c));
    return out;
  }
  for (std::int64_t d = 0; d < rows + cols; ++d)
    for (std::int64_t r = std::min(d, rows - 1); r >= std::max<std::int64_t>(0, d - cols + 1); --r) out.push_back(at(r, d - r));
  return out;
}

}  // namespace detail

// Runs SCALE-Sim v2's model of `layer` on `cfg` (1-byte words).
inline status scalesim_simulate(const scalesim_config& cfg, const scalesim_layer& layer, scalesim_figures* out) {
  NPUQ_RETURN_IF_ERROR(layer.validate());
  if (cfg.rows < 1 || cfg.cols < 1 || cfg.rows > 4096 || cfg.cols > 4096)
    return {errc::invalid_argument, "scalesim: array rows and cols must be in [1, 4096], got " + std::to_string(cfg.rows) + "x" +
                                        std::to_string(cfg.cols)};
  if (cfg.ifmap_sram_bytes < 100 || cfg.filter_sram_bytes < 100 || cfg.ofmap_sram_bytes < 2)
    return {errc::invalid_argument, "scalesim: SRAMs must hold at least 100 bytes (ifmap, filter) and 2 bytes (ofmap)"};
  if (cfg.user_bandwidth < 0 || cfg.user_bandwidth > (std::int64_t{1} << 20))
    return {errc::invalid_argument, "scalesim: user_bandwidth must be 0 (CALC) or in [1, 2^20] words per cycle, got " +
                                        std::to_string(cfg.user_bandwidth)};
  using detail::addr_block;
  using detail::demand_block;
  const std::int64_t R = cfg.rows, C = cfg.cols;
  const scalesim_layer& L = layer;
  const std::int64_t Mpx = L.ofmap_pixels(), K = L.window(), N = L.filters, Ew = L.ofmap_w();
  // Operand matrices: ifmap (Mpx x K) im2col addresses, filter (K x N), ofmap (Mpx x N).
  auto ifmap = [&](std::int64_t m, std::int64_t k) -> std::int64_t {
    const std::int64_t iy = (m / Ew) * L.stride_h, ix = (m % Ew) * L.stride_w;
    const std::int64_t ky = k / (L.filt_w * L.channels), rem = k % (L.filt_w * L.channels);
    const std::int64_t kx = rem / L.channels, ch = rem % L.channels;
    if (iy + ky >= L.ifmap_h || ix + kx >= L.ifmap_w) return -1;
    return ((iy + ky) * L.ifmap_w + ix + kx) * L.channels + ch;
  };
  auto filter = [&](std::int64_t k, std::int64_t n) -> std::int64_t { return n * K + k; };
  auto ofmap = [&](std::int64_t m, std::int64_t n) -> std::int64_t { return n + N * m; };

  std::int64_t Sr = 0, Sc = 0, T = 0;
  switch (cfg.flow) {
    case dataflow::output_stationary: Sr = Mpx, Sc = N, T = K; break;
    case dataflow::weight_stationary: Sr = K, Sc = N, T = Mpx; break;
    case dataflow::input_stationary: Sr = K, Sc = Mpx, T = N; break;
  }
  const std::int64_t row_folds = (Sr + R - 1) / R, col_folds = (Sc + C - 1) / C;

  scalesim_figures f;
  f.macs = L.macs();
  const std::int64_t ifmap_space = L.ifmap_h * L.ifmap_w * L.channels, bw = cfg.user_bandwidth;
  // CALC mode with buffers that never fill (no read set completes, the ofmap never drains before
  // the end): every distinct address is read once, every ofmap write drains once, nothing stalls.
  // Then the line walk is skipped; its outcome is known. The ifmap addresses the im2col matrix
  // touches are the covered input rows x covered input columns x channels.
  const std::int64_t ofmap_elems = (cfg.flow == dataflow::output_stationary ? 1 : row_folds) * Mpx * N;
  bool walk = true;
  if (bw == 0 && cfg.filter_sram_bytes / 100 > K * N && cfg.ofmap_sram_bytes / 2 >= ofmap_elems) {
    auto covered = [](std::int64_t outs, std::int64_t stride, std::int64_t filt, std::int64_t in) {
      std::int64_t n = 0, next = 0;  // inputs [0, next) are counted; windows start in increasing order
      for (std::int64_t o = 0; o < outs; ++o) {
        const std::int64_t lo = std::max(o * stride, next), hi = std::min(o * stride + filt, in);
        if (hi > lo) n += hi - lo;
        next = std::max(next, hi);
      }
      return n;
    };
    const std::int64_t distinct = covered(L.ofmap_h(), L.stride_h, L.filt_h, L.ifmap_h) *
                                  covered(L.ofmap_w(), L.stride_w, L.filt_w, L.ifmap_w) * L.channels;
    if (cfg.ifmap_sram_bytes / 100 > distinct) {
      walk = false;
      f.dram_ifmap_reads = distinct;
      f.dram_filter_reads = K * N;
      f.dram_ofmap_writes = ofmap_elems;
    }
  }
  detail::scalesim_read_buffer ifmap_calc(cfg.ifmap_sram_bytes, bw > 0 || !walk ? 0 : ifmap_space);
  detail::scalesim_read_buffer filter_calc(cfg.filter_sram_bytes, bw > 0 || !walk ? 0 : K * N);
  detail::scalesim_write_buffer ofmap_buf(cfg.ofmap_sram_bytes, bw > 0 ? bw : C);
  // USER mode: the read buffers follow each operand's prefetch order (per dataflow, as SCALE-Sim
  // lays its prefetch matrices out: fold blocks stacked, some read by anti-diagonals).
  std::vector<std::int64_t> ifmap_order, filter_order;
  if (bw > 0) {
    auto pad = [](bool valid, std::int64_t v) { return valid ? v : std::int64_t{-1}; };
    switch (cfg.flow) {
      case dataflow::output_stationary:
        ifmap_order = detail::prefetch_order(row_folds * T, R, true, [&](std::int64_t r, std::int64_t c) {
          const std::int64_t m = (r / T) * R + c;
          return pad(m < Sr, m < Sr ? ifmap(m, r % T) : 0);
        });
        filter_order = detail::prefetch_order(col_folds * T, C, true, [&](std::int64_t r, std::int64_t c) {
          const std::int64_t n = (r / T) * C + c;
          return pad(n < Sc, n < Sc ? filter(r % T, n) : 0);
        });
        break;
      case dataflow::weight_stationary:
        ifmap_order = detail::prefetch_order(row_folds * T, R, true, [&](std::int64_t r, std::int64_t c) {
          const std::int64_t k = (r / T) * R + c;
          return pad(k < Sr, k < Sr ? ifmap(r % T, k) : 0);
        });
        filter_order = detail::prefetch_order(col_folds * Sr, C, false, [&](std::int64_t r, std::int64_t c) {
          const std::int64_t n = (r / Sr) * C + c;
          return pad(n < Sc, n < Sc ? filter(r % Sr, n) : 0);
        });
        break;
      case dataflow::input_stationary:
        ifmap_order = detail::prefetch_order(col_folds * Sr, C, false, [&](std::int64_t r, std::int64_t c) {
          const std::int64_t m = (r / Sr) * C + c;
          return pad(m < Sc, m < Sc ? ifmap(m, r % Sr) : 0);
        });
        filter_order = detail::prefetch_order(row_folds * T, R, true, [&](std::int64_t r, std::int64_t c) {
          const std::int64_t k = (r / T) * R + c;
          return pad(k < Sr, k < Sr ? filter(k, r % T) : 0);
        });
        break;
    }
  }
  detail::scalesim_user_read_buffer ifmap_user(cfg.ifmap_sram_bytes, bw > 0 ? bw : 1, ifmap_order, bw > 0 ? ifmap_space : 0);
  detail::scalesim_user_read_buffer filter_user(cfg.filter_sram_bytes, bw > 0 ? bw : 1, filter_order, bw > 0 ? K * N : 0);
  std::int64_t line = 0, stalls = 0, last_out = 0;

  for (std::int64_t fc = 0; fc < col_folds; ++fc) {
    for (std::int64_t fr = 0; fr < row_folds; ++fr) {
      const std::int64_t r0 = fr * R, ru = (Sr - r0 < R ? Sr - r0 : R);
      const std::int64_t c0 = fc * C, cu = (Sc - c0 < C ? Sc - c0 : C);
      addr_block in, w, o;
      std::int64_t stationary_rows = 0;  // rows of the block whose length sets the fold's cycles
      switch (cfg.flow) {
        case dataflow::output_stationary:
          if (walk) in = demand_block(R, T, T, ru, false, 0, C - 1, true, [&](std::int64_t t, std::int64_t c) { return ifmap(r0 + c, t); });
          if (walk) w = demand_block(C, T, T, cu, false, 0, R - 1, true, [&](std::int64_t t, std::int64_t c) { return filter(t, c0 + c); });
          if (walk) o = demand_block(C, ru, R, cu, true, T - 1, 0, true, [&](std::int64_t r, std::int64_t c) { return ofmap(r0 + r, c0 + c); });
          f.sram_ifmap_reads += T * ru;
          f.sram_filter_reads += T * cu;
          f.sram_ofmap_writes += ru * cu + R + C;
          stationary_rows = T - 1 + R;
          break;
        case dataflow::weight_stationary:
          if (walk) in = demand_block(R, T, T, ru, false, R, C - 1, true, [&](std::int64_t t, std::int64_t c) { return ifmap(t, r0 + c); });
          if (walk) w = demand_block(C, ru, R, cu, true, 0, R + C + T - 2, false,
                           [&](std::int64_t r, std::int64_t c) { return filter(r0 + r, c0 + c); });
          if (walk) o = demand_block(C, T, T, cu, false, 2 * R - 1, 0, true, [&](std::int64_t t, std::int64_t c) { return ofmap(t, c0 + c); });
          f.sram_ifmap_reads += T * ru;
          f.sram_filter_reads += ru * cu;
          f.sram_ofmap_writes += T * cu;
          stationary_rows = 2 * R + C + T - 2;
          break;
        case dataflow::input_stationary:
          if (walk) in = demand_block(C, ru, R, cu, true, 0, R + C + T - 2, false,
                            [&](std::int64_t r, std::int64_t c) { return ifmap(c0 + c, r0 + r); });
          if (walk) w = demand_block(R, T, T, ru, false, R, C - 1, true, [&](std::int64_t t, std::int64_t c) { return filter(r0 + c, t); });
          if (walk) o = demand_block(C, T, T, cu, false, 2 * R - 1, 0, true, [&](std::int64_t t, std::int64_t c) { return ofmap(c0 + c, t); });
          f.sram_ifmap_reads += ru * cu;
          f.sram_filter_reads += T * ru;
          f.sram_ofmap_writes += T * cu;
          stationary_rows = 2 * R + C + T - 2;
          break;
      }
      const std::int64_t used = ru * cu;
      const std::int64_t fold_cycles = stationary_rows + C - 1;
      f.mapping_sum += static_cast<double>(used) / static_cast<double>(R * C);
      f.compute_util_sum += static_cast<double>(used * T) / static_cast<double>(R * C * fold_cycles);
      ++f.folds;
      f.compute_cycles += T;
      if (!walk) {  // lines per fold: OS T + rows + cols - 2, WS and IS 2 * rows + cols + T - 2
        line += cfg.flow == dataflow::output_stationary ? T + R + C - 2 : 2 * R + C + T - 2;
        last_out = line - 1;
        continue;
      }
      f.lines_walked += o.rows;
      for (std::int64_t i = 0; i < o.rows; ++i, ++line) {
        const std::int64_t cycle = line + stalls;
        const std::int64_t* in_line = &in.v[static_cast<std::size_t>(i * in.cols)];
        const std::int64_t* w_line = &w.v[static_cast<std::size_t>(i * w.cols)];
        std::int64_t in_wait = 0, w_wait = 0;
        if (bw > 0) {
          NPUQ_RETURN_IF_ERROR(ifmap_user.read_line(in_line, in.cols, cycle, &in_wait));
          NPUQ_RETURN_IF_ERROR(filter_user.read_line(w_line, w.cols, cycle, &w_wait));
        } else {
          ifmap_calc.read_line(in_line, in.cols, cycle);
          filter_calc.read_line(w_line, w.cols, cycle);
        }
        const std::int64_t wait = ofmap_buf.write_line(&o.v[static_cast<std::size_t>(i * o.cols)], o.cols, cycle);
        last_out = cycle + wait;
        stalls += std::max(wait, std::max(in_wait, w_wait));
      }
    }
  }
  f.total_cycles = last_out;
  f.stall_cycles = stalls;
  if (walk) {
    ofmap_buf.finish(last_out);
    f.dram_ifmap_reads = bw > 0 ? ifmap_user.dram_reads() : ifmap_calc.dram_reads();
    f.dram_filter_reads = bw > 0 ? filter_user.dram_reads() : filter_calc.dram_reads();
    f.dram_ofmap_writes = ofmap_buf.dram_writes();
  }
  f.overall_util = static_cast<double>(f.macs * 100) / static_cast<double>(f.total_cycles * R * C);
  f.mapping_eff = f.mapping_sum / static_cast<double>(f.folds) * 100;
  f.compute_util = f.compute_util_sum / static_cast<double>(f.folds) * 100;
  *out = f;
  return {};
}

// The SCALE-Sim layer an emulator op is, and how many times it runs (batch x groups, or batch x
// channels for depthwise, each channel one layer with C = 1 as SCALE-Sim splits "DP" layers).
// Conv inputs are the padded ifmap. False for ops SCALE-Sim cannot describe (dilation, sparse or
// sub-byte weights, grouped-scale GEMMs): those keep the tiled charges.
inline bool scalesim_layer_of(const op_shape& s, bool sparse_weights, scalesim_layer* layer, std::int64_t* count) {
  const std::string op = s.op;
  if (sparse_weights || s.w_bits != 8 || s.in_bits != 8) return false;
  if (op == "gemm" && !s.window) {
    *layer = scalesim_layer::gemm(s.M(), s.N, s.K());
    *count = s.instances;
    return true;
  }
  if ((op != "conv2d" && op != "depthwise_conv2d") || !s.window || s.g.dilation_h != 1 || s.g.dilation_w != 1) return false;
  const conv_geometry& g = s.g;
  *layer = {g.H + g.pad_top + g.pad_bottom, g.W + g.pad_left + g.pad_right, g.KH, g.KW, s.depthwise ? 1 : s.k_units,
            s.depthwise ? s.n_step : s.N, g.stride_h, g.stride_w};
  *count = s.depthwise ? s.instances * (s.N / s.n_step) : s.instances;
  return true;
}

// Charges `count` runs of `layer` to `rec` as SCALE-Sim reports them: cycles (compute = folds *
// T, stalls as DMA stall, the rest fill/drain), folds and mapping, SRAM and DRAM counts (1-byte
// words), and energies from those counts. The op's own MAC count stays its useful MACs (SCALE-Sim
// counts MACs on its output grid: rec->scalesim.macs), and its bias DMA stays charged (SCALE-Sim
// has no bias).
inline status scalesim_charge(const profile& p, const scalesim_layer& layer, std::int64_t count, op_stats* rec) {
  scalesim_config cfg;
  cfg.rows = p.array.rows;
  cfg.cols = p.array.cols;
  cfg.flow = p.array.flow;
  cfg.ifmap_sram_bytes = p.memory.ifmap_bytes;
  cfg.filter_sram_bytes = p.memory.weight_bytes;
  cfg.ofmap_sram_bytes = p.memory.ofmap_bytes;
  cfg.user_bandwidth = p.dram.ideal ? 0 : static_cast<std::int64_t>(p.dram.bytes_per_cycle);
  scalesim_figures f;
  NPUQ_RETURN_IF_ERROR(scalesim_simulate(cfg, layer, &f));
  // Identical layers: counts add up, the percentages stay the layer's.
  scalesim_figures& t = rec->scalesim;
  t = f;
  for (std::int64_t* v : {&t.total_cycles, &t.stall_cycles, &t.sram_ifmap_reads, &t.sram_filter_reads, &t.sram_ofmap_writes,
                          &t.dram_ifmap_reads, &t.dram_filter_reads, &t.dram_ofmap_writes, &t.macs, &t.folds, &t.compute_cycles})
    *v *= count;
  t.mapping_sum *= static_cast<double>(count);
  t.compute_util_sum *= static_cast<double>(count);
  rec->scalesim_layers = count;
  rec->tiling = "SCALE-Sim v2 mapping: " + std::to_string(count) + " x im2col GEMM M=" + std::to_string(layer.ofmap_pixels()) +
                " (" + std::to_string(layer.ofmap_h()) + "x" + std::to_string(layer.ofmap_w()) + ") N=" + std::to_string(layer.filters) +
                " K=" + std::to_string(layer.window()) + ", " + std::to_string(f.folds) + " folds";
  // The tiled records describe a schedule SCALE-Sim does not run: replace them.
  const double ppu = rec->energy.ppu;
  const std::int64_t useful = rec->useful_macs, outputs = rec->outputs, host = rec->host_requantized;
  const std::int64_t bias_bytes = rec->dram.bias_read;  // SCALE-Sim has no bias: the emulator's DMA of it stays
  const numeric_counters nums = rec->numerics;
  op_stats fresh;
  fresh.op = rec->op;
  fresh.shape = rec->shape;
  fresh.tiling = rec->tiling;
  fresh.instances = rec->instances;
  fresh.macs = rec->macs;
  fresh.scalesim_layers = rec->scalesim_layers;
  fresh.scalesim = t;
  fresh.numerics = nums;
  tile_stats ts;  // one record for the op's layers
  ts.cycles.compute = t.compute_cycles;
  ts.cycles.dma_stall = t.stall_cycles;
  ts.cycles.fill_drain = t.total_cycles - t.stall_cycles - t.compute_cycles;
  ts.folds = t.folds;
  ts.mapping_sum = t.mapping_sum;
  ts.useful_macs = useful;
  ts.mac_slots = t.total_cycles * cfg.rows * cfg.cols;
  ts.sram.ifmap = {t.sram_ifmap_reads, t.dram_ifmap_reads};
  ts.sram.weight = {t.sram_filter_reads, t.dram_filter_reads};
  ts.sram.ofmap = {t.dram_ofmap_writes, t.sram_ofmap_writes};
  ts.dram.input_read = t.dram_ifmap_reads;
  ts.dram.weight_read = t.dram_filter_reads;
  ts.dram.output_written = t.dram_ofmap_writes;
  ts.dram.bias_read = bias_bytes;
  ts.energy.mac = static_cast<double>(useful) * p.energy.mac_pj;
  ts.energy.sram = static_cast<double>(t.sram_ifmap_reads + t.dram_ifmap_reads) * p.pj_ifmap() +
                   static_cast<double>(t.sram_filter_reads + t.dram_filter_reads) * p.pj_weight() +
                   static_cast<double>(t.sram_ofmap_writes + t.dram_ofmap_writes) * p.pj_ofmap();
  ts.energy.dram = static_cast<double>(ts.dram.total()) * p.energy.dram_pj_per_byte;
  ts.energy.ppu = ppu;
  ts.outputs = outputs;
  ts.host_requantized = host;
  ts.mt = layer.ofmap_pixels();
  ts.nt = layer.filters;
  ts.kt = layer.window();
  fresh.add(ts);
  if (p.record_tiles) fresh.tiles.push_back(ts);
  *rec = std::move(fresh);
  return {};
}

}  // namespace npu
}  // namespace npuq
