// The attention problem: parameters, masks, validation, and what a backend receives.
//
// npuq's attention is the quantized graph TFLite and NPU compilers build for one transformer
// attention, fused into one call and computed exactly as the unfused ops would:
//
//   scores = requant(Q K^T)            int8, scale/zero point `params.score`, per head   (BatchMatMul)
//   scores = sat8(scores + mask)       optional additive mask; entries <= -256 remove the key
//   P      = softmax(scores)           TFLite int8 softmax over the visible keys; P is int8
//                                      (scale 1/256, zero point -128) or uint8 (1/256, 0)
//   out    = requant(P V)              int8 or uint8, the output tensor's scale and zero point
//
// Q is [H, S, d], K is [H, T, d], V is [H, T, dv], out is [H, S, dv] (rank 2 means one head;
// any strides, so a [S, H*d] projection output is a strided [H, S, d] view). Q, K, V and out are
// quantized per tensor. The causal flag lets query s see keys t <= s + T - S (the queries are the
// last S positions). A key that is removed (causal, or a mask entry <= -256) takes no
// probability: it is left out of the row's maximum and sum and its P entry is P's zero point, so
// it adds nothing to P V. A query with no visible key outputs the output zero point. Both
// requantizations follow `params.numerics` (rounding, multiplier format, accumulator width),
// like GEMM. Softmax takes beta (default 1/sqrt(d)) with the score scale, or a precomputed
// (multiplier, shift, diff_min) triple.
//
// `kv_cache` holds K and V for decoding: [H, capacity, d] buffers (int8, uint8 or int4) that
// grow by appending, whose first `length()` positions are the K and V of the next call.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "npuq/core/checked.hpp"
#include "npuq/core/tensor.hpp"
#include "npuq/ops/output_stage.hpp"
#include "npuq/ops/softmax_params.hpp"

namespace npuq {

// Mask entries at or below this value remove the key (an additive minus infinity).
inline constexpr std::int32_t attention_masked = -256;

struct no_mask_t {};
inline constexpr no_mask_t no_mask{};
inline TensorView<const std::int32_t> input_view(no_mask_t) { return {}; }
namespace detail {
template <>
struct view_element<no_mask_t> {
  using type = std::int32_t;
  static constexpr bool writable = false;
};
}  // namespace detail

struct attention_params {
  numerics_profile numerics = numerics_profile::tflite();
  Quant score;                              // per-tensor int8 quantization of Q K^T (required)
  float beta = 0.0f;                        // softmax beta; 0 means 1 / sqrt(d)
  std::optional<softmax_params> softmax;    // precomputed triple; overrides beta
  softmax_exp exp = softmax_exp::fixed_point;
  bool causal = false;
  dtype probabilities = dtype::s8;          // P: s8 (zero point -128) or u8 (zero point 0)
};

template <class Q, class KV, class O>
struct attention_problem {
  static_assert(is_8bit_v<Q>, "attention: Q must be int8_t or uint8_t");
  static_assert(is_8bit_v<KV> || std::is_same<KV, int4>::value, "attention: K and V must be int8_t, uint8_t or int4");
  static_assert(is_8bit_v<O>, "attention: the output must be int8_t or uint8_t");
  TensorView<const Q> q;
  TensorView<const KV> k, v;
  TensorView<const std::int32_t> mask;  // rank 0: none
  TensorView<O> out;
  std::int64_t heads = 0, S = 0, T = 0, d = 0, dv = 0;
  std::int32_t q_zero_point = 0, k_zero_point = 0, v_zero_point = 0;
  output_stage score_stage;  // Q K^T -> int8 scores
  output_stage out_stage;    // P V -> output
  softmax_params softmax;
  bool causal = false;
  dtype probabilities = dtype::s8;
  std::int32_t p_zero_point = -128, p_min = -128, p_max = 127;
  std::int64_t mask_stride[3] = {0, 0, 0};  // per (head, query, key); 0 where the mask broadcasts

