// Packed operands of the simd GEMM kernels: panels of 16 columns, K in groups of KR values.
//
// Every format stores the weight bytes unchanged (a GEMV streams exactly K*N bytes), in panels of
// 16 columns; within a panel, for each group of KR consecutive K rows, the 16 columns' KR values
// side by side: byte (k, j) of panel p is at p*KG*16*KR + (k/KR)*16*KR + j*KR + k%KR, where KG is
// the number of K groups. K is padded with 0 to a multiple of KR and N to a multiple of 16; the
// padding never reaches a result. Which KR, and what is kept beside the bytes, depends on the
// kernels that read the panels; the packer picks the format from the ISA level it packs for:
//
//   c2 (portable, avx2, neon; KR = 2) for kernels that multiply 16-bit values with pairwise
//     32-bit accumulation (x86 vpmaddwd, NEON vmlal): exact for every int8/uint8 product and
//     never saturating, unlike the u8 x s8 -> s16 instructions (vpmaddubsw) that make other
//     libraries' AVX2 results differ from their VNNI results. The column zero points are kept as
//     int16 in register order (each twice) and subtracted in registers after widening. A is
//     packed per block of up to MR rows at run time: each row is its K values minus the zero
//     point as int16 ([-255, 255]), padded with 0 to an even length, rows one after another.
//   c4 (neon_dotprod; KR = 4) for SDOT/UDOT and c8 (neon_i8mm; KR = 8) for SMMLA/UMMLA, which
//     multiply 8-bit values. A and B stay 8-bit, so the zero points are folded in as
//     compensation: the packer keeps each column's zero point zb and the sum of its bytes sb,
//     and A's rows are packed with an offset (see pack_dot_row). With v = a - za,
//       sum_k v_k (b_k - zb) = dot(v - o, b) + o * sb - zb * sum_k v_k
//     holds for any o; the row's o moves its values into B's 8-bit range, so the kernel's dot
//     product runs on two int8 (SDOT, SMMLA) or two uint8 (UDOT, UMMLA) operands.
//
// Everything is summed in int32 with wrap-around, which equals the reference's exact sum
// modulo 2^32: bit-exact for every profile whose accumulator wraps at <= 32 bits. Weights packed
// for one level run at any other level (run_c2 converts them for the call, from the bytes and
// zero points kept here), so packing once for the level that will run is only a speed matter.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/backends/simd/backend.hpp"
#include "npuq/core/level_table.hpp"
#include "npuq/core/tensor.hpp"

namespace npuq {

namespace simd_detail {
constexpr std::int64_t nr = 16;  // columns per B panel

// Packing copies every (k, n) weight, padded to whole 16-column panels and K groups, plus 32
// side entries (int32 at most) per panel. Weights whose elements are distinct addresses pack
// into at most 256 times their span in any format, plus at most 1 KiB a panel (c4 panels hold
// whole 64-byte K steps: a 1 x 1 matrix fills a 16 x 64 panel); weights
// that repeat elements through zero or overlapping strides may stand for far more values than
// memory holds (2^40 rows of one byte), so packing is bounded by 16 MiB plus 256 times what
// the weights address. True when K x N weights of `span` elements pack within that bound.
inline bool gemm_packable(std::int64_t K, std::int64_t N, std::int64_t span) {
  constexpr std::int64_t kr_max = 8, slack = std::int64_t{1} << 24;
  const std::int64_t np = ceil_div(N, nr), kg = ceil_div(K, 64) * (64 / kr_max);  // whole c4 steps: the most any format holds
  std::int64_t data = 0, side = 0, total = 0, bound = 0;
  return checked_mul(np, kg, &data) && checked_mul(data, nr * kr_max, &data) && checked_mul(np, 2 * nr * 4, &side) &&
         checked_add(data, side, &total) && checked_mul_add(span, 256, slack, &bound) && total <= bound;
}

// The byte type of A in the x86 c4 format: the other signedness than B, because vpdpbusd and
// AMX's tdpbusd / tdpbsud multiply unsigned by signed bytes.
template <class B>
using dot_a_t = std::conditional_t<std::is_same<B, std::int8_t>::value, std::uint8_t, std::int8_t>;
}  // namespace simd_detail

// The packed layouts, named by their K group (see above).
enum class gemm_pack_format : std::uint8_t { c2, c4, c8 };

inline const char* to_string(gemm_pack_format f) {
  switch (f) {
    case gemm_pack_format::c2: return "c2";
    case gemm_pack_format::c4: return "c4";
    case gemm_pack_format::c8: return "c8";
  }
  return "?";
}

// K values per group (KR) of a format.
inline int pack_kr(gemm_pack_format f) { return f == gemm_pack_format::c2 ? 2 : f == gemm_pack_format::c4 ? 4 : 8; }

// The format the kernels of a level read.
inline gemm_pack_format pack_format_for(isa level) {
  switch (level_kernels(level).gemm) {
    case kernel_family::neon_dotprod:
    case kernel_family::avx_vnni:
    case kernel_family::avx512_vnni:
    case kernel_family::amx_int8: return gemm_pack_format::c4;
    case kernel_family::neon_i8mm: return gemm_pack_format::c8;
    default: return gemm_pack_format::c2;
  }
}

namespace simd_detail {
// K groups a panel of format f holds for kg groups of weights: c4 panels are padded with zero
// groups to whole 16-group AMX B tiles (x86/gemm_c4_amx.hpp), so the AMX kernel runs whole K
// steps with no tail; the other kernels read kg groups and step over the padding.
constexpr std::int64_t c4_group_multiple = 16;
inline std::int64_t panel_groups(gemm_pack_format f, std::int64_t kg) {
  return f == gemm_pack_format::c4 ? (kg + c4_group_multiple - 1) / c4_group_multiple * c4_group_multiple : kg;
}
}  // namespace simd_detail

template <class B>
class packed_gemm_weights {
  static_assert(is_8bit_v<B>, "packed_gemm_weights: B must be int8_t or uint8_t");

