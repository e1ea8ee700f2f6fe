// GEMM: parameters, validation, and the validated problem every backend executes.
//
// out[..., m, n] = requant( sum_k (a[..., m, k] - a_zp) * (b[..., k, n] - b_zp[n]) + bias[n] )
//
// A is [..., M, K] and B is [K, N] (shared by every batch) or [..., K, N] with the same leading
// batch dimensions; a weight matrix stored [N, K] is passed as B through Layout::col_major(K, N)
// (or any transposed view). A is int8 or uint8 with a per-tensor zero point. B is int8 or uint8
// with per-tensor or per-column (axis = last) scales and zero points, as ONNX allows. The output
// is int32 (raw accumulators, e.g. ONNX MatMulInteger) or int8/uint8 requantized under the
// profile with a fused clamp.
//
// B may also be packed int4 (`TensorView<const int4>`, W4A8): the same contract on the
// sign-extended values, so the results are the int8 GEMM's on the unpacked weights under every
// profile. gemm_params::int4_weights picks the accepted value range (TFLite [-8, 7] by default,
// TOSA's symmetric [-7, 7] on request, checked over every weight). Group-wise int4 scales along K
// do not fold into one output multiplier: they go through gemm_grouped (gemm_grouped.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/formats/int4.hpp"
#include "npuq/ops/output_stage.hpp"

namespace npuq {

struct gemm_params : output_params {
  int4_range int4_weights = int4_range::full;  // accepted values of int4 B (TOSA: symmetric)
};

template <class B>
constexpr bool is_gemm_weight_v = is_8bit_v<B> || std::is_same<B, int4>::value;

template <class A, class B, class O>
struct gemm_problem {
  static_assert(is_8bit_v<A>, "gemm: A must be int8_t or uint8_t");
  static_assert(is_gemm_weight_v<B>, "gemm: B must be int8_t, uint8_t or int4");
  static_assert(is_op_output_v<O>, "gemm: output must be int8_t, uint8_t or int32_t");

  TensorView<const A> a;
  TensorView<const B> b;
  TensorView<const std::int32_t> bias;  // rank 0 when absent
  TensorView<O> out;
  output_stage stage;
  std::int64_t M = 0, N = 0, K = 0;
  std::int32_t a_zero_point = 0;
  std::vector<std::int32_t> b_zero_point;  // N entries

  // Leading batch dimensions (rank of A minus 2) and their strides in each operand.
  int batch_rank = 0;
  std::int64_t batch_shape[4] = {1, 1, 1, 1};
  std::int64_t a_bstride[4] = {}, b_bstride[4] = {}, o_bstride[4] = {};

