// simd GEMM: kernel selection, the blocking driver, and the output stage.
//
// The driver walks A in blocks of up to 4 rows, packs each block once (zero point subtracted,
// see gemm_pack.hpp), and runs the chosen microkernel against every 16-column panel of the
// packed weights; the int32 tile then goes through the same output stage as the reference
// (bias, accumulator width, requantization, clamp), element by element, so the requantized
// integers are the reference's by construction. The convolution path (conv2d.hpp) reuses the
// driver with a different A packer.
//
// Each level's kernels read one packed format (gemm_pack.hpp): c2 for portable, avx2 and neon
// (16-bit products), c4 for neon_dotprod (SDOT/UDOT), c8 for neon_i8mm (SMMLA/UMMLA). The 8-bit
// formats get their zero-point compensation added by the driver after the kernel.
//
// Profiles whose accumulator saturates or is wider than 32 bits depend on the order of every
// single addition; the simd backend runs those on the reference kernels (kernel name
// "..._reference") instead of computing something different.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "npuq/backends/scalar/gemm.hpp"
#include "npuq/backends/simd/backend.hpp"
#include "npuq/backends/simd/gemm_pack.hpp"
#include "npuq/backends/simd/output_stage.hpp"
#include "npuq/backends/simd/portable/gemm_c2.hpp"
#include "npuq/backends/simd/arm/gemm_c2_neon.hpp"
#include "npuq/backends/simd/arm/gemm_c4_dotprod.hpp"
#include "npuq/backends/simd/arm/gemm_c8_i8mm.hpp"
#include "npuq/backends/simd/x86/gemm_c2_avx2.hpp"
#include "npuq/ops/gemm_problem.hpp"

