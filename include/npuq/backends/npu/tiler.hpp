// The tiler: which tile of an op's output x reduction space fits the NPU's buffers.
//
// Every op the emulator runs is first described as a GEMM-shaped `op_shape`: independent
// instances (GEMM batches, conv images x groups), each producing an OH x OW grid of output pixels
// (GEMM: 1 x M rows) times N channels, reducing over K = k_unit * k_units elements (conv: the
// KH * KW taps of each input channel). A tile is a rectangle of output pixels, a range of
// channels and a range of K units. Conv ifmap tiles are input patches (the pixels the output
// rectangle reads), so their size, not the im2col size, is what must fit.
//
// The search is greedy and cheap: start from the whole op (K capped so int32 partial sums stay
// exact), and while a buffer overflows, halve the dimension that buffer grows with (ifmap: the
// pixel rectangle, then K; weights: channels, then K; outputs and partial sums: the larger of
// pixels and channels). An op whose smallest tile does not fit gets an error naming the buffer.
#pragma once

#include <cstdint>
#include <string>

#include "npuq/backends/npu/cost_model.hpp"
#include "npuq/backends/npu/profile.hpp"
#include "npuq/ops/conv_geometry.hpp"

namespace npuq {
namespace npu {

// Largest K tile: 32768 products of at most 255 * 255 sum exactly in int32.
constexpr std::int64_t max_tile_k = 32768;

struct op_shape {
  const char* op = "gemm";
  std::int64_t instances = 1;
  std::int64_t OH = 1, OW = 1;  // output pixels per instance
  std::int64_t N = 1;           // output channels per instance
  std::int64_t k_unit = 1;      // K elements per K unit
  std::int64_t k_units = 1;
  std::int64_t n_step = 1;      // channel tiles are multiples of this (depthwise multiplier)
  bool depthwise = false;       // every n_step channels read their own input channel
  bool window = false;          // ifmap tiles are input patches
  conv_geometry g;              // window ops only
  int in_bits = 8, w_bits = 8, out_bits = 8, acc_bits = 32;
  std::int64_t M() const { return OH * OW; }
  std::int64_t K() const { return k_unit * k_units; }
  std::int64_t macs() const { return instances * M() * N * K(); }
};

struct tile_plan {
  std::int64_t th = 1, tw = 1, nt = 1, kc = 1;  // pixel rectangle, channels, K units
  bool n_outer = false;                         // loop order: channel tiles outside pixel tiles
  // All of an instance's weights fit the weight buffer at once: each weight tile is DMAed once
  // per instance and stays, whatever the loop order (real NPU compilers keep them resident).
  bool weights_resident = false;
  std::int64_t kt(const op_shape& s) const { return kc * s.k_unit; }
};

// Input rows (or columns) an output range of `t` rows needs, before clipping to the image.
inline std::int64_t patch_extent(std::int64_t t, std::int64_t stride, std::int64_t k, std::int64_t dil, std::int64_t image) {
  const std::int64_t e = (t - 1) * stride + (k - 1) * dil + 1;
  return e < image ? e : image;
}

// Input channels an ifmap tile holds.
inline std::int64_t tile_in_channels(const op_shape& s, const tile_plan& p) { return s.depthwise ? p.nt / s.n_step : p.kc; }

// Largest ifmap tile of the plan in bytes.
inline std::int64_t ifmap_tile_bytes(const op_shape& s, const tile_plan& p) {
  if (!s.window) return bits_to_bytes(p.th * p.tw * p.kt(s), s.in_bits);
  const std::int64_t ph = patch_extent(p.th, s.g.stride_h, s.g.KH, s.g.dilation_h, s.g.H);
  const std::int64_t pw = patch_extent(p.tw, s.g.stride_w, s.g.KW, s.g.dilation_w, s.g.W);
  return bits_to_bytes(ph * pw * tile_in_channels(s, p), s.in_bits);
}

struct buffer_need {
  const char* knob = nullptr;  // the memory_config member that overflows, or nullptr
  std::int64_t need = 0, have = 0;
  int grows_with = 0;          // 0: pixels and K, 1: channels and K, 2: pixels and channels
};

// First buffer the plan overflows (knob == nullptr when everything fits).
inline buffer_need check_fit(const profile& pr, const op_shape& s, const tile_plan& p) {
  const memory_config& m = pr.memory;
  const std::int64_t share = m.double_buffer ? 2 : 1;
  const std::int64_t in_b = ifmap_tile_bytes(s, p);
  const std::int64_t w_b = bits_to_bytes(p.nt * p.kt(s), s.w_bits);
  const std::int64_t outs = p.th * p.tw * p.nt;
  if (m.unified_bytes > 0) {
    if ((in_b + w_b) * share > m.unified_bytes)
      return {"memory.unified_bytes", (in_b + w_b) * share, m.unified_bytes, in_b >= w_b ? 0 : 1};
  } else {
    if (in_b * share > m.ifmap_bytes) return {"memory.ifmap_bytes", in_b * share, m.ifmap_bytes, 0};
    if (w_b * share > m.weight_bytes) return {"memory.weight_bytes", w_b * share, m.weight_bytes, 1};
  }
  std::int64_t ofmap = m.ofmap_bytes > 0 ? bits_to_bytes(outs, s.out_bits) * share : 0;
  if (m.psums == psum_mode::spill) ofmap += bits_to_bytes(outs, m.spill_bits);
  if (ofmap > m.ofmap_bytes) return {"memory.ofmap_bytes", ofmap, m.ofmap_bytes, 2};
  if (m.psums == psum_mode::accumulator) {
    const std::int64_t acc = outs * ((s.acc_bits + 7) / 8);
    if (acc > m.accumulator_bytes) return {"memory.accumulator_bytes", acc, m.accumulator_bytes, 2};
  }
  return {};
}

namespace detail {
inline bool halve(std::int64_t* v, std::int64_t step = 1) {
  if (*v <= step) return false;
  const std::int64_t h = ceil_div(ceil_div(*v, 2), step) * step;
  *v = h < *v ? h : *v - step;
  return true;
}
}  // namespace detail

inline void choose_loop_order(const profile& pr, const op_shape& s, tile_plan* p);

inline status plan_tiles(const profile& pr, const op_shape& s, tile_plan* out) {
  if (s.k_unit > max_tile_k)
    return {errc::unsupported, std::string("npu: ") + s.op + ": " + std::to_string(s.k_unit) +
                                   " taps per input channel exceed the emulator's K tile limit of " + std::to_string(max_tile_k)};
  tile_plan p;
  p.th = s.OH;
  p.tw = s.OW;
  p.nt = s.N;
  const std::int64_t kcap = max_tile_k / s.k_unit;
  p.kc = s.k_units < kcap ? s.k_units : kcap;
  for (;;) {
    const buffer_need b = check_fit(pr, s, p);
    if (b.knob == nullptr) break;
    auto shrink_pixels = [&] { return detail::halve(&p.th) || detail::halve(&p.tw); };
    auto shrink_channels = [&] { return detail::halve(&p.nt, s.n_step); };
    auto shrink_k = [&] { return !s.depthwise && detail::halve(&p.kc); };
    bool done = false;
    switch (b.grows_with) {
      case 0: done = shrink_pixels() || shrink_k() || shrink_channels(); break;
      case 1: done = shrink_channels() || shrink_k() || shrink_pixels(); break;
      default:
        done = (p.th * p.tw >= p.nt) ? (shrink_pixels() || shrink_channels()) : (shrink_channels() || shrink_pixels());
        break;
    }
    if (!done)
      return {errc::unsupported, std::string("npu: ") + s.op + " does not fit profile " + pr.name +
                                     ": the smallest tile (1 output pixel, " + std::to_string(p.nt) + " channel(s), " +
                                     std::to_string(p.kt(s)) + " reduction elements) needs " + b.knob + " >= " +
                                     std::to_string(b.need) + " bytes" + (pr.memory.double_buffer ? " (double buffered)" : "") +
                                     ", the profile has " + std::to_string(b.have)};
  }
  choose_loop_order(pr, s, &p);
  *out = p;
  return {};
}

// Weight residency and the loop order with the least DRAM traffic (ties: the dataflow's own
// order, channel tiles outer for weight stationary). With P pixel tiles, C channel tiles and one
// K tile, pixel-outer reloads the weights per pixel tile unless they are resident or C = 1, and
// channel-outer reloads the ifmap per channel tile unless P = 1; with several K tiles every tile
// reloads both (the buffers hold one K tile).
inline void choose_loop_order(const profile& pr, const op_shape& s, tile_plan* p) {
  const memory_config& m = pr.memory;
  const std::int64_t all_w = bits_to_bytes(s.N * s.K(), s.w_bits);
  const std::int64_t in_tile = ifmap_tile_bytes(s, *p) * (m.double_buffer ? 2 : 1);
  p->weights_resident = m.unified_bytes > 0 ? all_w + in_tile <= m.unified_bytes : all_w <= m.weight_bytes;
  // Tile extents of 0 (empty operands) count as one tile.
  const auto tiles = [](std::int64_t n, std::int64_t t) { return t > 0 ? ceil_div(n, t) : 1; };
  const std::int64_t P = tiles(s.OH, p->th) * tiles(s.OW, p->tw), C = tiles(s.N > 0 ? s.N : 1, p->nt),
                     Kb = s.k_units > 0 ? tiles(s.k_units, p->kc) : 1;
  const double A = static_cast<double>(ifmap_tile_bytes(s, *p)) * static_cast<double>(P * Kb), W = static_cast<double>(all_w);
  const bool one_k = Kb == 1;
  const double pixel_outer = A * (one_k ? 1.0 : static_cast<double>(C)) +
                             W * (p->weights_resident || (C == 1 && one_k) ? 1.0 : static_cast<double>(P));
  const double channel_outer = A * (P == 1 && one_k ? 1.0 : static_cast<double>(C)) +
                               W * (p->weights_resident || one_k ? 1.0 : static_cast<double>(P));
  const bool ws = pr.array.flow == dataflow::weight_stationary;
  p->n_outer = channel_outer < pixel_outer || (channel_outer == pixel_outer && ws);
}

// One tile of an op_shape: pixel rectangle, channel range, K-unit range of one instance.
struct tile_ref {
  std::int64_t inst = 0, oy0 = 0, th = 0, ox0 = 0, tw = 0, n0 = 0, nt = 0, kc0 = 0, kcn = 0;
  std::int64_t mt() const { return th * tw; }
};

// K tiles per output tile: at least one, so K = 0 still produces bias-only outputs.
inline std::int64_t k_tile_count(const op_shape& s, const tile_plan& p) { return s.k_units > 0 ? ceil_div(s.k_units, p.kc) : 1; }

// The tile of `p` at an origin, clipped to the op; K range [kc0, kc0 + p.kc) clipped to K.
inline tile_ref tile_at(const op_shape& s, const tile_plan& p, std::int64_t inst, std::int64_t oy0, std::int64_t ox0, std::int64_t n0,
                        std::int64_t kc0) {
  tile_ref t;
  t.inst = inst;
  t.oy0 = oy0;
  t.th = s.OH - oy0 < p.th ? s.OH - oy0 : p.th;
  t.ox0 = ox0;
  t.tw = s.OW - ox0 < p.tw ? s.OW - ox0 : p.tw;
  t.n0 = n0;
  t.nt = s.N - n0 < p.nt ? s.N - n0 : p.nt;
  t.kc0 = kc0;
  t.kcn = s.k_units - kc0 < p.kc ? s.k_units - kc0 : p.kc;
  return t;
}

// Visits the tiles of instance `inst` in the plan's loop order (p.n_outer), the K tiles of each
// output tile innermost and at least one: fn(tile, first_k, last_k). The numerics engine and the
// cost accountant walk the same tiles in the same order through this one loop.
template <class Fn>
void for_each_tile(const op_shape& s, const tile_plan& p, std::int64_t inst, Fn&& fn) {
  const auto output_tile = [&](std::int64_t oy0, std::int64_t ox0, std::int64_t n0) {
    std::int64_t kc0 = 0;
    do {
      fn(tile_at(s, p, inst, oy0, ox0, n0, kc0), kc0 == 0, kc0 + p.kc >= s.k_units);
      kc0 += p.kc;
    } while (kc0 < s.k_units);
  };
  if (p.n_outer) {
    for (std::int64_t n0 = 0; n0 < s.N; n0 += p.nt)
      for (std::int64_t oy0 = 0; oy0 < s.OH; oy0 += p.th)
        for (std::int64_t ox0 = 0; ox0 < s.OW; ox0 += p.tw) output_tile(oy0, ox0, n0);
  } else {
    for (std::int64_t oy0 = 0; oy0 < s.OH; oy0 += p.th)
      for (std::int64_t ox0 = 0; ox0 < s.OW; ox0 += p.tw)
        for (std::int64_t n0 = 0; n0 < s.N; n0 += p.nt) output_tile(oy0, ox0, n0);
  }
}

// Input pixels along one axis an output range [o0, o0 + t) reads, clipped to the image.
inline std::int64_t clipped_extent(std::int64_t o0, std::int64_t t, std::int64_t stride, std::int64_t pad, std::int64_t k,
                                   std::int64_t dil, std::int64_t image) {
  std::int64_t lo = o0 * stride - pad, hi = (o0 + t - 1) * stride - pad + (k - 1) * dil;
  lo = lo < 0 ? 0 : lo;
  hi = hi >= image ? image - 1 : hi;
  return hi >= lo ? hi - lo + 1 : 0;
}

// Bytes the DMA brings in for a tile's ifmap: the bounding box of the input patch for window
// ops, the (mt x kt) rows of A for GEMM.
inline std::int64_t ifmap_dram_bytes(const op_shape& s, const tile_ref& t) {
  if (!s.window) return bits_to_bytes(t.mt() * t.kcn * s.k_unit, s.in_bits);
  const conv_geometry& g = s.g;
  const std::int64_t rows = clipped_extent(t.oy0, t.th, g.stride_h, g.pad_top, g.KH, g.dilation_h, g.H);
  const std::int64_t cols = clipped_extent(t.ox0, t.tw, g.stride_w, g.pad_left, g.KW, g.dilation_w, g.W);
  return bits_to_bytes(rows * cols * (s.depthwise ? t.nt / s.n_step : t.kcn), s.in_bits);
}

inline std::string describe(const op_shape& s, const tile_plan& p) {
  std::string t = std::to_string(p.th) + "x" + std::to_string(p.tw) + " px, " + std::to_string(p.nt) + " ch, " +
                  std::to_string(p.kt(s)) + " k";
  return t + (p.n_outer ? ", channel tiles outer" : ", pixel tiles outer") + (p.weights_resident ? ", weights resident" : "");
}

}  // namespace npu
}  // namespace npuq