  bool has_bias() const { return bias.rank() == 1; }
  std::int64_t batch_count() const {
    std::int64_t n = 1;
    for (int i = 0; i < batch_rank; ++i) n *= batch_shape[i];
    return n;
  }
  // Element offsets (relative to each view's origin) of batch number `index`.
  void batch_offsets(std::int64_t index, std::int64_t* ao, std::int64_t* bo, std::int64_t* oo) const {
    *ao = *bo = *oo = 0;
    for (int d = batch_rank - 1; d >= 0; --d) {
      const std::int64_t i = index % batch_shape[d];
      index /= batch_shape[d];
      *ao += i * a_bstride[d];
      *bo += i * b_bstride[d];
      *oo += i * o_bstride[d];
    }
  }
};

namespace detail {
inline std::string dims_mismatch(const char* what, const Layout& got, const std::string& expect) {
  return std::string(what) + ": shape " + got.shape_string() + ", expected " + expect;
}

// int4 weights under the symmetric (TOSA) range must not hold -8; the full range needs no scan.
template <class B>
status validate_int4_range(const TensorView<const B>& b, int4_range range, const char* name) {
  if constexpr (std::is_same<B, int4>::value) return check_int4_range(b, range, name);
  (void)b, (void)range, (void)name;
  return {};
}
}  // namespace detail

template <class A, class B, class O>
status make_gemm_problem(const gemm_params& p, const TensorView<const A>& a, const TensorView<const B>& b,
                         const TensorView<const std::int32_t>& bias, const TensorView<O>& out, gemm_problem<A, B, O>* pb,
                         bool b_is_descriptor = false) {
  // b_is_descriptor: b has no data (packed weights describe their logical [K, N] through it).
  NPUQ_RETURN_IF_ERROR(a.validate("a"));
  if (!b_is_descriptor) NPUQ_RETURN_IF_ERROR(b.validate("b"));
  NPUQ_RETURN_IF_ERROR(out.validate("output"));
  const int r = a.rank();
  if (r < 2 || r > 6) return {errc::invalid_shape, "a: rank " + std::to_string(r) + ", expected 2..6 ([..., M, K])"};
  if (b.rank() != 2 && b.rank() != r)
    return {errc::invalid_shape, "b: rank " + std::to_string(b.rank()) + ", expected 2 ([K, N]) or " + std::to_string(r) +
                                     " (same batch dimensions as a)"};
  if (out.rank() != r) return {errc::invalid_shape, "output: rank " + std::to_string(out.rank()) + ", expected " + std::to_string(r)};
  const std::int64_t M = a.dim(r - 2), K = a.dim(r - 1), N = b.dim(b.rank() - 1);
  if (b.dim(b.rank() - 2) != K)
    return {errc::invalid_shape, "b: shape " + b.layout().shape_string() + " has K = " + std::to_string(b.dim(b.rank() - 2)) +
                                     ", a has K = " + std::to_string(K)};
  for (int d = 0; d < r - 2; ++d) {
    if (b.rank() == r && b.dim(d) != a.dim(d))
      return {errc::invalid_shape, "b: batch dimension " + std::to_string(d) + " is " + std::to_string(b.dim(d)) + ", a has " +
                                       std::to_string(a.dim(d))};
    if (out.dim(d) != a.dim(d))
      return {errc::invalid_shape, "output: batch dimension " + std::to_string(d) + " is " + std::to_string(out.dim(d)) +
                                       ", a has " + std::to_string(a.dim(d))};
  }
  if (out.dim(r - 2) != M || out.dim(r - 1) != N)
    return {errc::invalid_shape, detail::dims_mismatch("output", out.layout(), "[..., " + std::to_string(M) + ", " + std::to_string(N) + "]")};

  NPUQ_RETURN_IF_ERROR(validate_quant(a.quant(), a.layout(), a.type(), "a", false));
  if (a.quant().present() && a.quant().granularity != quant_granularity::per_tensor)
    return {errc::invalid_quantization, "a: activations must be quantized per tensor"};
  NPUQ_RETURN_IF_ERROR(validate_quant(b.quant(), b.layout(), b.type(), "b", false));
  NPUQ_RETURN_IF_ERROR(detail::validate_weight_zero_points(b, b.rank() - 1, "b"));
  if (!b_is_descriptor) NPUQ_RETURN_IF_ERROR(detail::validate_int4_range(b, p.int4_weights, "b"));
  NPUQ_RETURN_IF_ERROR(validate_output_quant(out.quant(), out.layout(), out.type(), "output"));
  NPUQ_RETURN_IF_ERROR(detail::validate_bias(bias, N));
  NPUQ_RETURN_IF_ERROR(detail::make_output_stage(p, a, b, out, N, b.rank() - 1, &pb->stage, "a", "b"));
  NPUQ_RETURN_IF_ERROR(detail::validate_output_memory(out, a, b, bias));

  pb->a = detail::addressable(a);  // an empty A or B (K = 0): row-major strides (tensor.hpp)
  pb->b = b_is_descriptor ? b : detail::addressable(b);
  pb->bias = bias;
  pb->out = out;
  pb->M = M;
  pb->N = N;
  pb->K = K;
  pb->a_zero_point = a.quant().zero_point();
  // One zero point per column, for the backends. Only a non-empty output is executed
  // (run_validated), and then N is at most its element count; an empty one may have any N (an
  // empty [0, 2^62] output over zero-stride weights is valid), so nothing is sized from N.
  pb->b_zero_point.clear();
  if (out.size() != 0) {
    pb->b_zero_point.resize(static_cast<std::size_t>(N));
    for (std::int64_t n = 0; n < N; ++n) pb->b_zero_point[static_cast<std::size_t>(n)] = b.quant().zero_point(n);
  }
  pb->batch_rank = r - 2;
  for (int d = 0; d < r - 2; ++d) {
    pb->batch_shape[d] = a.dim(d);
    pb->a_bstride[d] = a.size() != 0 ? a.layout().stride(d) : 0;  // an empty view addresses nothing: any stride passed its checks
    pb->b_bstride[d] = b.rank() == r && b.size() != 0 ? b.layout().stride(d) : 0;
    pb->o_bstride[d] = out.layout().stride(d);
  }
  return {};
}

}  // namespace npuq
