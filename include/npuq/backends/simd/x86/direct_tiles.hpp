// Tiles whose A operand is read where it lies, for the AMX direct GEMM (gemm.hpp) and the direct
// convolutions on AMX and AVX-512 VNNI (conv2d.hpp).
//
// The other x86 paths copy A into a block first, flipping the sign bit where A's signedness is not
// the one the kernel's instruction takes. A tile can instead come straight from the caller's matrix
// (rows a row pitch apart) or image (pixels a pixel pitch apart, one input offset per K step): AMX
// has a dot product for each signedness pair and loads a tile from rows any stride apart; the
// AVX-512 VNNI kernel broadcasts each row's 4 bytes from where they lie and flips their sign bits
// in the register. What is left is the same for all: every panel of the weights against the tile,
// then the stage for 8-bit outputs inside the kernel (stage_tiles_dispatch) or the AVX-512 store
// for the others.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "npuq/backends/simd/gemm_pack.hpp"
#include "npuq/backends/simd/output_stage.hpp"
#include "npuq/backends/simd/x86/gemm_c4_amx.hpp"
#include "npuq/backends/simd/x86/gemm_c4_avx512_stage.hpp"
#include "npuq/backends/simd/x86/gemm_c4_vnni.hpp"
#include "npuq/backends/simd/x86/output_stage_avx512.hpp"

#if defined(NPUQ_ARCH_X86_64)

namespace npuq {
namespace simd_detail {

// Whether the direct paths can write `out` with stage `st` and weights `w` (the caller checks its
// own layout): no weight zero points (their correction needs A's row sums, which a tile read in
// place does not give), a stage the AVX-512 store handles, an output that is not sub-byte.
template <class O, class B>
bool direct_output_ok(const packed_gemm_weights<B>& w, const tile_output_stage& st) {
  if constexpr (element_traits<O>::packed) {
    return false;
  } else {
    return !w.has_zero_points() && avx512_stage_supported(st);
  }
}

// The tile kernels of the direct paths: rows (<= TR) rows x np panels of sums ([panel][TR rows][16])
// of the rows lda apart whose K step s reads from a + a_steps[s] (a_steps null: a + step * s).
struct amx_tile_kernel {
  static constexpr int tile_rows = amx_tile_rows;
  static constexpr bool partial_rows = true;  // a tile of fewer rows reads only theirs
  template <class A, class B>
  void operator()(int rows, int np, std::int64_t steps, const A* a, const std::int64_t* a_steps, std::int64_t lda, const B* b,
                  std::int64_t ldp, std::int32_t* c) const {
    gemm_c4_amx_taps<A, B>(rows, np, steps, a, a_steps, lda, b, ldp, c);
  }
};

// AVX-512 VNNI: 8 rows, K steps of `groups` groups of 4 bytes, A's sign bits flipped when Shift.
template <int Shift>
struct vnni_tile_kernel {
  static constexpr int tile_rows = 8;
  static constexpr bool partial_rows = false;  // every tile reads all 8 rows
  std::int64_t groups;
  template <class A, class B>
  void operator()(int, int np, std::int64_t steps, const A* a, const std::int64_t* a_steps, std::int64_t lda, const B* b,
                  std::int64_t ldp, std::int32_t* c) const {
    const auto* bytes = reinterpret_cast<const unsigned char*>(a);
    if (np == 2) gemm_c4_avx512_vnni_steps<8, 2, B, Shift>(steps, groups, bytes, a_steps, lda, b, ldp, c);
    else gemm_c4_avx512_vnni_steps<8, 1, B, Shift>(steps, groups, bytes, a_steps, lda, b, ldp, c);
  }
};

// Tiles of A (element type A) against every panel of w with Kernel (one of the above), stored
// through `st` (the stage for the bytes the kernel multiplies: x86_dot_stage(stage, w, -(A's zero
// point)) on AMX, the gathered path's on AVX-512 VNNI) into `out`.
template <class A, class B, class O, class Kernel>
class direct_tiles {
 public:
  static constexpr int tile_rows = Kernel::tile_rows;
  static constexpr bool partial_rows = Kernel::partial_rows;

