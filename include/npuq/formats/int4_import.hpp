// Importers: int4 weights as users hold them -> npuq int4 weights and scales, exactly.
//
// Quantized LLM and TFLite/CMSIS-NN models ship 4-bit weights in their own layouts. These
// functions convert them into npuq's form (`int4_weights`: two's complement nibbles, each output
// channel's K values contiguous, low nibble first, viewed as logical [K, N] with
// Layout::col_major, plus a Quant) without changing a single dequantized value:
//
//   ONNX Runtime MatMulNBits (bits = 4): B uint8 [N][blocks][block_size / 2], element i of a block
//     in byte i / 2 (even i low nibble), unsigned codes q; scales [N][blocks] (float or fp16);
//     optional zero points packed two per byte [N][ceil(blocks / 2)] (default 8). real = (q - zp) * s.
//   ggml Q4_0: blocks of 32 weights = fp16 scale d + 16 bytes; byte j holds element j (low
//     nibble) and j + 16 (high nibble) as codes q; real = (q - 8) * d.
//   TFLite / CMSIS-NN int4: two's complement nibbles packed over the flattened [N, K] tensor, so
//     with odd K every other row starts mid-byte; per-channel scales along N, zero point 0.
//
// The code q of a block with scale s > 0 becomes v = q - 8 with zero point zp - 8 (both in
// [-8, 7]; (v - z) = (q - zp)). npuq scales are positive, and ggml's d is negative whenever the
// block's largest magnitude is positive: such a block becomes v = 7 - q, zero point 7 - zp and
// scale -s, since (7 - q) - (7 - zp) = -(q - zp). A zero scale (an all-zero block) becomes values
// 0, zero point 0, scale 1. Non-finite scales are rejected, naming the block.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "npuq/core/fp16.hpp"
#include "npuq/core/tensor.hpp"

namespace npuq {

// Owning int4 weights: storage [N][K] (row n = output channel n), logical view [K, N].
struct int4_weights {
  std::int64_t K = 0, N = 0;
  Tensor<int4> data;  // Layout::matrix(N, K)
  Quant quant;        // per_group(1, 0, group_size, scales [N][G], zps) or per_axis(1, ...)

