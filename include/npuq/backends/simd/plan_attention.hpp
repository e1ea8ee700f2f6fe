// The attention plan: attention on the simd backend created once and run many times (a decode
// loop runs the same shapes once per token, and a one-shot call pays for validation, output
// stages, softmax tables and working memory every time).
//
// In attention Q, K and V are all activations, so a plan fixes shapes and quantization, not data:
// creation validates exactly like attention(simd, ...), derives both requantizations, builds the
// softmax tables, picks the level's kernels and sizes the working memory of every thread part;
// `run(q, k, v, mask, out)` checks the views (shape, quantization, no overlap; a run on the same
// views as the last accepted one compares only the quantization), reads K and V where they lie
// (int4 or column-strided heads are copied into the pre-sized scratch) and allocates nothing.
//
// Plans run every S on the row pass of the one-shot decode (simd_detail::run_attention_rows, the
// same function): per query a dot-product pass over the visible keys, the table softmax on the
// int8 scores and a pass adding the V rows of the keys with probability. Rows (head, query) are
// split over the backend's threads in contiguous ranges, each computed exactly as on one thread,
// so the bytes are the same for any thread count and equal to the one-shot call's (whose prefill,
// S >= 8, runs blocked GEMMs: exact integer sums either way, the same output stages and softmax).
// The one-shot prefill's GEMMs repack K and V per call into freshly allocated packed weights,
// which an allocation-free run cannot use; a plan trades them for the streaming pass.
//
// Against a kv_cache the plan fixes the cache's heads, capacity, d, dv and quantization; the
// number of keys is the cache's length() at each run (0..capacity), so one plan serves a whole
// decode loop that appends to the cache between runs (a mask is checked against that length). A
// plan made from k and v views fixes their shapes (T included). Profiles whose accumulator
// saturates or is wider than 32 bits have no plan (the one-shot call runs them on the reference).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/backends/simd/attention.hpp"
#include "npuq/backends/simd/plan.hpp"
#include "npuq/ops/attention_problem.hpp"

namespace npuq {
namespace detail {
inline TensorView<const std::int32_t> bare_mask_view(no_mask_t) { return {}; }
template <class M>
TensorView<const std::int32_t> bare_mask_view(const M& m) {
  static_assert(std::is_same<element_of<M>, std::int32_t>::value, "attention plan: the mask must hold int32_t");
  return bare_input_view(m);
}
}  // namespace detail

// Attention on the simd backend (see attention_problem.hpp for the contract), created once by
// make_attention_plan from q, k and v views or from a kv_cache.
template <class Q, class KV, class O>
class attention_plan {
  using KB = simd_detail::head_byte_t<KV>;

 public:
  attention_plan() = default;

