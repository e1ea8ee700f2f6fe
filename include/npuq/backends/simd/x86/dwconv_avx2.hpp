// AVX2 depthwise conv2d: the row kernel on the packed layout of portable/dwconv.hpp, and a
// vectorized output stage.
//
// Row kernel: 16 channels per block. Per tap, 16 input bytes are widened to int16 (vpmovzxbw /
// vpmovsxbw); two taps are interleaved (vpunpcklwd / vpunpckhwd) and multiplied with the packed
// (w - w_zp) pairs by vpmaddwd, which sums two exact 32-bit products and never saturates. The
// 3x3 and 5x5 instances have the tap count fixed, so the tap loop unrolls and the 3x3 weights
// (10 vectors) stay in registers across the pixels of a row.
//
// Output stage: the requantization of the tflite (double rounding) and fp32 profiles and the raw
// int32 output run on the accumulators in registers, 8 channels at a time, integer operation for
// integer operation the same as npuq::requantize (see dw_requant_stage); the single-rounding q31
// profiles, and outputs whose channels are not contiguous, take the int32 sums through the scalar
// output stage instead. Everything is compiled with a target attribute, so the header works in a
// program built without -mavx2; it only runs after CPU detection says so.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "npuq/backends/simd/portable/dwconv.hpp"
#include "npuq/backends/simd/x86/gemm_c2_avx2.hpp"
#include "npuq/ops/output_stage.hpp"

#if defined(NPUQ_ARCH_X86_64)
#include "npuq/backends/simd/x86/intrin.hpp"

namespace npuq {
namespace simd_detail {

template <bool Tail, class I>
NPUQ_TARGET_AVX2 inline __m256i dw_load_avx2(const I* x, int nch) {
  if constexpr (Tail) {
    alignas(16) I buf[dw_block] = {};
    std::memcpy(buf, x, static_cast<std::size_t>(nch));
    return widen_avx2<I>(_mm_load_si128(reinterpret_cast<const __m128i*>(buf)));
  } else {
    (void)nch;
    return widen_avx2<I>(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x)));
  }
}

// The output stages a row kernel hands its two accumulators to (a0: channels 0-3 | 8-11, a1:
// channels 4-7 | 12-15 of the block).

// Stores the int32 sums in channel order to acc + p * stride (for the scalar output stage).
struct dw_acc_stage {
  std::int32_t* acc;
  std::int64_t stride;
  NPUQ_TARGET_AVX2 void operator()(std::int64_t p, __m256i a0, __m256i a1, int) const {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + p * stride), _mm256_permute2x128_si256(a0, a1, 0x20));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(acc + p * stride + 8), _mm256_permute2x128_si256(a0, a1, 0x31));
  }
};

// The output stage of one call, laid out per channel for the vector code: block b's parameters
// at b * 16 + dw_acc_lane(j), the accumulators' order.
struct dw_requant_table {
  enum class kind : std::uint8_t { raw, q31_double, fp32 };
  kind k = kind::raw;
  rounding mode = rounding::half_even;
  bool any_left = false;  // some q31 channel shifts left
  int wrap_shift = 0;     // 32 - accumulator bits
  std::int32_t zero_point = 0, qlo = 0, qhi = 0;  // clamp bounds before the zero point is added
  std::vector<std::int32_t> multiplier, left, right, mask, half_mask;  // half_mask = mask >> 1
  std::vector<float> scale;

  // False when the profile has no vector output stage here (single-rounding q31).
  bool build(const output_stage& st, std::int64_t channels) {
    wrap_shift = 32 - st.numerics.acc.bits;
    mode = st.numerics.mode;
    if (st.raw) {
      k = kind::raw;
      return true;
    }
    const std::size_t n = static_cast<std::size_t>((channels + dw_block - 1) / dw_block * dw_block);
    zero_point = st.zero_point;
    qlo = st.lo - st.zero_point;
    qhi = st.hi - st.zero_point;
    const auto at = [](std::int64_t c) {
      return static_cast<std::size_t>(c / dw_block * dw_block + dw_acc_lane(static_cast<int>(c % dw_block)));
    };
    if (st.numerics.format == multiplier_format::fp32) {
      k = kind::fp32;
      scale.assign(n, 1.0f);
      for (std::int64_t c = 0; c < channels; ++c) scale[at(c)] = st.at(c).scale;
      return true;
    }
    if (st.numerics.mode != rounding::tflite_double) return false;
    k = kind::q31_double;
    multiplier.assign(n, 0);
    left.assign(n, 0);
    right.assign(n, 0);
    mask.assign(n, 0);
    half_mask.assign(n, 0);
    for (std::int64_t c = 0; c < channels; ++c) {
      const requant_channel& r = st.at(c);
      const std::size_t i = at(c);
      multiplier[i] = r.multiplier;
      left[i] = r.shift > 0 ? r.shift : 0;
      right[i] = r.shift > 0 ? 0 : -r.shift;
      mask[i] = static_cast<std::int32_t>((std::int64_t{1} << right[i]) - 1);
      half_mask[i] = mask[i] >> 1;
      any_left = any_left || left[i] > 0;
    }
    return true;
  }
};

