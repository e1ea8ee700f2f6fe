// One kernel table per ISA level: which kernel family serves each simd op at that level.
//
// Every simd op (and the NPU emulator's tile arithmetic) asks this table, never the ISA level
// itself, which kernels to run: the GEMM microkernels (conv2d and the attention prefill run on
// them too), depthwise, int4 (W4A8), sparse, softmax, the attention decode kernels and the
// vectorized output stage. A family names a folder of kernels and is the suffix of their names
// (`gemm_s8s8_8x32c4_avx512_vnni`), so a test can prove that the level it forced ran the kernels
// this table lists. A level appears in `cpu().levels()` only when it has a table here, and
// adding a level is one kernel folder plus one row below (and, for a new family, one case in the
// selector of each op it serves).
#pragma once

#include <cstdint>

#include "npuq/core/isa.hpp"

namespace npuq {

enum class kernel_family : std::uint8_t { portable, avx2, avx_vnni, avx512_vnni, amx_int8, neon, neon_dotprod, neon_i8mm };

// The suffix of the kernels' names.
inline const char* to_string(kernel_family f) {
  switch (f) {
    case kernel_family::portable: return "portable";
    case kernel_family::avx2: return "avx2";
    case kernel_family::avx_vnni: return "avx_vnni";
    case kernel_family::avx512_vnni: return "avx512_vnni";
    case kernel_family::amx_int8: return "amx_int8";
    case kernel_family::neon: return "neon";
    case kernel_family::neon_dotprod: return "neon_dotprod";
    case kernel_family::neon_i8mm: return "neon_i8mm";
  }
  return "?";
}

struct level_table {
  isa level;
  kernel_family gemm;          // GEMM and conv2d microkernels (their packing format follows)
  kernel_family depthwise;     // depthwise conv2d
  kernel_family int4;          // W4A8 GEMM, group-wise int4
  kernel_family sparse;        // 2:4, block CSR and CSR GEMM
  kernel_family softmax;       // softmax output tables
  kernel_family decode;        // attention decode (dot rows, axpy rows)
  kernel_family output_stage;  // vectorized requantization of int32 tiles
};

namespace detail {
using kf = kernel_family;
// clang-format off
inline constexpr level_table level_tables[] = {
  //  level              gemm              depthwise         int4              sparse    softmax   decode    output stage
  {isa::portable,    kf::portable,     kf::portable,     kf::portable,     kf::portable, kf::portable, kf::portable, kf::portable},
  {isa::avx2,        kf::avx2,         kf::avx2,         kf::avx2,         kf::avx2, kf::avx2, kf::avx2, kf::avx2},
  {isa::avx_vnni,    kf::avx_vnni,     kf::avx2,         kf::avx_vnni,     kf::avx2, kf::avx2, kf::avx2, kf::avx2},
  {isa::avx512_vnni, kf::avx512_vnni,  kf::avx512_vnni,        kf::avx512_vnni,  kf::avx512_vnni, kf::avx512_vnni, kf::avx512_vnni, kf::avx512_vnni},
  {isa::amx_int8,    kf::amx_int8,     kf::avx512_vnni,        kf::avx512_vnni,  kf::avx512_vnni, kf::avx512_vnni, kf::avx512_vnni, kf::avx512_vnni},
  {isa::neon,        kf::neon,         kf::portable,     kf::neon,         kf::portable, kf::portable, kf::neon, kf::portable},
  {isa::neon_dotprod, kf::neon_dotprod, kf::portable,    kf::neon_dotprod, kf::portable, kf::portable, kf::neon, kf::portable},
  {isa::neon_i8mm,   kf::neon_i8mm,    kf::portable,     kf::neon_dotprod, kf::portable, kf::portable, kf::neon, kf::portable},
};
// clang-format on
}  // namespace detail

// The table of a level, or null when npuq has no kernels for it.
inline const level_table* find_level_table(isa level) {
  for (const level_table& t : detail::level_tables)
    if (t.level == level) return &t;
  return nullptr;
}

// The table of a level that cpu().levels() listed (portable's for any other).
inline const level_table& level_kernels(isa level) {
  const level_table* t = find_level_table(level);
  return t != nullptr ? *t : detail::level_tables[0];
}

}  // namespace npuq
