# Every public header compiles on its own, with include/ as the only include directory: no
# generated file, no xsimd, no OpenMP, no other npuq header included first. Run as
#
#   cmake -DNPUQ_CXX=<compiler> -DNPUQ_SOURCE_DIR=<repo> -DNPUQ_HEADER_DIR=<dir under include/npuq>
#         -DNPUQ_WORK_DIR=<scratch dir> -P tests/headers.cmake
#
# for the headers directly in include/npuq/<dir> (`.` for npuq.hpp, simd.hpp, npu.hpp and
# version.hpp). Each header gets a one-line translation unit `#include <npuq/...>` compiled with
# -std=c++17 -fsyntax-only -Wall -Wextra -Werror; every failure is printed, then the test fails.
cmake_minimum_required(VERSION 3.16)
foreach(v NPUQ_CXX NPUQ_SOURCE_DIR NPUQ_HEADER_DIR NPUQ_WORK_DIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "headers.cmake: -D${v}=... is required")
  endif()
endforeach()

set(include_dir "${NPUQ_SOURCE_DIR}/include")
file(GLOB headers RELATIVE "${include_dir}" "${include_dir}/npuq/${NPUQ_HEADER_DIR}/*.hpp")
list(SORT headers)
if(NOT headers)
  message(FATAL_ERROR "headers.cmake: no headers in ${include_dir}/npuq/${NPUQ_HEADER_DIR}")
endif()
file(MAKE_DIRECTORY "${NPUQ_WORK_DIR}")
set(failed "")
foreach(h IN LISTS headers)
  string(MAKE_C_IDENTIFIER "${h}" name)
  set(tu "${NPUQ_WORK_DIR}/${name}.cpp")
  file(WRITE "${tu}" "#include <${h}>\n")
  execute_process(COMMAND "${NPUQ_CXX}" -std=c++17 -fsyntax-only -Wall -Wextra -Werror "-I${include_dir}" "${tu}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
  if(rc EQUAL 0)
    message(STATUS "ok      ${h}")
  else()
    message(STATUS "FAILED  ${h}\n${out}")
    list(APPEND failed "${h}")
  endif()
endforeach()
list(LENGTH headers n)
if(failed)
  string(REPLACE ";" ", " failed "${failed}")
  message(FATAL_ERROR "headers that do not compile on their own: ${failed}")
endif()
message(STATUS "all ${n} headers of npuq/${NPUQ_HEADER_DIR} compile on their own")
