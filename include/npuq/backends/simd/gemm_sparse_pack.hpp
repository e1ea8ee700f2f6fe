// Packed sparse weights for the simd backend's sparse GEMM kernels.
//
// The formats of formats/sparse.hpp are exchange formats (one index byte per 2:4 group, CSR of
// int8 blocks); the vector kernels want the same information arranged for the instructions they
// use. These two layouts are built once from any sparse matrix (`pack_gemm_weights(simd, s, &p)`)
// and hold the same logical [K, N] int8 weights, so results do not depend on which one runs:
//
//   packed_sparse_2_4_weights  2:4 along K in panels of 16 output channels. For each panel and
//     each group of 4 K rows a 40-byte record: a 64-bit word of sixteen 4-bit codes (channel j's
//     kept pair in bits 4j..4j+2: 0 = (0,1), 1 = (0,2), 2 = (0,3), 3 = (1,2), 4 = (1,3),
//     5 = (2,3)), then the 32 kept values, channel j's two at bytes sp24_value_pos(j) and + 1 (the
//     order in which one 64-bit broadcast and two vpsrlvd put the codes in vector lanes: channels
//     0,8,1,9,2,10,3,11 then 4,12,5,13,6,14,7,15). A GEMV streams 40 bytes per 64 dense weight
//     bytes. The kernels look the pair of activations up by code in a per-row table of the 8
//     possible pairs (sparse_2_4_table), one vpermd per 8 channels, and multiply with vpmaddwd
//     (16-bit operands, exact products, pairwise 32-bit sums).
//   packed_sparse_pairs_weights  block CSR (any block shape) and unstructured CSR: per output
//     channel, the list of K pairs (k = 2p, 2p + 1) holding a stored entry, ascending, each with
//     its two weights as one int32 word of two int16 (0 where the pair has only one stored
//     entry). The kernels run over the activations transposed in chunks of 8 rows
//     (sparse_pairs_transpose): per entry one broadcast, one vpmaddwd per 8 rows.
//
// Both are valid by construction: pack() validates the source matrix completely; validate()
// afterwards is O(1) (the public K, N and quant must still describe what was packed).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "npuq/formats/sparse.hpp"

namespace npuq {

namespace simd_detail {
constexpr std::int64_t sp24_panel = 16;   // output channels per 2:4 panel
constexpr std::int64_t sp24_record = 40;  // bytes per (panel, group): 8 code bytes + 32 values
constexpr std::int64_t pairs_chunk = 8;   // activation rows per transposed chunk

// The kept pair (i0, i1) of each 2:4 code.
constexpr int sp24_i0[6] = {0, 0, 0, 1, 1, 2};
constexpr int sp24_i1[6] = {1, 2, 3, 2, 3, 3};
inline std::uint32_t sp24_code(int i0, int i1) {
  for (int c = 0; c < 6; ++c)
    if (sp24_i0[c] == i0 && sp24_i1[c] == i1) return static_cast<std::uint32_t>(c);
  return 0;  // unreachable for validated matrices
}
// Byte offset in a 2:4 record of channel j's first kept value (see the top).
constexpr std::int64_t sp24_value_pos(std::int64_t j) { return 8 + 16 * ((j % 8) / 4) + 2 * (2 * (j % 4) + j / 8); }
inline std::uint32_t pack_pair16(std::int32_t lo, std::int32_t hi) {
  return (static_cast<std::uint32_t>(lo) & 0xFFFFu) | (static_cast<std::uint32_t>(hi) << 16);
}
}  // namespace simd_detail

class packed_sparse_2_4_weights {
 public:
  std::int64_t K = 0, N = 0;  // logical [K, N]; read-only (checked against what was packed)
  Quant quant;                // of the dense [K, N] matrix

  std::int64_t groups() const { return (k_ + 3) / 4; }
  std::int64_t panels() const { return (n_ + simd_detail::sp24_panel - 1) / simd_detail::sp24_panel; }
  const std::uint8_t* panel(std::int64_t p) const { return data_.data() + p * groups() * simd_detail::sp24_record; }
  std::int64_t packed_bytes() const { return static_cast<std::int64_t>(data_.size()); }
  const std::vector<std::uint8_t>& storage() const { return data_; }

