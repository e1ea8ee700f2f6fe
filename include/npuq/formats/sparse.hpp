// Sparse weight formats: 2:4 structured, block CSR and unstructured CSR.
//
// Weights are compressed once, before any kernel runs, so these formats are plain data structures
// with compress / prune / decompress functions and byte counts (the NPU emulator charges for the
// bytes it moves). Each describes a logical [K, N] int8 weight matrix: GEMM's B operand, or conv
// OHWI weights flattened to K = KH*KW*I, N = O (a [K, N] view of an OHWI buffer is
// Layout::col_major(K, N)). Sparsity means the value 0, so weight zero points must be 0. The
// formats store each output channel n contiguously along K, and a sparse kernel must give exactly
// the dense kernel's result on the decompressed weights (NUMERICS.md section 6).
//
// Every function here validates its arguments first, returns an npuq::status, never throws and
// writes nothing when it fails. The quantization of the dense view is carried along (`quant`)
// so kernels find the per-channel scales next to the weights.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "npuq/core/tensor.hpp"

namespace npuq {

namespace detail {

// Index vectors are int32 (as in TFLite); larger dimensions are rejected.
constexpr std::int64_t sparse_max_dim = std::numeric_limits<std::int32_t>::max();
// Largest block edge for block CSR: keeps every size computation inside int64.
constexpr std::int64_t sparse_max_block = 1 << 16;

inline std::string sparse_arg(const char* name, const std::string& what) { return std::string(name) + ": " + what; }

// Quantization of a sparse weight matrix: valid for `layout`, and every zero point 0.
inline status validate_sparse_quant(const Quant& q, const Layout& layout, dtype t, const char* name) {
  NPUQ_RETURN_IF_ERROR(validate_quant(q, layout, t, name, false));
  for (std::size_t i = 0; i < q.zero_points.size(); ++i)
    if (q.zero_points[i] != 0)
      return {errc::invalid_quantization,
              sparse_arg(name, "zero_point[" + std::to_string(i) + "] = " + std::to_string(q.zero_points[i]) +
                                   "; sparse weight formats need zero point 0 (sparsity means the value 0)")};
  return {};
}

// Block shape bn x bk of block CSR.
inline status validate_block_shape(std::int64_t bn, std::int64_t bk, const char* name) {
  if (bn <= 0 || bk <= 0 || bn > sparse_max_block || bk > sparse_max_block)
    return {errc::invalid_argument, sparse_arg(name, "block shape " + std::to_string(bn) + "x" + std::to_string(bk) +
                                                         " (bn x bk) must have both sides in [1, " +
                                                         std::to_string(sparse_max_block) + "]")};
  return {};
}

// A [K, N] int8 weight view the sparse formats accept.
inline status validate_sparse_weights(const TensorView<const std::int8_t>& w, const char* name) {
  NPUQ_RETURN_IF_ERROR(w.validate(name));
  if (w.rank() != 2)
    return {errc::invalid_shape, sparse_arg(name, "shape " + w.layout().shape_string() +
                                                      ", expected a [K, N] matrix (conv weights: compress_conv2d_* and prune_conv2d_2_4)")};
  if (w.dim(0) > sparse_max_dim || w.dim(1) > sparse_max_dim)
    return {errc::unsupported, sparse_arg(name, "shape " + w.layout().shape_string() + " exceeds the int32 index range")};
  return validate_sparse_quant(w.quant(), w.layout(), dtype::s8, name);
}

// No two elements of a written view share an address. (Layout::is_non_overlapping() is false
// for empty row-major layouts such as (3,0):(0,1), which hold no elements at all.)
inline bool writable_layout(const Layout& l) { return l.size() == 0 || l.is_non_overlapping(); }

// A [K, N] weight view that is written in place (pruning).
inline status validate_sparse_weights_inout(const TensorView<std::int8_t>& w, const char* name) {
  NPUQ_RETURN_IF_ERROR(validate_sparse_weights(w, name));
  if (!writable_layout(w.layout()))
    return {errc::invalid_layout, sparse_arg(name, "layout " + w.layout().to_string() + " maps two elements to one address")};
  return {};
}

// True when a view can touch a byte of a vector's storage.
template <class T, class E>
bool overlaps_storage(const TensorView<T>& v, const std::vector<E>& buf) {
  const auto r = v.byte_range();
  if (r.first == r.second || buf.empty()) return false;
  const auto* b = reinterpret_cast<const unsigned char*>(buf.data());
  const auto* e = b + buf.size() * sizeof(E);
  return r.first < e && b < r.second;
}

// The dense [K, N] destination of decompress(): shape, zero point 0, writable, not aliasing the
// sparse storage.
template <class... E>
status validate_dense_out(const TensorView<std::int8_t>& dense, std::int64_t K, std::int64_t N, const char* name,
                          const std::vector<E>&... storage) {
  NPUQ_RETURN_IF_ERROR(dense.validate(name));
  if (dense.rank() != 2 || dense.dim(0) != K || dense.dim(1) != N)
    return {errc::invalid_shape, sparse_arg(name, "shape " + dense.layout().shape_string() + ", expected [" +
                                                      std::to_string(K) + "," + std::to_string(N) + "]")};
  NPUQ_RETURN_IF_ERROR(validate_sparse_quant(dense.quant(), dense.layout(), dtype::s8, name));
  if (!writable_layout(dense.layout()))
    return {errc::invalid_layout, sparse_arg(name, "layout " + dense.layout().to_string() + " maps two elements to one address")};
  if ((overlaps_storage(dense, storage) || ...))
    return {errc::aliasing, sparse_arg(name, "memory overlaps the sparse matrix's storage")};
  return {};
}

// v.assign(n, 0), reporting allocation failure as a status instead of an exception.
template <class E>
status sparse_alloc(std::vector<E>& v, std::int64_t n, const char* what) {
#if NPUQ_HAS_EXCEPTIONS
  try {
    v.assign(static_cast<std::size_t>(n), E{});
  } catch (const std::bad_alloc&) {
    return {errc::invalid_argument, std::string(what) + ": out of memory allocating " + std::to_string(n) + " entries"};
  } catch (const std::length_error&) {
    return {errc::invalid_argument, std::string(what) + ": " + std::to_string(n) + " entries exceed the vector limit"};
  }
#else
  (void)what;  // without exceptions a failed allocation aborts
  v.assign(static_cast<std::size_t>(n), E{});
#endif
  return {};
}

// Checks a CSR-style (row_ptr, col_idx) pair: rows + 1 pointers from 0 to col_idx.size(),
// non-decreasing, column indices in [0, cols) and strictly ascending within a row.
inline status validate_csr_index(const std::vector<std::int32_t>& row_ptr, const std::vector<std::int32_t>& col_idx,
                                 std::int64_t rows, std::int64_t cols, const char* name, const char* col_what) {
  if (static_cast<std::int64_t>(row_ptr.size()) != rows + 1)
    return {errc::invalid_shape, sparse_arg(name, "row_ptr has " + std::to_string(row_ptr.size()) + " entries, expected " +
                                                      std::to_string(rows + 1))};
  if (row_ptr.front() != 0 || static_cast<std::int64_t>(row_ptr.back()) != static_cast<std::int64_t>(col_idx.size()))
    return {errc::invalid_argument, sparse_arg(name, "row_ptr must run from 0 to " + std::to_string(col_idx.size()))};
  for (std::int64_t r = 0; r < rows; ++r)  // all pointers first, so the loop below stays in bounds
    if (row_ptr[static_cast<std::size_t>(r + 1)] < row_ptr[static_cast<std::size_t>(r)])
      return {errc::invalid_argument, sparse_arg(name, "row_ptr decreases at row " + std::to_string(r))};
  for (std::int64_t r = 0; r < rows; ++r) {
    const std::int32_t begin = row_ptr[static_cast<std::size_t>(r)], end = row_ptr[static_cast<std::size_t>(r + 1)];
    for (std::int32_t i = begin; i < end; ++i) {
      const std::int32_t c = col_idx[static_cast<std::size_t>(i)];
      if (c < 0 || c >= cols || (i > begin && c <= col_idx[static_cast<std::size_t>(i - 1)]))
        return {errc::invalid_argument, sparse_arg(name, std::string(col_what) + " " + std::to_string(c) + " in row " +
                                                             std::to_string(r) + " is outside [0, " + std::to_string(cols) +
                                                             ") or not ascending")};
    }
  }
  return {};
}

// Writes 0 to every element of a [K, N] view.
inline void zero_fill(const TensorView<std::int8_t>& dense) {
  for (std::int64_t k = 0; k < dense.dim(0); ++k)
    for (std::int64_t n = 0; n < dense.dim(1); ++n) dense.set(0, k, n);
}

// Bytes of int8 values plus int32 row pointers and column indices.
inline std::int64_t csr_storage_bytes(const std::vector<std::int8_t>& values, const std::vector<std::int32_t>& row_ptr,
                                      const std::vector<std::int32_t>& col_idx) {
  return static_cast<std::int64_t>(values.size() + (row_ptr.size() + col_idx.size()) * sizeof(std::int32_t));
}

inline std::int64_t count_nonzero(const std::vector<std::int8_t>& values) {
  return std::count_if(values.begin(), values.end(), [](std::int8_t v) { return v != 0; });
}

// Position of column c in row r of a CSR index, or -1.
inline std::int64_t csr_find(const std::vector<std::int32_t>& row_ptr, const std::vector<std::int32_t>& col_idx,
                             std::int64_t r, std::int64_t c) {
  const auto first = col_idx.begin() + row_ptr[static_cast<std::size_t>(r)];
  const auto last = col_idx.begin() + row_ptr[static_cast<std::size_t>(r + 1)];
  const auto it = std::lower_bound(first, last, c);
  return it != last && *it == c ? it - col_idx.begin() : -1;
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// 2:4 structured sparsity along K (NVIDIA sparse MMA). Column n is cut into groups of 4
// consecutive K elements (K padded with zeros to a multiple of 4); each group keeps 2 values and
// their in-group indices idx0 < idx1, packed as idx0 | idx1 << 2 in one byte. A group with fewer
// than 2 nonzeros keeps its nonzero positions plus the lowest zero positions, with value 0 (so
// indices may point into the K padding, always with value 0).
//
// V is the value type: std::int8_t, or int4 to hold the kept values packed two per byte (the two
// values of a group then share one byte, j = 0 in the low nibble), halving the value bytes.
template <class V = std::int8_t>
struct sparse_2_4_matrix {
  static_assert(std::is_same<V, std::int8_t>::value || std::is_same<V, int4>::value,
                "sparse_2_4_matrix holds int8 or int4 values");
  using value_storage = storage_t<V>;

  std::int64_t K = 0, N = 0;           // logical dense shape [K, N]
  std::vector<value_storage> values;   // value j of group g of column n: element (n * groups() + g) * 2 + j
  std::vector<std::uint8_t> indices;   // byte n * groups() + g: idx0 | idx1 << 2
  Quant quant;                         // of the dense [K, N] matrix

  std::int64_t groups() const { return (K + 3) / 4; }  // per column
  // Entries of `values`: 2 per group (int8) or 1 byte per group (int4).
  std::int64_t value_entries() const { return std::is_same<V, int4>::value ? N * groups() : N * groups() * 2; }
  // Kept value j (0 or 1) of group g of column n.
  std::int8_t value(std::int64_t n, std::int64_t g, int j) const {
    const std::int64_t e = (n * groups() + g) * 2 + j;
    if constexpr (std::is_same<V, int4>::value) return int4_nibble(values[static_cast<std::size_t>(e >> 1)], (e & 1) != 0);
    else return values[static_cast<std::size_t>(e)];
  }
  // In-group index (0..3) of kept value j of group g of column n.
  int index(std::int64_t n, std::int64_t g, int j) const {
    return (indices[static_cast<std::size_t>(n * groups() + g)] >> (2 * j)) & 3;
  }
  // Row k of kept value j of group g of column n.
  std::int64_t k_of(std::int64_t n, std::int64_t g, int j) const { return g * 4 + index(n, g, j); }
  // Dense element (k, n).
  std::int8_t at(std::int64_t k, std::int64_t n) const {
    const std::int64_t g = k / 4;
    for (int j = 0; j < 2; ++j)
      if (index(n, g, j) == k % 4) return value(n, g, j);
    return 0;
  }
  // Sizes match K and N, index bytes are well formed, values in the K padding are 0.
  status validate(const char* name) const {
    using detail::sparse_arg;
    if (K < 0 || N < 0 || K > detail::sparse_max_dim || N > detail::sparse_max_dim)
      return {errc::invalid_shape, sparse_arg(name, "K = " + std::to_string(K) + ", N = " + std::to_string(N) + " out of range")};
    const std::int64_t G = groups();
    if (static_cast<std::int64_t>(values.size()) != value_entries())
      return {errc::invalid_shape, sparse_arg(name, std::to_string(values.size()) + " value entries for K = " + std::to_string(K) +
                                                        ", N = " + std::to_string(N))};
    if (static_cast<std::int64_t>(indices.size()) != N * G)
      return {errc::invalid_shape, sparse_arg(name, std::to_string(indices.size()) + " index bytes, expected " + std::to_string(N * G))};
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t g = 0; g < G; ++g) {
        const std::uint8_t b = indices[static_cast<std::size_t>(n * G + g)];
        if (b > 0x0F || index(n, g, 0) >= index(n, g, 1))
          return {errc::invalid_argument, sparse_arg(name, "index byte " + std::to_string(b) + " of column " + std::to_string(n) +
                                                               ", group " + std::to_string(g) + " is not idx0 | idx1 << 2 with idx0 < idx1")};
        for (int j = 0; j < 2; ++j)
          if (k_of(n, g, j) >= K && value(n, g, j) != 0)
            return {errc::invalid_argument, sparse_arg(name, "nonzero value at padded k = " + std::to_string(k_of(n, g, j)) +
                                                                 " of column " + std::to_string(n))};
      }
    return detail::validate_sparse_quant(quant, Layout::matrix(K, N), element_traits<V>::type, name);
  }
};

// Compresses a 2:4-sparse [K, N] matrix. Fails, naming the first offending group (columns in
// order, then groups), when a group has more than 2 nonzeros; for int4 values, also when a value
// lies outside [-8, 7].
template <class V>
status compress_2_4(const TensorView<const std::int8_t>& w, sparse_2_4_matrix<V>* out) {
  if (out == nullptr) return {errc::invalid_argument, "out: null"};
  NPUQ_RETURN_IF_ERROR(detail::validate_sparse_weights(w, "w"));
  const std::int64_t K = w.dim(0), N = w.dim(1), G = (K + 3) / 4;
  constexpr bool packed = std::is_same<V, int4>::value;
  sparse_2_4_matrix<V> r;  // built aside, moved to *out only on success
  r.K = K;
  r.N = N;
  r.quant = w.quant();
  NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(r.values, r.value_entries(), "out"));
  NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(r.indices, N * G, "out"));
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t g = 0; g < G; ++g) {
      const std::int64_t k0 = g * 4, k1 = std::min(k0 + 4, K);
      std::int8_t v[4] = {0, 0, 0, 0};
      bool keep[4] = {false, false, false, false};
      int kept = 0;
      for (std::int64_t k = k0; k < k1; ++k) {
        v[k - k0] = w(k, n);
        if (packed && (v[k - k0] < -8 || v[k - k0] > 7))
          return {errc::invalid_argument, "w: value " + std::to_string(v[k - k0]) + " at (k = " + std::to_string(k) +
                                              ", n = " + std::to_string(n) + ") is outside the int4 range [-8, 7]"};
        keep[k - k0] = v[k - k0] != 0;
        kept += keep[k - k0];
      }
      if (kept > 2)
        return {errc::invalid_argument, "w: not 2:4 sparse: column n = " + std::to_string(n) + ", group g = " + std::to_string(g) +
                                            " (k = " + std::to_string(k0) + ".." + std::to_string(k1 - 1) + ") has " +
                                            std::to_string(kept) + " nonzeros, at most 2 allowed"};
      // Nonzero positions plus the lowest zero positions, in ascending order.
      for (int i = 0; i < 4 && kept < 2; ++i) {
        kept += !keep[i];
        keep[i] = true;
      }
      int j = 0, idx[2] = {0, 0};
      for (int i = 0; i < 4; ++i)
        if (keep[i]) idx[j++] = i;
      r.indices[static_cast<std::size_t>(n * G + g)] = static_cast<std::uint8_t>(idx[0] | idx[1] << 2);
      const std::int64_t e = (n * G + g) * 2;
      if constexpr (packed) {
        r.values[static_cast<std::size_t>(e >> 1)] = int4_set_nibble(int4_set_nibble(0, false, v[idx[0]]), true, v[idx[1]]);
      } else {
        r.values[static_cast<std::size_t>(e)] = v[idx[0]];
        r.values[static_cast<std::size_t>(e + 1)] = v[idx[1]];
      }
    }
  *out = std::move(r);
  return {};
}

