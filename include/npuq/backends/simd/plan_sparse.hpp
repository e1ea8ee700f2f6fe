// Plans for the sparse-weight ops on the simd backend: GEMM on 2:4, block CSR or CSR weights, and
// conv2d_sparse.
//
// Why: a pruned layer runs many times on the same weights, and the one-shot sparse calls redo at
// every call what depends only on the weights (packing unpacked matrices, each channel's K-block
// bounds, the output stage's per-channel tables) and allocate their working memory. A plan does
// that once, like the dense plans of plan.hpp, with the same contract: creation validates exactly
// like the one-shot call and refuses the profiles the sparse kernels do not reproduce
// (saturating or wider than 32-bit accumulators); `run` re-checks only the activations and the
// output (shape, quantization, overlap), allocates nothing, splits the work over the backend's
// threads (sparse_split: every output element computed by one thread, the same bytes for any
// thread count) and writes the one-shot call's bytes. The same driver (sparse_driver in
// gemm_sparse.hpp) runs the one-shot calls.
//
//   auto plan = npuq::make_gemm_sparse_plan(npuq::simd, params, a, weights_2_4, bias, out);
//   plan.run(a, out);                                      // many times
//   auto conv = npuq::make_conv2d_sparse_plan(npuq::simd, params, in, w_bsr, npuq::sparse_conv_kernel{3, 3}, bias, out);
//
// The weights may be an unpacked sparse matrix (packed at creation) or packed sparse weights
// (copied at creation); the plan keeps neither the user's weights nor the bias.
#pragma once

#include <algorithm>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/backends/simd/gemm_sparse.hpp"
#include "npuq/backends/simd/plan.hpp"
#include "npuq/ops/conv2d_sparse.hpp"

namespace npuq {

// The packed form a sparse weight type runs as: packed_sparse_2_4_weights for 2:4 matrices,
// packed_sparse_pairs_weights for block CSR and CSR; packed weights are their own.
template <class S>
struct sparse_packed_of;
template <class V>
struct sparse_packed_of<sparse_2_4_matrix<V>> {
  using type = packed_sparse_2_4_weights;
};
template <>
struct sparse_packed_of<block_csr_matrix> {
  using type = packed_sparse_pairs_weights;
};
template <>
struct sparse_packed_of<csr_matrix> {
  using type = packed_sparse_pairs_weights;
};
template <>
struct sparse_packed_of<packed_sparse_2_4_weights> {
  using type = packed_sparse_2_4_weights;
};
template <>
struct sparse_packed_of<packed_sparse_pairs_weights> {
  using type = packed_sparse_pairs_weights;
};
template <class S>
using sparse_packed_t = typename sparse_packed_of<S>::type;

namespace simd_detail {

// Sparse weights as the plan's packed copy (b was validated by the caller).
template <class S, class P>
status pack_sparse_into(const S& b, P* w) {
  return w->pack(b);
}
inline status pack_sparse_into(const packed_sparse_2_4_weights& b, packed_sparse_2_4_weights* w) {
  *w = b;
  return {};
}
inline status pack_sparse_into(const packed_sparse_pairs_weights& b, packed_sparse_pairs_weights* w) {
  *w = b;
  return {};
}

// What both sparse plans run: the validated problem on the plan's packed weights, the driver,
// the split and the per-part scratch. The problem's a and out are the views of the current run
// (set_views, no checks); its stage and the driver's tables are fixed at creation.
template <class A, class P, class O>
struct sparse_gemm_core {
  gemm_sparse_problem<A, P, O> p;
  P w;
  std::optional<sparse_driver<P>> d;
  sparse_split split;  // for the creation shapes' batches
  driver_scratch scratch;
  std::string kernel;
  int threads = 1;

