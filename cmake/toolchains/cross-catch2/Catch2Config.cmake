# Catch2 for cross builds (found through Catch2_DIR, set by the toolchain files next to this).
#
# Debian's Catch2 2.13 is a single header plus one prebuilt static library, Catch2WithMain,
# compiled for the host: a cross linker rejects it. This config provides the same two targets
# from the header alone: Catch2::Catch2 (the header) and Catch2::Catch2WithMain, a static
# library built here for the target from the header with CATCH_CONFIG_MAIN.
if(NOT TARGET Catch2::Catch2)
  find_path(NPUQ_CATCH2_INCLUDE_DIR catch2/catch.hpp PATHS /usr/include /usr/local/include NO_CMAKE_FIND_ROOT_PATH
            DOC "Directory holding catch2/catch.hpp (Catch2 2.x single header)")
  if(NOT NPUQ_CATCH2_INCLUDE_DIR)
    set(Catch2_FOUND FALSE)
    set(Catch2_NOT_FOUND_MESSAGE "catch2/catch.hpp not found (Debian package catch2)")
    return()
  endif()
  add_library(Catch2::Catch2 INTERFACE IMPORTED)
  set_target_properties(Catch2::Catch2 PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${NPUQ_CATCH2_INCLUDE_DIR}")

  set(_npuq_catch_main "${CMAKE_CURRENT_BINARY_DIR}/npuq_catch2_with_main.cpp")
  if(NOT EXISTS "${_npuq_catch_main}")
    file(WRITE "${_npuq_catch_main}" "#define CATCH_CONFIG_MAIN\n#include <catch2/catch.hpp>\n")
  endif()
  add_library(npuq_catch2_with_main STATIC "${_npuq_catch_main}")
  target_link_libraries(npuq_catch2_with_main PUBLIC Catch2::Catch2)
  set_target_properties(npuq_catch2_with_main PROPERTIES CXX_STANDARD 17 CXX_STANDARD_REQUIRED ON CXX_EXTENSIONS OFF)
  add_library(Catch2::Catch2WithMain ALIAS npuq_catch2_with_main)
  unset(_npuq_catch_main)
endif()
set(Catch2_VERSION 2.13.10)
