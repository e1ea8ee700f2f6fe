// Deterministic random tensors and shape lists shared by the tests.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include <npuq/core/tensor.hpp>

namespace npuq_test {

// Sizes every op is tested over: 1..10, powers of two and +-1, and a few odd ones.
inline std::vector<std::int64_t> edge_sizes() { return {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17, 31, 32, 33, 63, 64, 65}; }

class rng {
 public:
  explicit rng(std::uint32_t seed) : gen_(seed) {}
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen_); }
  float uniform_real(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(gen_); }
  std::mt19937& engine() { return gen_; }

 private:
  std::mt19937 gen_;
};

// n positive scales drawn uniformly from [lo, hi).
inline std::vector<float> random_scales(rng& r, std::int64_t n, float lo = 0.0005f, float hi = 0.01f) {
  std::vector<float> s(static_cast<std::size_t>(n));
  for (auto& x : s) x = r.uniform_real(lo, hi);
  return s;
}

// n zero points drawn uniformly from [lo, hi].
inline std::vector<std::int32_t> random_zero_points(rng& r, std::int64_t n, int lo, int hi) {
  std::vector<std::int32_t> z(static_cast<std::size_t>(n));
  for (auto& x : z) x = r.uniform(lo, hi);
  return z;
}

// Fills every element reachable through the tensor's layout with values in [lo, hi].
template <class T>
void fill(const npuq::Tensor<T>& t, rng& r, int lo, int hi) {
  const npuq::TensorView<T> v = t.view();
  npuq::for_each_index(v.layout(), [&](const std::int64_t* i) {
    v.store(v.offset() + v.layout().offset_of(i), static_cast<typename npuq::TensorView<T>::value_type>(r.uniform(lo, hi)));
  });
}

// Full-range random fill for 8-bit types.
template <class T>
void fill(const npuq::Tensor<T>& t, rng& r) {
  fill(t, r, npuq::element_traits<T>::min, npuq::element_traits<T>::max);
}

template <class T>
std::vector<std::int64_t> values(const npuq::TensorView<T>& v) {
  std::vector<std::int64_t> out;
  npuq::for_each_index(v.layout(), [&](const std::int64_t* i) { out.push_back(v.load(v.offset() + v.layout().offset_of(i))); });
  return out;
}
template <class T>
std::vector<std::int64_t> values(const npuq::Tensor<T>& t) {
  return values(t.cview());
}

}  // namespace npuq_test
