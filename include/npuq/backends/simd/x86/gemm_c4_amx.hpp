// AMX-INT8 GEMM microkernel on the c4 packed format (Sapphire Rapids and later).
//
// One tdpbusd multiplies a 16-row x 64-byte A tile by a 16 x 64-byte B tile into 16 x 16 int32
// sums: 16384 multiply-adds, 256 times a zmm vpdpbusd. A c4 panel (gemm_pack.hpp) is already the
// B operand's layout: K group g holds the 16 columns' 4 bytes side by side (64 bytes), so 16
// consecutive groups, 1 KiB of the panel, are one B tile loaded with stride 64, and A is its
// rows' bytes as they are (stride lda). As in the VNNI kernels, A's bytes are of the other
// signedness than B's (dot_a_t): int8 weights use tdpbusd (A unsigned), uint8 weights tdpbsud
// (A signed). The int32 sums wrap modulo 2^32; the driver adds the zero-point compensation.
//
// The tile is up to 32 rows x 2 panels: C in tmm0-3 (rows 0-15 and 16-31 of panel 0 and 1), A
// in tmm4/tmm5, B in tmm6/tmm7, so each K step loads four tiles for four dot products (a 16-row
// tile would load three for two). Every step is a whole 1 KiB B tile: the c4 format pads each
// panel with zero K groups to a multiple of 16 (panel_groups), so the last step's extra
// groups add 0 whatever A holds there, and A rows are at least that long (lda >= the groups'
// bytes rounded up to 64, which the driver's blocks are).
//
// Loading a tile configuration (ldtilecfg) costs about as much as a short K loop, so a thread
// keeps its configuration from call to call (amx_configure_gemm loads it only when the row count
// changes) and the driver releases the tiles once at the end of its work (amx_release_tiles),
// which leaves the state clean for other code and cheap for context switches. The caller has
// asked Linux for the AMX state (request_amx_permission).
#pragma once

#include <cstdint>
#include <type_traits>

#include "npuq/backends/simd/gemm_pack.hpp"
#include "npuq/backends/simd/x86/amx_tiles.hpp"

#if defined(NPUQ_ARCH_X86_64)

