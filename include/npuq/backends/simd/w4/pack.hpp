// Packed int4 weights for the simd W4A8 kernels: nibbles stay nibbles (a GEMV streams K * N / 2
// bytes), laid out so one 32-byte load feeds 16 columns x 4 K values.
//
// Why not the int8 packed format: the int4 GEMV is memory bound and only wins by moving half the
// bytes, so the kernels must read nibbles directly. Layout ("c4 nibble panels"):
//
//   Panels of 16 columns. K is cut into groups (the scale groups; one group of K for per-channel
//   weights), each padded to whole quads of 4 K values, so a group never shares a quad. For each
//   quad, 32 bytes: byte 4j + t holds column j's value at K offset t in its low nibble and column
//   8 + j's in its high nibble (j < 8, t < 4). Nibbles hold offset-binary codes u = w + 8 in
//   [0, 15], the unsigned operand of x86 vpmaddubsw (and of NEON's 8-bit dot products), paired
//   with activations as signed bytes s (s = a for int8, a - 128 for uint8). Padding is code 0
//   against s = 0 and never reaches a result.
//
// With d = (a - s) - a_zp (per tensor) and e = 8 + w_zp (per column and group),
//   sum_k (a_k - a_zp)(w_k - w_zp) = sum_k s_k u_k - e * sum_k s_k + d * sum_k (w_k - w_zp),
// so beside the nibbles each (panel, group) keeps e and W = sum_k (w_k - w_zp) for its 16
// columns, and the scales (fp32, or fp16 storage when every scale is an fp16 value).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "npuq/backends/simd/gemm_pack.hpp"
#include "npuq/core/fp16.hpp"
#include "npuq/ops/gemm_grouped_problem.hpp"

namespace npuq {

// How packed int4 weights store their group scales.
enum class scale_storage : std::uint8_t { fp32, fp16 };

class packed_int4_weights {
 public:
  packed_int4_weights() = default;

  std::int64_t K() const { return K_; }
  std::int64_t N() const { return N_; }
  std::int64_t group_size() const { return gs_; }
  std::int64_t groups() const { return G_; }
  std::int64_t quads_per_group() const { return qpg_; }
  std::int64_t panels() const { return (N_ + simd_detail::nr - 1) / simd_detail::nr; }
  const Quant& quant() const { return quant_; }
  bool has_zero_points() const { return has_zp_; }
  bool has_minus8() const { return has_minus8_; }  // holds -8 (outside TOSA's range)
  bool grouped() const { return quant_.granularity == quant_granularity::per_group; }
  scale_storage scales_stored_as() const { return storage_; }
  // Panel p: groups() * quads_per_group() quads of 32 bytes.
  const std::uint8_t* panel(std::int64_t p) const { return data_.data() + p * G_ * qpg_ * 32; }
  // (panel p, group g): e = 8 + w_zp and W = sum (w - w_zp) of the 16 columns.
  const std::int32_t* e(std::int64_t p, std::int64_t g) const { return side_.data() + ((p * G_ + g) * 2) * simd_detail::nr; }
  const std::int32_t* wsum(std::int64_t p, std::int64_t g) const { return e(p, g) + simd_detail::nr; }
  // Scales of (panel p, group g), 16 columns; the storage not in use is empty.
  const float* scales_f32(std::int64_t p, std::int64_t g) const { return scale32_.data() + (p * G_ + g) * simd_detail::nr; }
  const std::uint16_t* scales_f16(std::int64_t p, std::int64_t g) const { return scale16_.data() + (p * G_ + g) * simd_detail::nr; }
  // Bytes of nibbles, and of everything kept (nibbles, e/W, scales).
  std::int64_t packed_bytes() const { return static_cast<std::int64_t>(data_.size()); }
  std::int64_t total_bytes() const {
    return packed_bytes() + static_cast<std::int64_t>(side_.size() * 4 + scale32_.size() * 4 + scale16_.size() * 2);
  }
  // A view describing the logical [K, N] weights (no data), for validation and messages.
  TensorView<const int4> descriptor() const { return {nullptr, Layout::matrix(K_, N_), quant_}; }
  // The same without scales and zero points (granularity and group size only): what the
  // grouped op validates against, without copying N * G scales per call.
  TensorView<const int4> shape_descriptor() const {
    Quant q = quant_;
    q.scales.clear();
    q.zero_points.clear();
    return {nullptr, Layout::matrix(K_, N_), std::move(q)};
  }
  // Weight (k, n) as packed.
  std::int8_t value(std::int64_t k, std::int64_t n) const {
    const std::int64_t g = k / gs_, r = k % gs_, q = g * qpg_ + r / 4, t = r % 4;
    const std::int64_t p = n / simd_detail::nr, j = n % simd_detail::nr;
    const std::uint8_t byte = panel(p)[q * 32 + (j % 8) * 4 + t];
    return static_cast<std::int8_t>((j < 8 ? byte & 0x0F : byte >> 4) - 8);
  }

