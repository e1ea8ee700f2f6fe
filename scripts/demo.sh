#!/usr/bin/env bash
# Builds and runs the npuq demo (examples/demo.cpp) on Debian bookworm, installing what is
# missing through apt first. Works from any directory; run it again and it only rebuilds.
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
cmake --build "$build" --target npuq_demo -j "$(nproc)"

demo="$build/examples/npuq_demo"
if [[ ! -x $demo ]]; then
  demo=$(find "$build" -type f -name npuq_demo -perm -u+x -print -quit)
  [[ -n $demo ]] || { echo "demo: npuq_demo was built but is not under $build" >&2; exit 1; }
fi
echo "demo: $demo"
exec "$demo" "$@"
