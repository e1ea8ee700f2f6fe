// The AMX tile operations the AMX-INT8 GEMM kernel uses, natively or emulated.
//
// SIMDe, which stands in for the AVX2 / AVX-512 / VNNI intrinsics in the emulated-ISA build
// (x86/intrin.hpp), has no AMX form, so this header provides both sides of exactly the
// operations npuq needs: ldtilecfg, tileloadd, the four byte dot products tdpbusd (u8 x s8),
// tdpbsud (s8 x u8), tdpbssd (s8 x s8) and tdpbuud (u8 x u8), tilestored, tilezero and
// tilerelease. Natively they are the <immintrin.h> intrinsics in functions carrying
// NPUQ_TARGET_AMX, so a plain -O2 build contains them and runs them only when CPU detection
// lists AMX (which also asks Linux for the tile data state: request_amx_permission). With
// NPUQ_X86_EMULATED=1 they are plain C++ on eight thread_local tile registers that follow the
// instructions' documented semantics, including their faults: a shape or configuration the
// hardware would reject (#UD / #GP) aborts the emulated program with a message, so kernels
// tested on a machine without AMX are checked for the tile shapes they use, not only for sums.
//
// The GCC intrinsics paste the tile number into assembly text, so it must be a literal token;
// the functions here take it as a template argument and expand to the one literal form.
#pragma once

#include <cstdint>
#include <cstring>

#include "npuq/backends/simd/x86/intrin.hpp"
#include "npuq/core/cpu_features.hpp"

#if defined(NPUQ_ARCH_X86_64)

#if defined(NPUQ_X86_EMULATED) && NPUQ_X86_EMULATED
#include <cstdio>
#include <cstdlib>
#define NPUQ_TARGET_AMX
#else
#define NPUQ_TARGET_AMX __attribute__((target("amx-tile,amx-int8")))
#endif