// Magnitude pruning to 2:4 in place: in each group keeps the 2 largest |w| (ties go to the lower
// k) and zeroes the rest, so compress_2_4 then succeeds.
inline status prune_2_4(const TensorView<std::int8_t>& w) {
  NPUQ_RETURN_IF_ERROR(detail::validate_sparse_weights_inout(w, "w"));
  const std::int64_t K = w.dim(0), N = w.dim(1);
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t k0 = 0; k0 < K; k0 += 4) {
      const std::int64_t k1 = std::min(k0 + 4, K);
      std::int64_t best = -1, second = -1;  // strict > keeps the lower k on ties
      for (std::int64_t k = k0; k < k1; ++k) {
        const int m = std::abs(static_cast<int>(w(k, n)));
        if (best < 0 || m > std::abs(static_cast<int>(w(best, n)))) {
          second = best;
          best = k;
        } else if (second < 0 || m > std::abs(static_cast<int>(w(second, n)))) {
          second = k;
        }
      }
      for (std::int64_t k = k0; k < k1; ++k)
        if (k != best && k != second) w.set(0, k, n);
    }
  return {};
}

// dense = the [K, N] matrix `sparse` describes (every element written).
template <class V>
status decompress(const sparse_2_4_matrix<V>& sparse, const TensorView<std::int8_t>& dense) {
  NPUQ_RETURN_IF_ERROR(sparse.validate("sparse"));
  NPUQ_RETURN_IF_ERROR(detail::validate_dense_out(dense, sparse.K, sparse.N, "dense", sparse.values, sparse.indices));
  for (std::int64_t k = 0; k < sparse.K; ++k)
    for (std::int64_t n = 0; n < sparse.N; ++n) dense.set(sparse.at(k, n), k, n);
  return {};
}

