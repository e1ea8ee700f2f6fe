// The NPU tile emulator backend: profiles, presets, the emulator object and its ops.
//
//   #include <npuq/npu.hpp>
//   npuq::npu::emulator emu(npuq::npu::presets::ethos_u55_256());
//   npuq::conv2d(emu, params, input, weights, bias, out);
//   std::puts(emu.summary().c_str());
//
// See docs/npu-emulator.md for the model, the knobs and the presets' sources.
#pragma once

#include "npuq/backends/npu/attention.hpp"
#include "npuq/backends/npu/conv2d.hpp"
#include "npuq/backends/npu/cost_model.hpp"
#include "npuq/backends/npu/emulator.hpp"
#include "npuq/backends/npu/gemm.hpp"
#include "npuq/backends/npu/gemm_grouped.hpp"
#include "npuq/backends/npu/gemm_sparse.hpp"
#include "npuq/backends/npu/presets.hpp"
#include "npuq/backends/npu/profile.hpp"
#include "npuq/backends/npu/scalesim.hpp"
#include "npuq/backends/npu/softmax.hpp"
#include "npuq/backends/npu/stats.hpp"
#include "npuq/backends/npu/tiler.hpp"
#include "npuq/ops/attention.hpp"
#include "npuq/ops/conv2d.hpp"
#include "npuq/ops/gemm.hpp"
#include "npuq/ops/softmax.hpp"
