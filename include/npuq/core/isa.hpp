// The instruction-set levels npuq's simd backend knows, and their names.
//
// Kept apart from CPU detection (cpu_features.hpp) so the per-level kernel table
// (level_table.hpp) can name levels without depending on detection.
#pragma once

#include <cstdint>
#include <cstring>

namespace npuq {

// Instruction-set levels, ordered within each architecture from plain to best.
enum class isa : std::uint8_t {
  portable = 0,  // plain C++ (any CPU)
  // x86-64
  avx2 = 10,
  avx_vnni = 11,
  avx512_vnni = 12,
  amx_int8 = 13,
  // aarch64
  neon = 20,
  neon_dotprod = 21,
  neon_i8mm = 22,
  best = 255,  // no cap
};

inline const char* to_string(isa l) {
  switch (l) {
    case isa::portable: return "portable";
    case isa::avx2: return "avx2";
    case isa::avx_vnni: return "avx_vnni";
    case isa::avx512_vnni: return "avx512_vnni";
    case isa::amx_int8: return "amx_int8";
    case isa::neon: return "neon";
    case isa::neon_dotprod: return "neon_dotprod";
    case isa::neon_i8mm: return "neon_i8mm";
    case isa::best: return "best";
  }
  return "?";
}

// Parses an NPUQ_ISA value ("avx2", "amx", "portable", ...); returns false if unknown.
inline bool parse_isa(const char* s, isa* out) {
  struct entry {
    const char* name;
    isa level;
  };
  static const entry names[] = {{"portable", isa::portable},       {"scalar", isa::portable},      {"avx2", isa::avx2},
                                {"avx_vnni", isa::avx_vnni},       {"avxvnni", isa::avx_vnni},     {"avx512_vnni", isa::avx512_vnni},
                                {"avx512vnni", isa::avx512_vnni},  {"amx", isa::amx_int8},         {"amx_int8", isa::amx_int8},
                                {"neon", isa::neon},               {"dotprod", isa::neon_dotprod}, {"neon_dotprod", isa::neon_dotprod},
                                {"i8mm", isa::neon_i8mm},          {"neon_i8mm", isa::neon_i8mm},  {"best", isa::best}};
  for (const entry& e : names)
    if (std::strcmp(s, e.name) == 0) {
      *out = e.level;
      return true;
    }
  return false;
}

}  // namespace npuq
