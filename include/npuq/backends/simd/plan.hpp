// Plans: an op created once and run many times, the fast path of the simd backend.
//
// Creating a plan does everything that does not depend on the activations' values: it validates
// the whole call, chooses the level's kernels, packs the weights, folds bias and zero-point
// terms into the requantization and sizes the per-thread scratch. `run(input, output)` then
// checks only what can change between calls (the two tensors' data, shape and quantization, and
// that they do not overlap), allocates nothing, and writes the same bytes as the one-shot call.
// The shapes, strides of the weights and all quantization parameters are fixed at creation; the
// input and output may live anywhere (any strides) as long as their shapes and quantization
// match the plan's.
//
// A plan is movable, not copyable, and runs one call at a time (its scratch is its own): use one
// plan per concurrent caller. Plans take 8-bit weights and accumulators that wrap at <= 32 bits
// (every profile npuq ships except the saturating and wider NPU ones, which the one-shot calls
// run on the reference kernels).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/backends/simd/conv2d.hpp"
#include "npuq/backends/simd/depthwise.hpp"
#include "npuq/backends/simd/gemm.hpp"
#include "npuq/backends/simd/softmax.hpp"
#include "npuq/backends/simd/softmax_int16.hpp"

namespace npuq {
namespace detail {

// Same quantization parameters, compared field by field without copying.
inline bool same_quant(const Quant& a, const Quant& b) {
  return a.granularity == b.granularity && a.scales == b.scales && a.zero_points == b.zero_points && a.axis == b.axis &&
         a.group_axis == b.group_axis && a.group_size == b.group_size;
}

// A tensor or view as a view without its quantization (no copy of Quant's vectors).
template <class T>
TensorView<const T> bare_input_view(const Tensor<T>& t) {
  return {t.data(), 0, t.layout(), Quant{}, t.capacity()};
}
template <class T>
TensorView<const T> bare_input_view(const TensorView<T>& v) {
  return {v.data(), v.offset(), v.layout(), Quant{}, v.capacity()};
}
template <class T>
TensorView<T> bare_output_view(const Tensor<T>& t) {
  return {t.data(), 0, t.layout(), Quant{}, t.capacity()};
}
template <class T>
TensorView<T> bare_output_view(const TensorView<T>& v) {
  static_assert(!std::is_const<T>::value, "output: a view of const elements cannot be written");
  return {v.data(), v.offset(), v.layout(), Quant{}, v.capacity()};
}

inline status quant_differs(const char* name) {
  return {errc::invalid_quantization,
          std::string(name) + ": quantization differs from the plan's (scales and zero points are fixed when the plan is made; make another plan)"};
}

// A run's operand against the plan's: a valid view of the planned shape and quantization.
template <class T>
status check_plan_operand(const TensorView<T>& v, const Quant& q, const Layout& planned, const Quant& planned_q, const char* name) {
  NPUQ_RETURN_IF_ERROR(v.validate(name));
  bool same_shape = v.rank() == planned.rank();
  for (int d = 0; same_shape && d < planned.rank(); ++d) same_shape = v.dim(d) == planned.dim(d);
  if (!same_shape)
    return {errc::invalid_shape, std::string(name) + ": shape " + v.layout().shape_string() + ", the plan was made for " +
                                     planned.shape_string()};
  if (!same_quant(q, planned_q)) return quant_differs(name);
  return {};
}

// The views of a plan's last accepted run. Whether a view is valid, has the planned shape and
// stays clear of the other depends only on its address, offset, layout and capacity, never on
// the elements, so a run on the same views as the last accepted one skips those checks (most of
// a tiny run's overhead). Quantization is compared on every run: it can change in place.
struct run_memo {
  struct key {
    const void* data = nullptr;
    std::int64_t offset = 0, capacity = 0;
    Layout layout;
    template <class T>
    bool matches(const TensorView<T>& v) const {
      return data == static_cast<const void*>(v.data()) && offset == v.offset() && capacity == v.capacity() && layout.identical(v.layout());
    }
    template <class T>
    bool matches(const Tensor<T>& t) const {
      return data == static_cast<const void*>(t.data()) && offset == 0 && capacity == t.capacity() && layout.identical(t.layout());
    }
    template <class T>
    void set(const TensorView<T>& v) {
      data = v.data();
      offset = v.offset();
      capacity = v.capacity();
      layout = v.layout();
    }
  };
  key in, out;
  bool valid = false;
};

// A run's input and output against the plan's (check_plan_operand each, then no overlap).
// *same_views: they are the last accepted run's.
template <class I, class O>
status check_run(run_memo& memo, const TensorView<const I>& iv, const Quant& iq, const Layout& in_shape, const Quant& in_q,
                 const char* in_name, const TensorView<O>& ov, const Quant& oq, const Layout& out_shape, const Quant& out_q,
                 bool* same_views) {
  *same_views = memo.valid && memo.in.matches(iv) && memo.out.matches(ov);
  if (*same_views) {
    if (!same_quant(iq, in_q)) return quant_differs(in_name);
    if (!same_quant(oq, out_q)) return quant_differs("output");
    return {};
  }
  memo.valid = false;
  NPUQ_RETURN_IF_ERROR(check_plan_operand(iv, iq, in_shape, in_q, in_name));
  NPUQ_RETURN_IF_ERROR(check_plan_operand(ov, oq, out_shape, out_q, "output"));
  NPUQ_RETURN_IF_ERROR(validate_output_memory(ov, iv));
  memo.in.set(iv);
  memo.out.set(ov);
  memo.valid = true;
  return {};
}

// A run's input and output checked against the plan. The last accepted run's views (the plan's
// problem holds them already) take only the quantization comparison, without building views
// (a tiny run's overhead); other views are made bare and go through check_run, and `changed`
// says the problem must be pointed at v->in and v->out (set only then).
template <class I, class O>
struct run_views {
  TensorView<const I> in;
  TensorView<O> out;
  bool changed = false;
};
template <class I, class O, class XI, class XO>
status accept_run(run_memo& memo, const XI& input, const char* in_name, const Layout& in_shape, const Quant& in_q, const XO& out,
                  const Layout& out_shape, const Quant& out_q, run_views<I, O>* v) {
  if (memo.valid && memo.in.matches(input) && memo.out.matches(out)) {
    if (!same_quant(input.quant(), in_q)) return quant_differs(in_name);
    if (!same_quant(out.quant(), out_q)) return quant_differs("output");
    v->changed = false;
    return {};
  }
  v->in = bare_input_view(input);
  v->out = bare_output_view(out);
  bool same = false;
  NPUQ_RETURN_IF_ERROR(check_run(memo, v->in, input.quant(), in_shape, in_q, in_name, v->out, out.quant(), out_shape, out_q, &same));
  v->in = addressable(v->in);  // as the one-shot problems give it: an empty input gets row-major strides
  v->changed = !same;
  return {};
}

// Points a GEMM problem at a run's views, with their batch strides (a run's views may have
// other strides than the creation's, and so other batch strides than make_gemm_problem stored;
// empty views address nothing and get 0, as make_gemm_problem gives them).
template <class A, class B, class O>
void set_views(gemm_problem<A, B, O>* p, const run_views<A, O>& v) {
  p->a = v.in;
  p->out = v.out;
  for (int d = 0; d < p->batch_rank; ++d) {
    p->a_bstride[d] = p->a.size() != 0 ? p->a.layout().stride(d) : 0;
    p->o_bstride[d] = p->out.layout().stride(d);
  }
}

inline status plan_numerics(const numerics_profile& p, const char* op) {
  if (simd_detail::wraps_within_32_bits(p)) return {};
  return {errc::unsupported, std::string(op) + " plan: the profile's accumulator saturates or is wider than 32 bits; the one-shot call " +
                                 "runs it on the reference kernels"};
}
}  // namespace detail

// GEMM out = requant(a x b + bias) on the simd backend, created once by make_gemm_plan:
// a [..., M, K] and out [..., M, N] with the shapes given at creation, b [K, N] shared by every
// batch (packed at creation).
template <class A, class B, class O>
class gemm_plan {
  static_assert(is_8bit_v<B>, "gemm_plan: weights must be int8_t or uint8_t (int4 and sparse plans are not built yet)");

