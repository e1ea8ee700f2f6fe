// simd softmax: the reference's three passes with every transcendental replaced by a lookup.
//
// An 8-bit row has at most 256 distinct differences x - max, so a call builds e() and the sum
// term RoundingDivideByPOT(e, 12) for all of them once (the exp table, bit-identical to
// computing them), and a row then costs a vectorizable max/min pass, one lookup and add per
// element for the sum, and, once the row's reciprocal is known, one lookup per element into a
// per-row output table over the row's own range of differences (built only when the row is
// longer than that range). The results are the reference's integers by construction; the tests
// compare them with the scalar backend and with TFLite's reference on gemmlowp. Attention reuses
// `softmax_row_s8` on its score tiles. The onnxruntime_qlinear contract (ONNX Runtime's float
// table) runs the scalar specification ("softmax_8bit_qlinear_reference").
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/backends/scalar/softmax.hpp"
#include "npuq/backends/simd/backend.hpp"
#include "npuq/backends/simd/x86/softmax_avx2.hpp"
#include "npuq/backends/simd/x86/softmax_avx512.hpp"
#include "npuq/core/parallel.hpp"
#include "npuq/ops/softmax_problem.hpp"

namespace npuq {
namespace simd_detail {

// What every row of one softmax call shares.
struct softmax_tables {
  softmax_math::exp_table exp;
  std::array<std::int32_t, 256 + 16> e_padded{};  // exp.entry, then zeros: whole vectors of 8 or 16
  std::array<std::int32_t, 256> term{};           // sum_term(e(d)) at d + 255
  std::array<std::uint16_t, 256> term_lo{}, term_hi{};  // term = term_lo + 2^14 * term_hi (AVX-512 sums)
  bool monotone = true;                           // e(d) never decreases as d grows (checked, not assumed)
  kernel_family family = kernel_family::portable;  // the row kernels: portable, avx2 or avx512_vnni
  static softmax_tables make(const softmax_params& p, isa level) {
    softmax_tables t;
    t.exp = softmax_math::exp_table::generate(p);
    for (std::size_t i = 0; i < 256; ++i) t.term[i] = softmax_math::sum_term(t.exp.entry[i]);
    for (std::size_t i = 0; i < 256; ++i) t.e_padded[i] = t.exp.entry[i];
    for (std::size_t i = 0; i + 1 < 256; ++i) t.monotone = t.monotone && t.exp.entry[i] <= t.exp.entry[i + 1];
#if defined(NPUQ_ARCH_X86_64)
    const kernel_family f = level_kernels(level).softmax;
    if (f == kernel_family::avx2 || f == kernel_family::avx512_vnni) t.family = f;
#endif
    if (t.family == kernel_family::avx512_vnni)
      for (std::size_t i = 0; i < 256; ++i) {
        t.term_lo[i] = static_cast<std::uint16_t>(t.term[i] & 0x3FFF);
        t.term_hi[i] = static_cast<std::uint16_t>(t.term[i] >> 14);
      }
    (void)level;
    return t;
  }
  // The tables of the last parameters used on this thread (a decode step calls with the same
  // parameters again and again; generating 256 exponentials would be a visible part of it).
  static const softmax_tables& cached(const softmax_params& p, isa level) {
    thread_local softmax_tables last = make(p, level);
    thread_local softmax_params key = p;
    thread_local isa key_level = level;
    if (key.input_multiplier != p.input_multiplier || key.input_left_shift != p.input_left_shift || key.diff_min != p.diff_min ||
        key_level != level) {
      last = make(p, level);
      key = p;
      key_level = level;
    }
    return last;
  }
};

// A row's maximum, minimum and normalizer: the first two passes of the softmax.
struct row_stats {
  std::int32_t max = 0, min = 0;
  softmax_math::normalizer norm;
};

template <class I>
row_stats softmax_row_stats(const softmax_tables& t, const I* in, std::int64_t n) {
#if defined(NPUQ_ARCH_X86_64)
  if (t.family == kernel_family::avx512_vnni) {
    row_stats r;
    row_range_avx512(in, n, &r.min, &r.max);
    r.norm = softmax_math::normalizer::of_sum(sum_terms_avx512(t.term_lo.data(), t.term_hi.data(), in, n, r.max));
    return r;
  }
#endif
  // Max and min, 32 lanes at a time in fixed-length inner loops (which compilers vectorize at -O2).
  I lane_max[32], lane_min[32];
  for (int j = 0; j < 32; ++j) lane_max[j] = lane_min[j] = in[0];
  std::int64_t i0 = 0;
  for (; i0 + 32 <= n; i0 += 32) {
    for (int j = 0; j < 32; ++j) {
      lane_max[j] = lane_max[j] < in[i0 + j] ? in[i0 + j] : lane_max[j];
      lane_min[j] = lane_min[j] > in[i0 + j] ? in[i0 + j] : lane_min[j];
    }
  }
  row_stats r;
  r.max = r.min = in[0];
  for (int j = 0; j < 32; ++j) {
    r.max = std::max<std::int32_t>(r.max, lane_max[j]);
    r.min = std::min<std::int32_t>(r.min, lane_min[j]);
  }
  for (std::int64_t i = i0; i < n; ++i) {
    r.max = std::max<std::int32_t>(r.max, in[i]);
    r.min = std::min<std::int32_t>(r.min, in[i]);
  }
  const std::int32_t* term = t.term.data() + 255 - r.max;  // term[x] = sum_term(e(x - max))
  std::int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // four chains of lookups and adds in flight (in registers)
  std::int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += term[in[i]];
    s1 += term[in[i + 1]];
    s2 += term[in[i + 2]];
    s3 += term[in[i + 3]];
  }
  for (; i < n; ++i) s0 += term[in[i]];
  r.norm = softmax_math::normalizer::of_sum(s0 + s1 + s2 + s3);
  return r;
}

// lut[x - min] = output for input x in [min, max] (lut has room for 256 + 8 entries). Returns
// the smallest input whose output is above qmin (max + 1 if none) when `want_lowest`. When e()
// is monotone (checked per call) the scalar path stops evaluating at the first qmin entry: the
// output never increases as x falls.
template <class O>
std::int32_t softmax_output_lut(const softmax_tables& t, const row_stats& r, O* lut, bool want_lowest) {
  constexpr std::int32_t qmin = element_traits<O>::min, qmax = element_traits<O>::max;
  std::int32_t lowest = r.max + 1;
#if defined(NPUQ_ARCH_X86_64)
  if (t.family == kernel_family::avx512_vnni && r.norm.shift <= 31) {
    const std::int32_t count = r.max - r.min + 1;
    const std::int32_t first = softmax_outputs_avx512(t.e_padded.data() + (r.min - r.max + 255), count, r.norm.recip, r.norm.shift, qmin,
                                                      qmax, reinterpret_cast<std::uint8_t*>(lut));
    return first < count ? r.min + first : lowest;
  }
  if (t.family == kernel_family::avx2 && r.norm.shift <= 31) {
    const std::int32_t count = r.max - r.min + 1;
    alignas(32) std::int32_t out[256 + 8];
    softmax_outputs_avx2(t.e_padded.data() + (r.min - r.max + 255), count, r.norm.recip, r.norm.shift, qmin, qmax, out);
    for (std::int32_t i = 0; i < count; i += 8)
      for (int j = 0; j < 8; ++j) lut[i + j] = static_cast<O>(out[i + j]);
    if (want_lowest)
      for (std::int32_t i = 0; i < count && lowest > r.max; ++i)
        if (out[i] != qmin) lowest = r.min + i;
    return lowest;
  }
#endif
  (void)want_lowest;  // the scalar path finds it on the way
  std::int32_t x = r.max;
  for (; x >= r.min; --x) {
    const std::int32_t o = softmax_math::clamp_output(r.norm.scaled(t.exp(x - r.max)), qmin, qmax);
    lut[x - r.min] = static_cast<O>(o);
    if (o != qmin) lowest = x;
    else if (t.monotone) break;
  }
  for (--x; x >= r.min; --x) lut[x - r.min] = static_cast<O>(qmin);
  return lowest;
}

// Softmax of the contiguous 8-bit row in[0, n) into out[0, n) (in and out may not overlap).
template <class I, class O>
void softmax_row_s8(const softmax_tables& t, const I* in, std::int64_t n, O* out) {
  if (n <= 0) return;
  const row_stats r = softmax_row_stats(t, in, n);
  constexpr std::int32_t qmin = element_traits<O>::min, qmax = element_traits<O>::max;
  // The scalar table costs one evaluation per input value in [min, max] (fewer when e() is
  // monotone: it stops at the first qmin entry): rows shorter than that skip it.
  if (t.family == kernel_family::portable && n <= r.max - r.min + 1) {
    for (std::int64_t i = 0; i < n; ++i)
      out[i] = static_cast<O>(softmax_math::clamp_output(r.norm.scaled(t.exp(in[i] - r.max)), qmin, qmax));
    return;
  }
  std::array<O, 256 + 8> lut{};  // all of it read by softmax_map_avx512
  softmax_output_lut(t, r, lut.data(), false);
#if defined(NPUQ_ARCH_X86_64)
  if (t.family == kernel_family::avx512_vnni)
    return softmax_map_avx512(reinterpret_cast<const std::uint8_t*>(lut.data()), in, n, r.min, out);
#endif
  for (std::int64_t i = 0; i < n; ++i) out[i] = lut[static_cast<std::size_t>(in[i] - r.min)];
}

// The same softmax with a uint8 output (P - zero point), keeping only the non-zero entries:
// w[j] and index[j] for j < the returned count, in index order. Decode sums V rows over these.
template <class I>
std::int64_t softmax_row_nonzero(const softmax_tables& t, const I* in, std::int64_t n, std::uint8_t* w, std::int32_t* index) {
  if (n <= 0) return 0;
  const row_stats r = softmax_row_stats(t, in, n);
  std::array<std::uint8_t, 256 + 8> lut;
  const std::int32_t lowest = softmax_output_lut(t, r, lut.data(), true);
  std::int64_t count = 0;
  auto take = [&](std::int64_t i) {  // branch-free: always write, advance only past a non-zero
    const std::uint8_t v = lut[static_cast<std::size_t>(in[i] - r.min)];
    w[count] = v;
    index[count] = static_cast<std::int32_t>(i);
    count += v != 0;
  };
  // Most inputs fall below `lowest`: test 32 at a time (a movemask with AVX2, else a fixed-length
  // loop compilers vectorize) and look up only the ones above it.
  std::int64_t i0 = 0;
  if (lowest > element_traits<I>::min) {  // otherwise every input qualifies: no block to skip
    const I low = static_cast<I>(lowest - 1);
#if defined(NPUQ_ARCH_X86_64)
    if constexpr (std::is_same<I, std::int8_t>::value) {
      if (t.family == kernel_family::avx512_vnni) {
        for (; i0 + 64 <= n; i0 += 64)
          for (std::uint64_t m = greater_mask_avx512(in + i0, low); m != 0; m &= m - 1) take(i0 + __builtin_ctzll(m));
      }
      if (t.family == kernel_family::avx2) {
        for (; i0 + 32 <= n; i0 += 32)
          for (std::uint32_t m = greater_mask_avx2(in + i0, low); m != 0; m &= m - 1) take(i0 + __builtin_ctz(m));
      }
    }
#endif
    for (; i0 + 32 <= n; i0 += 32) {
      int any = 0;
      for (int j = 0; j < 32; ++j) any |= in[i0 + j] > low;
      if (any != 0)
        for (int j = 0; j < 32; ++j) take(i0 + j);
    }
  }
  for (; i0 < n; ++i0) take(i0);
  return count;
}

// Rows [r0, r1) of p. in_row and out_row hold p.depth elements each: a strided row is copied
// there, the kernel runs on the copy, and the result is copied out.
template <class I, class O>
void softmax_rows(const softmax_tables& t, const softmax_problem<I, O>& p, std::int64_t r0, std::int64_t r1, I* in_row, O* out_row) {
  const bool contiguous = p.in_step() == 1 && p.out_step() == 1;
  for (std::int64_t r = r0; r < r1; ++r) {
    std::int64_t io = 0, oo = 0;
    p.row_offsets(r, &io, &oo);
    if (contiguous) {
      softmax_row_s8(t, p.in.data() + io, p.depth, p.out.data() + oo);
      continue;
    }
    for (std::int64_t i = 0; i < p.depth; ++i) in_row[i] = p.in.data()[io + i * p.in_step()];
    softmax_row_s8(t, in_row, p.depth, out_row);
    for (std::int64_t i = 0; i < p.depth; ++i) p.out.data()[oo + i * p.out_step()] = out_row[i];
  }
}

// Thread parts for a softmax of rows x depth: whole rows each (a row's result does not depend on
// the part it falls in, so the bytes do not depend on the thread count), and about 16K elements
// or more per part, so that a fork and join (a few microseconds) is paid only for real work.
inline std::int64_t softmax_parts(int threads, std::int64_t rows, std::int64_t depth) {
  const std::int64_t by_work = depth > 0 ? std::max<std::int64_t>(1, rows / std::max<std::int64_t>(1, 16384 / depth)) : 1;
  return std::max<std::int64_t>(1, std::min({static_cast<std::int64_t>(std::max(threads, 1)), rows, by_work}));
}

// The whole softmax on up to `threads` threads. in_rows and out_rows hold softmax_parts(...) *
// p.depth elements each (used for strided rows only).
template <class I, class O>
void run_softmax_on(int threads, const softmax_tables& t, const softmax_problem<I, O>& p, I* in_rows, O* out_rows) {
  const std::int64_t parts = softmax_parts(threads, p.rows, p.depth);
  detail::parallel_parts(threads, parts, [&](std::int64_t part) {
    const std::int64_t r0 = part * (p.rows / parts) + std::min(part, p.rows % parts);
    const std::int64_t r1 = r0 + p.rows / parts + (part < p.rows % parts ? 1 : 0);
    softmax_rows(t, p, r0, r1, in_rows + part * p.depth, out_rows + part * p.depth);
  });
}

// The kernel name softmax runs under, e.g. "softmax_8bit_table_avx512_vnni".
inline std::string softmax_kernel_name(const softmax_tables& t, bool contiguous) {
  return std::string(contiguous ? "softmax_8bit_table_" : "softmax_8bit_table_strided_") + to_string(t.family);
}

}  // namespace simd_detail

template <class I, class O>
status execute(const simd_backend& be, const softmax_problem<I, O>& p) {
  if (p.params.contract == softmax_contract::onnxruntime_qlinear) {
    NPUQ_RETURN_IF_ERROR(execute(scalar_backend{}, p));
    detail::simd_last_kernel_storage() = "softmax_8bit_qlinear_reference";
    return {};
  }
  const auto& tables = simd_detail::softmax_tables::cached(p.params, be.level());
  const bool contiguous = p.in_step() == 1 && p.out_step() == 1;
  const std::size_t row_space =
      contiguous ? 0 : static_cast<std::size_t>(simd_detail::softmax_parts(be.thread_count(), p.rows, p.depth) * p.depth);
  std::vector<I> in_rows(row_space);
  std::vector<O> out_rows(row_space);
  simd_detail::run_softmax_on(be.thread_count(), tables, p, in_rows.data(), out_rows.data());
  detail::simd_last_kernel_storage() = simd_detail::softmax_kernel_name(tables, contiguous);
  return {};
}

}  // namespace npuq
