// AVX-512 depthwise conv2d: 32 channels per block, vpdpwssd on pairs of input rows, and 16-lane
// output stages fused into the row kernel.
//
// Why not the 16c kernels on wider vectors: they pair two taps of one output pixel, so every
// pixel widens and interleaves all of its inputs again (a 3x3 pixel re-reads 9 input vectors
// that its neighbours also read). Here a pair is the same column of two input rows (rows y and
// y + dilation), so the interleaved int16 pairs belong to the input alone: a "pair row" is built
// once per block of channels and shared by every output row and pixel that reads those two rows.
// The kernel is then vpdpwssd (exact int16 x int16 products summed pairwise into int32,
// wrapping like the reference's sums) with the pair rows as memory operands, and the output
// stage on the sums while they are still in registers.
//
// Pairing: the rows of one dilation chain (y mod dilation) are paired globally, (chain index 2k,
// 2k + 1). An output row whose window starts on the top row of a pair runs phase 0 weights,
// one starting on a bottom row phase 1 (its first pair's top row has weight 0); either way it
// reads kh / 2 + 1 pairs. Stride-1 3x3: each pair row is built once and read by 2 output rows.
//
// Layout, per block of 32 channels: two accumulators of 16 int32 lanes, A holding channels 0-3,
// 8-11, 16-19, 24-27 and B channels 4-7, 12-15, 20-23, 28-31 (the order vpunpcklwd / vpunpckhwd
// leave a 32-channel row in; packing A with B puts them back in order). Each 256-bit half of A
// or B is one 16-channel block of the AVX2 kernels in their accumulator order (dw_acc_lane), so
// the AVX2 output stages apply per half. Pair row: for each padded input column, A's 16 (top,
// bottom) int16 pairs, then B's (128 bytes). Weights, per phase, column kx and pair q: the same
// 64 int16 of (w - w_zp), 0 for rows outside the window. uint8 inputs are stored as x - 128
// (vpmovsxbw after flipping the sign bit); the start values add 128 * sum(w - w_zp) back.
//
// Half blocks (at most 16 channels, e.g. the last 16 of 144): A's low half and B's low half
// make one vector, so the pair rows hold 64 bytes a column and each pixel costs half the work.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "npuq/backends/simd/x86/dwconv_avx2.hpp"
#include "npuq/backends/simd/x86/output_stage_avx512.hpp"
#include "npuq/core/dtype.hpp"
#include "npuq/ops/output_stage.hpp"

#if defined(NPUQ_ARCH_X86_64)
#include "npuq/backends/simd/x86/intrin.hpp"

NPUQ_AVX512_WARNINGS_OFF

namespace npuq {
namespace simd_detail {

constexpr int dw512_block = 32;  // channels per block

// Accumulator lane of channel j of a block: A is lanes 0-15, B lanes 16-31.
constexpr int dw512_lane(int j) { return (j / 4 % 2) * 16 + j / 8 * 4 + j % 4; }
// Its inverse: the block channel lane l of accumulator h holds; a half block's one vector is A's
// low half, then B's low half.
constexpr int dw512_lane_channel(int h, int l, bool half) {
  return half ? (l % 8) / 4 * 8 + l / 8 * 4 + l % 4 : l / 4 * 8 + h * 4 + l % 4;
}

// Row pairs a window of kh rows reads, in either phase.
constexpr std::int64_t dw512_pairs(std::int64_t kh) { return kh / 2 + 1; }

// int16 per pair-row column (and per packed weight vector) of a full or a half block.
constexpr std::int64_t dw512_column(bool half) { return half ? 32 : 64; }

// A half block's vector (A's low half, then B's low half) from a full block's table whose B part
// starts `b` elements after A's: 16 (per-lane tables, also the 64-bit ones, laid out per
// accumulator as 8 even lanes then 8 odd lanes) or 32 (packed weights).
template <class T>
NPUQ_TARGET_AVX512_VNNI inline __m512i dw512_half_of(const T* t, int b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(t))),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + b)), 1);
}

// 64 int16 of packed weights: A's 16 (top, bottom) pairs, then B's, of 32 channels given as
// int16 rows (nullptr: zeros; nch of them real).
NPUQ_TARGET_AVX512_VNNI inline void dw512_pairs_of(std::int16_t* dst, const std::int16_t* top, const std::int16_t* bottom, int nch) {
  alignas(64) std::int16_t buf[2][dw512_block] = {};
  const auto row = [&](const std::int16_t* x, int i) {
    return x == nullptr        ? buf[i]
           : nch < dw512_block ? static_cast<const std::int16_t*>(std::memcpy(buf[i], x, static_cast<std::size_t>(nch) * 2))
                               : x;
  };
  const __m512i t = _mm512_loadu_si512(row(top, 0)), b = _mm512_loadu_si512(row(bottom, 1));
  _mm512_storeu_si512(dst, _mm512_unpacklo_epi16(t, b));
  _mm512_storeu_si512(dst + 32, _mm512_unpackhi_epi16(t, b));
}

