// GEMM with sparse weights: parameters, validation, and the validated problem every backend
// executes.
//
// This exists so that the sparse weight formats of formats/sparse.hpp (2:4 structured, block CSR,
// unstructured CSR) are GEMM operands on every backend without being decompressed first. The
// contract is the dense GEMM's (gemm_problem.hpp) on the decompressed weights:
//
//   out[..., m, n] = requant( sum_k (a[..., m, k] - a_zp) * W[k, n] + bias[n] )
//
// A is [..., M, K] int8/uint8 with a per-tensor zero point; W is the sparse matrix's logical
// [K, N] int8 matrix (zero point 0, per-tensor or per-column scales in its `quant`), shared by
// every batch; the output is int32 or int8/uint8 requantized under the profile, with the dense
// GEMM's output stage (the same gemm_params). Because zero weights add nothing, a backend may
// skip them: with wrap-around or saturate-at-end accumulators the sum is the same number, and with
// saturate-after-every-add accumulators adding 0 never changes a partial sum (it is already inside
// the range), so the sequence of partial sums over the stored entries in ascending k is the dense
// reference's sequence with its repeats removed.
//
// The problem refers to the weight object (`b`), whatever its type: the formats of sparse.hpp,
// or a backend's own packed form of them (simd's packed_sparse_* types). Validation runs
// completely before anything is written, and checks the sparse matrix itself (S::validate).
#pragma once

#include <cstdint>
#include <string>

#include "npuq/formats/sparse.hpp"
#include "npuq/ops/gemm_problem.hpp"

namespace npuq {

template <class A, class S, class O>
struct gemm_sparse_problem {
  static_assert(is_8bit_v<A>, "gemm (sparse weights): A must be int8_t or uint8_t");
  static_assert(is_op_output_v<O>, "gemm (sparse weights): output must be int8_t, uint8_t or int32_t");

  TensorView<const A> a;
  const S* b = nullptr;                 // the sparse weights, logical [K, N]
  TensorView<const std::int32_t> bias;  // rank 0 when absent
  TensorView<O> out;
  output_stage stage;
  std::int64_t M = 0, N = 0, K = 0;
  std::int32_t a_zero_point = 0;

  // Leading batch dimensions of A and the output (B is shared), and their strides.
  int batch_rank = 0;
  std::int64_t batch_shape[4] = {1, 1, 1, 1};
  std::int64_t a_bstride[4] = {}, o_bstride[4] = {};

  bool has_bias() const { return bias.rank() == 1; }
  std::int64_t batch_count() const {
    std::int64_t n = 1;
    for (int i = 0; i < batch_rank; ++i) n *= batch_shape[i];
    return n;
  }
  // Element offsets (relative to each view's origin) of batch number `index`.
  void batch_offsets(std::int64_t index, std::int64_t* ao, std::int64_t* oo) const {
    *ao = *oo = 0;
    for (int d = batch_rank - 1; d >= 0; --d) {
      const std::int64_t i = index % batch_shape[d];
      index /= batch_shape[d];
      *ao += i * a_bstride[d];
      *oo += i * o_bstride[d];
    }
  }
  // Element offsets of row m of batch offset (ao, oo): A row start and output row start.
  std::int64_t a_row(std::int64_t ao, std::int64_t m) const { return a.offset() + ao + m * a.layout().stride(a.rank() - 2); }
  std::int64_t out_row(std::int64_t oo, std::int64_t m) const { return out.offset() + oo + m * out.layout().stride(out.rank() - 2); }
};

// Validates a GEMM call with sparse weights `b` (any type with K, N, quant, validate(name) and a
// storage_overlaps(view, b) overload) and fills *pb. Nothing is written on failure.
template <class A, class S, class O>
status make_gemm_sparse_problem(const gemm_params& p, const TensorView<const A>& a, const S& b, const TensorView<const std::int32_t>& bias,
                                const TensorView<O>& out, gemm_sparse_problem<A, S, O>* pb) {
  NPUQ_RETURN_IF_ERROR(a.validate("a"));
  NPUQ_RETURN_IF_ERROR(b.validate("b"));
  NPUQ_RETURN_IF_ERROR(out.validate("output"));
  const int r = a.rank();
  if (r < 2 || r > 6) return {errc::invalid_shape, "a: rank " + std::to_string(r) + ", expected 2..6 ([..., M, K])"};
  if (out.rank() != r) return {errc::invalid_shape, "output: rank " + std::to_string(out.rank()) + ", expected " + std::to_string(r)};
  const std::int64_t M = a.dim(r - 2), K = a.dim(r - 1), N = b.N;
  if (b.K != K)
    return {errc::invalid_shape, "b: sparse matrix is [" + std::to_string(b.K) + "," + std::to_string(b.N) + "] with K = " +
                                     std::to_string(b.K) + ", a has K = " + std::to_string(K)};
  for (int d = 0; d < r - 2; ++d)
    if (out.dim(d) != a.dim(d))
      return {errc::invalid_shape, "output: batch dimension " + std::to_string(d) + " is " + std::to_string(out.dim(d)) + ", a has " +
                                       std::to_string(a.dim(d))};
  if (out.dim(r - 2) != M || out.dim(r - 1) != N)
    return {errc::invalid_shape, detail::dims_mismatch("output", out.layout(), "[..., " + std::to_string(M) + ", " + std::to_string(N) + "]")};

  NPUQ_RETURN_IF_ERROR(validate_quant(a.quant(), a.layout(), a.type(), "a", false));
  if (a.quant().present() && a.quant().granularity != quant_granularity::per_tensor)
    return {errc::invalid_quantization, "a: activations must be quantized per tensor"};
  NPUQ_RETURN_IF_ERROR(validate_output_quant(out.quant(), out.layout(), out.type(), "output"));
  NPUQ_RETURN_IF_ERROR(detail::validate_bias(bias, N));
  // The weights' scales through a data-less [K, N] view (b.validate checked them for that layout).
  const TensorView<const std::int8_t> w(nullptr, Layout::matrix(K, N), b.quant);
  NPUQ_RETURN_IF_ERROR(detail::make_output_stage(p, a, w, out, N, 1, &pb->stage, "a", "b"));
  NPUQ_RETURN_IF_ERROR(detail::validate_output_memory(out, a, bias));
  if (storage_overlaps(out, b)) return {errc::aliasing, "output: memory overlaps the sparse weights' storage; use a separate buffer"};

  pb->a = detail::addressable(a);  // an empty A (K = 0): row-major strides (tensor.hpp)
  pb->b = &b;
  pb->bias = bias;
  pb->out = out;
  pb->M = M;
  pb->N = N;
  pb->K = K;
  pb->a_zero_point = a.quant().zero_point();
  pb->batch_rank = r - 2;
  for (int d = 0; d < r - 2; ++d) {
    pb->batch_shape[d] = a.dim(d);
    pb->a_bstride[d] = a.size() != 0 ? a.layout().stride(d) : 0;  // an empty view addresses nothing: any stride passed its checks
    pb->o_bstride[d] = out.layout().stride(d);
  }
  return {};
}

}  // namespace npuq
