// Plans (plan.hpp) for the int4-weight (W4A8) ops of the simd backend.
//
// Why a header of their own: the int4 GEMM and GEMV read nibble panels (gemm_int4.hpp), not the
// int8 driver's packed weights, so they need plans of their own shape, while the call pattern
// users want is the one of the int8 plans: create once (validate, pack the nibbles, build the
// output stage, size A's prepared rows), then run many times allocating nothing and writing the
// one-shot call's bytes. Runs split the 16-column panels over the backend's threads, each panel
// computed by one thread, so the bytes do not depend on the thread count.
//
//   make_gemm_plan(be, params, a, b_int4, bias, out)          per-tensor / per-channel int4 B
//     (Tensor<int4>, TensorView<int4> or packed_int4_weights) -> gemm_int4_plan<A, O>
//   make_gemm_grouped_plan(be, params, a, b_int4, bias, out)  group-wise scales along K
//     (the float contract of gemm_grouped_problem.hpp)        -> gemm_grouped_plan<A, O>
//   make_conv2d_plan(be, params, input, w_int4, bias, out[, range])  (range: params.int4_weights)
//     widens the weights once (as conv2d_int4 does per call)  -> conv2d_plan<I, int8_t, O>
//   make_depthwise_plan(be, params, input, w_int4, bias, out[, range])  (likewise)
//     widens the weights once (as depthwise_conv2d_int4 does) -> depthwise_plan<I, int8_t, O>
//
// Each has a try_make_* form returning a status. As with the int8 plans, the shapes and all
// quantization parameters are fixed at creation; accumulators that saturate or are wider than 32
// bits are refused (the one-shot calls run those on the reference kernels).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/backends/simd/gemm_int4.hpp"
#include "npuq/backends/simd/plan.hpp"
#include "npuq/ops/conv2d_int4.hpp"

namespace npuq {
namespace detail {

template <class X>
constexpr bool is_packed_int4_v = std::is_same<std::remove_cv_t<std::remove_reference_t<X>>, packed_int4_weights>::value;

// Creates a plan or throws (the make_* forms).
template <class Plan, class... Args>
Plan made_plan(const Args&... args) {
  Plan plan;
  throw_if_error(plan.create(args...));
  return plan;
}

}  // namespace detail

// W4A8 GEMM out = requant(a x b + bias) with int4 b (per-tensor or per-channel scales) on the simd
// backend, created once by make_gemm_plan: a [..., M, K] and out [..., M, N] with the shapes given
// at creation, b [K, N] shared by every batch (packed at creation, or a copy of packed weights).
template <class A, class O>
class gemm_int4_plan {
 public:
  gemm_int4_plan() = default;

  // Creates the plan (see make_gemm_plan); b is a Tensor<int4>, a TensorView<(const) int4> or
  // packed_int4_weights. On failure *this is unchanged.
  template <class XA, class XB, class XBias, class XO>
  status create(const simd_backend& be, const gemm_params& params, const XA& a, const XB& b, const XBias& bias, const XO& out) {
    static_assert(std::is_same<detail::element_of<XA>, A>::value, "gemm_int4_plan: a's element type differs from the plan's A");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "gemm_int4_plan: output element type differs from the plan's O");
    auto s = std::make_unique<state>();
    if constexpr (detail::is_packed_int4_v<XB>) {
      NPUQ_RETURN_IF_ERROR(make_gemm_problem(params, input_view(a), b.descriptor(), input_view(bias), output_view(out), &s->p, true));
      NPUQ_RETURN_IF_ERROR(simd_detail::check_packed_int4_range(b, params.int4_weights));
      NPUQ_RETURN_IF_ERROR(detail::plan_numerics(s->p.stage.numerics, "int4 gemm"));
      s->w = b;
    } else {
      static_assert(std::is_same<detail::element_of<XB>, int4>::value, "gemm_int4_plan: b must be int4 (or packed_int4_weights)");
      NPUQ_RETURN_IF_ERROR(make_gemm_problem(params, input_view(a), input_view(b), input_view(bias), output_view(out), &s->p));
      NPUQ_RETURN_IF_ERROR(detail::plan_numerics(s->p.stage.numerics, "int4 gemm"));
      if (s->p.b.rank() != 2) return {errc::unsupported, "b: a plan takes 2-D weights [K, N] shared by every batch"};
      if (s->p.out.size() != 0) NPUQ_RETURN_IF_ERROR(s->w.pack(s->p.b));
    }
    s->kern = simd_detail::select_w4(be.level());
    s->threads = be.thread_count();
    s->a_shape = s->p.a.layout();
    s->out_shape = s->p.out.layout();
    s->a_quant = s->p.a.quant();
    s->out_quant = s->p.out.quant();
    s->kernel = simd_detail::w4_kernel_name("", element_traits<A>::type, s->p.M, s->kern);
    if (s->p.out.size() != 0) {  // an empty output: runs check their views and compute nothing
      s->stage.emplace(s->p.stage, s->p.bias, s->p.N);
      s->rows.template size_for<A>(s->p.M, s->w, s->p.a_zero_point);
    }
    // The user's weights and bias are not referenced after creation.
    s->p.b = TensorView<const int4>(nullptr, s->p.b.layout(), Quant{});
    s->p.bias = TensorView<const std::int32_t>(nullptr, s->p.bias.layout(), Quant{});
    s_ = std::move(s);
    return {};
  }

