// conv2d with sparse weights (2:4, block CSR, CSR), on every backend that runs the sparse GEMM.
//
// Why: pruned conv layers (1x1 projections, 3x3 convs) hold their weights in the same sparse
// formats as GEMM layers, and users should not have to decompress them or write the im2col
// themselves. The sparse matrix is the logical [K, OC] weight matrix of the convolution with
// K = KH * KW * C ordered (ky, kx, c), exactly how OHWI weights flatten (compress the dense
// weights viewed as Layout::col_major(KH * KW * C, OC), i.e. OHWI's [OC][KH][KW][C] read as
// [K, OC]); the kernel extent is stated in `sparse_conv_kernel`.
//
//   conv2d_sparse(simd, params, input, weights_2_4, sparse_conv_kernel{3, 3}, bias, out);
//
// Contract: equal, bit for bit, to conv2d (ops/conv2d.hpp) on the decompressed OHWI weights
// under every numerics profile, for groups = 1 (other group counts are refused). How: a 1x1
// window with stride 1 and no padding is one sparse GEMM on the NHWC input as it is ([N, H, W, C]
// is a batch of [W, C] matrices); any other window copies a band of output rows' input patches
// into a bounded scratch buffer ([rows, OW, K], padded taps hold the input zero point, so they
// contribute (zp - zp) * w = 0 like the reference's skipped taps) and runs the sparse GEMM on it,
// band after band. Everything is validated, and the first band's GEMM call checked, before any
// output is written (later bands differ only in their data).
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "npuq/ops/conv2d_problem.hpp"
#include "npuq/ops/gemm_sparse.hpp"

namespace npuq {

// Kernel extent of sparse conv weights (the sparse matrix itself is [KH * KW * C, OC]).
struct sparse_conv_kernel {
  std::int64_t KH = 1, KW = 1;
};

// Sparse conv2d weights as one object: the sparse [K = KH * KW * C, OC] matrix and its kernel
// extent. conv2d (and make_conv2d_plan on simd) take it where they take dense weights:
//
//   sparse_conv2d_weights<sparse_2_4_matrix<>> w24;
//   throw_if_error(prune_conv2d_2_4(w));                  // w: dense conv weights, OHWI / OIHW / HWIO view
//   throw_if_error(compress_conv2d_2_4(w.cview(), &w24));
//   conv2d(simd, params, input, w24, bias, out);          // = conv2d on the pruned dense weights
template <class S>
struct sparse_conv2d_weights {
  static_assert(is_sparse_format<S>::value, "sparse_conv2d_weights: S is sparse_2_4_matrix, block_csr_matrix or csr_matrix");
  S matrix;                    // [KH * KW * C, OC], K in (ky, kx, c) order
  sparse_conv_kernel kernel;   // KH, KW
};

namespace detail {

// Dense conv weights, a logical OHWI view of any strides (Layout::ohwi, Layout::oihw,
// Layout::hwio), copied into OHWI order so that they read as the [K, OC] matrix the sparse
// formats hold (column-major: K = (ky, kx, c) is contiguous per output channel). The
// per-output-channel axis 0 becomes the matrix's axis 1.
struct conv2d_weight_matrix {
  Tensor<std::int8_t> ohwi;
  Quant quant;
  sparse_conv_kernel kernel;