  template <class V>
  status pack(const sparse_2_4_matrix<V>& s) {
    NPUQ_RETURN_IF_ERROR(s.validate("b"));
    const std::int64_t G = s.groups(), P = (s.N + simd_detail::sp24_panel - 1) / simd_detail::sp24_panel;
    std::vector<std::uint8_t> data;
    NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(data, P * G * simd_detail::sp24_record, "b"));
    for (std::int64_t n = 0; n < s.N; ++n) {
      const std::int64_t p = n / simd_detail::sp24_panel, j = n % simd_detail::sp24_panel;
      for (std::int64_t g = 0; g < G; ++g) {
        std::uint8_t* rec = data.data() + (p * G + g) * simd_detail::sp24_record;
        std::uint64_t codes;
        std::memcpy(&codes, rec, 8);
        codes |= std::uint64_t{simd_detail::sp24_code(s.index(n, g, 0), s.index(n, g, 1))} << (4 * j);
        std::memcpy(rec, &codes, 8);
        rec[simd_detail::sp24_value_pos(j)] = static_cast<std::uint8_t>(s.value(n, g, 0));
        rec[simd_detail::sp24_value_pos(j) + 1] = static_cast<std::uint8_t>(s.value(n, g, 1));
      }
    }
    K = k_ = s.K;
    N = n_ = s.N;
    quant = s.quant;
    data_ = std::move(data);
    return {};
  }

  status validate(const char* name) const {
    if (K != k_ || N != n_)
      return {errc::invalid_argument, std::string(name) + ": K, N changed after packing (packed [" + std::to_string(k_) + "," +
                                          std::to_string(n_) + "])"};
    return detail::validate_sparse_quant(quant, Layout::matrix(K, N), dtype::s8, name);
  }

 private:
  std::int64_t k_ = 0, n_ = 0;
  std::vector<std::uint8_t> data_;
};

class packed_sparse_pairs_weights {
 public:
  std::int64_t K = 0, N = 0;  // logical [K, N]; read-only (checked against what was packed)
  Quant quant;                // of the dense [K, N] matrix

  // "bsr" (packed from block CSR) or "csr": names the kernels.
  const char* source() const { return source_; }
  std::int64_t k_pairs() const { return (k_ + 1) / 2; }
  std::int64_t entries() const { return static_cast<std::int64_t>(pair_.size()); }
  // Channel n's entries: [begin(n), begin(n + 1)) of pairs() and weights().
  std::int64_t begin(std::int64_t n) const { return col_ptr_[static_cast<std::size_t>(n)]; }
  const std::int32_t* pairs() const { return pair_.data(); }
  const std::int32_t* weights() const { return w_.data(); }
  // True when channel n + 1 stores exactly channel n's K pairs (the channels of one block row of
  // a block CSR matrix): the kernels then read each activation vector once for both.
  bool twin(std::int64_t n) const { return twin_[static_cast<std::size_t>(n)] != 0; }
  std::int64_t packed_bytes() const {
    return static_cast<std::int64_t>((col_ptr_.size() + pair_.size() + w_.size()) * sizeof(std::int32_t));
  }

  status pack(const block_csr_matrix& s) { return pack_any(s, "bsr"); }
  status pack(const csr_matrix& s) { return pack_any(s, "csr"); }

  status validate(const char* name) const {
    if (K != k_ || N != n_)
      return {errc::invalid_argument, std::string(name) + ": K, N changed after packing (packed [" + std::to_string(k_) + "," +
                                          std::to_string(n_) + "])"};
    return detail::validate_sparse_quant(quant, Layout::matrix(K, N), dtype::s8, name);
  }

  template <class T>
  friend bool storage_overlaps(const TensorView<T>& v, const packed_sparse_pairs_weights& s) {
    return detail::overlaps_storage(v, s.col_ptr_) || detail::overlaps_storage(v, s.pair_) || detail::overlaps_storage(v, s.w_);
  }

