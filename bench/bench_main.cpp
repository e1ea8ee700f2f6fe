// npuq_bench: every benchmark shape of PERF.md on npuq (scalar and simd at each ISA level) and on
// the peers found at configure time, registered shape by shape so the variants of one shape run
// and print side by side, then the per-instruction int8 peak. Usual Google Benchmark flags
// apply (--benchmark_filter=REGEX, --benchmark_min_time=0.5, --benchmark_out=FILE ...).
// The CPU's ISA levels and the peers built in are printed first and stored in the JSON context.
// Everything runs on one thread unless `--threads=N` asks for N: npuq, oneDNN (OpenMP: the run
// starts again with OMP_NUM_THREADS=N, see main) and XNNPACK (a pthreadpool of N threads).
#include <npuq/simd.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#if defined(__linux__)
#include <unistd.h>
#endif

#include "bench_common.hpp"

int main(int argc, char** argv) {
  using namespace npuq_bench;
  // --threads=N (ours, not Google Benchmark's): taken out of argv before benchmark::Initialize.
  std::vector<char*> original(argv, argv + argc + 1);  // for the re-exec below
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--threads=", 0) == 0) {
      bench_threads() = std::atoi(arg.c_str() + 10);
      if (bench_threads() < 1) {
        std::fprintf(stderr, "npuq_bench: %s: expected a thread count >= 1\n", arg.c_str());
        return 1;
      }
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  argv[argc] = nullptr;
#if defined(__linux__)
  // Debian's oneDNN runs on OpenMP, which reads OMP_NUM_THREADS when it is loaded, before main:
  // start again with OMP_NUM_THREADS set to the thread count.
  const std::string want = std::to_string(bench_threads());
  const char* have = std::getenv("OMP_NUM_THREADS");
  if (have == nullptr || want != have) {
    setenv("OMP_NUM_THREADS", want.c_str(), 1);
    execv("/proc/self/exe", original.data());
    std::perror("npuq_bench: re-exec with OMP_NUM_THREADS failed");
    return 1;
  }
#endif
  std::string levels;
  for (npuq::isa l : npuq::cpu().levels()) levels += std::string(levels.empty() ? "" : " ") + npuq::to_string(l);
  std::string peers;
#if defined(NPUQ_BENCH_HAVE_ONEDNN)
  peers += "oneDNN ";
#endif
#if defined(NPUQ_BENCH_HAVE_XNNPACK)
  peers += "XNNPACK ";
#endif
  if (peers.empty()) peers = "none ";
  peers.pop_back();
  const char* omp = std::getenv("OMP_NUM_THREADS");
  std::fprintf(stderr, "npuq_bench: ISA levels %s; peers: %s; threads %d; OMP_NUM_THREADS=%s\n", levels.c_str(), peers.c_str(),
               bench_threads(), omp != nullptr ? omp : "(unset)");
  benchmark::AddCustomContext("npuq_isa_levels", levels);
  benchmark::AddCustomContext("npuq_peers", peers);
  benchmark::AddCustomContext("OMP_NUM_THREADS", omp != nullptr ? omp : "(unset)");
  benchmark::AddCustomContext("threads", std::to_string(bench_threads()));

  for (const gemm_shape& s : gemm_shapes()) {
    register_npuq(s);
#if defined(NPUQ_BENCH_HAVE_ONEDNN)
    register_onednn(s);
#endif
#if defined(NPUQ_BENCH_HAVE_XNNPACK)
    register_xnnpack(s);
#endif
  }
  for (const conv_shape& s : conv_shapes()) {
    register_npuq(s);
#if defined(NPUQ_BENCH_HAVE_ONEDNN)
    register_onednn(s);
#endif
#if defined(NPUQ_BENCH_HAVE_XNNPACK)
    register_xnnpack(s);
#endif
  }
  register_plan_overhead();
  register_attention();
  register_int4();
  register_sparse();
  register_peak();

  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
