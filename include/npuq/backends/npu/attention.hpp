// Attention on the NPU emulator, lowered the way NPU compilers lower it.
//
// An NPU runs attention as three ops per head and block of queries: a GEMM that writes the int8
// scores to DRAM, the softmax unit over them (mask and causal rule applied there), and a GEMM of
// the int8 probabilities with V. The emulator runs exactly that: the two GEMMs go through its
// GEMM path (tiling, buffers, array passes, PPU, statistics; the profile's numerics must be the
// op's), the softmax through emulator_hooks::charge_softmax with the profile's softmax unit, and the
// three records of the whole call are fused into one "attention" record whose statistics include
// the softmax elements and the score traffic (scores written and read back, probabilities
// written and read back: 4 bytes per score). Queries go in blocks of 64, so the scores in flight
// are 64 x T bytes. The output is written only when every step succeeded.
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "npuq/backends/npu/emulator.hpp"
#include "npuq/backends/npu/gemm.hpp"
#include "npuq/backends/simd/attention.hpp"
#include "npuq/ops/attention_problem.hpp"
#include "npuq/ops/gemm.hpp"

namespace npuq {
namespace npu {

template <class Q, class KV, class O>
status execute(const emulator& emu, const attention_problem<Q, KV, O>& p) {
  NPUQ_RETURN_IF_ERROR(emu.hooks().check_stage("attention", p.score_stage));
  NPUQ_RETURN_IF_ERROR(emu.hooks().check_stage("attention", p.out_stage));
  if (p.T == 0) {  // no key: every output is the output zero point, nothing runs on the NPU
    for (std::int64_t h = 0; h < p.heads; ++h)
      for (std::int64_t s = 0; s < p.S; ++s)
        for (std::int64_t j = 0; j < p.dv; ++j) p.out.store(p.at(p.out, h, s, j), static_cast<O>(p.out_stage.apply(0, 0)));
    return {};
  }
  const std::size_t first = emu.ops().size();
  softmax_params sm = p.softmax;
  sm.exp = emu.config().softmax.exp;
  const auto& tables = simd_detail::softmax_tables::cached(sm, active_isa());
  const std::int64_t T = p.T, B = std::min<std::int64_t>(simd_detail::attention_query_block, std::max<std::int64_t>(p.S, 1));
  gemm_params score_params, out_params;
  score_params.numerics = out_params.numerics = p.score_stage.numerics;
  score_params.requant = p.score_stage.channel;
  out_params.requant = p.out_stage.channel;
  Tensor<std::int8_t> score(Layout::matrix(B, T), Quant::per_tensor(1.0f, p.score_stage.zero_point));
  Tensor<std::uint8_t> prob(Layout::matrix(B, T), Quant::per_tensor(1.0f / 256.0f, 0));
  Tensor<O> result(Layout::row_major({p.heads, p.S, p.dv}), p.out.quant());
  std::vector<std::int8_t> packed(static_cast<std::size_t>(T));
  std::vector<std::uint8_t> packed_prob(static_cast<std::size_t>(T));
  std::vector<std::int32_t> key(static_cast<std::size_t>(T));
  std::int64_t score_bytes = 0;
  auto fail = [&](const status& s) {
    emu.hooks().discard_from(first);
    return s;
  };
  for (std::int64_t h = 0; h < p.heads; ++h) {
    const simd_detail::head_operand<KV> kh(simd_detail::head_matrix(p.k, h)), vh(simd_detail::head_matrix(p.v, h));
    const auto kt = kh.view.with_layout(Layout::strided({p.d, T}, {kh.view.layout().stride(1), kh.view.layout().stride(0)}));
    const TensorView<const Q> qh = simd_detail::head_matrix(p.q, h);
    for (std::int64_t s0 = 0; s0 < p.S; s0 += B) {
      const std::int64_t b = std::min(B, p.S - s0);
      const TensorView<std::int8_t> sv = score.view().slice(0, 0, b);
      status st = try_gemm(emu, score_params, qh.slice(0, s0, b), kt, no_bias, sv);
      if (!st.ok()) return fail(st);
      for (std::int64_t r = 0; r < b; ++r)
        simd_detail::softmax_scores(p, tables, h, s0 + r, score.data() + r * T, p.visible_keys(s0 + r), prob.data() + r * T,
                                    packed.data(), packed_prob.data(), key.data());
      emu.hooks().charge_softmax(b, T, "rows=" + std::to_string(b) + " depth=" + std::to_string(T));
      const TensorView<O> oh(result.data(), h * p.S * p.dv + s0 * p.dv, Layout::matrix(b, p.dv), p.out.quant(), result.size());
      st = try_gemm(emu, out_params, prob.cview().slice(0, 0, b), vh.view, no_bias, oh);
      if (!st.ok()) return fail(st);
      score_bytes += 4 * b * T;
    }
  }
  // Every step ran: write the output, and make the call one record.
  for (std::int64_t h = 0; h < p.heads; ++h)
    for (std::int64_t s = 0; s < p.S; ++s)
      for (std::int64_t j = 0; j < p.dv; ++j) p.out.store(p.at(p.out, h, s, j), result.data()[(h * p.S + s) * p.dv + j]);
  const std::string shape = "H=" + std::to_string(p.heads) + " S=" + std::to_string(p.S) + " T=" + std::to_string(T) +
                            " d=" + std::to_string(p.d) + " dv=" + std::to_string(p.dv) + (p.causal ? " causal" : "") +
                            (p.has_mask() ? " masked" : "");
  emu.hooks().fuse_from(first, "attention", shape,
                "per head and block of " + std::to_string(B) + " queries: scores GEMM, " + to_string(sm.exp) + " softmax unit, P.V GEMM",
                score_bytes);
  return {};
}

}  // namespace npu
}  // namespace npuq
