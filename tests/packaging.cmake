# Packaging tests: does npuq work for the people who consume it, not just for its own build?
#
# This file has two roles. Included from tests/CMakeLists.txt it registers the CTest tests
# below (label `packaging`). Run as `cmake -D... -P packaging.cmake` it is the driver that each
# of those tests executes, one step per test:
#
#   packaging_install          cmake --install of this build tree into <build>/tests/packaging/stage
#   packaging_relocate         moves that prefix elsewhere; no installed file may name the old place
#   packaging_find_package     examples/consumer against the moved prefix via find_package(npuq)
#   packaging_pkg_config       examples/consumer/main.cpp compiled with `pkg-config --cflags npuq`
#   packaging_add_subdirectory examples/consumer with add_subdirectory(<npuq sources>)
#   packaging_fetchcontent     examples/consumer with FetchContent from a local source archive
#   packaging_headers_<dir>    every public header (include/npuq/*.hpp, core/, formats/, ops/)
#                              compiles on its own with include/ alone (tests/headers.cmake)
#   packaging_headers_top_clang  the same for include/npuq/*.hpp with clang++, where installed
#
# Fixtures order install -> relocate -> (find_package, pkg_config). The consumer is configured
# with this build's generator and C++ compiler and built with its own flags (Release, -O2).

