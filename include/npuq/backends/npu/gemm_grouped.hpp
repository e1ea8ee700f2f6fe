// Group-wise int4 GEMM (W4A8 with fp32 scales per group of K) on the NPU emulator:
// `npuq::gemm_grouped(emu, params, a, b_int4, bias, out)`.
//
// The model: the MAC array produces one int32 partial sum per (output, scale group), so the
// tiler cuts K into whole groups (K units of group_size), and the PPU turns each group's sum
// into float with that group's scale and accumulates it (one scale multiply-add per output and
// group, charged at the PPU's energy per output). Weights move as 4-bit values; the scales move
// as 4 bytes per (channel, group) on top, charged with the op's weight bytes and DRAM energy (not
// as extra DMA cycles). The outputs leave as float (4 bytes) or as requantized int8.
//
// The integers cannot depend on the array: a group's sum is at most group_size * 255 * 15 in
// magnitude, far inside any accumulator a profile can configure (20 bits and up), so the
// emulator charges the tiles with the tile model while the values come from the simd backend,
// which is bit-identical to the scalar contract (ops/gemm_grouped_problem.hpp). A profile with
// fixed numerics runs this op whatever its numerics: the grouped contract is fp32 arithmetic in
// the PPU, not an integer requantization.
#pragma once

#include <cstdint>
#include <string>

#include "npuq/backends/npu/emulator.hpp"
#include "npuq/backends/npu/gemm.hpp"
#include "npuq/ops/gemm_grouped.hpp"
#include "npuq/simd.hpp"

namespace npuq {
namespace npu {
namespace detail {

// Operands that only feed the cost model: the values of a grouped GEMM are computed separately.
template <class A, class O>
struct grouped_cost_operands {
  const gemm_grouped_problem<A, O>& p;
  std::string shape_string() const {
    return "M=" + std::to_string(p.M) + " N=" + std::to_string(p.N) + " K=" + std::to_string(p.K) + " int4, group " +
           std::to_string(p.group_size);
  }
  std::int64_t max_abs_a() const { return max_abs_offset<A>(p.a_zero_point); }
  std::int64_t max_abs_b() const { return 15; }  // int4 value minus an int4 zero point
  std::int64_t max_abs_bias() const { return 0; }
  bool has_bias() const { return p.has_bias(); }
  std::int32_t bias(std::int64_t) const { return 0; }
  std::int64_t channel(std::int64_t, std::int64_t n) const { return n; }
  std::int64_t b_instance(std::int64_t) const { return 0; }
  void load_a(const tile_ref& t, std::int16_t* dst) const { std::fill(dst, dst + t.mt() * t.kcn * p.group_size, std::int16_t{0}); }
  void load_b(const tile_ref& t, std::int16_t* dst) const { std::fill(dst, dst + t.nt * t.kcn * p.group_size, std::int16_t{0}); }
  status tile_sums(const tile_ref& t, std::int32_t* part) const {
    std::fill(part, part + t.mt() * t.nt, std::int32_t{0});
    return {};
  }
  void store(const tile_ref&, const std::int32_t*) const {}
};

}  // namespace detail

template <class A, class O>
status execute(const emulator& emu, const gemm_grouped_problem<A, O>& p) {
  if (p.b.data() == nullptr)  // simd-packed weights have no overload for this backend; kept as a guard
    return {errc::unsupported, "b: the NPU emulator takes the int4 weights themselves (a TensorView<const int4>), not simd-packed weights"};
  NPUQ_RETURN_IF_ERROR(emu.profile_status());
  op_shape s;
  s.op = "gemm_grouped";
  s.OW = p.M;
  s.N = p.N;
  s.k_unit = p.group_size;
  s.k_units = p.groups;
  s.w_bits = 4;
  s.out_bits = std::is_same<O, float>::value ? 32 : 8;
  output_stage raw;  // int32 group sums leave the array; the grouped epilogue is charged below
  raw.numerics = emu.config().fixed_numerics ? emu.config().numerics : numerics_profile::tflite();
  const std::size_t first = emu.ops().size();
  NPUQ_RETURN_IF_ERROR(emu.hooks().run(s, detail::grouped_cost_operands<A, O>{p}, raw));
  const status values = execute(npuq::simd, p);
  if (!values.ok()) {
    emu.hooks().discard_from(first);
    return values;
  }
  emu.hooks().charge_group_epilogue(4 * p.N * p.groups, p.M * p.N * p.groups);
  return {};
}

}  // namespace npu
}  // namespace npuq
