// Portable sparse GEMM kernels: plain C++ on the packed sparse layouts (gemm_sparse_pack.hpp).
//
// They are the simd backend's sparse kernels on CPUs without a dedicated version (and the
// readable statement of what the vector kernels compute): the same table lookups and pairwise
// 16-bit products, summed in uint32 so that wrap-around is defined and equals the reference's sum
// modulo 2^32.
#pragma once

#include <cstdint>
#include <cstring>

#include "npuq/backends/simd/gemm_sparse_pack.hpp"

namespace npuq {
namespace simd_detail {

// Both halves of a word of two int16, multiplied pairwise and summed (vpmaddwd on one lane).
inline std::uint32_t madd_pair(std::uint32_t x, std::uint32_t y) {
  const std::int32_t lo = static_cast<std::int16_t>(x & 0xFFFFu) * static_cast<std::int16_t>(y & 0xFFFFu);
  const std::int32_t hi = static_cast<std::int16_t>(x >> 16) * static_cast<std::int16_t>(y >> 16);
  return static_cast<std::uint32_t>(lo) + static_cast<std::uint32_t>(hi);
}

// 2:4: MR rows x 16 channels of one panel, `groups` groups, added to c. table: MR rows of
// 8 words per group, `t_stride` apart; c: MR rows of 16 sums, `ldc` apart.
template <int MR>
void sparse_2_4_portable(std::int64_t groups, const std::int32_t* table, std::int64_t t_stride, const std::uint8_t* panel,
                         std::int32_t* c, std::int64_t ldc) {
  std::uint32_t acc[MR][sp24_panel] = {};
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::uint8_t* rec = panel + g * sp24_record;
    std::uint64_t codes;
    std::memcpy(&codes, rec, 8);
    for (int j = 0; j < sp24_panel; ++j) {
      const std::uint8_t* v = rec + sp24_value_pos(j);
      const std::uint32_t w = pack_pair16(static_cast<std::int8_t>(v[0]), static_cast<std::int8_t>(v[1]));
      const auto code = static_cast<std::int64_t>((codes >> (4 * j)) & 7u);
      for (int m = 0; m < MR; ++m) acc[m][j] += madd_pair(static_cast<std::uint32_t>(table[m * t_stride + g * 8 + code]), w);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < sp24_panel; ++j)
      c[m * ldc + j] = static_cast<std::int32_t>(static_cast<std::uint32_t>(c[m * ldc + j]) + acc[m][j]);
}

// Pairs: R chunks of 8 rows x one channel, added to acc (R * 8 sums). at: R transposed chunks,
// `chunk_stride` words apart; the channel's `count` entries (pair index, weight word).
template <int R>
void sparse_pairs_portable(const std::int32_t* at, std::int64_t chunk_stride, const std::int32_t* pair, const std::int32_t* w,
                           std::int64_t count, std::int32_t* acc_io) {
  std::uint32_t acc[R * pairs_chunk];
  for (int i = 0; i < R * pairs_chunk; ++i) acc[i] = static_cast<std::uint32_t>(acc_io[i]);
  for (std::int64_t e = 0; e < count; ++e) {
    const std::int32_t* base = at + static_cast<std::int64_t>(pair[e]) * pairs_chunk;
    const auto wv = static_cast<std::uint32_t>(w[e]);
    for (int r = 0; r < R; ++r)
      for (int i = 0; i < pairs_chunk; ++i) acc[r * pairs_chunk + i] += madd_pair(static_cast<std::uint32_t>(base[r * chunk_stride + i]), wv);
  }
  for (int i = 0; i < R * pairs_chunk; ++i) acc_io[i] = static_cast<std::int32_t>(acc[i]);
}

}  // namespace simd_detail
}  // namespace npuq
