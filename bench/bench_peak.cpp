// The CPU's int8 multiply-accumulate ceiling per instruction family, measured with tight loops
// of independent accumulators, so kernel results can be read as a fraction of peak.
//
//   avx2_vpmaddwd        vpmaddwd + vpaddd, 16 MAC per ymm instruction: npuq's AVX2 kernels'
//                        instruction (exact for every int8/uint8 product)
//   avx2_vpmaddubsw      vpmaddubsw + vpmaddwd + vpaddd, 32 MAC: the u8 x s8 path other AVX2
//                        libraries use; its int16 intermediate saturates, so it is not exact
//   avx_vnni_ymm         {vex} vpdpbusd ymm, 32 MAC
//   avx512_vnni_zmm      vpdpbusd zmm, 64 MAC
//   amx_tdpbssd          tdpbssd on 16x16 int32 tiles with K = 64, 16384 MAC, 2x2 tile block
//   clock_dependent_adds a chain of dependent integer adds (1 cycle each): the core clock in GHz,
//                        to read GOPS / 2 / GHz as MAC per cycle
//   read_bandwidth_256MiB a sum (vpaddq, 8 ymm accumulators) over a 256 MiB buffer, 8x the
//                        32 MiB L3 of the machines in docs/benchmarks.md: one thread's DRAM read
//                        bandwidth (bytes_per_second), the roofline's memory ceiling
//                        (tools/roofline/plot_roofline.py)
//   read_bandwidth_8MiB  the same over 8 MiB: larger than L2, inside L3; the ceiling for
//                        operands that stay in L3 between calls, as they do in these benchmarks
//
// The loops are inline assembly inside functions with target attributes, so the binary builds
// with plain -O2 and runs only what the CPU (and, for AMX, the OS) allows; the others report
// "not supported on this CPU". GOPS = 2 * MAC / 1e9 per second, as everywhere else.
#include <npuq/simd.hpp>

#include "bench_common.hpp"

