#!/usr/bin/env bash
# npuq's group-wise int4 GEMM against ONNX Runtime's MatMulNBits (4 bits, block 32,
# accuracy_level 4), both on one thread, one after the other in this one invocation (issue 5).
#
#   bash scripts/bench-ort.sh                 # M = 64, N = K = 4096, group 32
#   NPUQ_ORT_ACCURACY=0 bash scripts/bench-ort.sh   # ORT's fp32 path instead
#
# ONNX Runtime comes from npm (onnxruntime-node 1.30.0, whose package ships the Linux x64
# library), installed with --ignore-scripts into $NPUQ_BUILD_ROOT/build-ort (default: the
# repository root) and driven from Node.js (bench/ort/matmul_nbits.mjs builds the one-node model
# in memory and checks its output against a float reference). npuq's side is the Google Benchmark
# row int4/gemm-64x4096x4096/w4_g32_f32out_simd_avx2 of build-bench/ (built here as
# scripts/bench.sh builds it). Both processes are pinned to CPU 0. Prints the ratio
# npuq / ORT of the median times. Not part of CI: it needs the npm registry.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/deps.sh
source "$repo/scripts/lib/deps.sh"
# shellcheck source-path=SCRIPTDIR source=lib/build.sh
source "$repo/scripts/lib/build.sh"

root="${NPUQ_BUILD_ROOT:-$repo}"
ort_dir="$root/build-ort"
ort_version=1.30.0
accuracy="${NPUQ_ORT_ACCURACY:-4}"

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "bench-ort: $tool not found (apt install nodejs npm)" >&2; exit 1; }
done
if [[ ! -f "$ort_dir/node_modules/onnxruntime-node/package.json" ]]; then
  mkdir -p "$ort_dir"
  echo "bench-ort: installing onnxruntime-node@$ort_version into $ort_dir (npm, --ignore-scripts)"
  (cd "$ort_dir" && npm install --ignore-scripts --no-audit --no-fund "onnxruntime-node@$ort_version") ||
    { echo "bench-ort: npm install failed (is the npm registry reachable?)" >&2; exit 1; }
fi

npuq_ensure_packages "${NPUQ_BENCH_PACKAGES[@]}"
build="$root/build-bench"
npuq_reset_foreign_build_dir "$build" "$repo"
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
  -DNPUQ_BUILD_BENCHMARKS=ON -DNPUQ_BUILD_TESTS=OFF -DNPUQ_BUILD_EXAMPLES=OFF -DNPUQ_INSTALL=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target npuq_bench

export OMP_NUM_THREADS=1
ort_out=$(taskset -c 0 node "$repo/bench/ort/matmul_nbits.mjs" "$ort_dir/node_modules/onnxruntime-node" 64 4096 4096 32 "$accuracy")
echo "$ort_out" | grep -v '^ORT_MEDIAN_US='
ort_us=$(echo "$ort_out" | sed -n 's/^ORT_MEDIAN_US=//p')

npuq_out=$(taskset -c 0 "$build/bench/npuq_bench" --benchmark_filter='^int4/gemm-64x4096x4096/w4_g32_f32out_simd_avx2$' \
  --benchmark_min_time=1 --benchmark_repetitions=5 --benchmark_report_aggregates_only=true --benchmark_format=json 2>/dev/null)
npuq_us=$(echo "$npuq_out" | python3 -c '
import json, sys
for b in json.load(sys.stdin)["benchmarks"]:
    if b.get("aggregate_name") == "median":
        scale = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}[b["time_unit"]]
        print(b["real_time"] * scale)
')
python3 - "$npuq_us" "$ort_us" <<'PY'
import sys
npuq, ort = float(sys.argv[1]), float(sys.argv[2])
gops = lambda us: 2 * 64 * 4096 * 4096 / (us * 1e3)
print(f"npuq gemm_grouped (int4, g32, float out, simd): median {npuq:.0f} us ({gops(npuq):.1f} GOPS)")
print(f"npuq / ORT = {ort / npuq:.2f}x (speed; ORT median over npuq median)")
PY
