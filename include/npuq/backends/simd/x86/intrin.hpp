// The x86 intrinsics every npuq x86 kernel includes, natively or emulated.
//
// Natively this is <immintrin.h>, and each kernel carries a target attribute naming its ISA
// (NPUQ_TARGET_AVX2, ...), so a program built with plain -O2 contains every level and runs the
// one CPU detection allows. Built with NPUQ_X86_EMULATED=1 (the "emulated ISA" test build), the
// same kernel sources compile against SIMDe (Debian libsimde-dev): every AVX2, AVX-512 and VNNI
// intrinsic becomes portable C, the target attributes vanish, and core/cpu_features.hpp reports
// every x86 level, so the kernels of levels this CPU lacks are tested bit-exactly anyway. AMX has
// no SIMDe form; x86/amx_tiles.hpp provides its own portable tile layer for that build.
#pragma once

#if defined(__x86_64__) || defined(_M_X64)

// Around AVX-512 kernels: GCC 12's AVX-512 headers build some broadcasts from _mm512_undefined_*,
// which -Wuninitialized reports wherever they are inlined (GCC bug 105593, fixed in GCC 13).
// Clang has neither the bug nor the -Wmaybe-uninitialized group (naming it warns there).
#if defined(__clang__)
#define NPUQ_AVX512_WARNINGS_OFF
#define NPUQ_AVX512_WARNINGS_ON
#else
#define NPUQ_AVX512_WARNINGS_OFF                                  \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define NPUQ_AVX512_WARNINGS_ON _Pragma("GCC diagnostic pop")
#endif

#if defined(NPUQ_X86_EMULATED) && NPUQ_X86_EMULATED
#ifndef SIMDE_ENABLE_NATIVE_ALIASES
#define SIMDE_ENABLE_NATIVE_ALIASES
#endif
#include <simde/x86/avx512.h>
#include <simde/x86/fma.h>
// Rounding-control constants SIMDe names only with its prefix.
#ifndef _MM_FROUND_TO_NEAREST_INT
#define _MM_FROUND_TO_NEAREST_INT SIMDE_MM_FROUND_TO_NEAREST_INT
#endif
#ifndef _MM_FROUND_NO_EXC
#define _MM_FROUND_NO_EXC SIMDE_MM_FROUND_NO_EXC
#endif
#ifndef _MM_FROUND_TO_ZERO
#define _MM_FROUND_TO_ZERO SIMDE_MM_FROUND_TO_ZERO
#endif
#ifndef _MM_FROUND_TO_NEG_INF
#define _MM_FROUND_TO_NEG_INF SIMDE_MM_FROUND_TO_NEG_INF
#endif
// AVX-VNNI's VEX-encoded dot product has the AVX-512VL instruction's semantics.
#define _mm256_dpbusd_avx_epi32(acc, a, b) simde_mm256_dpbusd_epi32((acc), (a), (b))
#define NPUQ_TARGET_AVX2
#define NPUQ_TARGET_AVX_VNNI
#define NPUQ_TARGET_AVX512_VNNI

#include <cstdint>
#include <cstring>

