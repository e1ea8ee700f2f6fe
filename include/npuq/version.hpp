// Library version. This header is the one place the version is written: CMake reads it for the
// package version (CMakeLists.txt) and npuq.pc, so include/ works on its own without a build step.
#pragma once

#define NPUQ_VERSION_MAJOR 0
#define NPUQ_VERSION_MINOR 1
#define NPUQ_VERSION_PATCH 0
#define NPUQ_VERSION_STRING "0.1.0"