 public:
  gemm_plan() = default;

  // Creates the plan (see make_gemm_plan); on failure *this is unchanged.
  template <class XA, class XB, class XBias, class XO>
  status create(const simd_backend& be, const gemm_params& params, const XA& a, const XB& b, const XBias& bias, const XO& out) {
    static_assert(std::is_same<detail::element_of<XA>, A>::value, "gemm_plan: a's element type differs from the plan's A");
    static_assert(std::is_same<detail::element_of<XB>, B>::value, "gemm_plan: b's element type differs from the plan's B");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "gemm_plan: output element type differs from the plan's O");
    auto s = std::make_unique<state>();
    NPUQ_RETURN_IF_ERROR(make_gemm_problem(params, input_view(a), input_view(b), input_view(bias), output_view(out), &s->p));
    NPUQ_RETURN_IF_ERROR(detail::plan_numerics(s->p.stage.numerics, "gemm"));
    if (s->p.b.rank() != 2) return {errc::unsupported, "b: a plan takes 2-D weights [K, N] shared by every batch"};
    s->kern = simd_detail::gemm_kernels<B>(be.level());
    NPUQ_RETURN_IF_ERROR(s->w.pack(s->p.b, be.level()));
    if (s->w.format() != s->kern.format) s->w = s->w.converted(s->kern.format);
    const simd_detail::tile_output_stage stage(s->p.stage, s->p.bias, s->p.N);
    s->st.emplace(simd_detail::make_gemm_stages(s->kern, s->p, stage, s->w));
    s->st->point_at(&s->p.stage);
    s->threads = be.thread_count();
    s->a_shape = s->p.a.layout();
    s->out_shape = s->p.out.layout();
    s->a_quant = s->p.a.quant();
    s->out_quant = s->p.out.quant();
    s->kernel = simd_detail::gemm_kernel_name(s->st->direct ? "gemm_direct" : "gemm", element_traits<A>::type, element_traits<B>::type, s->kern);
    // The user's weights and bias are not referenced after creation.
    s->p.b = TensorView<const B>(nullptr, s->p.b.layout(), Quant{});
    s->p.bias = TensorView<const std::int32_t>(nullptr, s->p.bias.layout(), Quant{});
    simd_detail::reserve_gemm_scratch(s->threads, s->kern, s->p, s->w, s->scratch, &s->x86);
    s_ = std::move(s);
    return {};
  }