 public:
  packed_gemm_weights() = default;

  std::int64_t K() const { return K_; }
  std::int64_t N() const { return N_; }
  gemm_pack_format format() const { return format_; }
  std::int64_t kr() const { return pack_kr(format_); }
  std::int64_t k_groups() const { return (K_ + kr() - 1) / kr(); }
  std::int64_t panels() const { return (N_ + simd_detail::nr - 1) / simd_detail::nr; }
  const Quant& quant() const { return quant_; }
  bool has_zero_points() const { return has_zp_; }
  // K groups a panel holds: k_groups(), and for c4 rounded up to whole AMX tiles (zero groups).
  std::int64_t panel_groups() const { return simd_detail::panel_groups(format_, k_groups()); }
  // Panel p: panel_groups() x 16 x kr() bytes.
  const B* panel(std::int64_t p) const { return data_.data() + p * panel_bytes(); }
  // Bytes from one panel to the next.
  std::int64_t panel_stride() const { return panel_bytes(); }
  // c2: zero points of panel p's columns in register order (each column's twice: 2j, 2j + 1).
  const std::int16_t* panel_zero_points(std::int64_t p) const { return zp_.data() + p * 2 * simd_detail::nr; }
  // c4, c8: panel p's 16 column zero points, then the 16 column sums of the bytes (int32).
  const std::int32_t* panel_compensation(std::int64_t p) const { return comp_.data() + p * 2 * simd_detail::nr; }
  std::int64_t packed_bytes() const { return data_.storage_bytes(); }
  // A view describing the logical [K, N] weights (no data), for validation and messages.
  TensorView<const B> descriptor() const { return {nullptr, Layout::matrix(K_, N_), quant_}; }
  // Weight (k, n) as packed (the original byte).
  B value(std::int64_t k, std::int64_t n) const { return data_.data()[offset(k, n, kr(), panel_groups())]; }

  // Packs logical [K, N] weights (any strides) for the kernels of `level`. Validates like the
  // ops do; on failure *this is left unchanged.
  status pack(const TensorView<const B>& b, isa level = active_isa()) {
    NPUQ_RETURN_IF_ERROR(b.validate("b"));
    if (b.rank() != 2) return {errc::invalid_shape, "b: rank " + std::to_string(b.rank()) + ", packed weights are [K, N]"};
    NPUQ_RETURN_IF_ERROR(validate_quant(b.quant(), b.layout(), b.type(), "b", false));
    if (b.quant().zero_points.size() > 1 && (b.quant().granularity != quant_granularity::per_axis || b.quant().axis != 1))
      return {errc::invalid_quantization, "b: per-channel zero points must be along axis 1"};
    std::int64_t span = 0;
    if (!b.layout().try_span(&span) || !simd_detail::gemm_packable(b.dim(0), b.dim(1), span))
      return {errc::unsupported, "b: [" + std::to_string(b.dim(0)) + ", " + std::to_string(b.dim(1)) + "] weights over " +
                                     std::to_string(span) + " elements (repeated through their strides) are too large to pack; "
                                     "the one-shot call runs them on the reference"};
    pack_from(b.dim(0), b.dim(1), b.quant(), [&](std::int64_t k, std::int64_t n) { return b(k, n); }, level);
    return {};
  }

  // Packs K x N weights read through value(k, n), with column n's zero point quant.zero_point(n),
  // for the kernels of `level`. No validation: callers pass checked data (conv weights of one
  // group, a validated B).
  template <class ValueFn>
  void pack_from(std::int64_t K, std::int64_t N, const Quant& quant, ValueFn&& value, isa level = active_isa()) {
    pack_as(pack_format_for(level), K, N, quant, value);
  }

  // The same weights in format f (a copy when the format already matches).
  packed_gemm_weights converted(gemm_pack_format f) const {
    packed_gemm_weights out;
    out.pack_as(f, K_, N_, quant_, [&](std::int64_t k, std::int64_t n) { return value(k, n); });
    return out;
  }

