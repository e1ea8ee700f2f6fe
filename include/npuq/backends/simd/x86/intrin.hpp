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
#else
#include <immintrin.h>
#define NPUQ_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define NPUQ_TARGET_AVX_VNNI __attribute__((target("avx2,fma,avxvnni")))
#define NPUQ_TARGET_AVX512_VNNI __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")))
#endif

#endif
