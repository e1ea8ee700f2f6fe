// TensorView<T> (non-owning) and Tensor<T> (owning, 64-byte aligned).
//
// A view is a pointer, an element offset, a Layout and the quantization of its values, plus
// optionally the capacity of the buffer it points into, so that ops can check that the layout
// stays inside the memory the caller owns. T is int8_t, uint8_t, int32_t or `int4` (packed two
// per byte; the element offset lets an int4 view start in the middle of a byte, as CMSIS-NN
// rows do). Inputs are views of const T; views of T convert to views of const T.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <utility>

#include "npuq/core/checked.hpp"
#include "npuq/core/dtype.hpp"
#include "npuq/core/layout.hpp"
#include "npuq/core/quant.hpp"
#include "npuq/core/status.hpp"

namespace npuq {
namespace detail {
// bytes_for<T>(n) (dtype.hpp) with overflow checked: false when the byte count does not fit.
template <class T>
bool checked_bytes_for(std::int64_t n, std::int64_t* bytes) {
  if (element_traits<std::remove_const_t<T>>::packed) {
    if (!checked_add(n, 1, bytes)) return false;
    *bytes /= 2;
    return true;
  }
  return checked_mul(n, static_cast<std::int64_t>(sizeof(storage_t<T>)), bytes);
}
}  // namespace detail

template <class T>
class TensorView {
 public:
  using element = std::remove_const_t<T>;
  using traits = element_traits<element>;
  using value_type = typename traits::value;
  using storage_type = std::conditional_t<std::is_const<T>::value, const typename traits::storage,
                                          typename traits::storage>;
  static constexpr std::int64_t unknown_capacity = -1;

  TensorView() = default;
  // `capacity` is the number of elements available from `data` (unknown_capacity: trust layout).
  TensorView(storage_type* data, Layout layout, Quant quant = {}, std::int64_t capacity = unknown_capacity)
      : data_(data), layout_(layout), quant_(std::move(quant)), capacity_(capacity) {}
  TensorView(storage_type* data, std::int64_t offset, Layout layout, Quant quant, std::int64_t capacity)
      : data_(data), offset_(offset), layout_(layout), quant_(std::move(quant)), capacity_(capacity) {}

  // View of T -> view of const T.
  template <class U, class = std::enable_if_t<std::is_const<T>::value && std::is_same<const U, T>::value>>
  TensorView(const TensorView<U>& o)  // NOLINT(google-explicit-constructor)
      : data_(o.data()), offset_(o.offset()), layout_(o.layout()), quant_(o.quant()), capacity_(o.capacity()) {}

  storage_type* data() const { return data_; }
  std::int64_t offset() const { return offset_; }
  const Layout& layout() const { return layout_; }
  const Quant& quant() const { return quant_; }
  std::int64_t capacity() const { return capacity_; }
  int rank() const { return layout_.rank(); }
  std::int64_t dim(int i) const { return layout_.dim(i); }
  std::int64_t size() const { return layout_.size(); }
  static constexpr dtype type() { return traits::type; }

  template <class... I>
  value_type operator()(I... idx) const {
    return load(offset_ + layout_(idx...));
  }
  template <class... I>
  void set(value_type v, I... idx) const {
    static_assert(!std::is_const<T>::value, "cannot write through a view of const elements");
    store(offset_ + layout_(idx...), v);
  }
  // Element at a raw element offset from data() (kernels that walk offsets themselves).
  value_type load(std::int64_t off) const {
    if constexpr (traits::packed) {
      return int4_nibble(static_cast<std::uint8_t>(data_[off >> 1]), (off & 1) != 0);
    } else {
      return data_[off];
    }
  }
  void store(std::int64_t off, value_type v) const {
    static_assert(!std::is_const<T>::value, "cannot write through a view of const elements");
    if constexpr (traits::packed) {
      data_[off >> 1] = int4_set_nibble(data_[off >> 1], (off & 1) != 0, v);
    } else {
      data_[off] = v;
    }
  }

