// simd attention: prefill as blocked GEMMs over key tiles, decode as a streaming pass over K and V.
//
// Prefill (S >= 8): per head, K is packed once in tiles of `key_tile` keys (the GEMM's packed
// [d, keys] weights) and V once ([T, dv]); each block of `query_block` queries then runs
//   1. a GEMM per visible key tile writing int8 scores straight into a query_block x T int8 tile
//      (the requantization is the GEMM's output stage with the score multiplier),
//   2. the mask and the table softmax row by row (simd_detail::softmax_row_s8), writing P - zp
//      (0..255, identical for int8 and uint8 P) into a query_block x T uint8 tile,
//   3. a GEMM of that tile with the packed V and the output multiplier into the output rows.
// The row maximum is known before any exponential is summed because a row's scores are all in
// the int8 tile when its softmax starts; memory is O(query_block * T) bytes plus the packed K and
// V of one head: no S x T matrix exists, of int32 or of anything else. Causal blocks skip key
// tiles no query of the block can see.
//
// Decode (S < 8, e.g. one new token against a KV cache): per query, one pass over the visible
// keys computes each int8 score with a dot product, the softmax runs on the int8 scores, and a
// second pass adds (p - zp) * v rows for the keys whose probability is not zero, so K is read
// once and V at most once, as bytes (x86/attention_decode_avx2.hpp,
// x86/attention_decode_avx512.hpp, arm/attention_decode_neon.hpp, a portable loop elsewhere; each
// level runs the family its row of level_table.hpp lists).
// An int4 cache (or a view whose columns are not contiguous) is copied head by head into int8
// rows first. This row pass (run_attention_rows) splits the (head, query) rows over the backend's
// threads, each row computed as on one thread, and runs on caller-sized scratch: the attention
// plan (plan_attention.hpp) runs every S through it without allocating.
//
// Every sum is int32 with wrap-around (exact for accumulators that wrap at <= 32 bits); other
// profiles run the reference ("attention_reference").
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/backends/scalar/attention.hpp"
#include "npuq/backends/simd/gemm.hpp"
#include "npuq/backends/simd/softmax.hpp"
#include "npuq/backends/simd/arm/attention_decode_neon.hpp"
#include "npuq/backends/simd/x86/attention_decode_avx2.hpp"
#include "npuq/backends/simd/x86/attention_decode_avx512.hpp"