// Packed weights and start values of one call.
struct dw512_packed_weights {
  std::int64_t blocks = 0, kw = 0, pairs = 0;
  std::vector<std::int16_t> w;      // blocks x 2 phases x kw x pairs x 64
  std::vector<std::int32_t> start;  // blocks x 32, lane order

  const std::int16_t* at(std::int64_t b, int phase) const { return w.data() + (b * 2 + phase) * kw * pairs * 64; }
  const std::int32_t* block_start(std::int64_t b) const { return start.data() + b * dw512_block; }

  // v: (w - w_zp) of tap t of channel c at v[t * channels + c]; sum: their sum per channel;
  // start_of: each channel's start value; input_offset: what the pair rows subtract from every
  // input (128 for uint8 inputs).
  NPUQ_TARGET_AVX512_VNNI void pack(std::int64_t channels, std::int64_t kh, std::int64_t kw_, const std::int16_t* v,
                                    const std::uint32_t* sum, const std::int32_t* start_of, std::int32_t input_offset) {
    kw = kw_;
    pairs = dw512_pairs(kh);
    blocks = (channels + dw512_block - 1) / dw512_block;
    w.resize(static_cast<std::size_t>(blocks * 2 * kw * pairs * 64));
    start.assign(static_cast<std::size_t>(blocks * dw512_block), 0);
    std::int16_t* dst = w.data();
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t c0 = b * dw512_block;
      const int nch = static_cast<int>(std::min<std::int64_t>(dw512_block, channels - c0));
      const auto tap_row = [&](std::int64_t ky, std::int64_t kx) -> const std::int16_t* {
        return ky >= 0 && ky < kh ? v + (ky * kw + kx) * channels + c0 : nullptr;
      };
      for (int phase = 0; phase < 2; ++phase)
        for (std::int64_t kx = 0; kx < kw; ++kx)
          for (std::int64_t q = 0; q < pairs; ++q, dst += 64)
            dw512_pairs_of(dst, tap_row(2 * q - phase, kx), tap_row(2 * q + 1 - phase, kx), nch);
      for (int j = 0; j < nch; ++j)
        start[static_cast<std::size_t>(c0 + dw512_lane(j))] = static_cast<std::int32_t>(
            static_cast<std::uint32_t>(start_of[c0 + j]) + static_cast<std::uint32_t>(input_offset) * sum[c0 + j]);
    }
  }
};

// 32 inputs of one column (nch of them real, the rest 0), as int8 for vpmovsxbw.
template <class I>
NPUQ_TARGET_AVX512_VNNI inline __m256i dw512_load(const I* x, int nch) {
  __m256i v;
  if (nch == dw512_block) {
    v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  } else if (nch == dw512_block / 2) {
    v = _mm256_inserti128_si256(_mm256_setzero_si256(), _mm_loadu_si128(reinterpret_cast<const __m128i*>(x)), 0);
  } else {
    alignas(32) I buf[dw512_block] = {};
    std::memcpy(buf, x, static_cast<std::size_t>(nch));
    v = _mm256_load_si256(reinterpret_cast<const __m256i*>(buf));
  }
  if (std::is_same<I, std::uint8_t>::value) v = _mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80)));
  return v;
}

// Builds one pair row of a block: `width` padded columns; columns [x_lo, x_hi) are input
// columns, read at top + i * top_step and bottom + i * bottom_step (i counted from x_lo), the
// others padding (`pad`: the input zero point as stored, minus the input offset). No software
// prefetch: prefetching the next pair's rows here (two per column) measured 2-8% slower on Zen 5
// than the hardware prefetchers alone (stride-2 112x112x96: 71 -> 65 us without it).
template <bool Half, class I>
NPUQ_TARGET_AVX512_VNNI void dw512_pair_row(std::int16_t* dst, std::int64_t width, std::int64_t x_lo, std::int64_t x_hi, const I* top,
                                            std::int64_t top_step, const I* bottom, std::int64_t bottom_step, int nch, std::int16_t pad) {
  constexpr std::int64_t col = dw512_column(Half);
  const __m512i padv = _mm512_set1_epi16(pad);
  std::int64_t x = 0;
  for (; x < x_lo; ++x, dst += col) {
    _mm512_storeu_si512(dst, padv);
    if (!Half) _mm512_storeu_si512(dst + 32, padv);
  }
  for (std::int64_t i = 0; x < x_hi; ++x, ++i, dst += col) {
    const I* tx = top + i * top_step;
    const I* bx = bottom + i * bottom_step;
    if constexpr (Half) {  // 16 channels: [0-3 | 8-11] pairs, then [4-7 | 12-15]
      const __m256i t = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(dw512_load(tx, nch)));
      const __m256i b = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(dw512_load(bx, nch)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_unpacklo_epi16(t, b));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + 16), _mm256_unpackhi_epi16(t, b));
    } else {
      const __m512i t = _mm512_cvtepi8_epi16(dw512_load(tx, nch));
      const __m512i b = _mm512_cvtepi8_epi16(dw512_load(bx, nch));
      _mm512_storeu_si512(dst, _mm512_unpacklo_epi16(t, b));
      _mm512_storeu_si512(dst + 32, _mm512_unpackhi_epi16(t, b));
    }
  }
  for (; x < width; ++x, dst += col) {
    _mm512_storeu_si512(dst, padv);
    if (!Half) _mm512_storeu_si512(dst + 32, padv);
  }
}