  // b was validated (with a, bias and out) as the one-shot call validates it.
  template <class S>
  status create(const simd_backend& be, const gemm_params& params, const TensorView<const A>& a, const S& b,
                const TensorView<const std::int32_t>& bias, const TensorView<O>& out, const char* op) {
    NPUQ_RETURN_IF_ERROR(pack_sparse_into(b, &w));
    NPUQ_RETURN_IF_ERROR(make_gemm_sparse_problem(params, a, w, bias, out, &p));
    NPUQ_RETURN_IF_ERROR(detail::plan_numerics(p.stage.numerics, op));
    d.emplace(be.level(), p.stage, p.bias, w);
    threads = be.thread_count();
    split = d->split(threads, p.M, p.batch_count());
    kernel = d->name(element_traits<A>::type);
    p.bias = TensorView<const std::int32_t>(nullptr, p.bias.layout(), Quant{});  // in the driver's stage now
    return {};
  }
  // Reserves the scratch of runs whose batch count is any of `batches` (one allocation).
  void reserve(std::initializer_list<std::int64_t> batches) {
    std::int64_t parts = 0;
    std::size_t bytes = 0;
    for (std::int64_t b : batches) {
      const sparse_split sp = d->split(threads, p.M, b);
      parts = std::max(parts, sp.parts());
      bytes = std::max(bytes, d->part_bytes(sp));
    }
    scratch.reserve(parts, bytes);
  }
  // The run's views, with their batch shape and strides (as make_gemm_sparse_problem sets them).
  void set_views(const TensorView<const A>& a, const TensorView<O>& out) {
    p.a = a;
    p.out = out;
    for (int i = 0; i < p.batch_rank; ++i) {
      p.batch_shape[i] = a.dim(i);
      p.a_bstride[i] = a.size() != 0 ? a.layout().stride(i) : 0;
      p.o_bstride[i] = out.layout().stride(i);
    }
  }
  void run(const sparse_split& sp) { d->run(threads, sp, p, w, scratch); }
};

}  // namespace simd_detail

// GEMM on sparse weights, out = requant(a x W + bias), on the simd backend, created once by
// make_gemm_sparse_plan: a [..., M, K] and out [..., M, N] with the shapes given at creation, W
// the sparse [K, N] weights (P: packed_sparse_2_4_weights for 2:4, packed_sparse_pairs_weights
// for block CSR and CSR), packed at creation.
template <class A, class P, class O>
class gemm_sparse_plan {
  static_assert(std::is_same<P, packed_sparse_2_4_weights>::value || std::is_same<P, packed_sparse_pairs_weights>::value,
                "gemm_sparse_plan: P is packed_sparse_2_4_weights or packed_sparse_pairs_weights");

 public:
  gemm_sparse_plan() = default;

  // Creates the plan (see make_gemm_sparse_plan); on failure *this is unchanged.
  template <class XA, class S, class XBias, class XO>
  status create(const simd_backend& be, const gemm_params& params, const XA& a, const S& b, const XBias& bias, const XO& out) {
    static_assert(std::is_same<detail::element_of<XA>, A>::value, "gemm_sparse_plan: a's element type differs from the plan's A");
    static_assert(std::is_same<sparse_packed_t<S>, P>::value, "gemm_sparse_plan: the weights' packed form differs from the plan's P");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "gemm_sparse_plan: output element type differs from the plan's O");
    auto s = std::make_unique<state>();
    {  // the one-shot call's validation, on the user's weights (their storage against the output)
      gemm_sparse_problem<A, S, O> checked;
      NPUQ_RETURN_IF_ERROR(make_gemm_sparse_problem(params, input_view(a), b, input_view(bias), output_view(out), &checked));
      NPUQ_RETURN_IF_ERROR(detail::plan_numerics(checked.stage.numerics, "gemm_sparse"));
    }
    NPUQ_RETURN_IF_ERROR(s->core.create(be, params, input_view(a), b, input_view(bias), output_view(out), "gemm_sparse"));
    s->core.reserve({s->core.p.batch_count()});
    s->a_shape = s->core.p.a.layout();
    s->out_shape = s->core.p.out.layout();
    s->a_quant = s->core.p.a.quant();
    s->out_quant = s->core.p.out.quant();
    s_ = std::move(s);
    return {};
  }