namespace npuq {
namespace simd_detail {

constexpr std::int64_t attention_query_block = 64;
constexpr std::int64_t attention_key_tile = 512;

// Head h of a rank-2 or rank-3 attention tensor as a 2-D [rows, cols] view.
template <class V>
TensorView<V> head_matrix(const TensorView<V>& t, std::int64_t h) {
  const Layout& l = t.layout();
  const int r = l.rank();
  const std::int64_t off = t.offset() + (r == 3 ? h * l.stride(0) : 0);
  return {t.data(), off, Layout::strided({l.dim(r - 2), l.dim(r - 1)}, {l.stride(r - 2), l.stride(r - 1)}), t.quant(), t.capacity()};
}

// K and V as the kernels read them: 8-bit rows with unit column stride (int4 storage as int8).
template <class KV>
using head_byte_t = std::conditional_t<std::is_same<KV, int4>::value, std::int8_t, KV>;

// A head's rows: row i starts at row0 + i * stride.
template <class KB>
struct head_rows {
  const KB* row0 = nullptr;
  std::int64_t stride = 0;
};

// True when the heads of a rank-2 or rank-3 K or V must be copied to be read as head_rows
// (int4 storage, or columns that are not contiguous).
template <class KV>
bool head_needs_copy(const TensorView<const KV>& t) {
  if constexpr (std::is_same<KV, int4>::value) {
    (void)t;
    return true;
  } else {
    const Layout& l = t.layout();
    return l.dim(l.rank() - 1) > 1 && l.stride(l.rank() - 1) != 1;
  }
}

// Head h of K or V as rows: the view's own bytes, or (head_needs_copy) a contiguous copy in
// `buf`, which holds a head's rows x cols elements. Reads through the layout only (the view's
// quantization may be absent, as in a plan's).
template <class KV>
head_rows<head_byte_t<KV>> head_bytes(const TensorView<const KV>& t, std::int64_t h, head_byte_t<KV>* buf) {
  using KB = head_byte_t<KV>;
  const Layout& l = t.layout();
  const int r = l.rank();
  const std::int64_t rows = l.dim(r - 2), cols = l.dim(r - 1), rs = l.stride(r - 2), cs = l.stride(r - 1);
  const std::int64_t off = t.offset() + (r == 3 ? h * l.stride(0) : 0);
  if constexpr (!std::is_same<KV, int4>::value) {
    if (!head_needs_copy(t)) return {t.data() + off, rows <= 1 ? 0 : rs};
  }
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) buf[i * cols + j] = static_cast<KB>(t.load(off + i * rs + j * cs));
  return {buf, rows <= 1 ? 0 : cols};
}

// Elements of the copy buffer head_bytes needs for t (0 when it reads t in place).
template <class KV>
std::size_t head_copy_elements(const TensorView<const KV>& t) {
  const Layout& l = t.layout();
  return head_needs_copy(t) ? static_cast<std::size_t>(l.dim(l.rank() - 2) * l.dim(l.rank() - 1)) : 0;
}

// A 2-D head of K or V as 8-bit rows with unit column stride, as a view (for callers that pass
// it to GEMMs, e.g. the NPU backend): the view itself, or a contiguous copy made by head_bytes.
template <class KV>
struct head_operand {
  using byte_type = head_byte_t<KV>;
  Tensor<byte_type> copy;
  TensorView<const byte_type> view;
  explicit head_operand(const TensorView<const KV>& m) {
    if constexpr (!std::is_same<KV, int4>::value) {
      if (!head_needs_copy(m)) {
        view = m;
        return;
      }
    }
    copy = Tensor<byte_type>(Layout::matrix(m.dim(0), m.dim(1)), m.quant());
    head_bytes(m, 0, copy.data());
    view = copy.cview();
  }
};

// The decode kernels at one level (see x86/attention_decode_avx2.hpp for what they compute).
template <class KB>
struct decode_kernels {
  void (*dot_rows)(const std::int16_t*, const KB*, std::int64_t, std::int64_t, std::int64_t, std::uint32_t*);
  void (*axpy_rows)(const std::uint8_t*, const std::int32_t*, std::int64_t, const KB*, std::int64_t, std::int64_t, std::uint32_t*);
  tile_apply_fn apply;  // the output stage over rows of 16 sums
  const char* suffix;
};

template <class KB>
void dot_rows_portable(const std::int16_t* q, const KB* k, std::int64_t stride, std::int64_t d, std::int64_t n, std::uint32_t* out) {
  for (std::int64_t t = 0; t < n; ++t) {
    const KB* row = k + t * stride;
    std::uint32_t s = 0;
    for (std::int64_t i = 0; i < d; ++i) s += static_cast<std::uint32_t>(q[i] * static_cast<std::int32_t>(row[i]));
    out[t] = s;
  }
}

template <class KB>
void axpy_rows_portable(const std::uint8_t* w, const std::int32_t* key, std::int64_t n, const KB* v, std::int64_t stride,
                        std::int64_t dv, std::uint32_t* acc) {
  for (std::int64_t i = 0; i < n; ++i) {
    const KB* row = v + key[i] * stride;
    const std::uint32_t wi = w[i];
    for (std::int64_t j = 0; j < dv; ++j) acc[j] += wi * static_cast<std::uint32_t>(static_cast<std::int32_t>(row[j]));
  }
}

// The decode kernels the table of `level` lists (level_table.hpp).
template <class KB>
decode_kernels<KB> select_decode(isa level) {
  const kernel_family f = level_kernels(level).decode;
#if defined(NPUQ_ARCH_X86_64)
  if (f == kernel_family::avx2) return {dot_rows_avx2<KB>, axpy_rows_avx2<KB>, apply_tile_avx2, "avx2"};
  if (f == kernel_family::avx512_vnni)
    return {dot_rows_avx512_vnni<KB>, axpy_rows_avx512_vnni<KB>, apply_tile_rows_avx512, "avx512_vnni"};
#elif defined(NPUQ_ARCH_AARCH64)
  if (f == kernel_family::neon) return {dot_rows_neon<KB>, axpy_rows_neon<KB>, apply_tile_portable, "neon"};
#endif
  (void)f;
  return {dot_rows_portable<KB>, axpy_rows_portable<KB>, apply_tile_portable, "portable"};
}

// The masked scores of row `s` of a head, packed: the keys the mask keeps, their scores after
// the mask in packed[0, count) and their indices in key[0, count).
template <class Q, class KV, class O>
std::int64_t apply_mask_row(const attention_problem<Q, KV, O>& p, std::int64_t h, std::int64_t s, const std::int8_t* scores,
                            std::int64_t vis, std::int8_t* packed, std::int32_t* key) {
  std::int64_t n = 0;
  for (std::int64_t t = 0; t < vis; ++t) {
    std::int32_t sc = scores[t];
    if (!p.apply_mask(h, s, t, &sc)) continue;
    packed[n] = static_cast<std::int8_t>(sc);
    key[n++] = static_cast<std::int32_t>(t);
  }
  return n;
}

// Softmax of row `s` of a head: the scores of its visible keys (masked ones removed) -> P - zp in
// `prob[0, T)` (0 for keys without probability). `scores` holds the int8 scores of keys 0..vis-1.
template <class Q, class KV, class O>
void softmax_scores(const attention_problem<Q, KV, O>& p, const softmax_tables& tables, std::int64_t h, std::int64_t s,
                    const std::int8_t* scores, std::int64_t vis, std::uint8_t* prob, std::int8_t* packed, std::uint8_t* packed_prob,
                    std::int32_t* key) {
  if (!p.has_mask()) {
    std::fill(prob + vis, prob + p.T, std::uint8_t{0});
    softmax_row_s8(tables, scores, vis, prob);
    return;
  }
  std::fill(prob, prob + p.T, std::uint8_t{0});
  const std::int64_t n = apply_mask_row(p, h, s, scores, vis, packed, key);
  softmax_row_s8(tables, packed, n, packed_prob);
  for (std::int64_t i = 0; i < n; ++i) prob[key[i]] = packed_prob[i];
}

template <class Q, class KV, class O>
void attention_prefill(const simd_backend& be, const attention_problem<Q, KV, O>& p, const softmax_tables& tables) {
  const std::int64_t B = std::min(attention_query_block, p.S), T = p.T;
  const std::int64_t tiles = (T + attention_key_tile - 1) / attention_key_tile;
  std::vector<std::int8_t> score(static_cast<std::size_t>(B * T)), packed(static_cast<std::size_t>(T));
  std::vector<std::uint8_t> prob(static_cast<std::size_t>(B * T)), packed_prob(static_cast<std::size_t>(T));
  std::vector<std::int32_t> key(static_cast<std::size_t>(T));
  gemm_params score_params, out_params;
  score_params.numerics = out_params.numerics = p.score_stage.numerics;
  score_params.requant = p.score_stage.channel;
  out_params.requant = p.out_stage.channel;
  const Quant score_quant = Quant::per_tensor(1.0f, p.score_stage.zero_point);
  const Quant prob_quant = Quant::per_tensor(1.0f / 256.0f, 0);
  using KB = head_byte_t<KV>;
  std::vector<packed_gemm_weights<KB>> k_tiles(static_cast<std::size_t>(tiles));
  packed_gemm_weights<KB> v_packed;
  std::vector<KB> k_copy(head_copy_elements(p.k)), v_copy(head_copy_elements(p.v));
  for (std::int64_t h = 0; h < p.heads; ++h) {
    const head_rows<KB> kh = head_bytes(p.k, h, k_copy.data()), vh = head_bytes(p.v, h, v_copy.data());
    // K^T tiles ([d, keys]) and V ([T, dv]) packed for the level the GEMMs run at, read through
    // raw row pointers (the heads were validated with the problem).
    const KB* kb = kh.row0;
    const KB* vb = vh.row0;
    const std::int64_t ks = kh.stride, vs = vh.stride;
    for (std::int64_t c = 0; c < tiles; ++c) {
      const std::int64_t t0 = c * attention_key_tile, tn = std::min(attention_key_tile, T - t0);
      k_tiles[static_cast<std::size_t>(c)].pack_from(
          p.d, tn, p.k.quant(), [&](std::int64_t i, std::int64_t t) { return kb[(t0 + t) * ks + i]; }, be.level());
    }
    v_packed.pack_from(T, p.dv, p.v.quant(), [&](std::int64_t t, std::int64_t j) { return vb[t * vs + j]; }, be.level());
    const TensorView<const Q> qh = head_matrix(p.q, h);
    const TensorView<O> oh = head_matrix(p.out, h);
    for (std::int64_t s0 = 0; s0 < p.S; s0 += B) {
      const std::int64_t b = std::min(B, p.S - s0);
      const std::int64_t vis_max = p.visible_keys(s0 + b - 1);
      for (std::int64_t c = 0; c < tiles && c * attention_key_tile < vis_max; ++c) {
        const std::int64_t t0 = c * attention_key_tile, tn = std::min(attention_key_tile, T - t0);
        const TensorView<std::int8_t> dst(score.data(), t0, Layout::strided({b, tn}, {T, 1}), score_quant, B * T);
        throw_if_error(try_gemm(be, score_params, qh.slice(0, s0, b), k_tiles[static_cast<std::size_t>(c)], no_bias, dst));
      }
      for (std::int64_t r = 0; r < b; ++r)
        softmax_scores(p, tables, h, s0 + r, score.data() + r * T, p.visible_keys(s0 + r), prob.data() + r * T, packed.data(),
                       packed_prob.data(), key.data());
      const TensorView<const std::uint8_t> pv(prob.data(), Layout::matrix(b, T), prob_quant, B * T);
      throw_if_error(try_gemm(be, out_params, pv, v_packed, no_bias, oh.slice(0, s0, b)));
    }
  }
}

// out[i] = stage(sums[i]) for i < n, all channels alike (a per-tensor stage), 16 at a time.
template <class KB>
void apply_rows(const decode_kernels<KB>& kern, const tile_output_stage& st, const std::int32_t* sums, std::int64_t n, std::int32_t* out) {
  const std::int64_t bulk = n / 16 * 16;
  if (bulk > 0) kern.apply(st, sums, static_cast<int>(bulk / 16), 0, 0, 16, out);
  for (std::int64_t i = bulk; i < n; ++i) out[i] = st.apply_one(sums[i], i - bulk, 0);
}

// int32 values already in [-128, 127] -> int8, in fixed-length blocks compilers vectorize.
inline void narrow(const std::int32_t* in, std::int64_t n, std::int8_t* out) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) out[i + j] = static_cast<std::int8_t>(in[i + j]);
  for (; i < n; ++i) out[i] = static_cast<std::int8_t>(in[i]);
}