// The output stages the row kernel hands each pixel's accumulators to. A stage is plain data
// built by the caller; its nested `regs` is what the kernel constructs once per row (inside the
// AVX-512 code, so that per-channel constants live in vector registers) and calls as
// regs(p, a, b) for pixel p of a full block, regs.half(p, v) of a half block.

// Any AVX2 output stage (dwconv_avx2.hpp): the low halves of A and B are the 16-channel block at
// c0 (stage lo), the high halves the one at c0 + 16 (stage hi, used when nch > 16).
template <class S>
struct dw512_halves {
  S lo, hi;
  int nch;
  using regs = dw512_halves;
  NPUQ_TARGET_AVX512_VNNI void operator()(std::int64_t p, __m512i a, __m512i b) const {
    lo(p, _mm512_castsi512_si256(a), _mm512_castsi512_si256(b), std::min(nch, dw_block));
    if (nch > dw_block) hi(p, _mm512_extracti64x4_epi64(a, 1), _mm512_extracti64x4_epi64(b, 1), nch - dw_block);
  }
  NPUQ_TARGET_AVX512_VNNI void half(std::int64_t p, __m512i v) const {
    lo(p, _mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1), nch);
  }
};

// Sign-extends 32-bit sums from an accumulator width of `bits` (the profile's wrap-around):
// ((v & mask) ^ sign) - sign.
struct dw512_wrap {
  __m512i mask, sign;
  NPUQ_TARGET_AVX512_VNNI explicit dw512_wrap(int bits)
      : mask(_mm512_set1_epi32(static_cast<std::int32_t>((std::uint64_t{1} << bits) - 1))),
        sign(_mm512_set1_epi32(static_cast<std::int32_t>(std::uint64_t{1} << (bits - 1)))) {}
  NPUQ_TARGET_AVX512_VNNI __m512i operator()(__m512i v) const {
    return _mm512_sub_epi32(_mm512_ternarylogic_epi32(v, mask, sign, 0x6A), sign);
  }
};

// Stores a pixel's outputs, int32 lanes in the kernel's order and inside O's range (the stages
// clamp), as the block's nch channels of O at out: a full block's A and B (packing A with B puts
// the channels in order), or a half block's one vector ([0-3, 8-11, 4-7, 12-15]).
template <class O>
NPUQ_TARGET_AVX512_VNNI inline void dw512_store_bytes(O* out, int nch, __m256i bytes) {
  if (nch == dw512_block) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out), bytes);
  } else if (nch == dw512_block / 2) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(bytes));
  } else {
    alignas(32) O buf[dw512_block];
    _mm256_store_si256(reinterpret_cast<__m256i*>(buf), bytes);
    std::memcpy(out, buf, static_cast<std::size_t>(nch));
  }
}

template <class O>
NPUQ_TARGET_AVX512_VNNI inline void dw512_store(O* out, int nch, __m512i a, __m512i b) {
  static_assert(sizeof(O) == 1, "8-bit outputs only");
  dw512_store_bytes(out, nch, _mm512_cvtepi16_epi8(_mm512_packs_epi32(a, b)));
}

template <class O>
NPUQ_TARGET_AVX512_VNNI inline void dw512_store_half(O* out, int nch, __m512i v) {
  static_assert(sizeof(O) == 1, "8-bit outputs only");
  const __m128i bytes = _mm512_cvtepi32_epi8(v);
  dw512_store_bytes(out, nch, _mm256_castsi128_si256(_mm_shuffle_epi32(bytes, _MM_SHUFFLE(3, 1, 2, 0))));
}

