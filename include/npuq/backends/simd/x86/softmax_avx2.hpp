// AVX2 softmax outputs: a row's whole output table in a few dozen instructions, and the scan
// for the inputs whose output is not zero.
//
// Once a row's reciprocal and shift are known, the output for every input value in [min, max]
// is clamp(RoundingDivideByPOT(SRDHM(recip, e), shift) + qmin) over the row's contiguous run of
// exp-table entries. These are the output stage's SRDHM and rounding divide (output_stage.hpp,
// the same integer steps as the reference), eight entries per instruction, so a row costs one
// table of at most 256 entries instead of one fixed-point evaluation per element. Valid for
// shift <= 31, i.e. wherever TFLite's reference is defined; longer rows take the scalar path.
#pragma once

#include <cstdint>

#include "npuq/backends/simd/output_stage.hpp"

#if defined(NPUQ_ARCH_X86_64)

namespace npuq {
namespace simd_detail {

// out[i] = clamp(RDBPOT(SRDHM(recip, e[i]), shift) + qmin, qmin, qmax) for i < count, computed
// in whole vectors of 8 (e and out must have room for count rounded up to 8).
NPUQ_TARGET_AVX2 inline void softmax_outputs_avx2(const std::int32_t* e, std::int32_t count, std::int32_t recip, int shift,
                                                      std::int32_t qmin, std::int32_t qmax, std::int32_t* out) {
  const __m256i m = _mm256_set1_epi32(recip), s = _mm256_set1_epi32(shift);
  const __m256i lo = _mm256_set1_epi32(qmin), hi = _mm256_set1_epi32(qmax);
  for (std::int32_t i = 0; i < count; i += 8) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(e + i));
    const __m256i v = _mm256_add_epi32(rdbpot_avx2(srdhm_avx2(x, m), s), lo);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), _mm256_min_epi32(_mm256_max_epi32(v, lo), hi));
  }
}

// Bit j set when in[j] > low, for the 32 int8 values at in.
NPUQ_TARGET_AVX2 inline std::uint32_t greater_mask_avx2(const std::int8_t* in, std::int8_t low) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in));
  return static_cast<std::uint32_t>(_mm256_movemask_epi8(_mm256_cmpgt_epi8(v, _mm256_set1_epi8(low))));
}

}  // namespace simd_detail
}  // namespace npuq

#endif
