#!/usr/bin/env bash
# Makes the roofline picture of docs/benchmarks.md ("Roofline") again: installs what is missing
# (NPUQ_DOCS_PACKAGES: the benchmark packages and python3-matplotlib), builds npuq_bench as
# scripts/bench.sh does (Release -O2, $NPUQ_BUILD_ROOT/build-bench), runs the GEMM / conv /
# depthwise shapes (npuq simd at each x86 level and its plans, oneDNN, XNNPACK) and peak/* on
# one thread, 3 repetitions of 0.1 s each (about 90 s), and plots the medians.
#
#   bash tools/roofline/make_roofline.sh                        # build, run, plot
#   bash tools/roofline/make_roofline.sh /path/to/npuq_bench    # an existing binary: run, plot
#
# Writes tools/roofline/data/roofline_bench.json and docs/images/npuq_bench_roofline.png.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/deps.sh
source "$repo/scripts/lib/deps.sh"
# shellcheck source-path=SCRIPTDIR source=../../scripts/lib/build.sh
source "$repo/scripts/lib/build.sh"

npuq_ensure_packages "${NPUQ_DOCS_PACKAGES[@]}"

bench="${1:-}"
if [[ -z $bench ]]; then
  build="${NPUQ_BUILD_ROOT:-$repo}/build-bench"
  npuq_reset_foreign_build_dir "$build" "$repo"
  cmake -S "$repo" -B "$build" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
    -DNPUQ_BUILD_BENCHMARKS=ON -DNPUQ_BUILD_TESTS=OFF -DNPUQ_BUILD_EXAMPLES=OFF -DNPUQ_INSTALL=OFF
  cmake --build "$build" -j "$(nproc)" --target npuq_bench
  bench="$build/bench/npuq_bench"
fi

json="$repo/tools/roofline/data/roofline_bench.json"
png="$repo/docs/images/npuq_bench_roofline.png"
filter='^(gemm|conv|dwconv)/[^/]+/(npuq_simd_avx[^/]*|npuq_plan_[^/]*|onednn_[^/]*|xnnpack_[^/]*)$|^peak/'
args=(--threads=1 "--benchmark_filter=$filter" --benchmark_min_time=0.1 --benchmark_repetitions=3
  --benchmark_report_aggregates_only=true "--benchmark_out=$json" --benchmark_out_format=json)
echo "roofline: OMP_NUM_THREADS=1 $bench ${args[*]}"
OMP_NUM_THREADS=1 "$bench" "${args[@]}"
/usr/bin/python3 "$repo/tools/roofline/plot_roofline.py" "$json" "$png"