// AVX-512 intrinsics npuq uses that SIMDe 0.7.4 (Debian bookworm) lacks, written lane by lane
// from Intel's definitions on SIMDe's types.
namespace npuq {
namespace simde_gap {
using u16 = std::uint16_t;
inline simde__m512i srai_epi32(simde__m512i a, unsigned imm) {
  simde__m512i_private r = simde__m512i_to_private(a);
  for (int i = 0; i < 16; ++i) r.i32[i] >>= imm > 31 ? 31 : imm;
  return simde__m512i_from_private(r);
}
inline simde__m512i srav_epi32(simde__m512i a, simde__m512i count) {
  simde__m512i_private r = simde__m512i_to_private(a), c = simde__m512i_to_private(count);
  for (int i = 0; i < 16; ++i) r.i32[i] >>= static_cast<std::uint32_t>(c.i32[i]) > 31 ? 31 : c.i32[i];
  return simde__m512i_from_private(r);
}
inline simde__m512i srav_epi64(simde__m512i a, simde__m512i count) {
  simde__m512i_private r = simde__m512i_to_private(a), c = simde__m512i_to_private(count);
  for (int i = 0; i < 8; ++i) r.i64[i] >>= static_cast<std::uint64_t>(c.i64[i]) > 63 ? 63 : c.i64[i];
  return simde__m512i_from_private(r);
}
inline simde__m128i cvtepi32_epi8(simde__m512i a) {
  const simde__m512i_private v = simde__m512i_to_private(a);
  simde__m128i_private r;
  for (int i = 0; i < 16; ++i) r.i8[i] = static_cast<std::int8_t>(static_cast<std::uint32_t>(v.i32[i]) & 0xFF);
  return simde__m128i_from_private(r);
}
inline simde__m512 cvtepi32_ps(simde__m512i a) {
  const simde__m512i_private v = simde__m512i_to_private(a);
  simde__m512_private r;
  for (int i = 0; i < 16; ++i) r.f32[i] = static_cast<float>(v.i32[i]);
  return simde__m512_from_private(r);
}
inline simde__m512i cvttps_epi32(simde__m512 a) {
  const simde__m512_private v = simde__m512_to_private(a);
  simde__m512i_private r;
  for (int i = 0; i < 16; ++i) {
    const float f = v.f32[i];
    // Out of range or NaN: the "integer indefinite" value 0x80000000.
    r.i32[i] = (f >= -2147483648.0f && f < 2147483648.0f) ? static_cast<std::int32_t>(f) : INT32_MIN;
  }
  return simde__m512i_from_private(r);
}
// vcvtps2dq with static rounding to nearest even (the only rounding npuq asks it for).
inline simde__m512i cvt_nearest_ps_epi32(simde__m512 a) {
  return cvttps_epi32(simde_mm512_roundscale_ps(a, SIMDE_MM_FROUND_TO_NEAREST_INT | SIMDE_MM_FROUND_NO_EXC));
}
// The lanes i < count of v (`size` bytes each) whose bit of k is set, to p.
inline void mask_store_lanes(void* p, std::uint64_t k, const void* v, int count, int size) {
  for (int i = 0; i < count; ++i)
    if ((k >> i) & 1) std::memcpy(static_cast<char*>(p) + size * i, static_cast<const char*>(v) + size * i, static_cast<std::size_t>(size));
}
inline void mask_storeu_epi8(void* p, u16 k, simde__m128i a) { mask_store_lanes(p, k, &a, 16, 1); }
inline void mask_storeu_epi32(void* p, u16 k, simde__m512i a) { mask_store_lanes(p, k, &a, 16, 4); }
inline void mask_storeu_epi8_256(void* p, std::uint32_t k, simde__m256i a) { mask_store_lanes(p, k, &a, 32, 1); }
inline void mask_storeu_epi8_512(void* p, std::uint64_t k, simde__m512i a) { mask_store_lanes(p, k, &a, 64, 1); }
inline simde__m128i maskz_loadu_epi8_128(std::uint16_t k, const void* p) {
  simde__m128i_private r = simde__m128i_to_private(simde_mm_setzero_si128());
  for (int i = 0; i < 16; ++i)
    if ((k >> i) & 1) std::memcpy(&r.i8[i], static_cast<const char*>(p) + i, 1);
  return simde__m128i_from_private(r);
}
inline simde__m512i maskz_loadu_epi8(std::uint64_t k, const void* p) {
  simde__m512i_private r = simde__m512i_to_private(simde_mm512_setzero_si512());
  for (int i = 0; i < 64; ++i)
    if ((k >> i) & 1) std::memcpy(&r.i8[i], static_cast<const char*>(p) + i, 1);
  return simde__m512i_from_private(r);
}
}  // namespace simde_gap
}  // namespace npuq
typedef simde__mmask16 __mmask16;
typedef simde__mmask32 __mmask32;
typedef simde__mmask64 __mmask64;
#define _mm512_srai_epi32(a, imm) npuq::simde_gap::srai_epi32((a), (imm))
#define _mm512_srav_epi32(a, c) npuq::simde_gap::srav_epi32((a), (c))
#define _mm512_srav_epi64(a, c) npuq::simde_gap::srav_epi64((a), (c))
#define _mm512_cvtepi32_epi8(a) npuq::simde_gap::cvtepi32_epi8(a)
#define _mm512_cvtepi32_ps(a) npuq::simde_gap::cvtepi32_ps(a)
#define _mm512_cvttps_epi32(a) npuq::simde_gap::cvttps_epi32(a)
#define _mm512_cvt_roundps_epi32(a, r) npuq::simde_gap::cvt_nearest_ps_epi32(a)
#define _mm_mask_storeu_epi8(p, k, a) npuq::simde_gap::mask_storeu_epi8((p), (k), (a))
#define _mm512_mask_storeu_epi32(p, k, a) npuq::simde_gap::mask_storeu_epi32((p), (k), (a))
#define _mm256_mask_storeu_epi8(p, k, a) npuq::simde_gap::mask_storeu_epi8_256((p), (k), (a))
#define _mm512_mask_storeu_epi8(p, k, a) npuq::simde_gap::mask_storeu_epi8_512((p), (k), (a))
#define _mm_maskz_loadu_epi8(k, p) npuq::simde_gap::maskz_loadu_epi8_128((k), (p))
#define _mm512_maskz_loadu_epi8(k, p) npuq::simde_gap::maskz_loadu_epi8((k), (p))
// An optimization barrier on a vector value (SIMDe's vectors live in memory).
#define NPUQ_VECTOR_BARRIER(v) __asm__("" : "+m"(v))
#else
#include <immintrin.h>
#define NPUQ_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define NPUQ_TARGET_AVX_VNNI __attribute__((target("avx2,fma,avxvnni")))
#define NPUQ_TARGET_AVX512_VNNI __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
// An optimization barrier on a vector value in a register: keeps GCC from fusing the operations
// on either side (a multiply and an add into an FMA, a narrowing into a slow memory form).
#define NPUQ_VECTOR_BARRIER(v) __asm__("" : "+v"(v))
#endif

#endif