  // Element offset of (h, i, j) in a [H, rows, cols] view (rank 3) or [rows, cols] view (rank 2).
  template <class V>
  static std::int64_t at(const TensorView<V>& t, std::int64_t h, std::int64_t i, std::int64_t j) {
    const Layout& l = t.layout();
    const int r = l.rank();
    return t.offset() + (r == 3 ? h * l.stride(0) : 0) + i * l.stride(r - 2) + j * l.stride(r - 1);
  }
  bool has_mask() const { return mask.rank() > 0; }
  std::int32_t mask_at(std::int64_t h, std::int64_t s, std::int64_t t) const {
    return mask.load(mask.offset() + h * mask_stride[0] + s * mask_stride[1] + t * mask_stride[2]);
  }
  // Keys 0 .. visible_keys(s) - 1 are visible to query s under the causal rule (all of them otherwise).
  std::int64_t visible_keys(std::int64_t s) const {
    if (!causal) return T;
    const std::int64_t n = s + T - S + 1;
    return n < 0 ? 0 : (n > T ? T : n);
  }
  // The score of a visible key after the mask, or false if the mask removes the key.
  bool apply_mask(std::int64_t h, std::int64_t s, std::int64_t t, std::int32_t* score) const {
    if (!has_mask()) return true;
    const std::int32_t m = mask_at(h, s, t);
    if (m <= attention_masked) return false;
    const std::int64_t v = std::int64_t{*score} + m;
    *score = static_cast<std::int32_t>(v < -128 ? -128 : (v > 127 ? 127 : v));
    return true;
  }
};

namespace detail {

template <class V>
status require_per_tensor(const TensorView<V>& t, const char* name) {
  NPUQ_RETURN_IF_ERROR(validate_quant(t.quant(), t.layout(), t.type(), name, true));
  if (t.quant().granularity != quant_granularity::per_tensor)
    return {errc::invalid_quantization, std::string(name) + ": attention needs per-tensor quantization"};
  return {};
}

inline std::string dim_string(std::int64_t a, std::int64_t b, std::int64_t c, int rank) {
  return rank == 3 ? "[" + std::to_string(a) + ", " + std::to_string(b) + ", " + std::to_string(c) + "]"
                   : "[" + std::to_string(b) + ", " + std::to_string(c) + "]";
}

// A mask against [H, S, T]: a valid view of rank 1..3, right-aligned, each dimension 1 or
// equal; strides[] receives its element strides per (head, query, key), 0 where it broadcasts.
inline status attention_mask_strides(const TensorView<const std::int32_t>& mask, std::int64_t H, std::int64_t S, std::int64_t T,
                                     std::int64_t strides[3]) {
  NPUQ_RETURN_IF_ERROR(mask.validate("mask"));
  const std::int64_t full[3] = {H, S, T};
  const int mr = mask.rank();
  if (mr < 1 || mr > 3)
    return {errc::invalid_shape, "mask: rank " + std::to_string(mr) + ", expected 1..3 (broadcast against [heads, S, T])"};
  std::int64_t st[3] = {0, 0, 0};
  for (int i = 0; i < mr; ++i) {
    const int f = 3 - mr + i;
    if (mask.dim(i) != 1 && mask.dim(i) != full[f])
      return {errc::invalid_shape, "mask: shape " + mask.layout().shape_string() + " does not broadcast to " + dim_string(H, S, T, 3) +
                                       " (dimension " + std::to_string(i) + ")"};
    st[f] = mask.dim(i) == 1 ? 0 : mask.layout().stride(i);
  }
  for (int f = 0; f < 3; ++f) strides[f] = st[f];
  return {};
}

}  // namespace detail

template <class Q, class KV, class O>
status make_attention_problem(const attention_params& p, const TensorView<const Q>& q, const TensorView<const KV>& k,
                              const TensorView<const KV>& v, const TensorView<const std::int32_t>& mask, const TensorView<O>& out,
                              attention_problem<Q, KV, O>* pb) {
  NPUQ_RETURN_IF_ERROR(p.numerics.validate());
  NPUQ_RETURN_IF_ERROR(q.validate("q"));
  NPUQ_RETURN_IF_ERROR(k.validate("k"));
  NPUQ_RETURN_IF_ERROR(v.validate("v"));
  NPUQ_RETURN_IF_ERROR(out.validate("output"));
  const int r = q.rank();
  if (r != 2 && r != 3) return {errc::invalid_shape, "q: rank " + std::to_string(r) + ", expected 3 ([heads, S, d]) or 2 ([S, d])"};
  const char* names[3] = {"k", "v", "output"};
  const int ranks[3] = {k.rank(), v.rank(), out.rank()};
  for (int i = 0; i < 3; ++i)
    if (ranks[i] != r)
      return {errc::invalid_shape, std::string(names[i]) + ": rank " + std::to_string(ranks[i]) + ", expected " + std::to_string(r) + " like q"};
  const std::int64_t H = r == 3 ? q.dim(0) : 1, S = q.dim(r - 2), d = q.dim(r - 1);
  const std::int64_t T = k.dim(r - 2), dv = v.dim(r - 1);
  if (d == 0) return {errc::invalid_shape, "q: head dimension d is 0"};
  if ((r == 3 && k.dim(0) != H) || k.dim(r - 1) != d)
    return {errc::invalid_shape, "k: shape " + k.layout().shape_string() + ", expected " + detail::dim_string(H, T, d, r) +
                                     " (heads and head dimension of q)"};
  if ((r == 3 && v.dim(0) != H) || v.dim(r - 2) != T)
    return {errc::invalid_shape, "v: shape " + v.layout().shape_string() + ", expected " + detail::dim_string(H, T, dv, r) +
                                     " (heads of q, keys of k)"};
  if ((r == 3 && out.dim(0) != H) || out.dim(r - 2) != S || out.dim(r - 1) != dv)
    return {errc::invalid_shape, "output: shape " + out.layout().shape_string() + ", expected " + detail::dim_string(H, S, dv, r)};

  // Quantization: everything per tensor; the score quantization is int8.
  NPUQ_RETURN_IF_ERROR(detail::require_per_tensor(q, "q"));
  NPUQ_RETURN_IF_ERROR(detail::require_per_tensor(k, "k"));
  NPUQ_RETURN_IF_ERROR(detail::require_per_tensor(v, "v"));
  NPUQ_RETURN_IF_ERROR(detail::require_per_tensor(out, "output"));
  if (!p.score.present()) return {errc::invalid_quantization, "score: the int8 quantization of Q K^T (params.score) is required"};
  const TensorView<std::int8_t> score_desc(nullptr, Layout::row_major({1}), p.score);
  NPUQ_RETURN_IF_ERROR(detail::require_per_tensor(score_desc, "score"));
  if (p.probabilities != dtype::s8 && p.probabilities != dtype::u8)
    return {errc::invalid_dtype, "probabilities: must be s8 or u8"};

  // Softmax parameters: the given triple, or beta (default 1/sqrt(d)) with the score scale.
  softmax_params sm;
  if (p.softmax) {
    sm = *p.softmax;
    NPUQ_RETURN_IF_ERROR(sm.validate());
    if (sm.contract != softmax_contract::tflite)
      return {errc::unsupported, "softmax: attention computes TFLite's softmax; the onnxruntime_qlinear contract is not implemented there"};
  } else {
    const float beta = p.beta == 0.0f ? static_cast<float>(1.0 / std::sqrt(static_cast<double>(d))) : p.beta;
    NPUQ_RETURN_IF_ERROR(softmax_params::from_beta(beta, p.score.scale(), &sm));
  }
  sm.exp = p.exp;

  // Mask: rank 1..3, right-aligned against [H, S, T], each dimension 1 or equal.
  if (mask.rank() > 0 || mask.data() != nullptr) NPUQ_RETURN_IF_ERROR(detail::attention_mask_strides(mask, H, S, T, pb->mask_stride));
  NPUQ_RETURN_IF_ERROR(detail::validate_output_memory(out, q, k, v, mask));

  // The two requantizations, derived exactly as GEMM derives them.
  output_params op;
  op.numerics = p.numerics;
  NPUQ_RETURN_IF_ERROR(detail::make_output_stage(op, q, k, score_desc, 1, 0, &pb->score_stage, "q", "k"));
  pb->probabilities = p.probabilities;
  pb->p_zero_point = p.probabilities == dtype::s8 ? -128 : 0;
  pb->p_min = pb->p_zero_point;
  pb->p_max = pb->p_zero_point + 255;
  const TensorView<const std::int8_t> p_desc(nullptr, Layout::row_major({1}), Quant::per_tensor(1.0f / 256.0f, pb->p_zero_point));
  NPUQ_RETURN_IF_ERROR(detail::make_output_stage(op, p_desc, v, out, 1, 0, &pb->out_stage, "probabilities", "v"));

  pb->q = q;
  pb->k = k;
  pb->v = v;
  pb->mask = mask;
  pb->out = out;
  pb->heads = H;
  pb->S = S;
  pb->T = T;
  pb->d = d;
  pb->dv = dv;
  pb->q_zero_point = q.quant().zero_point();
  pb->k_zero_point = k.quant().zero_point();
  pb->v_zero_point = v.quant().zero_point();
  pb->softmax = sm;
  pb->causal = p.causal;
  return {};
}

// The extents of a kv_cache by name (four integers in a row are easy to swap unnoticed).
struct kv_cache_shape {
  std::int64_t heads = 0;     // attention heads H
  std::int64_t capacity = 0;  // positions the cache can hold
  std::int64_t d = 0;         // key size per head
  std::int64_t dv = 0;        // value size per head
};

// K and V of the positions decoded so far: [H, capacity, d] and [H, capacity, dv] buffers that
// grow by appending. keys() and values() are the first length() positions, ready for attention.
template <class KV = std::int8_t>
class kv_cache {
 public:
  kv_cache(const kv_cache_shape& shape, Quant k_quant, Quant v_quant)
      : kv_cache(shape.heads, shape.capacity, shape.d, shape.dv, std::move(k_quant), std::move(v_quant)) {}
  // The same by position: heads, capacity, d, dv.
  kv_cache(std::int64_t heads, std::int64_t capacity, std::int64_t d, std::int64_t dv, Quant k_quant, Quant v_quant)
      : k_(Layout::row_major({heads, capacity, d}), std::move(k_quant)),
        v_(Layout::row_major({heads, capacity, dv}), std::move(v_quant)) {
    throw_if_error(detail::require_per_tensor(k_.cview(), "kv_cache: k"));
    throw_if_error(detail::require_per_tensor(v_.cview(), "kv_cache: v"));
  }

