# shellcheck shell=bash
# Build-directory helper shared by scripts/demo.sh and scripts/test.sh. Sourced, not run.

# npuq_reset_foreign_build_dir <build dir> <source dir>: a build directory configured with
# another generator than Ninja, or for another source tree (a copied or moved checkout), cannot
# be reconfigured by CMake; remove it so the next configure starts afresh.
npuq_reset_foreign_build_dir() {
  local cache="$1/CMakeCache.txt"
  [[ -f $cache ]] || return 0
  if ! grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' "$cache" ||
    ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$2" "$cache"; then
    echo "build: $1 was configured for another generator or source tree; removing it"
    rm -rf "$1"
  fi
}
