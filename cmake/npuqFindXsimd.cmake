# Finds xsimd and repairs Debian's xsimd 8.1 export, which names a non-existent `xtl` link
# dependency. Used by the build tree and by the installed npuqConfig.cmake.
macro(npuq_find_xsimd)
  if(NOT TARGET xsimd)
    # Debian's version file is SameMajorVersion: ask without a version and check it ourselves.
    find_package(xsimd CONFIG REQUIRED)
    if(xsimd_VERSION VERSION_LESS 8.0)
      message(FATAL_ERROR "npuq needs xsimd >= 8.0, found ${xsimd_VERSION}")
    endif()
  endif()
  get_target_property(_npuq_xsimd_links xsimd INTERFACE_LINK_LIBRARIES)
  if(_npuq_xsimd_links STREQUAL "xtl" AND NOT TARGET xtl)
    set_target_properties(xsimd PROPERTIES INTERFACE_LINK_LIBRARIES "")
  endif()
endmacro()