// Counts what an NPU's PPU counts (stage_tally) for the pixels a row's stage requantizes: per lane
// the largest |sum| and the outputs below / above the clamp, over the lanes of real channels
// (`keep`, per accumulator), into the tally's lane arrays. Used by the NPU emulator only, through
// the counting instantiations of the stages (Count = true: run_depthwise_counting); the
// backend's own stages hold an empty dw512_no_tally and compile exactly as without it.
struct dw512_tally {
  stage_tally* tally;
  __mmask16 keep[2] = {0, 0};
  // The lanes of each accumulator that hold one of a block's first nch channels, for nch 0-32
  // (the stage is set up per output row and block: a table, not a loop over the lanes).
  struct lane_masks {
    std::uint16_t keep[dw512_block + 1][2] = {};
    constexpr lane_masks() {
      for (int nch = 0; nch <= dw512_block; ++nch) {
        const bool half = nch <= dw512_block / 2;
        for (int h = 0; h < (half ? 1 : 2); ++h)
          for (int l = 0; l < 16; ++l)
            if (dw512_lane_channel(h, l, half) < nch) keep[nch][h] = static_cast<std::uint16_t>(keep[nch][h] | (1u << l));
      }
    }
  };
  NPUQ_TARGET_AVX512_VNNI dw512_tally(stage_tally* t, int nch) : tally(t) {
    static constexpr lane_masks masks{};
    if (t == nullptr) return;
    keep[0] = masks.keep[nch][0], keep[1] = masks.keep[nch][1];
  }
  NPUQ_TARGET_AVX512_VNNI void count(int h, __m512i sums, __mmask16 below, __mmask16 above) const {
    const __m512i one = _mm512_set1_epi32(1);
    // |sum| < 2^31 where the emulator asks
    _mm512_store_si512(tally->max_abs, _mm512_max_epu32(_mm512_load_si512(tally->max_abs), _mm512_maskz_abs_epi32(keep[h], sums)));
    const __m512i lo = _mm512_load_si512(tally->low), hi = _mm512_load_si512(tally->high);
    _mm512_store_si512(tally->low, _mm512_mask_add_epi32(lo, static_cast<__mmask16>(below & keep[h]), lo, one));
    _mm512_store_si512(tally->high, _mm512_mask_add_epi32(hi, static_cast<__mmask16>(above & keep[h]), hi, one));
  }
};
// The stages' per-pixel calls and their per-row register setup are always inlined into the row
// kernel: GCC inlines the backend's per-pixel calls on its own, but not the counting
// instantiations' (a call per pixel then cost the NPU emulator half its depthwise time), and an
// out-of-line setup leaves the stage's constants in memory for the whole row.
#if defined(__GNUC__)
#define NPUQ_DW512_STAGE_INLINE __attribute__((always_inline))
#else
#define NPUQ_DW512_STAGE_INLINE
#endif

struct dw512_no_tally {
  dw512_no_tally(stage_tally*, int) {}
};
template <bool Count>
using dw512_tally_of = std::conditional_t<Count, dw512_tally, dw512_no_tally>;

// What the 16-lane stages below share: the accumulator width, the clamp bounds and zero point,
// where a row's outputs go and the tally a counting instantiation fills (the caller's data), and
// the per-row registers built from it, whose operator() and half() store a pixel through the
// stage's own requant(v, h) (Regs, the derived registers: 16 sums of accumulator h to outputs).
template <class O>
struct dw512_stage_out {
  int acc_bits;
  std::int32_t lo, hi, zero_point;
  O* out;
  std::int64_t stride;
  int nch;
  stage_tally* tally = nullptr;
};

template <class Regs, class O, bool Count>
struct dw512_stage_regs {
  dw512_wrap wrap;
  bool wrapping;
  O* out;
  std::int64_t stride;
  int nch;
  dw512_tally_of<Count> tl;

  NPUQ_TARGET_AVX512_VNNI NPUQ_DW512_STAGE_INLINE explicit dw512_stage_regs(const dw512_stage_out<O>& s)
      : wrap(s.acc_bits), wrapping(s.acc_bits < 32), out(s.out), stride(s.stride), nch(s.nch), tl(s.tally, s.nch) {}

  NPUQ_TARGET_AVX512_VNNI NPUQ_DW512_STAGE_INLINE void operator()(std::int64_t p, __m512i a, __m512i b) const {
    const Regs& r = static_cast<const Regs&>(*this);
    dw512_store<O>(out + p * stride, nch, r.requant(a, 0), r.requant(b, 1));
  }
  NPUQ_TARGET_AVX512_VNNI NPUQ_DW512_STAGE_INLINE void half(std::int64_t p, __m512i v) const {
    dw512_store_half<O>(out + p * stride, nch, static_cast<const Regs&>(*this).requant(v, 0));
  }
};

