// simd int16 softmax: TFLite's SoftmaxInt16 passes on contiguous rows, bit-identical to the reference.
//
// The table lookups of an int16 row are gathers with data-dependent indices, so the win over the
// reference is in the memory traffic, not in vector arithmetic: a row is read through a plain
// pointer (strided rows are first copied into a contiguous buffer), the maximum pass is a
// vectorizable loop, and the exponentials are computed once and cached in the output row
// between the sum and the final scaling, as TFLite's kernel does, instead of twice. The per-element
// arithmetic is the shared softmax_int16_math, so the integers are the reference's by
// construction; the tests compare the two backends. Rows are split over the backend's threads
// as 8-bit softmax splits them (each row computed by one thread, so the bytes do not depend on
// the count); the one-shot call and softmax_int16_plan (plan.hpp) run the same driver.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "npuq/backends/simd/backend.hpp"
#include "npuq/backends/simd/softmax.hpp"  // softmax_parts
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

// Rows [r0, r1) of p; strided rows go through in_row and out_row (p.depth elements each).
inline void softmax_rows_s16(const softmax_int16_problem& p, std::int64_t r0, std::int64_t r1, std::int16_t* in_row,
                             std::int16_t* out_row) {
  const bool contiguous = p.in_step() == 1 && p.out_step() == 1;
  for (std::int64_t r = r0; r < r1; ++r) {
    std::int64_t io = 0, oo = 0;
    p.row_offsets(r, &io, &oo);
    if (contiguous) {
      softmax_row_s16(p.params, p.in.data() + io, p.depth, p.out.data() + oo);
      continue;
    }
    for (std::int64_t i = 0; i < p.depth; ++i) in_row[i] = p.in.data()[io + i * p.in_step()];
    softmax_row_s16(p.params, in_row, p.depth, out_row);
    for (std::int64_t i = 0; i < p.depth; ++i) p.out.data()[oo + i * p.out_step()] = out_row[i];
  }
}

// The whole int16 softmax on up to `threads` threads, the rows split as the 8-bit softmax splits
// them (softmax_parts); every row is computed alone, so the bytes do not depend on the split.
// in_rows and out_rows hold softmax_parts(...) * p.depth elements each (used for strided rows only).
inline void run_softmax_s16_on(int threads, const softmax_int16_problem& p, std::int16_t* in_rows, std::int16_t* out_rows) {
  const std::int64_t parts = softmax_parts(threads, p.rows, p.depth);
  detail::parallel_parts(threads, parts, [&](std::int64_t part) {
    const std::int64_t r0 = part * (p.rows / parts) + std::min(part, p.rows % parts);
    const std::int64_t r1 = r0 + p.rows / parts + (part < p.rows % parts ? 1 : 0);
    softmax_rows_s16(p, r0, r1, in_rows + part * p.depth, out_rows + part * p.depth);
  });
}

// Elements of each row buffer the driver needs for p on `threads` threads (0 for contiguous rows).
inline std::size_t softmax_s16_row_space(int threads, const softmax_int16_problem& p) {
  const bool contiguous = p.in_step() == 1 && p.out_step() == 1;
  return contiguous ? 0 : static_cast<std::size_t>(softmax_parts(threads, p.rows, p.depth) * p.depth);
}

inline const char* softmax_s16_kernel_name(bool contiguous) { return contiguous ? "softmax_s16_lut" : "softmax_s16_lut_strided"; }

}  // namespace simd_detail

inline status execute(const simd_backend& be, const softmax_int16_problem& p) {
  const std::size_t row_space = simd_detail::softmax_s16_row_space(be.thread_count(), p);
  std::vector<std::int16_t> in_rows(row_space), out_rows(row_space);
  simd_detail::run_softmax_s16_on(be.thread_count(), p, in_rows.data(), out_rows.data());
  detail::simd_last_kernel_storage() = simd_detail::softmax_s16_kernel_name(p.in_step() == 1 && p.out_step() == 1);
  return {};
}

}  // namespace npuq
