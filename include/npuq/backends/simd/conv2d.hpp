// simd conv2d: implicit GEMM on the level's GEMM kernels, without an im2col copy of the input.
//
// Per group, the OHWI weights are the GEMM's B ([K = KH*KW*Cg, OC/groups], packed once per call)
// and each block of up to 4 output pixels is gathered straight from the input into the kernel's
// packed A layout (int16 values for c2, bytes for the x86 c4 kernels; taps outside the image
// contribute 0 after the zero point is subtracted). The
// int32 sums then go through the reference's output stage.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <vector>

#include "npuq/backends/scalar/conv2d.hpp"
#include "npuq/backends/simd/gemm.hpp"
#include "npuq/backends/simd/x86/copy_avx512.hpp"
#include "npuq/ops/conv2d_problem.hpp"

namespace npuq {
namespace simd_detail {

// The direct convolution's rows form (see direct_conv_form) reads each kernel row of kw taps over
// c channels as one K step of this many bytes: AMX's 64, whose bytes past the taps (the next
// pixels') meet zero weights; AVX-512 VNNI's the kernel row itself (whole groups of 4 bytes).
inline std::int64_t kernel_row_step(kernel_family family, std::int64_t kw, std::int64_t c) {
  return family == kernel_family::amx_int8 ? 64 : kw * c;
}

// Whether the rows form fits a kernel of kh x kw taps over c channels in `groups` groups, with
// horizontal stride stride_w, on the kernels of `family`: one group, and
//  - on AMX channels not a multiple of 64 (those take the taps form), kernel rows of at most 64
//    bytes and no more K steps (one per kernel row) than the gathered rows take (a 3x3x3 kernel
//    would take 3 instead of 1, and runs slower than the gather it saves);
//  - on AVX-512 VNNI kernel rows of whole groups of 4 bytes and a horizontal stride of 2 or more,
//    where it measured faster than the gather (3x3x16 stride 2: 52 against 54.5 us on Zen 5). With
//    rows padded to whole groups (3x3x3: 9 groups for the gather's 7) and at stride 1 (ResNet's
//    3x3x64, which computes the pixels between output rows twice) it was slower (docs/simd.md).
inline bool kernel_rows_fit(kernel_family family, std::int64_t groups, std::int64_t kh, std::int64_t kw, std::int64_t c,
                            std::int64_t stride_w) {
  if (groups != 1) return false;
  const std::int64_t row_bytes = kw * c;
  if (family == kernel_family::avx512_vnni) return row_bytes % 4 == 0 && stride_w >= 2;
  return family == kernel_family::amx_int8 && c % 64 != 0 && row_bytes <= 64 && kh <= (kh * row_bytes + 63) / 64;
}

// Whether the rows form needs the weights packed per kernel row
// (packed_conv2d_weights::pack_kernel_rows): where its steps are longer than the kernel rows, which
// only AMX's are (its fit does not depend on the stride); else the implicit GEMM's weights are the
// same bytes.
inline bool kernel_rows_packed(kernel_family family, std::int64_t groups, std::int64_t kh, std::int64_t kw, std::int64_t c) {
  return family == kernel_family::amx_int8 && kernel_rows_fit(family, groups, kh, kw, c, 1) && kernel_row_step(family, kw, c) != kw * c;
}

// Output pixel m as (n, oy, ox), for the consecutive m the drivers walk: one step of a
// counter instead of three divisions, which cost more than gathering a small pixel.
struct pixel_cursor {
  std::int64_t OH, OW;
  std::int64_t m = -2, n = 0, oy = 0, ox = 0;
  void seek(std::int64_t to) {
    if (to == m + 1) {
      if (++ox == OW) {
        ox = 0;
        if (++oy == OH) oy = 0, ++n;
      }
    } else if (to != m) {
      ox = to % OW, oy = (to / OW) % OH, n = to / (OW * OH);
    }
    m = to;
  }
};

// Output pixel m's offset in the output (o0 + n * s0 + oy * s1 + ox * s2), one pixel or a run of
// them (run_x86_dot_on's row function).
struct pixel_offsets {
  std::int64_t OH, OW, s0, s1, s2, o0;
  std::int64_t operator()(std::int64_t m) const {
    const std::int64_t ox = m % OW, oy = (m / OW) % OH, n = m / (OW * OH);
    return o0 + n * s0 + oy * s1 + ox * s2;
  }
  // Only the offsets of pixels [m0, m0 + count) are formed: the next pixel's may not exist, and
  // its offset may overflow (libFuzzer fuzz_conv2d: an output of one image with batch stride
  // INT64_MAX, whose "next image" the loop used to step to after the last pixel).
  void fill(std::int64_t m0, std::int64_t count, std::int64_t* dst) const {
    if (count <= 0) return;
    const std::int64_t ow = OW, oh = OH, a = s0, b = s1, c = s2, first = o0;  // locals: the stores may alias the members
    std::int64_t ox = m0 % ow, oy = (m0 / ow) % oh, n = m0 / (ow * oh), off = first + n * a + oy * b + ox * c;
    for (std::int64_t i = 0;;) {
      dst[i] = off;
      if (++i == count) return;
      if (++ox == ow) {
        ox = 0;
        if (++oy == oh) oy = 0, ++n;
        off = first + n * a + oy * b;
      } else {
        off += c;
      }
    }
  }
};

// pixel_offsets of the consecutive m a driver walks, through a cursor (no division per row).
struct pixel_offset_cursor {
  pixel_offsets to;
  pixel_cursor at{to.OH, to.OW};
  std::int64_t operator()(std::int64_t m) {
    at.seek(m);
    return to.o0 + at.n * to.s0 + at.oy * to.s1 + at.ox * to.s2;
  }
};

// Output pixels as the kernels' A rows, gathered a run of one output row at a time, one kernel
// row (ky) at a time for the whole run. Two forms of row:
//  - bytes for the x86 c4 kernels (a ^ shift in dot_a_t<W>, see dot_shift in gemm.hpp): padded
//    taps hold the input zero point's byte, whose v = a - za is 0;
//  - int16 values v = a - za for the c2 kernels (AVX2, portable, NEON) and the row packers of
//    the other formats (AB = int16_t, Shift 0): padded taps hold 0.
// When a kernel row's taps are one contiguous run of input bytes (one group, dense NHWC, no
// horizontal dilation) each is one copy, and byte rows of at most 16 bytes (small C, e.g. a
// first layer's 3x3x3) one 16-byte copy; otherwise one copy per tap. Everything that does not
// depend on the pixel is computed once per call.
//
// Writes row[0, K). Byte rows may get up to 15 bytes of garbage past K: the x86 driver's rows
// have that slack, the packed weights are 0 in [K, 4 * k_groups) and the slack is never summed.
// int16 rows get exactly K values (the c2 rows' pad past an odd K stays 0).
template <class AB, int Shift, class I, class W, class O>
class pixel_gather {
  static constexpr bool values = std::is_same<AB, std::int16_t>::value;  // int16 rows (else bytes)
  static_assert(!values || Shift == 0, "pixel_gather: int16 rows take no sign flip");