if(NOT CMAKE_SCRIPT_MODE_FILE)
  # ---- Registration (included from tests/CMakeLists.txt) ----
  if(CMAKE_CROSSCOMPILING)
    message(STATUS "npuq: packaging tests skipped (cross-compiling: the consumer cannot run here)")
    return()
  endif()
  find_program(NPUQ_PKG_CONFIG_EXECUTABLE NAMES pkg-config pkgconf DOC "pkg-config, for the packaging tests")
  mark_as_advanced(NPUQ_PKG_CONFIG_EXECUTABLE)

  set(_npuq_pkg_driver
      "${CMAKE_COMMAND}"
      "-DNPUQ_PKG_ROOT=${CMAKE_CURRENT_BINARY_DIR}/packaging"
      "-DNPUQ_PKG_SOURCE_DIR=${npuq_SOURCE_DIR}"
      "-DNPUQ_PKG_BINARY_DIR=${npuq_BINARY_DIR}"
      "-DNPUQ_PKG_VERSION=${npuq_VERSION}"
      "-DNPUQ_PKG_GENERATOR=${CMAKE_GENERATOR}"
      "-DNPUQ_PKG_GENERATOR_PLATFORM=${CMAKE_GENERATOR_PLATFORM}"
      "-DNPUQ_PKG_GENERATOR_TOOLSET=${CMAKE_GENERATOR_TOOLSET}"
      "-DNPUQ_PKG_MAKE_PROGRAM=${CMAKE_MAKE_PROGRAM}"
      "-DNPUQ_PKG_CXX_COMPILER=${CMAKE_CXX_COMPILER}"
      "-DNPUQ_PKG_EXE_SUFFIX=${CMAKE_EXECUTABLE_SUFFIX}"
      "-DNPUQ_PKG_INCLUDEDIR=${CMAKE_INSTALL_INCLUDEDIR}"
      "-DNPUQ_PKG_CMAKEDIR=${NPUQ_INSTALL_CMAKEDIR}"
      "-DNPUQ_PKG_PKGCONFIGDIR=${NPUQ_INSTALL_PKGCONFIGDIR}"
      "-DNPUQ_PKG_PKG_CONFIG=${NPUQ_PKG_CONFIG_EXECUTABLE}")
  set(_npuq_pkg_script "${CMAKE_CURRENT_LIST_FILE}")

  # npuq_add_packaging_test(<name> <step> [<mode>] [FIXTURES_SETUP f] [FIXTURES_REQUIRED f...])
  function(npuq_add_packaging_test name step)
    cmake_parse_arguments(PARSE_ARGV 2 arg "" "MODE;FIXTURES_SETUP" "FIXTURES_REQUIRED")
    add_test(NAME ${name} COMMAND ${_npuq_pkg_driver} "-DNPUQ_PKG_STEP=${step}" "-DNPUQ_PKG_MODE=${arg_MODE}"
                                  -P "${_npuq_pkg_script}")
    set_tests_properties(${name} PROPERTIES LABELS packaging TIMEOUT 600
                                            SKIP_REGULAR_EXPRESSION "NPUQ_PACKAGING_SKIPPED")
    if(arg_FIXTURES_SETUP)
      set_tests_properties(${name} PROPERTIES FIXTURES_SETUP "${arg_FIXTURES_SETUP}")
    endif()
    if(arg_FIXTURES_REQUIRED)
      set_tests_properties(${name} PROPERTIES FIXTURES_REQUIRED "${arg_FIXTURES_REQUIRED}")
    endif()
  endfunction()

  if(NPUQ_INSTALL)
    npuq_add_packaging_test(packaging_install install FIXTURES_SETUP npuq_pkg_staged)
    npuq_add_packaging_test(packaging_relocate relocate FIXTURES_SETUP npuq_pkg_relocated
                            FIXTURES_REQUIRED npuq_pkg_staged)
    npuq_add_packaging_test(packaging_find_package consumer MODE package FIXTURES_REQUIRED npuq_pkg_relocated)
    npuq_add_packaging_test(packaging_pkg_config pkg_config FIXTURES_REQUIRED npuq_pkg_relocated)
  else()
    message(STATUS "npuq: install-based packaging tests skipped (NPUQ_INSTALL is OFF)")
  endif()
  npuq_add_packaging_test(packaging_add_subdirectory consumer MODE subdirectory)
  npuq_add_packaging_test(packaging_fetchcontent consumer MODE fetchcontent)
  foreach(_npuq_dir top core formats ops)
    set(_npuq_sub "${_npuq_dir}")
    if(_npuq_dir STREQUAL "top")
      set(_npuq_sub ".")
    endif()
    add_test(NAME packaging_headers_${_npuq_dir}
             COMMAND "${CMAKE_COMMAND}" "-DNPUQ_CXX=${CMAKE_CXX_COMPILER}" "-DNPUQ_SOURCE_DIR=${npuq_SOURCE_DIR}"
                     "-DNPUQ_HEADER_DIR=${_npuq_sub}" "-DNPUQ_WORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/headers"
                     -P "${CMAKE_CURRENT_LIST_DIR}/headers.cmake")
    set_tests_properties(packaging_headers_${_npuq_dir} PROPERTIES LABELS packaging TIMEOUT 600)
  endforeach()
  # The umbrella headers (which include every other) with clang as well, where it is installed:
  # what a clang user's -Wall -Wextra -Werror build sees.
  find_program(NPUQ_CLANGXX NAMES clang++ clang++-14 DOC "clang++, for packaging_headers_top_clang")
  mark_as_advanced(NPUQ_CLANGXX)
  if(NPUQ_CLANGXX AND NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    add_test(NAME packaging_headers_top_clang
             COMMAND "${CMAKE_COMMAND}" "-DNPUQ_CXX=${NPUQ_CLANGXX}" "-DNPUQ_SOURCE_DIR=${npuq_SOURCE_DIR}" "-DNPUQ_HEADER_DIR=."
                     "-DNPUQ_WORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/headers_clang" -P "${CMAKE_CURRENT_LIST_DIR}/headers.cmake")
    set_tests_properties(packaging_headers_top_clang PROPERTIES LABELS packaging TIMEOUT 600)
  endif()
  return()
endif()

# ---- Driver (cmake -P) ----
cmake_minimum_required(VERSION 3.16)

set(stage "${NPUQ_PKG_ROOT}/stage")
set(relocated "${NPUQ_PKG_ROOT}/relocated/elsewhere/npuq")  # another name and depth than stage

function(npuq_pkg_fail text)
  message(FATAL_ERROR "${text}")
endfunction()

# npuq_pkg_run(<command>...): run it; on failure print the command line and its output.
# The output is left in npuq_pkg_output.
function(npuq_pkg_run)
  string(REPLACE ";" " " line "${ARGN}")
  message(STATUS "$ ${line}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(NOT rc STREQUAL "0")
    message("${out}")  # verbatim, before CMake's reformatted error
    npuq_pkg_fail("command failed (${rc}): ${line}")
  endif()
  set(npuq_pkg_output "${out}" PARENT_SCOPE)
endfunction()

function(npuq_pkg_expect_file path)
  if(NOT EXISTS "${path}")
    npuq_pkg_fail("missing: ${path}")
  endif()
endfunction()

function(npuq_pkg_cache_value bin var out)
  file(STRINGS "${bin}/CMakeCache.txt" lines REGEX "^${var}:[A-Z]+=")
  string(REGEX REPLACE "^${var}:[A-Z]+=" "" value "${lines}")
  set(${out} "${value}" PARENT_SCOPE)
endfunction()

# Runs the consumer executable and checks that it reports this version and success.
function(npuq_pkg_run_consumer exe)
  npuq_pkg_expect_file("${exe}")
  npuq_pkg_run("${exe}")
  message(STATUS "${npuq_pkg_output}")
  if(NOT npuq_pkg_output MATCHES "npuq ${NPUQ_PKG_VERSION} " OR NOT npuq_pkg_output MATCHES "\nOK\n")
    npuq_pkg_fail("consumer output does not report npuq ${NPUQ_PKG_VERSION} and OK:\n${npuq_pkg_output}")
  endif()
endfunction()

if(NPUQ_PKG_STEP STREQUAL "install")
  file(REMOVE_RECURSE "${stage}" "${NPUQ_PKG_ROOT}/relocated")
  npuq_pkg_run("${CMAKE_COMMAND}" --install "${NPUQ_PKG_BINARY_DIR}" --prefix "${stage}")
  file(GLOB_RECURSE headers RELATIVE "${NPUQ_PKG_SOURCE_DIR}/include" "${NPUQ_PKG_SOURCE_DIR}/include/npuq/*.hpp")
  foreach(h IN LISTS headers)
    npuq_pkg_expect_file("${stage}/${NPUQ_PKG_INCLUDEDIR}/${h}")
  endforeach()
  foreach(f npuqConfig.cmake npuqConfigVersion.cmake npuqTargets.cmake npuqFindXsimd.cmake)
    npuq_pkg_expect_file("${stage}/${NPUQ_PKG_CMAKEDIR}/${f}")
  endforeach()
  npuq_pkg_expect_file("${stage}/${NPUQ_PKG_PKGCONFIGDIR}/npuq.pc")
  file(STRINGS "${stage}/${NPUQ_PKG_INCLUDEDIR}/npuq/version.hpp" v REGEX "NPUQ_VERSION_STRING")
  if(NOT v MATCHES "\"${NPUQ_PKG_VERSION}\"")
    npuq_pkg_fail("installed npuq/version.hpp says ${v}, expected ${NPUQ_PKG_VERSION}")
  endif()
  list(LENGTH headers n)
  message(STATUS "installed ${n} headers, CMake package and npuq.pc into ${stage}")

elseif(NPUQ_PKG_STEP STREQUAL "relocate")
  file(REMOVE_RECURSE "${NPUQ_PKG_ROOT}/relocated")
  get_filename_component(parent "${relocated}" DIRECTORY)
  file(MAKE_DIRECTORY "${parent}")
  file(RENAME "${stage}" "${relocated}")  # the original prefix is gone: nothing can point into it
  # No installed file may name the install prefix, the source tree or the build tree.
  file(GLOB_RECURSE files "${relocated}/*")
  foreach(f IN LISTS files)
    file(READ "${f}" text)
    foreach(bad "${stage}" "${NPUQ_PKG_SOURCE_DIR}/include" "${NPUQ_PKG_BINARY_DIR}/generated"
            "${NPUQ_PKG_BINARY_DIR}/npuq")
      string(FIND "${text}" "${bad}" at)
      if(NOT at EQUAL -1)
        npuq_pkg_fail("${f} contains the absolute path ${bad}: the package is not relocatable")
      endif()
    endforeach()
  endforeach()
  list(LENGTH files n)
  message(STATUS "moved the prefix to ${relocated}; none of its ${n} files names an absolute build path")

elseif(NPUQ_PKG_STEP STREQUAL "consumer")
  set(bin "${NPUQ_PKG_ROOT}/consumer-${NPUQ_PKG_MODE}")
  file(REMOVE_RECURSE "${bin}")
  set(args -S "${NPUQ_PKG_SOURCE_DIR}/examples/consumer" -B "${bin}" -G "${NPUQ_PKG_GENERATOR}"
           "-DCMAKE_CXX_COMPILER=${NPUQ_PKG_CXX_COMPILER}" "-DNPUQ_CONSUMER_MODE=${NPUQ_PKG_MODE}")
  if(NPUQ_PKG_GENERATOR_PLATFORM)
    list(APPEND args -A "${NPUQ_PKG_GENERATOR_PLATFORM}")
  endif()
  if(NPUQ_PKG_GENERATOR_TOOLSET)
    list(APPEND args -T "${NPUQ_PKG_GENERATOR_TOOLSET}")
  endif()
  if(NPUQ_PKG_MAKE_PROGRAM)
    list(APPEND args "-DCMAKE_MAKE_PROGRAM=${NPUQ_PKG_MAKE_PROGRAM}")
  endif()

  if(NPUQ_PKG_MODE STREQUAL "package")
    list(APPEND args "-DCMAKE_PREFIX_PATH=${relocated}" "-DNPUQ_CONSUMER_NPUQ_VERSION=${NPUQ_PKG_VERSION}"
         -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
  elseif(NPUQ_PKG_MODE STREQUAL "subdirectory")
    list(APPEND args "-DNPUQ_SOURCE_DIR=${NPUQ_PKG_SOURCE_DIR}")
    set(npuq_bin "${bin}/npuq")
  elseif(NPUQ_PKG_MODE STREQUAL "fetchcontent")
    # A release-style archive of the source tree (one top-level directory; no VCS or build dirs),
    # fetched through a file:// URL: FetchContent downloads, extracts and adds it, offline.
    set(snap_root "${NPUQ_PKG_ROOT}/fetch-source")
    set(snap "${snap_root}/npuq-${NPUQ_PKG_VERSION}")
    file(REMOVE_RECURSE "${snap_root}")
    file(MAKE_DIRECTORY "${snap}")
    file(GLOB entries LIST_DIRECTORIES true RELATIVE "${NPUQ_PKG_SOURCE_DIR}" "${NPUQ_PKG_SOURCE_DIR}/*")
    foreach(e IN LISTS entries)
      set(p "${NPUQ_PKG_SOURCE_DIR}/${e}")
      string(FIND "${NPUQ_PKG_BINARY_DIR}/" "${p}/" inside)
      if(e MATCHES "^(\\.git|build.*|out)$" OR EXISTS "${p}/CMakeCache.txt" OR inside EQUAL 0)
        continue()
      endif()
      file(COPY "${p}" DESTINATION "${snap}")
    endforeach()
    set(archive "${snap_root}/npuq-${NPUQ_PKG_VERSION}.tar.gz")
    execute_process(COMMAND "${CMAKE_COMMAND}" -E tar czf "${archive}" "npuq-${NPUQ_PKG_VERSION}"
                    WORKING_DIRECTORY "${snap_root}" RESULT_VARIABLE rc)
    if(NOT rc STREQUAL "0")
      npuq_pkg_fail("could not create ${archive}")
    endif()
    file(REMOVE_RECURSE "${snap}")  # only the archive is left to build from
    list(APPEND args "-DNPUQ_FETCH_URL=file://${archive}")
    set(npuq_bin "${bin}/_deps/npuq-build")
  else()
    npuq_pkg_fail("unknown NPUQ_PKG_MODE '${NPUQ_PKG_MODE}'")
  endif()

  npuq_pkg_run("${CMAKE_COMMAND}" ${args})
  npuq_pkg_run("${CMAKE_COMMAND}" --build "${bin}" --config Release)

  if(NPUQ_PKG_MODE STREQUAL "package")
    npuq_pkg_cache_value("${bin}" npuq_DIR found)
    get_filename_component(found "${found}" REALPATH)
    get_filename_component(expected "${relocated}/${NPUQ_PKG_CMAKEDIR}" REALPATH)
    if(NOT found STREQUAL expected)
      npuq_pkg_fail("find_package(npuq) used ${found}, not the relocated package in ${expected}")
    endif()
  else()
    # npuq as a subproject: no tests, examples, benchmarks or install rules of its own.
    foreach(opt NPUQ_BUILD_TESTS NPUQ_BUILD_EXAMPLES NPUQ_BUILD_BENCHMARKS NPUQ_INSTALL)
      npuq_pkg_cache_value("${bin}" ${opt} value)
      if(value)
        npuq_pkg_fail("${opt} is '${value}' when npuq is not the top-level project")
      endif()
    endforeach()
    foreach(d tests examples bench)
      if(IS_DIRECTORY "${npuq_bin}/${d}")
        npuq_pkg_fail("npuq's ${d}/ was configured although npuq is not the top-level project")
      endif()
    endforeach()
  endif()

  set(exe "${bin}/npuq_consumer${NPUQ_PKG_EXE_SUFFIX}")
  if(NOT EXISTS "${exe}" AND EXISTS "${bin}/Release/npuq_consumer${NPUQ_PKG_EXE_SUFFIX}")
    set(exe "${bin}/Release/npuq_consumer${NPUQ_PKG_EXE_SUFFIX}")  # multi-config generators
  endif()
  npuq_pkg_run_consumer("${exe}")

elseif(NPUQ_PKG_STEP STREQUAL "pkg_config")
  if(NOT NPUQ_PKG_PKG_CONFIG)
    message(STATUS "NPUQ_PACKAGING_SKIPPED: pkg-config was not found when the tests were configured")
    return()
  endif()
  set(bin "${NPUQ_PKG_ROOT}/consumer-pkg-config")
  file(REMOVE_RECURSE "${bin}")
  file(MAKE_DIRECTORY "${bin}")
  set(pc_dir "${relocated}/${NPUQ_PKG_PKGCONFIGDIR}")
  if(DEFINED ENV{PKG_CONFIG_PATH} AND NOT "$ENV{PKG_CONFIG_PATH}" STREQUAL "")
    set(ENV{PKG_CONFIG_PATH} "${pc_dir}:$ENV{PKG_CONFIG_PATH}")
  else()
    set(ENV{PKG_CONFIG_PATH} "${pc_dir}")
  endif()
  message(STATUS "PKG_CONFIG_PATH=$ENV{PKG_CONFIG_PATH}")

  npuq_pkg_run("${NPUQ_PKG_PKG_CONFIG}" --modversion npuq)
  string(STRIP "${npuq_pkg_output}" version)
  if(NOT version STREQUAL NPUQ_PKG_VERSION)
    npuq_pkg_fail("pkg-config --modversion npuq says '${version}', expected ${NPUQ_PKG_VERSION}")
  endif()
  npuq_pkg_run("${NPUQ_PKG_PKG_CONFIG}" --cflags npuq)
  string(STRIP "${npuq_pkg_output}" cflags_text)
  separate_arguments(cflags UNIX_COMMAND "${cflags_text}")
  npuq_pkg_run("${NPUQ_PKG_PKG_CONFIG}" --libs npuq)
  string(STRIP "${npuq_pkg_output}" libs_text)
  separate_arguments(libs UNIX_COMMAND "${libs_text}")
  message(STATUS "cflags: ${cflags_text}\n   libs: ${libs_text}")

  # The include directory must resolve into the relocated prefix.
  get_filename_component(expected "${relocated}/${NPUQ_PKG_INCLUDEDIR}" REALPATH)
  set(found_include FALSE)
  foreach(flag IN LISTS cflags)
    if(flag MATCHES "^-I(.+)$")
      get_filename_component(dir "${CMAKE_MATCH_1}" REALPATH)
      if(dir STREQUAL expected)
        set(found_include TRUE)
      endif()
    endif()
  endforeach()
  if(NOT found_include)
    npuq_pkg_fail("pkg-config --cflags npuq (${cflags_text}) has no -I for ${expected}")
  endif()

  set(exe "${bin}/npuq_consumer${NPUQ_PKG_EXE_SUFFIX}")
  npuq_pkg_run("${NPUQ_PKG_CXX_COMPILER}" -std=c++17 -O2 ${cflags} "${NPUQ_PKG_SOURCE_DIR}/examples/consumer/main.cpp"
               -o "${exe}" ${libs})
  npuq_pkg_run_consumer("${exe}")

else()
  npuq_pkg_fail("unknown NPUQ_PKG_STEP '${NPUQ_PKG_STEP}'")
endif()
