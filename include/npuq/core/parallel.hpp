// Splitting an op's work over threads, with results that do not depend on the thread count.
//
// npuq threads through OpenMP when the consumer compiles with it (the CMake target npuq::npuq
// adds it when the compiler has it; without -fopenmp every op runs on the calling thread and
// says so through simd_last_threads()). OpenMP rather than a pool library: every GCC and Clang
// ships it, cross compilers included, so a header-only library needs nothing to be built for the
// target; pthreadpool would have to be installed for each architecture.
//
// An op cuts its work into parts that write disjoint outputs (row blocks, column panels,
// channels), each computed exactly as on one thread: the same kernels on the same tiles, so the
// bytes are the same for any thread count. No K sum is split across threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <exception>
#include <thread>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace npuq {

// True when this translation unit was compiled with OpenMP, i.e. ops can use several threads.
inline constexpr bool threading_available =
#if defined(_OPENMP)
    true;
#else
    false;
#endif

// Threads a backend value asks for, as a count: n > 0 is n, 0 is every hardware thread,
// negative values are 1.
inline int thread_count(int requested) {
  if (requested > 0) return requested;
  if (requested < 0) return 1;
#if defined(_OPENMP)
  return std::max(1, omp_get_num_procs());
#else
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
#endif
}

namespace detail {
inline int& last_threads_storage() {
  thread_local int n = 1;
  return n;
}

// Runs fn(part) for every part in [0, parts), each exactly once, on up to `threads` threads.
// fn must not depend on which thread runs a part. An exception thrown by fn is rethrown on the
// calling thread after every part has finished.
template <class Fn>
void parallel_parts(int threads, std::int64_t parts, Fn&& fn) {
  int used = 1;
#if defined(_OPENMP)
  if (threads > 1 && parts > 1) {
    const int team = static_cast<int>(std::min<std::int64_t>(threads, parts));
#if defined(__cpp_exceptions)
    std::exception_ptr error;
#endif
    // One fork and one join: no barrier inside the region (each costs microseconds).
#pragma omp parallel num_threads(team)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      if (t == 0) used = nt;
      for (std::int64_t part = parts * t / nt; part < parts * (t + 1) / nt; ++part) {
#if defined(__cpp_exceptions)
        try {
          fn(part);
        } catch (...) {
#pragma omp critical(npuq_parallel_error)
          if (!error) error = std::current_exception();
        }
#else
        fn(part);
#endif
      }
    }
    last_threads_storage() = used;
#if defined(__cpp_exceptions)
    if (error) std::rethrow_exception(error);
#endif
    return;
  }
#endif
  (void)threads;
  for (std::int64_t part = 0; part < parts; ++part) fn(part);
  last_threads_storage() = used;
}
}  // namespace detail

// How many threads the last simd op on this thread ran on (1 without OpenMP).
inline int simd_last_threads() { return detail::last_threads_storage(); }

}  // namespace npuq
