// The NPU emulator's numerics engine: the integers an NPU produces for an op, tile by tile (or a
// band of tiles at a time when the tiling cannot change them): exact int32 sums from the simd
// backend's kernels through the operands' tile_sums (or compute_tile when partial sums must be
// checked inside a K tile), entered at the kernel layer with problems formed from the op's
// validated tensors (never the validating public calls, once per tile), then the profile's partial-sum, accumulator and spill rules, and
// after the last K tile the PPU (bias, requantization, clamp) and the store.
//
// It exists so the arithmetic is one job that neither knows nor records what a tile costs (the
// cost accountant charges the plan's tiles separately) and counts only numeric events. It owns
// the scratch its tiles reuse from op to op, so one engine serves one thread.
//
// A finished depthwise tile whose sums cannot overflow comes, where the level's depthwise kernels
// are AVX-512 and the contract is a q31 one (tflite's double rounding or a single rounding such
// as NVDLA's half away from zero) or fp32 ties to even, from one simd call that
// requantizes straight into the output and counts what the PPU counts (depthwise_operands::
// fused_tile, stage_tally): depthwise has so few MACs per output that a separate PPU pass would
// cost more than the kernel.
//
// When the integers cannot depend on the tiling (one K tile, or K tiles whose exact sums add up)
// and K fits exact int32 sums, the outputs are computed for bands of whole output rows x all
// channels x all of K: one simd call and one vector PPU pass per band. Same integers, same
// numeric counters (every rule applied after the sums is per element); far fewer calls when
// buffers are small.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "npuq/backends/npu/compute.hpp"
#include "npuq/backends/npu/ppu.hpp"
#include "npuq/backends/npu/profile.hpp"
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

struct scratch {
  std::vector<std::int16_t> a, b;
  std::vector<std::int32_t> part, out;
  std::vector<std::int64_t> acc, bias;
  std::vector<requant_channel> rq;
  std::vector<std::int32_t> bias32;
  ppu_lanes lanes;
};

// npuq::detail::round_shift(v, s, R) for |v| < 2^62 and 1 <= s <= 62, without branches on the
// data for the roundings the NPU presets use (v + 2^(s-1) cannot overflow here).
template <rounding R>
inline std::int64_t round_shift_int64(std::int64_t v, int s) {
  const std::int64_t half = std::int64_t{1} << (s - 1);
  if (R == rounding::floor) return v >> s;
  if (R == rounding::half_up) return (v + half) >> s;
  if (R == rounding::half_away || R == rounding::truncate) {  // on |v|, sign restored: no branch to mispredict
    const std::int64_t sign = v >> 63, mag = (v ^ sign) - sign;
    const std::int64_t q = (mag + (R == rounding::half_away ? half : 0)) >> s;
    return (q ^ sign) - sign;
  }
  return npuq::detail::round_shift<std::int64_t>(v, s, R);
}

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
      std::int32_t o;
      if (F == multiplier_format::q31 && R != rounding::tflite_double && vi[j] >= INT32_MIN && vi[j] <= INT32_MAX) {
        // requantize's Q31 step in int64: |acc * multiplier| < 2^62, so no 128-bit product or
        // cap is needed and the rounding shift gives the same integer.
        const std::int64_t q = round_shift_int64<R>(vi[j] * rq[j].multiplier, 31 - rq[j].shift) + zp;
        o = static_cast<std::int32_t>(q < INT32_MIN ? INT32_MIN : (q > INT32_MAX ? INT32_MAX : q));
      } else {
        o = requantize(num, vi[j], rq[j], zp, INT32_MIN, INT32_MAX);
      }
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


// Operands whose tiles the PPU may write straight into the output (out_type, out_rows()).
template <class Operands, class = void>
struct writes_out_rows : std::false_type {};
template <class Operands>
struct writes_out_rows<Operands, std::void_t<typename Operands::out_type>> : std::true_type {};

// Operands that can compute a finished tile in one simd call that also counts (fused_tile()).
template <class Operands, class = void>
struct fuses_tiles : std::false_type {};
template <class Operands>
struct fuses_tiles<Operands, std::void_t<decltype(&Operands::fused_tile)>> : std::true_type {};

