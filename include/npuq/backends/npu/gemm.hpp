// GEMM on the NPU emulator: `npuq::gemm(emu, params, a, b, bias, out)`.
//
// Each batch of A is one instance of an (M x N x K) op; a rank-2 B is shared by every batch, so
// the weight DMA is skipped when consecutive tiles need the same weight block.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <cstdint>
#include <string>

#include "npuq/backends/npu/emulator.hpp"
#include "npuq/ops/gemm_problem.hpp"

namespace npuq {
namespace npu {
namespace detail {

// Largest |x - zp| over a type's range.
template <class T>
std::int64_t max_abs_offset(std::int32_t zp) {
  const std::int64_t lo = element_traits<T>::min - std::int64_t{zp}, hi = element_traits<T>::max - std::int64_t{zp};
  return std::max(-lo, hi);
}
template <class T>
std::int64_t max_abs_offset(const std::vector<std::int32_t>& zps) {
  std::int64_t m = 0;
  for (std::int32_t z : zps) m = std::max(m, max_abs_offset<T>(z));
  return m;
}

inline std::int64_t max_abs_bias(const TensorView<const std::int32_t>& bias) {
  std::int64_t m = 0;
  if (bias.rank() == 1)
    for (std::int64_t i = 0; i < bias.dim(0); ++i) m = std::max(m, std::abs(static_cast<std::int64_t>(bias(i))));
  return m;
}

// The operand interface the emulator's run() reads, for a GEMM problem.
template <class A, class B, class O>
struct gemm_operands {
  const gemm_problem<A, B, O>& p;

  std::string shape_string() const {
    return "M=" + std::to_string(p.M) + " N=" + std::to_string(p.N) + " K=" + std::to_string(p.K) +
           (p.batch_count() > 1 ? " batches=" + std::to_string(p.batch_count()) : "");
  }
  std::int64_t max_abs_a() const { return max_abs_offset<A>(p.a_zero_point); }
  std::int64_t max_abs_b() const { return max_abs_offset<B>(p.b_zero_point); }
  std::int64_t max_abs_bias() const { return detail::max_abs_bias(p.bias); }
  bool has_bias() const { return p.has_bias(); }
  std::int32_t bias(std::int64_t ch) const { return p.bias(ch); }
  std::int64_t channel(std::int64_t, std::int64_t n) const { return n; }
  std::int64_t b_instance(std::int64_t inst) const { return p.b.rank() == 2 ? 0 : inst; }

  // A rows [ox0, ox0 + tw) x K range, as [mt][kt].
  void load_a(const tile_ref& t, std::int16_t* dst) const {
    std::int64_t ao = 0, bo = 0, oo = 0;
    p.batch_offsets(t.inst, &ao, &bo, &oo);
    const Layout& l = p.a.layout();
    const std::int64_t sm = l.stride(l.rank() - 2), sk = l.stride(l.rank() - 1), kt = t.kcn;
    for (std::int64_t i = 0; i < t.tw; ++i) {
      const std::int64_t base = p.a.offset() + ao + (t.ox0 + i) * sm + t.kc0 * sk;
      for (std::int64_t k = 0; k < kt; ++k)
        dst[i * kt + k] = static_cast<std::int16_t>(p.a.load(base + k * sk) - p.a_zero_point);
    }
  }
  // B columns [n0, n0 + nt) x K range, as [nt][kt].
  void load_b(const tile_ref& t, std::int16_t* dst) const {
    std::int64_t ao = 0, bo = 0, oo = 0;
    p.batch_offsets(t.inst, &ao, &bo, &oo);
    const Layout& l = p.b.layout();
    const std::int64_t sk = l.stride(l.rank() - 2), sn = l.stride(l.rank() - 1), kt = t.kcn;
    for (std::int64_t j = 0; j < t.nt; ++j) {
      const std::int64_t n = t.n0 + j;
      const std::int32_t zp = p.b_zero_point[static_cast<std::size_t>(n)];
      const std::int64_t base = p.b.offset() + bo + n * sn + t.kc0 * sk;
      for (std::int64_t k = 0; k < kt; ++k) dst[j * kt + k] = static_cast<std::int16_t>(p.b.load(base + k * sk) - zp);
    }
  }
  void store(const tile_ref& t, const std::int32_t* v) const {
    std::int64_t ao = 0, bo = 0, oo = 0;
    p.batch_offsets(t.inst, &ao, &bo, &oo);
    const Layout& l = p.out.layout();
    const std::int64_t sm = l.stride(l.rank() - 2), sn = l.stride(l.rank() - 1);
    for (std::int64_t i = 0; i < t.tw; ++i)
      for (std::int64_t j = 0; j < t.nt; ++j)
        p.out.store(p.out.offset() + oo + (t.ox0 + i) * sm + (t.n0 + j) * sn,
                    static_cast<value_t<O>>(v[i * t.nt + j]));
  }
};

}  // namespace detail

template <class A, class B, class O>
status execute(const emulator& emu, const gemm_problem<A, B, O>& p) {
  op_shape s;
  s.op = "gemm";
  s.instances = p.batch_count();
  s.OW = p.M;
  s.N = p.N;
  s.k_units = p.K;
  s.out_bits = 8 * static_cast<int>(sizeof(O));
  return emu.run(s, detail::gemm_operands<A, B, O>{p}, p.stage);
}

}  // namespace npu
}  // namespace npuq
