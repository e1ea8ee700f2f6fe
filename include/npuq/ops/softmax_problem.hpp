// The softmax problem: what a validated softmax call hands to a backend, and its validation.
//
// Input and output are int8 or uint8 views of the same shape (any rank 1..6, any strides); the
// softmax runs over the last axis. The output is quantized with scale 1/256 and zero point -128
// (int8) or 0 (uint8), as TFLite requires; an output view that carries other quantization is
// rejected. The arithmetic is TFLite's reference (see softmax_params.hpp). Parameters of the
// onnxruntime_qlinear contract carry their own output scale and zero point instead (an output view
// with quantization must carry the same); its arithmetic is softmax_qlinear.hpp. Nothing is
// written when validation fails.
#pragma once

#include <cstdint>
#include <string>

#include "npuq/core/tensor.hpp"
#include "npuq/ops/output_stage.hpp"
#include "npuq/ops/softmax_params.hpp"
#include "npuq/ops/softmax_qlinear.hpp"

namespace npuq {

template <class I, class O>
struct softmax_problem {
  static_assert(is_8bit_v<I>, "softmax: input must be int8_t or uint8_t");
  static_assert(is_8bit_v<O>, "softmax: output must be int8_t or uint8_t");
  TensorView<const I> in;
  TensorView<O> out;
  softmax_params params;
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
// The output quantization TFLite fixes for an 8-bit softmax: scale 1/256, zero point = qmin.
template <class O>
status validate_softmax_output_quant(const Quant& q, const char* name) {
  if (!q.present()) return {};
  constexpr std::int32_t zp = element_traits<O>::min;
  if (q.granularity != quant_granularity::per_tensor || q.scale() != 1.0f / 256.0f || q.zero_point() != zp)
    return {errc::invalid_quantization, std::string(name) + ": softmax output must be quantized per tensor with scale 1/256 and zero point " +
                                            std::to_string(zp)};
  return {};
}

// QLinearSoftmax: y_zero_point must be a value of O, and an output view's quantization must be it.
template <class O>
status validate_qlinear_softmax_output(const softmax_params& p, const Quant& q, const char* name) {
  if (p.output_zero_point < element_traits<O>::min || p.output_zero_point > element_traits<O>::max)
    return {errc::invalid_quantization, std::string(name) + ": QLinearSoftmax y_zero_point " + std::to_string(p.output_zero_point) +
                                            " is outside the output type's range"};
  if (q.present() && (q.granularity != quant_granularity::per_tensor || q.scale() != p.output_scale ||
                      q.zero_point() != p.output_zero_point))
    return {errc::invalid_quantization, std::string(name) + ": quantization differs from the QLinearSoftmax parameters (y_scale " +
                                            std::to_string(p.output_scale) + ", y_zero_point " + std::to_string(p.output_zero_point) + ")"};
  return {};
}
}  // namespace detail

template <class I, class O>
status make_softmax_problem(const softmax_params& p, const TensorView<const I>& in, const TensorView<O>& out,
                            softmax_problem<I, O>* pb) {
  NPUQ_RETURN_IF_ERROR(p.validate());
  NPUQ_RETURN_IF_ERROR(in.validate("input"));
  NPUQ_RETURN_IF_ERROR(out.validate("output"));
  if (in.rank() < 1) return {errc::invalid_shape, "input: rank 0; softmax needs at least one axis"};
  if (out.rank() != in.rank()) return {errc::invalid_shape, "output: rank " + std::to_string(out.rank()) + ", expected " + std::to_string(in.rank())};
  for (int d = 0; d < in.rank(); ++d)
    if (out.dim(d) != in.dim(d))
      return {errc::invalid_shape, "output: shape " + out.layout().shape_string() + ", expected " + in.layout().shape_string()};
  if (p.contract == softmax_contract::onnxruntime_qlinear) {
    NPUQ_RETURN_IF_ERROR(detail::validate_qlinear_softmax_output<O>(p, out.quant(), "output"));
    NPUQ_RETURN_IF_ERROR(softmax_math::qlinear::check_row_length(p, in.dim(in.rank() - 1)));
  } else {
    NPUQ_RETURN_IF_ERROR(detail::validate_softmax_output_quant<O>(out.quant(), "output"));
  }
  NPUQ_RETURN_IF_ERROR(detail::validate_output_memory(out, in));
  pb->in = in;
  pb->out = out;
  pb->params = p;
  pb->depth = in.dim(in.rank() - 1);
  pb->rows = pb->depth == 0 ? 0 : in.size() / pb->depth;
  return {};
}

}  // namespace npuq