// Working memory of one part of the row pass (attention_rows), for up to `max_keys` keys: the
// row buffers, both output stages over rows of 16 sums (their bias carries each query's
// zero-point term) and, where head_bytes copies, a head of K and of V.
template <class KB>
struct attention_rows_scratch {
  std::vector<std::int16_t> qc;
  std::vector<std::uint32_t> dots, acc;
  std::vector<std::int32_t> requantized, out_row, key, kept_key;
  std::vector<std::int8_t> score, packed;
  std::vector<std::uint8_t> packed_prob;
  std::vector<KB> k_copy, v_copy;
  tile_output_stage score_tile, out_tile;  // bias = -zk * sum(q - zq), bias = -zv * sum(p - zp)

  // The stages point at p's; copy_k / copy_v: head_bytes copies K / V.
  template <class Q, class KV, class O>
  attention_rows_scratch(const attention_problem<Q, KV, O>& p, std::int64_t max_keys, bool copy_k, bool copy_v)
      : qc(static_cast<std::size_t>(p.d)),
        dots(static_cast<std::size_t>(max_keys)),
        acc(static_cast<std::size_t>(p.dv)),
        requantized(static_cast<std::size_t>(max_keys)),
        out_row(static_cast<std::size_t>(p.dv)),
        key(static_cast<std::size_t>(max_keys)),
        kept_key(static_cast<std::size_t>(max_keys)),
        score(static_cast<std::size_t>(max_keys)),
        packed(static_cast<std::size_t>(max_keys)),
        packed_prob(static_cast<std::size_t>(max_keys)),
        k_copy(copy_k ? static_cast<std::size_t>(max_keys * p.d) : 0),
        v_copy(copy_v ? static_cast<std::size_t>(max_keys * p.dv) : 0),
        score_tile(p.score_stage, TensorView<const std::int32_t>{}, 16),
        out_tile(p.out_stage, TensorView<const std::int32_t>{}, 16) {}
};

