// Group-wise int4 GEMM (W4A8 with one scale per group of K): parameters, validation, and the
// validated problem every backend executes.
//
// Why a separate problem: group scales along K cannot be folded into one output multiplier, so
// the int32 contract of gemm_problem does not apply. LLM weight formats (ONNX Runtime
// MatMulNBits, ggml Q4_0, GPTQ/AWQ) dequantize per group, and the runtimes reduce in float. npuq
// fixes that float reduction so every backend and ISA level returns the same bits:
//
//   isum[m, n, g] = sum over k in group g of (a[m, k] - a_zp) * (b[k, n] - b_zp[n, g])   (exact)
//   s[n, g]       = fl(a_scale * b_scale[n, g])                                         (fp32)
//   acc[m, n]     = 0.0f; for g = 0, 1, ..., G-1: acc = fl(acc + fl(float(isum) * s[n, g]))
//   y[m, n]       = bias ? fl(acc + bias[n]) : acc
//
// Every fl() is one IEEE binary32 operation rounded to nearest even, in this order, with no
// fused multiply-add (the kernels prevent contraction). float(isum) is exact: group sizes are
// capped so |isum| < 2^24. Float output stores y; int8/uint8 output stores
// clamp(zp + round_half_even(fl(y / out_scale))) with the fused clamp of gemm_params (ONNX
// QuantizeLinear after MatMulNBits). The numerics profile does not enter: nothing is requantized
// in integers.
//
// A is [M, K] int8 or uint8 with a per-tensor scale and zero point; B is int4 [K, N] (a weight
// stored [N, K] is passed through Layout::col_major(K, N)) with Quant::per_group(1, 0, group_size,
// scales [N][G], zero points: one shared or one per group, in [-8, 7]). Per-tensor and per-channel
// (axis 1) quantization are accepted as a single group of K.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/formats/int4.hpp"
#include "npuq/ops/gemm_problem.hpp"
#include "npuq/ops/output_stage.hpp"

namespace npuq {

struct gemm_grouped_params {
  clamp_spec clamp{};                          // int8 / uint8 output only
  int4_range int4_weights = int4_range::full;  // accepted values of B (TOSA: symmetric)
};

// Largest group: (255 * 15) * group < 2^24 keeps float(isum) exact.
constexpr std::int64_t max_int4_group_size = 4096;

template <class O>
constexpr bool is_grouped_output_v = is_8bit_v<O> || std::is_same<O, float>::value;

template <class A, class O>
struct gemm_grouped_problem {
  static_assert(is_8bit_v<A>, "gemm_grouped: A must be int8_t or uint8_t");
  static_assert(is_grouped_output_v<O>, "gemm_grouped: output must be float, int8_t or uint8_t");

  TensorView<const A> a;
  TensorView<const int4> b;       // data is null when the weights come packed
  TensorView<const float> bias;   // rank 0 when absent
  TensorView<O> out;
  std::int64_t M = 0, N = 0, K = 0, group_size = 0, groups = 0;
  std::int32_t a_zero_point = 0;
  float a_scale = 1.0f;
  // int8 / uint8 output: 1 / scale is not used; y / out_scale is.
  float out_scale = 1.0f;
  std::int32_t out_zero_point = 0, lo = 0, hi = 0;