  // out = a x W (requantized); a and out must have the shapes and quantization the plan was made
  // with. Allocates nothing; on failure nothing is written.
  template <class XA, class XO>
  status try_run(const XA& a, const XO& out) {
    static_assert(std::is_same<detail::element_of<XA>, A>::value, "gemm_sparse_plan::run: a's element type differs from the plan's A");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "gemm_sparse_plan::run: output element type differs from the plan's O");
    if (!s_) return {errc::invalid_argument, "gemm_sparse_plan: empty plan (make it with make_gemm_sparse_plan)"};
    detail::run_views<A, O> v;
    NPUQ_RETURN_IF_ERROR(detail::accept_run(s_->memo, a, "a", s_->a_shape, s_->a_quant, out, s_->out_shape, s_->out_quant, &v));
    if (v.changed) s_->core.set_views(v.in, v.out);  // else the problem holds these views already
    s_->core.run(s_->core.split);
    return {};
  }
  template <class XA, class XO>
  void run(const XA& a, const XO& out) {
    throw_if_error(try_run(a, out));
  }

  bool empty() const { return !s_; }
  // The kernels the plan runs, e.g. "gemm_bsr_u8s8_32x2_avx512_vnni" (the one-shot call's
  // simd_last_kernel(); runs do not set it).
  const std::string& kernel_name() const { return s_->core.kernel; }
  int threads() const { return s_->core.threads; }

 private:
  struct state {
    simd_detail::sparse_gemm_core<A, P, O> core;
    Layout a_shape, out_shape;
    Quant a_quant, out_quant;
    detail::run_memo memo;
  };
  std::unique_ptr<state> s_;  // stable addresses: the driver's stage points into the problem
};

template <class XA, class S, class XO>
using gemm_sparse_plan_for = gemm_sparse_plan<detail::element_of<XA>, sparse_packed_t<S>, detail::element_of<XO>>;

// Makes a sparse GEMM plan: validates exactly like gemm(simd, params, a, b, bias, out) with b a
// sparse matrix (2:4, block CSR, CSR) or packed sparse weights, a and out standing for the
// tensors later runs pass (their data is not read or written here).
template <class XA, class S, class XBias, class XO>
status try_make_gemm_sparse_plan(const simd_backend& be, const gemm_params& params, const XA& a, const S& b, const XBias& bias,
                                 const XO& out, gemm_sparse_plan_for<XA, S, XO>* plan) {
  if (plan == nullptr) return {errc::invalid_argument, "plan: null"};
  return plan->create(be, params, a, b, bias, out);
}
template <class XA, class S, class XBias, class XO>
gemm_sparse_plan_for<XA, S, XO> make_gemm_sparse_plan(const simd_backend& be, const gemm_params& params, const XA& a, const S& b,
                                                             const XBias& bias, const XO& out) {
  gemm_sparse_plan_for<XA, S, XO> plan;
  throw_if_error(plan.create(be, params, a, b, bias, out));
  return plan;
}

// conv2d with sparse weights (conv2d_sparse: NHWC input and output, the [KH * KW * C, OC] sparse
// matrix, groups = 1) on the simd backend, created once by make_conv2d_sparse_plan. A 1x1
// window with stride 1 and no padding runs one sparse GEMM on the input as it is; any other
// window copies bands of output rows' input patches into the plan's buffer (sized at creation)
// and runs the sparse GEMM on each band, like the one-shot call.
template <class I, class P, class O>
class conv2d_sparse_plan {
  static_assert(std::is_same<P, packed_sparse_2_4_weights>::value || std::is_same<P, packed_sparse_pairs_weights>::value,
                "conv2d_sparse_plan: P is packed_sparse_2_4_weights or packed_sparse_pairs_weights");

 public:
  conv2d_sparse_plan() = default;