  TensorView<const int4> view() const {
    return {data.data(), 0, Layout::col_major(K, N), quant, data.layout().span()};
  }
  std::int64_t groups() const {
    return quant.granularity == quant_granularity::per_group ? (K + quant.group_size - 1) / quant.group_size : 1;
  }
};

namespace detail {

// Builds group-wise weights from unsigned codes: code(n, k) in [0, 15], scale(n, g), zp(n, g) in
// [0, 15]; see the top for the sign handling.
template <class CodeFn, class ScaleFn, class ZpFn>
status build_int4_groups(std::int64_t N, std::int64_t K, std::int64_t gs, CodeFn&& code, ScaleFn&& scale, ZpFn&& zp,
                         const char* what, int4_weights* out) {
  const std::int64_t G = ceil_div(K, gs);  // check_import_sizes has bounded N * K and N * G
  Tensor<int4> data(Layout::matrix(N, K));
  std::vector<float> scales(static_cast<std::size_t>(N * G));
  std::vector<std::int32_t> zps(static_cast<std::size_t>(N * G));
  bool any_zp = false;
  const TensorView<int4> v = data.view();
  for (std::int64_t n = 0; n < N && G > 0; ++n) {  // K = 0: no block to read, however many rows
    for (std::int64_t g = 0; g < G; ++g) {
      float s = scale(n, g);
      const int z = zp(n, g);
      if (!std::isfinite(s))
        return {errc::invalid_quantization, std::string(what) + ": scale of block " + std::to_string(g) + " of row " +
                                                std::to_string(n) + " is not finite"};
      int mode = s > 0.0f ? 1 : (s < 0.0f ? -1 : 0);
      std::int32_t zz = mode > 0 ? z - 8 : (mode < 0 ? 7 - z : 0);
      if (mode < 0) s = -s;
      if (mode == 0) s = 1.0f;
      const std::size_t at = static_cast<std::size_t>(n * G + g);
      scales[at] = s;
      zps[at] = zz;
      any_zp = any_zp || zz != 0;
      const std::int64_t k1 = g * gs + std::min(gs, K - g * gs);
      for (std::int64_t k = g * gs; k < k1; ++k) {
        const int q = code(n, k) & 0x0F;
        v.set(static_cast<std::int8_t>(mode > 0 ? q - 8 : (mode < 0 ? 7 - q : 0)), n, k);
      }
    }
  }
  out->K = K;
  out->N = N;
  out->data = std::move(data);
  out->quant = Quant::per_group(1, 0, gs, std::move(scales), any_zp ? std::move(zps) : std::vector<std::int32_t>{0});
  return {};
}

inline status check_import_shape(std::int64_t N, std::int64_t K, const char* what) {
  if (N < 0 || K < 0) return {errc::invalid_shape, std::string(what) + ": negative N or K"};
  return {};
}

// What an importer allocates and reads, checked before anything is allocated or read: the N x K
// int4 weights, N * ceil(K / group_size) scales and zero points, and the caller's source buffer
// of N rows of row_bytes bytes (scales and zero points are no longer than a row of codes).
inline status check_import_sizes(std::int64_t N, std::int64_t K, std::int64_t group_size, std::int64_t row_bytes, const char* what) {
  std::int64_t n = 0;
  if (!Layout::matrix(N, K).fits() || !detail::checked_bytes_for<int4>(N * K, &n) ||
      !checked_mul(N, ceil_div(K, group_size), &n) || !checked_mul(N, row_bytes, &n))
    return {errc::invalid_shape, std::string(what) + ": N = " + std::to_string(N) + " rows of K = " + std::to_string(K) +
                                     " weights are more than 2^63 - 1 elements or bytes"};
  return {};
}

// ORT MatMulNBits with scales read through scale_at(n, block).
template <class ScaleFn>
status import_matmul_nbits_impl(const std::uint8_t* b, ScaleFn&& scale_at, const std::uint8_t* zero_points, std::int64_t N,
                                std::int64_t K, std::int64_t block_size, int4_weights* out) {
  NPUQ_RETURN_IF_ERROR(check_import_shape(N, K, "matmul_nbits"));
  if (block_size < 16 || (block_size & (block_size - 1)) != 0)
    return {errc::invalid_argument, "matmul_nbits: block_size " + std::to_string(block_size) + " must be a power of two >= 16"};
  const std::int64_t blocks = ceil_div(K, block_size), blob = block_size / 2, zp_row = (blocks + 1) / 2;
  std::int64_t row_bytes = 0;
  if (!checked_mul(blocks, blob, &row_bytes))
    return {errc::invalid_shape, "matmul_nbits: K = " + std::to_string(K) + " is more than 2^63 - 1 bytes of codes per row"};
  NPUQ_RETURN_IF_ERROR(check_import_sizes(N, K, block_size, row_bytes, "matmul_nbits"));
  if (b == nullptr && N * K > 0) return {errc::invalid_argument, "matmul_nbits: B is null"};
  return build_int4_groups(
      N, K, block_size,
      [&](std::int64_t n, std::int64_t k) {
        const std::int64_t blk = k / block_size, i = k % block_size;
        const std::uint8_t byte = b[(n * blocks + blk) * blob + i / 2];
        return (i & 1) != 0 ? byte >> 4 : byte & 0x0F;
      },
      scale_at,
      [&](std::int64_t n, std::int64_t g) {
        if (zero_points == nullptr) return 8;
        const std::uint8_t byte = zero_points[n * zp_row + g / 2];
        return (g & 1) != 0 ? byte >> 4 : byte & 0x0F;
      },
      "matmul_nbits", out);
}

}  // namespace detail

// ONNX Runtime com.microsoft.MatMulNBits (bits = 4) with float32 scales [N][blocks]. zero_points
// may be null (every zero point 8) or point at the packed uint8 [N][ceil(blocks / 2)] tensor.
inline status import_matmul_nbits(const std::uint8_t* b, const float* scales, const std::uint8_t* zero_points, std::int64_t N,
                                  std::int64_t K, std::int64_t block_size, int4_weights* out) {
  const std::int64_t blocks = block_size > 0 && K >= 0 ? ceil_div(K, block_size) : 0;
  return detail::import_matmul_nbits_impl(
      b, [&](std::int64_t n, std::int64_t g) { return scales[n * blocks + g]; }, zero_points, N, K, block_size, out);
}

// The same with float16 scales (bit patterns), converted exactly.
inline status import_matmul_nbits(const std::uint8_t* b, const std::uint16_t* scales_fp16, const std::uint8_t* zero_points,
                                  std::int64_t N, std::int64_t K, std::int64_t block_size, int4_weights* out) {
  const std::int64_t blocks = block_size > 0 && K >= 0 ? ceil_div(K, block_size) : 0;
  return detail::import_matmul_nbits_impl(
      b, [&](std::int64_t n, std::int64_t g) { return fp16_to_float(scales_fp16[n * blocks + g]); }, zero_points, N, K, block_size,
      out);
}

// ggml Q4_0: N rows of K / 32 blocks of 18 bytes (fp16 d, little endian, then 16 bytes of codes).
constexpr std::int64_t ggml_q4_0_block = 32, ggml_q4_0_block_bytes = 18;

inline status import_ggml_q4_0(const void* blocks, std::int64_t N, std::int64_t K, int4_weights* out) {
  NPUQ_RETURN_IF_ERROR(detail::check_import_shape(N, K, "ggml_q4_0"));
  if (K % ggml_q4_0_block != 0) return {errc::invalid_shape, "ggml_q4_0: K = " + std::to_string(K) + " is not a multiple of 32"};
  const std::int64_t per_row = K / ggml_q4_0_block;
  NPUQ_RETURN_IF_ERROR(detail::check_import_sizes(N, K, ggml_q4_0_block, per_row * ggml_q4_0_block_bytes, "ggml_q4_0"));
  if (blocks == nullptr && N * K > 0) return {errc::invalid_argument, "ggml_q4_0: data is null"};
  const auto* bytes = static_cast<const std::uint8_t*>(blocks);
  auto block = [&](std::int64_t n, std::int64_t g) { return bytes + (n * per_row + g) * ggml_q4_0_block_bytes; };
  return detail::build_int4_groups(
      N, K, ggml_q4_0_block,
      [&](std::int64_t n, std::int64_t k) {
        const std::int64_t j = k % ggml_q4_0_block;
        const std::uint8_t byte = block(n, k / ggml_q4_0_block)[2 + j % 16];
        return j < 16 ? byte & 0x0F : byte >> 4;
      },
      [&](std::int64_t n, std::int64_t g) {
        const std::uint8_t* p = block(n, g);
        return fp16_to_float(static_cast<std::uint16_t>(p[0] | (p[1] << 8)));
      },
      [](std::int64_t, std::int64_t) { return 8; }, "ggml_q4_0", out);
}

// A TFLite / CMSIS-NN int4 tensor [N, K] (fully connected weights, or conv weights flattened to
// [OC, KH*KW*IC]) packed over the flattened tensor from element `first_element` of `data`:
// viewed in place as logical [K, N] (no copy; odd K makes every other row start mid-byte), with
// the per-output-channel scales (zero point 0). `capacity` is the buffer's size in elements.
inline TensorView<const int4> tflite_int4_view(const std::uint8_t* data, std::int64_t N, std::int64_t K, std::vector<float> scales,
                                               std::int64_t first_element = 0,
                                               std::int64_t capacity = TensorView<const int4>::unknown_capacity) {
  Quant q = scales.size() == 1 ? Quant::per_tensor(scales[0], 0) : Quant::per_axis(1, std::move(scales), {0});
  return {data, first_element, Layout::col_major(K, N), std::move(q), capacity};
}

// Copies any int4 view of logical [K, N] (e.g. a tflite_int4_view) into owning weights, keeping
// its quantization. Per-channel quantization must be along axis 1.
inline status import_int4(const TensorView<const int4>& b, int4_weights* out) {
  NPUQ_RETURN_IF_ERROR(b.validate("b"));
  if (b.rank() != 2) return {errc::invalid_shape, "b: rank " + std::to_string(b.rank()) + ", expected 2 ([K, N])"};
  NPUQ_RETURN_IF_ERROR(validate_quant(b.quant(), b.layout(), dtype::s4, "b", false));
  const std::int64_t K = b.dim(0), N = b.dim(1);
  Tensor<int4> data(Layout::matrix(N, K));
  const TensorView<int4> v = data.view();
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t k = 0; k < K; ++k) v.set(b(k, n), n, k);
  out->K = K;
  out->N = N;
  out->data = std::move(data);
  out->quant = b.quant();
  return {};
}

}  // namespace npuq