  // out = the GEMM of a; a and out must have the shapes and quantization the plan was made with.
  // Allocates nothing; on failure nothing is written.
  template <class XA, class XO>
  status try_run(const XA& a, const XO& out) {
    static_assert(std::is_same<detail::element_of<XA>, A>::value, "gemm_int4_plan::run: a's element type differs from the plan's A");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "gemm_int4_plan::run: output element type differs from the plan's O");
    if (!s_) return {errc::invalid_argument, "gemm_int4_plan: empty plan (make it with make_gemm_plan)"};
    detail::run_views<A, O> v;
    NPUQ_RETURN_IF_ERROR(detail::accept_run(s_->memo, a, "a", s_->a_shape, s_->a_quant, out, s_->out_shape, s_->out_quant, &v));
    if (v.changed) detail::set_views(&s_->p, v);  // else the problem holds these views already
    if (!s_->stage) return {};
    for (std::int64_t batch = 0; batch < s_->p.batch_count(); ++batch)
      simd_detail::run_gemm_int4_batch(s_->threads, s_->kern, s_->p, batch, s_->w, *s_->stage, s_->rows);
    return {};
  }
  template <class XA, class XO>
  void run(const XA& a, const XO& out) {
    throw_if_error(try_run(a, out));
  }

  bool empty() const { return !s_; }
  // The kernel the plan runs, e.g. "gemv_s8s4_1x16c4_avx512_vnni" (runs do not set simd_last_kernel).
  const std::string& kernel_name() const { return s_->kernel; }
  int threads() const { return s_->threads; }

 private:
  struct state {
    gemm_problem<A, int4, O> p;
    simd_detail::w4_kernels kern{};
    packed_int4_weights w;
    std::optional<simd_detail::tile_output_stage> stage;  // points at p.stage
    simd_detail::w4_a_rows rows;                          // A prepared, sized at creation
    Layout a_shape, out_shape;
    Quant a_quant, out_quant;
    detail::run_memo memo;
    std::string kernel;
    int threads = 1;
  };
  std::unique_ptr<state> s_;  // stable addresses: the stage points into the problem
};

// Group-wise W4A8 GEMM (gemm_grouped_problem.hpp: group scales along K, float reduction) on the
// simd backend, created once by make_gemm_grouped_plan: the weights packed, and per panel and
// group the epilogue's factors (d * W and fl(a_scale * scale)) made once.
template <class A, class O>
class gemm_grouped_plan {
 public:
  gemm_grouped_plan() = default;