// The tflite double-rounding output stage on 16 lanes, for tables whose channels all shift right
// by r in [1, 22] (the usual case: effective scales in [2^-22, 0.5)); others take the AVX2 stage.
// The arithmetic is q31_double_composed_avx512 (output_stage_avx512.hpp): two vpmuldq (even and
// odd lanes), the rounding constant and the sign correction in 64 bits, one vpermt2d to gather
// the high halves, one vpsravd. The clamp to the output type is the saturation of the narrowing
// (plus min / max for a narrower fused activation).
struct dw512_q31_table {
  struct alignas(64) block {
    std::int32_t m[32], m_odd[32], shift[32];  // shift: r - 1; m_odd: the odd lanes' m in even positions
    std::int64_t bias[32];                     // per accumulator: its 8 even lanes, then its 8 odd lanes
  };
  std::vector<block> blocks;
  int acc_bits = 32;

  // False unless the stage is tflite's with every right shift r in [1, 22] and |zp| < 2^(30 - r)
  // (then |x * m| < 2^62 and |zp * 2^(31 + r)| < 2^61 keep the numerator inside int64; zero
  // points past that, which int32 output offsets allow, take the AVX2 stage).
  bool build(const output_stage& st, std::int64_t channels) {
    if (st.raw || st.numerics.format != multiplier_format::q31 || st.numerics.mode != rounding::tflite_double) return false;
    for (std::int64_t c = 0; c < (st.channel.size() == 1 ? 1 : channels); ++c)
      if (!q31_double_composable(st.at(c), st.zero_point)) return false;
    acc_bits = st.numerics.acc.bits;
    blocks.assign(static_cast<std::size_t>((channels + dw512_block - 1) / dw512_block), block{});
    for (std::int64_t c = 0; c < channels; ++c) {
      block& t = blocks[static_cast<std::size_t>(c / dw512_block)];
      const int lane = dw512_lane(static_cast<int>(c % dw512_block));
      const requant_channel& rc = st.at(c);
      const int r = -rc.shift;
      t.m[lane] = rc.multiplier;
      if (lane % 2 == 1) t.m_odd[lane - 1] = rc.multiplier;
      t.shift[lane] = r - 1;
      t.bias[even_odd_lane(static_cast<std::size_t>(lane))] = q31_double_composed_constant(r, st.zero_point);
    }
    return true;
  }
};

// Clamps to [lo, hi] (the output type's range without a fused activation), so the narrowing is
// exact. Wrapping to a narrower accumulator is a branch, not a template parameter: each
// compile-time choice here multiplies the row kernels instantiated (see dw_requant_stage).
template <class O, bool Count = false>
struct dw512_q31_stage {
  const dw512_q31_table::block* t;
  dw512_stage_out<O> o;

  struct regs : dw512_stage_regs<regs, O, Count> {
    __m512i m[2], m_odd[2], shift[2], bias_e[2], bias_o[2], lo, hi;

    NPUQ_TARGET_AVX512_VNNI NPUQ_DW512_STAGE_INLINE explicit regs(const dw512_q31_stage& s)
        : dw512_stage_regs<regs, O, Count>(s.o), lo(_mm512_set1_epi32(s.o.lo)), hi(_mm512_set1_epi32(s.o.hi)) {
      if (s.o.nch <= dw512_block / 2) {  // half block: accumulator 0 is [A low | B low]
        m[0] = dw512_half_of(s.t->m, 16);
        m_odd[0] = dw512_half_of(s.t->m_odd, 16);
        shift[0] = dw512_half_of(s.t->shift, 16);
        bias_e[0] = dw512_half_of(s.t->bias, 16);
        bias_o[0] = dw512_half_of(s.t->bias + 8, 16);
        m[1] = m_odd[1] = shift[1] = bias_e[1] = bias_o[1] = _mm512_setzero_si512();
        return;
      }
      for (int h = 0; h < 2; ++h) {
        m[h] = _mm512_loadu_si512(s.t->m + h * 16);
        m_odd[h] = _mm512_loadu_si512(s.t->m_odd + h * 16);
        shift[h] = _mm512_loadu_si512(s.t->shift + h * 16);
        bias_e[h] = _mm512_loadu_si512(s.t->bias + h * 16);
        bias_o[h] = _mm512_loadu_si512(s.t->bias + h * 16 + 8);
      }
    }

