// simd softmax: the reference's three passes with every transcendental replaced by a lookup.
//
// An 8-bit row has at most 256 distinct differences x - max, so a call builds e() and the sum
// term RoundingDivideByPOT(e, 12) for all of them once (the exp table, bit-identical to
// computing them), and a row then costs a vectorizable max/min pass, one lookup and add per
// element for the sum, and, once the row's reciprocal is known, one lookup per element into a
// per-row output table over the row's own range of differences (built only when the row is
// longer than that range). The results are the reference's integers by construction; the tests
// compare them with the scalar backend and with TFLite's reference on gemmlowp. Attention reuses
// `softmax_row_s8` on its score tiles.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "npuq/backends/simd/backend.hpp"
#include "npuq/ops/softmax_problem.hpp"

namespace npuq {
namespace simd_detail {

// What every row of one softmax call shares.
struct softmax_tables {
  softmax_math::exp_table exp;
  std::array<std::int32_t, 256> term{};  // sum_term(e(d)) at d + 255
  static softmax_tables make(const softmax_params& p) {
    softmax_tables t;
    t.exp = softmax_math::exp_table::generate(p);
    for (std::size_t i = 0; i < 256; ++i) t.term[i] = softmax_math::sum_term(t.exp.entry[i]);
    return t;
  }
};

// Softmax of the contiguous 8-bit row in[0, n) into out[0, n) (in and out may not overlap).
template <class I, class O>
void softmax_row_s8(const softmax_tables& t, const I* in, std::int64_t n, O* out) {
  if (n <= 0) return;
  std::int32_t max = in[0], min = in[0];
  for (std::int64_t i = 0; i < n; ++i) {
    max = std::max<std::int32_t>(max, in[i]);
    min = std::min<std::int32_t>(min, in[i]);
  }
  const std::int32_t* term = t.term.data() + 255 - max;  // term[x] = sum_term(e(x - max))
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += term[in[i]];
  const auto norm = softmax_math::normalizer::of_sum(sum);
  constexpr std::int32_t qmin = element_traits<O>::min, qmax = element_traits<O>::max;
  const std::int32_t range = max - min + 1;
  if (n <= range) {
    for (std::int64_t i = 0; i < n; ++i)
      out[i] = static_cast<O>(softmax_math::clamp_output(norm.scaled(t.exp(in[i] - max)), qmin, qmax));
    return;
  }
  std::array<O, 256> lut;  // lut[x - min] = output for input x
  for (std::int32_t x = min; x <= max; ++x)
    lut[static_cast<std::size_t>(x - min)] = static_cast<O>(softmax_math::clamp_output(norm.scaled(t.exp(x - max)), qmin, qmax));
  for (std::int64_t i = 0; i < n; ++i) out[i] = lut[static_cast<std::size_t>(in[i] - min)];
}

}  // namespace simd_detail

template <class I, class O>
status execute(const simd_backend&, const softmax_problem<I, O>& p) {
  const auto tables = simd_detail::softmax_tables::make(p.params);
  const bool contiguous = p.in_step() == 1 && p.out_step() == 1;
  std::vector<I> in_row(contiguous ? 0 : static_cast<std::size_t>(p.depth));
  std::vector<O> out_row(contiguous ? 0 : static_cast<std::size_t>(p.depth));
  for (std::int64_t r = 0; r < p.rows; ++r) {
    std::int64_t io = 0, oo = 0;
    p.row_offsets(r, &io, &oo);
    if (contiguous) {
      simd_detail::softmax_row_s8(tables, p.in.data() + io, p.depth, p.out.data() + oo);
      continue;
    }
    for (std::int64_t i = 0; i < p.depth; ++i) in_row[static_cast<std::size_t>(i)] = p.in.data()[io + i * p.in_step()];
    simd_detail::softmax_row_s8(tables, in_row.data(), p.depth, out_row.data());
    for (std::int64_t i = 0; i < p.depth; ++i) p.out.data()[oo + i * p.out_step()] = out_row[static_cast<std::size_t>(i)];
  }
  detail::simd_last_kernel_storage() = contiguous ? "softmax_8bit_table" : "softmax_8bit_table_strided";
  return {};
}

}  // namespace npuq