  // From k and v views: runs take q, k, v and out of these shapes and quantization.
  template <class XQ, class XK, class XV, class XM, class XO>
  status create(const simd_backend& be, const attention_params& params, const XQ& q, const XK& k, const XV& v, const XM& mask,
                const XO& out) {
    static_assert(std::is_same<detail::element_of<XQ>, Q>::value, "attention_plan: q's element type differs from the plan's Q");
    static_assert(std::is_same<detail::element_of<XK>, KV>::value, "attention_plan: k's element type differs from the plan's KV");
    static_assert(std::is_same<detail::element_of<XV>, KV>::value, "attention_plan: v's element type differs from the plan's KV");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "attention_plan: output element type differs from the plan's O");
    return make_state(be, params, input_view(q), input_view(k), input_view(v), input_view(mask), output_view(out), false);
  }
  // From a kv_cache: runs take q, a cache of the same heads, capacity, d, dv and quantization
  // (any length), and out.
  template <class XQ, class XM, class XO>
  status create(const simd_backend& be, const attention_params& params, const XQ& q, const kv_cache<KV>& cache, const XM& mask,
                const XO& out) {
    static_assert(std::is_same<detail::element_of<XQ>, Q>::value, "attention_plan: q's element type differs from the plan's Q");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "attention_plan: output element type differs from the plan's O");
    return make_state(be, params, input_view(q), cache.keys(), cache.values(), input_view(mask), output_view(out), true, cache.capacity());
  }

  // out = attention(q, k, v, mask); on failure nothing is written. Allocates nothing, except
  // once when K or V arrive column-strided while the creation's did not (their copy buffers grow).
  // Pass no_mask when the plan was made with no_mask.
  template <class XQ, class XK, class XV, class XM, class XO>
  status try_run(const XQ& q, const XK& k, const XV& v, const XM& mask, const XO& out) {
    static_assert(std::is_same<detail::element_of<XQ>, Q>::value, "attention_plan::run: q's element type differs from the plan's Q");
    static_assert(std::is_same<detail::element_of<XK>, KV>::value, "attention_plan::run: k's element type differs from the plan's KV");
    static_assert(std::is_same<detail::element_of<XV>, KV>::value, "attention_plan::run: v's element type differs from the plan's KV");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "attention_plan::run: output element type differs from the plan's O");
    if (!s_) return empty_plan();
    if (s_->from_cache)
      return {errc::invalid_argument, "k: the plan was made for a kv_cache; run it with the cache (or make a plan from k and v views)"};
    const TensorView<const KV> kv = detail::bare_input_view(k), vv = detail::bare_input_view(v);
    return run_views(q, kv, k.quant(), vv, v.quant(), mask, out, nullptr);
  }
  // Against the first length() positions of a kv_cache (see the class comment).
  template <class XQ, class XM, class XO>
  status try_run(const XQ& q, const kv_cache<KV>& cache, const XM& mask, const XO& out) {
    static_assert(std::is_same<detail::element_of<XQ>, Q>::value, "attention_plan::run: q's element type differs from the plan's Q");
    static_assert(std::is_same<detail::element_of<XO>, O>::value, "attention_plan::run: output element type differs from the plan's O");
    if (!s_) return empty_plan();
    if (!s_->from_cache)
      return {errc::invalid_argument, "cache: the plan was made for k and v views; make it with the kv_cache to run against one"};
    const Tensor<KV>& kb = cache.key_buffer();
    const Tensor<KV>& vb = cache.value_buffer();
    const state& s = *s_;
    if (cache.heads() != s.p.heads || cache.capacity() != s.capacity || kb.layout().dim(2) != s.p.d || vb.layout().dim(2) != s.p.dv)
      return {errc::invalid_shape, "cache: heads " + std::to_string(cache.heads()) + ", capacity " + std::to_string(cache.capacity()) +
                                       ", d " + std::to_string(kb.layout().dim(2)) + ", dv " + std::to_string(vb.layout().dim(2)) +
                                       "; the plan was made for heads " + std::to_string(s.p.heads) + ", capacity " +
                                       std::to_string(s.capacity) + ", d " + std::to_string(s.p.d) + ", dv " + std::to_string(s.p.dv)};
    const TensorView<const KV> kv = detail::bare_input_view(kb).slice(1, 0, cache.length());
    const TensorView<const KV> vv = detail::bare_input_view(vb).slice(1, 0, cache.length());
    return run_views(q, kv, kb.quant(), vv, vb.quant(), mask, out, "cache");
  }
  template <class XQ, class XK, class XV, class XM, class XO>
  void run(const XQ& q, const XK& k, const XV& v, const XM& mask, const XO& out) {
    throw_if_error(try_run(q, k, v, mask, out));
  }
  template <class XQ, class XM, class XO>
  void run(const XQ& q, const kv_cache<KV>& cache, const XM& mask, const XO& out) {
    throw_if_error(try_run(q, cache, mask, out));
  }

  bool empty() const { return !s_; }
  // The kernels the plan runs, e.g. "attention_decode_s8_rows_avx512_vnni" (runs do not set
  // simd_last_kernel).
  const std::string& kernel_name() const { return s_->kernel; }
  int threads() const { return s_->threads; }

 private:
  struct state {
    attention_problem<Q, KV, O> p;
    simd_detail::decode_kernels<KB> kern{};
    simd_detail::softmax_tables tables;
    std::vector<simd_detail::attention_rows_scratch<KB>> scratch;  // one per thread part
    Layout q_shape, k_shape, v_shape, out_shape;
    Quant q_quant, k_quant, v_quant, out_quant;
    detail::run_memo::key q_key, k_key, v_key, mask_key, out_key;
    bool memo_valid = false;
    bool from_cache = false;
    bool has_mask = false;
    std::int64_t capacity = 0;  // keys the scratch holds: the cache's capacity, or T
    std::string kernel;
    int threads = 1;
  };

  static status empty_plan() { return {errc::invalid_argument, "attention_plan: empty plan (make it with make_attention_plan)"}; }

  status make_state(const simd_backend& be, const attention_params& params, const TensorView<const Q>& q, const TensorView<const KV>& k,
                    const TensorView<const KV>& v, const TensorView<const std::int32_t>& mask, const TensorView<O>& out,
                    bool from_cache, std::int64_t cache_capacity = 0) {
    auto s = std::make_unique<state>();
    NPUQ_RETURN_IF_ERROR(make_attention_problem(params, q, k, v, mask, out, &s->p));
    NPUQ_RETURN_IF_ERROR(detail::plan_numerics(s->p.score_stage.numerics, "attention"));
    attention_problem<Q, KV, O>& p = s->p;
    s->from_cache = from_cache;
    s->capacity = from_cache ? cache_capacity : p.T;
    s->has_mask = p.has_mask();
    s->kern = simd_detail::select_decode<KB>(be.level());
    s->tables = simd_detail::softmax_tables::make(p.softmax, be.level());
    s->threads = be.thread_count();
    s->q_shape = q.layout();
    s->k_shape = k.layout();
    s->v_shape = v.layout();
    s->out_shape = out.layout();
    s->q_quant = q.quant();
    s->k_quant = k.quant();
    s->v_quant = v.quant();
    s->out_quant = out.quant();
    s->kernel = simd_detail::attention_rows_kernel_name<KV>(s->kern.suffix);
    // The data given here is not referenced after creation: runs set every view.
    p.q = TensorView<const Q>(nullptr, q.layout(), Quant{});
    p.k = TensorView<const KV>(nullptr, k.layout(), Quant{});
    p.v = TensorView<const KV>(nullptr, v.layout(), Quant{});
    p.mask = TensorView<const std::int32_t>(nullptr, mask.layout(), Quant{});
    p.out = TensorView<O>(nullptr, out.layout(), Quant{});
    const std::int64_t parts = std::max<std::int64_t>(1, std::min<std::int64_t>(s->threads, p.heads * p.S));
    s->scratch.reserve(static_cast<std::size_t>(parts));
    for (std::int64_t i = 0; i < parts; ++i)
      s->scratch.emplace_back(p, s->capacity, simd_detail::head_needs_copy(k), simd_detail::head_needs_copy(v));
    s_ = std::move(s);
    return {};
  }

  // The run on views of K and V (cache: the cache's, `cache_name` naming them in messages).
  template <class XQ, class XM, class XO>
  status run_views(const XQ& q, const TensorView<const KV>& kv, const Quant& kq, const TensorView<const KV>& vv, const Quant& vq,
                   const XM& mask, const XO& out, const char* cache_name) {
    state& s = *s_;
    const TensorView<const Q> qv = detail::bare_input_view(q);
    const TensorView<const std::int32_t> mv = detail::bare_mask_view(mask);
    const TensorView<O> ov = detail::bare_output_view(out);
    const char* k_name = cache_name ? "cache: k" : "k";
    const char* v_name = cache_name ? "cache: v" : "v";
    const bool same = s.memo_valid && s.q_key.matches(qv) && s.k_key.matches(kv) && s.v_key.matches(vv) && s.mask_key.matches(mv) &&
                      s.out_key.matches(ov);
    if (!detail::same_quant(q.quant(), s.q_quant)) return detail::quant_differs("q");
    if (!detail::same_quant(kq, s.k_quant)) return detail::quant_differs(k_name);
    if (!detail::same_quant(vq, s.v_quant)) return detail::quant_differs(v_name);
    if (!detail::same_quant(out.quant(), s.out_quant)) return detail::quant_differs("output");
    if (!same) {  // the quantizations were compared above
      s.memo_valid = false;
      NPUQ_RETURN_IF_ERROR(detail::check_plan_operand(qv, s.q_quant, s.q_shape, s.q_quant, "q"));
      if (cache_name == nullptr) {
        NPUQ_RETURN_IF_ERROR(detail::check_plan_operand(kv, s.k_quant, s.k_shape, s.k_quant, "k"));
        NPUQ_RETURN_IF_ERROR(detail::check_plan_operand(vv, s.v_quant, s.v_shape, s.v_quant, "v"));
      }
      const bool mask_given = mv.rank() > 0 || mv.data() != nullptr;
      if (mask_given != s.has_mask)
        return {errc::invalid_argument, s.has_mask ? "mask: the plan was made with a mask; pass one to every run"
                                                   : "mask: the plan was made with no_mask; make another plan to run with a mask"};
      const std::int64_t T = kv.dim(kv.rank() - 2);  // a valid rank 2 or 3 view
      std::int64_t mask_stride[3] = {0, 0, 0};
      if (mask_given) NPUQ_RETURN_IF_ERROR(detail::attention_mask_strides(mv, s.p.heads, s.p.S, T, mask_stride));
      NPUQ_RETURN_IF_ERROR(detail::check_plan_operand(ov, s.out_quant, s.out_shape, s.out_quant, "output"));
      NPUQ_RETURN_IF_ERROR(detail::validate_output_memory(ov, qv, kv, vv, mv));
      // A run whose K or V heads must be copied where the creation's did not (column-strided
      // views): the copy buffers grow here, once.
      for (auto& sc : s.scratch) {
        if (simd_detail::head_needs_copy(kv) && sc.k_copy.size() < static_cast<std::size_t>(s.capacity * s.p.d))
          sc.k_copy.resize(static_cast<std::size_t>(s.capacity * s.p.d));
        if (simd_detail::head_needs_copy(vv) && sc.v_copy.size() < static_cast<std::size_t>(s.capacity * s.p.dv))
          sc.v_copy.resize(static_cast<std::size_t>(s.capacity * s.p.dv));
      }
      s.p.q = qv;
      s.p.k = kv;
      s.p.v = vv;
      s.p.mask = mv;
      s.p.out = ov;
      s.p.T = T;
      for (int f = 0; f < 3; ++f) s.p.mask_stride[f] = mask_stride[f];
      s.q_key.set(qv);
      s.k_key.set(kv);
      s.v_key.set(vv);
      s.mask_key.set(mv);
      s.out_key.set(ov);
      s.memo_valid = true;
    }
    if (ov.size() == 0) return {};
    simd_detail::run_attention_rows(s.threads, s.p, s.kern, s.tables, s.scratch.data());
    return {};
  }

  std::unique_ptr<state> s_;  // stable addresses: the scratch's output stages point into the problem
};