  TensorView with_layout(const Layout& l) const { return {data_, offset_, l, quant_, capacity_}; }
  TensorView with_quant(Quant q) const { return {data_, offset_, layout_, std::move(q), capacity_}; }
  TensorView slice(int d, std::int64_t start, std::int64_t len) const {
    std::int64_t off = 0;
    Layout l = layout_.slice(d, start, len, &off);
    return {data_, offset_ + off, l, quant_, capacity_};
  }

  // Bytes [first, last) the view can touch; empty views touch nothing.
  std::pair<const unsigned char*, const unsigned char*> byte_range() const {
    const auto* base = reinterpret_cast<const unsigned char*>(data_);
    const std::int64_t span = layout_.span();
    if (span == 0 || data_ == nullptr) return {base, base};
    const std::int64_t first = offset_, last = offset_ + span;  // element offsets
    if constexpr (traits::packed) return {base + (first >> 1), base + ((last + 1) >> 1)};
    else return {base + first * static_cast<std::int64_t>(sizeof(storage_type)), base + last * static_cast<std::int64_t>(sizeof(storage_type))};
  }

  // Structural checks shared by every op: well-formed layout, non-null data, inside capacity.
  status validate(const char* name) const {
    if (!layout_.well_formed())
      return {errc::invalid_layout, std::string(name) + ": malformed layout " + layout_.to_string() +
                                        " (rank > 6, negative extent or stride, or stride count differs)"};
    std::int64_t span = 0, end = 0;
    if (!layout_.fits() || !layout_.try_span(&span))
      return {errc::invalid_layout, std::string(name) + ": layout " + layout_.to_string() +
                                        " addresses more than 2^63 - 1 elements (its strides, size or span overflow int64)"};
    if (span > 0 && data_ == nullptr) return {errc::invalid_argument, std::string(name) + ": data is null"};
    if (offset_ < 0) return {errc::invalid_layout, std::string(name) + ": negative offset"};
    std::int64_t bytes = 0;
    if (!checked_add(offset_, span, &end) || !detail::checked_bytes_for<element>(end, &bytes))
      return {errc::invalid_layout, std::string(name) + ": layout " + layout_.to_string() + " at offset " + std::to_string(offset_) +
                                        " reaches past the largest addressable byte"};
    if (capacity_ != unknown_capacity && end > capacity_)
      return {errc::buffer_too_small, std::string(name) + ": layout " + layout_.to_string() + " at offset " +
                                          std::to_string(offset_) + " needs " + std::to_string(end) +
                                          " elements, buffer holds " + std::to_string(capacity_)};
    return {};
  }

 private:
  storage_type* data_ = nullptr;
  std::int64_t offset_ = 0;
  Layout layout_;
  Quant quant_;
  std::int64_t capacity_ = unknown_capacity;
};

// True when two views can touch a common byte. Conservative for int4: two views on different
// nibbles of one byte (neighbouring rows that start mid-byte) count as overlapping.
template <class A, class B>
bool overlaps(const TensorView<A>& a, const TensorView<B>& b) {
  auto ra = a.byte_range();
  auto rb = b.byte_range();
  if (ra.first == ra.second || rb.first == rb.second) return false;
  return ra.first < rb.second && rb.first < ra.second;
}

// Owning tensor with 64-byte aligned, zero-initialised storage for its layout's span.
template <class T>
class Tensor {
 public:
  static_assert(!std::is_const<T>::value, "Tensor<T> owns mutable storage");
  using storage_type = storage_t<T>;

  Tensor() = default;
  // Throws (aborts without exceptions) when the layout addresses more than int64 can count.
  explicit Tensor(const Layout& layout, Quant quant = {}) : layout_(layout), quant_(std::move(quant)) {
    elements_ = layout.span();
    std::int64_t bytes_needed = 0;
    if (layout.well_formed() && (!layout.fits() || !detail::checked_bytes_for<T>(elements_, &bytes_needed)))
      throw_if_error({errc::invalid_layout, "Tensor: layout " + layout.to_string() + " needs more than 2^63 - 1 bytes"});
    if (elements_ < 0) elements_ = 0;  // a malformed layout: ops reject it through validate()
    const std::size_t bytes = static_cast<std::size_t>(bytes_for<T>(elements_));
    const std::size_t rounded = (bytes + 63) / 64 * 64;
    if (rounded > 0) {
      void* p = std::aligned_alloc(64, rounded);
      if (p == nullptr) throw_if_error({errc::invalid_argument, "Tensor: out of memory allocating " + std::to_string(rounded) + " bytes"});
      std::memset(p, 0, rounded);
      data_.reset(static_cast<storage_type*>(p));
    }
  }
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;

