#!/usr/bin/env bash
# Builds and runs the npuq benchmarks (bench/) on Debian bookworm, installing what is missing
# through apt first: Google Benchmark and the peers (oneDNN, XNNPACK) next to the test deps.
# CI (scripts/test.sh, release pass) only builds them and runs each once on its smallest shape
# (ctest bench_smoke); this is the way to measure.
#
#   bash scripts/bench.sh                 # everything (a few minutes)
#   bash scripts/bench.sh 'gemm/sq256'    # only benchmarks whose name matches this regex
#   bash scripts/bench.sh 'conv|peak' --benchmark_repetitions=1   # extra args go to npuq_bench
#
# The build is Release at -O2 (no -march flags: npuq picks its kernels at run time) in
# $NPUQ_BUILD_ROOT/build-bench (default: the repository root). The run is single-threaded
# (OMP_NUM_THREADS=1, for oneDNN's OpenMP runtime) and writes the console table to stdout and
# build-bench/bench.log, the JSON to build-bench/bench.json, and, when python3 is there, the
# markdown tables of docs/benchmarks.md to build-bench/bench.md (bench/report.py).
#
# Settings (environment):
#   NPUQ_BENCH_MIN_TIME      seconds per benchmark and repetition (default 0.5)
#   NPUQ_BENCH_REPETITIONS   repetitions; aggregates (median ...) reported when > 1 (default 3)
# Passed through untouched and printed when set: NPUQ_ISA (caps npuq's levels),
# ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA (caps oneDNN's ISA, e.g. AVX512_CORE_VNNI).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/deps.sh
source "$repo/scripts/lib/deps.sh"
# shellcheck source-path=SCRIPTDIR source=lib/build.sh
source "$repo/scripts/lib/build.sh"

filter="${1:-.}"
(($# > 0)) && shift
min_time="${NPUQ_BENCH_MIN_TIME:-0.5}"
reps="${NPUQ_BENCH_REPETITIONS:-3}"

npuq_ensure_packages "${NPUQ_BENCH_PACKAGES[@]}"

root="${NPUQ_BUILD_ROOT:-$repo}"
build="$root/build-bench"
npuq_reset_foreign_build_dir "$build" "$repo"
cmake -S "$repo" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
  -DNPUQ_BUILD_BENCHMARKS=ON -DNPUQ_BUILD_TESTS=OFF -DNPUQ_BUILD_EXAMPLES=OFF -DNPUQ_INSTALL=OFF
cmake --build "$build" -j "$(nproc)" --target npuq_bench

export OMP_NUM_THREADS=1
for v in NPUQ_ISA ONEDNN_MAX_CPU_ISA DNNL_MAX_CPU_ISA; do
  [[ -n ${!v:-} ]] && echo "bench: $v=${!v} (from the environment)"
done

args=("--benchmark_filter=$filter" "--benchmark_min_time=$min_time"
  "--benchmark_out=$build/bench.json" "--benchmark_out_format=json")
if ((reps > 1)); then
  args+=("--benchmark_repetitions=$reps" "--benchmark_report_aggregates_only=true")
fi
echo "bench: $build/bench/npuq_bench ${args[*]} $*"
"$build/bench/npuq_bench" "${args[@]}" "$@" 2>&1 | tee "$build/bench.log"

if command -v python3 >/dev/null 2>&1; then
  python3 "$repo/bench/report.py" "$build/bench.json" >"$build/bench.md"
  echo "bench: tables in $build/bench.md, JSON in $build/bench.json, console in $build/bench.log"
else
  echo "bench: JSON in $build/bench.json, console in $build/bench.log (python3 not found: no tables)"
fi
