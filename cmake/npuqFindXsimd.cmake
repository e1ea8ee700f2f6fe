# Finds xsimd and repairs Debian's xsimd 8.1 export, which names a non-existent `xtl` link
# dependency. Used by the build tree and by the installed npuqConfig.cmake.
#
#   npuq_find_xsimd()            build tree: a missing or too old xsimd is a fatal error.
#   npuq_find_xsimd(DEPENDENCY)  installed package config: find_dependency() semantics. A missing
#                                or too old xsimd makes find_package(npuq) report npuq as not
#                                found with a message (fatal only if the caller said REQUIRED).
#                                Call it at file scope of the config file: it return()s from there.
macro(npuq_find_xsimd)
  if(NOT TARGET xsimd)
    # Debian's version file is SameMajorVersion: ask without a version and check it ourselves.
    if("${ARGN}" STREQUAL "DEPENDENCY")
      include(CMakeFindDependencyMacro)
      find_dependency(xsimd CONFIG)
      if(NOT xsimd_FOUND)  # only reached when find_dependency() could not return (REQUIRED failures)
        set(${CMAKE_FIND_PACKAGE_NAME}_NOT_FOUND_MESSAGE "${CMAKE_FIND_PACKAGE_NAME} needs xsimd >= 8.0, which was not found")
        set(${CMAKE_FIND_PACKAGE_NAME}_FOUND FALSE)
        return()
      elseif(xsimd_VERSION VERSION_LESS 8.0)
        set(${CMAKE_FIND_PACKAGE_NAME}_NOT_FOUND_MESSAGE
            "${CMAKE_FIND_PACKAGE_NAME} needs xsimd >= 8.0, found ${xsimd_VERSION} in ${xsimd_DIR}")
        set(${CMAKE_FIND_PACKAGE_NAME}_FOUND FALSE)
        return()
      endif()
    else()
      find_package(xsimd CONFIG REQUIRED)
      if(xsimd_VERSION VERSION_LESS 8.0)
        message(FATAL_ERROR "npuq needs xsimd >= 8.0, found ${xsimd_VERSION}")
      endif()
    endif()
  endif()
  get_target_property(_npuq_xsimd_links xsimd INTERFACE_LINK_LIBRARIES)
  if(_npuq_xsimd_links STREQUAL "xtl" AND NOT TARGET xtl)
    set_target_properties(xsimd PROPERTIES INTERFACE_LINK_LIBRARIES "")
  endif()
  unset(_npuq_xsimd_links)
endmacro()