  direct_tiles(const packed_gemm_weights<B>& w, const tile_output_stage& st, const TensorView<O>& out, Kernel kernel = {})
      : w_(w), st_(st), out_(out.data()), kind_(stage_kernel_index(st.kind)), kernel_(kernel) {
    stage_tiles_ = sizeof(O) == 1 && kind_ >= 0 && st.st->zero_point >= -stage_kernel_max_zero_point &&
                   st.st->zero_point <= stage_kernel_max_zero_point;
  }

  // Output rows [0, rows) at out + row_off[m], from the sums of one tile of rows_read (>= rows,
  // <= tile_rows; tile_rows where !partial_rows) rows whose K step s reads the rows lda apart from
  // a + a_steps[s] (a_steps null: a + step * s). Rows past `rows` are computed and dropped.
  void run(int rows, const std::int64_t* row_off, int rows_read, const A* a, const std::int64_t* a_steps, std::int64_t lda,
           std::int64_t steps) const {
    each_panel_pair(1, rows, row_off, [&](std::int64_t, int np, std::int64_t p0, std::int32_t* c) {
      kernel_(rows_read, np, steps, a, a_steps, lda, w_.panel(p0), w_.panel_stride(), c);
    });
  }

  // `count` whole tiles: tile i's rows lda apart from a + i * tile_step (K steps as in run), its
  // output rows at out + row_off[tile_rows * i + m]. Each panel pair meets every tile in turn (the
  // tiles' A rows stay in L1 when the caller sizes the run so).
  void run_tiles(std::int64_t count, const std::int64_t* row_off, const A* a, std::int64_t tile_step, const std::int64_t* a_steps,
                 std::int64_t lda, std::int64_t steps) const {
    each_panel_pair(count, tile_rows, row_off, [&](std::int64_t i, int np, std::int64_t p0, std::int32_t* c) {
      kernel_(tile_rows, np, steps, a + i * tile_step, a_steps, lda, w_.panel(p0), w_.panel_stride(), c);
    });
  }

 private:
  // For each pair of panels: `count` tiles, tile(i, np, p0, c) writing tile i's sums ([panel][TR
  // rows][16]), then the first `rows` rows of each stored at out + row_off[TR i + m].
  template <class TileFn>
  void each_panel_pair(std::int64_t count, int rows, const std::int64_t* row_off, const TileFn& tile) const {
    constexpr int tr = tile_rows;
    const std::int64_t N = w_.N(), panels = w_.panels();
    for (std::int64_t p0 = 0; p0 < panels; p0 += 2) {
      const int np = static_cast<int>(std::min<std::int64_t>(2, panels - p0));
      const std::int64_t cols = std::min<std::int64_t>(np * nr, N - p0 * nr);
      if (stage_tiles_) {
        const stage_tile_out to{reinterpret_cast<unsigned char*>(out_) + p0 * nr, row_off, std::is_unsigned<O>::value};
        stage_tiles_dispatch<tr>(kind_, np, [&](std::int64_t i, std::int32_t* c) { tile(i, np, p0, c); }, st_, p0 * nr, cols, to, count, rows);
        continue;
      }
      alignas(64) std::int32_t acc[tr * 2 * nr];
      for (std::int64_t i = 0; i < count; ++i) {
        tile(i, np, p0, acc);
        const std::int64_t* offs = row_off + tr * i;
        for (int q = 0; q < np; ++q) {
          O* base = out_ + (p0 + q) * nr;
          store_tile_avx512<O>(st_, acc + q * tr * nr, rows, 1, (p0 + q) * nr, N - (p0 + q) * nr,
                               [base, offs](int m) { return base + offs[m]; });
        }
      }
    }
  }

  const packed_gemm_weights<B>& w_;
  const tile_output_stage& st_;
  O* out_;
  int kind_;
  Kernel kernel_;
  bool stage_tiles_ = false;
};

template <class A, class B, class O>
using amx_direct_tiles = direct_tiles<A, B, O, amx_tile_kernel>;

}  // namespace simd_detail
}  // namespace npuq

#endif