// Bytes held: kept values plus one index byte per group. (Hardware that packs the 4-bit index
// pair of two groups per byte moves half the index bytes.)
template <class V>
std::int64_t storage_bytes(const sparse_2_4_matrix<V>& s) {
  return static_cast<std::int64_t>(s.values.size() * sizeof(typename sparse_2_4_matrix<V>::value_storage) + s.indices.size());
}
template <class V>
std::int64_t nonzeros(const sparse_2_4_matrix<V>& s) {
  std::int64_t c = 0;
  for (std::int64_t n = 0; n < s.N; ++n)
    for (std::int64_t g = 0; g < s.groups(); ++g) c += (s.value(n, g, 0) != 0) + (s.value(n, g, 1) != 0);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Block CSR of dense bn x bk blocks (TFLite SparsityParameters style). bn runs along N (output
// channels), bk along K, so "1x4" keeps 4 consecutive K values of one channel (a dot-product
// width) and "16x4" is 16 channels by 4. Block row r covers channels [r*bn, r*bn + bn), block
// column c covers k in [c*bk, c*bk + bk); ragged edge blocks are padded with zeros. Stored blocks
// are in block-row order, ascending block column within a row.
struct block_csr_matrix {
  std::int64_t K = 0, N = 0;          // logical dense shape [K, N]
  std::int64_t bn = 1, bk = 1;        // block shape: bn output channels x bk K elements
  std::vector<std::int32_t> row_ptr;  // block_rows() + 1: blocks of row r are [row_ptr[r], row_ptr[r + 1])
  std::vector<std::int32_t> col_idx;  // block column of each stored block
  // Block b, element (i, j) = W[col_idx[b] * bk + j, r * bn + i] at values[b * bn * bk + i * bk + j]:
  // each channel's bk K values are contiguous.
  std::vector<std::int8_t> values;
  Quant quant;                        // of the dense [K, N] matrix

  std::int64_t block_rows() const { return (N + bn - 1) / bn; }
  std::int64_t block_cols() const { return (K + bk - 1) / bk; }
  std::int64_t stored_blocks() const { return static_cast<std::int64_t>(col_idx.size()); }
  const std::int8_t* block(std::int64_t b) const { return values.data() + b * bn * bk; }
  // Dense element (k, n).
  std::int8_t at(std::int64_t k, std::int64_t n) const {
    const std::int64_t b = detail::csr_find(row_ptr, col_idx, n / bn, k / bk);
    return b < 0 ? std::int8_t{0} : block(b)[(n % bn) * bk + k % bk];
  }
  // Sizes and indices consistent, padding elements 0.
  status validate(const char* name) const {
    using detail::sparse_arg;
    NPUQ_RETURN_IF_ERROR(detail::validate_block_shape(bn, bk, name));
    if (K < 0 || N < 0 || K > detail::sparse_max_dim || N > detail::sparse_max_dim)
      return {errc::invalid_shape, sparse_arg(name, "K = " + std::to_string(K) + ", N = " + std::to_string(N) + " out of range")};
    NPUQ_RETURN_IF_ERROR(detail::validate_csr_index(row_ptr, col_idx, block_rows(), block_cols(), name, "block column"));
    if (static_cast<std::int64_t>(values.size()) != stored_blocks() * bn * bk)
      return {errc::invalid_shape, sparse_arg(name, std::to_string(values.size()) + " values for " + std::to_string(stored_blocks()) +
                                                        " blocks of " + std::to_string(bn) + "x" + std::to_string(bk))};
    for (std::int64_t r = 0; r < block_rows(); ++r)
      for (std::int32_t b = row_ptr[static_cast<std::size_t>(r)]; b < row_ptr[static_cast<std::size_t>(r + 1)]; ++b)
        for (std::int64_t i = 0; i < bn; ++i)
          for (std::int64_t j = 0; j < bk; ++j)
            if ((r * bn + i >= N || col_idx[static_cast<std::size_t>(b)] * bk + j >= K) && block(b)[i * bk + j] != 0)
              return {errc::invalid_argument, sparse_arg(name, "nonzero padding value in block " + std::to_string(b))};
    return detail::validate_sparse_quant(quant, Layout::matrix(K, N), dtype::s8, name);
  }
};

namespace detail {
// Calls f(k, n) for the in-range elements of block (r, c).
template <class F>
void for_each_in_block(std::int64_t K, std::int64_t N, std::int64_t bn, std::int64_t bk, std::int64_t r, std::int64_t c, F&& f) {
  for (std::int64_t n = r * bn; n < std::min(r * bn + bn, N); ++n)
    for (std::int64_t k = c * bk; k < std::min(c * bk + bk, K); ++k) f(k, n);
}
}  // namespace detail

// Compresses w into bn x bk blocks, keeping every block that holds a nonzero.
inline status compress_block_csr(const TensorView<const std::int8_t>& w, std::int64_t bn, std::int64_t bk, block_csr_matrix* out) {
  if (out == nullptr) return {errc::invalid_argument, "out: null"};
  NPUQ_RETURN_IF_ERROR(detail::validate_block_shape(bn, bk, "bn, bk"));
  NPUQ_RETURN_IF_ERROR(detail::validate_sparse_weights(w, "w"));
  block_csr_matrix r;
  r.K = w.dim(0);
  r.N = w.dim(1);
  r.bn = bn;
  r.bk = bk;
  r.quant = w.quant();
  const std::int64_t R = r.block_rows(), C = r.block_cols();
  auto nonzero_block = [&](std::int64_t br, std::int64_t bc) {
    bool any = false;
    detail::for_each_in_block(r.K, r.N, bn, bk, br, bc, [&](std::int64_t k, std::int64_t n) { any = any || w(k, n) != 0; });
    return any;
  };
  std::int64_t count = 0;
  for (std::int64_t br = 0; br < R; ++br)
    for (std::int64_t bc = 0; bc < C; ++bc) count += nonzero_block(br, bc);
  if (count > detail::sparse_max_dim) return {errc::unsupported, "w: " + std::to_string(count) + " blocks exceed the int32 index range"};
  NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(r.row_ptr, R + 1, "out"));
  NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(r.col_idx, count, "out"));
  NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(r.values, count * bn * bk, "out"));
  std::int32_t b = 0;
  for (std::int64_t br = 0; br < R; ++br) {
    for (std::int64_t bc = 0; bc < C; ++bc) {
      if (!nonzero_block(br, bc)) continue;
      r.col_idx[static_cast<std::size_t>(b)] = static_cast<std::int32_t>(bc);
      std::int8_t* dst = r.values.data() + b * bn * bk;
      detail::for_each_in_block(r.K, r.N, bn, bk, br, bc,
                                [&](std::int64_t k, std::int64_t n) { dst[(n - br * bn) * bk + (k - bc * bk)] = w(k, n); });
      ++b;
    }
    r.row_ptr[static_cast<std::size_t>(br + 1)] = b;
  }
  *out = std::move(r);
  return {};
}