    // 16 sums of accumulator h to outputs (zero point added, clamped).
    NPUQ_TARGET_AVX512_VNNI NPUQ_DW512_STAGE_INLINE __m512i requant(__m512i v, int h) const {
      if (this->wrapping) v = this->wrap(v);
      const __m512i y = q31_double_composed_avx512(v, m[h], m_odd[h], bias_e[h], bias_o[h], shift[h]);
      if constexpr (Count) this->tl.count(h, v, _mm512_cmpgt_epi32_mask(lo, y), _mm512_cmpgt_epi32_mask(y, hi));
      return _mm512_min_epi32(_mm512_max_epi32(y, lo), hi);
    }
  };
};

// The q31 single-rounding output stage on 16 lanes (rounding::half_up: the tosa_single profile;
// half_away: NVDLA's; half_even, truncate, floor): per lane the 64-bit product x * m rounded by
// 2^(31 - shift) as one arithmetic shift with the offsets of single_round_offsets_for
// (output_stage_avx512.hpp), clamped in 64 bits to one past the output range (so the lanes
// narrow to int32 exactly and the counting stage still sees the clamps), then to the range,
// plus the zero point. Every shift in [-31, 30] and every zero point an 8-bit output accepts
// (|zp| < 2^24, so the bounds relative to it fit int32): nothing is composed.
struct dw512_q31_single_table {
  struct alignas(64) block {
    std::int32_t m[32], m_odd[32];  // m_odd: the odd lanes' m in even positions
    // Per accumulator, its 8 even lanes then its 8 odd lanes: the shift 31 - shift and the offsets.
    std::int64_t t[32], base[32], neg[32];
  };
  std::vector<block> blocks;
  int acc_bits = 32;
  bool parity = false;  // half_even

  bool build(const output_stage& st, std::int64_t channels) {
    if (st.raw || st.numerics.format != multiplier_format::q31 || st.numerics.mode == rounding::tflite_double) return false;
    acc_bits = st.numerics.acc.bits;
    parity = st.numerics.mode == rounding::half_even;
    blocks.assign(static_cast<std::size_t>((channels + dw512_block - 1) / dw512_block), block{});
    for (block& b : blocks) lanes(b).pad(32);
    for (std::int64_t c = 0; c < channels; ++c) {
      block& b = blocks[static_cast<std::size_t>(c / dw512_block)];
      const int lane = dw512_lane(static_cast<int>(c % dw512_block));
      const requant_channel& rc = st.at(c);
      b.m[lane] = rc.multiplier;
      if (lane % 2 == 1) b.m_odd[lane - 1] = rc.multiplier;
      lanes(b).set(static_cast<std::size_t>(lane), st.numerics.mode, rc.shift);
    }
    return true;
  }
  static single_round_lane_arrays lanes(block& b) { return {b.t, b.base, b.neg}; }
};

template <class O, bool Count = false>
struct dw512_q31_single_stage {
  const dw512_q31_single_table::block* t;
  bool parity;
  dw512_stage_out<O> o;

  struct regs : dw512_stage_regs<regs, O, Count> {
    __m512i m[2], m_odd[2];
    single_round16 r[2];
    __m512i lo64, hi64, lo, hi, zp;
    bool parity;

    NPUQ_TARGET_AVX512_VNNI NPUQ_DW512_STAGE_INLINE explicit regs(const dw512_q31_single_stage& s)
        : dw512_stage_regs<regs, O, Count>(s.o),
          lo64(_mm512_set1_epi64(std::int64_t{s.o.lo} - s.o.zero_point - 1)),
          hi64(_mm512_set1_epi64(std::int64_t{s.o.hi} - s.o.zero_point + 1)),
          lo(_mm512_set1_epi32(s.o.lo - s.o.zero_point)),
          hi(_mm512_set1_epi32(s.o.hi - s.o.zero_point)),
          zp(_mm512_set1_epi32(s.o.zero_point)),
          parity(s.parity) {
      const auto* b = s.t;
      if (s.o.nch <= dw512_block / 2) {  // half block: accumulator 0 is [A low | B low]
        m[0] = dw512_half_of(b->m, 16);
        m_odd[0] = dw512_half_of(b->m_odd, 16);
        r[0] = {dw512_half_of(b->t, 16),    dw512_half_of(b->t + 8, 16),   dw512_half_of(b->base, 16),
                dw512_half_of(b->base + 8, 16), dw512_half_of(b->neg, 16), dw512_half_of(b->neg + 8, 16)};
        m[1] = m_odd[1] = _mm512_setzero_si512();
        r[1] = single_round16::zero();
        return;
      }
      for (int h = 0; h < 2; ++h) {
        m[h] = _mm512_loadu_si512(b->m + h * 16);
        m_odd[h] = _mm512_loadu_si512(b->m_odd + h * 16);
        r[h] = single_round16::load(b->t + h * 16, b->base + h * 16, b->neg + h * 16);
      }
    }

