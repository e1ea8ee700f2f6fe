// Softmax on the NPU emulator: TFLite's integers, charged as the profile's softmax unit.
//
// NPUs run softmax outside the MAC array: Ethos-U in its output unit with the 256-entry exp table
// Vela generates, NVDLA in the SDP's lookup table, others in a vector unit or on the host core.
// The integers do not depend on which (the table holds exactly the fixed-point exponentials), so
// the emulator computes them with the simd backend's row kernels and charges the rows to the
// profile's `softmax` unit (emulator_hooks::charge_softmax): three passes per row, DMA of the 8-bit
// rows in and out, and the unit's energy per element. ONNX Runtime's QLinearSoftmax contract
// (softmax_qlinear.hpp) is modelled the same way, as a 256-entry table the unit looks up; its
// integers come from the scalar specification, through the simd backend.
#pragma once

#include <string>

#include "npuq/backends/npu/emulator.hpp"
#include "npuq/backends/simd/softmax.hpp"
#include "npuq/ops/softmax_int16_problem.hpp"
#include "npuq/ops/softmax_problem.hpp"

namespace npuq {
namespace npu {

template <class I, class O>
status execute(const emulator& emu, const softmax_problem<I, O>& p) {
  if (!emu.profile_status().ok()) return {emu.profile_status().code(), "npu: " + emu.profile_status().message()};
  softmax_problem<I, O> q = p;
  q.params.exp = emu.config().softmax.exp;
  NPUQ_RETURN_IF_ERROR(execute(simd_backend{}, q));
  emu.hooks().charge_softmax(p.rows, p.depth, "rows=" + std::to_string(p.rows) + " depth=" + std::to_string(p.depth));
  return {};
}

// int16 softmax: the profiles model 8-bit softmax units (an exp table of 256 entries) and none
// states what a 16-bit one costs, so the emulator refuses the op by name instead of leaving the
// caller with an overload-resolution error.
inline status execute(const emulator&, const softmax_int16_problem&) {
  return {errc::unsupported, "backend: int16 softmax is not modelled by the npu emulator (its profiles describe 8-bit softmax "
                             "units); run it on scalar or simd"};
}

}  // namespace npu
}  // namespace npuq
