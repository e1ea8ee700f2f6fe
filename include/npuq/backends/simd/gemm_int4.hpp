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
// quads, plus each group's sum). Kernel names: "gemv_<a>s4_1x16c4_<level>" for M = 1, else
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
  std::int64_t row_bytes = 0, G = 0;
  std::int32_t d = 0;  // (a - s) - a_zp
};

// load(m, k) reads A's element (m, k).
template <class A, class LoadFn>
void w4_prepare_a(std::int64_t M, std::int64_t K, const packed_int4_weights& w, std::int32_t a_zero_point, LoadFn&& load,
                  w4_a_rows* out) {
  const std::int64_t gs = w.group_size(), G = w.groups(), qpg = w.quads_per_group();
  constexpr int flip = std::is_same<A, std::uint8_t>::value ? 0x80 : 0;
  out->row_bytes = G * qpg * 4;
  out->G = G;
  out->d = flip - a_zero_point;
  out->s.assign(static_cast<std::size_t>(M * out->row_bytes), 0);
  out->S.assign(static_cast<std::size_t>(M * G), 0);
  for (std::int64_t m = 0; m < M; ++m) {
    std::int8_t* row = out->s.data() + m * out->row_bytes;
    for (std::int64_t g = 0; g < G; ++g) {
      std::int32_t sum = 0;
      const std::int64_t k1 = std::min(K, (g + 1) * gs);
      std::int8_t* dst = row + g * qpg * 4 - g * gs;
      for (std::int64_t k = g * gs; k < k1; ++k) {
        const auto v = static_cast<std::int8_t>(static_cast<int>(load(m, k)) ^ flip);
        dst[k] = v;
        sum += v;
      }
      out->S[static_cast<std::size_t>(m * G + g)] = sum;
    }
  }
}

// Runs every (panel, row block, batch of groups): the kernel fills sums[g][m][16], then
// tile(p, m0, rows, g0, groups, sums) consumes them.
template <class TileFn>
void run_w4(const w4_kernels& kern, const packed_int4_weights& w, const w4_a_rows& a, std::int64_t M, TileFn&& tile) {
  alignas(64) std::int32_t sums[w4_group_batch * w4_mr * 16];
  const std::int64_t qpg = w.quads_per_group();
  for (std::int64_t p = 0; p < w.panels(); ++p) {
    for (std::int64_t m0 = 0; m0 < M; m0 += w4_mr) {
      const int rows = static_cast<int>(std::min<std::int64_t>(w4_mr, M - m0));
      for (std::int64_t g0 = 0; g0 < w.groups(); g0 += w4_group_batch) {
        const std::int64_t ng = std::min<std::int64_t>(w4_group_batch, w.groups() - g0);
        kern.dot[rows - 1](w.panel(p) + g0 * qpg * 32, ng, qpg, a.s.data() + m0 * a.row_bytes + g0 * qpg * 4, a.row_bytes, sums);
        tile(p, m0, rows, g0, ng, static_cast<const std::int32_t*>(sums));
      }
      if (w.groups() == 0) tile(p, m0, rows, std::int64_t{0}, std::int64_t{0}, static_cast<const std::int32_t*>(sums));
    }
  }
}

inline std::string w4_kernel_name(const char* op, dtype a, std::int64_t M, const w4_kernels& kern) {
  return std::string(M == 1 ? "gemv" : "gemm") + op + "_" + type_code(a) + "s4_" + (M == 1 ? "1x16c4_" : "4x16c4_") + kern.suffix;
}