  bool has_bias() const { return bias.rank() == 1; }
  float b_scale(std::int64_t n, std::int64_t g) const { return b.quant().scale(n * groups + g); }
  std::int32_t b_zero_point(std::int64_t n, std::int64_t g) const { return b.quant().zero_point(n * groups + g); }
};

namespace detail {

// Keeps a float product from being fused into a following addition (FMA contraction): the
// grouped contract rounds the product and the sum separately.
inline float fp_barrier(float v) {
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
  __asm__("" : "+x"(v));
#elif defined(__GNUC__) && defined(__aarch64__)
  __asm__("" : "+w"(v));
#else
  volatile float keep = v;
  v = keep;
#endif
  return v;
}

// The output of the grouped contract for one element: y (see the top) -> stored value.
template <class O>
O grouped_store_value(float y, float out_scale, std::int32_t zp, std::int32_t lo, std::int32_t hi) {
  if constexpr (std::is_same<O, float>::value) {
    (void)out_scale, (void)zp, (void)lo, (void)hi;
    return y;
  } else {
    const float v = y / out_scale;
    double q = round_double(static_cast<double>(v), rounding::half_even);
    const double qlo = static_cast<double>(lo) - zp, qhi = static_cast<double>(hi) - zp;
    q = q < qlo ? qlo : (q > qhi ? qhi : q);
    return static_cast<O>(static_cast<std::int32_t>(q) + zp);
  }
}

// Group size and count of B's quantization (per_group along K, or one group).
inline status grouped_weight_quant(const Quant& q, std::int64_t K, std::int64_t N, std::int64_t* group_size, std::int64_t* groups) {
  if (!q.present()) return {errc::invalid_quantization, "b: scales are required for the float contract"};
  if (q.granularity == quant_granularity::per_group) {
    if (q.axis != 1 || q.group_axis != 0)
      return {errc::invalid_quantization, "b: group-wise scales must be per column (axis 1) in groups along K (group axis 0)"};
    if (q.group_size > max_int4_group_size)
      return {errc::invalid_quantization, "b: group size " + std::to_string(q.group_size) + " exceeds " +
                                              std::to_string(max_int4_group_size) + " (float(isum) must stay exact)"};
    *group_size = q.group_size;
  } else {
    if (q.granularity == quant_granularity::per_axis && q.axis != 1)
      return {errc::invalid_quantization, "b: per-channel scales must be along axis 1 (N)"};
    if (K > max_int4_group_size)
      return {errc::invalid_quantization, "b: one group of K = " + std::to_string(K) + " exceeds " +
                                              std::to_string(max_int4_group_size) + "; use group-wise scales"};
    *group_size = K > 0 ? K : 1;
  }
  *groups = ceil_div(K, *group_size);  // K may be INT64_MAX (zero strides): K + group_size - 1 overflowed
  (void)N;
  return {};
}

}  // namespace detail

// Validates a grouped GEMM. b_is_descriptor: b carries no data (packed weights describe their
// logical [K, N] and quantization through it).
template <class A, class O>
status make_gemm_grouped_problem(const gemm_grouped_params& p, const TensorView<const A>& a, const TensorView<const int4>& b,
                                 const TensorView<const float>& bias, const TensorView<O>& out, gemm_grouped_problem<A, O>* pb,
                                 bool b_is_descriptor = false) {
  NPUQ_RETURN_IF_ERROR(a.validate("a"));
  if (!b_is_descriptor) NPUQ_RETURN_IF_ERROR(b.validate("b"));
  NPUQ_RETURN_IF_ERROR(out.validate("output"));
  if (a.rank() != 2) return {errc::invalid_shape, "a: rank " + std::to_string(a.rank()) + ", expected 2 ([M, K])"};
  if (b.rank() != 2) return {errc::invalid_shape, "b: rank " + std::to_string(b.rank()) + ", expected 2 ([K, N])"};
  if (out.rank() != 2) return {errc::invalid_shape, "output: rank " + std::to_string(out.rank()) + ", expected 2 ([M, N])"};
  const std::int64_t M = a.dim(0), K = a.dim(1), N = b.dim(1);
  if (b.dim(0) != K)
    return {errc::invalid_shape, "b: shape " + b.layout().shape_string() + " has K = " + std::to_string(b.dim(0)) + ", a has K = " +
                                     std::to_string(K)};
  if (out.dim(0) != M || out.dim(1) != N)
    return {errc::invalid_shape, detail::dims_mismatch("output", out.layout(), "[" + std::to_string(M) + ", " + std::to_string(N) + "]")};
  NPUQ_RETURN_IF_ERROR(validate_quant(a.quant(), a.layout(), a.type(), "a", true));
  if (a.quant().granularity != quant_granularity::per_tensor)
    return {errc::invalid_quantization, "a: activations must be quantized per tensor"};
  // Packed weights were validated when packed; their descriptor carries the granularity and
  // group size only (copying and rescanning N * G scales per call would cost a GEMV dearly).
  if (!b_is_descriptor) NPUQ_RETURN_IF_ERROR(validate_quant(b.quant(), b.layout(), dtype::s4, "b", true));
  std::int64_t gs = 0, groups = 0;
  NPUQ_RETURN_IF_ERROR(detail::grouped_weight_quant(b.quant(), K, N, &gs, &groups));
  if (!b_is_descriptor) NPUQ_RETURN_IF_ERROR(check_int4_range(b, p.int4_weights, "b"));
  if (bias.data() != nullptr || bias.rank() != 0) {
    NPUQ_RETURN_IF_ERROR(bias.validate("bias"));
    if (bias.rank() != 1 || bias.dim(0) != N)
      return {errc::invalid_shape, "bias: shape " + bias.layout().shape_string() + ", expected [" + std::to_string(N) + "]"};
  }
  if constexpr (std::is_same<O, float>::value) {
    if (p.clamp.kind != activation::none)
      return {errc::unsupported, "clamp: a fused activation needs an int8 or uint8 output, not float"};
  } else {
    // The quantized output's zero point and clamp bounds, resolved by the shared output stage
    // (an explicit fp32 requant entry keeps it from deriving multipliers from B's group scales).
    output_params op;
    op.numerics = numerics_profile::onnx();
    op.clamp = p.clamp;
    op.requant = {requant_channel{0, 0, 1.0f}};
    output_stage st;
    NPUQ_RETURN_IF_ERROR(validate_quant(out.quant(), out.layout(), out.type(), "output", false));
    NPUQ_RETURN_IF_ERROR(detail::make_output_stage(op, a, b, out, N, 1, &st, "a", "b"));
    pb->out_scale = out.quant().scale();
    pb->out_zero_point = st.zero_point;
    pb->lo = st.lo;
    pb->hi = st.hi;
  }
  NPUQ_RETURN_IF_ERROR(detail::validate_output_memory(out, a, b, bias));
  pb->a = a;
  pb->b = b;
  pb->bias = bias;
  pb->out = out;
  pb->M = M;
  pb->N = N;
  pb->K = K;
  pb->group_size = gs;
  pb->groups = groups;
  pb->a_zero_point = a.quant().zero_point();
  pb->a_scale = a.quant().scale();
  return {};
}

}  // namespace npuq