 public:
  // wide: copy runs with the AVX-512 copy (the levels whose kernels are AVX-512 ones).
  pixel_gather(const window_problem<I, W, O>& p, std::int64_t c0, std::int64_t cg, bool wide)
      : g_(p.g), cg_(cg), at_{p.g.OH, p.g.OW}, wide_(wide) {
    const Layout& il = p.in.layout();
    sn_ = il.stride(0), sy_ = il.stride(1), sx_ = il.stride(2), sc_ = il.stride(3);
    zp_ = p.in_zero_point;
    pad_ = values ? AB{0} : static_cast<AB>(static_cast<std::uint8_t>(p.in_zero_point) ^ Shift);
    base_ = p.in.data() + p.in.offset() + c0 * sc_;
    end_ = p.in.data() + p.in.offset() + il.span();
    contiguous_ = sc_ == 1 && cg == g_.C && sx_ == g_.C && g_.dilation_w == 1;
    span_ = g_.KW * cg;
  }

  // Rows [m0, m0 + rows) of A (output pixels in N, OH, OW order), lda bytes apart.
  void operator()(std::int64_t m0, std::int64_t rows, AB* dst, std::int64_t lda) {
    for (std::int64_t m = 0; m < rows;) {
      at_.seek(m0 + m);
      const std::int64_t run = std::min(rows - m, g_.OW - at_.ox);
      if (contiguous_) fill_run(at_, run, dst + m * lda, lda);
      else
        for (std::int64_t j = 0; j < run; ++j) fill_taps(at_.n, at_.oy, at_.ox + j, dst + (m + j) * lda);
      m += run;
    }
  }

 private:
  // `run` pixels of output row (at.n, at.oy) from at.ox on, contiguous taps per kernel row.
  void fill_run(const pixel_cursor& at, std::int64_t run, AB* dst, std::int64_t lda) const {
    // Locals, not members: the byte stores below may alias anything, which would make the
    // compiler reload every member on every pixel.
    const std::int64_t span = span_, sx = sx_, kw = g_.KW, w = g_.W, stride_w = g_.stride_w;
    const std::int64_t ix_first = at.ox * stride_w - g_.pad_left;
    const AB pad = pad_;
    const I* const end = end_;
    const I* base = base_ + at.n * sn_;
    for (std::int64_t ky = 0; ky < g_.KH; ++ky) {
      const std::int64_t iy = at.oy * g_.stride_h - g_.pad_top + ky * g_.dilation_h;
      AB* d = dst + ky * span;
      if (iy < 0 || iy >= g_.H) {
        for (std::int64_t j = 0; j < run; ++j, d += lda) std::fill(d, d + span, pad);
        continue;
      }
      const I* row = base + iy * sy_;
      // Pixels [j_lo, j_hi) of the run have the whole kernel row inside the image.
      const std::int64_t last = w - kw - ix_first;  // the interior needs j * stride_w <= last
      const std::int64_t j_hi = last < 0 ? 0 : std::min(run, last / stride_w + 1);
      // ceil(-ix_first / stride_w) pixels start left of the image (no overflow for any padding).
      const std::int64_t j_lo = std::min(j_hi, ix_first >= 0 ? 0 : -ix_first / stride_w + (-ix_first % stride_w != 0));
      for (std::int64_t j = 0; j < j_lo; ++j) edge_row(row, ix_first + j * stride_w, d + j * lda);
      for (std::int64_t j = j_hi; j < run; ++j) edge_row(row, ix_first + j * stride_w, d + j * lda);
      if (j_lo == j_hi) continue;
      const I* src = row + (ix_first + j_lo * stride_w) * sx;
      // One interior pixel: no step (stride_w may be any int64 when the output is one pixel wide).
      const std::int64_t step = j_hi - j_lo > 1 ? stride_w * sx : 0;
      AB* di = d + j_lo * lda;
      if (values) {
        for (std::int64_t j = j_lo; j < j_hi; ++j, src += step, di += lda) put(src, di, span);
      } else if (span <= 16) {
#if defined(NPUQ_ARCH_X86_64)
        if (wide_) {  // masked loads: no read past the input's end, no test for it
          copy_short_rows_shifted_avx512<Shift, 16>(src, step * static_cast<std::int64_t>(sizeof(I)), di, lda * static_cast<std::int64_t>(sizeof(AB)),
                                                    j_hi - j_lo, span);
          continue;
        }
#endif
        for (std::int64_t j = j_lo; j < j_hi; ++j, src += step, di += lda) {
          if (end - src >= 16) copy16_shifted(src, di);
          else copy_run(src, di, span);
        }
      } else {
#if defined(NPUQ_ARCH_X86_64)
        if (wide_) {  // the run's kernel rows in one call
          copy_rows_shifted_avx512<Shift>(src, step * static_cast<std::int64_t>(sizeof(I)), di, lda * static_cast<std::int64_t>(sizeof(AB)),
                                          j_hi - j_lo, span);
          continue;
        }
#endif
        for (std::int64_t j = j_lo; j < j_hi; ++j, src += step, di += lda) copy_run(src, di, span);
      }
    }
  }

