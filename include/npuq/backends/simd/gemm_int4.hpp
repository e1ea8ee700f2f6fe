// simd W4A8 GEMM and GEMV: int4 weights (per-channel or group-wise scales) against int8 or
// uint8 activations, on nibble panels that are never widened in memory.
//
// Why its own driver: the int8 driver (gemm.hpp) streams int8 panels; an int4 GEMV is memory
// bound and only gains by moving half the bytes, so these kernels read the nibble panels of
// w4/pack.hpp directly. Two ops share the driver:
//
//   gemm_problem<A, int4, O> (per-channel / per-tensor scales, int32 sums, then the shared
//     output stage): results are the reference's (and so the int8 GEMM's on the unpacked
//     weights) under every profile whose accumulator wraps at <= 32 bits; other profiles run
//     the reference (kernel name "gemm_reference"), as the int8 path does.
//   gemm_grouped_problem<A, O> (group scales along K, the float contract of
//     gemm_grouped_problem.hpp): exact group sums, then the grouped epilogue in group order.
//
// Loop order: 16-column panels outside, blocks of up to 4 rows of A inside (the panel stays in
// cache while every row block uses it; A is prepared once: signed bytes per group, padded to
// quads, plus each group's sum). Threads split the panels (w4_parts): a panel's outputs are
// computed by one thread exactly as on one, so the bytes do not depend on the thread count. The
// one-shot calls and the plans of plan_int4.hpp run the same loops (run_gemm_int4_batch,
// run_gemm_grouped_on). Kernel names: "gemv_<a>s4_1x16c4_<level>" for M = 1, else
// "gemm_<a>s4_4x16c4_<level>"; the grouped op prefixes "grouped_".
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "npuq/backends/scalar/gemm.hpp"
#include "npuq/backends/scalar/gemm_grouped.hpp"
#include "npuq/backends/simd/backend.hpp"
#include "npuq/backends/simd/gemm.hpp"
#include "npuq/backends/simd/output_stage.hpp"
#include "npuq/backends/simd/w4/kernel_avx2.hpp"
#include "npuq/backends/simd/w4/kernel_avx512.hpp"
#include "npuq/backends/simd/w4/kernel_avx_vnni.hpp"
#include "npuq/backends/simd/w4/kernel_neon.hpp"
#include "npuq/backends/simd/w4/kernel_portable.hpp"
#include "npuq/backends/simd/w4/pack.hpp"
#include "npuq/core/parallel.hpp"
#include "npuq/ops/gemm_grouped.hpp"
#include "npuq/ops/gemm_problem.hpp"