  // out = the GEMM of a; a and out must have the shapes and quantization the plan was made with.
  // Allocates nothing; on failure nothing is written.
  template <class XA, class XO>
  status try_run(const XA& a, const XO& out) {
    static_assert(std::is_same<detail::element_of<XA>, A>::value, "gemm_plan::run: a's element type differs from the plan's A");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "gemm_plan::run: output element type differs from the plan's O");
    if (!s_) return {errc::invalid_argument, "gemm_plan: empty plan (make it with make_gemm_plan)"};
    detail::run_views<A, O> v;
    NPUQ_RETURN_IF_ERROR(detail::accept_run(s_->memo, a, "a", s_->a_shape, s_->a_quant, out, s_->out_shape, s_->out_quant, &v));
    if (v.changed) detail::set_views(&s_->p, v);  // else the problem holds these views already
    for (std::int64_t batch = 0; batch < s_->p.batch_count(); ++batch)
      simd_detail::run_gemm_batch(s_->threads, s_->kern, s_->p, batch, s_->w, *s_->st, s_->scratch, s_->x86 ? &*s_->x86 : nullptr);
    return {};
  }
  template <class XA, class XO>
  void run(const XA& a, const XO& out) {
    throw_if_error(try_run(a, out));
  }

  bool empty() const { return !s_; }
  // The kernel the plan runs, e.g. "gemm_s8s8_8x32c4_avx512_vnni" (runs do not set simd_last_kernel).
  const std::string& kernel_name() const { return s_->kernel; }
  int threads() const { return s_->threads; }

 private:
  struct state {
    gemm_problem<A, B, O> p;
    simd_detail::gemm_kernel_set<B> kern;
    packed_gemm_weights<B> w;
    std::optional<simd_detail::dot_stages> st;
    simd_detail::driver_scratch scratch;
    std::optional<simd_detail::x86_dot_plan<B>> x86;  // the x86 driver's split and blocks, made once
    Layout a_shape, out_shape;
    Quant a_quant, out_quant;
    detail::run_memo memo;
    std::string kernel;
    int threads = 1;
  };
  std::unique_ptr<state> s_;  // stable addresses: the stage points into the problem
};

