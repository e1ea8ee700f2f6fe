# Cross-compiling npuq for aarch64 Linux on a Debian x86-64 host, with the test suite run
# under qemu-user. Used by scripts/test-aarch64.sh:
#
#   cmake -S . -B build-aarch64 -G Ninja -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
#   (cd build-aarch64 && ctest -LE packaging)
#
# Compilers: Debian's g++-aarch64-linux-gnu, whose target libraries live in /usr/aarch64-linux-gnu.
#
# Dependencies: npuq's build and test dependencies (xsimd, Catch2, gemmlowp's fixed-point headers)
# are header-only, so the host's copies in /usr/include serve any target. They are reached with
# `-idirafter /usr/include`: searched after every aarch64 header directory, so a header that the
# target has (libc, libstdc++) always comes from the target, and only what it lacks falls back to
# the host. The flag is also part of the compiler probe, so CMake treats /usr/include as an
# implicit directory and drops the `-isystem /usr/include` that the imported targets would add
# in front of the target's headers. Their CMake package files are found in the host prefixes,
# except Catch2's, whose prebuilt main() is host code (see cross-catch2/Catch2Config.cmake).
#
# Running: CMAKE_CROSSCOMPILING_EMULATOR makes CTest start every test binary under
# `qemu-aarch64 -cpu <NPUQ_QEMU_CPU> -L /usr/aarch64-linux-gnu`. The default CPU model "max"
# has dotprod and i8mm; "cortex-a53" has neither and "cortex-a76" has dotprod only.

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(NPUQ_CROSS_TRIPLE aarch64-linux-gnu)
set(CMAKE_C_COMPILER ${NPUQ_CROSS_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${NPUQ_CROSS_TRIPLE}-g++)

set(CMAKE_C_FLAGS_INIT "-idirafter /usr/include")
set(CMAKE_CXX_FLAGS_INIT "-idirafter /usr/include")

# Target libraries and programs from the cross prefix; packages (header-only) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${NPUQ_CROSS_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# Debian keeps some packages' files under the host's multiarch directory (xsimd's config is in
# /usr/lib/x86_64-linux-gnu/cmake), which a search for the aarch64 multiarch name skips.
list(APPEND CMAKE_PREFIX_PATH /usr /usr/lib/${CMAKE_HOST_SYSTEM_PROCESSOR}-linux-gnu/cmake)

# Debian's Catch2 ships its main() as a host-architecture static library; this config rebuilds it
# for the target from the header (see cross-catch2/Catch2Config.cmake).
set(Catch2_DIR "${CMAKE_CURRENT_LIST_DIR}/cross-catch2" CACHE PATH "Catch2 config used for cross builds")

set(NPUQ_QEMU_CPU "max" CACHE STRING "qemu-aarch64 CPU model the tests run on (max, cortex-a53, cortex-a76, ...)")
find_program(NPUQ_QEMU_AARCH64 qemu-aarch64 DOC "qemu-user emulator for the aarch64 test binaries")
if(NPUQ_QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR "${NPUQ_QEMU_AARCH64};-cpu;${NPUQ_QEMU_CPU};-L;/usr/${NPUQ_CROSS_TRIPLE}")
endif()