  // A kernel row that is partly outside the image: its in-image taps, the rest padding.
  void edge_row(const I* row, std::int64_t ix0, AB* d) const {
    const std::int64_t cg = cg_, kw = g_.KW;
    const std::int64_t kx_lo = std::min(kw, std::max<std::int64_t>(0, -ix0));
    const std::int64_t kx_hi = std::max(kx_lo, std::min<std::int64_t>(kw, g_.W - ix0));
    std::fill(d, d + kx_lo * cg, pad_);
    if (kx_hi > kx_lo) put(row + (ix0 + kx_lo) * sx_, d + kx_lo * cg, (kx_hi - kx_lo) * cg);
    std::fill(d + kx_hi * cg, d + span_, pad_);
  }

  // One pixel, one copy per in-image tap (any strides, groups, dilation).
  void fill_taps(std::int64_t n, std::int64_t oy, std::int64_t ox, AB* row) const {
    const conv_geometry& g = g_;
    const I* base = base_ + n * sn_;
    std::fill(row, row + g.KH * g.KW * cg_, pad_);
    for_each_tap(g, oy, ox, [&](std::int64_t ky, std::int64_t kx, std::int64_t iy, std::int64_t ix) {
      AB* dst = row + (ky * g.KW + kx) * cg_;
      const I* src = base + iy * sy_ + ix * sx_;
      if (sc_ == 1) {
        put(src, dst, cg_);
      } else if (values) {
        for (std::int64_t c = 0; c < cg_; ++c) dst[c] = static_cast<AB>(src[c * sc_] - zp_);
      } else {
        for (std::int64_t c = 0; c < cg_; ++c) dst[c] = static_cast<AB>(static_cast<std::uint8_t>(src[c * sc_]) ^ Shift);
      }
    });
  }

  void copy_run(const I* src, AB* dst, std::int64_t n) const {
#if defined(NPUQ_ARCH_X86_64)
    if (!values && wide_) return copy_shifted_avx512<Shift>(src, dst, n);
#endif
    put(src, dst, n);
  }

  // n contiguous input values as the row's: v = a - za, or the bytes with the sign flip.
  void put(const I* src, AB* dst, std::int64_t n) const {
    if constexpr (values) widen_minus_zero_point(src, zp_, dst, n);
    else copy_shifted<Shift>(src, dst, n);
  }

  // dst[0, 16) = src[0, 16) ^ Shift.
  static void copy16_shifted(const I* src, AB* dst) {
    using v16 = unsigned char __attribute__((vector_size(16)));
    v16 w;
    std::memcpy(&w, src, 16);
    if (Shift != 0) w ^= static_cast<unsigned char>(Shift);
    std::memcpy(dst, &w, 16);
  }

  const conv_geometry& g_;
  std::int64_t cg_, sn_ = 0, sy_ = 0, sx_ = 0, sc_ = 0, span_ = 0;
  pixel_cursor at_;
  const I* base_ = nullptr;
  const I* end_ = nullptr;
  AB pad_{};
  std::int32_t zp_ = 0;
  bool contiguous_ = false;
  [[maybe_unused]] bool wide_ = false;
};

}  // namespace simd_detail

// conv2d weights packed once per layer: one c2 GEMM operand per group ([KH*KW*Cg, OC/groups]).
template <class W>
class packed_conv2d_weights {
  static_assert(is_8bit_v<W>, "packed_conv2d_weights: weights must be int8_t or uint8_t");

 public:
  // Packs OHWI weights (any strides) for `groups` groups, for the kernels of `level`. On failure
  // *this is unchanged.
  status pack(const TensorView<const W>& w, std::int64_t groups, isa level = active_isa()) {
    NPUQ_RETURN_IF_ERROR(w.validate("weights"));
    if (w.rank() != 4) return {errc::invalid_shape, "weights: rank " + std::to_string(w.rank()) + ", expected 4 (O, KH, KW, I)"};
    if (groups < 1 || w.dim(0) % groups != 0)
      return {errc::invalid_argument, "groups: " + std::to_string(groups) + " does not divide the " + std::to_string(w.dim(0)) +
                                          " output channels"};
    NPUQ_RETURN_IF_ERROR(validate_quant(w.quant(), w.layout(), w.type(), "weights", false));
    if (w.quant().zero_points.size() > 1 && (w.quant().granularity != quant_granularity::per_axis || w.quant().axis != 0))
      return {errc::invalid_quantization, "weights: per-channel zero points must be along axis 0"};
    if (!simd_detail::window_fits_kernels(w.dim(1), w.dim(2), w.dim(3)))
      return {errc::unsupported, "weights: a window of " + std::to_string(w.dim(1)) + "x" + std::to_string(w.dim(2)) + "x" +
                                     std::to_string(w.dim(3)) + " values is too large to pack (the one-shot call runs it on the reference)"};
    std::vector<packed_gemm_weights<W>> packed(static_cast<std::size_t>(groups));
    const std::int64_t ocg = w.dim(0) / groups;
    for (std::int64_t g = 0; g < groups; ++g) pack_group(w, g * ocg, ocg, &packed[static_cast<std::size_t>(g)], level);
    // The direct convolution's rows form, where its steps are longer than a kernel row, takes the
    // weights packed per row.
    std::optional<packed_gemm_weights<W>> rows;
    if (simd_detail::kernel_rows_packed(level_kernels(level).gemm, groups, w.dim(1), w.dim(2), w.dim(3)))
      pack_kernel_rows(w, &rows.emplace(), level);
    groups_ = std::move(packed);
    rows_ = std::move(rows);
    layout_ = Layout::ohwi(w.dim(0), w.dim(1), w.dim(2), w.dim(3));
    quant_ = w.quant();
    return {};
  }

