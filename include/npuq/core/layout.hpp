// Layout = shape + strides (in elements), as in CuTe.
//
// Every tensor npuq touches is described by a Layout, so kernels index through one rule
// (offset = sum(index[i] * stride[i])) instead of ad-hoc arithmetic per format. Ops use a fixed
// *logical* dimension order (activations N,H,W,C; conv weights O,H,W,I; matrices rows,cols) and
// other memory orders are expressed by strides: `nchw(...)` returns a layout whose logical order
// is still (N,H,W,C) but whose strides walk NCHW memory, and a [N,K] weight matrix is used as a
// [K,N] operand through `col_major(K, N)`. Slicing and transposing produce new layouts without
// copying data.
//
// Extents and strides come from callers, so every size, span and stride product is computed with
// checked arithmetic (core/checked.hpp): a layout whose strides, size or span do not fit in int64
// reports it through fits(), and TensorView::validate turns that into an error naming the argument.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>

#include "npuq/core/checked.hpp"

namespace npuq {

class Layout {
 public:
  static constexpr int max_rank = 6;

  Layout() = default;

  // Contiguous row-major (last dimension fastest) layout of the given extents.
  static Layout row_major(std::initializer_list<std::int64_t> extents) {
    Layout l;
    if (extents.size() > max_rank) return too_many_dims();
    for (std::int64_t e : extents) l.shape_[static_cast<std::size_t>(l.rank_++)] = e;
    l.make_row_major_strides();
    return l;
  }
  // Contiguous row-major layout of a runtime number of extents (rank > 6 gives a malformed layout).
  static Layout row_major(const std::int64_t* extents, int rank) {
    Layout l;
    if (rank < 0 || rank > max_rank) return too_many_dims();
    for (int i = 0; i < rank; ++i) l.shape_[static_cast<std::size_t>(l.rank_++)] = extents[i];
    l.make_row_major_strides();
    return l;
  }
  // Explicit shape and strides.
  static Layout strided(std::initializer_list<std::int64_t> extents, std::initializer_list<std::int64_t> strides) {
    Layout l;
    if (extents.size() > max_rank || strides.size() > max_rank) return too_many_dims();
    for (std::int64_t e : extents) l.shape_[static_cast<std::size_t>(l.rank_++)] = e;
    int i = 0;
    for (std::int64_t s : strides) l.stride_[static_cast<std::size_t>(i++)] = s;
    l.strides_given_ = i;
    return l;
  }

  // Matrices: logical (rows, cols).
  static Layout matrix(std::int64_t rows, std::int64_t cols) { return row_major({rows, cols}); }
  // Column-major (rows, cols) matrix, i.e. the transpose of a row-major [cols, rows] buffer.
  static Layout col_major(std::int64_t rows, std::int64_t cols) { return strided({rows, cols}, {1, rows}); }

  // Activations, logical (N, H, W, C).
  static Layout nhwc(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c) { return row_major({n, h, w, c}); }
  static Layout nchw(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
    bool ok = true;
    const std::int64_t hw = product(h, w, &ok), chw = product(c, hw, &ok);
    Layout l = strided({n, h, w, c}, {chw, w, 1, hw});
    l.overflow_ = !ok;
    return l;
  }
  // Convolution weights, logical (O, KH, KW, I) where I = input channels per group.
  static Layout ohwi(std::int64_t o, std::int64_t kh, std::int64_t kw, std::int64_t i) { return row_major({o, kh, kw, i}); }
  static Layout oihw(std::int64_t o, std::int64_t i, std::int64_t kh, std::int64_t kw) {
    bool ok = true;
    const std::int64_t hw = product(kh, kw, &ok), ihw = product(i, hw, &ok);
    Layout l = strided({o, kh, kw, i}, {ihw, kw, 1, hw});
    l.overflow_ = !ok;
    return l;
  }
  // TensorFlow's conv weight order [KH, KW, I, O], read as the logical (O, KH, KW, I).
  static Layout hwio(std::int64_t kh, std::int64_t kw, std::int64_t i, std::int64_t o) {
    bool ok = true;
    const std::int64_t io = product(i, o, &ok), wio = product(kw, io, &ok);
    Layout l = strided({o, kh, kw, i}, {1, wio, io, o});
    l.overflow_ = !ok;
    return l;
  }
  // Depthwise weights, logical (KH, KW, C*M): output channel oc = c * M + m.
  static Layout hwc_m(std::int64_t kh, std::int64_t kw, std::int64_t c, std::int64_t m) {
    bool ok = true;
    Layout l = row_major({kh, kw, product(c, m, &ok)});
    l.overflow_ = l.overflow_ || !ok;
    return l;
  }