  TensorView<T> view() const { return {data_.get(), 0, layout_, quant_, elements_}; }
  TensorView<const T> cview() const { return view(); }
  operator TensorView<const T>() const { return cview(); }  // NOLINT(google-explicit-constructor)

  storage_type* data() const { return data_.get(); }
  const Layout& layout() const { return layout_; }
  const Quant& quant() const { return quant_; }
  void set_quant(Quant q) { quant_ = std::move(q); }
  std::int64_t size() const { return layout_.size(); }
  std::int64_t storage_bytes() const { return bytes_for<T>(elements_); }
  // Elements the storage holds (a view's capacity).
  std::int64_t capacity() const { return elements_; }

 private:
  struct free_deleter {
    void operator()(void* p) const { std::free(p); }
  };
  Layout layout_;
  Quant quant_;
  std::int64_t elements_ = 0;
  std::unique_ptr<storage_type, free_deleter> data_;
};

// Argument adapters used by the op entry points, so callers can pass a Tensor<T>, a
// TensorView<T> or a TensorView<const T> wherever an input is read, and a Tensor<T> or a
// TensorView<T> where an output is written. `no_bias` stands for an absent bias.
struct no_bias_t {};
inline constexpr no_bias_t no_bias{};

namespace detail {
template <class X>
struct view_element;
template <class T>
struct view_element<TensorView<T>> {
  using type = std::remove_const_t<T>;
  static constexpr bool writable = !std::is_const<T>::value;
};
template <class T>
struct view_element<Tensor<T>> {
  using type = T;
  static constexpr bool writable = true;
};
template <>
struct view_element<no_bias_t> {
  using type = std::int32_t;
  static constexpr bool writable = false;
};
template <class X>
using element_of = typename view_element<std::remove_cv_t<std::remove_reference_t<X>>>::type;
// True for the arguments element_of reads (Tensor, TensorView, no_bias).
template <class X, class = void>
struct is_view_arg : std::false_type {};
template <class X>
struct is_view_arg<X, std::void_t<element_of<X>>> : std::true_type {};

// The view the backends form offsets in: an empty view addresses nothing, so any strides pass
// its checks; it gets row-major strides instead, which are 0 in front of its empty extent, so no
// offset formed from them can overflow (libFuzzer fuzz_gemm: m * INT64_MAX for an empty A).
template <class T>
TensorView<T> addressable(const TensorView<T>& v) {
  return v.size() != 0 ? v : v.with_layout(v.layout().row_major_like());
}

// dst = src element by element over the same logical shape, whatever either's strides (the
// caller checked the shapes and that dst is writable and apart from src).
template <class S, class D>
void copy_elements(const TensorView<S>& src, const TensorView<D>& dst) {
  for_each_index(src.layout(), [&](const std::int64_t* i) {
    dst.store(dst.offset() + dst.layout().offset_of(i),
              static_cast<typename TensorView<D>::value_type>(src.load(src.offset() + src.layout().offset_of(i))));
  });
}
}  // namespace detail

template <class T>
TensorView<const T> input_view(const TensorView<T>& v) { return v; }
template <class T>
TensorView<const T> input_view(const Tensor<T>& t) { return t.cview(); }
inline TensorView<const std::int32_t> input_view(no_bias_t) { return {}; }

template <class T>
TensorView<T> output_view(const TensorView<T>& v) {
  static_assert(!std::is_const<T>::value, "output: a view of const elements cannot be written");
  return v;
}
template <class T>
TensorView<T> output_view(const Tensor<T>& t) { return t.view(); }

}  // namespace npuq