// Zeroes, in place, the round(target_zero_fraction * blocks) bn x bk blocks of smallest L1 norm
// (the nearest whole number of blocks, halves rounded up)
// Ties: lower block row, then lower block column. Blocks already zero count towards the target.
inline status prune_blocks(const TensorView<std::int8_t>& w, std::int64_t bn, std::int64_t bk, double target_zero_fraction) {
  NPUQ_RETURN_IF_ERROR(detail::validate_block_shape(bn, bk, "bn, bk"));
  NPUQ_RETURN_IF_ERROR(detail::validate_sparse_weights_inout(w, "w"));
  if (!(target_zero_fraction >= 0.0 && target_zero_fraction <= 1.0))
    return {errc::invalid_argument, "target_zero_fraction = " + std::to_string(target_zero_fraction) + " must be in [0, 1]"};
  const std::int64_t K = w.dim(0), N = w.dim(1), R = (N + bn - 1) / bn, C = (K + bk - 1) / bk;
  std::vector<std::pair<std::int64_t, std::int64_t>> norms;  // (L1 norm, block r * C + c)
  NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(norms, R * C, "w"));
  for (std::int64_t b = 0; b < R * C; ++b) {
    std::int64_t l1 = 0;
    detail::for_each_in_block(K, N, bn, bk, b / C, b % C, [&](std::int64_t k, std::int64_t n) { l1 += std::abs(static_cast<int>(w(k, n))); });
    norms[static_cast<std::size_t>(b)] = {l1, b};
  }
  const auto zero_count = static_cast<std::size_t>(std::llround(target_zero_fraction * static_cast<double>(R * C)));
  std::sort(norms.begin(), norms.end());
  for (std::size_t i = 0; i < zero_count; ++i) {
    const std::int64_t b = norms[i].second;
    detail::for_each_in_block(K, N, bn, bk, b / C, b % C, [&](std::int64_t k, std::int64_t n) { w.set(0, k, n); });
  }
  return {};
}

