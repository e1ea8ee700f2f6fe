// Sparse weights (issue 5) against our own dense int8 path, side by side in one run:
//
//   sparse/gemv-4096/...        1 x 4096 x 4096: dense int8 GEMV (packed int8 weights) vs 2:4
//                               GEMV (magnitude-pruned to 2:4, packed). Target: 2:4 >= 1.5x.
//   sparse/bert-ffn-64tok/...   64 x 768 x 3072 and
//   sparse/sq1024/...           1024 x 1024 x 1024: dense int8 GEMM vs block-sparse GEMM at 80%
//                               zero blocks (16x4 and 1x4 blocks), and 2:4. Target: block-sparse
//                               >= 2x dense.
//
// Every variant runs at each ISA level this CPU supports and uses the same activations, bias,
// per-channel scales and int8 output as gemm_data; the weights are the same random int8 matrix,
// pruned. GOPS counts the dense MACs (M*N*K) for every variant, so GOPS ratios are time ratios.
// The label names the kernel that ran.
#include <npuq/npuq.hpp>
#include <npuq/simd.hpp>

#include <string>

#include "bench_common.hpp"

namespace npuq_bench {
namespace {

void dense(benchmark::State& state, gemm_shape s, npuq::isa level) {
  gemm_data d(s);
  const npuq::simd_backend be{level};
  npuq::packed_gemm_weights<std::int8_t> packed;
  npuq::throw_if_error(npuq::pack_gemm_weights(be, d.b, &packed));
  timed_weights(state, [&] { npuq::gemm(be, d.params, d.a, packed, d.bias, d.out); }, s.macs(), double(s.K) * double(s.N));
}

void sparse_2_4(benchmark::State& state, gemm_shape s, npuq::isa level) {
  gemm_data d(s);
  npuq::throw_if_error(npuq::prune_2_4(d.b.view()));
  npuq::sparse_2_4_matrix<> sm;
  npuq::throw_if_error(npuq::compress_2_4(d.b.cview(), &sm));
  const npuq::simd_backend be{level};
  npuq::packed_sparse_2_4_weights packed;
  npuq::throw_if_error(npuq::pack_gemm_weights(be, sm, &packed));
  timed_weights(state, [&] { npuq::gemm(be, d.params, d.a, packed, d.bias, d.out); }, s.macs(), double(packed.packed_bytes()));
}

void block_sparse(benchmark::State& state, gemm_shape s, npuq::isa level, std::int64_t bn, std::int64_t bk, double zeros) {
  gemm_data d(s);
  npuq::throw_if_error(npuq::prune_blocks(d.b.view(), bn, bk, zeros));
  npuq::block_csr_matrix sm;
  npuq::throw_if_error(npuq::compress_block_csr(d.b.cview(), bn, bk, &sm));
  const npuq::simd_backend be{level};
  npuq::packed_sparse_pairs_weights packed;
  npuq::throw_if_error(npuq::pack_gemm_weights(be, sm, &packed));
  state.counters["zero_blocks"] = npuq::block_zero_fraction(sm);
  timed_weights(state, [&] { npuq::gemm(be, d.params, d.a, packed, d.bias, d.out); }, s.macs(), double(packed.packed_bytes()));
}

std::string name(const gemm_shape& s, const std::string& variant, npuq::isa level) {
  return std::string("sparse/") + s.name + "/" + variant + "_simd_" + npuq::to_string(level);
}

}  // namespace

void register_sparse() {
  const gemm_shape gemv{"gemv-4096", 1, 4096, 4096};
  for (npuq::isa level : npuq::cpu().levels()) {
    add(name(gemv, "int8_dense", level), dense, gemv, level);
    add(name(gemv, "sp24", level), sparse_2_4, gemv, level);
  }
  for (const gemm_shape& s : {gemm_shape{"bert-ffn-64tok", 64, 768, 3072}, gemm_shape{"sq1024", 1024, 1024, 1024}}) {
    for (npuq::isa level : npuq::cpu().levels()) {
      add(name(s, "int8_dense", level), dense, s, level);
      add(name(s, "bsr16x4_80pct", level), block_sparse, s, level, std::int64_t{16}, std::int64_t{4}, 0.8);
      add(name(s, "bsr1x4_80pct", level), block_sparse, s, level, std::int64_t{1}, std::int64_t{4}, 0.8);
      add(name(s, "sp24", level), sparse_2_4, s, level);
    }
  }
}

}  // namespace npuq_bench
