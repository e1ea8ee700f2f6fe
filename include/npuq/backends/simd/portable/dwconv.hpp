// Portable depthwise conv2d kernel, and the packed layout every depthwise kernel shares.
//
// The depthwise kernels work on blocks of 16 output channels and walk the taps in pairs, so the
// x86 kernels can multiply with vpmaddwd (exact 16 x 16 -> 32-bit products, summed pairwise,
// never saturating). This header defines that packed layout once, plus a plain C++ kernel on it
// that any compiler vectorizes for its baseline ISA: the fallback when no vector level is
// available or allowed, and the template the intrinsic kernels follow.
//
// Packed weights, per block of 16 channels: for each pair of taps (2q, 2q + 1) 32 int16 values,
// w[tap, ch] - w_zp[ch], at dw_lane(ch) (tap 2q) and dw_lane(ch) + 1 (tap 2q + 1); an odd last
// tap is paired with zeros. dw_lane follows vpunpcklwd / vpunpckhwd of two vectors of 16 int16
// channels: the first 16 values hold channels 0-3 and 8-11, the next 16 channels 4-7 and 12-15.
// The per-channel start value of the sum (bias - in_zp * sum of the block's weights, modulo
// 2^32) is stored at dw_acc_lane(ch), the same order as the int32 sums in the two accumulators.
//
// Inputs are read raw (no zero point subtracted): padded taps point at a row holding the input
// zero point, and the start value removes in_zp * sum(w) again, so every output gets
// sum (x - in_zp) * (w - w_zp) + bias modulo 2^32, the reference's wrapped sum.
#pragma once

#include <cstdint>
#include <cstring>

namespace npuq {
namespace simd_detail {

constexpr int dw_block = 16;  // channels per block

constexpr int dw_lane(int ch) { return ((ch / 4) % 2) * 16 + (ch / 8) * 8 + (ch % 4) * 2; }
constexpr int dw_acc_lane(int ch) { return ((ch / 4) % 2) * 8 + (ch / 8) * 4 + ch % 4; }

// One block of 16 channels for `npix` output pixels: pixel p's tap t reads from
// ind[p * taps + t] + c0 (channels c0 .. c0 + nch - 1, nch <= 16), and its 16 int32 sums go to
// acc + p * acc_stride in channel order (all 16 are written; lanes >= nch keep their start value
// and are never used). KT > 0 fixes the tap count at compile time, so the tap loop unrolls.
//
// Taps outside, pixels inside: each tap's 16 weights are put back in channel order once (the
// packed order interleaves them for vpmaddwd) and the sums live in acc, so the channel loop is 16
// independent lanes of fixed length, which the compiler vectorizes (SSE2, NEON).
template <int KT, class I>
void dwconv_row_portable(std::int64_t npix, std::int64_t taps, const I* const* ind, std::int64_t c0, int nch, const std::int16_t* w,
                         const std::int32_t* start, std::int32_t* acc, std::int64_t acc_stride) {
  const std::int64_t T = KT > 0 ? KT : taps;
  for (std::int64_t p = 0; p < npix; ++p)
    for (int j = 0; j < dw_block; ++j) acc[p * acc_stride + j] = start[dw_acc_lane(j)];
  for (std::int64_t t = 0; t < T; ++t) {
    const std::int16_t* wt = w + (t / 2) * 2 * dw_block + (t % 2);
    std::int32_t wv[dw_block];
    for (int j = 0; j < dw_block; ++j) wv[j] = wt[dw_lane(j)];
    for (std::int64_t p = 0; p < npix; ++p) {
      const I* x = ind[p * T + t] + c0;
      I padded[dw_block] = {};
      if (nch < dw_block) x = static_cast<const I*>(std::memcpy(padded, x, static_cast<std::size_t>(nch) * sizeof(I)));
      std::int32_t* a = acc + p * acc_stride;
      // Wrapping int32 sums (as uint32: the reference's sums wrap modulo 2^32).
      for (int j = 0; j < dw_block; ++j)
        a[j] = static_cast<std::int32_t>(static_cast<std::uint32_t>(a[j]) +
                                         static_cast<std::uint32_t>(static_cast<std::int32_t>(x[j]) * wv[j]));
    }
  }
}

}  // namespace simd_detail
}  // namespace npuq