// dense = the [K, N] matrix `sparse` describes (every element written).
inline status decompress(const block_csr_matrix& sparse, const TensorView<std::int8_t>& dense) {
  NPUQ_RETURN_IF_ERROR(sparse.validate("sparse"));
  NPUQ_RETURN_IF_ERROR(detail::validate_dense_out(dense, sparse.K, sparse.N, "dense", sparse.row_ptr, sparse.col_idx, sparse.values));
  detail::zero_fill(dense);
  for (std::int64_t r = 0; r < sparse.block_rows(); ++r)
    for (std::int32_t b = sparse.row_ptr[static_cast<std::size_t>(r)]; b < sparse.row_ptr[static_cast<std::size_t>(r + 1)]; ++b) {
      const std::int64_t c = sparse.col_idx[static_cast<std::size_t>(b)];
      detail::for_each_in_block(sparse.K, sparse.N, sparse.bn, sparse.bk, r, c, [&](std::int64_t k, std::int64_t n) {
        dense.set(sparse.block(b)[(n - r * sparse.bn) * sparse.bk + (k - c * sparse.bk)], k, n);
      });
    }
  return {};
}

// Bytes held: block values plus int32 row pointers and block column indices.
inline std::int64_t storage_bytes(const block_csr_matrix& s) {
  return detail::csr_storage_bytes(s.values, s.row_ptr, s.col_idx);
}
inline std::int64_t nonzeros(const block_csr_matrix& s) {
  return detail::count_nonzero(s.values);
}
// Fraction of the block grid that is not stored.
inline double block_zero_fraction(const block_csr_matrix& s) {
  const std::int64_t total = s.block_rows() * s.block_cols();
  return total == 0 ? 0.0 : 1.0 - static_cast<double>(s.stored_blocks()) / static_cast<double>(total);
}

