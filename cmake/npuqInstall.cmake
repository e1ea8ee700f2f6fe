# Install rules: headers, the exported npuq::npuq target with its CMake package, and a
# pkg-config file. npuq is header-only, so everything goes to architecture-independent places
# (include/ and share/), and every installed file locates the others relative to itself: the
# installed tree can be moved or copied to any prefix and still works.
#
# Layout under the prefix:
#   include/npuq/...                 headers (npuq/version.hpp among them)
#   share/cmake/npuq/                npuqConfig.cmake, npuqConfigVersion.cmake, npuqTargets.cmake,
#                                    npuqFindXsimd.cmake (finds xsimd again for the consumer)
#   share/pkgconfig/npuq.pc
include(CMakePackageConfigHelpers)

set(NPUQ_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/npuq" CACHE STRING
    "Where to install npuq's CMake package files, relative to the prefix")
set(NPUQ_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_DATADIR}/pkgconfig" CACHE STRING
    "Where to install npuq.pc, relative to the prefix")
mark_as_advanced(NPUQ_INSTALL_CMAKEDIR NPUQ_INSTALL_PKGCONFIGDIR)

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/npuq"
        DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        COMPONENT npuq_development
        FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")

install(TARGETS npuq EXPORT npuqTargets)
install(EXPORT npuqTargets
        NAMESPACE npuq::
        DESTINATION "${NPUQ_INSTALL_CMAKEDIR}"
        COMPONENT npuq_development)

# 0.x releases may break the API in a minor release; from 1.0 on, the major version decides.
if(PROJECT_VERSION_MAJOR EQUAL 0)
  set(_npuq_compatibility SameMinorVersion)
else()
  set(_npuq_compatibility SameMajorVersion)
endif()
write_basic_package_version_file("${PROJECT_BINARY_DIR}/npuqConfigVersion.cmake"
                                 VERSION "${PROJECT_VERSION}"
                                 COMPATIBILITY ${_npuq_compatibility}
                                 ARCH_INDEPENDENT)
unset(_npuq_compatibility)
configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/npuqConfig.cmake.in"
                              "${PROJECT_BINARY_DIR}/npuqConfig.cmake"
                              INSTALL_DESTINATION "${NPUQ_INSTALL_CMAKEDIR}"
                              PATH_VARS CMAKE_INSTALL_INCLUDEDIR)
install(FILES "${PROJECT_BINARY_DIR}/npuqConfig.cmake"
              "${PROJECT_BINARY_DIR}/npuqConfigVersion.cmake"
              "${PROJECT_SOURCE_DIR}/cmake/npuqFindXsimd.cmake"
        DESTINATION "${NPUQ_INSTALL_CMAKEDIR}"
        COMPONENT npuq_development)

# pkg-config: the prefix is derived from ${pcfiledir}, so the file is relocatable as long as the
# install directories are relative (the GNUInstallDirs defaults are).
if(IS_ABSOLUTE "${NPUQ_INSTALL_PKGCONFIGDIR}")
  set(NPUQ_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH _npuq_pc_up "/npuq-prefix/${NPUQ_INSTALL_PKGCONFIGDIR}" "/npuq-prefix")
  string(REGEX REPLACE "/$" "" _npuq_pc_up "${_npuq_pc_up}")
  set(NPUQ_PC_PREFIX "\${pcfiledir}/${_npuq_pc_up}")
  unset(_npuq_pc_up)
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(NPUQ_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(NPUQ_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file("${PROJECT_SOURCE_DIR}/cmake/npuq.pc.in" "${PROJECT_BINARY_DIR}/npuq.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/npuq.pc"
        DESTINATION "${NPUQ_INSTALL_PKGCONFIGDIR}"
        COMPONENT npuq_development)