// How an op's tiles are computed: which rules can change a sum, whether the host packs the
// operands (partial sums checked per fold inside a K tile) and whether bands replace tiles.
struct tile_rules {
  std::int64_t kt_max = 0, M = 0, k_blocks = 1;
  bool psum_checked = false;  // array partial sums can overflow: checked per fold
  std::int64_t chunk = 0;     // K elements summed exactly at a time
  bool host_packed = false;   // compute_tile on host-packed operands (chunk < kt_max)
  bool acc_safe = false;      // no sum of K products plus bias can leave the accumulator
  bool int32_safe = false;    // nor int32 (the vector PPU adds the bias to the int32 sums)
  bool sat_each = false;      // saturate at each add, and it can matter
  bool spill_narrow = false;  // partial sums spilled narrower than the accumulator
  bool banded = false;        // outputs computed per band of `band`
  tile_plan band;
};

template <class Operands>
tile_rules tile_rules_of(const profile& P, const op_shape& s, const tile_plan& plan, const Operands& src, const numerics_profile& num) {
  tile_rules r;
  r.kt_max = plan.kt(s);
  r.M = s.M();
  r.k_blocks = k_tile_count(s, plan);
  // Partial sums inside the array are checked only when they can overflow.
  const std::int64_t max_product = src.max_abs_a() * src.max_abs_b();
  const std::int64_t fold_k = P.array.flow == dataflow::output_stationary ? r.kt_max : P.array.rows * P.array.depth;
  r.psum_checked = P.array_psum.bits > 0 && (fold_k < r.kt_max ? fold_k : r.kt_max) * max_product >= (std::int64_t{1} << (P.array_psum.bits - 1));
  r.chunk = r.psum_checked ? fold_k : r.kt_max;
  // A tile whose partial sums are checked per fold, inside the K tile, needs the sum of each
  // fold: compute_tile on operands packed by the host. Otherwise one exact sum per tile: the
  // simd kernels on views of the tile's operands (src.tile_sums).
  r.host_packed = r.chunk < r.kt_max;
  // When no sum of K products plus the bias can leave the accumulator, no accumulator rule
  // changes a sum: a saturating accumulator adds exactly, and the PPU skips the rule.
  r.acc_safe = static_cast<double>(s.K()) * static_cast<double>(max_product) + static_cast<double>(src.max_abs_bias()) <
               static_cast<double>(std::int64_t{1} << (num.acc.bits - 1));
  r.int32_safe = static_cast<double>(s.K()) * static_cast<double>(max_product) + static_cast<double>(src.max_abs_bias()) <
                 static_cast<double>(std::int64_t{1} << 31);
  r.sat_each = num.acc.overflow == overflow_rule::saturate_each_add && !r.acc_safe;
  r.spill_narrow = P.memory.psums == psum_mode::spill && P.memory.spill_bits < num.acc.bits;
  r.banded = !r.host_packed && s.K() <= max_tile_k && (r.k_blocks == 1 || (!r.psum_checked && !r.sat_each && !r.spill_narrow));
  r.band = plan;
  if (r.banded) {
    constexpr std::int64_t band_sums = std::int64_t{1} << 16;  // about 256 KiB of int32 sums per band
    r.band.nt = s.N;
    r.band.kc = s.k_units;
    const std::int64_t row = s.OW * (s.N > 0 ? s.N : 1);
    r.band.tw = s.OH > 1 ? s.OW : std::max<std::int64_t>(1, std::min<std::int64_t>(s.OW, band_sums / (s.N > 0 ? s.N : 1)));
    r.band.th = s.OH > 1 ? std::max<std::int64_t>(1, std::min<std::int64_t>(s.OH, band_sums / row)) : 1;
  }
  return r;
}

}  // namespace detail