    // 16 sums of accumulator h to outputs (zero point added, clamped).
    NPUQ_TARGET_AVX512_VNNI NPUQ_DW512_STAGE_INLINE __m512i requant(__m512i v, int h) const {
      if (this->wrapping) v = this->wrap(v);
      const __m512i y = single_round16_avx512(v, m[h], m_odd[h], r[h], parity, lo64, hi64);
      if constexpr (Count) this->tl.count(h, v, _mm512_cmpgt_epi32_mask(lo, y), _mm512_cmpgt_epi32_mask(y, hi));
      return _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(y, lo), hi), zp);
    }
  };
};

// The fp32 output stage on 16 lanes for ties-to-even rounding (the onnx profile's; the other
// roundings take the AVX2 stage per half): exactly requantize's (float)acc * scale (one float
// multiply), rounded by vrndscaleps, clamped to [lo - zp, hi - zp] (integers, so clamping
// before or after rounding is the same), plus zp (exact: the values are small integers).
struct dw512_fp32_table {
  std::vector<float> scale;  // blocks x 32, lane order
  int acc_bits = 32;

  bool build(const output_stage& st, std::int64_t channels) {
    if (st.raw || st.numerics.format != multiplier_format::fp32 || st.numerics.mode != rounding::half_even) return false;
    acc_bits = st.numerics.acc.bits;
    scale.assign(static_cast<std::size_t>((channels + dw512_block - 1) / dw512_block * dw512_block), 1.0f);
    for (std::int64_t c = 0; c < channels; ++c)
      scale[static_cast<std::size_t>(c / dw512_block * dw512_block + dw512_lane(static_cast<int>(c % dw512_block)))] = st.at(c).scale;
    return true;
  }
};

template <class O, bool Count = false>
struct dw512_fp32_stage {
  const float* scale;  // the block's 32, lane order
  dw512_stage_out<O> o;

  struct regs : dw512_stage_regs<regs, O, Count> {
    __m512 scale[2], lo, hi, zero_point;

    NPUQ_TARGET_AVX512_VNNI NPUQ_DW512_STAGE_INLINE explicit regs(const dw512_fp32_stage& s)
        : dw512_stage_regs<regs, O, Count>(s.o),
          lo(_mm512_set1_ps(static_cast<float>(s.o.lo - s.o.zero_point))),
          hi(_mm512_set1_ps(static_cast<float>(s.o.hi - s.o.zero_point))),
          zero_point(_mm512_set1_ps(static_cast<float>(s.o.zero_point))) {
      if (s.o.nch <= dw512_block / 2) {
        scale[0] = _mm512_castsi512_ps(dw512_half_of(s.scale, 16));
        scale[1] = _mm512_setzero_ps();
      } else {
        scale[0] = _mm512_loadu_ps(s.scale);
        scale[1] = _mm512_loadu_ps(s.scale + 16);
      }
    }

    NPUQ_TARGET_AVX512_VNNI NPUQ_DW512_STAGE_INLINE __m512i requant(__m512i v, int h) const {
      if (this->wrapping) v = this->wrap(v);
      constexpr int imm = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;  // one token: SIMDe's macro does not parenthesize its immediate
      const __m512 f = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(v), scale[h]), imm);
      if constexpr (Count) this->tl.count(h, v, _mm512_cmp_ps_mask(f, lo, _CMP_LT_OQ), _mm512_cmp_ps_mask(f, hi, _CMP_GT_OQ));
      return _mm512_cvttps_epi32(_mm512_add_ps(_mm512_max_ps(_mm512_min_ps(f, hi), lo), zero_point));
    }
  };
};

// The NA accumulators (2: A and B; 1: a half block's) of one pixel whose taps start at column
// offset x, weights in registers. Columns alternate between two chains per accumulator (summed
// at the end): a single chain of KW * NP vpdpwssd would be bound by their latency.
template <int KW, int NP, int NA>
NPUQ_TARGET_AVX512_VNNI inline __attribute__((always_inline)) void dw512_sums(const __m512i* wv, const std::int16_t* const* r,
                                                                              std::int64_t x, std::int64_t dil, const __m512i* start,
                                                                              __m512i* acc) {
  constexpr int chains = KW > 1 ? 2 : 1;
  __m512i a[NA][chains];
#pragma GCC unroll 4
  for (int h = 0; h < NA; ++h) {
    a[h][0] = start[h];
    if (chains > 1) a[h][chains - 1] = _mm512_setzero_si512();
  }
#pragma GCC unroll 8
  for (int kx = 0; kx < KW; ++kx)
#pragma GCC unroll 8
    for (int q = 0; q < NP; ++q)
#pragma GCC unroll 4
      for (int h = 0; h < NA; ++h) {
        __m512i& s = a[h][kx % chains];
        s = _mm512_dpwssd_epi32(s, _mm512_loadu_si512(r[q] + x + kx * dil + h * 32), wv[(kx * NP + q) * NA + h]);
      }
#pragma GCC unroll 4
  for (int h = 0; h < NA; ++h) acc[h] = chains > 1 ? _mm512_add_epi32(a[h][0], a[h][chains - 1]) : a[h][0];
}