// ---------------------------------------------------------------------------------------------
// Unstructured CSR for very sparse layers: one row per output channel n holding the nonzero
// values and their k, ascending.
struct csr_matrix {
  std::int64_t K = 0, N = 0;          // logical dense shape [K, N]
  std::vector<std::int32_t> row_ptr;  // N + 1: channel n holds entries [row_ptr[n], row_ptr[n + 1])
  std::vector<std::int32_t> col_idx;  // k of each entry
  std::vector<std::int8_t> values;    // value of each entry
  Quant quant;                        // of the dense [K, N] matrix

  std::int8_t at(std::int64_t k, std::int64_t n) const {
    const std::int64_t i = detail::csr_find(row_ptr, col_idx, n, k);
    return i < 0 ? std::int8_t{0} : values[static_cast<std::size_t>(i)];
  }
  status validate(const char* name) const {
    if (K < 0 || N < 0 || K > detail::sparse_max_dim || N > detail::sparse_max_dim)
      return {errc::invalid_shape, detail::sparse_arg(name, "K = " + std::to_string(K) + ", N = " + std::to_string(N) + " out of range")};
    NPUQ_RETURN_IF_ERROR(detail::validate_csr_index(row_ptr, col_idx, N, K, name, "k"));
    if (values.size() != col_idx.size())
      return {errc::invalid_shape, detail::sparse_arg(name, std::to_string(values.size()) + " values for " +
                                                                std::to_string(col_idx.size()) + " indices")};
    return detail::validate_sparse_quant(quant, Layout::matrix(K, N), dtype::s8, name);
  }
};

