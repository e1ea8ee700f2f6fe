// CPU feature detection and the instruction-set cap.
//
// The simd backend picks its kernels at run time, so an application compiled with plain -O2
// runs the best kernels the CPU offers and never an instruction it lacks. Detection runs once
// per process (CPUID + XGETBV on x86, including the OS's permission to use AVX-512 and AMX state;
// HWCAP on aarch64). The level can be capped, for tests and benchmarks that force each level:
// process-wide by the NPUQ_ISA environment variable (read once) or npuq::set_isa_cap(), and per
// call by constructing the backend value with a cap, e.g. `npuq::simd_backend{npuq::isa::avx2}`.
#pragma once

#include <atomic>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "npuq/core/isa.hpp"
#include "npuq/core/level_table.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#define NPUQ_ARCH_X86_64 1
#include <cpuid.h>
#elif defined(__aarch64__)
#define NPUQ_ARCH_AARCH64 1
#if defined(__linux__)
#include <sys/auxv.h>
#endif
#endif

#if defined(__linux__) && defined(NPUQ_ARCH_X86_64)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace npuq {

struct cpu_info {
  bool avx2 = false, fma = false, avx_vnni = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512_vnni = false;
  bool amx_tile = false, amx_int8 = false;
  bool neon = false, dotprod = false, i8mm = false;

  // Every level this CPU can run and npuq has kernels for (a table in level_table.hpp),
  // plainest first (always starts with portable).
  std::vector<isa> levels() const {
    std::vector<isa> all = hardware_levels(), v;
    for (isa l : all)
      if (find_level_table(l) != nullptr) v.push_back(l);
    return v;
  }
  // Every level this CPU can run, whether or not npuq has kernels for it.
  std::vector<isa> hardware_levels() const {
    std::vector<isa> v{isa::portable};
    if (avx2 && fma) v.push_back(isa::avx2);
    if (avx2 && avx_vnni) v.push_back(isa::avx_vnni);
    if (avx512f && avx512bw && avx512vl && avx512_vnni) v.push_back(isa::avx512_vnni);
    if (amx_tile && amx_int8 && avx512_vnni) v.push_back(isa::amx_int8);
    if (neon) v.push_back(isa::neon);
    if (neon && dotprod) v.push_back(isa::neon_dotprod);
    if (neon && dotprod && i8mm) v.push_back(isa::neon_i8mm);
    return v;
  }
  bool supports(isa l) const {
    for (isa x : levels())
      if (x == l) return true;
    return false;
  }
};

// Linux requires a process to ask for the AMX tile data state before using it. Returns true
// when AMX may be used. Called once, by CPU detection: AMX is listed only when granted.
inline bool request_amx_permission() {
#if defined(__linux__) && defined(NPUQ_ARCH_X86_64)
  static const bool granted = [] {
    constexpr long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
    return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
  }();
  return granted;
#else
  return false;
#endif
}

namespace detail {

inline cpu_info detect_cpu() {
  cpu_info c;
#if defined(NPUQ_ARCH_X86_64)
  unsigned a = 0, b = 0, cx = 0, d = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return c;
  __cpuid_count(1, 0, a, b, cx, d);
  const bool osxsave = (cx >> 27) & 1, avx = (cx >> 28) & 1, fma = (cx >> 12) & 1;
  if (!osxsave || !avx) return c;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool os_ymm = (xcr0_lo & 0x6) == 0x6;
  const bool os_zmm = (xcr0_lo & 0xE6) == 0xE6;
  const bool os_amx = (xcr0_lo & 0x60000) == 0x60000;  // XTILECFG | XTILEDATA
  __cpuid_count(7, 0, a, b, cx, d);
  const unsigned ebx7 = b, ecx7 = cx, edx7 = d;
  __cpuid_count(7, 1, a, b, cx, d);
  const unsigned eax71 = a;
  c.avx2 = os_ymm && ((ebx7 >> 5) & 1);
  c.fma = os_ymm && fma;
  c.avx_vnni = os_ymm && ((eax71 >> 4) & 1);
  c.avx512f = os_zmm && ((ebx7 >> 16) & 1);
  c.avx512bw = os_zmm && ((ebx7 >> 30) & 1);
  c.avx512vl = os_zmm && ((ebx7 >> 31) & 1);
  c.avx512_vnni = os_zmm && ((ecx7 >> 11) & 1);
  c.amx_tile = os_amx && ((edx7 >> 24) & 1);
  c.amx_int8 = os_amx && ((edx7 >> 25) & 1);
  if (c.amx_tile && c.amx_int8 && !request_amx_permission()) c.amx_tile = c.amx_int8 = false;
#if defined(NPUQ_X86_EMULATED) && NPUQ_X86_EMULATED
  // The emulated-ISA build (x86/intrin.hpp): every x86 level's kernels run through SIMDe and
  // the portable AMX tile layer, whatever this CPU has.
  c.avx2 = c.fma = c.avx_vnni = c.avx512f = c.avx512bw = c.avx512vl = c.avx512_vnni = c.amx_tile = c.amx_int8 = true;
#endif
#elif defined(NPUQ_ARCH_AARCH64)
  c.neon = true;  // mandatory in ARMv8-A
#if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  c.dotprod = (hw >> 20) & 1;  // HWCAP_ASIMDDP
  c.i8mm = (hw2 >> 13) & 1;    // HWCAP2_I8MM
#endif
#endif
  return c;
}

inline isa best_level(const cpu_info& c, isa cap) {
  isa best = isa::portable;
  for (isa l : c.levels())
    if (static_cast<int>(l) <= static_cast<int>(cap)) best = l;
  return best;
}

// The process-wide cap: NPUQ_ISA at first use, or set_isa_cap().
inline std::atomic<int>& isa_cap_storage() {
  static std::atomic<int> cap([] {
    const char* env = std::getenv("NPUQ_ISA");
    isa l = isa::best;
    if (env != nullptr && *env != '\0' && !parse_isa(env, &l)) {
      std::fprintf(stderr, "npuq: NPUQ_ISA=%s is not a known level; using portable kernels\n", env);
      l = isa::portable;
    }
    return static_cast<int>(l);
  }());
  return cap;
}

}  // namespace detail

// Features of this CPU, detected once.
inline const cpu_info& cpu() {
  static const cpu_info info = detail::detect_cpu();
  return info;
}

inline isa isa_cap() { return static_cast<isa>(detail::isa_cap_storage().load(std::memory_order_relaxed)); }
inline void set_isa_cap(isa cap) { detail::isa_cap_storage().store(static_cast<int>(cap), std::memory_order_relaxed); }

// The level kernels run at under a cap (the per-call cap and the process cap both apply).
inline isa active_isa(isa call_cap = isa::best) {
  const isa process = isa_cap();
  const isa cap = static_cast<int>(call_cap) < static_cast<int>(process) ? call_cap : process;
  return detail::best_level(cpu(), cap);
}

}  // namespace npuq