// Makes a GEMM plan: validates exactly like gemm(simd, params, a, b, bias, out), with a and out
// standing for the tensors later runs pass (their data is not read or written here).
template <class XA, class XB, class XBias, class XO>
status try_make_gemm_plan(const simd_backend& be, const gemm_params& params, const XA& a, const XB& b, const XBias& bias, const XO& out,
                          gemm_plan<detail::element_of<XA>, detail::element_of<XB>, detail::element_of<XO>>* plan) {
  return plan->create(be, params, a, b, bias, out);
}
template <class XA, class XB, class XBias, class XO>
gemm_plan<detail::element_of<XA>, detail::element_of<XB>, detail::element_of<XO>> make_gemm_plan(
    const simd_backend& be, const gemm_params& params, const XA& a, const XB& b, const XBias& bias, const XO& out) {
  gemm_plan<detail::element_of<XA>, detail::element_of<XB>, detail::element_of<XO>> plan;
  throw_if_error(plan.create(be, params, a, b, bias, out));
  return plan;
}

// conv2d (NHWC input and output, OHWI weights, groups) on the simd backend, created once by
// make_conv2d_plan; runs take an input and output of the shapes given at creation.
template <class I, class W, class O>
class conv2d_plan {
 public:
  conv2d_plan() = default;

  template <class XI, class XW, class XBias, class XO>
  status create(const simd_backend& be, const conv2d_params& params, const XI& input, const XW& weights, const XBias& bias,
                const XO& out) {
    static_assert(std::is_same<detail::element_of<XI>, I>::value, "conv2d_plan: input element type differs from the plan's I");
    static_assert(std::is_same<detail::element_of<XW>, W>::value, "conv2d_plan: weights element type differs from the plan's W");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "conv2d_plan: output element type differs from the plan's O");
    auto s = std::make_unique<state>();
    NPUQ_RETURN_IF_ERROR(make_conv2d_problem(params, input_view(input), input_view(weights), input_view(bias), output_view(out), &s->p));
    NPUQ_RETURN_IF_ERROR(detail::plan_numerics(s->p.stage.numerics, "conv2d"));
    if (!simd_detail::window_fits_kernels(s->p.g.KH, s->p.g.KW, s->p.in_per_group))
      return {errc::unsupported, "conv2d plan: the window is too large to pack; the one-shot call runs it on the reference kernels"};
    s->kern = simd_detail::gemm_kernels<W>(be.level());
    const std::int64_t ocg = s->p.out_per_group;
    s->w.resize(static_cast<std::size_t>(s->p.groups));
    bool direct = false;
    for (std::int64_t g = 0; g < s->p.groups; ++g) {
      packed_gemm_weights<W>& wg = s->w[static_cast<std::size_t>(g)];
      packed_conv2d_weights<W>::pack_group(s->p.w, g * ocg, ocg, &wg, be.level());
      if (wg.format() != s->kern.format) wg = wg.converted(s->kern.format);
      const simd_detail::tile_output_stage stage(s->p.stage, s->p.bias, ocg, g * ocg);
      s->st.push_back(simd_detail::make_conv2d_stages(s->kern, s->p, stage, wg));
      s->st.back().point_at(&s->p.stage);
      direct = direct || s->st.back().direct.has_value();
      if (simd_detail::wants_kernel_rows(s->kern, s->p, wg, s->st.back()))
        packed_conv2d_weights<W>::pack_kernel_rows(s->p.w, &s->w_rows.emplace(), be.level());
    }
    s->threads = be.thread_count();
    s->in_shape = s->p.in.layout();
    s->out_shape = s->p.out.layout();
    s->in_quant = s->p.in.quant();
    s->out_quant = s->p.out.quant();
    // The direct convolution where a group runs it with views like the ones given here.
    s->kernel = simd_detail::gemm_kernel_name(direct ? "conv2d_direct" : "conv2d", element_traits<I>::type, element_traits<W>::type, s->kern);
    s->p.w = TensorView<const W>(nullptr, s->p.w.layout(), Quant{});
    s->p.bias = TensorView<const std::int32_t>(nullptr, s->p.bias.layout(), Quant{});
    simd_detail::reserve_conv2d_scratch(s->threads, s->kern, s->p, s->w.front(), s->scratch);  // every group has the same shape
    s_ = std::move(s);
    return {};
  }

  // out = conv2d(input); allocates nothing; on failure nothing is written.
  template <class XI, class XO>
  status try_run(const XI& input, const XO& out) {
    static_assert(std::is_same<detail::element_of<XI>, I>::value, "conv2d_plan::run: input element type differs from the plan's I");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "conv2d_plan::run: output element type differs from the plan's O");
    if (!s_) return {errc::invalid_argument, "conv2d_plan: empty plan (make it with make_conv2d_plan)"};
    detail::run_views<I, O> v;
    NPUQ_RETURN_IF_ERROR(detail::accept_run(s_->memo, input, "input", s_->in_shape, s_->in_quant, out, s_->out_shape, s_->out_quant, &v));
    if (v.changed) {  // else the problem holds these views already
      s_->p.in = v.in;
      s_->p.out = v.out;
    }
    for (std::int64_t g = 0; g < s_->p.groups; ++g)
      simd_detail::run_conv2d_group(s_->threads, s_->kern, s_->p, g, s_->w[static_cast<std::size_t>(g)],
                                    s_->st[static_cast<std::size_t>(g)], s_->scratch, s_->w_rows ? &*s_->w_rows : nullptr);
    return {};
  }
  template <class XI, class XO>
  void run(const XI& input, const XO& out) {
    throw_if_error(try_run(input, out));
  }

  bool empty() const { return !s_; }
  const std::string& kernel_name() const { return s_->kernel; }
  int threads() const { return s_->threads; }

 private:
  struct state {
    conv2d_problem<I, W, O> p;
    simd_detail::gemm_kernel_set<W> kern;
    std::vector<packed_gemm_weights<W>> w;          // per group, in the kernels' format
    std::vector<simd_detail::dot_stages> st;  // per group
    std::optional<packed_gemm_weights<W>> w_rows;  // the direct convolution's rows form (one group)
    simd_detail::driver_scratch scratch;
    Layout in_shape, out_shape;
    Quant in_quant, out_quant;
    detail::run_memo memo;
    std::string kernel;
    int threads = 1;
  };
  std::unique_ptr<state> s_;
};

