// What the README's example programs share outside their README excerpts: fixed stand-in data
// and the byte comparison that makes a program fail when an op differs from its reference.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>

#include <npuq/core/tensor.hpp>

namespace npuq_example {

// Fills a tensor with a fixed pattern of small values in [-period / 2, period / 2).
inline void fill(const npuq::Tensor<std::int8_t>& t, int period) {
  for (std::int64_t i = 0; i < t.size(); ++i) t.data()[i] = static_cast<std::int8_t>(i % period - period / 2);
}

// True when a and b hold the same bytes; otherwise prints "<what>: <mismatch>".
inline bool same(const char* what, const char* mismatch, const npuq::Tensor<std::int8_t>& a, const npuq::Tensor<std::int8_t>& b) {
  if (std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size())) == 0) return true;
  std::printf("%s: %s\n", what, mismatch);
  return false;
}

}  // namespace npuq_example