// One block for `npix` output pixels of a row: pixel p's tap (pair q, column kx) reads the pair
// row rows[q] at (p * stride + kx * dilation) columns; w: the phase's packed weights. Each
// pixel's accumulators go to the stage. KW, NP > 0 fix kw and the pair count at compile time
// (3x3: the weight vectors stay in registers, and each pixel's sums are computed while the
// previous pixel's go through the output stage, so the out-of-order window sees independent
// work next to each dependent chain).
template <int KW, int NP, bool Half, class Stage>
NPUQ_TARGET_AVX512_VNNI void dw512_row(std::int64_t npix, std::int64_t kw, std::int64_t np, const std::int16_t* const* rows,
                                       std::int64_t stride, std::int64_t dilation, const std::int16_t* w, const std::int32_t* start,
                                       const Stage& stage) {
  constexpr int NA = Half ? 1 : 2;
  // A stride (dilation) is only stepped over with two pixels (taps) or more: only then is it
  // bounded by the row's width (one output column may have any stride, one tap any dilation).
  const std::int64_t step = npix > 1 ? stride * dw512_column(Half) : 0, dil = kw > 1 ? dilation * dw512_column(Half) : 0;
  const typename Stage::regs st(stage);
  // A full block's weights are 64 int16 (A, B) per (kx, q); a half block's vector is A's low
  // half with B's low half, like its start values.
  __m512i s0[NA];
#pragma GCC unroll 2
  for (int h = 0; h < NA; ++h) s0[h] = Half ? dw512_half_of(start, 16) : _mm512_loadu_si512(start + h * 16);
  if (npix <= 0) return;
  if constexpr (KW > 0 && NP > 0 && KW * NP <= 6) {
    (void)kw;
    (void)np;
    __m512i wv[KW * NP * NA];
#pragma GCC unroll 16
    for (int i = 0; i < KW * NP; ++i)
#pragma GCC unroll 2
      for (int h = 0; h < NA; ++h) wv[i * NA + h] = Half ? dw512_half_of(w + i * 64, 32) : _mm512_loadu_si512(w + i * 64 + h * 32);
    const std::int16_t* r[NP];
#pragma GCC unroll 8
    for (int q = 0; q < NP; ++q) r[q] = rows[q];
    __m512i prev[NA], cur[NA];
    dw512_sums<KW, NP, NA>(wv, r, 0, dil, s0, prev);
    for (std::int64_t p = 1; p < npix; ++p) {
      dw512_sums<KW, NP, NA>(wv, r, p * step, dil, s0, cur);
      if constexpr (Half) {
        st.half(p - 1, prev[0]);
      } else {
        st(p - 1, prev[0], prev[1]);
      }
#pragma GCC unroll 2
      for (int h = 0; h < NA; ++h) prev[h] = cur[h];
    }
    if constexpr (Half) {
      st.half(npix - 1, prev[0]);
    } else {
      st(npix - 1, prev[0], prev[1]);
    }
  } else {
    const std::int64_t nkw = KW > 0 ? KW : kw, nnp = NP > 0 ? NP : np;
    for (std::int64_t p = 0; p < npix; ++p) {
      __m512i acc[NA];
#pragma GCC unroll 2
      for (int h = 0; h < NA; ++h) acc[h] = s0[h];
      const std::int16_t* wt = w;
      for (std::int64_t kx = 0; kx < nkw; ++kx)
        for (std::int64_t q = 0; q < nnp; ++q, wt += 64) {
          const std::int16_t* c = rows[q] + p * step + kx * dil;
#pragma GCC unroll 2
          for (int h = 0; h < NA; ++h)
            acc[h] =
                _mm512_dpwssd_epi32(acc[h], _mm512_loadu_si512(c + h * 32), Half ? dw512_half_of(wt, 32) : _mm512_loadu_si512(wt + h * 32));
        }
      if constexpr (Half) {
        st.half(p, acc[0]);
      } else {
        st(p, acc[0], acc[1]);
      }
    }
  }
}

}  // namespace simd_detail
}  // namespace npuq

NPUQ_AVX512_WARNINGS_ON

#endif