  status make(const TensorView<const std::int8_t>& w, const char* name) {
    NPUQ_RETURN_IF_ERROR(w.validate(name));
    if (w.rank() != 4)
      return {errc::invalid_shape, sparse_arg(name, "shape " + w.layout().shape_string() +
                                                        ", expected conv weights [OC, KH, KW, C] (Layout::ohwi, oihw or hwio)")};
    const std::int64_t OC = w.dim(0), KH = w.dim(1), KW = w.dim(2), C = w.dim(3);
    std::int64_t K = 0;
    if (!checked_mul(KH, KW, &K) || !checked_mul(K, C, &K) || K > sparse_max_dim || OC > sparse_max_dim)
      return {errc::unsupported, sparse_arg(name, "shape " + w.layout().shape_string() + " exceeds the int32 index range")};
    quant = w.quant();
    if (quant.granularity == quant_granularity::per_axis) {
      if (quant.axis != 0)
        return {errc::invalid_argument, sparse_arg(name, "per-channel axis " + std::to_string(quant.axis) +
                                                             ", expected 0 (the output channel of the logical [OC, KH, KW, C] view)")};
      quant.axis = 1;
    } else if (quant.granularity == quant_granularity::per_group) {
      return {errc::unsupported, sparse_arg(name, "per-group quantization; sparse conv weights are per tensor or per output channel")};
    }
    Tensor<std::int8_t> t(Layout::row_major({OC, KH, KW, C}));
    copy_elements(w, t.view());
    ohwi = std::move(t);
    kernel = {KH, KW};
    return {};
  }
  TensorView<std::int8_t> matrix() const {
    return {ohwi.view().data(), 0, Layout::col_major(kernel.KH * kernel.KW * ohwi.layout().dim(3), ohwi.layout().dim(0)), quant,
            ohwi.layout().size()};
  }
};

template <class S, class Compress>
status compress_conv2d(const TensorView<const std::int8_t>& w, sparse_conv2d_weights<S>* out, Compress compress) {
  if (out == nullptr) return {errc::invalid_argument, "out: null"};
  conv2d_weight_matrix m;
  NPUQ_RETURN_IF_ERROR(m.make(w, "w"));
  sparse_conv2d_weights<S> r;
  NPUQ_RETURN_IF_ERROR(compress(TensorView<const std::int8_t>(m.matrix()), &r.matrix));
  r.kernel = m.kernel;
  *out = std::move(r);
  return {};
}

}  // namespace detail

// Compress dense conv weights (a logical [OC, KH, KW, C] view: Layout::ohwi, Layout::oihw for
// ONNX / PyTorch order, Layout::hwio for TensorFlow order; per-tensor or per-output-channel
// (axis 0) quantization) into sparse conv2d weights. Fail like the matrix forms, naming the
// first offending group or block; *out is unchanged on failure.
template <class V>
status compress_conv2d_2_4(const TensorView<const std::int8_t>& w, sparse_conv2d_weights<sparse_2_4_matrix<V>>* out) {
  return detail::compress_conv2d(w, out, [](const TensorView<const std::int8_t>& m, sparse_2_4_matrix<V>* s) { return compress_2_4(m, s); });
}
inline status compress_conv2d_block_csr(const TensorView<const std::int8_t>& w, std::int64_t bn, std::int64_t bk,
                                        sparse_conv2d_weights<block_csr_matrix>* out) {
  return detail::compress_conv2d(w, out, [&](const TensorView<const std::int8_t>& m, block_csr_matrix* s) { return compress_block_csr(m, bn, bk, s); });
}
inline status compress_conv2d_csr(const TensorView<const std::int8_t>& w, sparse_conv2d_weights<csr_matrix>* out) {
  return detail::compress_conv2d(w, out, [](const TensorView<const std::int8_t>& m, csr_matrix* s) { return compress_csr(m, s); });
}

// Magnitude pruning of dense conv weights (any layout compress_conv2d_2_4 takes) to 2:4 along
// K = (ky, kx, c) in place, as prune_2_4 does on the [K, OC] matrix.
inline status prune_conv2d_2_4(const TensorView<std::int8_t>& w) {
  detail::conv2d_weight_matrix m;
  NPUQ_RETURN_IF_ERROR(m.make(w, "w"));
  if (!detail::writable_layout(w.layout()))
    return {errc::invalid_layout, "w: layout " + w.layout().to_string() + " maps two elements to one address"};
  NPUQ_RETURN_IF_ERROR(prune_2_4(m.matrix()));
  detail::copy_elements(m.ohwi.cview(), w);
  return {};
}

namespace detail {

// Output elements a band of im2col rows may hold (about 1 MiB of int8 patches).
constexpr std::int64_t sparse_conv_band_bytes = std::int64_t{1} << 20;

template <class I, class S, class O>
status validate_conv2d_sparse(const conv2d_params& p, const TensorView<const I>& in, const S& w, sparse_conv_kernel kernel,
                              const TensorView<const std::int32_t>& bias, const TensorView<O>& out, conv_geometry* g) {
  NPUQ_RETURN_IF_ERROR(validate_activation_pair(in, out));
  NPUQ_RETURN_IF_ERROR(w.validate("weights"));
  if (p.groups != 1)
    return {errc::unsupported, "groups: conv2d_sparse supports groups = 1, got " + std::to_string(p.groups) +
                                   " (run one conv2d_sparse per group on channel slices)"};
  *g = input_geometry(in.layout(), kernel.KH, kernel.KW);
  if (kernel.KH < 1 || kernel.KW < 1)
    return {errc::invalid_shape, "kernel: extent " + std::to_string(kernel.KH) + "x" + std::to_string(kernel.KW) + " must be >= 1x1"};
  std::int64_t K = 0;
  if (!checked_mul(g->KH, g->KW, &K) || !checked_mul(K, g->C, &K) || w.K != K)
    return {errc::invalid_shape, "weights: sparse matrix has K = " + std::to_string(w.K) + ", expected KH * KW * C = " +
                                     std::to_string(g->KH) + " * " + std::to_string(g->KW) + " * " + std::to_string(g->C)};
  // The dense conv2d's geometry, output shape, bias and output memory checks, on the whole output
  // (the bands below only see their own rows), then the sparse storage the GEMM reads.
  NPUQ_RETURN_IF_ERROR(validate_window_output(p, w.N, in, bias, out, g));
  if (storage_overlaps(out, w)) return {errc::aliasing, "output: memory overlaps the sparse weights' storage; use a separate buffer"};
  return {};
}

// The NHWC input patches of output rows [oy0, oy0 + rows) of image n as [rows][OW][K] int8/uint8,
// K in (ky, kx, c) order; taps outside the image hold the input zero point.
template <class I>
void im2col_rows(const TensorView<const I>& in, const conv_geometry& g, std::int64_t n, std::int64_t oy0, std::int64_t rows, I zp,
                 I* dst) {
  const Layout& l = in.layout();
  const std::int64_t K = g.KH * g.KW * g.C;
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t ox = 0; ox < g.OW; ++ox) {
      I* row = dst + (r * g.OW + ox) * K;
      std::fill(row, row + K, zp);
      for_each_tap(g, oy0 + r, ox, [&](std::int64_t ky, std::int64_t kx, std::int64_t iy, std::int64_t ix) {
        I* d = row + (ky * g.KW + kx) * g.C;
        const std::int64_t base = in.offset() + n * l.stride(0) + iy * l.stride(1) + ix * l.stride(2);
        for (std::int64_t c = 0; c < g.C; ++c) d[c] = static_cast<I>(in.load(base + c * l.stride(3)));
      });
    }
}

// A 1x1 window, stride 1, no padding: one sparse GEMM on the NHWC input as it is.
inline bool sparse_conv_direct(const conv_geometry& g) {
  return g.KH == 1 && g.KW == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_top == 0 && g.pad_left == 0 && g.pad_bottom == 0 &&
         g.pad_right == 0;
}
// Output rows per band of im2col rows.
inline std::int64_t sparse_conv_band(const conv_geometry& g) {
  const std::int64_t row_bytes = std::max<std::int64_t>(1, g.OW * g.KH * g.KW * g.C);
  return std::max<std::int64_t>(1, std::min<std::int64_t>(g.OH, sparse_conv_band_bytes / row_bytes));
}
// A band's GEMM operands: its patches [rows, OW, K] (in the im2col buffer of `capacity` elements)
// and output rows [oy0, oy0 + rows) of image n as [rows, OW, OC].
template <class I>
TensorView<const I> sparse_conv_band_input(const I* cols, std::int64_t capacity, const conv_geometry& g, std::int64_t rows,
                                           const Quant& q) {
  return {cols, 0, Layout::row_major({rows, g.OW, g.KH * g.KW * g.C}), q, capacity};
}
template <class O>
TensorView<O> sparse_conv_band_output(const TensorView<O>& out, const conv_geometry& g, std::int64_t OC, std::int64_t n, std::int64_t oy0,
                                      std::int64_t rows, const Quant& q) {
  const Layout& ol = out.layout();
  return {out.data(), out.offset() + n * ol.stride(0) + oy0 * ol.stride(1),
          Layout::strided({rows, g.OW, OC}, {ol.stride(1), ol.stride(2), ol.stride(3)}), q, out.capacity()};
}

template <class Backend, class I, class S, class O>
status run_conv2d_sparse(const Backend& backend, const conv2d_params& p, const TensorView<const I>& in, const S& w,
                         sparse_conv_kernel kernel, const TensorView<const std::int32_t>& bias, const TensorView<O>& out) {
  conv_geometry g;
  NPUQ_RETURN_IF_ERROR(validate_conv2d_sparse(p, in, w, kernel, bias, out, &g));
  gemm_params gp;
  static_cast<output_params&>(gp) = p;
  if (sparse_conv_direct(g)) return try_gemm(backend, gp, in, w, bias, out);  // [N, H, W, C] x [C, OC] -> [N, H, W, OC]
  const std::int64_t K = g.KH * g.KW * g.C, band = sparse_conv_band(g);
  std::vector<I> cols(static_cast<std::size_t>(band * g.OW * K));
  const I zp = static_cast<I>(in.quant().present() ? in.quant().zero_point() : 0);
  for (std::int64_t n = 0; n < g.N; ++n)
    for (std::int64_t oy0 = 0; oy0 < g.OH; oy0 += band) {
      const std::int64_t rows = std::min(band, g.OH - oy0);
      im2col_rows(in, g, n, oy0, rows, zp, cols.data());
      const TensorView<const I> a = sparse_conv_band_input(cols.data(), static_cast<std::int64_t>(cols.size()), g, rows, in.quant());
      NPUQ_RETURN_IF_ERROR(try_gemm(backend, gp, a, w, bias, sparse_conv_band_output(out, g, w.N, n, oy0, rows, out.quant())));
    }
  return {};
}

}  // namespace detail