template <class XI, class XW, class XBias, class XO>
status try_make_conv2d_plan(const simd_backend& be, const conv2d_params& params, const XI& input, const XW& weights, const XBias& bias,
                            const XO& out, conv2d_plan<detail::element_of<XI>, detail::element_of<XW>, detail::element_of<XO>>* plan) {
  return plan->create(be, params, input, weights, bias, out);
}
template <class XI, class XW, class XBias, class XO>
conv2d_plan<detail::element_of<XI>, detail::element_of<XW>, detail::element_of<XO>> make_conv2d_plan(
    const simd_backend& be, const conv2d_params& params, const XI& input, const XW& weights, const XBias& bias, const XO& out) {
  conv2d_plan<detail::element_of<XI>, detail::element_of<XW>, detail::element_of<XO>> plan;
  throw_if_error(plan.create(be, params, input, weights, bias, out));
  return plan;
}

// Depthwise conv2d (NHWC input and output, [KH, KW, C*M] weights, channel multiplier M) on the
// simd backend, created once by make_depthwise_plan: the weights are packed, the output-stage
// tables built and the per-thread scratch sized at creation. A run whose input channels are not
// contiguous (or M > 1) copies the input to a contiguous buffer; the plan reserves that buffer
// when the creation input needs it, so only a later run with a differently strided input
// allocates (once).
template <class I, class W, class O>
class depthwise_plan {
  static_assert(is_8bit_v<W>, "depthwise_plan: weights must be int8_t or uint8_t (make_depthwise_plan widens int4 weights to int8)");

 public:
  depthwise_plan() = default;