  // Creates the plan; b is a Tensor<int4>, a TensorView<(const) int4> or packed_int4_weights, bias a
  // float vector of N entries or no_bias. On failure *this is unchanged.
  template <class XA, class XB, class XBias, class XO>
  status create(const simd_backend& be, const gemm_grouped_params& params, const XA& a, const XB& b, const XBias& bias,
                const XO& out) {
    static_assert(std::is_same<detail::element_of<XA>, A>::value, "gemm_grouped_plan: a's element type differs from the plan's A");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "gemm_grouped_plan: output element type differs from the plan's O");
    auto s = std::make_unique<state>();
    if constexpr (detail::is_packed_int4_v<XB>) {
      NPUQ_RETURN_IF_ERROR(make_gemm_grouped_problem(params, input_view(a), b.shape_descriptor(), detail::float_bias_view(bias),
                                                     output_view(out), &s->p, true));
      NPUQ_RETURN_IF_ERROR(simd_detail::check_packed_int4_range(b, params.int4_weights));
      s->w = b;
    } else {
      static_assert(std::is_same<detail::element_of<XB>, int4>::value, "gemm_grouped_plan: b must be int4 (or packed_int4_weights)");
      NPUQ_RETURN_IF_ERROR(make_gemm_grouped_problem(params, input_view(a), input_view(b), detail::float_bias_view(bias),
                                                     output_view(out), &s->p));
      NPUQ_RETURN_IF_ERROR(s->w.pack(s->p.b));
    }
    s->kern = simd_detail::select_w4(be.level());
    s->threads = be.thread_count();
    s->rows.template size_for<A>(s->p.M, s->w, s->p.a_zero_point);
    const std::int64_t per_panel = s->w.groups() * 16;
    s->dw.resize(static_cast<std::size_t>(s->w.panels() * per_panel));
    s->sg.resize(s->dw.size());
    for (std::int64_t pn = 0; pn < s->w.panels(); ++pn)
      simd_detail::w4_grouped_factors(s->w, pn, s->rows.d, s->p.a_scale, s->dw.data() + pn * per_panel, s->sg.data() + pn * per_panel);
    if (s->p.has_bias()) {  // a copy: the user's bias is not referenced after creation
      s->bias = Tensor<float>(Layout::row_major({s->p.N}));
      for (std::int64_t n = 0; n < s->p.N; ++n) s->bias.data()[n] = s->p.bias(n);
      s->p.bias = s->bias.cview();
    }
    s->p.b = TensorView<const int4>(nullptr, s->p.b.layout(), Quant{});
    s->a_shape = s->p.a.layout();
    s->out_shape = s->p.out.layout();
    s->a_quant = s->p.a.quant();
    s->out_quant = s->p.out.quant();
    s->kernel = simd_detail::w4_kernel_name("_grouped", element_traits<A>::type, s->p.M, s->kern);
    s_ = std::move(s);
    return {};
  }

  // out = the grouped GEMM of a; allocates nothing; on failure nothing is written.
  template <class XA, class XO>
  status try_run(const XA& a, const XO& out) {
    static_assert(std::is_same<detail::element_of<XA>, A>::value, "gemm_grouped_plan::run: a's element type differs from the plan's A");
    static_assert(std::is_same<detail::element_of<XO>, O>::value,
                  "gemm_grouped_plan::run: output element type differs from the plan's O");
    if (!s_) return {errc::invalid_argument, "gemm_grouped_plan: empty plan (make it with make_gemm_grouped_plan)"};
    detail::run_views<A, O> v;
    NPUQ_RETURN_IF_ERROR(detail::accept_run(s_->memo, a, "a", s_->a_shape, s_->a_quant, out, s_->out_shape, s_->out_quant, &v));
    if (v.changed) {  // else the problem holds these views already
      s_->p.a = v.in;
      s_->p.out = v.out;
    }
    if (s_->p.out.size() == 0) return {};
    simd_detail::run_gemm_grouped_on(s_->threads, s_->kern, s_->p, s_->w, s_->rows, s_->dw.data(), s_->sg.data());
    return {};
  }
  template <class XA, class XO>
  void run(const XA& a, const XO& out) {
    throw_if_error(try_run(a, out));
  }

  bool empty() const { return !s_; }
  // The kernel the plan runs, e.g. "gemv_grouped_u8s4_1x16c4_avx2".
  const std::string& kernel_name() const { return s_->kernel; }
  int threads() const { return s_->threads; }

 private:
  struct state {
    gemm_grouped_problem<A, O> p;
    simd_detail::w4_kernels kern{};
    packed_int4_weights w;
    simd_detail::w4_a_rows rows;  // A prepared, sized at creation
    std::vector<std::int32_t> dw;  // per panel and group, 16 columns: d * W
    std::vector<float> sg;         // per panel and group, 16 columns: fl(a_scale * scale)
    Tensor<float> bias;            // the bias the problem points at (when there is one)
    Layout a_shape, out_shape;
    Quant a_quant, out_quant;
    detail::run_memo memo;
    std::string kernel;
    int threads = 1;
  };
  std::unique_ptr<state> s_;
};