  int rank() const { return rank_; }
  // Dimension i (negative i counts from the back). Out-of-range i is a caller bug; it is clamped
  // so the access stays inside the arrays (and GCC can see that it does).
  std::int64_t dim(int i) const { return shape_[index(i)]; }
  std::int64_t stride(int i) const { return stride_[index(i)]; }
  const std::int64_t* shape() const { return shape_.data(); }
  const std::int64_t* strides() const { return stride_.data(); }
  // True when the factory was given as many strides as extents (always true for named factories).
  bool well_formed() const {
    if (rank_ < 0 || rank_ > max_rank) return false;
    if (strides_given_ >= 0 && strides_given_ != rank_) return false;
    for (int i = 0; i < rank_; ++i)
      if (shape_[i] < 0 || stride_[i] < 0) return false;
    return true;
  }

  // True when the strides a factory computed, the number of elements and the span all fit in
  // int64 (a well-formed layout that does not fit addresses more than any buffer can hold).
  bool fits() const {
    std::int64_t n = 0;
    return !overflow_ && try_size(&n) && try_span(&n);
  }
  // Number of logical elements; false when it does not fit in int64.
  bool try_size(std::int64_t* out) const {
    for (int i = 0; i < rank_; ++i)
      if (shape_[i] == 0) {  // empty, whatever the other extents
        *out = 0;
        return true;
      }
    std::int64_t n = 1;
    for (int i = 0; i < rank_; ++i)
      if (!checked_mul(n, shape_[i], &n)) return false;
    *out = n;
    return true;
  }
  // One past the largest offset reached (0 for an empty layout); false when it does not fit.
  bool try_span(std::int64_t* out) const {
    for (int i = 0; i < rank_; ++i)
      if (shape_[i] == 0) {  // empty, whatever the other extents and strides
        *out = 0;
        return true;
      }
    std::int64_t last = 0;
    for (int i = 0; i < rank_; ++i)
      if (!checked_mul_add(shape_[i] - 1, stride_[i], last, &last)) return false;
    return checked_add(last, 1, out);
  }
  // The same, saturated at INT64_MAX when the exact value does not fit (see fits()), so a size
  // compared against a capacity never wraps into a small number.
  std::int64_t size() const {
    std::int64_t n = 0;
    return try_size(&n) ? n : std::numeric_limits<std::int64_t>::max();
  }
  std::int64_t span() const {
    std::int64_t n = 0;
    return try_span(&n) ? n : std::numeric_limits<std::int64_t>::max();
  }
  bool is_row_major() const { return *this == row_major_like(); }
  // The same shape with row-major strides (the stride products may overflow only for a shape
  // whose size does: fits() says). Ops give an empty view these, since any strides pass the
  // checks of a view that addresses nothing.
  Layout row_major_like() const {
    Layout l = *this;
    l.make_row_major_strides();
    return l;
  }

  // Offset of a multi-index (elements).
  template <class... I>
  std::int64_t operator()(I... idx) const {
    static_assert(sizeof...(I) <= max_rank, "too many indices");
    const std::int64_t ix[] = {static_cast<std::int64_t>(idx)...};
    std::int64_t off = 0;
    for (std::size_t i = 0; i < sizeof...(I); ++i) off += ix[i] * stride_[i];
    return off;
  }

  // Offset of an index array of length rank().
  std::int64_t offset_of(const std::int64_t* idx) const {
    std::int64_t off = 0;
    for (int i = 0; i < rank_; ++i) off += idx[i] * stride_[i];
    return off;
  }

  // No two in-range indices map to the same offset (required of outputs).
  bool is_non_overlapping() const {
    if (size() == 0) return true;  // nothing is addressed
    std::array<int, max_rank> order{};
    int n = 0;
    for (int i = 0; i < rank_; ++i)
      if (shape_[i] > 1) order[static_cast<std::size_t>(n++)] = i;
    for (int a = 1; a < n; ++a)  // insertion sort by stride
      for (int b = a; b > 0 && stride_[order[b]] < stride_[order[b - 1]]; --b) std::swap(order[b], order[b - 1]);
    std::int64_t need = 1;
    for (int a = 0; a < n; ++a) {
      if (stride_[order[a]] < need) return false;
      if (!checked_mul(stride_[order[a]], shape_[order[a]], &need)) need = std::numeric_limits<std::int64_t>::max();
    }
    return true;
  }