template <class XQ, class XK, class XV>
using attention_plan_for = attention_plan<detail::element_of<XQ>, detail::element_of<XK>, detail::element_of<XV>>;

// Makes an attention plan: validates exactly like attention(simd, params, q, k, v, mask, out),
// with the views standing for the tensors later runs pass (their data is not read or written here).
template <class XQ, class XK, class XV, class XM, class XO>
status try_make_attention_plan(const simd_backend& be, const attention_params& params, const XQ& q, const XK& k, const XV& v,
                               const XM& mask, const XO& out, attention_plan_for<XQ, XK, XO>* plan) {
  return plan->create(be, params, q, k, v, mask, out);
}
template <class XQ, class XK, class XV, class XM, class XO>
attention_plan_for<XQ, XK, XO> make_attention_plan(const simd_backend& be, const attention_params& params, const XQ& q, const XK& k,
                                                   const XV& v, const XM& mask, const XO& out) {
  attention_plan_for<XQ, XK, XO> plan;
  throw_if_error(plan.create(be, params, q, k, v, mask, out));
  return plan;
}

// The same against a kv_cache: validates like attention(simd, params, q, cache, mask, out) and
// fixes the cache's heads, capacity, d, dv and quantization (its length is read at every run).
template <class XQ, class KV, class XM, class XO>
status try_make_attention_plan(const simd_backend& be, const attention_params& params, const XQ& q, const kv_cache<KV>& cache,
                               const XM& mask, const XO& out, attention_plan<detail::element_of<XQ>, KV, detail::element_of<XO>>* plan) {
  return plan->create(be, params, q, cache, mask, out);
}
template <class XQ, class KV, class XM, class XO>
attention_plan<detail::element_of<XQ>, KV, detail::element_of<XO>> make_attention_plan(const simd_backend& be, const attention_params& params,
                                                                                       const XQ& q, const kv_cache<KV>& cache, const XM& mask,
                                                                                       const XO& out) {
  attention_plan<detail::element_of<XQ>, KV, detail::element_of<XO>> plan;
  throw_if_error(plan.create(be, params, q, cache, mask, out));
  return plan;
}

}  // namespace npuq