// Thread parts of the row pass over the heads x S (head, query) rows: contiguous ranges of rows
// (a row's result does not depend on the part it falls in, so the bytes do not depend on the
// thread count), with about 32K multiply-adds or more per part so that small decode steps do
// not pay for a fork and join. At most min(threads, rows).
inline std::int64_t attention_row_parts(int threads, std::int64_t rows, std::int64_t keys, std::int64_t d, std::int64_t dv) {
  const std::int64_t per_row = std::max<std::int64_t>(1, keys) * (d + dv);
  const std::int64_t by_work = std::max<std::int64_t>(1, rows / std::max<std::int64_t>(1, 32768 / per_row));
  return std::max<std::int64_t>(1, std::min({static_cast<std::int64_t>(std::max(threads, 1)), rows, by_work}));
}

// Rows [r0, r1) of the row pass (row = h * S + s): per query, one pass over the visible keys
// computes each int8 score with a dot product, the softmax runs on the int8 scores, and a second
// pass adds (p - zp) * v rows for the keys whose probability is not zero. A head's K and V are
// copied (where head_bytes must) once per part. Allocates nothing.
template <class Q, class KV, class O, class KB>
void attention_rows_part(const attention_problem<Q, KV, O>& p, const decode_kernels<KB>& kern, const softmax_tables& tables,
                         std::int64_t r0, std::int64_t r1, attention_rows_scratch<KB>& sc) {
  const std::int64_t d = p.d, dv = p.dv;
  const Layout& ql = p.q.layout();
  const std::int64_t q_row = ql.stride(ql.rank() - 2), q_step = ql.stride(ql.rank() - 1);
  const std::int64_t o_step = p.out.layout().stride(p.out.rank() - 1);
  head_rows<KB> kh, vh;
  std::int64_t loaded = -1;
  for (std::int64_t row = r0; row < r1; ++row) {
    const std::int64_t h = row / p.S, s = row % p.S;
    if (h != loaded) {
      kh = head_bytes(p.k, h, sc.k_copy.data());
      vh = head_bytes(p.v, h, sc.v_copy.data());
      loaded = h;
    }
    std::uint32_t q_sum = 0;
    const Q* qrow = p.q.data() + p.at(p.q, h, 0, 0) + s * q_row;
    for (std::int64_t i = 0; i < d; ++i) {
      sc.qc[static_cast<std::size_t>(i)] = static_cast<std::int16_t>(qrow[i * q_step] - p.q_zero_point);
      q_sum += static_cast<std::uint32_t>(sc.qc[static_cast<std::size_t>(i)]);
    }
    // Scores: sum (q - zq) * k - zk * sum (q - zq), requantized.
    const std::uint32_t k_offset = q_sum * static_cast<std::uint32_t>(p.k_zero_point);
    const std::int64_t vis = p.visible_keys(s);
    kern.dot_rows(sc.qc.data(), kh.row0, kh.stride, d, vis, sc.dots.data());
    std::fill(sc.score_tile.bias.begin(), sc.score_tile.bias.end(), static_cast<std::int32_t>(0u - k_offset));
    apply_rows(kern, sc.score_tile, reinterpret_cast<const std::int32_t*>(sc.dots.data()), vis, sc.requantized.data());
    narrow(sc.requantized.data(), vis, sc.score.data());
    // Probabilities: only the keys whose P - zp is not zero, as (weight, key) pairs.
    std::int64_t n = 0;
    if (!p.has_mask()) {
      n = softmax_row_nonzero(tables, sc.score.data(), vis, sc.packed_prob.data(), sc.key.data());
    } else {
      const std::int64_t kept = apply_mask_row(p, h, s, sc.score.data(), vis, sc.packed.data(), sc.kept_key.data());
      n = softmax_row_nonzero(tables, sc.packed.data(), kept, sc.packed_prob.data(), sc.key.data());
      for (std::int64_t i = 0; i < n; ++i)
        sc.key[static_cast<std::size_t>(i)] = sc.kept_key[static_cast<std::size_t>(sc.key[static_cast<std::size_t>(i)])];
    }
    std::uint32_t p_sum = 0;
    for (std::int64_t i = 0; i < n; ++i) p_sum += sc.packed_prob[static_cast<std::size_t>(i)];
    std::fill(sc.acc.begin(), sc.acc.end(), 0u);
    kern.axpy_rows(sc.packed_prob.data(), sc.key.data(), n, vh.row0, vh.stride, dv, sc.acc.data());
    std::fill(sc.out_tile.bias.begin(), sc.out_tile.bias.end(),
              static_cast<std::int32_t>(0u - p_sum * static_cast<std::uint32_t>(p.v_zero_point)));
    apply_rows(kern, sc.out_tile, reinterpret_cast<const std::int32_t*>(sc.acc.data()), dv, sc.out_row.data());
    O* orow = p.out.data() + p.at(p.out, h, s, 0);
    for (std::int64_t j = 0; j < dv; ++j) orow[j * o_step] = static_cast<O>(sc.out_row[static_cast<std::size_t>(j)]);
  }
}

