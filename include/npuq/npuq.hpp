// npuq: quantized neural-network kernels with an NPU's exact integer results on any CPU.
//
// Umbrella header: includes the core types, numerics profiles, formats and every op with the
// backends that are available. Include individual headers to keep compile times down.
#pragma once

#include "npuq/core/backend.hpp"
#include "npuq/core/dtype.hpp"
#include "npuq/core/fp16.hpp"
#include "npuq/core/fixed_point.hpp"
#include "npuq/core/layout.hpp"
#include "npuq/core/lut.hpp"
#include "npuq/core/numerics.hpp"
#include "npuq/core/quant.hpp"
#include "npuq/core/status.hpp"
#include "npuq/core/tensor.hpp"
#include "npuq/formats/int4.hpp"
#include "npuq/formats/int4_import.hpp"
#include "npuq/formats/sparse.hpp"
#include "npuq/ops/attention.hpp"
#include "npuq/ops/conv2d.hpp"
#include "npuq/ops/conv2d_int4.hpp"
#include "npuq/ops/gemm.hpp"
#include "npuq/ops/gemm_grouped.hpp"
#include "npuq/ops/conv2d_sparse.hpp"
#include "npuq/ops/gemm_sparse.hpp"
#include "npuq/ops/softmax.hpp"
#include "npuq/ops/softmax_int16.hpp"
#include "npuq/npu.hpp"
#include "npuq/simd.hpp"
#include "npuq/version.hpp"