namespace npuq {
namespace simd_detail {

constexpr int amx_tile_rows = 2 * amx_max_rows;  // rows of the largest AMX GEMM tile

// The row count (1-32) whose tile shapes (amx_gemm_config) this thread's tiles hold; 0: none,
// as after amx_release_tiles.
inline int& amx_loaded_rows() {
  static thread_local int rows = 0;
  return rows;
}

// acc tile D += A tile S1 x B tile S2, in the instruction that matches A's and B's signedness.
template <class A, class B, int D, int S1, int S2>
NPUQ_TARGET_AMX inline void amx_dot() {
  amx_dp<std::is_signed<A>::value, std::is_signed<B>::value, D, S1, S2>();
}

// The tile shapes for `rows` (1-32) rows: C tiles 0-3 (0/1: rows 0-15 of panel 0/1; 2/3: rows
// 16-31), A tiles 4/5, B tiles 6/7. The same for one panel or two (a one-panel call leaves tiles
// 1, 3 and 7 unused), so alternating them, as an odd panel count does, keeps the configuration.
inline amx_tile_config amx_gemm_config(int rows) {
  amx_tile_config cfg;
  cfg.palette_id = 1;
  const auto shape = [&cfg](int t, int r, int colsb) {
    cfg.rows[t] = static_cast<std::uint8_t>(r);
    cfg.colsb[t] = static_cast<std::uint16_t>(colsb);
  };
  const int top = rows < amx_max_rows ? rows : amx_max_rows, bottom = rows - top;
  shape(0, top, 64);
  shape(4, top, 64);
  shape(1, top, 64);
  shape(6, amx_max_rows, 64);
  shape(7, amx_max_rows, 64);
  if (bottom > 0) {
    shape(2, bottom, 64);
    shape(3, bottom, 64);
    shape(5, bottom, 64);
  }
  return cfg;
}

// Loads the tile shapes for `rows` unless the thread's tiles already hold them (ldtilecfg also
// zeroes every tile).
NPUQ_TARGET_AMX inline void amx_configure_gemm(int rows) {
  int& loaded = amx_loaded_rows();
  if (loaded == rows) return;
  amx_load_config(amx_gemm_config(rows));
  loaded = rows;
}

// Returns the thread's tiles to the init state; the next kernel call configures them again.
NPUQ_TARGET_AMX inline void amx_release_tiles() {
  int& loaded = amx_loaded_rows();
  if (loaded == 0) return;
  amx_tile_release();
  loaded = 0;
}

// The K loop and the stores for 1-16 rows (Two = false) or 17-32 rows (Two = true): `steps`
// steps of 16 K groups, step s's A bytes at a + 64 * s or, with Taps, at a + a_steps[s] (rows lda
// apart either way). c is [panel][row][16], panel 1 c_panel int32s after panel 0.
template <int NP, bool Two, bool Taps, class A, class B>
NPUQ_TARGET_AMX __attribute__((noinline)) void gemm_c4_amx_tile(int rows, std::int64_t steps, const A* a, const std::int64_t* a_steps,
                                                               std::int64_t lda, const B* b, std::int64_t ldp, std::int32_t* c,
                                                               std::int64_t c_panel) {
  amx_configure_gemm(rows);
  const std::int64_t a1 = amx_max_rows * lda;  // rows 16-31 (Two only)
  const B* b1 = b + ldp;                        // panel 1 (NP == 2 only)
  amx_tile_zero<0>();
  if constexpr (NP == 2) amx_tile_zero<1>();
  if constexpr (Two) {
    amx_tile_zero<2>();
    if constexpr (NP == 2) amx_tile_zero<3>();
  }
  // Each load as late as its first dot product allows, so it overlaps the one before.
  for (std::int64_t s = 0; s < steps; ++s) {
    const A* as = a + (Taps ? a_steps[s] : s * 64);
    amx_tile_load<4>(as, lda);
    amx_tile_load<6>(b + s * 1024, 64);
    amx_dot<A, B, 0, 4, 6>();
    if constexpr (NP == 2) {
      amx_tile_load<7>(b1 + s * 1024, 64);
      amx_dot<A, B, 1, 4, 7>();
    }
    if constexpr (Two) {
      amx_tile_load<5>(as + a1, lda);
      amx_dot<A, B, 2, 5, 6>();
      if constexpr (NP == 2) amx_dot<A, B, 3, 5, 7>();
    }
  }
  // Panel q's rows 16-31 after its rows 0-15.
  const std::int64_t c1 = c_panel;
  amx_tile_store<0>(c, 64);
  if constexpr (NP == 2) amx_tile_store<1>(c + c1, 64);
  if constexpr (Two) {
    amx_tile_store<2>(c + amx_max_rows * 16, 64);
    if constexpr (NP == 2) amx_tile_store<3>(c + c1 + amx_max_rows * 16, 64);
  }
}

template <bool Taps, class A, class B>
void gemm_c4_amx_rows(int rows, int np, std::int64_t steps, const A* a, const std::int64_t* a_steps, std::int64_t lda, const B* b,
                      std::int64_t ldp, std::int32_t* c) {
  constexpr std::int64_t c1 = amx_tile_rows * 16;
  if (rows > amx_max_rows) {
    if (np == 2) gemm_c4_amx_tile<2, true, Taps, A, B>(rows, steps, a, a_steps, lda, b, ldp, c, c1);
    else gemm_c4_amx_tile<1, true, Taps, A, B>(rows, steps, a, a_steps, lda, b, ldp, c, c1);
  } else {
    if (np == 2) gemm_c4_amx_tile<2, false, Taps, A, B>(rows, steps, a, a_steps, lda, b, ldp, c, c1);
    else gemm_c4_amx_tile<1, false, Taps, A, B>(rows, steps, a, a_steps, lda, b, ldp, c, c1);
  }
}

// A tile of `rows` (1-32) rows x np (1-2) panels in A's own signedness (the four tdpb*d cover
// every pair): K step s (16 groups, 64 bytes of each row) reads rows lda apart from a + a_steps[s]
// (the direct convolution's taps read in place, conv2d.hpp) or, a_steps null, from a + 64 * s.
// c as gemm_c4_amx's, except that panel 1 starts 32 rows after panel 0.
template <class A, class B>
void gemm_c4_amx_taps(int rows, int np, std::int64_t steps, const A* a, const std::int64_t* a_steps, std::int64_t lda, const B* b,
                      std::int64_t ldp, std::int32_t* c) {
  if (a_steps != nullptr) gemm_c4_amx_rows<true>(rows, np, steps, a, a_steps, lda, b, ldp, c);
  else gemm_c4_amx_rows<false>(rows, np, steps, a, a_steps, lda, b, ldp, c);
}

// c[p*MR*16 + m*16 + j] = sum over k < 4*kg of a[m*lda + k] * b[p*ldp + (k/4)*64 + j*4 + k%4],
// for m < MR, p < NP, j < 16; c is written, not accumulated into. b's panels hold
// c4_panel_groups(kg) groups (zero past kg) and a's rows at least 64 * ceil(kg / 16) bytes. The
// tiles stay configured after the call (amx_release_tiles).
template <int MR, int NP, class B>
void gemm_c4_amx(std::int64_t kg, const dot_a_t<B>* a, std::int64_t lda, const B* b, std::int64_t ldp, std::int32_t* c) {
  static_assert(MR >= 1 && MR <= amx_tile_rows && (NP == 1 || NP == 2), "gemm_c4_amx: 1-32 rows, 1-2 panels");
  static_assert(std::is_same<B, std::int8_t>::value || std::is_same<B, std::uint8_t>::value, "gemm_c4_amx: int8 or uint8 B");
  gemm_c4_amx_tile<NP, (MR > amx_max_rows), false, dot_a_t<B>, B>(MR, (kg + amx_max_rows - 1) / amx_max_rows, a, nullptr, lda, b, ldp, c,
                                                                  MR * 16);
}

}  // namespace simd_detail
}  // namespace npuq

#endif
