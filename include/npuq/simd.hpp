// The simd backend: `npuq::simd` (or `npuq::simd_backend{cap}`) wherever `npuq::scalar` goes,
// plus weight packing (`pack_gemm_weights`) and the kernel-name query (`simd_last_kernel`).
#pragma once

#include "npuq/backends/simd/backend.hpp"
#include "npuq/backends/simd/gemm.hpp"
#include "npuq/backends/simd/gemm_int4.hpp"
#include "npuq/backends/simd/gemm_sparse.hpp"
#include "npuq/core/cpu_features.hpp"
#include "npuq/backends/simd/conv2d.hpp"
#include "npuq/backends/simd/depthwise.hpp"
#include "npuq/backends/simd/softmax.hpp"
#include "npuq/backends/simd/softmax_int16.hpp"
#include "npuq/backends/simd/attention.hpp"
#include "npuq/backends/simd/plan.hpp"
#include "npuq/backends/simd/plan_sparse.hpp"
#include "npuq/backends/simd/plan_int4.hpp"
#include "npuq/backends/simd/plan_attention.hpp"