  template <class XI, class S, class XBias, class XO>
  status create(const simd_backend& be, const conv2d_params& params, const XI& input, const S& weights, sparse_conv_kernel kernel,
                const XBias& bias, const XO& out) {
    static_assert(std::is_same<detail::element_of<XI>, I>::value, "conv2d_sparse_plan: input element type differs from the plan's I");
    static_assert(std::is_same<sparse_packed_t<S>, P>::value, "conv2d_sparse_plan: the weights' packed form differs from the plan's P");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "conv2d_sparse_plan: output element type differs from the plan's O");
    auto s = std::make_unique<state>();
    const TensorView<const I> iv = input_view(input);
    const TensorView<O> ov = output_view(out);
    const TensorView<const std::int32_t> bv = input_view(bias);
    NPUQ_RETURN_IF_ERROR(detail::validate_conv2d_sparse(params, iv, weights, kernel, bv, ov, &s->g));
    NPUQ_RETURN_IF_ERROR(detail::plan_numerics(params.numerics, "conv2d_sparse"));
    gemm_params gp;
    static_cast<output_params&>(gp) = params;
    const conv_geometry& g = s->g;
    s->direct = detail::sparse_conv_direct(g);
    if (s->direct) {
      // The one-shot call's GEMM on [N, H, W, C] x [C, OC] -> [N, H, W, OC], validated like it.
      gemm_sparse_problem<I, S, O> checked;
      NPUQ_RETURN_IF_ERROR(make_gemm_sparse_problem(gp, iv, weights, bv, ov, &checked));
      NPUQ_RETURN_IF_ERROR(s->core.create(be, gp, iv, weights, bv, ov, "conv2d_sparse"));
      s->core.reserve({s->core.p.batch_count()});
    } else {
      s->band = detail::sparse_conv_band(g);
      const std::int64_t K = g.KH * g.KW * g.C;
      s->cols.assign(static_cast<std::size_t>(s->band * g.OW * K), I{});
      s->zp = static_cast<I>(iv.quant().present() ? iv.quant().zero_point() : 0);
      // The first band's GEMM, validated like the one-shot call's (later bands differ in data only).
      const std::int64_t capacity = static_cast<std::int64_t>(s->cols.size());
      NPUQ_RETURN_IF_ERROR(s->core.create(be, gp, detail::sparse_conv_band_input(s->cols.data(), capacity, g, s->band, iv.quant()), weights,
                                          bv, detail::sparse_conv_band_output(ov, g, weights.N, 0, 0, s->band, ov.quant()),
                                          "conv2d_sparse"));
      s->core.reserve({s->band, g.OH % s->band == 0 ? s->band : g.OH % s->band});
    }
    s->in_shape = iv.layout();
    s->out_shape = ov.layout();
    s->in_quant = iv.quant();
    s->out_quant = ov.quant();
    s_ = std::move(s);
    return {};
  }

  // out = conv2d_sparse(input); allocates nothing; on failure nothing is written.
  template <class XI, class XO>
  status try_run(const XI& input, const XO& out) {
    static_assert(std::is_same<detail::element_of<XI>, I>::value, "conv2d_sparse_plan::run: input element type differs from the plan's I");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "conv2d_sparse_plan::run: output element type differs from the plan's O");
    if (!s_) return {errc::invalid_argument, "conv2d_sparse_plan: empty plan (make it with make_conv2d_sparse_plan)"};
    detail::run_views<I, O> v;
    NPUQ_RETURN_IF_ERROR(detail::accept_run(s_->memo, input, "input", s_->in_shape, s_->in_quant, out, s_->out_shape, s_->out_quant, &v));
    simd_detail::sparse_gemm_core<I, P, O>& core = s_->core;
    if (s_->direct) {
      if (v.changed) core.set_views(v.in, v.out);  // else the problem holds these views already
      core.run(core.split);
      return {};
    }
    const TensorView<const I> iv = detail::bare_input_view(input);  // v holds the views only when they changed
    const TensorView<O> ov = detail::bare_output_view(out);
    const conv_geometry& g = s_->g;
    const std::int64_t K = g.KH * g.KW * g.C, capacity = static_cast<std::int64_t>(s_->cols.size());
    I* cols = s_->cols.data();
    for (std::int64_t n = 0; n < g.N; ++n)
      for (std::int64_t oy0 = 0; oy0 < g.OH; oy0 += s_->band) {
        const std::int64_t rows = std::min(s_->band, g.OH - oy0);
        detail::parallel_parts(core.threads, rows,
                               [&](std::int64_t r) { detail::im2col_rows(iv, g, n, oy0 + r, 1, s_->zp, cols + r * g.OW * K); });
        core.set_views(detail::sparse_conv_band_input<I>(cols, capacity, g, rows, Quant{}),
                       detail::sparse_conv_band_output(ov, g, core.p.N, n, oy0, rows, Quant{}));
        core.run(rows == s_->band ? core.split : core.d->split(core.threads, core.p.M, rows));
      }
    return {};
  }
  template <class XI, class XO>
  void run(const XI& input, const XO& out) {
    throw_if_error(try_run(input, out));
  }

  bool empty() const { return !s_; }
  // The sparse GEMM kernels the plan runs (the one-shot call's simd_last_kernel()).
  const std::string& kernel_name() const { return s_->core.kernel; }
  int threads() const { return s_->core.threads; }

 private:
  struct state {
    simd_detail::sparse_gemm_core<I, P, O> core;
    conv_geometry g;
    bool direct = false;
    std::int64_t band = 0;  // output rows per im2col band
    std::vector<I> cols;    // the band's patches [band, OW, K]
    I zp = 0;
    Layout in_shape, out_shape;
    Quant in_quant, out_quant;
    detail::run_memo memo;
  };
  std::unique_ptr<state> s_;
};

