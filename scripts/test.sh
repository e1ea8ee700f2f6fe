#!/usr/bin/env bash
# Builds and runs the npuq test suite on Debian bookworm, installing what is missing through apt
# first. Four passes, all with Ninja and every core:
#
#   1. release    -O2 without debug information (it only slows the build), every test (the
#                 packaging tests included), and the benchmarks
#                 built and run once each on their smallest shapes (ctest bench_smoke, label
#                 `bench`: no timing asserted, a broken benchmark build cannot land)
#   2. sanitize   AddressSanitizer + UndefinedBehaviorSanitizer at -Og (-g1: line tables for the
#                 reports' stack traces, without the full debug information; -Og builds in half
#                 the time of -O1 here: 10.7 min against 23, tests 2.6 min against 1.9), every test except the
#                 packaging ones (label `packaging`: they build separate consumer projects) and
#                 the SIMDe-emulated ISA builds (label `emulated`: pass 1 runs them; under the
#                 sanitizers they would mostly check SIMDe itself and double the build time)
#   3. tsan       test_concurrency (concurrent plans and one-shot calls) under ThreadSanitizer,
#                 without OpenMP (about half a minute)
#   4. aarch64    the suite cross-compiled for aarch64 and run under qemu-user on two CPU models
#                 (scripts/test-aarch64.sh; NPUQ_SKIP_AARCH64=1 skips it)
#
# Every pass always runs; the exit status is non-zero if anything failed, and the last line
# says what happened. Works from any directory; run it again and it only rebuilds.
#
#   bash scripts/test.sh
#
# Build directories: $NPUQ_BUILD_ROOT/build-test, build-sanitize, build-tsan and build-aarch64 (default: the
# repository root).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source-path=SCRIPTDIR source=lib/deps.sh
source "$repo/scripts/lib/deps.sh"
# shellcheck source-path=SCRIPTDIR source=lib/build.sh
source "$repo/scripts/lib/build.sh"

start=$SECONDS
npuq_ensure_packages "${NPUQ_TEST_PACKAGES[@]}"

root="${NPUQ_BUILD_ROOT:-$repo}"
jobs=$(nproc)
sanitize_flags="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"

duration() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# run_pass <name> <build dir> <ctest args> -- <cmake configure args>...
# Sets pass_short (e.g. "release 9/9 passed") and pass_long (with timings); returns non-zero on failure.
run_pass() {
  local name=$1 build=$2 ctest_args=$3
  shift 4
  local t0=$SECONDS t1 ok=1 counts failed total log="$build/ctest.log"
  echo
  echo "==== $name: configure + build in $build"
  npuq_reset_foreign_build_dir "$build" "$repo"
  if ! cmake -S "$repo" -B "$build" -G Ninja \
    -DNPUQ_BUILD_TESTS=ON -DNPUQ_BUILD_EXAMPLES=ON -DNPUQ_BUILD_BENCHMARKS=OFF "$@" ||
    ! cmake --build "$build" -j "$jobs"; then
    pass_short="$name BUILD FAILED"
    pass_long="$name: configure or build FAILED after $(duration $((SECONDS - t0)))"
    echo "==== $pass_long"
    return 1
  fi
  t1=$SECONDS
  echo "==== $name: ctest $ctest_args"
  # shellcheck disable=SC2086  # ctest_args is a list of words
  (cd "$build" && ctest --output-on-failure --timeout 900 -j "$jobs" $ctest_args) 2>&1 | tee "$log" || ok=0
  counts=$(sed -nE 's/^[0-9]+% tests passed, ([0-9]+) tests? failed out of ([0-9]+)$/\1 \2/p' "$log" | tail -n 1)
  if [[ -n $counts ]]; then
    read -r failed total <<<"$counts"
    pass_short="$name $((total - failed))/$total passed"
  else
    ok=0
    pass_short="$name: no test summary"
  fi
  ((ok)) || pass_short="$name FAILED${pass_short#"$name"}"
  pass_long="$pass_short (build $(duration $((t1 - t0))), tests $(duration $((SECONDS - t1))))"
  echo "==== $pass_long"
  ((ok))
}

overall=PASS
run_pass release "$root/build-test" "" -- \
  -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" -DNPUQ_BUILD_BENCHMARKS=ON || overall=FAIL
release_short=$pass_short release_long=$pass_long

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
run_pass sanitize "$root/build-sanitize" "-LE packaging" -- \
  -DCMAKE_BUILD_TYPE=Debug -DNPUQ_EMULATED_ISA_TESTS=OFF -DCMAKE_CXX_FLAGS_DEBUG=-g1 \
  "-DCMAKE_CXX_FLAGS=-Og $sanitize_flags" \
  "-DCMAKE_EXE_LINKER_FLAGS=$sanitize_flags" || overall=FAIL
sanitize_short=$pass_short sanitize_long=$pass_long

# ThreadSanitizer over concurrent plans and one-shot calls: only test_concurrency, without OpenMP
# (libgomp is not instrumented), about half a minute.
t0=$SECONDS tsan_short="tsan FAILED"
echo
echo "==== tsan: test_concurrency with -fsanitize=thread in $root/build-tsan"
npuq_reset_foreign_build_dir "$root/build-tsan" "$repo"
if cmake -S "$repo" -B "$root/build-tsan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DNPUQ_OPENMP=OFF -DNPUQ_BUILD_TESTS=ON \
  -DNPUQ_BUILD_EXAMPLES=OFF -DNPUQ_BUILD_BENCHMARKS=OFF -DNPUQ_EMULATED_ISA_TESTS=OFF \
  "-DCMAKE_CXX_FLAGS=-O1 -fsanitize=thread" -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread &&
  cmake --build "$root/build-tsan" -j "$jobs" --target test_concurrency &&
  TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1}" "$root/build-tsan/tests/test_concurrency"; then
  tsan_short="tsan passed"
else
  overall=FAIL
fi
tsan_long="$tsan_short ($(duration $((SECONDS - t0))))"

aarch64_short="aarch64 skipped" aarch64_long="aarch64: skipped (NPUQ_SKIP_AARCH64)"
if [[ ${NPUQ_SKIP_AARCH64:-0} != 1 ]]; then
  t0=$SECONDS aarch64_log=$(mktemp)
  bash "$repo/scripts/test-aarch64.sh" 2>&1 | tee "$aarch64_log" || overall=FAIL
  aarch64_short=$(sed -nE 's/^npuq test-aarch64\.sh: [A-Z]+ \((.*)\) in .*$/\1/p' "$aarch64_log" | tail -n 1)
  rm -f "$aarch64_log"
  aarch64_short=${aarch64_short:-aarch64: no summary}
  aarch64_long="$aarch64_short (build + tests $(duration $((SECONDS - t0))))"
fi

echo
echo "==== $release_long"
echo "==== $sanitize_long"
echo "==== $tsan_long"
echo "==== $aarch64_long"
echo "npuq test.sh: $overall ($release_short; $sanitize_short; $tsan_short; $aarch64_short) in $(duration $((SECONDS - start)))"
[[ $overall == PASS ]]