namespace npuq {
namespace simd_detail {

constexpr int amx_tiles = 8;       // tile registers of palette 1
constexpr int amx_max_rows = 16;   // rows per tile
constexpr int amx_max_colsb = 64;  // bytes per tile row

// The 64-byte operand of ldtilecfg (palette 1): tile t has rows[t] rows of colsb[t] bytes.
struct alignas(64) amx_tile_config {
  std::uint8_t palette_id = 0;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};
static_assert(sizeof(amx_tile_config) == 64, "amx_tile_config: the ldtilecfg layout is 64 bytes");

#if defined(NPUQ_X86_EMULATED) && NPUQ_X86_EMULATED

// ---- emulated: eight 16 x 64-byte tiles and their configuration, per thread ----

struct amx_emulated_state {
  bool configured = false;
  std::uint8_t rows[amx_tiles] = {};
  std::uint16_t colsb[amx_tiles] = {};
  std::uint8_t data[amx_tiles][amx_max_rows][amx_max_colsb] = {};
};

inline amx_emulated_state& amx_state() {
  static thread_local amx_emulated_state s;
  return s;
}

[[noreturn]] inline void amx_fault(const char* what) {
  std::fprintf(stderr, "npuq: emulated AMX fault: %s\n", what);
  std::abort();
}

inline void amx_reset(amx_emulated_state& s) {
  s.configured = false;
  std::memset(s.rows, 0, sizeof s.rows);
  std::memset(s.colsb, 0, sizeof s.colsb);
  std::memset(s.data, 0, sizeof s.data);
}

// A configured tile (rows and colsb both nonzero), as every tile instruction requires.
inline void amx_check_tile(const amx_emulated_state& s, int t) {
  if (!s.configured) amx_fault("tile instruction without a tile configuration (#UD)");
  if (s.rows[t] == 0) amx_fault("tile instruction on a tile the configuration leaves empty (#UD)");
}

// Rows >= rows and bytes >= colsb of a row read as 0 after any write to the tile.
inline void amx_zero_outside(amx_emulated_state& s, int t) {
  for (int r = 0; r < amx_max_rows; ++r) {
    const int from = r < s.rows[t] ? s.colsb[t] : 0;
    std::memset(s.data[t][r] + from, 0, static_cast<std::size_t>(amx_max_colsb - from));
  }
}

inline void amx_emulated_load_config(const amx_tile_config& cfg) {
  amx_emulated_state& s = amx_state();
  if (cfg.palette_id == 0) {  // palette 0: back to the init state
    amx_reset(s);
    return;
  }
  if (cfg.palette_id != 1) amx_fault("ldtilecfg: unsupported palette (#GP)");
  for (std::uint8_t r : cfg.reserved)
    if (r != 0) amx_fault("ldtilecfg: reserved bytes not 0 (#GP)");
  for (int t = 0; t < 16; ++t) {
    const bool used = t < amx_tiles;
    if (!used && (cfg.rows[t] != 0 || cfg.colsb[t] != 0)) amx_fault("ldtilecfg: a tile beyond palette 1's eight (#GP)");
    if (cfg.rows[t] > amx_max_rows || cfg.colsb[t] > amx_max_colsb) amx_fault("ldtilecfg: tile larger than 16 x 64 bytes (#GP)");
    if ((cfg.rows[t] == 0) != (cfg.colsb[t] == 0)) amx_fault("ldtilecfg: tile with rows or colsb 0 but not both (#GP)");
  }
  amx_reset(s);
  s.configured = true;
  for (int t = 0; t < amx_tiles; ++t) {
    s.rows[t] = cfg.rows[t];
    s.colsb[t] = cfg.colsb[t];
  }
}

inline void amx_emulated_load(int t, const void* base, std::int64_t stride) {
  amx_emulated_state& s = amx_state();
  amx_check_tile(s, t);
  const auto* p = static_cast<const std::uint8_t*>(base);
  for (int r = 0; r < s.rows[t]; ++r) std::memcpy(s.data[t][r], p + r * stride, s.colsb[t]);
  amx_zero_outside(s, t);
}

inline void amx_emulated_store(int t, void* base, std::int64_t stride) {
  amx_emulated_state& s = amx_state();
  amx_check_tile(s, t);
  auto* p = static_cast<std::uint8_t*>(base);
  for (int r = 0; r < s.rows[t]; ++r) std::memcpy(p + r * stride, s.data[t][r], s.colsb[t]);
}

inline void amx_emulated_zero(int t) {
  amx_emulated_state& s = amx_state();
  amx_check_tile(s, t);
  std::memset(s.data[t], 0, sizeof s.data[t]);
}

// dst[m][n] (int32) += sum over k < colsb(a)/4, i < 4 of a[m][4k+i] * b[k][4n+i], each byte
// signed or unsigned as the instruction says, in int32 with wrap-around.
template <bool ASigned, bool BSigned>
inline void amx_emulated_dp(int d, int a, int b) {
  amx_emulated_state& s = amx_state();
  amx_check_tile(s, d);
  amx_check_tile(s, a);
  amx_check_tile(s, b);
  if (d == a || d == b || a == b) amx_fault("tdpb*d: the three tiles must differ (#UD)");
  if (s.colsb[d] % 4 || s.colsb[a] % 4 || s.colsb[b] % 4) amx_fault("tdpb*d: colsb not a multiple of 4 (#UD)");
  if (s.colsb[d] != s.colsb[b]) amx_fault("tdpb*d: dst colsb != src2 colsb (#UD)");
  if (s.colsb[a] / 4 != s.rows[b]) amx_fault("tdpb*d: src1 colsb / 4 != src2 rows (#UD)");
  if (s.rows[d] != s.rows[a]) amx_fault("tdpb*d: dst rows != src1 rows (#UD)");
  const int kk = s.colsb[a] / 4, nn = s.colsb[d] / 4;
  for (int m = 0; m < s.rows[d]; ++m) {
    for (int n = 0; n < nn; ++n) {
      std::uint32_t acc;
      std::memcpy(&acc, s.data[d][m] + 4 * n, 4);
      for (int k = 0; k < kk; ++k)
        for (int i = 0; i < 4; ++i) {
          const std::uint8_t x = s.data[a][m][4 * k + i], y = s.data[b][k][4 * n + i];
          const std::int32_t xv = ASigned ? static_cast<std::int8_t>(x) : x;
          const std::int32_t yv = BSigned ? static_cast<std::int8_t>(y) : y;
          acc += static_cast<std::uint32_t>(xv * yv);
        }
      std::memcpy(s.data[d][m] + 4 * n, &acc, 4);
    }
  }
  amx_zero_outside(s, d);
}

inline void amx_load_config(const amx_tile_config& cfg) { amx_emulated_load_config(cfg); }
inline void amx_tile_release() { amx_reset(amx_state()); }
template <int T>
inline void amx_tile_load(const void* base, std::int64_t stride) {
  static_assert(T >= 0 && T < amx_tiles, "amx: tiles 0-7");
  amx_emulated_load(T, base, stride);
}
template <int T>
inline void amx_tile_store(void* base, std::int64_t stride) {
  static_assert(T >= 0 && T < amx_tiles, "amx: tiles 0-7");
  amx_emulated_store(T, base, stride);
}
template <int T>
inline void amx_tile_zero() {
  static_assert(T >= 0 && T < amx_tiles, "amx: tiles 0-7");
  amx_emulated_zero(T);
}
// tdpb[su][su]d: tile D += S1 x S2, their bytes signed or not as ASigned and BSigned say
// (tdpbusd: unsigned x signed, tdpbsud, tdpbssd, tdpbuud).
template <bool ASigned, bool BSigned, int D, int S1, int S2>
inline void amx_dp() {
  static_assert(D >= 0 && D < amx_tiles && S1 >= 0 && S1 < amx_tiles && S2 >= 0 && S2 < amx_tiles, "amx: tiles 0-7");
  static_assert(D != S1 && D != S2 && S1 != S2, "amx: tdpb*d needs three different tiles");
  amx_emulated_dp<ASigned, BSigned>(D, S1, S2);
}

#else

// ---- native: the <immintrin.h> intrinsics ----
//
// GCC 12's _tile_loadconfig and _tile_loadd describe at most 8 bytes of their memory operand to
// the compiler (tileloadd none at all), so each is preceded by a compiler barrier: stores to the
// configuration or to a loaded buffer are then in memory first. The barrier emits no code.

#define NPUQ_AMX_INLINE inline __attribute__((always_inline)) NPUQ_TARGET_AMX
#define NPUQ_AMX_BARRIER() __asm__ __volatile__("" ::: "memory")

// NPUQ_AMX_SWITCH_T(F) is F(t) with t the literal equal to the template argument T; the dot
// products pick their three literals the same way, one tile argument after the other (the
// forms not taken are discarded at compile time and never reach the assembler). Clang's
// intrinsics are builtins taking constant expressions, which the template arguments are (and
// it checks the discarded forms' arguments, so it must not see them).
#if defined(__clang__)
#define NPUQ_AMX_SWITCH_T(F) F(T);
#define NPUQ_AMX_SWITCH_DP(F) F(D, S1, S2);
#else
#define NPUQ_AMX_SWITCH_T(F)                                                                     \
  if constexpr (T == 0) { F(0); } else if constexpr (T == 1) { F(1); }                          \
  else if constexpr (T == 2) { F(2); } else if constexpr (T == 3) { F(3); }                     \
  else if constexpr (T == 4) { F(4); } else if constexpr (T == 5) { F(5); }                     \
  else if constexpr (T == 6) { F(6); } else { F(7); }
#define NPUQ_AMX_SWITCH_S2(F, d, a)                                                              \
  if constexpr (S2 == 0) { F(d, a, 0); } else if constexpr (S2 == 1) { F(d, a, 1); }            \
  else if constexpr (S2 == 2) { F(d, a, 2); } else if constexpr (S2 == 3) { F(d, a, 3); }       \
  else if constexpr (S2 == 4) { F(d, a, 4); } else if constexpr (S2 == 5) { F(d, a, 5); }       \
  else if constexpr (S2 == 6) { F(d, a, 6); } else { F(d, a, 7); }
#define NPUQ_AMX_SWITCH_S1(F, d)                                                                 \
  if constexpr (S1 == 0) { NPUQ_AMX_SWITCH_S2(F, d, 0) } else if constexpr (S1 == 1) { NPUQ_AMX_SWITCH_S2(F, d, 1) } \
  else if constexpr (S1 == 2) { NPUQ_AMX_SWITCH_S2(F, d, 2) } else if constexpr (S1 == 3) { NPUQ_AMX_SWITCH_S2(F, d, 3) } \
  else if constexpr (S1 == 4) { NPUQ_AMX_SWITCH_S2(F, d, 4) } else if constexpr (S1 == 5) { NPUQ_AMX_SWITCH_S2(F, d, 5) } \
  else if constexpr (S1 == 6) { NPUQ_AMX_SWITCH_S2(F, d, 6) } else { NPUQ_AMX_SWITCH_S2(F, d, 7) }
#define NPUQ_AMX_SWITCH_DP(F)                                                                    \
  if constexpr (D == 0) { NPUQ_AMX_SWITCH_S1(F, 0) } else if constexpr (D == 1) { NPUQ_AMX_SWITCH_S1(F, 1) } \
  else if constexpr (D == 2) { NPUQ_AMX_SWITCH_S1(F, 2) } else if constexpr (D == 3) { NPUQ_AMX_SWITCH_S1(F, 3) } \
  else if constexpr (D == 4) { NPUQ_AMX_SWITCH_S1(F, 4) } else if constexpr (D == 5) { NPUQ_AMX_SWITCH_S1(F, 5) } \
  else if constexpr (D == 6) { NPUQ_AMX_SWITCH_S1(F, 6) } else { NPUQ_AMX_SWITCH_S1(F, 7) }
#endif

NPUQ_AMX_INLINE void amx_load_config(const amx_tile_config& cfg) {
  NPUQ_AMX_BARRIER();
  _tile_loadconfig(&cfg);
}

NPUQ_AMX_INLINE void amx_tile_release() { _tile_release(); }

template <int T>
NPUQ_AMX_INLINE void amx_tile_load(const void* base, std::int64_t stride) {
  static_assert(T >= 0 && T < amx_tiles, "amx: tiles 0-7");
  NPUQ_AMX_BARRIER();
#define NPUQ_AMX_LOAD(t) _tile_loadd(t, base, stride)
  NPUQ_AMX_SWITCH_T(NPUQ_AMX_LOAD)
#undef NPUQ_AMX_LOAD
}

template <int T>
NPUQ_AMX_INLINE void amx_tile_store(void* base, std::int64_t stride) {
  static_assert(T >= 0 && T < amx_tiles, "amx: tiles 0-7");
#define NPUQ_AMX_STORE(t) _tile_stored(t, base, stride)
  NPUQ_AMX_SWITCH_T(NPUQ_AMX_STORE)
#undef NPUQ_AMX_STORE
}

template <int T>
NPUQ_AMX_INLINE void amx_tile_zero() {
  static_assert(T >= 0 && T < amx_tiles, "amx: tiles 0-7");
  NPUQ_AMX_SWITCH_T(_tile_zero)
}

// tdpb[su][su]d: tile D += S1 x S2, their bytes signed or not as ASigned and BSigned say
// (tdpbusd: unsigned x signed, tdpbsud, tdpbssd, tdpbuud).
template <bool ASigned, bool BSigned, int D, int S1, int S2>
NPUQ_AMX_INLINE void amx_dp() {
  static_assert(D >= 0 && D < amx_tiles && S1 >= 0 && S1 < amx_tiles && S2 >= 0 && S2 < amx_tiles, "amx: tiles 0-7");
  static_assert(D != S1 && D != S2 && S1 != S2, "amx: tdpb*d needs three different tiles");
  if constexpr (!ASigned && BSigned) { NPUQ_AMX_SWITCH_DP(_tile_dpbusd) }
  else if constexpr (ASigned && !BSigned) { NPUQ_AMX_SWITCH_DP(_tile_dpbsud) }
  else if constexpr (ASigned && BSigned) { NPUQ_AMX_SWITCH_DP(_tile_dpbssd) }
  else { NPUQ_AMX_SWITCH_DP(_tile_dpbuud) }
}

#undef NPUQ_AMX_SWITCH_T
#undef NPUQ_AMX_SWITCH_S2
#undef NPUQ_AMX_SWITCH_S1
#undef NPUQ_AMX_SWITCH_DP
#undef NPUQ_AMX_INLINE
#undef NPUQ_AMX_BARRIER

#endif

}  // namespace simd_detail
}  // namespace npuq

#endif