class numerics_engine {
 public:
  // Computes and stores the outputs of an op (shape `s`, non-empty) tiled by `plan`, counting
  // numeric events in `nc`. Every tile runs even after one fails; the first failure is returned.
  template <class Operands>
  status run(const profile& P, const op_shape& s, const tile_plan& plan, const Operands& src, const output_stage& st,
             numeric_counters* nc) {
    op_run<Operands> c{P, s, src, st, nc, detail::tile_rules_of(P, s, plan, src, st.numerics), {}};
    const detail::tile_rules& r = c.rules;
    if (r.host_packed) {
      sc_.a.resize(static_cast<std::size_t>(r.M * s.K() * (s.depthwise ? s.N / s.n_step : 1)));
      sc_.b.resize(static_cast<std::size_t>(s.N * s.K()));
    }
    const std::int64_t plan_elems = plan.th * plan.tw * plan.nt, band_elems = r.band.th * r.band.tw * r.band.nt;
    sc_.part.resize(static_cast<std::size_t>(r.banded && band_elems > plan_elems ? band_elems : plan_elems));
    sc_.acc.resize(sc_.part.size());
    sc_.out.resize(sc_.part.size());
    std::int64_t packed_b = -1;
    for (std::int64_t inst = 0; inst < s.instances; ++inst) {
      if (r.host_packed) {
        pack_instance(c, plan, inst, true);
        if (src.b_instance(inst) != packed_b) {
          packed_b = src.b_instance(inst);
          pack_instance(c, plan, inst, false);
        }
      }
      if (r.banded) {
        for (std::int64_t oy0 = 0; oy0 < s.OH; oy0 += r.band.th)
          for (std::int64_t ox0 = 0; ox0 < s.OW; ox0 += r.band.tw) tile(c, tile_at(s, r.band, inst, oy0, ox0, 0, 0), true, true);
      } else {
        for_each_tile(s, plan, inst, [&](const tile_ref& t, bool first_k, bool last_k) { tile(c, t, first_k, last_k); });
      }
    }
    return c.failed;
  }

 private:
  template <class Operands>
  struct op_run {
    const profile& P;
    const op_shape& s;
    const Operands& src;
    const output_stage& st;
    numeric_counters* nc;
    detail::tile_rules rules;
    status failed;
  };

  // The host packs each operand once per instance: one [pixels][kt] block of A and one
  // [channels][kt] block of B per K tile, depthwise A as [channels][pixels][taps].
  template <class Operands>
  void pack_instance(const op_run<Operands>& c, const tile_plan& plan, std::int64_t inst, bool a_side) {
    const op_shape& s = c.s;
    for (std::int64_t kb = 0; kb < c.rules.k_blocks; ++kb) {
      tile_ref w;
      w.inst = inst;
      w.th = s.OH;
      w.tw = s.OW;
      w.nt = s.N;
      w.kc0 = kb * plan.kc;
      w.kcn = s.k_units - w.kc0 < plan.kc ? s.k_units - w.kc0 : plan.kc;
      if (a_side) c.src.load_a(w, sc_.a.data() + c.rules.M * w.kc0 * s.k_unit);
      else c.src.load_b(w, sc_.b.data() + s.N * w.kc0 * s.k_unit);
    }
  }

  // Adds the sums in part to the accumulators under the array partial-sum check and the
  // accumulator's saturate-at-each-add rule.
  template <class Operands>
  static void accumulate_checked(const op_run<Operands>& c, std::int64_t n, const std::int32_t* part, std::int64_t* acc) {
    const detail::tile_rules& r = c.rules;
    for (std::int64_t e = 0; e < n; ++e) {
      std::int64_t v = part[e];
      if (r.psum_checked) v = detail::add_under(c.P.array_psum, 0, v, &c.nc->array_psum_overflows);
      acc[e] = r.sat_each ? detail::add_under(c.st.numerics.acc, acc[e], v, &c.nc->accumulator_overflows) : acc[e] + v;
    }
  }