  std::int64_t groups() const { return static_cast<std::int64_t>(groups_.size()); }
  const packed_gemm_weights<W>& group(std::int64_t g) const { return groups_[static_cast<std::size_t>(g)]; }
  // The weights as pack_kernel_rows packs them, where the direct convolution can use them; else null.
  const packed_gemm_weights<W>* kernel_rows() const { return rows_ ? &*rows_ : nullptr; }
  // A view describing the logical OHWI weights (no data), for validation and messages.
  TensorView<const W> descriptor() const { return {nullptr, layout_, quant_}; }

  // Packs the OHWI rows [oc0, oc0 + ocg) as a [KH*KW*I, ocg] GEMM operand.
  static void pack_group(const TensorView<const W>& w, std::int64_t oc0, std::int64_t ocg, packed_gemm_weights<W>* out,
                         isa level = active_isa()) {
    const std::int64_t kw = w.dim(2), cg = w.dim(3);
    out->pack_from(
        w.dim(1) * kw * cg, ocg, zero_points_of(w, oc0, ocg),
        [&](std::int64_t k, std::int64_t n) { return w(oc0 + n, k / (cg * kw), (k / cg) % kw, k % cg); }, level);
  }

  // Packs all of the OHWI weights (one group) as a [KH*S, O] GEMM operand whose K step of S bytes
  // (kernel_row_step for the level's kernels) per kernel row ky holds that row's KW*I weights, then
  // zeros: the operand of the direct convolution that reads each kernel row's taps as one run of
  // input bytes.
  static void pack_kernel_rows(const TensorView<const W>& w, packed_gemm_weights<W>* out, isa level = active_isa()) {
    const std::int64_t oc = w.dim(0), kw = w.dim(2), c = w.dim(3), run = kw * c;
    const std::int64_t step = simd_detail::kernel_row_step(level_kernels(level).gemm, kw, c);
    out->pack_from(
        w.dim(1) * step, oc, zero_points_of(w, 0, oc),
        [&](std::int64_t k, std::int64_t n) { return k % step < run ? w(n, k / step, (k % step) / c, (k % step) % c) : W{0}; }, level);
  }

 private:
  static Quant zero_points_of(const TensorView<const W>& w, std::int64_t oc0, std::int64_t ocg) {
    Quant zq;  // only the zero points matter to the packer
    zq.granularity = quant_granularity::per_axis;
    for (std::int64_t c = 0; c < ocg; ++c) zq.zero_points.push_back(w.quant().zero_point(oc0 + c));
    return zq;
  }