 private:
  // Weight (k, n) in panels of pg K groups.
  static std::int64_t offset(std::int64_t k, std::int64_t n, std::int64_t kr, std::int64_t pg) {
    const std::int64_t p = n / simd_detail::nr, j = n % simd_detail::nr;
    return p * pg * simd_detail::nr * kr + (k / kr) * simd_detail::nr * kr + j * kr + k % kr;
  }
  std::int64_t panel_bytes() const { return panel_groups() * simd_detail::nr * kr(); }

  template <class ValueFn>
  void pack_as(gemm_pack_format f, std::int64_t K, std::int64_t N, const Quant& quant, ValueFn&& value) {
    const std::int64_t kr = pack_kr(f), pg = simd_detail::panel_groups(f, (K + kr - 1) / kr), np = (N + simd_detail::nr - 1) / simd_detail::nr;
    Tensor<B> data(Layout::row_major({np * pg * simd_detail::nr * kr}));  // zeroed: the K padding adds 0
    const std::size_t side = static_cast<std::size_t>(np * 2 * simd_detail::nr);
    std::vector<std::int16_t> zp(f == gemm_pack_format::c2 ? side : 0, 0);
    std::vector<std::int32_t> comp(f == gemm_pack_format::c2 ? 0 : side, 0);
    bool any_zp = false;
    for (std::int64_t n = 0; n < N; ++n) {
      const std::int64_t p = n / simd_detail::nr, j = n % simd_detail::nr;
      const std::int32_t z = quant.zero_point(n);
      any_zp = any_zp || z != 0;
      std::uint32_t sum = 0;
      for (std::int64_t k = 0; k < K; ++k) {
        const B v = static_cast<B>(value(k, n));
        data.data()[offset(k, n, kr, pg)] = v;
        sum += static_cast<std::uint32_t>(static_cast<std::int32_t>(v));
      }
      const auto side_at = static_cast<std::size_t>(p * 2 * simd_detail::nr + j);
      if (f == gemm_pack_format::c2) {
        zp[static_cast<std::size_t>(p * 2 * simd_detail::nr + 2 * j)] = static_cast<std::int16_t>(z);
        zp[static_cast<std::size_t>(p * 2 * simd_detail::nr + 2 * j + 1)] = static_cast<std::int16_t>(z);
      } else {
        comp[side_at] = z;
        comp[side_at + simd_detail::nr] = static_cast<std::int32_t>(sum);
      }
    }
    K_ = K;
    N_ = N;
    format_ = f;
    quant_ = quant;
    has_zp_ = any_zp;
    data_ = std::move(data);
    zp_ = std::move(zp);
    comp_ = std::move(comp);
  }

  std::int64_t K_ = 0, N_ = 0;
  gemm_pack_format format_ = gemm_pack_format::c2;
  Quant quant_;
  bool has_zp_ = false;
  Tensor<B> data_;
  std::vector<std::int16_t> zp_;
  std::vector<std::int32_t> comp_;
};

namespace simd_detail {

// Packs row m of an A block for the c4 / c8 kernels from its K values v = a - za (int16, padded
// rows hold 0 for taps outside the image, which is a = za): the bytes v - o in B's type, with o =
// min(v) - (B's minimum), so they span B's range; the rows of the block are interleaved in groups
// of `rows_per_group` (c8: two rows of 8 K values per 16 bytes, SMMLA's 2 x 8 operand; c4: one).
// The values of a row span at most 255 because a is 8-bit and validated zero points lie in the
// type's range. *o and *v_sum (sum of v modulo 2^32) feed the compensation (see the top).
template <class B>
void pack_dot_row(const std::int16_t* v, std::int64_t K, std::int64_t kr, std::int64_t kg, int rows_per_group, int m, B* block,
                  std::int32_t* o, std::uint32_t* v_sum) {
  std::int32_t lo = K > 0 ? v[0] : 0;
  std::uint32_t sum = 0;
  for (std::int64_t k = 0; k < K; ++k) {
    lo = std::min<std::int32_t>(lo, v[k]);
    sum += static_cast<std::uint32_t>(static_cast<std::int32_t>(v[k]));
  }
  const std::int32_t off = lo - element_traits<B>::min;
  const std::int64_t step = kr * rows_per_group;  // bytes from one K group of a row to its next
  B* dst = block + (m / rows_per_group) * kg * step + (m % rows_per_group) * kr;
  for (std::int64_t g = 0; g < kg; ++g) {
    const std::int64_t k0 = g * kr, n = std::min<std::int64_t>(kr, K - k0);
    B* out = dst + g * step;
    for (std::int64_t t = 0; t < n; ++t) out[t] = static_cast<B>(v[k0 + t] - off);
    for (std::int64_t t = n; t < kr; ++t) out[t] = 0;  // B's padding is 0 too
  }
  *o = off;
  *v_sum = sum;
}

}  // namespace simd_detail

}  // namespace npuq
