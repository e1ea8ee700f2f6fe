// The int16 softmax problem: what a validated int16 softmax call hands to a backend.
//
// Input and output are int16 views of the same shape (any rank 1..6, any strides); the softmax
// runs over the last axis. As TFLite requires, the input zero point is 0 and the output is
// quantized with scale 1/32768 and zero point 0; views carrying other quantization are rejected
// (views without quantization are accepted). The arithmetic is TFLite's int16 reference (see
// softmax_int16_params.hpp). Nothing is written when validation fails.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>

#include "npuq/core/tensor.hpp"
#include "npuq/ops/output_stage.hpp"
#include "npuq/ops/softmax_int16_params.hpp"

namespace npuq {

struct softmax_int16_problem {
  TensorView<const std::int16_t> in;
  TensorView<std::int16_t> out;
  softmax_int16_params params;
  std::int64_t rows = 0, depth = 0;

  // Element offsets of row r's first element in the input and the output (relative to data()).
  void row_offsets(std::int64_t r, std::int64_t* io, std::int64_t* oo) const {
    *io = in.offset();
    *oo = out.offset();
    for (int d = in.rank() - 2; d >= 0; --d) {
      const std::int64_t i = r % in.dim(d);
      r /= in.dim(d);
      *io += i * in.layout().stride(d);
      *oo += i * out.layout().stride(d);
    }
  }
  std::int64_t in_step() const { return in.layout().stride(in.rank() - 1); }
  std::int64_t out_step() const { return out.layout().stride(out.rank() - 1); }
};

namespace detail {
// Per-tensor quantization with zero point 0 and, if `scale` > 0, that scale; absent is accepted.
inline status validate_softmax_int16_quant(const Quant& q, const char* name, float scale, const char* what) {
  if (!q.present()) return {};
  const bool per_tensor = q.granularity == quant_granularity::per_tensor && q.scales.size() == 1 && q.zero_points.size() <= 1;
  if (!per_tensor || !(std::isfinite(q.scales[0]) && q.scales[0] > 0.0f) || (scale > 0.0f && q.scales[0] != scale) ||
      q.zero_point() != 0)
    return {errc::invalid_quantization, std::string(name) + ": int16 softmax " + name + " must be quantized per tensor with " + what};
  return {};
}
}  // namespace detail

inline status make_softmax_int16_problem(const softmax_int16_params& p, const TensorView<const std::int16_t>& in,
                                         const TensorView<std::int16_t>& out, softmax_int16_problem* pb) {
  NPUQ_RETURN_IF_ERROR(p.validate());
  NPUQ_RETURN_IF_ERROR(in.validate("input"));
  NPUQ_RETURN_IF_ERROR(out.validate("output"));
  if (in.rank() < 1) return {errc::invalid_shape, "input: rank 0; softmax needs at least one axis"};
  if (out.rank() != in.rank()) return {errc::invalid_shape, "output: rank " + std::to_string(out.rank()) + ", expected " + std::to_string(in.rank())};
  for (int d = 0; d < in.rank(); ++d)
    if (out.dim(d) != in.dim(d))
      return {errc::invalid_shape, "output: shape " + out.layout().shape_string() + ", expected " + in.layout().shape_string()};
  NPUQ_RETURN_IF_ERROR(detail::validate_softmax_int16_quant(in.quant(), "input", 0.0f, "zero point 0"));
  NPUQ_RETURN_IF_ERROR(detail::validate_softmax_int16_quant(out.quant(), "output", 1.0f / 32768.0f, "scale 1/32768 and zero point 0"));
  NPUQ_RETURN_IF_ERROR(detail::validate_output_memory(out, in));
  pb->in = in;
  pb->out = out;
  pb->params = p;
  pb->depth = in.dim(in.rank() - 1);
  pb->rows = pb->depth == 0 ? 0 : in.size() / pb->depth;
  return {};
}

}  // namespace npuq
