#!/usr/bin/env bash
# Cross-compiles the npuq test suite for aarch64 and runs it under qemu-user, installing what is
# missing through apt first (g++-aarch64-linux-gnu, qemu-user and the test dependencies; see
# NPUQ_ARM_PACKAGES in lib/deps.sh). One build, -O2 (no debug information) with Ninja and every core, using
# cmake/toolchains/aarch64-linux-gnu.cmake; then CTest once per emulated CPU model in
# NPUQ_QEMU_CPUS (default "max cortex-a53"; CI runs both):
#
#   max         every level: the tests force portable, neon, neon_dotprod and neon_i8mm in turn,
#               and the level test fails if a level the CPU reports did not run its own kernels
#               (gemm_*_4x16c2_neon, gemm_*_4x16c4_neon_dotprod, gemm_*_4x16c8_neon_i8mm)
#   cortex-a53  an ARMv8.0 core without dotprod or i8mm: detection must report neon only, the
#               tests force portable and neon in turn, and the default dispatch must never
#               execute an instruction the core lacks (qemu stops it with SIGILL)
#
# The packaging tests (label `packaging`) build consumer projects with the host toolchain and
# are not registered in a cross build. Every CPU model always runs; the exit status is non-zero
# if anything failed, and the last line says what happened. scripts/test.sh runs this as its
# `aarch64` pass. Works from any directory; run it again and it only rebuilds.
#
#   bash scripts/test-aarch64.sh
#   NPUQ_QEMU_CPUS="max cortex-a76 cortex-a53" bash scripts/test-aarch64.sh   # add cortex-a76 (dotprod, no i8mm)
#
# Build directory: $NPUQ_BUILD_ROOT/build-aarch64 (default: the repository root).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/deps.sh
source "$repo/scripts/lib/deps.sh"
# shellcheck source-path=SCRIPTDIR source=lib/build.sh
source "$repo/scripts/lib/build.sh"

start=$SECONDS
npuq_ensure_packages "${NPUQ_ARM_PACKAGES[@]}"

root="${NPUQ_BUILD_ROOT:-$repo}"
build="$root/build-aarch64"
jobs=$(nproc)
read -r -a cpus <<<"${NPUQ_QEMU_CPUS:-max cortex-a53}"

duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

build_start=$SECONDS
echo
echo "==== aarch64: configure + build in $build"
npuq_reset_foreign_build_dir "$build" "$repo"
configure() {
  cmake -S "$repo" -B "$build" -G Ninja \
    -DCMAKE_TOOLCHAIN_FILE="$repo/cmake/toolchains/aarch64-linux-gnu.cmake" \
    -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
    -DNPUQ_BUILD_TESTS=ON -DNPUQ_BUILD_EXAMPLES=ON -DNPUQ_BUILD_BENCHMARKS=OFF "$@"
}
if ! configure -DNPUQ_QEMU_CPU="${cpus[0]}" || ! cmake --build "$build" -j "$jobs"; then
  echo "==== aarch64: configure or build FAILED after $(duration $((SECONDS - start)))"
  echo "npuq test-aarch64.sh: FAIL (aarch64 BUILD FAILED) in $(duration $((SECONDS - start)))"
  exit 1
fi
built=$SECONDS

overall=PASS
shorts=() longs=()
for cpu in "${cpus[@]}"; do
  t0=$SECONDS ok=1 log="$build/ctest-$cpu.log"
  echo
  echo "==== aarch64 $cpu: ctest -LE packaging under qemu-aarch64 -cpu $cpu"
  # The emulator command is part of the CTest files: re-generating them is all a model change
  # costs (nothing recompiles).
  if ! configure -DNPUQ_QEMU_CPU="$cpu" >/dev/null; then
    short="aarch64 $cpu: CONFIGURE FAILED"
    ok=0
  else
    (cd "$build" && ctest --output-on-failure --timeout 900 -j "$jobs" -LE packaging) 2>&1 | tee "$log" || ok=0
    counts=$(sed -nE 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+)$/\1 \2/p' "$log" | tail -n 1)
    if [[ -n $counts ]]; then
      read -r failed total <<<"$counts"
      short="aarch64 $cpu $((total - failed))/$total passed"
    else
      ok=0
      short="aarch64 $cpu: no test summary"
    fi
    ((ok)) || short="aarch64 $cpu FAILED${short#"aarch64 $cpu"}"
  fi
  ((ok)) || overall=FAIL
  shorts+=("$short")
  longs+=("$short (tests $(duration $((SECONDS - t0))))")
  echo "==== ${longs[-1]}"
done
# Leave the build directory configured for the first model, as a plain `ctest` there expects.
((${#cpus[@]} == 1)) || configure -DNPUQ_QEMU_CPU="${cpus[0]}" >/dev/null || overall=FAIL

echo
echo "==== aarch64: build $(duration $((built - build_start)))"
for line in "${longs[@]}"; do echo "==== $line"; done
summary=$(printf '%s; ' "${shorts[@]}")
echo "npuq test-aarch64.sh: $overall (${summary%; }) in $(duration $((SECONDS - start)))"
[[ $overall == PASS ]]