  // Sub-range [start, start + len) of dimension d; returns the element offset of the new origin.
  Layout slice(int d, std::int64_t start, std::int64_t len, std::int64_t* offset) const {
    Layout l = *this;
    l.shape_[static_cast<std::size_t>(norm(d))] = len;
    *offset = start * stride(d);
    return l;
  }
  // Swaps two dimensions (a transposed view).
  Layout transpose(int a, int b) const {
    Layout l = *this;
    std::swap(l.shape_[static_cast<std::size_t>(norm(a))], l.shape_[static_cast<std::size_t>(norm(b))]);
    std::swap(l.stride_[static_cast<std::size_t>(norm(a))], l.stride_[static_cast<std::size_t>(norm(b))]);
    return l;
  }

  // "(2,3,4):(12,4,1)"
  std::string to_string() const {
    std::string s = "(";
    for (int i = 0; i < rank_; ++i) s += (i ? "," : "") + std::to_string(shape_[i]);
    s += "):(";
    for (int i = 0; i < rank_; ++i) s += (i ? "," : "") + std::to_string(stride_[i]);
    return s + ")";
  }
  std::string shape_string() const {
    std::string s = "[";
    for (int i = 0; i < rank_; ++i) s += (i ? "," : "") + std::to_string(shape_[i]);
    return s + "]";
  }

  friend bool operator==(const Layout& a, const Layout& b) {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.shape_[i] != b.shape_[i] || a.stride_[i] != b.stride_[i]) return false;
    return true;
  }
  friend bool operator!=(const Layout& a, const Layout& b) { return !(a == b); }
  // Every field equal, including how the layout was formed (operator== compares the shape and
  // strides only): two identical layouts pass or fail the same checks.
  bool identical(const Layout& o) const {
    if (rank_ != o.rank_ || strides_given_ != o.strides_given_ || overflow_ != o.overflow_) return false;
    for (std::size_t i = 0; i < static_cast<std::size_t>(std::min(std::max(rank_, 0), max_rank)); ++i)
      if (shape_[i] != o.shape_[i] || stride_[i] != o.stride_[i]) return false;
    return true;
  }

 private:
  static Layout too_many_dims() {  // a layout that fails well_formed()
    Layout l;
    l.strides_given_ = max_rank + 1;
    return l;
  }
  int norm(int i) const { return i < 0 ? i + rank_ : i; }
  std::size_t index(int i) const {
    const int k = norm(i);
    return static_cast<std::size_t>(k < 0 ? 0 : (k >= max_rank ? max_rank - 1 : k));
  }
  // a * b, clearing *ok (and saturating) when the product does not fit.
  static std::int64_t product(std::int64_t a, std::int64_t b, bool* ok) {
    std::int64_t p = 0;
    if (checked_mul(a, b, &p)) return p;
    *ok = false;
    return std::numeric_limits<std::int64_t>::max();
  }
  void make_row_major_strides() {
    bool ok = true;
    std::int64_t s = 1;
    for (int i = rank_ - 1; i >= 0; --i) {
      stride_[static_cast<std::size_t>(i)] = s;
      if (i > 0) s = product(s, shape_[static_cast<std::size_t>(i)], &ok);  // the full product is size()
    }
    overflow_ = !ok;
  }

  int rank_ = 0;
  int strides_given_ = -1;
  bool overflow_ = false;  // a factory's stride product did not fit in int64
  std::array<std::int64_t, max_rank> shape_{};
  std::array<std::int64_t, max_rank> stride_{};
};

// Calls f(index) for every multi-index of the layout, last dimension fastest.
template <class F>
void for_each_index(const Layout& l, F&& f) {
  if (l.size() == 0) return;
  std::array<std::int64_t, Layout::max_rank> idx{};
  for (;;) {
    f(static_cast<const std::int64_t*>(idx.data()));
    int d = l.rank() - 1;
    for (; d >= 0; --d) {
      if (++idx[static_cast<std::size_t>(d)] < l.dim(d)) break;
      idx[static_cast<std::size_t>(d)] = 0;
    }
    if (d < 0) return;
  }
}

}  // namespace npuq