template <class Backend, class XI, class S, class XBias, class XO, class = std::enable_if_t<is_sparse_format<S>::value>>
status try_conv2d_sparse(const Backend& backend, const conv2d_params& params, const XI& input, const S& weights,
                         sparse_conv_kernel kernel, const XBias& bias, const XO& out) {
  return detail::run_conv2d_sparse(backend, params, input_view(input), weights, kernel, input_view(bias), output_view(out));
}

// One call shape: conv2d with sparse conv2d weights is conv2d_sparse on their matrix and kernel.
template <class Backend, class XI, class S, class XBias, class XO>
status try_conv2d(const Backend& backend, const conv2d_params& params, const XI& input, const sparse_conv2d_weights<S>& weights,
                  const XBias& bias, const XO& out) {
  return try_conv2d_sparse(backend, params, input, weights.matrix, weights.kernel, bias, out);
}
template <class Backend, class XI, class S, class XBias, class XO>
void conv2d(const Backend& backend, const conv2d_params& params, const XI& input, const sparse_conv2d_weights<S>& weights,
            const XBias& bias, const XO& out) {
  throw_if_error(try_conv2d(backend, params, input, weights, bias, out));
}

template <class Backend, class XI, class S, class XBias, class XO, class = std::enable_if_t<is_sparse_format<S>::value>>
void conv2d_sparse(const Backend& backend, const conv2d_params& params, const XI& input, const S& weights, sparse_conv_kernel kernel,
                   const XBias& bias, const XO& out) {
  throw_if_error(try_conv2d_sparse(backend, params, input, weights, kernel, bias, out));
}

}  // namespace npuq
