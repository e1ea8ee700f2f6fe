#!/usr/bin/env bash
# Builds and runs the npuq demo (examples/demo.cpp) on Debian bookworm, installing what is
# missing through apt first. Works from any directory; run it again and it only rebuilds.
# Second part: the digits CNN (tests/data/digits, docs/onnx-models.md) run by the ONNX runner
# (tools/onnx_runner) on two NPU emulator presets: accuracy, per-layer NPU table, ONNX Runtime
# comparison.
#
#   bash scripts/demo.sh [demo arguments...]
#
# Build directory: $NPUQ_BUILD_ROOT/build-demo (default: the repository root).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/deps.sh
source "$repo/scripts/lib/deps.sh"
# shellcheck source-path=SCRIPTDIR source=lib/build.sh
source "$repo/scripts/lib/build.sh"

npuq_ensure_packages "${NPUQ_DEMO_PACKAGES[@]}"

build="${NPUQ_BUILD_ROOT:-$repo}/build-demo"
npuq_reset_foreign_build_dir "$build" "$repo"
cmake -S "$repo" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DNPUQ_BUILD_EXAMPLES=ON -DNPUQ_BUILD_TESTS=OFF -DNPUQ_BUILD_BENCHMARKS=OFF
cmake --build "$build" --target npuq_demo npuq_onnx_run -j "$(nproc)"

demo="$build/examples/npuq_demo"
if [[ ! -x $demo ]]; then
  demo=$(find "$build" -type f -name npuq_demo -perm -u+x -print -quit)
  [[ -n $demo ]] || { echo "demo: npuq_demo was built but is not under $build" >&2; exit 1; }
fi
echo "demo: $demo"
status=0
"$demo" "$@" || status=$?

runner="$(dirname "$demo")/npuq_onnx_run"
data="$repo/tests/data/digits"
echo
echo "demo part 2: a real model, the digits CNN (docs/onnx-models.md), on two NPU presets"
"$runner" "$data/digits_cnn.onnx" "$data/test_images.pb" --labels "$data/test_labels.pb" \
  --reference "$data/ort/digits_cnn" --backends npu --presets generic,gemmini_16x16 || status=$?
exit "$status"
