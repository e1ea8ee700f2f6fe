// Errors and status codes.
//
// Every public npuq entry point validates its arguments before it touches memory. A failure is
// described by a `status` (a code plus a message that names the offending argument). Each op has
// two forms: `try_op(...)` returns the status and never throws (usable with -fno-exceptions), and
// `op(...)` throws `npuq::error` carrying the same status. When exceptions are disabled the
// throwing form prints the message and aborts, so misuse is never silent.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <utility>

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS) || defined(_CPPUNWIND)
#define NPUQ_HAS_EXCEPTIONS 1
#else
#define NPUQ_HAS_EXCEPTIONS 0
#endif

namespace npuq {

enum class errc {
  ok = 0,
  invalid_shape,         // rank or extents do not fit the op
  invalid_layout,        // strides the op cannot use (e.g. overlapping output elements)
  invalid_dtype,         // element type combination not supported
  invalid_quantization,  // scale <= 0 / not finite, zero point out of range, wrong channel count
  invalid_argument,      // any other bad parameter (stride 0, padding, clamp bounds, ...)
  buffer_too_small,      // a view's layout reaches past the capacity it was given
  aliasing,              // output memory overlaps an input
  unsupported,           // valid request that this backend / profile does not implement
};

inline const char* to_string(errc c) {
  switch (c) {
    case errc::ok: return "ok";
    case errc::invalid_shape: return "invalid shape";
    case errc::invalid_layout: return "invalid layout";
    case errc::invalid_dtype: return "invalid dtype";
    case errc::invalid_quantization: return "invalid quantization";
    case errc::invalid_argument: return "invalid argument";
    case errc::buffer_too_small: return "buffer too small";
    case errc::aliasing: return "aliasing";
    case errc::unsupported: return "unsupported";
  }
  return "unknown";
}

// Result of a validation or a non-throwing call. `message` names the argument and the problem.
class [[nodiscard]] status {
 public:
  status() = default;
  status(errc code, std::string message) : code_(code), message_(std::move(message)) {}
  static status success() { return {}; }

  bool ok() const { return code_ == errc::ok; }
  explicit operator bool() const { return ok(); }
  errc code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string to_string() const {
    return ok() ? std::string("ok") : std::string(npuq::to_string(code_)) + ": " + message_;
  }

 private:
  errc code_ = errc::ok;
  std::string message_;
};

// Exception thrown by the throwing forms of the API.
class error : public std::runtime_error {
 public:
  explicit error(const status& s) : std::runtime_error(s.to_string()), code_(s.code()) {}
  errc code() const { return code_; }

 private:
  errc code_;
};

// Turns a failed status into an exception (or an abort without exceptions).
inline void throw_if_error(const status& s) {
  if (s.ok()) return;
#if NPUQ_HAS_EXCEPTIONS
  throw error(s);
#else
  std::fprintf(stderr, "npuq: %s\n", s.to_string().c_str());
  std::abort();
#endif
}

}  // namespace npuq

// Propagates a failed status from an expression to the caller.
#define NPUQ_RETURN_IF_ERROR(expr)          \
  do {                                      \
    ::npuq::status npuq_status_ = (expr);   \
    if (!npuq_status_.ok()) return npuq_status_; \
  } while (0)