// Makes a W4A8 GEMM plan: validates exactly like gemm(simd, params, a, b, bias, out) with the same
// int4 b (params.int4_weights range included), with a and out standing for the tensors later runs
// pass (their data is not read or written here).
template <class XA, class XB, class XBias, class XO>
status try_make_gemm_plan(const simd_backend& be, const gemm_params& params, const XA& a, const XB& b, const XBias& bias, const XO& out,
                          gemm_int4_plan<detail::element_of<XA>, detail::element_of<XO>>* plan) {
  return plan->create(be, params, a, b, bias, out);
}
template <class XA, class XBias, class XO>
gemm_int4_plan<detail::element_of<XA>, detail::element_of<XO>> make_gemm_plan(const simd_backend& be, const gemm_params& params,
                                                                               const XA& a, const Tensor<int4>& b, const XBias& bias,
                                                                               const XO& out) {
  return detail::made_plan<gemm_int4_plan<detail::element_of<XA>, detail::element_of<XO>>>(be, params, a, b, bias, out);
}
template <class XA, class T, class XBias, class XO, std::enable_if_t<std::is_same<std::remove_const_t<T>, int4>::value, int> = 0>
gemm_int4_plan<detail::element_of<XA>, detail::element_of<XO>> make_gemm_plan(const simd_backend& be, const gemm_params& params,
                                                                               const XA& a, const TensorView<T>& b, const XBias& bias,
                                                                               const XO& out) {
  return detail::made_plan<gemm_int4_plan<detail::element_of<XA>, detail::element_of<XO>>>(be, params, a, b, bias, out);
}
template <class XA, class XBias, class XO>
gemm_int4_plan<detail::element_of<XA>, detail::element_of<XO>> make_gemm_plan(const simd_backend& be, const gemm_params& params,
                                                                               const XA& a, const packed_int4_weights& b, const XBias& bias,
                                                                               const XO& out) {
  return detail::made_plan<gemm_int4_plan<detail::element_of<XA>, detail::element_of<XO>>>(be, params, a, b, bias, out);
}

// Makes a group-wise W4A8 GEMM plan: validates exactly like gemm_grouped(simd, params, a, b, bias, out).
template <class XA, class XB, class XBias, class XO>
status try_make_gemm_grouped_plan(const simd_backend& be, const gemm_grouped_params& params, const XA& a, const XB& b, const XBias& bias,
                                  const XO& out, gemm_grouped_plan<detail::element_of<XA>, detail::element_of<XO>>* plan) {
  return plan->create(be, params, a, b, bias, out);
}
template <class XA, class XB, class XBias, class XO>
gemm_grouped_plan<detail::element_of<XA>, detail::element_of<XO>> make_gemm_grouped_plan(const simd_backend& be,
                                                                                          const gemm_grouped_params& params, const XA& a,
                                                                                          const XB& b, const XBias& bias, const XO& out) {
  return detail::made_plan<gemm_grouped_plan<detail::element_of<XA>, detail::element_of<XO>>>(be, params, a, b, bias, out);
}

namespace detail {

// A plan of the int8 conv2d or depthwise kind on int4 weights: the weights range checked and
// widened to int8 once (as the one-shot int4 call does per call), then the int8 plan made on them.
template <class Plan, class Params, class XI, class XW, class XBias, class XO>
status create_on_widened_int4(Plan* plan, const simd_backend& be, const Params& params, const XI& input, const XW& weights,
                              const XBias& bias, const XO& out, std::optional<int4_range> range) {
  static_assert(std::is_same<element_of<XW>, int4>::value, "weights must be int4");
  Tensor<std::int8_t> w8;
  NPUQ_RETURN_IF_ERROR(widen_int4_weights(input_view(weights), range.value_or(params.int4_weights), &w8));
  return plan->create(be, params, input, w8, bias, out);
}
template <class Plan, class Params, class XI, class XW, class XBias, class XO>
Plan made_on_widened_int4(const simd_backend& be, const Params& params, const XI& input, const XW& weights, const XBias& bias,
                          const XO& out, std::optional<int4_range> range) {
  Plan plan;
  throw_if_error(create_on_widened_int4(&plan, be, params, input, weights, bias, out, range));
  return plan;
}

}  // namespace detail