// Compresses w keeping its nonzero elements.
inline status compress_csr(const TensorView<const std::int8_t>& w, csr_matrix* out) {
  if (out == nullptr) return {errc::invalid_argument, "out: null"};
  NPUQ_RETURN_IF_ERROR(detail::validate_sparse_weights(w, "w"));
  const std::int64_t K = w.dim(0), N = w.dim(1);
  std::int64_t count = 0;
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t k = 0; k < K; ++k) count += w(k, n) != 0;
  if (count > detail::sparse_max_dim) return {errc::unsupported, "w: " + std::to_string(count) + " nonzeros exceed the int32 index range"};
  csr_matrix r;
  r.K = K;
  r.N = N;
  r.quant = w.quant();
  NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(r.row_ptr, N + 1, "out"));
  NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(r.col_idx, count, "out"));
  NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(r.values, count, "out"));
  std::size_t i = 0;
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t k = 0; k < K; ++k) {
      const std::int8_t v = w(k, n);
      if (v == 0) continue;
      r.col_idx[i] = static_cast<std::int32_t>(k);
      r.values[i++] = v;
    }
    r.row_ptr[static_cast<std::size_t>(n + 1)] = static_cast<std::int32_t>(i);
  }
  *out = std::move(r);
  return {};
}

// dense = the [K, N] matrix `sparse` describes (every element written).
inline status decompress(const csr_matrix& sparse, const TensorView<std::int8_t>& dense) {
  NPUQ_RETURN_IF_ERROR(sparse.validate("sparse"));
  NPUQ_RETURN_IF_ERROR(detail::validate_dense_out(dense, sparse.K, sparse.N, "dense", sparse.row_ptr, sparse.col_idx, sparse.values));
  detail::zero_fill(dense);
  for (std::int64_t n = 0; n < sparse.N; ++n)
    for (std::int32_t i = sparse.row_ptr[static_cast<std::size_t>(n)]; i < sparse.row_ptr[static_cast<std::size_t>(n + 1)]; ++i)
      dense.set(sparse.values[static_cast<std::size_t>(i)], sparse.col_idx[static_cast<std::size_t>(i)], n);
  return {};
}

