// Catch2 shim: the tests build against Debian's Catch2 2.13 (single header) and Catch2 v3.
#pragma once

#if __has_include(<catch2/catch_all.hpp>)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