  // The integers of one tile (or band): MAC array (exact int32 sums per chunk, then the
  // profile's partial-sum and accumulator rules), spill, and after the last K tile the PPU and
  // the store.
  template <class Operands>
  void tile(op_run<Operands>& c, const tile_ref& t, bool first_k, bool last_k) {
    const detail::tile_rules& r = c.rules;
    const op_shape& s = c.s;
    const std::int64_t mt = t.mt(), nt = t.nt, kt = t.kcn * s.k_unit;
    std::int64_t* acc = sc_.acc.data();
    std::int32_t* part = sc_.part.data();
    bool direct = false;  // the PPU reads the tile sums: one K tile, nothing to check or reduce
    if (!r.host_packed) {  // one chunk: the whole K tile
      if constexpr (detail::fuses_tiles<Operands>::value) {  // kernel, PPU and counts in one pass
        if (first_k && last_k && !r.psum_checked && !r.sat_each && r.acc_safe && r.int32_safe && c.src.fused_tile(t, c.st, c.nc))
          return;
      }
      const status ok = c.src.tile_sums(t, part);
      if (!ok.ok() && c.failed.ok()) c.failed = ok;
      direct = first_k && last_k && !r.psum_checked && !r.sat_each && r.acc_safe && r.int32_safe && ppu_direct(t, c.st, c.src, c.nc);
      if (!direct && !r.psum_checked && !r.sat_each) {
        if (first_k) {
          for (std::int64_t e = 0; e < mt * nt; ++e) acc[e] = part[e];
        } else {
          for (std::int64_t e = 0; e < mt * nt; ++e) acc[e] += part[e];
        }
      } else if (!direct) {
        if (first_k) std::fill(acc, acc + mt * nt, std::int64_t{0});
        accumulate_checked(c, mt * nt, part, acc);
      }
    } else {
      if (first_k) std::fill(acc, acc + mt * nt, std::int64_t{0});
      const std::int64_t groups = s.depthwise ? nt / s.n_step : 1, gcols = nt / groups;
      const std::int16_t* a_blk = sc_.a.data() + r.M * t.kc0 * s.k_unit;
      const std::int16_t* b_blk = sc_.b.data() + s.N * t.kc0 * s.k_unit + t.n0 * kt;
      for (std::int64_t k0 = 0; k0 < kt; k0 += r.chunk) {
        const std::int64_t len = kt - k0 < r.chunk ? kt - k0 : r.chunk;
        for (std::int64_t g = 0; g < groups; ++g) {
          const std::int16_t* a_g = a_blk + (s.depthwise ? (t.n0 / s.n_step + g) * r.M * kt : 0);
          for (std::int64_t y = 0; y < t.th; ++y)  // one call per output row of the pixel rectangle
            compute_tile(a_g + ((t.oy0 + y) * s.OW + t.ox0) * kt + k0, kt, b_blk + g * gcols * kt + k0, kt, t.tw, gcols, len,
                         part + y * t.tw * nt + g * gcols, nt);
        }
        accumulate_checked(c, mt * nt, part, acc);
      }
    }
    if (r.spill_narrow && !last_k)
      for (std::int64_t e = 0; e < mt * nt; ++e) {
        const std::int64_t w = detail::add_under(c.st.numerics.acc, 0, acc[e], &c.nc->accumulator_overflows);
        acc[e] = detail::add_under({c.P.memory.spill_bits, overflow_rule::saturate_at_end}, 0, w, &c.nc->spill_saturations);
      }
    if (last_k && !direct) ppu(t, c.st, c.src, r.acc_safe, c.nc);
  }

  // The PPU straight from a single K tile's int32 sums (accumulator known not to overflow), when
  // the output is raw or its contract has a vector path (ppu.hpp) here; false otherwise.
  template <class Operands>
  bool ppu_direct(const tile_ref& t, const output_stage& st, const Operands& src, numeric_counters* counters) {
    const detail::ppu_kind kind = detail::ppu_kind_of(st.raw, st.numerics);
    if (kind == detail::ppu_kind::other || !detail::ppu_avx2_available()) return false;
    detail::scratch& sc = sc_;
    const std::int64_t mt = t.mt(), nt = t.nt;
    sc.bias32.resize(static_cast<std::size_t>(nt));
    sc.lanes.resize(static_cast<std::size_t>(nt));
    for (std::int64_t j = 0; j < nt; ++j) {
      const std::int64_t ch = src.channel(t.inst, t.n0 + j);
      sc.bias32[static_cast<std::size_t>(j)] = src.has_bias() ? src.bias(ch) : 0;
      if (!st.raw) sc.lanes.set(static_cast<std::size_t>(j), st.at(ch));
    }
    if (kind == detail::ppu_kind::q31_double) sc.lanes.compose(static_cast<std::size_t>(nt), st.zero_point);
    if (kind == detail::ppu_kind::q31_symmetric) sc.lanes.prepare_single(static_cast<std::size_t>(nt), st.numerics.mode);
    numeric_counters& nc = *counters;
    if constexpr (detail::writes_out_rows<Operands>::value) {  // straight into the output when its channels are consecutive
      detail::ppu_out<typename Operands::out_type> dst;
      if (src.out_rows(t, &dst))
        return detail::ppu_tile(kind, sc.part.data(), sc.bias32.data(), sc.lanes, mt, nt, st.numerics, st.zero_point, st.lo, st.hi,
                                dst, &nc.max_abs_acc, &nc.clamped_low, &nc.clamped_high);
    }
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
  void ppu(const tile_ref& t, const output_stage& st, const Operands& src, bool acc_safe, numeric_counters* counters) {
    detail::scratch& sc = sc_;
    const numerics_profile& num = st.numerics;
    const std::int64_t mt = t.mt(), nt = t.nt;
    numeric_counters& nc = *counters;
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

  detail::scratch sc_;
};

}  // namespace npu
}  // namespace npuq
