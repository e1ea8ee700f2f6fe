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
// Tile use, fixed: C panels in tmm0/tmm1, the A step in tmm2, the B steps in tmm3/tmm4, and the
// K tail (kg % 16 groups) in tmm5 (A, 4 * tail bytes a row) and tmm6/tmm7 (B, tail rows), so a
// tail needs no padded copy and reads exactly the panel's bytes. The configuration depends on
// MR, NP and the tail only: it is loaded once per call, the inner loop is tile loads and dot
// products, and the tiles are released at the end (the state is clean for other code and for
// context switches). The caller has asked Linux for the AMX state (request_amx_permission).
#pragma once

#include <cstdint>
#include <type_traits>

#include "npuq/backends/simd/gemm_pack.hpp"
#include "npuq/backends/simd/x86/amx_tiles.hpp"

#if defined(NPUQ_ARCH_X86_64)

namespace npuq {
namespace simd_detail {

// acc tile D += A tile S1 x B tile S2, in the instruction that matches B's signedness.
template <class B, int D, int S1, int S2>
NPUQ_TARGET_AMX inline void amx_dot() {
  if constexpr (std::is_same<B, std::int8_t>::value) amx_dpbusd<D, S1, S2>();
  else amx_dpbsud<D, S1, S2>();
}

// c[p*MR*16 + m*16 + j] = sum over k < 4*kg of a[m*lda + k] * b[p*ldp + (k/4)*64 + j*4 + k%4],
// for m < MR, p < NP, j < 16; c is written, not accumulated into.
template <int MR, int NP, class B>
NPUQ_TARGET_AMX void gemm_c4_amx(std::int64_t kg, const dot_a_t<B>* a, std::int64_t lda, const B* b, std::int64_t ldp,
                                 std::int32_t* c) {
  static_assert(MR >= 1 && MR <= 16 && (NP == 1 || NP == 2), "gemm_c4_amx: 1-16 rows, 1-2 panels");
  static_assert(std::is_same<B, std::int8_t>::value || std::is_same<B, std::uint8_t>::value, "gemm_c4_amx: int8 or uint8 B");
  constexpr int c0 = 0, c1 = 1, ta = 2, tb0 = 3, tb1 = 4, ta_tail = 5, tb0_tail = 6, tb1_tail = 7;
  const std::int64_t steps = kg / 16;
  const int tail = static_cast<int>(kg % 16);

  amx_tile_config cfg;
  cfg.palette_id = 1;
  const auto shape = [&cfg](int t, int rows, int colsb) {
    cfg.rows[t] = static_cast<std::uint8_t>(rows);
    cfg.colsb[t] = static_cast<std::uint16_t>(colsb);
  };
  shape(c0, MR, 64);
  shape(ta, MR, 64);
  shape(tb0, 16, 64);
  if constexpr (NP == 2) {
    shape(c1, MR, 64);
    shape(tb1, 16, 64);
  }
  if (tail) {
    shape(ta_tail, MR, 4 * tail);
    shape(tb0_tail, tail, 64);
    if constexpr (NP == 2) shape(tb1_tail, tail, 64);
  }
  amx_load_config(cfg);

  const B* b0 = b;
  const B* b1 = NP == 2 ? b + ldp : b;  // panel 1 (unused with one panel)
  amx_tile_zero<c0>();
  if constexpr (NP == 2) amx_tile_zero<c1>();
  for (std::int64_t s = 0; s < steps; ++s) {
    amx_tile_load<ta>(a + s * 64, lda);
    amx_tile_load<tb0>(b0 + s * 1024, 64);
    if constexpr (NP == 2) amx_tile_load<tb1>(b1 + s * 1024, 64);
    amx_dot<B, c0, ta, tb0>();
    if constexpr (NP == 2) amx_dot<B, c1, ta, tb1>();
  }
  if (tail) {
    amx_tile_load<ta_tail>(a + steps * 64, lda);
    amx_tile_load<tb0_tail>(b0 + steps * 1024, 64);
    if constexpr (NP == 2) amx_tile_load<tb1_tail>(b1 + steps * 1024, 64);
    amx_dot<B, c0, ta_tail, tb0_tail>();
    if constexpr (NP == 2) amx_dot<B, c1, ta_tail, tb1_tail>();
  }
  amx_tile_store<c0>(c, 64);
  if constexpr (NP == 2) amx_tile_store<c1>(c + MR * 16, 64);
  amx_tile_release();
}

}  // namespace simd_detail
}  // namespace npuq

#endif
