// simd GEMM: kernel selection, the blocking driver, and the output stage.
//
// The driver walks A in blocks of up to 4 rows, packs each block once (zero point subtracted,
// see gemm_pack.hpp), and runs the chosen microkernel against every 16-column panel of the
// packed weights; the int32 tile then goes through the same output stage as the reference
// (bias, accumulator width, requantization, clamp), element by element, so the requantized
// integers are the reference's by construction. The convolution path (conv2d.hpp) reuses the
// driver with a different A packer.
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
#include "npuq/backends/simd/portable/gemm_c2.hpp"
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
using c2_kernel = void (*)(std::int64_t, const std::int32_t*, const B*, const std::int16_t*, std::int32_t*);

// The c2 microkernels for 1..4 rows at the best level allowed; `suffix` names the ISA.
template <class B>
struct c2_kernels {
  c2_kernel<B> rows[mr];
  const char* suffix;
};

template <class B>
c2_kernels<B> select_c2(isa level) {
#if defined(NPUQ_ARCH_X86_64)
  if (static_cast<int>(level) >= static_cast<int>(isa::avx2) && static_cast<int>(level) <= static_cast<int>(isa::amx_int8))
    return {{gemm_c2_avx2<1, B>, gemm_c2_avx2<2, B>, gemm_c2_avx2<3, B>, gemm_c2_avx2<4, B>}, "avx2"};
#endif
  (void)level;
  return {{gemm_c2_portable<1, B>, gemm_c2_portable<2, B>, gemm_c2_portable<3, B>, gemm_c2_portable<4, B>}, "portable"};
}

// Runs C = A x B for M rows: `fill(m, v)` writes A row m's K zero-point-corrected values into
// v, `store(m, n, acc32)` receives each int32 sum (modulo 2^32).
template <class B, class FillFn, class StoreFn>
void run_c2(const c2_kernels<B>& kern, std::int64_t M, const packed_gemm_weights<B>& w, FillFn&& fill, StoreFn&& store) {
  const std::int64_t N = w.N(), kp = w.k_pairs();
  std::vector<std::int32_t> a_block(static_cast<std::size_t>(kp * mr)), scratch(static_cast<std::size_t>(2 * kp + 1));
  alignas(64) std::int32_t c[mr * nr];
  for (std::int64_t m0 = 0; m0 < M; m0 += mr) {
    const int rows = static_cast<int>(std::min<std::int64_t>(mr, M - m0));
    pack_a_block(rows, w.K(), [&](int m, std::int32_t* v) { fill(m0 + m, v); }, scratch.data(), a_block.data());
    for (std::int64_t p = 0; p < w.panels(); ++p) {
      kern.rows[rows - 1](kp, a_block.data(), w.panel(p), w.panel_zero_points(p), c);
      const std::int64_t n0 = p * nr, cols = std::min<std::int64_t>(nr, N - n0);
      for (int m = 0; m < rows; ++m)
        for (std::int64_t j = 0; j < cols; ++j) store(m0 + m, n0 + j, c[m * nr + j]);
    }
  }
}

// Bias (int32 wrap-around), accumulator width, output stage: the reference's finish step for a
// sum already reduced modulo 2^32.
inline std::int32_t finish_wrapped(std::int32_t sum, const output_stage& st, const TensorView<const std::int32_t>& bias,
                                   std::int64_t channel) {
  std::uint32_t v = static_cast<std::uint32_t>(sum);
  if (bias.rank() == 1) v += static_cast<std::uint32_t>(bias(channel));
  const std::int64_t acc = wrap_to_bits(static_cast<std::int32_t>(v), st.numerics.acc.bits);
  return st.apply(acc, channel);
}

inline std::string gemm_kernel_name(dtype a, dtype b, const char* suffix) {
  return std::string("gemm_") + type_code(a) + type_code(b) + "_4x16c2_" + suffix;
}

// One GEMM problem with B already packed (shared by all batches, or `per_batch` packs).
template <class A, class B, class O>
void run_gemm_problem(const simd_backend& be, const gemm_problem<A, B, O>& p, const packed_gemm_weights<B>* shared) {
  const c2_kernels<B> kern = select_c2<B>(be.level());
  const Layout& al = p.a.layout();
  const Layout& ol = p.out.layout();
  const int ar = al.rank(), orr = ol.rank();
  packed_gemm_weights<B> own;
  for (std::int64_t batch = 0; batch < p.batch_count(); ++batch) {
    std::int64_t ao = 0, bo = 0, oo = 0;
    p.batch_offsets(batch, &ao, &bo, &oo);
    const packed_gemm_weights<B>* w = shared;
    if (w == nullptr) {
      const Layout& bl = p.b.layout();
      const int br = bl.rank();
      TensorView<const B> bb(p.b.data(), p.b.offset() + bo, Layout::strided({p.K, p.N}, {bl.stride(br - 2), bl.stride(br - 1)}),
                             p.b.quant(), p.b.capacity());
      (void)own.pack(bb);  // cannot fail: the problem was validated
      w = &own;
    }
    const std::int64_t a0 = p.a.offset() + ao, sm = al.stride(ar - 2), sk = al.stride(ar - 1);
    const std::int64_t o0 = p.out.offset() + oo, om = ol.stride(orr - 2), on = ol.stride(orr - 1);
    run_c2(
        kern, p.M, *w,
        [&](std::int64_t m, std::int32_t* v) {
          for (std::int64_t k = 0; k < p.K; ++k) v[k] = static_cast<std::int32_t>(p.a.load(a0 + m * sm + k * sk)) - p.a_zero_point;
        },
        [&](std::int64_t m, std::int64_t n, std::int32_t sum) {
          p.out.store(o0 + m * om + n * on, static_cast<O>(finish_wrapped(sum, p.stage, p.bias, n)));
        });
  }
  detail::simd_last_kernel_storage() = gemm_kernel_name(p.a.type(), p.b.type(), kern.suffix);
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

// Packs GEMM weights once for reuse by `gemm(simd, params, a, packed, bias, out)`.
template <class XB>
status pack_gemm_weights(const simd_backend&, const XB& b, packed_gemm_weights<detail::element_of<XB>>* out) {
  return out->pack(input_view(b));
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
