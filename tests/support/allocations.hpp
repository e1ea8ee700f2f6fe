// Counts heap allocations, so tests can check that plan runs allocate nothing.
//
// Replaces the global operator new of the test program that includes it: include it from
// exactly one source file per test executable. Counting works where the replacement does, i.e.
// not under AddressSanitizer, whose runtime owns operator new (kCountsAllocations is false
// there and the zero-allocation checks are skipped; the release pass counts).
#pragma once

#include <atomic>
#include <cstdlib>
#include <new>

namespace npuq_test {
inline std::atomic<long> g_allocations{0};
inline std::atomic<bool> g_counting{false};

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kCountsAllocations = false;
#else
constexpr bool kCountsAllocations = true;
#endif

// Allocations made by fn().
template <class Fn>
long allocations_in(Fn&& fn) {
  g_allocations = 0;
  g_counting = true;
  fn();
  g_counting = false;
  return g_allocations.load();
}
}  // namespace npuq_test

#if !defined(__SANITIZE_ADDRESS__)
// GCC cannot see that the replaced new and delete below pair malloc with free.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void* operator new(std::size_t n) {
  if (npuq_test::g_counting.load(std::memory_order_relaxed)) npuq_test::g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#endif