namespace npuq {
namespace simd_detail {

using w4_dot_fn = void (*)(const std::uint8_t*, std::int64_t, std::int64_t, const std::int8_t*, std::int64_t, std::int32_t*);
using w4_grouped_epilogue_fn = void (*)(int, std::int64_t, const std::int32_t*, const std::int32_t*, const std::int32_t*, std::int64_t,
                                        const std::int32_t*, const float*, float*);

// The W4A8 kernels of one kernel family.
struct w4_kernels {
  w4_dot_fn dot[w4_mr];
  w4_grouped_epilogue_fn grouped;
  tile_apply_fn apply;
  const char* suffix;
};

// The W4A8 kernels the table of `level` lists (level_table.hpp).
inline w4_kernels select_w4(isa level) {
  const kernel_family f = level_kernels(level).int4;
#if defined(NPUQ_ARCH_X86_64)
  if (f == kernel_family::avx512_vnni)
    return {{w4_dot_avx512_vnni<1>, w4_dot_avx512_vnni<2>, w4_dot_avx512_vnni<3>, w4_dot_avx512_vnni<4>},
            w4_grouped_epilogue_avx512_vnni, apply_tile_avx2, "avx512_vnni"};
  if (f == kernel_family::avx_vnni)
    return {{w4_dot_avx_vnni<1>, w4_dot_avx_vnni<2>, w4_dot_avx_vnni<3>, w4_dot_avx_vnni<4>}, w4_grouped_epilogue_avx2,
            apply_tile_avx2, "avx_vnni"};
  if (f == kernel_family::avx2)
    return {{w4_dot_avx2<1>, w4_dot_avx2<2>, w4_dot_avx2<3>, w4_dot_avx2<4>}, w4_grouped_epilogue_avx2, apply_tile_avx2, "avx2"};
#elif defined(NPUQ_ARCH_AARCH64)
  if (f == kernel_family::neon_dotprod)
    return {{w4_dot_dotprod<1>, w4_dot_dotprod<2>, w4_dot_dotprod<3>, w4_dot_dotprod<4>}, w4_grouped_epilogue_portable,
            apply_tile_portable, "neon_dotprod"};
  if (f == kernel_family::neon)
    return {{w4_dot_neon<1>, w4_dot_neon<2>, w4_dot_neon<3>, w4_dot_neon<4>}, w4_grouped_epilogue_portable, apply_tile_portable,
            "neon"};
#endif
  (void)f;
  return {{w4_dot_portable<1>, w4_dot_portable<2>, w4_dot_portable<3>, w4_dot_portable<4>}, w4_grouped_epilogue_portable,
          apply_tile_portable, "portable"};
}

// A prepared for the kernels: per row, the signed bytes s (s = a for int8, a - 128 for uint8)
// of each group padded with 0 to whole quads, and each group's sum of s.
struct w4_a_rows {
  std::vector<std::int8_t> s;
  std::vector<std::int32_t> S;
  std::int64_t M = 0, row_bytes = 0, G = 0;
  std::int32_t d = 0;  // (a - s) - a_zp