namespace npuq_bench {
namespace {

#if defined(NPUQ_ARCH_X86_64)

#define NPUQ_BENCH_CLOBBER_YMM                                                                                                     \
  "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", \
      "xmm15"

// Twelve independent accumulators (ymm0-11), sources ymm12/ymm13, products in ymm14/ymm15.
#define NPUQ_BENCH_MADD(acc, t) "vpmaddwd %%ymm13, %%ymm12, %%" t "\n\tvpaddd %%" t ", %%" acc ", %%" acc "\n\t"

__attribute__((target("avx2"))) void loop_vpmaddwd(std::int64_t n) {
  __asm__ volatile(
      "vpxor %%ymm0, %%ymm0, %%ymm0\n\tvmovdqa %%ymm0, %%ymm1\n\tvmovdqa %%ymm0, %%ymm2\n\tvmovdqa %%ymm0, %%ymm3\n\t"
      "vmovdqa %%ymm0, %%ymm4\n\tvmovdqa %%ymm0, %%ymm5\n\tvmovdqa %%ymm0, %%ymm6\n\tvmovdqa %%ymm0, %%ymm7\n\t"
      "vmovdqa %%ymm0, %%ymm8\n\tvmovdqa %%ymm0, %%ymm9\n\tvmovdqa %%ymm0, %%ymm10\n\tvmovdqa %%ymm0, %%ymm11\n\t"
      "vpcmpeqd %%ymm12, %%ymm12, %%ymm12\n\tvpabsw %%ymm12, %%ymm13\n\t"
      ".p2align 5\n"
      "1:\n\t" NPUQ_BENCH_MADD("ymm0", "ymm14") NPUQ_BENCH_MADD("ymm1", "ymm15") NPUQ_BENCH_MADD("ymm2", "ymm14")
          NPUQ_BENCH_MADD("ymm3", "ymm15") NPUQ_BENCH_MADD("ymm4", "ymm14") NPUQ_BENCH_MADD("ymm5", "ymm15")
              NPUQ_BENCH_MADD("ymm6", "ymm14") NPUQ_BENCH_MADD("ymm7", "ymm15") NPUQ_BENCH_MADD("ymm8", "ymm14")
                  NPUQ_BENCH_MADD("ymm9", "ymm15") NPUQ_BENCH_MADD("ymm10", "ymm14") NPUQ_BENCH_MADD("ymm11", "ymm15")
      "dec %0\n\tjnz 1b\n\tvzeroupper\n\t"
      : "+r"(n)
      :
      : NPUQ_BENCH_CLOBBER_YMM);
}
constexpr double vpmaddwd_macs_per_iter = 12 * 16;

// Ten accumulators (ymm0-9); u8 ymm12, s8 ymm13, int16 ones ymm14; products in ymm10/ymm11.
#define NPUQ_BENCH_MADDUBS(acc, t) \
  "vpmaddubsw %%ymm13, %%ymm12, %%" t "\n\tvpmaddwd %%ymm14, %%" t ", %%" t "\n\tvpaddd %%" t ", %%" acc ", %%" acc "\n\t"

__attribute__((target("avx2"))) void loop_vpmaddubsw(std::int64_t n) {
  __asm__ volatile(
      "vpxor %%ymm0, %%ymm0, %%ymm0\n\tvmovdqa %%ymm0, %%ymm1\n\tvmovdqa %%ymm0, %%ymm2\n\tvmovdqa %%ymm0, %%ymm3\n\t"
      "vmovdqa %%ymm0, %%ymm4\n\tvmovdqa %%ymm0, %%ymm5\n\tvmovdqa %%ymm0, %%ymm6\n\tvmovdqa %%ymm0, %%ymm7\n\t"
      "vmovdqa %%ymm0, %%ymm8\n\tvmovdqa %%ymm0, %%ymm9\n\t"
      "vpcmpeqd %%ymm15, %%ymm15, %%ymm15\n\tvpabsb %%ymm15, %%ymm12\n\tvpabsb %%ymm15, %%ymm13\n\tvpabsw %%ymm15, %%ymm14\n\t"
      ".p2align 5\n"
      "1:\n\t" NPUQ_BENCH_MADDUBS("ymm0", "ymm10") NPUQ_BENCH_MADDUBS("ymm1", "ymm11") NPUQ_BENCH_MADDUBS("ymm2", "ymm10")
          NPUQ_BENCH_MADDUBS("ymm3", "ymm11") NPUQ_BENCH_MADDUBS("ymm4", "ymm10") NPUQ_BENCH_MADDUBS("ymm5", "ymm11")
              NPUQ_BENCH_MADDUBS("ymm6", "ymm10") NPUQ_BENCH_MADDUBS("ymm7", "ymm11") NPUQ_BENCH_MADDUBS("ymm8", "ymm10")
                  NPUQ_BENCH_MADDUBS("ymm9", "ymm11")
      "dec %0\n\tjnz 1b\n\tvzeroupper\n\t"
      : "+r"(n)
      :
      : NPUQ_BENCH_CLOBBER_YMM);
}
constexpr double vpmaddubsw_macs_per_iter = 10 * 32;

// Twelve accumulators, sources in register 12/13 (ymm for AVX-VNNI, zmm for AVX-512 VNNI).
#define NPUQ_BENCH_DP(prefix, reg, i) prefix "vpdpbusd %%" reg "13, %%" reg "12, %%" reg i "\n\t"
#define NPUQ_BENCH_DP12(prefix, reg)                                                                                        \
  NPUQ_BENCH_DP(prefix, reg, "0") NPUQ_BENCH_DP(prefix, reg, "1") NPUQ_BENCH_DP(prefix, reg, "2") NPUQ_BENCH_DP(prefix, reg, "3") \
  NPUQ_BENCH_DP(prefix, reg, "4") NPUQ_BENCH_DP(prefix, reg, "5") NPUQ_BENCH_DP(prefix, reg, "6") NPUQ_BENCH_DP(prefix, reg, "7") \
  NPUQ_BENCH_DP(prefix, reg, "8") NPUQ_BENCH_DP(prefix, reg, "9") NPUQ_BENCH_DP(prefix, reg, "10") NPUQ_BENCH_DP(prefix, reg, "11")

__attribute__((target("avx2,avxvnni"))) void loop_avx_vnni(std::int64_t n) {
  __asm__ volatile(
      "vpxor %%ymm0, %%ymm0, %%ymm0\n\tvmovdqa %%ymm0, %%ymm1\n\tvmovdqa %%ymm0, %%ymm2\n\tvmovdqa %%ymm0, %%ymm3\n\t"
      "vmovdqa %%ymm0, %%ymm4\n\tvmovdqa %%ymm0, %%ymm5\n\tvmovdqa %%ymm0, %%ymm6\n\tvmovdqa %%ymm0, %%ymm7\n\t"
      "vmovdqa %%ymm0, %%ymm8\n\tvmovdqa %%ymm0, %%ymm9\n\tvmovdqa %%ymm0, %%ymm10\n\tvmovdqa %%ymm0, %%ymm11\n\t"
      "vpcmpeqd %%ymm12, %%ymm12, %%ymm12\n\tvpabsb %%ymm12, %%ymm13\n\t"
      ".p2align 5\n"
      "1:\n\t" NPUQ_BENCH_DP12("%{vex%} ", "ymm") "dec %0\n\tjnz 1b\n\tvzeroupper\n\t"
      : "+r"(n)
      :
      : NPUQ_BENCH_CLOBBER_YMM);
}
constexpr double avx_vnni_macs_per_iter = 12 * 32;

__attribute__((target("avx512f,avx512bw,avx512vnni"))) void loop_avx512_vnni(std::int64_t n) {
  __asm__ volatile(
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\tvmovdqa64 %%zmm0, %%zmm1\n\tvmovdqa64 %%zmm0, %%zmm2\n\tvmovdqa64 %%zmm0, %%zmm3\n\t"
      "vmovdqa64 %%zmm0, %%zmm4\n\tvmovdqa64 %%zmm0, %%zmm5\n\tvmovdqa64 %%zmm0, %%zmm6\n\tvmovdqa64 %%zmm0, %%zmm7\n\t"
      "vmovdqa64 %%zmm0, %%zmm8\n\tvmovdqa64 %%zmm0, %%zmm9\n\tvmovdqa64 %%zmm0, %%zmm10\n\tvmovdqa64 %%zmm0, %%zmm11\n\t"
      "vpternlogd $0xff, %%zmm12, %%zmm12, %%zmm12\n\tvpabsb %%zmm12, %%zmm13\n\t"
      ".p2align 5\n"
      "1:\n\t" NPUQ_BENCH_DP12("", "zmm") "dec %0\n\tjnz 1b\n\tvzeroupper\n\t"
      : "+r"(n)
      :
      : NPUQ_BENCH_CLOBBER_YMM);
}
constexpr double avx512_vnni_macs_per_iter = 12 * 64;

// AMX: tiles 0-3 accumulate 16x16 int32, A in tiles 4/5 (16 x 64 int8), B in tiles 6/7
// (16 rows of 4 x 16 int8): a 2x2 block, every tdpbssd independent of the previous one.
struct alignas(64) amx_tile_config {
  std::uint8_t palette = 1, start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};
  std::uint8_t rows[16] = {};
};

__attribute__((target("amx-tile,amx-int8"))) void loop_amx(std::int64_t n) {
  amx_tile_config cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  __asm__ volatile("ldtilecfg %0" : : "m"(cfg));
  __asm__ volatile(
      "tilezero %%tmm0\n\ttilezero %%tmm1\n\ttilezero %%tmm2\n\ttilezero %%tmm3\n\t"
      "tilezero %%tmm4\n\ttilezero %%tmm5\n\ttilezero %%tmm6\n\ttilezero %%tmm7\n\t"
      ".p2align 5\n"
      "1:\n\t"
      "tdpbssd %%tmm6, %%tmm4, %%tmm0\n\t"
      "tdpbssd %%tmm7, %%tmm4, %%tmm1\n\t"
      "tdpbssd %%tmm6, %%tmm5, %%tmm2\n\t"
      "tdpbssd %%tmm7, %%tmm5, %%tmm3\n\t"
      "dec %0\n\tjnz 1b\n\t"
      "tilerelease\n\t"
      : "+r"(n)
      :
      : "cc", "memory");
}
constexpr double amx_macs_per_iter = 4 * 16 * 16 * 64;

// A chain of dependent 1-cycle integer adds: its rate is the core clock while vector code runs
// nearby (turbo included), which turns GOPS into MAC per cycle. 16 adds per loop iteration.
void loop_clock(std::int64_t n) {
  std::int64_t x = 0;
  __asm__ volatile(
      ".p2align 5\n"
      "1:\n\t"
      "add $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\t"
      "add $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\tadd $1, %1\n\t"
      "dec %0\n\tjnz 1b\n\t"
      : "+r"(n), "+r"(x)
      :
      : "cc");
}

// Sums n 256-byte blocks from p as 64-bit lanes; the sum keeps the loads live.
__attribute__((target("avx2"))) std::uint64_t loop_read(const std::uint8_t* p, std::int64_t n) {
  std::uint64_t sum = 0;
  __asm__ volatile(
      "vpxor %%ymm0, %%ymm0, %%ymm0\n\tvmovdqa %%ymm0, %%ymm1\n\tvmovdqa %%ymm0, %%ymm2\n\tvmovdqa %%ymm0, %%ymm3\n\t"
      "vmovdqa %%ymm0, %%ymm4\n\tvmovdqa %%ymm0, %%ymm5\n\tvmovdqa %%ymm0, %%ymm6\n\tvmovdqa %%ymm0, %%ymm7\n\t"
      ".p2align 5\n"
      "1:\n\t"
      "vpaddq (%1), %%ymm0, %%ymm0\n\tvpaddq 32(%1), %%ymm1, %%ymm1\n\tvpaddq 64(%1), %%ymm2, %%ymm2\n\t"
      "vpaddq 96(%1), %%ymm3, %%ymm3\n\tvpaddq 128(%1), %%ymm4, %%ymm4\n\tvpaddq 160(%1), %%ymm5, %%ymm5\n\t"
      "vpaddq 192(%1), %%ymm6, %%ymm6\n\tvpaddq 224(%1), %%ymm7, %%ymm7\n\t"
      "add $256, %1\n\tdec %0\n\tjnz 1b\n\t"
      "vpaddq %%ymm1, %%ymm0, %%ymm0\n\tvpaddq %%ymm3, %%ymm2, %%ymm2\n\tvpaddq %%ymm5, %%ymm4, %%ymm4\n\t"
      "vpaddq %%ymm7, %%ymm6, %%ymm6\n\tvpaddq %%ymm2, %%ymm0, %%ymm0\n\tvpaddq %%ymm6, %%ymm4, %%ymm4\n\t"
      "vpaddq %%ymm4, %%ymm0, %%ymm0\n\tvextracti128 $1, %%ymm0, %%xmm1\n\tvpaddq %%xmm1, %%xmm0, %%xmm0\n\t"
      "vpshufd $0x4e, %%xmm0, %%xmm1\n\tvpaddq %%xmm1, %%xmm0, %%xmm0\n\tvmovq %%xmm0, %2\n\tvzeroupper\n\t"
      : "+r"(n), "+r"(p), "=r"(sum)
      :
      : "cc", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7");
  return sum;
}

#endif  // NPUQ_ARCH_X86_64

using loop_fn = void (*)(std::int64_t);

void peak(benchmark::State& state, bool supported, loop_fn loop, std::int64_t n, double macs_per_iter) {
  if (!supported) return state.SkipWithError("not supported on this CPU");
  loop(n);  // warm-up (and, for AVX-512/AMX, the power-state transition)
  for (auto _ : state) loop(n);
  set_gops(state, macs_per_iter * double(n));
}

#if defined(NPUQ_ARCH_X86_64)
void clock_rate(benchmark::State& state) {
  constexpr std::int64_t n = 1 << 16;
  loop_clock(n);
  for (auto _ : state) loop_clock(n);
  state.counters["GHz"] = benchmark::Counter(16.0 * double(n) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void read_bandwidth(benchmark::State& state, bool supported, std::int64_t mib) {
  if (!supported) return state.SkipWithError("not supported on this CPU");
  const std::int64_t bytes = mib << 20;
  const std::vector<std::uint8_t> buf(static_cast<std::size_t>(bytes), 1);  // pages touched here, not in the loop
  benchmark::DoNotOptimize(loop_read(buf.data(), bytes / 256));  // warm-up
  for (auto _ : state) benchmark::DoNotOptimize(loop_read(buf.data(), bytes / 256));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * bytes);
}
#endif

}  // namespace

void register_peak() {
#if defined(NPUQ_ARCH_X86_64)
  const npuq::cpu_info& c = npuq::cpu();
  const bool avx2 = c.supports(npuq::isa::avx2), avx_vnni = c.supports(npuq::isa::avx_vnni),
             avx512_vnni = c.supports(npuq::isa::avx512_vnni);
  const bool amx = c.supports(npuq::isa::amx_int8) && npuq::request_amx_permission();
  add("peak/clock_dependent_adds", clock_rate);
  add("peak/avx2_vpmaddwd", peak, avx2, &loop_vpmaddwd, 1 << 16, vpmaddwd_macs_per_iter);
  add("peak/avx2_vpmaddubsw", peak, avx2, &loop_vpmaddubsw, 1 << 16, vpmaddubsw_macs_per_iter);
  add("peak/avx_vnni_vpdpbusd_ymm", peak, avx_vnni, &loop_avx_vnni, 1 << 16, avx_vnni_macs_per_iter);
  add("peak/avx512_vnni_vpdpbusd_zmm", peak, avx512_vnni, &loop_avx512_vnni, 1 << 16,
                               avx512_vnni_macs_per_iter);
  add("peak/amx_tdpbssd", peak, amx, &loop_amx, 1 << 12, amx_macs_per_iter);
  add("peak/read_bandwidth_256MiB", read_bandwidth, avx2, std::int64_t(256));
  add("peak/read_bandwidth_8MiB", read_bandwidth, avx2, std::int64_t(8));
#endif
}

}  // namespace npuq_bench