 private:
  template <class S>
  status pack_any(const S& s, const char* source) {
    NPUQ_RETURN_IF_ERROR(s.validate("b"));
    std::vector<std::int32_t> col_ptr, pair, w;
    NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(col_ptr, s.N + 1, "b"));
    std::int64_t count = 0;  // pairs per channel, counted first so the vectors are sized once
    for (std::int64_t n = 0; n < s.N; ++n) {
      std::int64_t last = -1;
      for_each_entry(s, n, [&](std::int64_t k, std::int8_t) {
        count += k / 2 != last;
        last = k / 2;
      });
    }
    NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(pair, count, "b"));
    NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(w, count, "b"));
    std::int64_t e = -1;
    for (std::int64_t n = 0; n < s.N; ++n) {
      std::int64_t last = -1;
      for_each_entry(s, n, [&](std::int64_t k, std::int8_t v) {
        if (k / 2 != last) {
          ++e;
          last = k / 2;
          pair[static_cast<std::size_t>(e)] = static_cast<std::int32_t>(last);
        }
        auto& word = w[static_cast<std::size_t>(e)];
        const std::uint32_t u = static_cast<std::uint32_t>(word);
        word = static_cast<std::int32_t>(k % 2 == 0 ? simd_detail::pack_pair16(v, static_cast<std::int32_t>(u) >> 16)
                                                    : simd_detail::pack_pair16(static_cast<std::int16_t>(u & 0xFFFFu), v));
      });
      col_ptr[static_cast<std::size_t>(n + 1)] = static_cast<std::int32_t>(e + 1);
    }
    std::vector<std::uint8_t> twin;
    NPUQ_RETURN_IF_ERROR(detail::sparse_alloc(twin, s.N, "b"));
    for (std::int64_t n = 0; n + 1 < s.N; ++n) {
      const auto a0 = col_ptr[static_cast<std::size_t>(n)], a1 = col_ptr[static_cast<std::size_t>(n + 1)],
                 b1 = col_ptr[static_cast<std::size_t>(n + 2)];
      twin[static_cast<std::size_t>(n)] = a1 - a0 == b1 - a1 && std::equal(pair.begin() + a0, pair.begin() + a1, pair.begin() + a1);
    }
    K = k_ = s.K;
    N = n_ = s.N;
    quant = s.quant;
    source_ = source;
    twin_ = std::move(twin);
    col_ptr_ = std::move(col_ptr);
    pair_ = std::move(pair);
    w_ = std::move(w);
    return {};
  }

  std::int64_t k_ = 0, n_ = 0;
  const char* source_ = "csr";
  std::vector<std::int32_t> col_ptr_{0}, pair_, w_;
  std::vector<std::uint8_t> twin_;
};

template <class T>
bool storage_overlaps(const TensorView<T>& v, const packed_sparse_2_4_weights& s) {
  return detail::overlaps_storage(v, s.storage());
}

namespace simd_detail {

// Row v (K values a - a_zp as int16) as the 2:4 kernels' lookup table: for each group g of 4,
// 8 int32 words, word c = (v[4g + i0(c)], v[4g + i1(c)]) as two int16 (c = 6, 7: 0). Values past
// K count as 0.
inline void sparse_2_4_table(const std::int16_t* v, std::int64_t K, std::int32_t* table) {
  const std::int64_t G = (K + 3) / 4;
  for (std::int64_t g = 0; g < G; ++g) {
    std::int32_t x[4] = {0, 0, 0, 0};
    for (std::int64_t i = 0; i < 4 && 4 * g + i < K; ++i) x[i] = v[4 * g + i];
    std::int32_t* t = table + g * 8;
    for (int c = 0; c < 6; ++c) t[c] = static_cast<std::int32_t>(pack_pair16(x[sp24_i0[c]], x[sp24_i1[c]]));
    t[6] = t[7] = 0;
  }
}

// Row m (K values a - a_zp) written into the transposed chunk layout of the pairs kernels:
// word (p, r) of a chunk = (v[2p], v[2p + 1]) of the chunk's row r, at chunk + p * 8 + r.
inline void sparse_pairs_transpose(const std::int16_t* v, std::int64_t K, std::int32_t* chunk, int r) {
  const std::int64_t KP = (K + 1) / 2;
  for (std::int64_t p = 0; p < KP; ++p)
    chunk[p * pairs_chunk + r] =
        static_cast<std::int32_t>(pack_pair16(v[2 * p], 2 * p + 1 < K ? static_cast<std::int32_t>(v[2 * p + 1]) : 0));
}

}  // namespace simd_detail
}  // namespace npuq
