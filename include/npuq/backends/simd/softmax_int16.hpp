// simd int16 softmax: TFLite's SoftmaxInt16 passes on contiguous rows, bit-identical to the reference.
//
// The table lookups of an int16 row are gathers with data-dependent indices, so the win over the
// reference is in the memory traffic, not in vector arithmetic: a row is read through a plain
// pointer (strided rows are first copied into a contiguous buffer), the maximum pass is a
// vectorizable loop, and the exponentials are computed once and cached in the output row
// between the sum and the final scaling, as TFLite's kernel does, instead of twice. The per-element
// arithmetic is the shared softmax_int16_math, so the integers are the reference's by
// construction; the tests compare the two backends.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "npuq/backends/simd/backend.hpp"
#include "npuq/ops/softmax_int16_problem.hpp"

namespace npuq {
namespace simd_detail {

// Softmax of the contiguous int16 row in[0, n) into out[0, n) (in and out may not overlap).
inline void softmax_row_s16(const softmax_int16_params& p, const std::int16_t* in, std::int64_t n, std::int16_t* out) {
  if (n <= 0) return;
  std::int16_t max = in[0];
  for (std::int64_t i = 1; i < n; ++i) max = std::max(max, in[i]);
  std::int64_t sum = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = softmax_int16_math::exp_of_diff(p, std::int32_t{in[i]} - max);
    sum += out[i];
  }
  const auto norm = softmax_int16_math::normalizer::of_sum(p, sum);
  for (std::int64_t i = 0; i < n; ++i) out[i] = norm.scaled(out[i]);
}

}  // namespace simd_detail

inline status execute(const simd_backend&, const softmax_int16_problem& p) {
  const bool contiguous = p.in_step() == 1 && p.out_step() == 1;
  std::vector<std::int16_t> in_row(contiguous ? 0 : static_cast<std::size_t>(p.depth));
  std::vector<std::int16_t> out_row(contiguous ? 0 : static_cast<std::size_t>(p.depth));
  for (std::int64_t r = 0; r < p.rows; ++r) {
    std::int64_t io = 0, oo = 0;
    p.row_offsets(r, &io, &oo);
    if (contiguous) {
      simd_detail::softmax_row_s16(p.params, p.in.data() + io, p.depth, p.out.data() + oo);
      continue;
    }
    for (std::int64_t i = 0; i < p.depth; ++i) in_row[static_cast<std::size_t>(i)] = p.in.data()[io + i * p.in_step()];
    simd_detail::softmax_row_s16(p.params, in_row.data(), p.depth, out_row.data());
    for (std::int64_t i = 0; i < p.depth; ++i) p.out.data()[oo + i * p.out_step()] = out_row[static_cast<std::size_t>(i)];
  }
  detail::simd_last_kernel_storage() = contiguous ? "softmax_s16_lut" : "softmax_s16_lut_strided";
  return {};
}

}  // namespace npuq
