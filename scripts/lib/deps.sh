# shellcheck shell=bash
# Debian packages for scripts/demo.sh, scripts/test.sh, scripts/bench.sh and the pictures in
# docs/images, and the one function that installs them. Sourced, not run. Only missing packages
# are installed; `apt-get update` runs only when something is missing, so a second run touches
# nothing. Uses sudo when not root.

# The demo: a C++17 compiler, CMake + Ninja, and xsimd (npuq's one dependency).
# shellcheck disable=SC2034  # both lists are used by the scripts that source this file
NPUQ_DEMO_PACKAGES=(build-essential g++ cmake ninja-build pkg-config libxsimd-dev)
# The test suite adds Catch2, gemmlowp (reference fixed-point functions), SIMDe (the emulated-ISA
# build of the x86 kernels), the ONNX backend test data, and what the benchmarks need (the
# release pass builds them and runs each once as a smoke test): Google Benchmark and the peers
# they compare against, oneDNN and XNNPACK. Debian's oneDNN CMake config calls
# find_package(OpenCL REQUIRED), which needs libOpenCL.so (ocl-icd-opencl-dev) and CL/cl.h
# (opencl-c-headers); libdnnl-dev only recommends them, and apt here installs no recommends.
# XNNPACK's header includes pthreadpool.h (libpthreadpool-dev). pkg-config is for the
# packaging tests.
# shellcheck disable=SC2034
NPUQ_TEST_PACKAGES=("${NPUQ_DEMO_PACKAGES[@]}" catch2 libgemmlowp-dev libonnx-testdata libsimde-dev
  libbenchmark-dev libdnnl-dev ocl-icd-opencl-dev opencl-c-headers libxnnpack-dev libpthreadpool-dev)
# The aarch64 pass (scripts/test-aarch64.sh): the test suite cross-compiled with Debian's aarch64
# g++ (its header-only dependencies come from the host) and run under qemu-user.
# shellcheck disable=SC2034
NPUQ_ARM_PACKAGES=("${NPUQ_TEST_PACKAGES[@]}" g++-aarch64-linux-gnu qemu-user)
# scripts/bench.sh: the test packages already hold everything the benchmarks need.
# shellcheck disable=SC2034
NPUQ_BENCH_PACKAGES=("${NPUQ_TEST_PACKAGES[@]}")
# The pictures in docs/images (tools/roofline/make_roofline.sh; tools/digits/plot_npu_timeline.py,
# docs/onnx-models.md): the benchmarks, and matplotlib for Debian's /usr/bin/python3.
# shellcheck disable=SC2034
NPUQ_DOCS_PACKAGES=("${NPUQ_BENCH_PACKAGES[@]}" python3-matplotlib)

# npuq_package_installed <package>: true when dpkg has it fully installed.
npuq_package_installed() {
  local status
  status=$(dpkg-query -W -f='${Status}\n' "$1" 2>/dev/null) || return 1
  # "install ok installed", "hold ok installed"; not "deinstall ok config-files" etc.
  [[ $status == *" installed"* ]]
}

# npuq_ensure_packages <package>...: install, through apt, those that are missing.
npuq_ensure_packages() {
  if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "deps: not a Debian system (no dpkg-query); make sure these are installed: $*" >&2
    return 0
  fi
  local missing=() p
  for p in "$@"; do
    npuq_package_installed "$p" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    echo "deps: all $# packages already installed"
    return 0
  fi
  local sudo=()
  if ((EUID != 0)); then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "deps: missing ${missing[*]}; run as root or install sudo" >&2
      return 1
    fi
    sudo=(sudo)
  fi
  echo "deps: installing ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  for p in "${missing[@]}"; do
    if ! npuq_package_installed "$p"; then
      echo "deps: $p is still not installed" >&2
      return 1
    fi
  done
}