// gemm_problem with int4 B, weights packed (shared by all batches) or packed here per batch.
template <class A, class O>
void run_gemm_int4(const simd_backend& be, const gemm_problem<A, int4, O>& p, const packed_int4_weights* shared) {
  const w4_kernels kern = select_w4(be.level());
  const Layout& al = p.a.layout();
  const Layout& ol = p.out.layout();
  const int ar = al.rank(), orr = ol.rank();
  const tile_output_stage stage(p.stage, p.bias, p.N);
  packed_int4_weights own;
  for (std::int64_t batch = 0; batch < p.batch_count(); ++batch) {
    std::int64_t ao = 0, bo = 0, oo = 0;
    p.batch_offsets(batch, &ao, &bo, &oo);
    const packed_int4_weights* w = shared;
    if (w == nullptr) {
      const Layout& bl = p.b.layout();
      const int br = bl.rank();
      TensorView<const int4> bb(p.b.data(), p.b.offset() + bo, Layout::strided({p.K, p.N}, {bl.stride(br - 2), bl.stride(br - 1)}),
                                batch_slice_quant(p.b.quant()), p.b.capacity());
      (void)own.pack(bb);  // cannot fail: the problem was validated
      w = &own;
    }
    const std::int64_t a0 = p.a.offset() + ao, sm = al.stride(ar - 2), sk = al.stride(ar - 1);
    w4_a_rows rows_a;
    w4_prepare_a<A>(p.M, p.K, *w, p.a_zero_point, [&](std::int64_t m, std::int64_t k) { return p.a.data()[a0 + m * sm + k * sk]; },
                    &rows_a);
    const std::int64_t o0 = p.out.offset() + oo, om = ol.stride(orr - 2), on = ol.stride(orr - 1);
    const auto d = static_cast<std::uint32_t>(rows_a.d);
    alignas(64) std::int32_t c[w4_mr * 16];
    alignas(64) std::int32_t out[w4_mr * 16];
    run_w4(kern, *w, rows_a, p.M, [&](std::int64_t pn, std::int64_t m0, int rows, std::int64_t g0, std::int64_t ng, const std::int32_t* sums) {
      if (g0 == 0) std::fill(c, c + w4_mr * 16, 0);
      for (std::int64_t g = 0; g < ng; ++g) {
        const std::int32_t* e = w->e(pn, g0 + g);
        const std::int32_t* ws = w->wsum(pn, g0 + g);
        for (int m = 0; m < rows; ++m) {
          const auto S = static_cast<std::uint32_t>(rows_a.S[static_cast<std::size_t>((m0 + m) * rows_a.G + g0 + g)]);
          for (int j = 0; j < 16; ++j) {
            const std::uint32_t t = static_cast<std::uint32_t>(sums[(g * w4_mr + m) * 16 + j]) - static_cast<std::uint32_t>(e[j]) * S +
                                    d * static_cast<std::uint32_t>(ws[j]);
            c[m * 16 + j] = static_cast<std::int32_t>(static_cast<std::uint32_t>(c[m * 16 + j]) + t);
          }
        }
      }
      if (g0 + ng < w->groups()) return;
      const std::int64_t n0 = pn * nr, cols = std::min<std::int64_t>(nr, p.N - n0);
      kern.apply(stage, c, rows, n0, 0, cols, out);
      for (int m = 0; m < rows; ++m) store_row(p.out, o0 + (m0 + m) * om + n0 * on, on, cols, out + m * 16);
    });
  }
  detail::simd_last_kernel_storage() = w4_kernel_name("", p.a.type(), p.M, kern);
}

template <class A, class O>
void run_gemm_grouped(const simd_backend& be, const gemm_grouped_problem<A, O>& p, const packed_int4_weights& w) {
  const w4_kernels kern = select_w4(be.level());
  const Layout& al = p.a.layout();
  const Layout& ol = p.out.layout();
  w4_a_rows rows_a;
  const std::int64_t a0 = p.a.offset(), sm = al.stride(0), sk = al.stride(1);
  w4_prepare_a<A>(p.M, p.K, w, p.a_zero_point, [&](std::int64_t m, std::int64_t k) { return p.a.data()[a0 + m * sm + k * sk]; },
                  &rows_a);
  const std::int64_t G = w.groups();
  // Per panel: d * W and fl(a_scale * scale) for every group, shared by the row blocks.
  std::vector<std::int32_t> dw(static_cast<std::size_t>(G * 16));
  std::vector<float> sg(static_cast<std::size_t>(G * 16));
  std::int64_t prepared = -1;
  alignas(64) float facc[w4_mr * 16];
  const auto d = static_cast<std::uint32_t>(rows_a.d);
  run_w4(kern, w, rows_a, p.M, [&](std::int64_t pn, std::int64_t m0, int rows, std::int64_t g0, std::int64_t ng, const std::int32_t* sums) {
    if (pn != prepared) {
      for (std::int64_t g = 0; g < G; ++g) {
        const std::int32_t* ws = w.wsum(pn, g);
        for (int j = 0; j < 16; ++j) dw[static_cast<std::size_t>(g * 16 + j)] = static_cast<std::int32_t>(d * static_cast<std::uint32_t>(ws[j]));
        if (w.scales_stored_as() == scale_storage::fp16) {
          const std::uint16_t* s16 = w.scales_f16(pn, g);
          for (int j = 0; j < 16; ++j) sg[static_cast<std::size_t>(g * 16 + j)] = p.a_scale * fp16_to_float(s16[j]);
        } else {
          const float* s32 = w.scales_f32(pn, g);
          for (int j = 0; j < 16; ++j) sg[static_cast<std::size_t>(g * 16 + j)] = p.a_scale * s32[j];
        }
      }
      prepared = pn;
    }
    if (g0 == 0) std::fill(facc, facc + w4_mr * 16, 0.0f);
    if (ng > 0)
      kern.grouped(rows, ng, sums, w.e(pn, g0), rows_a.S.data() + m0 * G + g0, G, dw.data() + g0 * 16, sg.data() + g0 * 16, facc);
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