// Bytes held: values plus int32 row pointers and k indices.
inline std::int64_t storage_bytes(const csr_matrix& s) {
  return detail::csr_storage_bytes(s.values, s.row_ptr, s.col_idx);
}
inline std::int64_t nonzeros(const csr_matrix& s) {
  return detail::count_nonzero(s.values);
}

template <class S>
struct is_sparse_format : std::false_type {};
template <class V>
struct is_sparse_format<sparse_2_4_matrix<V>> : std::true_type {};
template <>
struct is_sparse_format<block_csr_matrix> : std::true_type {};
template <>
struct is_sparse_format<csr_matrix> : std::true_type {};

// Fraction of the K*N logical elements that are nonzero / zero (both 0 for an empty matrix).
template <class S, class = std::enable_if_t<is_sparse_format<S>::value>>
double density(const S& s) {
  return s.K * s.N == 0 ? 0.0 : static_cast<double>(nonzeros(s)) / static_cast<double>(s.K * s.N);
}
template <class S, class = std::enable_if_t<is_sparse_format<S>::value>>
double zero_fraction(const S& s) {
  return s.K * s.N == 0 ? 0.0 : 1.0 - density(s);
}

// ---------------------------------------------------------------------------------------------
// Reading the stored entries, for kernels. for_each_entry(s, n, f) calls f(k, value) for every
// stored entry of column (output channel) n that lies inside [0, K), in ascending k: the kept
// values of each 2:4 group (zeros kept as fillers included), every element of the stored blocks
// of n's block row, or the CSR entries. Every other element of the column is 0, so a dot product
// over these entries equals the dense one (zero products add nothing). `s` must be valid.
template <class V, class F>
void for_each_entry(const sparse_2_4_matrix<V>& s, std::int64_t n, F&& f) {
  for (std::int64_t g = 0; g < s.groups(); ++g)
    for (int j = 0; j < 2; ++j) {
      const std::int64_t k = s.k_of(n, g, j);
      if (k < s.K) f(k, s.value(n, g, j));
    }
}
template <class F>
void for_each_entry(const block_csr_matrix& s, std::int64_t n, F&& f) {
  const std::int64_t r = n / s.bn, i = n % s.bn;
  for (std::int32_t b = s.row_ptr[static_cast<std::size_t>(r)]; b < s.row_ptr[static_cast<std::size_t>(r + 1)]; ++b) {
    const std::int64_t k0 = static_cast<std::int64_t>(s.col_idx[static_cast<std::size_t>(b)]) * s.bk;
    const std::int8_t* v = s.block(b) + i * s.bk;
    for (std::int64_t j = 0; j < s.bk && k0 + j < s.K; ++j) f(k0 + j, v[j]);
  }
}
template <class F>
void for_each_entry(const csr_matrix& s, std::int64_t n, F&& f) {
  for (std::int32_t i = s.row_ptr[static_cast<std::size_t>(n)]; i < s.row_ptr[static_cast<std::size_t>(n + 1)]; ++i)
    f(static_cast<std::int64_t>(s.col_idx[static_cast<std::size_t>(i)]), s.values[static_cast<std::size_t>(i)]);
}

// True when a view can touch a byte of the sparse matrix's storage (ops reject such outputs).
template <class T, class V>
bool storage_overlaps(const TensorView<T>& v, const sparse_2_4_matrix<V>& s) {
  return detail::overlaps_storage(v, s.values) || detail::overlaps_storage(v, s.indices);
}
template <class T>
bool storage_overlaps(const TensorView<T>& v, const block_csr_matrix& s) {
  return detail::overlaps_storage(v, s.row_ptr) || detail::overlaps_storage(v, s.col_idx) || detail::overlaps_storage(v, s.values);
}
template <class T>
bool storage_overlaps(const TensorView<T>& v, const csr_matrix& s) {
  return detail::overlaps_storage(v, s.row_ptr) || detail::overlaps_storage(v, s.col_idx) || detail::overlaps_storage(v, s.values);
}

}  // namespace npuq