  // Sizes the rows for `rows` rows of an A of element type AT and zero point a_zero_point against
  // w. Allocates only beyond the capacity already held (a plan sizes them once, at creation).
  template <class AT>
  void size_for(std::int64_t rows, const packed_int4_weights& w, std::int32_t a_zero_point) {
    constexpr int flip = std::is_same<AT, std::uint8_t>::value ? 0x80 : 0;
    M = rows;
    G = w.groups();
    row_bytes = G * w.quads_per_group() * 4;
    d = flip - a_zero_point;
    s.resize(static_cast<std::size_t>(M * row_bytes));
    S.resize(static_cast<std::size_t>(M * G));
  }
};

// Fills rows sized by w4_a_rows::size_for<A> from A's M x K elements at a[m * sm + k * sk]. Writes
// every byte (the quads' padding 0) and allocates nothing.
template <class A>
void w4_prepare_a(const A* a, std::int64_t sm, std::int64_t sk, std::int64_t K, const packed_int4_weights& w, w4_a_rows* out) {
  const std::int64_t gs = w.group_size(), G = w.groups(), qpg = w.quads_per_group();
  constexpr int flip = std::is_same<A, std::uint8_t>::value ? 0x80 : 0;
  for (std::int64_t m = 0; m < out->M; ++m) {
    std::int8_t* row = out->s.data() + m * out->row_bytes;
    const A* src = a + m * sm;
    for (std::int64_t g = 0; g < G; ++g) {
      std::int32_t sum = 0;
      const std::int64_t k1 = std::min(K, (g + 1) * gs);
      std::int8_t* dst = row + g * qpg * 4 - g * gs;  // dst[k] for k in this group's quads
      for (std::int64_t k = g * gs; k < k1; ++k) {
        const auto v = static_cast<std::int8_t>(static_cast<int>(src[k * sk]) ^ flip);
        dst[k] = v;
        sum += v;
      }
      std::fill(dst + k1, dst + g * gs + qpg * 4, std::int8_t{0});
      out->S[static_cast<std::size_t>(m * G + g)] = sum;
    }
  }
}

// Panel p of the product: for every block of up to 4 rows of A and batch of groups the kernel
// fills sums[g][m][16], then tile(m0, rows, g0, groups, sums) consumes them (K = 0: one call per
// row block with no groups).
template <class TileFn>
void run_w4_panel(const w4_kernels& kern, const packed_int4_weights& w, const w4_a_rows& a, std::int64_t p, TileFn&& tile) {
  alignas(64) std::int32_t sums[w4_group_batch * w4_mr * 16];
  const std::int64_t qpg = w.quads_per_group();
  for (std::int64_t m0 = 0; m0 < a.M; m0 += w4_mr) {
    const int rows = static_cast<int>(std::min<std::int64_t>(w4_mr, a.M - m0));
    for (std::int64_t g0 = 0; g0 < w.groups(); g0 += w4_group_batch) {
      const std::int64_t ng = std::min<std::int64_t>(w4_group_batch, w.groups() - g0);
      kern.dot[rows - 1](w.panel(p) + g0 * qpg * 32, ng, qpg, a.s.data() + m0 * a.row_bytes + g0 * qpg * 4, a.row_bytes, sums);
      tile(m0, rows, g0, ng, static_cast<const std::int32_t*>(sums));
    }
    if (w.groups() == 0) tile(m0, rows, std::int64_t{0}, std::int64_t{0}, static_cast<const std::int32_t*>(sums));
  }
}

// Thread parts of a W4A8 product: whole 16-column panels each (a panel's outputs are computed by
// one thread exactly as on one, so the bytes do not depend on the thread count), and about 2^18
// multiply-adds or more per part, so that a fork and join is paid only for real work.
inline std::int64_t w4_parts(int threads, std::int64_t panels, std::int64_t M, std::int64_t K) {
  const std::int64_t per_panel = std::max<std::int64_t>(1, M * std::max<std::int64_t>(K, 1) * nr);
  const std::int64_t by_work = panels / std::max<std::int64_t>(1, (std::int64_t{1} << 18) / per_panel);
  return std::max<std::int64_t>(1, std::min({static_cast<std::int64_t>(std::max(threads, 1)), panels, by_work}));
}

// fn(p0, p1) for the panel ranges of w4_parts, on up to `threads` threads.
template <class PanelsFn>
void for_w4_panel_ranges(int threads, std::int64_t panels, std::int64_t M, std::int64_t K, PanelsFn&& fn) {
  const std::int64_t parts = w4_parts(threads, panels, M, K);
  detail::parallel_parts(threads, parts, [&](std::int64_t part) { fn(panels * part / parts, panels * (part + 1) / parts); });
}

inline std::string w4_kernel_name(const char* op, dtype a, std::int64_t M, const w4_kernels& kern) {
  return std::string(M == 1 ? "gemv" : "gemm") + op + "_" + type_code(a) + "s4_" + (M == 1 ? "1x16c4_" : "4x16c4_") + kern.suffix;
}

// Batch `batch` of a W4A8 GEMM (per-channel / per-tensor scales) against w, on up to `threads`
// threads: A's rows prepared into rows_a (sized by size_for<A>(p.M, w, p.a_zero_point)), then the
// panels split over the threads, each finished through `stage` (made for p). The one-shot call and
// gemm_int4_plan both run this; it allocates nothing.
template <class A, class O>
void run_gemm_int4_batch(int threads, const w4_kernels& kern, const gemm_problem<A, int4, O>& p, std::int64_t batch,
                         const packed_int4_weights& w, const tile_output_stage& stage, w4_a_rows& rows_a) {
  const Layout& al = p.a.layout();
  const Layout& ol = p.out.layout();
  const int ar = al.rank(), orr = ol.rank();
  std::int64_t ao = 0, bo = 0, oo = 0;
  p.batch_offsets(batch, &ao, &bo, &oo);
  w4_prepare_a<A>(p.a.data() + p.a.offset() + ao, al.stride(ar - 2), al.stride(ar - 1), p.K, w, &rows_a);
  const std::int64_t o0 = p.out.offset() + oo, om = ol.stride(orr - 2), on = ol.stride(orr - 1);
  const auto d = static_cast<std::uint32_t>(rows_a.d);
  for_w4_panel_ranges(threads, w.panels(), p.M, p.K, [&](std::int64_t p0, std::int64_t p1) {
    alignas(64) std::int32_t c[w4_mr * 16];
    alignas(64) std::int32_t out[w4_mr * 16];
    for (std::int64_t pn = p0; pn < p1; ++pn) {
      run_w4_panel(kern, w, rows_a, pn, [&](std::int64_t m0, int rows, std::int64_t g0, std::int64_t ng, const std::int32_t* sums) {
        if (g0 == 0) std::fill(c, c + w4_mr * 16, 0);
        for (std::int64_t g = 0; g < ng; ++g) {
          const std::int32_t* e = w.e(pn, g0 + g);
          const std::int32_t* ws = w.wsum(pn, g0 + g);
          for (int m = 0; m < rows; ++m) {
            const auto S = static_cast<std::uint32_t>(rows_a.S[static_cast<std::size_t>((m0 + m) * rows_a.G + g0 + g)]);
            for (int j = 0; j < 16; ++j) {
              const std::uint32_t t = static_cast<std::uint32_t>(sums[(g * w4_mr + m) * 16 + j]) - static_cast<std::uint32_t>(e[j]) * S +
                                      d * static_cast<std::uint32_t>(ws[j]);
              c[m * 16 + j] = static_cast<std::int32_t>(static_cast<std::uint32_t>(c[m * 16 + j]) + t);
            }
          }
        }
        if (g0 + ng < w.groups()) return;
        const std::int64_t n0 = pn * nr, cols = std::min<std::int64_t>(nr, p.N - n0);
        kern.apply(stage, c, rows, n0, 0, cols, out);
        for (int m = 0; m < rows; ++m) store_row(p.out, o0 + (m0 + m) * om + n0 * on, on, cols, out + m * 16);
      });
    }
  });
}

// gemm_problem with int4 B, weights packed (shared by all batches) or packed here per batch.
template <class A, class O>
void run_gemm_int4(const simd_backend& be, const gemm_problem<A, int4, O>& p, const packed_int4_weights* shared) {
  const w4_kernels kern = select_w4(be.level());
  const tile_output_stage stage(p.stage, p.bias, p.N);
  packed_int4_weights own;
  w4_a_rows rows_a;
  for (std::int64_t batch = 0; batch < p.batch_count(); ++batch) {
    const packed_int4_weights* w = shared;
    if (w == nullptr) {
      std::int64_t ao = 0, bo = 0, oo = 0;
      p.batch_offsets(batch, &ao, &bo, &oo);
      const Layout& bl = p.b.layout();
      const int br = bl.rank();
      TensorView<const int4> bb(p.b.data(), p.b.offset() + bo, Layout::strided({p.K, p.N}, {bl.stride(br - 2), bl.stride(br - 1)}),
                                batch_slice_quant(p.b.quant()), p.b.capacity());
      (void)own.pack(bb);  // cannot fail: the problem was validated
      w = &own;
    }
    rows_a.size_for<A>(p.M, *w, p.a_zero_point);
    run_gemm_int4_batch(be.thread_count(), kern, p, batch, *w, stage, rows_a);
  }
  detail::simd_last_kernel_storage() = w4_kernel_name("", p.a.type(), p.M, kern);
}

// The grouped epilogue's factors of panel pn, shared by its row blocks: dw = d * W and
// sg = fl(a_scale * scale) for every group (G * 16 each).
inline void w4_grouped_factors(const packed_int4_weights& w, std::int64_t pn, std::int32_t d, float a_scale, std::int32_t* dw, float* sg) {
  for (std::int64_t g = 0; g < w.groups(); ++g) {
    const std::int32_t* ws = w.wsum(pn, g);
    for (int j = 0; j < 16; ++j) dw[g * 16 + j] = static_cast<std::int32_t>(static_cast<std::uint32_t>(d) * static_cast<std::uint32_t>(ws[j]));
    if (w.scales_stored_as() == scale_storage::fp16) {
      const std::uint16_t* s16 = w.scales_f16(pn, g);
      for (int j = 0; j < 16; ++j) sg[g * 16 + j] = a_scale * fp16_to_float(s16[j]);
    } else {
      const float* s32 = w.scales_f32(pn, g);
      for (int j = 0; j < 16; ++j) sg[g * 16 + j] = a_scale * s32[j];
    }
  }
}

// A grouped GEMM against w on up to `threads` threads: A's rows prepared into rows_a (sized by
// size_for<A>(p.M, w, p.a_zero_point)), then the panels split over the threads. dw_all and sg_all
// hold every panel's factors (w4_grouped_factors, panels * G * 16 each) where a plan made them once;
// null, each part computes its panels' own (allocating G * 16 of each). The one-shot call and
// gemm_grouped_plan both run this.
template <class A, class O>
void run_gemm_grouped_on(int threads, const w4_kernels& kern, const gemm_grouped_problem<A, O>& p, const packed_int4_weights& w,
                         w4_a_rows& rows_a, const std::int32_t* dw_all, const float* sg_all) {
  const Layout& al = p.a.layout();
  const Layout& ol = p.out.layout();
  w4_prepare_a<A>(p.a.data() + p.a.offset(), al.stride(0), al.stride(1), p.K, w, &rows_a);
  const std::int64_t G = w.groups();
  for_w4_panel_ranges(threads, w.panels(), p.M, p.K, [&](std::int64_t p0, std::int64_t p1) {
    std::vector<std::int32_t> dw_own;
    std::vector<float> sg_own;
    if (dw_all == nullptr) {
      dw_own.resize(static_cast<std::size_t>(G * 16));
      sg_own.resize(static_cast<std::size_t>(G * 16));
    }
    alignas(64) float facc[w4_mr * 16];
    for (std::int64_t pn = p0; pn < p1; ++pn) {
      const std::int32_t* dw = dw_all != nullptr ? dw_all + pn * G * 16 : dw_own.data();
      const float* sg = sg_all != nullptr ? sg_all + pn * G * 16 : sg_own.data();
      if (dw_all == nullptr) w4_grouped_factors(w, pn, rows_a.d, p.a_scale, dw_own.data(), sg_own.data());
      run_w4_panel(kern, w, rows_a, pn, [&](std::int64_t m0, int rows, std::int64_t g0, std::int64_t ng, const std::int32_t* sums) {
        if (g0 == 0) std::fill(facc, facc + w4_mr * 16, 0.0f);
        if (ng > 0) kern.grouped(rows, ng, sums, w.e(pn, g0), rows_a.S.data() + m0 * G + g0, G, dw + g0 * 16, sg + g0 * 16, facc);
        if (g0 + ng < G) return;
        const std::int64_t n0 = pn * nr, cols = std::min<std::int64_t>(nr, p.N - n0);
        for (int m = 0; m < rows; ++m) {
          for (std::int64_t j = 0; j < cols; ++j) {
            float y = facc[m * 16 + j];
            if (p.has_bias()) y = y + p.bias(n0 + j);
            p.out.store(p.out.offset() + (m0 + m) * ol.stride(0) + (n0 + j) * ol.stride(1),
                        detail::grouped_store_value<O>(y, p.out_scale, p.out_zero_point, p.lo, p.hi));
          }
        }
      });
    }
  });
}

template <class A, class O>
void run_gemm_grouped(const simd_backend& be, const gemm_grouped_problem<A, O>& p, const packed_int4_weights& w) {
  const w4_kernels kern = select_w4(be.level());
  w4_a_rows rows_a;
  rows_a.size_for<A>(p.M, w, p.a_zero_point);
  run_gemm_grouped_on(be.thread_count(), kern, p, w, rows_a, nullptr, nullptr);
  detail::simd_last_kernel_storage() = w4_kernel_name("_grouped", p.a.type(), p.M, kern);
}

// Packed weights carry no -8 when asked for the symmetric range.
inline status check_packed_int4_range(const packed_int4_weights& w, int4_range range) {
  if (range == int4_range::symmetric && w.has_minus8())
    return {errc::invalid_argument, "b: packed weights hold -8, outside the symmetric int4 range [-7, 7] (TOSA); use int4_range::full"};
  return {};
}

}  // namespace simd_detail

// W4A8 GEMM with int4 B given as a view: packed for the call.
template <class A, class O>
status execute(const simd_backend& be, const gemm_problem<A, int4, O>& p) {
  if (!simd_detail::wraps_within_32_bits(p.stage.numerics)) {
    NPUQ_RETURN_IF_ERROR(execute(scalar, p));
    detail::simd_last_kernel_storage() = "gemm_reference";
    return {};
  }
  simd_detail::run_gemm_int4(be, p, nullptr);
  return {};
}

template <class A, class O>
status execute(const simd_backend& be, const gemm_grouped_problem<A, O>& p) {
  packed_int4_weights w;
  NPUQ_RETURN_IF_ERROR(w.pack(p.b));
  simd_detail::run_gemm_grouped(be, p, w);
  return {};
}

// Packs int4 weights once ([K, N], any strides; per-tensor, per-channel or group-wise scales)
// for `gemm(simd, ...)` and `gemm_grouped(simd, ...)`. The nibble layout is the same at every
// level, so `be` only documents intent.
template <class XB>
status pack_gemm_weights(const simd_backend& be, const XB& b, packed_int4_weights* out, scale_storage storage = scale_storage::fp32) {
  (void)be;
  static_assert(std::is_same<detail::element_of<XB>, int4>::value, "pack_gemm_weights: int4 weights go into packed_int4_weights");
  return out->pack(input_view(b), storage);
}

// W4A8 GEMM against packed int4 weights (per-channel scales, int32 or requantized output).
template <class XA, class XBias, class XO>
status try_gemm(const simd_backend& be, const gemm_params& params, const XA& a, const packed_int4_weights& b, const XBias& bias,
                const XO& out) {
  using A = detail::element_of<XA>;
  using O = detail::element_of<XO>;
  gemm_problem<A, int4, O> problem;
  NPUQ_RETURN_IF_ERROR(make_gemm_problem(params, input_view(a), b.descriptor(), input_view(bias), output_view(out), &problem, true));
  if (problem.out.size() == 0) return {};  // nothing to compute, however many batches
  NPUQ_RETURN_IF_ERROR(simd_detail::check_packed_int4_range(b, params.int4_weights));
  if (!simd_detail::wraps_within_32_bits(problem.stage.numerics))
    return {errc::unsupported, "params: packed weights need an accumulator that wraps at <= 32 bits; pass unpacked weights to "
                               "run saturating or wider accumulators on the reference path"};
  simd_detail::run_gemm_int4(be, problem, &b);
  return {};
}

template <class XA, class XBias, class XO>
void gemm(const simd_backend& be, const gemm_params& params, const XA& a, const packed_int4_weights& b, const XBias& bias,
          const XO& out) {
  throw_if_error(try_gemm(be, params, a, b, bias, out));
}

// Group-wise GEMM against packed int4 weights.
template <class XA, class XBias, class XO>
status try_gemm_grouped(const simd_backend& be, const gemm_grouped_params& params, const XA& a, const packed_int4_weights& b,
                        const XBias& bias, const XO& out) {
  using A = detail::element_of<XA>;
  using O = detail::element_of<XO>;
  gemm_grouped_problem<A, O> problem;
  NPUQ_RETURN_IF_ERROR(make_gemm_grouped_problem(params, input_view(a), b.shape_descriptor(), detail::float_bias_view(bias), output_view(out),
                                                 &problem, true));
  NPUQ_RETURN_IF_ERROR(simd_detail::check_packed_int4_range(b, params.int4_weights));
  simd_detail::run_gemm_grouped(be, problem, b);
  return {};
}

template <class XA, class XBias, class XO>
void gemm_grouped(const simd_backend& be, const gemm_grouped_params& params, const XA& a, const packed_int4_weights& b,
                  const XBias& bias, const XO& out) {
  throw_if_error(try_gemm_grouped(be, params, a, b, bias, out));
}

}  // namespace npuq