  template <class XI, class XW, class XBias, class XO>
  status create(const simd_backend& be, const depthwise_params& params, const XI& input, const XW& weights, const XBias& bias,
                const XO& out) {
    static_assert(std::is_same<detail::element_of<XI>, I>::value, "depthwise_plan: input element type differs from the plan's I");
    static_assert(std::is_same<detail::element_of<XW>, W>::value, "depthwise_plan: weights element type differs from the plan's W");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "depthwise_plan: output element type differs from the plan's O");
    auto s = std::make_unique<state>();
    NPUQ_RETURN_IF_ERROR(
        make_depthwise_problem(params, input_view(input), input_view(weights), input_view(bias), output_view(out), &s->p));
    NPUQ_RETURN_IF_ERROR(detail::plan_numerics(s->p.stage.numerics, "depthwise"));
    if (!simd_detail::window_fits_kernels(s->p.g.KH, s->p.g.KW, s->p.OC))
      return {errc::unsupported, "depthwise plan: the window is too large to pack; the one-shot call runs it on the reference kernels"};
    s->pr.emplace(simd_detail::dw_family(be.level(), s->p.g, s->p.OC), s->p);
    s->threads = be.thread_count();
    s->scratch.reserve(*s->pr, s->p, s->threads);
    s->in_shape = s->p.in.layout();
    s->out_shape = s->p.out.layout();
    s->in_quant = s->p.in.quant();
    s->out_quant = s->p.out.quant();
    s->kernel = simd_detail::dw_kernel_name(*s->pr);
    s->p.w = TensorView<const W>(nullptr, s->p.w.layout(), Quant{});
    s->p.bias = TensorView<const std::int32_t>(nullptr, s->p.bias.layout(), Quant{});
    s_ = std::move(s);
    return {};
  }

  // out = depthwise_conv2d(input); on failure nothing is written.
  template <class XI, class XO>
  status try_run(const XI& input, const XO& out) {
    static_assert(std::is_same<detail::element_of<XI>, I>::value, "depthwise_plan::run: input element type differs from the plan's I");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "depthwise_plan::run: output element type differs from the plan's O");
    if (!s_) return {errc::invalid_argument, "depthwise_plan: empty plan (make it with make_depthwise_plan)"};
    detail::run_views<I, O> v;
    NPUQ_RETURN_IF_ERROR(detail::accept_run(s_->memo, input, "input", s_->in_shape, s_->in_quant, out, s_->out_shape, s_->out_quant, &v));
    if (v.changed) {  // else the problem holds these views already
      s_->p.in = v.in;
      s_->p.out = v.out;
    }
    simd_detail::run_depthwise_on(s_->threads, *s_->pr, s_->p, s_->scratch);
    return {};
  }
  template <class XI, class XO>
  void run(const XI& input, const XO& out) {
    throw_if_error(try_run(input, out));
  }

  bool empty() const { return !s_; }
  // The kernel the plan runs, e.g. "dwconv_u8u8_3x3_32c_avx512_vnni".
  const std::string& kernel_name() const { return s_->kernel; }
  int threads() const { return s_->threads; }

 private:
  struct state {
    depthwise_problem<I, W, O> p;
    std::optional<simd_detail::dw_prepared<I, W, O>> pr;
    simd_detail::dw_scratch<I> scratch;
    Layout in_shape, out_shape;
    Quant in_quant, out_quant;
    detail::run_memo memo;
    std::string kernel;
    int threads = 1;
  };
  std::unique_ptr<state> s_;  // stable addresses: the prepared tables point into the problem's stage
};

template <class XI, class XW, class XBias, class XO>
status try_make_depthwise_plan(const simd_backend& be, const depthwise_params& params, const XI& input, const XW& weights,
                               const XBias& bias, const XO& out,
                               depthwise_plan<detail::element_of<XI>, detail::element_of<XW>, detail::element_of<XO>>* plan) {
  return plan->create(be, params, input, weights, bias, out);
}
template <class XI, class XW, class XBias, class XO>
depthwise_plan<detail::element_of<XI>, detail::element_of<XW>, detail::element_of<XO>> make_depthwise_plan(
    const simd_backend& be, const depthwise_params& params, const XI& input, const XW& weights, const XBias& bias, const XO& out) {
  depthwise_plan<detail::element_of<XI>, detail::element_of<XW>, detail::element_of<XO>> plan;
  throw_if_error(plan.create(be, params, input, weights, bias, out));
  return plan;
}