  // Packs logical [K, N] int4 weights (any strides) with per-tensor, per-channel (axis 1) or
  // group-wise (Quant::per_group(1, 0, ...)) quantization. fp16 scale storage is refused when a
  // scale is not exactly an fp16 value (results would change); round them with float_to_fp16
  // first. On failure *this is left unchanged.
  status pack(const TensorView<const int4>& b, scale_storage storage = scale_storage::fp32) {
    NPUQ_RETURN_IF_ERROR(b.validate("b"));
    if (b.rank() != 2) return {errc::invalid_shape, "b: rank " + std::to_string(b.rank()) + ", packed weights are [K, N]"};
    NPUQ_RETURN_IF_ERROR(validate_quant(b.quant(), b.layout(), dtype::s4, "b", false));
    const Quant& q = b.quant();
    const std::int64_t K = b.dim(0), N = b.dim(1);
    if (q.granularity == quant_granularity::per_axis && q.axis != 1)
      return {errc::invalid_quantization, "b: per-channel quantization must be along axis 1"};
    if (q.granularity == quant_granularity::per_group && (q.axis != 1 || q.group_axis != 0))
      return {errc::invalid_quantization, "b: group-wise scales must be per column (axis 1) in groups along K (group axis 0)"};
    if (storage == scale_storage::fp16)
      for (std::size_t i = 0; i < q.scales.size(); ++i)
        if (!fp16_exact(q.scales[i]))
          return {errc::invalid_quantization, "b: scale[" + std::to_string(i) + "] = " + std::to_string(q.scales[i]) +
                                                  " is not an fp16 value; round the scales with float_to_fp16 for fp16 storage"};
    const std::int64_t gs = q.granularity == quant_granularity::per_group ? q.group_size : std::max<std::int64_t>(K, 1);
    pack_from(K, N, gs, q, storage, [&](std::int64_t k, std::int64_t n) { return b(k, n); });
    return {};
  }

 private:
  template <class ValueFn>
  void pack_from(std::int64_t K, std::int64_t N, std::int64_t gs, const Quant& q, scale_storage storage, ValueFn&& value) {
    constexpr std::int64_t nr = simd_detail::nr;
    const std::int64_t G = (K + gs - 1) / gs, qpg = (gs + 3) / 4, np = (N + nr - 1) / nr;
    const bool grouped = q.granularity == quant_granularity::per_group;
    std::vector<std::uint8_t> data(static_cast<std::size_t>(np * G * qpg * 32), 0);
    std::vector<std::int32_t> side(static_cast<std::size_t>(np * G * 2 * nr), 0);
    std::vector<float> s32;
    std::vector<std::uint16_t> s16;
    if (q.present()) {
      if (storage == scale_storage::fp16) s16.assign(static_cast<std::size_t>(np * G * nr), 0);
      else s32.assign(static_cast<std::size_t>(np * G * nr), 0.0f);
    }
    bool any_zp = false, minus8 = false;
    for (std::int64_t n = 0; n < N; ++n) {
      const std::int64_t p = n / nr, j = n % nr;
      for (std::int64_t g = 0; g < G; ++g) {
        const std::int64_t c = grouped ? n * G + g : n;  // quantization entry of (n, g)
        const std::int32_t zp = q.zero_point(c);
        any_zp = any_zp || zp != 0;
        std::uint32_t wsum = 0;
        std::uint8_t* quads = data.data() + (p * G + g) * qpg * 32;
        const std::int64_t k1 = std::min(K, (g + 1) * gs);
        for (std::int64_t k = g * gs; k < k1; ++k) {
          const std::int32_t w = value(k, n);
          minus8 = minus8 || w == -8;
          wsum += static_cast<std::uint32_t>(w - zp);
          const std::int64_t r = k - g * gs;
          std::uint8_t& byte = quads[(r / 4) * 32 + (j % 8) * 4 + r % 4];
          const auto code = static_cast<std::uint8_t>(w + 8);
          byte = static_cast<std::uint8_t>(j < 8 ? (byte & 0xF0) | code : (byte & 0x0F) | (code << 4));
        }
        std::int32_t* sd = side.data() + ((p * G + g) * 2) * nr;
        sd[j] = 8 + zp;
        sd[nr + j] = static_cast<std::int32_t>(wsum);
        if (q.present()) {
          const std::size_t at = static_cast<std::size_t>((p * G + g) * nr + j);
          const float s = q.scale(c);
          if (storage == scale_storage::fp16) s16[at] = float_to_fp16(s);
          else s32[at] = s;
        }
      }
    }
    K_ = K;
    N_ = N;
    gs_ = gs;
    G_ = G;
    qpg_ = qpg;
    quant_ = q;
    storage_ = storage;
    has_zp_ = any_zp;
    has_minus8_ = minus8;
    data_ = std::move(data);
    side_ = std::move(side);
    scale32_ = std::move(s32);
    scale16_ = std::move(s16);
  }

  std::int64_t K_ = 0, N_ = 0, gs_ = 1, G_ = 0, qpg_ = 0;
  Quant quant_;
  scale_storage storage_ = scale_storage::fp32;
  bool has_zp_ = false, has_minus8_ = false;
  std::vector<std::uint8_t> data_;
  std::vector<std::int32_t> side_;
  std::vector<float> scale32_;
  std::vector<std::uint16_t> scale16_;
};

}  // namespace npuq
