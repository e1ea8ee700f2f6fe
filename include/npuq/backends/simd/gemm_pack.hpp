// Packed operands of the simd GEMM kernels ("c2" family: pairs of K, 16 columns per panel).
//
// The kernels multiply 16-bit values with pairwise 32-bit accumulation (x86 vpmaddwd, the NEON
// equivalents), which is exact for every int8/uint8 product and never saturates, unlike the
// u8 x s8 -> s16 instructions (vpmaddubsw) that make other libraries' AVX2 results differ from
// their VNNI results. Both operands carry their zero points subtracted:
//
//   B (weights) is packed once per layer: panels of 16 columns; within a panel, for each pair of
//     K rows (k, k+1), the 16 columns' two values side by side (32 bytes per K pair, raw int8 or
//     uint8, columns 0-7 then 8-15). The column zero points are kept as int16 and subtracted in
//     registers after widening, so the packed bytes equal the weight bytes (a GEMV streams
//     exactly K*N bytes). K is padded to even and N to a multiple of 16; the padding is never
//     used in a result (A's padding is 0).
//   A (activations) is packed per block of up to MR rows, at run time: each row is its K values
//     minus the zero point as int16 ([-255, 255]), padded with 0 to an even length, rows one
//     after another. Pair p of row m, (a[2p], a[2p+1]), is the 32-bit word at a + m*2*k_pairs +
//     2p, which the kernels broadcast; a row is written by one contiguous (vectorizable) loop.
//
// Everything is summed in int32 with wrap-around, which equals the reference's exact sum
// modulo 2^32: bit-exact for every profile whose accumulator wraps at <= 32 bits.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/backends/simd/backend.hpp"
#include "npuq/core/tensor.hpp"

namespace npuq {

namespace simd_detail {
constexpr std::int64_t nr = 16;  // columns per B panel
constexpr std::int64_t panel_pair_bytes = 2 * nr;
}  // namespace simd_detail

template <class B>
class packed_gemm_weights {
  static_assert(is_8bit_v<B>, "packed_gemm_weights: B must be int8_t or uint8_t");

 public:
  packed_gemm_weights() = default;

  std::int64_t K() const { return K_; }
  std::int64_t N() const { return N_; }
  std::int64_t k_pairs() const { return (K_ + 1) / 2; }
  std::int64_t panels() const { return (N_ + simd_detail::nr - 1) / simd_detail::nr; }
  const Quant& quant() const { return quant_; }
  bool has_zero_points() const { return has_zp_; }
  // Panel p: k_pairs() x 32 bytes.
  const B* panel(std::int64_t p) const { return data_.data() + p * k_pairs() * simd_detail::panel_pair_bytes; }
  // Zero points of panel p's columns in register order: columns 0-7 each twice, then 8-15.
  const std::int16_t* panel_zero_points(std::int64_t p) const { return zp_.data() + p * 2 * simd_detail::nr; }
  std::int64_t packed_bytes() const { return data_.storage_bytes(); }
  // A view describing the logical [K, N] weights (no data), for validation and messages.
  TensorView<const B> descriptor() const { return {nullptr, Layout::matrix(K_, N_), quant_}; }

  // Packs logical [K, N] weights (any strides). Validates like the ops do; on failure *this is
  // left unchanged.
  status pack(const TensorView<const B>& b) {
    NPUQ_RETURN_IF_ERROR(b.validate("b"));
    if (b.rank() != 2) return {errc::invalid_shape, "b: rank " + std::to_string(b.rank()) + ", packed weights are [K, N]"};
    NPUQ_RETURN_IF_ERROR(validate_quant(b.quant(), b.layout(), b.type(), "b", false));
    if (b.quant().zero_points.size() > 1 && (b.quant().granularity != quant_granularity::per_axis || b.quant().axis != 1))
      return {errc::invalid_quantization, "b: per-channel zero points must be along axis 1"};
    pack_from(b.dim(0), b.dim(1), b.quant(), [&](std::int64_t k, std::int64_t n) { return b(k, n); });
    return {};
  }

  // Packs K x N weights read through value(k, n), with column n's zero point quant.zero_point(n).
  // No validation: callers pass checked data (conv weights of one group, a validated B).
  template <class ValueFn>
  void pack_from(std::int64_t K, std::int64_t N, const Quant& quant, ValueFn&& value) {
    const std::int64_t kp = (K + 1) / 2, np = (N + simd_detail::nr - 1) / simd_detail::nr;
    Tensor<B> data(Layout::row_major({np * kp * simd_detail::panel_pair_bytes}));
    std::vector<std::int16_t> zp(static_cast<std::size_t>(np * 2 * simd_detail::nr), 0);
    bool any_zp = false;
    for (std::int64_t n = 0; n < N; ++n) {
      const std::int64_t p = n / simd_detail::nr, j = n % simd_detail::nr;
      const auto z = static_cast<std::int16_t>(quant.zero_point(n));
      any_zp = any_zp || z != 0;
      // Register order: column j of a half (j % 8) occupies int16 lanes 2*(j%8) and 2*(j%8)+1.
      const std::int64_t lane = (j / 8) * 16 + (j % 8) * 2;
      zp[static_cast<std::size_t>(p * 2 * simd_detail::nr + lane)] = z;
      zp[static_cast<std::size_t>(p * 2 * simd_detail::nr + lane + 1)] = z;
      B* dst = data.data() + p * kp * simd_detail::panel_pair_bytes + lane;
      for (std::int64_t k = 0; k < K; ++k) dst[(k / 2) * simd_detail::panel_pair_bytes + (k % 2)] = static_cast<B>(value(k, n));
    }
    K_ = K;
    N_ = N;
    quant_ = quant;
    has_zp_ = any_zp;
    data_ = std::move(data);
    zp_ = std::move(zp);
  }

 private:
  std::int64_t K_ = 0, N_ = 0;
  Quant quant_;
  bool has_zp_ = false;
  Tensor<B> data_;
  std::vector<std::int16_t> zp_;
};

}  // namespace npuq