// 8-bit softmax over the last axis (TFLite's table softmax) on the simd backend, created once by
// make_softmax_plan: the exponential tables built, the row buffers for strided rows sized for
// every thread part. Runs split the rows over the backend's threads (same bytes for any count).
template <class I, class O>
class softmax_plan {
  static_assert(is_8bit_v<I> && is_8bit_v<O>, "softmax_plan: input and output must be int8_t or uint8_t (int16 softmax: softmax_int16_plan)");

 public:
  softmax_plan() = default;

  template <class XI, class XO>
  status create(const simd_backend& be, const softmax_params& params, const XI& input, const XO& out) {
    static_assert(std::is_same<detail::element_of<XI>, I>::value, "softmax_plan: input element type differs from the plan's I");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "softmax_plan: output element type differs from the plan's O");
    auto s = std::make_unique<state>();
    NPUQ_RETURN_IF_ERROR(make_softmax_problem(params, input_view(input), output_view(out), &s->p));
    if (params.contract != softmax_contract::tflite)
      return {errc::unsupported, "softmax_plan: the onnxruntime_qlinear contract has no plan; call npuq::softmax"};
    s->tables = simd_detail::softmax_tables::make(s->p.params, be.level());
    s->threads = be.thread_count();
    const std::size_t rows = static_cast<std::size_t>(simd_detail::softmax_parts(s->threads, s->p.rows, s->p.depth) * s->p.depth);
    s->in_rows.assign(rows, I{});
    s->out_rows.assign(rows, O{});
    s->in_shape = s->p.in.layout();
    s->out_shape = s->p.out.layout();
    s->in_quant = s->p.in.quant();
    s->out_quant = s->p.out.quant();
    s->kernel = simd_detail::softmax_kernel_name(s->tables, true);
    s_ = std::move(s);
    return {};
  }

  // out = softmax(input) over the last axis; allocates nothing; on failure nothing is written.
  template <class XI, class XO>
  status try_run(const XI& input, const XO& out) {
    static_assert(std::is_same<detail::element_of<XI>, I>::value, "softmax_plan::run: input element type differs from the plan's I");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "softmax_plan::run: output element type differs from the plan's O");
    if (!s_) return {errc::invalid_argument, "softmax_plan: empty plan (make it with make_softmax_plan)"};
    detail::run_views<I, O> v;
    NPUQ_RETURN_IF_ERROR(detail::accept_run(s_->memo, input, "input", s_->in_shape, s_->in_quant, out, s_->out_shape, s_->out_quant, &v));
    if (v.changed) {  // else the problem holds these views already
      s_->p.in = v.in;
      s_->p.out = v.out;
    }
    simd_detail::run_softmax_on(s_->threads, s_->tables, s_->p, s_->in_rows.data(), s_->out_rows.data());
    return {};
  }
  template <class XI, class XO>
  void run(const XI& input, const XO& out) {
    throw_if_error(try_run(input, out));
  }

  bool empty() const { return !s_; }
  // The kernel the plan runs on contiguous rows, e.g. "softmax_8bit_table_avx512_vnni".
  const std::string& kernel_name() const { return s_->kernel; }
  int threads() const { return s_->threads; }

 private:
  struct state {
    softmax_problem<I, O> p;
    simd_detail::softmax_tables tables;
    std::vector<I> in_rows;
    std::vector<O> out_rows;
    Layout in_shape, out_shape;
    Quant in_quant, out_quant;
    detail::run_memo memo;
    std::string kernel;
    int threads = 1;
  };
  std::unique_ptr<state> s_;
};

template <class XI, class XO>
status try_make_softmax_plan(const simd_backend& be, const softmax_params& params, const XI& input, const XO& out,
                             softmax_plan<detail::element_of<XI>, detail::element_of<XO>>* plan) {
  return plan->create(be, params, input, out);
}
template <class XI, class XO>
softmax_plan<detail::element_of<XI>, detail::element_of<XO>> make_softmax_plan(const simd_backend& be, const softmax_params& params,
                                                                                 const XI& input, const XO& out) {
  softmax_plan<detail::element_of<XI>, detail::element_of<XO>> plan;
  throw_if_error(plan.create(be, params, input, out));
  return plan;
}