  std::int64_t length() const { return length_; }
  std::int64_t capacity() const { return k_.layout().dim(1); }
  std::int64_t heads() const { return k_.layout().dim(0); }
  void clear() { length_ = 0; }

  TensorView<const KV> keys() const { return k_.cview().slice(1, 0, length_); }
  TensorView<const KV> values() const { return v_.cview().slice(1, 0, length_); }
  // The whole [H, capacity, d] and [H, capacity, dv] buffers (positions from length() on hold
  // nothing meaningful); an attention plan reads them without copying their quantization.
  const Tensor<KV>& key_buffer() const { return k_; }
  const Tensor<KV>& value_buffer() const { return v_; }

  // Appends n positions: k_new [H, n, d] and v_new [H, n, dv], quantized exactly as the cache.
  template <class XK, class XV>
  status try_append(const XK& k_new, const XV& v_new) {
    const TensorView<const KV> kn = input_view(k_new), vn = input_view(v_new);
    NPUQ_RETURN_IF_ERROR(check("k", kn, k_));
    NPUQ_RETURN_IF_ERROR(check("v", vn, v_));
    const std::int64_t n = kn.dim(1);
    if (vn.dim(1) != n)
      return {errc::invalid_shape, "kv_cache: v adds " + std::to_string(vn.dim(1)) + " positions, k adds " + std::to_string(n)};
    std::int64_t end = 0;
    if (!checked_add(length_, n, &end) || end > capacity())
      return {errc::buffer_too_small, "kv_cache: appending " + std::to_string(n) + " positions to " + std::to_string(length_) +
                                          " exceeds the capacity of " + std::to_string(capacity())};
    copy_in(kn, k_);
    copy_in(vn, v_);
    length_ += n;
    return {};
  }
  template <class XK, class XV>
  void append(const XK& k_new, const XV& v_new) {
    throw_if_error(try_append(k_new, v_new));
  }