// conv2d with int4 weights (OHWI, any layout TensorView<int4> describes): the weights are range
// checked and widened to int8 once, as conv2d_int4(simd, ..., range) does per call, and the plan
// is the int8 conv2d plan on them (so its bytes are conv2d_int4's).
template <class XI, class XW, class XBias, class XO, std::enable_if_t<std::is_same<detail::element_of<XW>, int4>::value, int> = 0>
status try_make_conv2d_plan(const simd_backend& be, const conv2d_params& params, const XI& input, const XW& weights, const XBias& bias,
                            const XO& out, conv2d_plan<detail::element_of<XI>, std::int8_t, detail::element_of<XO>>* plan,
                            std::optional<int4_range> range = std::nullopt) {
  return detail::create_on_widened_int4(plan, be, params, input, weights, bias, out, range);
}
template <class XI, class XBias, class XO>
conv2d_plan<detail::element_of<XI>, std::int8_t, detail::element_of<XO>> make_conv2d_plan(const simd_backend& be,
                                                                                          const conv2d_params& params, const XI& input,
                                                                                          const Tensor<int4>& weights, const XBias& bias,
                                                                                          const XO& out, std::optional<int4_range> range = std::nullopt) {
  return detail::made_on_widened_int4<conv2d_plan<detail::element_of<XI>, std::int8_t, detail::element_of<XO>>>(be, params, input, weights,
                                                                                                                 bias, out, range);
}
template <class XI, class T, class XBias, class XO, std::enable_if_t<std::is_same<std::remove_const_t<T>, int4>::value, int> = 0>
conv2d_plan<detail::element_of<XI>, std::int8_t, detail::element_of<XO>> make_conv2d_plan(const simd_backend& be,
                                                                                          const conv2d_params& params, const XI& input,
                                                                                          const TensorView<T>& weights, const XBias& bias,
                                                                                          const XO& out, std::optional<int4_range> range = std::nullopt) {
  return detail::made_on_widened_int4<conv2d_plan<detail::element_of<XI>, std::int8_t, detail::element_of<XO>>>(be, params, input, weights,
                                                                                                                 bias, out, range);
}

// Depthwise conv2d with int4 weights ([KH, KW, C*M], any layout TensorView<int4> describes): the
// weights widened to int8 once, as depthwise_conv2d_int4(simd, ..., range) does per call, and the
// plan is the int8 depthwise plan on them (so its bytes are depthwise_conv2d_int4's).
template <class XI, class XW, class XBias, class XO, std::enable_if_t<std::is_same<detail::element_of<XW>, int4>::value, int> = 0>
status try_make_depthwise_plan(const simd_backend& be, const depthwise_params& params, const XI& input, const XW& weights,
                               const XBias& bias, const XO& out,
                               depthwise_plan<detail::element_of<XI>, std::int8_t, detail::element_of<XO>>* plan,
                               std::optional<int4_range> range = std::nullopt) {
  return detail::create_on_widened_int4(plan, be, params, input, weights, bias, out, range);
}
template <class XI, class XBias, class XO>
depthwise_plan<detail::element_of<XI>, std::int8_t, detail::element_of<XO>> make_depthwise_plan(
    const simd_backend& be, const depthwise_params& params, const XI& input, const Tensor<int4>& weights, const XBias& bias, const XO& out,
    std::optional<int4_range> range = std::nullopt) {
  return detail::made_on_widened_int4<depthwise_plan<detail::element_of<XI>, std::int8_t, detail::element_of<XO>>>(
      be, params, input, weights, bias, out, range);
}
template <class XI, class T, class XBias, class XO, std::enable_if_t<std::is_same<std::remove_const_t<T>, int4>::value, int> = 0>
depthwise_plan<detail::element_of<XI>, std::int8_t, detail::element_of<XO>> make_depthwise_plan(
    const simd_backend& be, const depthwise_params& params, const XI& input, const TensorView<T>& weights, const XBias& bias,
    const XO& out, std::optional<int4_range> range = std::nullopt) {
  return detail::made_on_widened_int4<depthwise_plan<detail::element_of<XI>, std::int8_t, detail::element_of<XO>>>(
      be, params, input, weights, bias, out, range);
}

}  // namespace npuq