template <class XI, class S, class XO>
using conv2d_sparse_plan_for = conv2d_sparse_plan<detail::element_of<XI>, sparse_packed_t<S>, detail::element_of<XO>>;

// Makes a conv2d_sparse plan: validates exactly like conv2d_sparse(simd, params, input, weights,
// kernel, bias, out), with input and out standing for the tensors later runs pass.
template <class XI, class S, class XBias, class XO>
status try_make_conv2d_sparse_plan(const simd_backend& be, const conv2d_params& params, const XI& input, const S& weights,
                                   sparse_conv_kernel kernel, const XBias& bias, const XO& out,
                                   conv2d_sparse_plan_for<XI, S, XO>* plan) {
  if (plan == nullptr) return {errc::invalid_argument, "plan: null"};
  return plan->create(be, params, input, weights, kernel, bias, out);
}
template <class XI, class S, class XBias, class XO>
conv2d_sparse_plan_for<XI, S, XO> make_conv2d_sparse_plan(const simd_backend& be, const conv2d_params& params, const XI& input,
                                                                 const S& weights, sparse_conv_kernel kernel, const XBias& bias,
                                                                 const XO& out) {
  conv2d_sparse_plan_for<XI, S, XO> plan;
  throw_if_error(plan.create(be, params, input, weights, kernel, bias, out));
  return plan;
}

// The one call shape: make_conv2d_plan on sparse_conv2d_weights is make_conv2d_sparse_plan on
// their matrix and kernel extent.
template <class XI, class S, class XBias, class XO>
status try_make_conv2d_plan(const simd_backend& be, const conv2d_params& params, const XI& input, const sparse_conv2d_weights<S>& weights,
                            const XBias& bias, const XO& out, conv2d_sparse_plan_for<XI, S, XO>* plan) {
  return try_make_conv2d_sparse_plan(be, params, input, weights.matrix, weights.kernel, bias, out, plan);
}
template <class XI, class S, class XBias, class XO>
conv2d_sparse_plan_for<XI, S, XO> make_conv2d_plan(const simd_backend& be, const conv2d_params& params, const XI& input,
                                                   const sparse_conv2d_weights<S>& weights, const XBias& bias, const XO& out) {
  return make_conv2d_sparse_plan(be, params, input, weights.matrix, weights.kernel, bias, out);
}

}  // namespace npuq