// Requantizes, clamps and stores a block's 16 channels of pixel p at out + p * stride, exactly
// as npuq::requantize does (comments below). K, the table kind, is resolved at compile time, and
// so is the fp32 rounding when Even (ties to even, the onnx profile's); the other fp32 roundings,
// left shifts and accumulator wrapping are predictable branches on the stage's copy of the table.
// (Each compile-time choice multiplies the kernels instantiated per tap count, input and output
// type: resolving only the hot ones keeps the build time in check.)
template <class O, dw_requant_table::kind K, bool Even>
struct dw_requant_stage {
  // Copies of the table's scalars and pointers at channel c0, so that the byte stores to `out`
  // (which may alias anything) do not force them to be reloaded.
  O* out;
  std::int64_t stride;
  const std::int32_t *multiplier, *left, *right, *mask, *half_mask;
  const float* scale;
  std::int32_t zero_point, qlo, qhi;
  int wrap_shift;
  rounding mode;
  bool any_left;

  template <class T>
  static const T* from(const std::vector<T>& v, std::int64_t c0) {  // tables a kind does not use are empty
    return v.empty() ? nullptr : v.data() + c0;
  }
  dw_requant_stage(O* o, std::int64_t s, const dw_requant_table* t, std::int64_t c0)
      : out(o), stride(s), multiplier(from(t->multiplier, c0)), left(from(t->left, c0)), right(from(t->right, c0)),
        mask(from(t->mask, c0)), half_mask(from(t->half_mask, c0)), scale(from(t->scale, c0)), zero_point(t->zero_point),
        qlo(t->qlo), qhi(t->qhi), wrap_shift(t->wrap_shift), mode(t->mode), any_left(t->any_left) {}

  NPUQ_TARGET_AVX2 __m256i requant8(__m256i v, std::int64_t c) const {
    using kind = dw_requant_table::kind;
    if (wrap_shift > 0) {  // wrap_to_bits: two's complement at the accumulator width
      const __m128i s = _mm_cvtsi32_si128(wrap_shift);
      v = _mm256_sra_epi32(_mm256_sll_epi32(v, s), s);
    }
    if constexpr (K == kind::raw) {
      return v;
    } else {
      __m256i y;
      if constexpr (K == kind::q31_double) {
        // wrapping_shift_left, then srdhm: (a * m + nudge) / 2^31 truncated equals
        // floor((a * m + 2^30) / 2^31) for both signs of a * m (m >= 0, so never
        // INT32_MIN * INT32_MIN); bits 31..62 of the 64-bit sum are the int32 result.
        __m256i x = v;
        if (any_left) x = _mm256_sllv_epi32(v, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(left + c)));
        const __m256i m = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(multiplier + c));
        const __m256i half = _mm256_set1_epi64x(std::int64_t{1} << 30);
        const __m256i pe = _mm256_add_epi64(_mm256_mul_epi32(x, m), half);
        const __m256i po = _mm256_add_epi64(_mm256_mul_epi32(_mm256_srli_epi64(x, 32), _mm256_srli_epi64(m, 32)), half);
        const __m256i s = _mm256_blend_epi32(_mm256_srli_epi64(pe, 31), _mm256_slli_epi64(po, 1), 0xAA);
        // rounding_divide_by_pot: floor shift, plus 1 when the remainder exceeds the threshold.
        const __m256i rs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(right + c));
        const __m256i mk = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(mask + c));
        const __m256i rem = _mm256_and_si256(s, mk);
        const __m256i thr = _mm256_add_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(half_mask + c)), _mm256_srli_epi32(s, 31));
        y = _mm256_sub_epi32(_mm256_srav_epi32(s, rs), _mm256_cmpgt_epi32(rem, thr));
        // Clamp to [lo - zp, hi - zp] before adding zp: the same as adding in int64, then clamping.
        y = _mm256_min_epi32(_mm256_max_epi32(y, _mm256_set1_epi32(qlo)), _mm256_set1_epi32(qhi));
      } else {
        // (float)acc * scale, each rounded to float as in requantize; rounding that float to an
        // integer is exact, so doing it in float equals doing it on the double.
        const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(v), _mm256_loadu_ps(scale + c));
        __m256 q;
        if (Even || mode == rounding::half_even) {
          q = _mm256_round_ps(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        } else if (mode == rounding::floor) {
          q = _mm256_round_ps(f, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        } else if (mode == rounding::truncate) {
          q = _mm256_round_ps(f, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        } else if (mode == rounding::half_up) {  // floor, +1 when the exact fraction >= 0.5 (inf: NaN, no +1)
          const __m256 fl = _mm256_round_ps(f, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
          const __m256 up = _mm256_cmp_ps(_mm256_sub_ps(f, fl), _mm256_set1_ps(0.5f), _CMP_GE_OQ);
          q = _mm256_add_ps(fl, _mm256_and_ps(up, _mm256_set1_ps(1.0f)));
        } else {  // half_away (std::round): truncate, then +-1 when |fraction| >= 0.5
          const __m256 tr = _mm256_round_ps(f, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
          const __m256 sign = _mm256_set1_ps(-0.0f);
          const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(f, tr));
          const __m256 up = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), _mm256_set1_ps(1.0f));
          q = _mm256_add_ps(tr, _mm256_or_ps(up, _mm256_and_ps(f, sign)));
        }
        // Clamp before converting (f may be huge or infinite); the bounds are small integers.
        q = _mm256_min_ps(_mm256_max_ps(q, _mm256_set1_ps(static_cast<float>(qlo))), _mm256_set1_ps(static_cast<float>(qhi)));
        y = _mm256_cvttps_epi32(q);
      }
      return _mm256_add_epi32(y, _mm256_set1_epi32(zero_point));
    }
  }

  NPUQ_TARGET_AVX2 void operator()(std::int64_t p, __m256i a0, __m256i a1, int nch) const {
    const __m256i y0 = requant8(a0, 0), y1 = requant8(a1, 8);
    alignas(32) O buf[dw_block];
    O* dst = nch == dw_block ? out + p * stride : buf;
    if constexpr (std::is_same<O, std::int32_t>::value) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_permute2x128_si256(y0, y1, 0x20));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 8), _mm256_permute2x128_si256(y0, y1, 0x31));
    } else {
      // Values are inside the output type's range, so the saturating packs are exact; packing
      // (0-3 | 8-11) with (4-7 | 12-15) puts the channels in order.
      const __m256i w = _mm256_packs_epi32(y0, y1);
      const __m128i lo = _mm256_castsi256_si128(w), hi = _mm256_extracti128_si256(w, 1);
      const __m128i b = std::is_same<O, std::int8_t>::value ? _mm_packs_epi16(lo, hi) : _mm_packus_epi16(lo, hi);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), b);
    }
    if (dst == buf) std::memcpy(out + p * stride, buf, static_cast<std::size_t>(nch) * sizeof(O));
  }
};