  std::vector<packed_gemm_weights<W>> groups_;
  std::optional<packed_gemm_weights<W>> rows_;
  Layout layout_;
  Quant quant_;
};

namespace simd_detail {

#if defined(NPUQ_ARCH_X86_64)
// Direct convolution: an output pixel's row of the implicit GEMM is its taps' input bytes, and for
// pixels of one output row whose taps are all inside the image, the bytes of one K step sit
// sw * (pixel stride) apart in the input. On AMX that is a tile load with that stride; the AVX-512
// VNNI kernel broadcasts each pixel's 4 bytes of a step from where they lie. So such pixels run
// straight from the input (direct_tiles.hpp: one input offset per K step), without the gather
// that costs the implicit GEMM part of its time; pixels with taps over the padding are gathered as
// they are (padded taps: the zero point's byte), a tile at a time.
// Two forms:
//  - taps (AMX): groups of a multiple of 64 channels, each K step 64 channels of one tap, the
//    weights packed as for the implicit GEMM;
//  - rows: one group whose kernel row of taps is one run of contiguous bytes (pixels dense, no
//    horizontal dilation), each K step one kernel row, read as kernel_row_step bytes: on AMX rows
//    of at most 64 bytes (3x3x16, 1x1x32) read as 64 whose tail (the next pixels' bytes) meets
//    zero weights, on AVX-512 VNNI rows of whole groups of 4 bytes at strides of 2 or more
//    (kernel_rows_fit).
// Both take channels contiguous in input and output and what direct_output_ok asks; the results
// are the implicit GEMM's (the same sums).
enum class direct_conv_form { none, taps, rows };

template <class I, class W, class O>
direct_conv_form direct_conv_form_of(const gemm_kernel_set<W>& kern, const conv2d_problem<I, W, O>& p, const packed_gemm_weights<W>& w,
                                     const tile_output_stage& st) {
  const Layout& il = p.in.layout();
  const bool amx = kern.family == kernel_family::amx_int8;
  if ((!amx && kern.family != kernel_family::avx512_vnni) || kern.output != kernel_family::avx512_vnni || !direct_output_ok<O>(w, st) ||
      il.stride(3) != 1 || p.out.layout().stride(3) != 1)
    return direct_conv_form::none;
  if (amx && p.in_per_group % 64 == 0) return direct_conv_form::taps;
  if (il.stride(2) == p.g.C && p.g.dilation_w == 1 && kernel_rows_fit(kern.family, p.groups, p.g.KH, p.g.KW, p.g.C, p.g.stride_w))
    return direct_conv_form::rows;
  return direct_conv_form::none;
}

// The direct convolution's scratch: per part (one per output row range) a tile of gathered
// pixels, their output offsets, a block of interior tiles' output offsets and the K steps' input
// offsets.
struct direct_conv_layout {
  std::int64_t parts, step, steps, lda, tile_rows, block_rows;
  std::size_t bytes;
  // tile_rows, block_tiles: the tiles' rows and how many whole tiles go in one call.
  template <class I, class W, class O>
  direct_conv_layout(int threads, kernel_family family, const conv2d_problem<I, W, O>& p, direct_conv_form form, int tile_rows_,
                     int block_tiles)
      : parts(std::max<std::int64_t>(1, std::min<std::int64_t>(threads, p.g.N * p.g.OH))),
        step(form == direct_conv_form::rows ? kernel_row_step(family, p.g.KW, p.g.C) : 64),
        steps(form == direct_conv_form::rows ? p.g.KH : p.g.KH * p.g.KW * (p.in_per_group / 64)),
        tile_rows(tile_rows_),
        block_rows(std::int64_t{tile_rows_} * block_tiles) {
    lda = step * steps;  // the K of the form's weights
    scratch_carver size;
    carve<std::int8_t>(size);
    bytes = size.used;
  }
  template <class I>
  struct buffers {
    I* edge_a;
    std::int64_t *edge_off, *offs, *a_steps;
  };
  template <class I>
  buffers<I> carve(scratch_carver& c) const {
    buffers<I> b{};
    b.edge_a = c.take<I>(tile_rows * lda + 64);
    b.edge_off = c.take<std::int64_t>(tile_rows);
    b.offs = c.take<std::int64_t>(block_rows);
    b.a_steps = c.take<std::int64_t>(steps);
    return b;
  }
};

// The direct convolution's tiles for kern's family, one per K step's worth of A bytes.
constexpr int direct_conv_block_tiles(kernel_family family) { return family == kernel_family::amx_int8 ? 1 : 8; }

// `w` the weights packed for `form` (the rows form's step: lay.step), `st` the stage for the bytes
// the tiles multiply (dot_stages::direct), `tiles` the family's direct_tiles.
template <class I, class W, class O, class Tiles>
void run_conv2d_group_direct_with(int threads, const gemm_kernel_set<W>& kern, const conv2d_problem<I, W, O>& p, std::int64_t grp,
                                  direct_conv_form form, const Tiles& tiles, driver_scratch& scratch) {
  constexpr int tr = Tiles::tile_rows;
  const conv_geometry& g = p.g;
  const std::int64_t cg = p.in_per_group, oc0 = grp * p.out_per_group;
  const Layout& il = p.in.layout();
  const Layout& ol = p.out.layout();
  const std::int64_t sn = il.stride(0), sy = il.stride(1), sx = il.stride(2);
  const std::int64_t so0 = ol.stride(0), so1 = ol.stride(1), so2 = ol.stride(2), o0 = p.out.offset() + oc0 * ol.stride(3);
  const I* in0 = p.in.data() + p.in.offset() + grp * cg;
  const direct_conv_layout lay(threads, kern.family, p, form, tr, direct_conv_block_tiles(kern.family));
  const bool rows_form = form == direct_conv_form::rows;
  const std::int64_t chunks = std::max<std::int64_t>(1, cg / 64), steps = lay.steps, lda = lay.lda, parts = lay.parts, out_rows = g.N * g.OH;
  // K step s: kernel row s (rows), or tap s / chunks (ky, kx) and channels 64 * (s % chunks) on.
  const auto step_offset = [&](std::int64_t s) {
    if (rows_form) return s * g.dilation_h * sy;
    const std::int64_t tap = s / chunks, ky = tap / g.KW, kx = tap % g.KW;
    return ky * g.dilation_h * sy + kx * g.dilation_w * sx + 64 * (s % chunks);
  };
  const std::int64_t tap_reach = step_offset(steps - 1) + lay.step;  // bytes a pixel's row reads from its first tap on
  // Output columns [ox_lo, ox_hi) have every tap inside the image (if the row has).
  const std::int64_t ox_lo = std::min(g.OW, g.pad_left <= 0 ? 0 : (g.pad_left + g.stride_w - 1) / g.stride_w);
  const std::int64_t last = g.W - 1 - (g.KW - 1) * g.dilation_w + g.pad_left;  // ox * stride_w <= last
  const std::int64_t ox_hi = std::max(ox_lo, last < 0 ? 0 : std::min(g.OW, last / g.stride_w + 1));
  const auto row_inside = [&g](std::int64_t oy) {
    const std::int64_t iy = oy * g.stride_h - g.pad_top;
    return iy >= 0 && iy + (g.KH - 1) * g.dilation_h < g.H;
  };
  // From one output pixel's taps to the next's. Where that overflows, no two pixels of a row have
  // all their taps inside the image (stride_w < W would keep it below the input's span), so every
  // interior run is one pixel and 0 serves (the tile's other rows, dropped, read the same bytes).
  std::int64_t pitch = 0;
  if (!checked_mul(g.stride_w, sx, &pitch)) pitch = 0;
  // Output row oy + 1 starts in the input where row oy's pixel OW would: rows continue one another.
  std::int64_t row_step = 0, pixel_row = 0;
  const bool flat = pitch != 0 && checked_mul(g.stride_h, sy, &row_step) && checked_mul(g.OW, pitch, &pixel_row) && row_step == pixel_row;
  scratch.reserve(parts, lay.bytes);
  const pixel_offsets out_at{g.OH, g.OW, so0, so1, so2, o0};
  const pixel_gather<I, 0, I, W, O> gather0(p, grp * cg, cg, true);
  detail::parallel_parts(threads, parts, [&](std::int64_t part) {
    scratch_carver c{scratch.part(part)};
    const auto buf = lay.carve<I>(c);
    for (std::int64_t s = 0; s < steps; ++s) buf.a_steps[s] = step_offset(s);
    std::decay_t<decltype(gather0)> gather = gather0;
    int edges = 0;
    const auto flush_edges = [&] {
      if (edges == 0) return;
      // All rows of the buffer (rows past `edges` hold earlier pixels' bytes, or none yet).
      tiles.run(edges, buf.edge_off, tr, buf.edge_a, nullptr, lda, steps);
      edges = 0;
    };
    const I pad = static_cast<I>(p.in_zero_point);
    const auto add_edge = [&](std::int64_t n, std::int64_t oy, std::int64_t ox) {
      I* row = buf.edge_a + edges * lda;
      if (rows_form) {  // kernel row ky's taps at step * ky, padded taps the zero point's byte, the rest too
        std::fill(row, row + lda, pad);
        // The taps inside the image, [kx_lo, kx_hi) of each kernel row: one run of bytes (pixels dense).
        const std::int64_t iy0 = oy * g.stride_h - g.pad_top, ix0 = ox * g.stride_w - g.pad_left;
        const std::int64_t kx_lo = std::min(g.KW, std::max<std::int64_t>(0, -ix0));
        const std::int64_t kx_hi = std::max(kx_lo, std::min<std::int64_t>(g.KW, g.W - ix0));
        const auto bytes = static_cast<std::size_t>((kx_hi - kx_lo) * cg) * sizeof(I);
        for (std::int64_t ky = 0; ky < g.KH && bytes != 0; ++ky) {
          const std::int64_t iy = iy0 + ky * g.dilation_h;
          if (iy >= 0 && iy < g.H) std::memcpy(row + lay.step * ky + kx_lo * cg, in0 + n * sn + iy * sy + (ix0 + kx_lo) * sx, bytes);
        }
      } else {
        gather((n * g.OH + oy) * g.OW + ox, 1, row, lda);
      }
      buf.edge_off[edges] = o0 + n * so0 + oy * so1 + ox * so2;
      if (++edges == tr) flush_edges();
    };
    const std::int64_t r_lo = out_rows * part / parts, r_hi = out_rows * (part + 1) / parts;
    // Interior pixels first, in runs of output rows whose taps are all inside the image: one row,
    // or, where the rows continue one another in the input (flat), consecutive rows of an image as
    // one sequence whose tiles also cover the edge pixels between the rows (results that the edge
    // pass below, in this same part, overwrites).
    for (std::int64_t r = r_lo; r < r_hi;) {
      const std::int64_t n = r / g.OH, oy = r % g.OH;
      if (!row_inside(oy) || ox_lo == ox_hi) {
        ++r;
        continue;
      }
      std::int64_t re = r + 1;
      if (flat)
        while (re < r_hi && re % g.OH != 0 && row_inside(re % g.OH)) ++re;
      const std::int64_t count = (re - 1 - r) * g.OW + (ox_hi - ox_lo);  // pixels from (oy, ox_lo) on
      const std::int64_t row0 = n * sn + (oy * g.stride_h - g.pad_top) * sy;  // from in0
      for (std::int64_t q0 = 0; q0 < count; q0 += lay.block_rows) {
        const std::int64_t rows = std::min<std::int64_t>(lay.block_rows, count - q0);
        out_at.fill((n * g.OH + oy) * g.OW + ox_lo + q0, rows, buf.offs);
        const std::int64_t a_at = row0 + ((ox_lo + q0) * g.stride_w - g.pad_left) * sx;  // past the row's end: the next rows (flat)
        const I* a = in0 + a_at;
        // A tile reads all its rows (pixels past the run: results dropped), which must stay inside
        // the input (whose span counts from channel 0, grp * cg before in0): `fit` pixels from a on
        // do. All of them in the taps form, whose reads end at the last tap; in the rows form a
        // pixel's last step reads past its taps, so the last pixels of an input may have to be
        // gathered instead. AMX tiles of fewer rows read only theirs.
        const std::int64_t room = il.span() - (grp * cg + a_at + tap_reach);
        const std::int64_t fit = room < 0 ? 0 : pitch == 0 ? lay.block_rows : std::min<std::int64_t>(lay.block_rows, room / pitch + 1);
        const std::int64_t whole = std::min(rows / tr, fit / tr);  // whole tiles run in place
        if (whole > 0) tiles.run_tiles(whole, buf.offs, a, tr * pitch, buf.a_steps, pitch, steps);
        std::int64_t done = whole * tr;
        if (done < rows && done + tr <= fit) {  // the run's last, partial tile
          tiles.run(static_cast<int>(rows - done), buf.offs + done, tr, a + done * pitch, buf.a_steps, pitch, steps);
          done = rows;
        } else if (Tiles::partial_rows && done < rows && fit > done) {
          const int part_rows = static_cast<int>(std::min(rows, fit) - done);
          tiles.run(part_rows, buf.offs + done, part_rows, a + done * pitch, buf.a_steps, pitch, steps);
          done += part_rows;
        }
        for (std::int64_t i = done; i < rows; ++i) {
          const std::int64_t pos = ox_lo + q0 + i;
          add_edge(n, oy + pos / g.OW, pos % g.OW);
        }
      }
      r = re;
    }
    for (std::int64_t r = r_lo; r < r_hi; ++r) {  // the edge pixels, gathered
      const std::int64_t n = r / g.OH, oy = r % g.OH;
      const bool inside = row_inside(oy);
      const std::int64_t lo = inside ? ox_lo : g.OW, hi = inside ? ox_hi : g.OW;
      for (std::int64_t ox = 0; ox < lo; ++ox) add_edge(n, oy, ox);
      for (std::int64_t ox = hi; ox < g.OW; ++ox) add_edge(n, oy, ox);
    }
    flush_edges();
    if (kern.x86_done != nullptr) kern.x86_done();
  });
}

// The direct convolution of group grp with kern's family's tiles: `w` the weights packed for
// `form`, `st` the stage dot_stages::direct.
template <class I, class W, class O>
void run_conv2d_group_direct(int threads, const gemm_kernel_set<W>& kern, const conv2d_problem<I, W, O>& p, std::int64_t grp,
                             direct_conv_form form, const packed_gemm_weights<W>& w, const tile_output_stage& st, driver_scratch& scratch) {
  if (kern.family == kernel_family::amx_int8) {
    run_conv2d_group_direct_with(threads, kern, p, grp, form, amx_direct_tiles<I, W, O>(w, st, p.out), scratch);
    return;
  }
  using kernel = vnni_tile_kernel<dot_shift<I, W>()>;
  const std::int64_t groups = kernel_row_step(kern.family, p.g.KW, p.g.C) / 4;
  run_conv2d_group_direct_with(threads, kern, p, grp, form, direct_tiles<I, W, O, kernel>(w, st, p.out, kernel{groups}), scratch);
}
#endif

// The stages run_conv2d_group takes for group weights w.
template <class I, class W, class O>
dot_stages make_conv2d_stages(const gemm_kernel_set<W>& kern, const conv2d_problem<I, W, O>& p, const tile_output_stage& stage,
                              const packed_gemm_weights<W>& w) {
  bool direct = false;
#if defined(NPUQ_ARCH_X86_64)
  direct = direct_conv_form_of(kern, p, w, stage) != direct_conv_form::none;
#endif
  return make_dot_stages<I>(kern, stage, w, p.in_zero_point, direct);
}

// Whether a group of p with weights w (dot_stages `stages`) would run the direct convolution's rows
// form with weights packed per kernel row (which the caller then passes to run_conv2d_group).
template <class I, class W, class O>
bool wants_kernel_rows(const gemm_kernel_set<W>& kern, const conv2d_problem<I, W, O>& p, const packed_gemm_weights<W>& w,
                       const dot_stages& stages) {
#if defined(NPUQ_ARCH_X86_64)
  return stages.direct && direct_conv_form_of(kern, p, w, stages.gathered) == direct_conv_form::rows &&
         kernel_rows_packed(kern.family, p.groups, p.g.KH, p.g.KW, p.g.C);
#else
  (void)kern, (void)p, (void)w, (void)stages;
  return false;
#endif
}

// Sizes `scratch` for every path run_conv2d_group can take on p's groups (of weights like w), so
// that runs allocate nothing.
template <class I, class W, class O>
void reserve_conv2d_scratch(int threads, const gemm_kernel_set<W>& kern, const conv2d_problem<I, W, O>& p, const packed_gemm_weights<W>& w,
                            driver_scratch& scratch) {
  if (is_x86_dot(kern)) {
    const x86_dot_plan<W> plan(threads, kern, p.g.N * p.g.OH * p.g.OW, w);
    scratch.reserve(plan.split.parts, plan.part_bytes);
#if defined(NPUQ_ARCH_X86_64)
    const bool amx = kern.family == kernel_family::amx_int8;
    const int tr = amx ? amx_tile_kernel::tile_rows : vnni_tile_kernel<0>::tile_rows, block = direct_conv_block_tiles(kern.family);
    if (amx && p.in_per_group % 64 == 0) {
      const direct_conv_layout taps(threads, kern.family, p, direct_conv_form::taps, tr, block);
      scratch.reserve(taps.parts, taps.bytes);
    }
    if (kernel_rows_fit(kern.family, p.groups, p.g.KH, p.g.KW, p.g.C, p.g.stride_w)) {
      const direct_conv_layout rows(threads, kern.family, p, direct_conv_form::rows, tr, block);
      scratch.reserve(rows.parts, rows.bytes);
    }
#endif
  } else {
    const c2_plan<W> plan(threads, kern, p.g.N * p.g.OH * p.g.OW, w);
    scratch.reserve(plan.split.parts, plan.part_bytes);
  }
}

// Group `grp` of a conv2d problem: `w` the group's weights in kern's format, `st` its stages,
// `kernel_rows` null or the weights as pack_kernel_rows packs them (the rows form of the direct
// convolution runs only with them where wants_kernel_rows). True when it ran the direct convolution.
template <class I, class W, class O>
bool run_conv2d_group(int threads, const gemm_kernel_set<W>& kern, const conv2d_problem<I, W, O>& p, std::int64_t grp,
                      const packed_gemm_weights<W>& w, const dot_stages& stages, driver_scratch& scratch,
                      const packed_gemm_weights<W>* kernel_rows = nullptr) {
  const conv_geometry& g = p.g;
  const std::int64_t cg = p.in_per_group, ocg = p.out_per_group, M = g.N * g.OH * g.OW, oc0 = grp * ocg;
  const tile_output_stage& st = stages.gathered;
#if defined(NPUQ_ARCH_X86_64)
  const direct_conv_form form = stages.direct ? direct_conv_form_of(kern, p, w, st) : direct_conv_form::none;
  if (form == direct_conv_form::rows && !kernel_rows_packed(kern.family, p.groups, g.KH, g.KW, g.C)) kernel_rows = &w;
  if (form == direct_conv_form::taps || (form == direct_conv_form::rows && kernel_rows != nullptr)) {
    run_conv2d_group_direct(threads, kern, p, grp, form, form == direct_conv_form::taps ? w : *kernel_rows, *stages.direct, scratch);
    return true;
  }
#else
  (void)kernel_rows;
#endif
  if (is_x86_dot(kern)) {
    using AB = dot_a_t<W>;
    constexpr int shift = dot_shift<I, W>();
    const Layout& ol = p.out.layout();
    const std::int64_t so[4] = {ol.stride(0), ol.stride(1), ol.stride(2), ol.stride(3)}, o0 = p.out.offset() + oc0 * so[3];
    const pixel_gather<AB, shift, I, W, O> gather(p, grp * cg, cg, kern.output == kernel_family::avx512_vnni);
    run_x86_dot_on(threads, kern, M, w, st, oc0, dot_offset<I, W>(p.in_zero_point), gather, p.out,
                   pixel_offsets{g.OH, g.OW, so[0], so[1], so[2], o0}, so[3], scratch);
    return false;
  }
  // Rows of int16 values, a block at a time; each output row's offset from a cursor (consecutive
  // rows: no division).
  const Layout& ol = p.out.layout();
  const pixel_offset_cursor out_at{{g.OH, g.OW, ol.stride(0), ol.stride(1), ol.stride(2), p.out.offset() + oc0 * ol.stride(3)}};
  run_c2_on(
      threads, kern, M, w, st, oc0, pixel_gather<std::int16_t, 0, I, W, O>(p, grp * cg, cg, false),
      [&, at = out_at](std::int64_t m, std::int64_t n0, std::int64_t cols, const std::int32_t* v) mutable {
        store_row(p.out, at(m) + n0 * ol.stride(3), ol.stride(3), cols, v);
      },
      scratch,
      byte_rows_if<O>(ol.stride(3) == 1,
                      [&, at = out_at](std::int64_t m) mutable { return reinterpret_cast<unsigned char*>(p.out.data() + at(m)); }));
  return false;
}

// conv2d on the GEMM kernels; `packed` null: the weights are packed here, one group at a time.
template <class I, class W, class O>
void run_conv2d(const simd_backend& be, const conv2d_problem<I, W, O>& p, const packed_conv2d_weights<W>* packed) {
  const gemm_kernel_set<W> kern = gemm_kernels<W>(be.level());
  const std::int64_t ocg = p.out_per_group;
  packed_gemm_weights<W> own, converted, own_rows;
  driver_scratch scratch;
  bool direct = false;
  for (std::int64_t grp = 0; grp < p.groups; ++grp) {
    const std::int64_t oc0 = grp * ocg;
    const tile_output_stage stage(p.stage, p.bias, ocg, oc0);
    if (packed == nullptr) packed_conv2d_weights<W>::pack_group(p.w, oc0, ocg, &own, be.level());
    const packed_gemm_weights<W>& w = weights_in_format(packed != nullptr ? packed->group(grp) : own, kern.format, converted);
    const dot_stages stages = make_conv2d_stages(kern, p, stage, w);
    const packed_gemm_weights<W>* rows = nullptr;  // the rows form's weights, where it applies
    if (wants_kernel_rows(kern, p, w, stages)) {
      if (packed != nullptr) {
        rows = packed->kernel_rows();
      } else {
        packed_conv2d_weights<W>::pack_kernel_rows(p.w, &own_rows, be.level());
        rows = &own_rows;
      }
      if (rows != nullptr && rows->format() != kern.format) rows = nullptr;
    }
    direct = run_conv2d_group(be.thread_count(), kern, p, grp, w, stages, scratch, rows) || direct;
  }
  detail::simd_last_kernel_storage() = gemm_kernel_name(direct ? "conv2d_direct" : "conv2d", p.in.type(), p.w.type(), kern);
}

}  // namespace simd_detail

template <class I, class W, class O>
status execute(const simd_backend& be, const conv2d_problem<I, W, O>& p) {
  if (!simd_detail::wraps_within_32_bits(p.stage.numerics) || !simd_detail::window_fits_kernels(p.g.KH, p.g.KW, p.in_per_group)) {
    NPUQ_RETURN_IF_ERROR(execute(scalar, p));
    detail::simd_last_kernel_storage() = "conv2d_reference";
    return {};
  }
  simd_detail::run_conv2d(be, p, static_cast<const packed_conv2d_weights<W>*>(nullptr));
  return {};
}

// Packs conv2d weights once per layer for `conv2d(simd, params, input, packed, bias, out)`.
template <class XW>
status pack_conv2d_weights(const simd_backend& be, const conv2d_params& params, const XW& weights,
                           packed_conv2d_weights<detail::element_of<XW>>* out) {
  return out->pack(input_view(weights), params.groups, be.level());
}

// conv2d against packed weights: validated exactly like the unpacked call.
template <class XI, class W, class XBias, class XO>
status try_conv2d(const simd_backend& be, const conv2d_params& params, const XI& input, const packed_conv2d_weights<W>& w,
                  const XBias& bias, const XO& out) {
  conv2d_problem<detail::element_of<XI>, W, detail::element_of<XO>> problem;
  if (params.groups != w.groups())
    return {errc::invalid_argument, "groups: params say " + std::to_string(params.groups) + ", the weights were packed for " +
                                        std::to_string(w.groups())};
  NPUQ_RETURN_IF_ERROR(make_conv2d_problem(params, input_view(input), w.descriptor(), input_view(bias), output_view(out), &problem, true));
  if (!simd_detail::wraps_within_32_bits(problem.stage.numerics))
    return {errc::unsupported, "params: packed weights need an accumulator that wraps at <= 32 bits; pass unpacked weights to "
                               "run saturating or wider accumulators on the reference path"};
  simd_detail::run_conv2d(be, problem, &w);
  return {};
}

template <class XI, class W, class XBias, class XO>
void conv2d(const simd_backend& be, const conv2d_params& params, const XI& input, const packed_conv2d_weights<W>& w, const XBias& bias,
            const XO& out) {
  throw_if_error(try_conv2d(be, params, input, w, bias, out));
}

}  // namespace npuq