// The whole row pass on up to `threads` threads; scratch holds attention_row_parts(...) parts
// (at most min(threads, heads * S)) sized for p.T keys or more. The one-shot decode and the
// attention plan (plan_attention.hpp) both run attention through this function.
template <class Q, class KV, class O, class KB>
void run_attention_rows(int threads, const attention_problem<Q, KV, O>& p, const decode_kernels<KB>& kern, const softmax_tables& tables,
                        attention_rows_scratch<KB>* scratch) {
  const std::int64_t rows = p.heads * p.S, parts = attention_row_parts(threads, rows, p.T, p.d, p.dv);
  detail::parallel_parts(threads, parts, [&](std::int64_t part) {
    const std::int64_t r0 = part * (rows / parts) + std::min(part, rows % parts);
    const std::int64_t r1 = r0 + rows / parts + (part < rows % parts ? 1 : 0);
    attention_rows_part(p, kern, tables, r0, r1, scratch[part]);
  });
}

// The name the row pass runs under, e.g. "attention_decode_s8_rows_avx512_vnni".
template <class KV>
std::string attention_rows_kernel_name(const char* suffix) {
  return std::string("attention_decode_") + (std::is_same<KV, int4>::value ? "s4" : "s8") + "_rows_" + suffix;
}

// Decode (S < 8) as a one-shot call: the row pass with scratch of its own.
template <class Q, class KV, class O>
std::string attention_decode(const simd_backend& be, const attention_problem<Q, KV, O>& p, const softmax_tables& tables) {
  using KB = head_byte_t<KV>;
  const decode_kernels<KB> kern = select_decode<KB>(be.level());
  const int threads = be.thread_count();
  const std::int64_t parts = attention_row_parts(threads, p.heads * p.S, p.T, p.d, p.dv);
  std::vector<attention_rows_scratch<KB>> scratch;
  scratch.reserve(static_cast<std::size_t>(parts));
  for (std::int64_t i = 0; i < parts; ++i) scratch.emplace_back(p, p.T, head_needs_copy(p.k), head_needs_copy(p.v));
  run_attention_rows(threads, p, kern, tables, scratch.data());
  return attention_rows_kernel_name<KV>(kern.suffix);
}

}  // namespace simd_detail

template <class Q, class KV, class O>
status execute(const simd_backend& be, const attention_problem<Q, KV, O>& p) {
  if (!simd_detail::wraps_within_32_bits(p.score_stage.numerics)) {
    NPUQ_RETURN_IF_ERROR(execute(scalar, p));
    detail::simd_last_kernel_storage() = "attention_reference";
    return {};
  }
  const auto& tables = simd_detail::softmax_tables::cached(p.softmax, be.level());
  if (p.S >= 8 && p.T > 0) {
    simd_detail::attention_prefill(be, p, tables);
    detail::simd_last_kernel_storage() = "attention_prefill_b64_t512+" + detail::simd_last_kernel_storage();
  } else {
    detail::simd_last_kernel_storage() = simd_detail::attention_decode(be, p, tables);
  }
  return {};
}

}  // namespace npuq