// Same contract as dwconv_row_portable, except that the sums go to `stage`. Tail: the block has
// fewer than 16 channels, so inputs are copied to a 16-byte buffer instead of read past the last
// channel.
template <int KT, bool Tail, class I, class Stage>
NPUQ_TARGET_AVX2 void dwconv_row_avx2(std::int64_t npix, std::int64_t taps, const I* const* ind, std::int64_t c0, int nch,
                                      const std::int16_t* w, const std::int32_t* start, const Stage& stage) {
  const std::int64_t T = KT > 0 ? KT : taps;
  const __m256i* wv = reinterpret_cast<const __m256i*>(w);
  const __m256i s0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(start));
  const __m256i s1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(start + 8));
  const Stage st = stage;  // a local copy the compiler can keep in registers
  for (std::int64_t p = 0; p < npix; ++p) {
    const I* const* tp = ind + p * T;
    __m256i a0 = s0, a1 = s1;
    std::int64_t t = 0;
#pragma GCC unroll 16
    for (; t + 1 < T; t += 2) {
      const __m256i x0 = dw_load_avx2<Tail>(tp[t] + c0, nch);
      const __m256i x1 = dw_load_avx2<Tail>(tp[t + 1] + c0, nch);
      a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_unpacklo_epi16(x0, x1), _mm256_loadu_si256(wv + t)));
      a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_unpackhi_epi16(x0, x1), _mm256_loadu_si256(wv + t + 1)));
    }
    if (t < T) {  // odd tap count: the last tap pairs with zeros
      const __m256i x0 = dw_load_avx2<Tail>(tp[t] + c0, nch), z = _mm256_setzero_si256();
      a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(_mm256_unpacklo_epi16(x0, z), _mm256_loadu_si256(wv + t)));
      a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(_mm256_unpackhi_epi16(x0, z), _mm256_loadu_si256(wv + t + 1)));
    }
    st(p, a0, a1, nch);
  }
}

// One output row, all channel blocks, through `stage_for(c0)`.
template <int KT, class I, class StageFor>
NPUQ_TARGET_AVX2 void dwconv_rows_avx2(std::int64_t npix, std::int64_t taps, const I* const* ind, std::int64_t channels,
                                       const std::int16_t* w, std::int64_t block_stride, const std::int32_t* start,
                                       StageFor&& stage_for) {
  for (std::int64_t c0 = 0; c0 < channels; c0 += dw_block) {
    const auto stage = stage_for(c0);
    const std::int16_t* wb = w + c0 / dw_block * block_stride;
    if (c0 + dw_block <= channels)
      dwconv_row_avx2<KT, false>(npix, taps, ind, c0, dw_block, wb, start + c0, stage);
    else
      dwconv_row_avx2<KT, true>(npix, taps, ind, c0, static_cast<int>(channels - c0), wb, start + c0, stage);
  }
}

}  // namespace simd_detail
}  // namespace npuq

#endif