// int16 softmax over the last axis (TFLite's SoftmaxInt16) on the simd backend, created once by
// make_softmax_int16_plan: the call validated, the parameters and their two tables copied into
// the plan and the row buffers for strided rows sized for every thread part. Runs split the rows
// over the backend's threads and write the one-shot call's bytes for any thread count.
class softmax_int16_plan {
 public:
  softmax_int16_plan() = default;

  template <class XI, class XO>
  status create(const simd_backend& be, const softmax_int16_params& params, const XI& input, const XO& out) {
    static_assert(std::is_same<detail::element_of<XI>, std::int16_t>::value && std::is_same<detail::element_of<XO>, std::int16_t>::value,
                  "int16 softmax: input and output must be int16_t tensors");
    auto s = std::make_unique<state>();
    NPUQ_RETURN_IF_ERROR(make_softmax_int16_problem(params, input_view(input), output_view(out), &s->p));
    s->threads = be.thread_count();
    // Sized for strided rows whatever the creation views' strides: runs may pass other views.
    const std::size_t rows = static_cast<std::size_t>(simd_detail::softmax_parts(s->threads, s->p.rows, s->p.depth) * s->p.depth);
    s->in_rows.assign(rows, 0);
    s->out_rows.assign(rows, 0);
    s->in_shape = s->p.in.layout();
    s->out_shape = s->p.out.layout();
    s->in_quant = s->p.in.quant();
    s->out_quant = s->p.out.quant();
    s->kernel = simd_detail::softmax_s16_kernel_name(true);
    s_ = std::move(s);
    return {};
  }

  // out = softmax(input) over the last axis; allocates nothing; on failure nothing is written.
  template <class XI, class XO>
  status try_run(const XI& input, const XO& out) {
    static_assert(std::is_same<detail::element_of<XI>, std::int16_t>::value,
                  "softmax_int16_plan::run: input must be an int16_t tensor");
    static_assert(std::is_same<detail::element_of<XO>, std::int16_t>::value,
                  "softmax_int16_plan::run: output must be an int16_t tensor");
    if (!s_) return {errc::invalid_argument, "softmax_int16_plan: empty plan (make it with make_softmax_int16_plan)"};
    detail::run_views<std::int16_t, std::int16_t> v;
    NPUQ_RETURN_IF_ERROR(detail::accept_run(s_->memo, input, "input", s_->in_shape, s_->in_quant, out, s_->out_shape, s_->out_quant, &v));
    if (v.changed) {  // else the problem holds these views already
      s_->p.in = v.in;
      s_->p.out = v.out;
    }
    simd_detail::run_softmax_s16_on(s_->threads, s_->p, s_->in_rows.data(), s_->out_rows.data());
    return {};
  }
  template <class XI, class XO>
  void run(const XI& input, const XO& out) {
    throw_if_error(try_run(input, out));
  }

  bool empty() const { return !s_; }
  // The kernel the plan runs on contiguous rows: "softmax_s16_lut".
  const std::string& kernel_name() const { return s_->kernel; }
  int threads() const { return s_->threads; }

 private:
  struct state {
    softmax_int16_problem p;  // holds the parameters and their tables
    std::vector<std::int16_t> in_rows, out_rows;
    Layout in_shape, out_shape;
    Quant in_quant, out_quant;
    detail::run_memo memo;
    std::string kernel;
    int threads = 1;
  };
  std::unique_ptr<state> s_;
};

// Makes an int16 softmax plan: validates exactly like softmax(simd, params, input, out) with
// int16 parameters, input and out standing for the tensors later runs pass.
template <class XI, class XO>
status try_make_softmax_int16_plan(const simd_backend& be, const softmax_int16_params& params, const XI& input, const XO& out,
                                   softmax_int16_plan* plan) {
  return plan->create(be, params, input, out);
}
template <class XI, class XO>
softmax_int16_plan make_softmax_int16_plan(const simd_backend& be, const softmax_int16_params& params, const XI& input, const XO& out) {
  softmax_int16_plan plan;
  throw_if_error(plan.create(be, params, input, out));
  return plan;
}

}  // namespace npuq