namespace npuq {
namespace simd_detail {

constexpr int mr = 4;  // rows per A block

inline const char* type_code(dtype t) { return t == dtype::u8 ? "u8" : "s8"; }

// True when int32 wrap-around arithmetic reproduces the profile's accumulator exactly.
inline bool wraps_within_32_bits(const numerics_profile& p) {
  return p.acc.overflow == overflow_rule::wrap && p.acc.bits <= 32;
}

template <class B>
using c2_kernel = void (*)(std::int64_t, const std::int16_t*, const B*, const std::int16_t*, std::int32_t*);
// c4 / c8 kernels: (K groups, A block of bytes in B's type, panel, MR x 16 int32 sums).
template <class B>
using dot_kernel = void (*)(std::int64_t, const B*, const B*, std::int32_t*);

// The output stage for a tile of sums.
using tile_apply_fn = void (*)(const tile_output_stage&, const std::int32_t*, int, std::int64_t, std::int64_t, std::int64_t,
                               std::int32_t*);

// The GEMM microkernels for 1..4 rows at the best level allowed: `rows` (c2 format) or `dot_rows`
// (c4, c8), the format they read, and the names of the tile and the ISA (`suffix`, the level).
// (The c2 in the type's name is historical: conv2d.hpp uses it.)
template <class B>
struct c2_kernels {
  c2_kernel<B> rows[mr];
  tile_apply_fn apply;
  const char* suffix;
  gemm_pack_format format = gemm_pack_format::c2;
  dot_kernel<B> dot_rows[mr] = {};
  const char* tile = "4x16c2";
};

template <class B>
c2_kernels<B> select_c2(isa level) {
#if defined(NPUQ_ARCH_X86_64)
  if (static_cast<int>(level) >= static_cast<int>(isa::avx2) && static_cast<int>(level) <= static_cast<int>(isa::amx_int8))
    return {{gemm_c2_avx2<1, B>, gemm_c2_avx2<2, B>, gemm_c2_avx2<3, B>, gemm_c2_avx2<4, B>}, apply_tile_avx2, "avx2"};
#elif defined(NPUQ_ARCH_AARCH64)
  if (level == isa::neon_i8mm)
    return {{}, apply_tile_portable, "neon_i8mm", gemm_pack_format::c8,
            {gemm_c8_i8mm<1, B>, gemm_c8_i8mm<2, B>, gemm_c8_i8mm<3, B>, gemm_c8_i8mm<4, B>}, "4x16c8"};
  if (level == isa::neon_dotprod)
    return {{}, apply_tile_portable, "neon_dotprod", gemm_pack_format::c4,
            {gemm_c4_dotprod<1, B>, gemm_c4_dotprod<2, B>, gemm_c4_dotprod<3, B>, gemm_c4_dotprod<4, B>}, "4x16c4"};
  if (level == isa::neon)
    return {{gemm_c2_neon<1, B>, gemm_c2_neon<2, B>, gemm_c2_neon<3, B>, gemm_c2_neon<4, B>}, apply_tile_portable, "neon"};
#endif
  (void)level;
  return {{gemm_c2_portable<1, B>, gemm_c2_portable<2, B>, gemm_c2_portable<3, B>, gemm_c2_portable<4, B>}, apply_tile_portable,
          "portable"};
}

// Adds the zero-point compensation of the 8-bit formats to a tile of dot products (see
// gemm_pack.hpp): c[m][j] += o[m] * sb[j] - zb[j] * v_sum[m], modulo 2^32.
inline void add_dot_compensation(std::int32_t* c, int rows, const std::int32_t* comp, const std::int32_t* o,
                                 const std::uint32_t* v_sum) {
  const std::int32_t* zb = comp;
  const std::int32_t* sb = comp + nr;
  for (int m = 0; m < rows; ++m) {
    const auto om = static_cast<std::uint32_t>(o[m]);
    for (int j = 0; j < nr; ++j) {
      const std::uint32_t v = static_cast<std::uint32_t>(c[m * nr + j]) + om * static_cast<std::uint32_t>(sb[j]) -
                              static_cast<std::uint32_t>(zb[j]) * v_sum[m];
      c[m * nr + j] = static_cast<std::int32_t>(v);
    }
  }
}

// Runs C = A x B for M rows and the output stage: `fill(m, v)` writes A row m's K
// zero-point-corrected values into v (int16); `store(m, n0, cols, values)` receives output row m's
// values for columns [n0, n0 + cols).
// Column n of this product is channel first_channel + n of the stage. Weights packed in another
// format than the kernels read (packed for another level) are converted for this call.
template <class B, class FillFn, class StoreFn>
void run_c2(const c2_kernels<B>& kern, std::int64_t M, const packed_gemm_weights<B>& packed, const tile_output_stage& stage,
            std::int64_t first_channel, FillFn&& fill, StoreFn&& store) {
  packed_gemm_weights<B> converted;
  if (packed.format() != kern.format) converted = packed.converted(kern.format);
  const packed_gemm_weights<B>& w = packed.format() == kern.format ? packed : converted;
  const std::int64_t K = w.K(), N = w.N(), kg = w.k_groups(), kr = w.kr();
  const bool c2 = kern.format == gemm_pack_format::c2;
  // c2: the A block (see gemm_pack.hpp), plus 4 values of slack for kernels that load 8 bytes
  // per pair. c4, c8: one row of values, and the block of bytes (c8: pairs of rows interleaved).
  const int rows_per_group = kern.format == gemm_pack_format::c8 ? 2 : 1;
  std::vector<std::int16_t> a_block(static_cast<std::size_t>(c2 ? 2 * kg * mr + 4 : K), 0);
  std::vector<B> a_bytes(static_cast<std::size_t>(c2 ? 0 : kg * kr * mr), 0);
  std::int32_t offset[mr] = {};
  std::uint32_t v_sum[mr] = {};
  alignas(64) std::int32_t c[mr * nr];
  alignas(64) std::int32_t out[mr * nr];
  for (std::int64_t m0 = 0; m0 < M; m0 += mr) {
    const int rows = static_cast<int>(std::min<std::int64_t>(mr, M - m0));
    for (int m = 0; m < rows; ++m) {
      if (c2) {
        fill(m0 + m, a_block.data() + m * 2 * kg);  // odd K: the pad stays 0
      } else {
        fill(m0 + m, a_block.data());
        pack_dot_row(a_block.data(), K, kr, kg, rows_per_group, m, a_bytes.data(), &offset[m], &v_sum[m]);
      }
    }
    for (std::int64_t p = 0; p < w.panels(); ++p) {
      if (c2) {
        kern.rows[rows - 1](kg, a_block.data(), w.panel(p), w.panel_zero_points(p), c);
      } else {
        kern.dot_rows[rows - 1](kg, a_bytes.data(), w.panel(p), c);
        add_dot_compensation(c, rows, w.panel_compensation(p), offset, v_sum);
      }
      const std::int64_t n0 = p * nr, cols = std::min<std::int64_t>(nr, N - n0);
      kern.apply(stage, c, rows, n0, first_channel, cols, out);
      for (int m = 0; m < rows; ++m) store(m0 + m, n0, cols, out + m * nr);
    }
  }
}

// Writes `cols` values to out at element offset `at` with stride `step` (unit stride runs as a
// plain loop the compiler vectorizes).
template <class O>
void store_row(const TensorView<O>& out, std::int64_t at, std::int64_t step, std::int64_t cols, const std::int32_t* v) {
  if constexpr (!element_traits<O>::packed) {
    O* dst = out.data() + at;
    if (step == 1) {
      for (std::int64_t j = 0; j < cols; ++j) dst[j] = static_cast<O>(v[j]);
    } else {
      for (std::int64_t j = 0; j < cols; ++j) dst[j * step] = static_cast<O>(v[j]);
    }
  } else {
    for (std::int64_t j = 0; j < cols; ++j) out.store(at + j * step, static_cast<typename TensorView<O>::value_type>(v[j]));
  }
}

// "<op>_<A type><B type>_<tile>_<level>", e.g. "gemm_s8s8_4x16c4_neon_dotprod".
template <class B>
std::string gemm_kernel_name(const char* op, dtype a, dtype b, const c2_kernels<B>& kern) {
  return std::string(op) + "_" + type_code(a) + type_code(b) + "_" + kern.tile + "_" + kern.suffix;
}

// One GEMM problem with B already packed (shared by all batches, or `per_batch` packs).
template <class A, class B, class O>
void run_gemm_problem(const simd_backend& be, const gemm_problem<A, B, O>& p, const packed_gemm_weights<B>* shared) {
  const c2_kernels<B> kern = select_c2<B>(be.level());
  const Layout& al = p.a.layout();
  const Layout& ol = p.out.layout();
  const int ar = al.rank(), orr = ol.rank();
  packed_gemm_weights<B> own;
  const tile_output_stage stage(p.stage, p.bias, p.N);
  for (std::int64_t batch = 0; batch < p.batch_count(); ++batch) {
    std::int64_t ao = 0, bo = 0, oo = 0;
    p.batch_offsets(batch, &ao, &bo, &oo);
    const packed_gemm_weights<B>* w = shared;
    if (w == nullptr) {
      const Layout& bl = p.b.layout();
      const int br = bl.rank();
      TensorView<const B> bb(p.b.data(), p.b.offset() + bo, Layout::strided({p.K, p.N}, {bl.stride(br - 2), bl.stride(br - 1)}),
                             p.b.quant(), p.b.capacity());
      (void)own.pack(bb, be.level());  // cannot fail: the problem was validated
      w = &own;
    }
    const std::int64_t a0 = p.a.offset() + ao, sm = al.stride(ar - 2), sk = al.stride(ar - 1);
    const std::int64_t o0 = p.out.offset() + oo, om = ol.stride(orr - 2), on = ol.stride(orr - 1);
    run_c2(
        kern, p.M, *w, stage, 0,
        [&](std::int64_t m, std::int16_t* v) {
          const auto* row = p.a.data() + a0 + m * sm;
          const std::int32_t zp = p.a_zero_point;
          if (sk == 1) {
            for (std::int64_t k = 0; k < p.K; ++k) v[k] = static_cast<std::int16_t>(row[k] - zp);
          } else {
            for (std::int64_t k = 0; k < p.K; ++k) v[k] = static_cast<std::int16_t>(row[k * sk] - zp);
          }
        },
        [&](std::int64_t m, std::int64_t n0, std::int64_t cols, const std::int32_t* v) {
          store_row(p.out, o0 + m * om + n0 * on, on, cols, v);
        });
  }
  detail::simd_last_kernel_storage() = gemm_kernel_name("gemm", p.a.type(), p.b.type(), kern);
}

}  // namespace simd_detail

template <class A, class B, class O>
status execute(const simd_backend& be, const gemm_problem<A, B, O>& p) {
  if (!simd_detail::wraps_within_32_bits(p.stage.numerics)) {
    NPUQ_RETURN_IF_ERROR(execute(scalar, p));
    detail::simd_last_kernel_storage() = "gemm_reference";
    return {};
  }
  simd_detail::run_gemm_problem(be, p, static_cast<const packed_gemm_weights<B>*>(nullptr));
  return {};
}

// Packs GEMM weights once for reuse by `gemm(simd, params, a, packed, bias, out)`, in the format
// of the kernels `be` runs (pass the same backend value to both calls).
template <class XB>
status pack_gemm_weights(const simd_backend& be, const XB& b, packed_gemm_weights<detail::element_of<XB>>* out) {
  return out->pack(input_view(b), be.level());
}

// GEMM against packed weights: validated exactly like the unpacked call (B must be 2-D).
template <class XA, class B, class XBias, class XO>
status try_gemm(const simd_backend& be, const gemm_params& params, const XA& a, const packed_gemm_weights<B>& b, const XBias& bias,
                const XO& out) {
  using A = detail::element_of<XA>;
  using O = detail::element_of<XO>;
  gemm_problem<A, B, O> problem;
  NPUQ_RETURN_IF_ERROR(make_gemm_problem(params, input_view(a), b.descriptor(), input_view(bias), output_view(out), &problem, true));
  if (!simd_detail::wraps_within_32_bits(problem.stage.numerics))
    return {errc::unsupported, "params: packed weights need an accumulator that wraps at <= 32 bits; pass unpacked weights to "
                               "run saturating or wider accumulators on the reference path"};
  simd_detail::run_gemm_problem(be, problem, &b);
  return {};
}

template <class XA, class B, class XBias, class XO>
void gemm(const simd_backend& be, const gemm_params& params, const XA& a, const packed_gemm_weights<B>& b, const XBias& bias,
          const XO& out) {
  throw_if_error(try_gemm(be, params, a, b, bias, out));
}

}  // namespace npuq