 private:
  static status check(const char* name, const TensorView<const KV>& t, const Tensor<KV>& buf) {
    NPUQ_RETURN_IF_ERROR(t.validate(name));
    if (t.rank() != 3 || t.dim(0) != buf.layout().dim(0) || t.dim(2) != buf.layout().dim(2))
      return {errc::invalid_shape, std::string("kv_cache: ") + name + " has shape " + t.layout().shape_string() + ", expected [" +
                                       std::to_string(buf.layout().dim(0)) + ", n, " + std::to_string(buf.layout().dim(2)) + "]"};
    const Quant& q = t.quant();
    if (!q.present() || q.granularity != quant_granularity::per_tensor || q.scale() != buf.quant().scale() ||
        q.zero_point() != buf.quant().zero_point())
      return {errc::invalid_quantization, std::string("kv_cache: ") + name + " must carry the cache's per-tensor scale and zero point"};
    if (overlaps(t, buf.cview())) return {errc::aliasing, std::string("kv_cache: ") + name + " overlaps the cache"};
    return {};
  }
  void copy_in(const TensorView<const KV>& t, const Tensor<KV>& buf) const {
    const TensorView<KV> dst = buf.view();
    for (std::int64_t h = 0; h < t.dim(0); ++h)
      for (std::int64_t i = 0; i < t.dim(1); ++i)
        for (std::int64_t j = 0; j < t.dim(2); ++j) dst.set(t(h, i, j), h, length_ + i, j);
  }

  Tensor<KV> k_, v_;
  std::int64_t length_ = 0;
};

}  // namespace npuq
