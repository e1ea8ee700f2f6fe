// Weight formats: packed int4, 2:4 structured sparsity, block CSR and CSR.
#include "support/catch.hpp"

#include <npuq/formats/sparse.hpp>
#include <npuq/npuq.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

using namespace npuq;

namespace {

std::mt19937& rng() {
  static std::mt19937 r(20240611u);
  return r;
}
int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng()); }

// A [K, N] int8 matrix in its own buffer, laid out row-major, column-major or row-major with a
// padded row pitch (so the view is not contiguous).
enum class mem_order { row_major, col_major, padded };
const mem_order all_orders[] = {mem_order::row_major, mem_order::col_major, mem_order::padded};

struct matrix {
  std::vector<std::int8_t> buf;
  TensorView<std::int8_t> view;

  matrix(std::int64_t K, std::int64_t N, mem_order order, Quant q = {}) {
    Layout l = order == mem_order::row_major   ? Layout::matrix(K, N)
               : order == mem_order::col_major ? Layout::col_major(K, N)
                                               : Layout::strided({K, N}, {N + 3, 1});
    buf.assign(static_cast<std::size_t>(l.span() + 3), std::int8_t{0x55});  // sentinel beyond and between rows
    view = TensorView<std::int8_t>(buf.data(), 0, l, std::move(q), static_cast<std::int64_t>(buf.size()));
  }
  std::int64_t K() const { return view.dim(0); }
  std::int64_t N() const { return view.dim(1); }
  std::int8_t operator()(std::int64_t k, std::int64_t n) const { return view(k, n); }
  void set(std::int64_t k, std::int64_t n, int v) const { view.set(static_cast<std::int8_t>(v), k, n); }
  void fill(int v) const {
    for (std::int64_t k = 0; k < K(); ++k)
      for (std::int64_t n = 0; n < N(); ++n) set(k, n, v);
  }
  TensorView<const std::int8_t> cview() const { return view; }
};

bool same_values(const matrix& a, const matrix& b) {
  if (a.K() != b.K() || a.N() != b.N()) return false;
  for (std::int64_t k = 0; k < a.K(); ++k)
    for (std::int64_t n = 0; n < a.N(); ++n)
      if (a(k, n) != b(k, n)) return false;
  return true;
}

int nonzero_value(int lo = -128, int hi = 127) {
  for (;;) {
    const int v = uniform(lo, hi);
    if (v != 0) return v;
  }
}

// Random 2:4-valid matrix: each group of 4 along K gets 0..2 nonzeros at random positions.
void fill_2_4(const matrix& m, int lo = -128, int hi = 127) {
  m.fill(0);
  for (std::int64_t n = 0; n < m.N(); ++n)
    for (std::int64_t k0 = 0; k0 < m.K(); k0 += 4) {
      const int len = static_cast<int>(std::min<std::int64_t>(4, m.K() - k0));
      const int count = std::min(uniform(0, 2), len);
      std::vector<int> pos = {0, 1, 2, 3};
      pos.resize(static_cast<std::size_t>(len));
      std::shuffle(pos.begin(), pos.end(), rng());
      for (int i = 0; i < count; ++i) m.set(k0 + pos[static_cast<std::size_t>(i)], n, nonzero_value(lo, hi));
    }
}

}  // namespace

// ----------------------------------------------------------------------------------------------
// int4

TEST_CASE("int4 pack/unpack round trips over random shapes and layouts", "[int4]") {
  for (int trial = 0; trial < 200; ++trial) {
    const int rank = uniform(1, 4);
    std::vector<std::int64_t> ext;
    // Extents >= 1: pack_int4 rejects empty row-major layouts, see Layout::is_non_overlapping().
    for (int d = 0; d < rank; ++d) ext.push_back(uniform(1, 5));
    Layout l;
    switch (rank) {
      case 1: l = Layout::row_major({ext[0]}); break;
      case 2: l = uniform(0, 1) ? Layout::matrix(ext[0], ext[1]) : Layout::col_major(ext[0], ext[1]); break;
      case 3: l = Layout::row_major({ext[0], ext[1], ext[2]}); break;
      default: l = uniform(0, 1) ? Layout::nhwc(ext[0], ext[1], ext[2], ext[3]) : Layout::nchw(ext[0], ext[3], ext[1], ext[2]); break;
    }
    const bool symmetric = uniform(0, 1) == 1;
    Tensor<std::int8_t> src(l);
    Tensor<int4> packed(l);
    Tensor<std::int8_t> back(l);
    for (std::int64_t i = 0; i < l.span(); ++i) src.data()[i] = static_cast<std::int8_t>(uniform(symmetric ? -7 : -8, 7));
    for (std::int64_t i = 0; i < l.span(); ++i) back.data()[i] = 99;
    INFO("layout " << l.to_string() << " symmetric " << symmetric);
    REQUIRE(pack_int4(src, packed.view(), symmetric).ok());
    REQUIRE(unpack_int4(packed, back.view()).ok());
    for_each_index(l, [&](const std::int64_t* i) {
      const std::int64_t off = l.offset_of(i);
      REQUIRE(back.data()[off] == src.data()[off]);
      REQUIRE(packed.cview().load(off) == src.data()[off]);
    });
    // Packed continuously over the flattened buffer: element 2i low nibble, 2i+1 high nibble.
    for (std::int64_t e = 0; e < l.span(); ++e) {
      const std::uint8_t byte = packed.data()[e / 2];
      const int nib = e % 2 ? byte >> 4 : byte & 0x0F;
      REQUIRE(nib == (src.data()[e] & 0x0F));
    }
  }
}

TEST_CASE("int4 nibble order: element 2i is the low nibble", "[int4]") {
  std::uint8_t bytes[2] = {0x21, 0xF8};
  TensorView<const int4> v(bytes, Layout::row_major({4}));
  std::int8_t out[4] = {0, 0, 0, 0};
  REQUIRE(unpack_int4(v, TensorView<std::int8_t>(out, Layout::row_major({4}))).ok());
  CHECK(out[0] == 1);
  CHECK(out[1] == 2);
  CHECK(out[2] == -8);
  CHECK(out[3] == -1);

  std::uint8_t repacked[2] = {0, 0};
  const std::int8_t values[4] = {1, 2, -8, -1};
  REQUIRE(pack_int4(TensorView<const std::int8_t>(values, Layout::row_major({4})),
                    TensorView<int4>(repacked, Layout::row_major({4})))
              .ok());
  CHECK(repacked[0] == 0x21);
  CHECK(repacked[1] == 0xF8);

  // Odd element count: the last byte's high nibble is left alone.
  std::uint8_t odd[2] = {0x00, 0xA0};
  const std::int8_t three[3] = {7, -7, 3};
  REQUIRE(pack_int4(TensorView<const std::int8_t>(three, Layout::row_major({3})), TensorView<int4>(odd, Layout::row_major({3}))).ok());
  CHECK(odd[0] == 0x97);
  CHECK(odd[1] == 0xA3);
}

TEST_CASE("int4 view starting mid-byte touches only its own nibbles", "[int4]") {
  // Row of 5 int4 values starting at element 1 (as CMSIS-NN rows do): nibbles 1..5 of the buffer.
  std::uint8_t buf[4] = {0xA5, 0xA5, 0xA5, 0xA5};
  TensorView<int4> row(buf, 1, Layout::row_major({5}), {}, 8);
  const std::int8_t vals[5] = {1, -2, 3, -4, 7};
  REQUIRE(pack_int4(TensorView<const std::int8_t>(vals, Layout::row_major({5})), row).ok());
  CHECK(buf[0] == 0x15);  // low nibble (element 0) untouched, element 1 = 1
  CHECK(buf[1] == 0x3E);  // element 2 = -2 (0xE), element 3 = 3
  CHECK(buf[2] == 0x7C);  // element 4 = -4 (0xC), element 5 = 7
  CHECK(buf[3] == 0xA5);  // element 6 and beyond untouched

  std::int8_t back[5] = {0, 0, 0, 0, 0};
  REQUIRE(unpack_int4(row, TensorView<std::int8_t>(back, Layout::row_major({5}))).ok());
  for (int i = 0; i < 5; ++i) CHECK(back[i] == vals[i]);

  // Reading and writing single elements through the view.
  CHECK(row(0) == 1);
  CHECK(row(4) == 7);
  row.set(-8, 4);
  CHECK(buf[2] == 0x8C);
  CHECK(buf[3] == 0xA5);
}

TEST_CASE("int4 out-of-range values are rejected, naming the value", "[int4]") {
  std::uint8_t dst[2] = {0x12, 0x34};
  TensorView<int4> d(dst, Layout::row_major({4}));
  auto pack = [&](std::int8_t bad, bool symmetric) {
    const std::int8_t src[4] = {1, 2, bad, 3};
    return pack_int4(TensorView<const std::int8_t>(src, Layout::row_major({4})), d, symmetric);
  };
  status s = pack(8, false);
  CHECK(s.code() == errc::invalid_argument);
  CHECK(s.message().find("value 8 ") != std::string::npos);
  CHECK(s.message().find("[-8, 7]") != std::string::npos);
  s = pack(-9, false);
  CHECK(s.code() == errc::invalid_argument);
  CHECK(s.message().find("value -9 ") != std::string::npos);
  s = pack(-8, true);
  CHECK(s.code() == errc::invalid_argument);
  CHECK(s.message().find("value -8 ") != std::string::npos);
  CHECK(s.message().find("[-7, 7]") != std::string::npos);
  CHECK(pack(-8, false).ok());
  // Failed calls wrote nothing; the successful one did.
  CHECK(dst[0] == 0x21);
  CHECK(dst[1] == 0x38);
}

TEST_CASE("int4 views check their capacity", "[int4]") {
  std::uint8_t bytes[2] = {0, 0};
  const std::int8_t src[5] = {1, 2, 3, 4, 5};
  // 5 elements need 3 bytes; the view says only 4 elements (2 bytes) exist.
  TensorView<int4> small(bytes, 0, Layout::row_major({5}), {}, 4);
  status s = pack_int4(TensorView<const std::int8_t>(src, Layout::row_major({5})), small);
  CHECK(s.code() == errc::buffer_too_small);
  CHECK(s.message().find("dst") == 0);
  CHECK(bytes[0] == 0);
  // Mid-byte start: offset 1 + 4 elements needs 5 elements.
  TensorView<int4> shifted(bytes, 1, Layout::row_major({4}), {}, 4);
  CHECK(pack_int4(TensorView<const std::int8_t>(src, Layout::row_major({4})), shifted).code() == errc::buffer_too_small);
  std::int8_t out[4] = {};
  CHECK(unpack_int4(shifted, TensorView<std::int8_t>(out, Layout::row_major({4}))).code() == errc::buffer_too_small);
  TensorView<int4> fits(bytes, 1, Layout::row_major({3}), {}, 4);
  CHECK(pack_int4(TensorView<const std::int8_t>(src, Layout::row_major({3})), fits).ok());
}

// ----------------------------------------------------------------------------------------------
// 2:4

TEST_CASE("2:4 compress/decompress round trip on random valid matrices", "[sparse][2:4]") {
  for (int trial = 0; trial < 300; ++trial) {
    const std::int64_t K = uniform(1, 10), N = uniform(1, 10);
    const mem_order in_order = all_orders[uniform(0, 2)], out_order = all_orders[uniform(0, 2)];
    matrix w(K, N, in_order, Quant::per_axis(1, std::vector<float>(static_cast<std::size_t>(N), 0.5f)));
    fill_2_4(w);
    INFO("K " << K << " N " << N << " layout " << w.view.layout().to_string());
    sparse_2_4_matrix<> s;
    REQUIRE(compress_2_4(w.cview(), &s).ok());
    REQUIRE(s.validate("s").ok());
    CHECK(s.K == K);
    CHECK(s.N == N);
    CHECK(s.groups() == (K + 3) / 4);
    CHECK(static_cast<std::int64_t>(s.values.size()) == N * s.groups() * 2);
    CHECK(static_cast<std::int64_t>(s.indices.size()) == N * s.groups());
    CHECK(s.quant.scales.size() == static_cast<std::size_t>(N));
    std::int64_t nz = 0;
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t k = 0; k < K; ++k) {
        REQUIRE(s.at(k, n) == w(k, n));
        nz += w(k, n) != 0;
      }
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t g = 0; g < s.groups(); ++g) {
        REQUIRE(s.index(n, g, 0) < s.index(n, g, 1));
        for (int j = 0; j < 2; ++j) {
          const std::int64_t k = s.k_of(n, g, j);
          REQUIRE(s.value(n, g, j) == (k < K ? w(k, n) : 0));
        }
      }
    CHECK(nonzeros(s) == nz);
    CHECK(density(s) == Approx(static_cast<double>(nz) / static_cast<double>(K * N)));

    matrix d(K, N, out_order);
    d.fill(77);
    REQUIRE(decompress(s, d.view).ok());
    REQUIRE(same_values(w, d));
    if (out_order == mem_order::padded) CHECK(d.buf[static_cast<std::size_t>(N)] == 0x55);  // row padding untouched

    // int4 values: same matrix with values in [-8, 7].
    fill_2_4(w, -8, 7);
    sparse_2_4_matrix<int4> s4;
    REQUIRE(compress_2_4(w.cview(), &s4).ok());
    CHECK(static_cast<std::int64_t>(s4.values.size()) == N * s4.groups());
    d.fill(77);
    REQUIRE(decompress(s4, d.view).ok());
    REQUIRE(same_values(w, d));
  }
}

TEST_CASE("2:4 picks indices deterministically and packs them idx0 | idx1 << 2", "[sparse][2:4]") {
  // One column, K = 22: groups {0,0,0,5} {0,0,0,0} {7,0,0,0} {0,-3,0,6} {0,2,0,0} (k 20..21) {0,-1}.
  const int col[22] = {0, 0, 0, 5, 0, 0, 0, 0, 7, 0, 0, 0, 0, -3, 0, 6, 0, 2, 0, 0, 0, -1};
  matrix w(22, 1, mem_order::row_major);
  for (int k = 0; k < 22; ++k) w.set(k, 0, col[k]);
  sparse_2_4_matrix<> s;
  REQUIRE(compress_2_4(w.cview(), &s).ok());
  REQUIRE(s.groups() == 6);
  const std::vector<std::uint8_t> idx = {0 | 3 << 2, 0 | 1 << 2, 0 | 1 << 2, 1 | 3 << 2, 0 | 1 << 2, 0 | 1 << 2};
  const std::vector<std::int8_t> val = {0, 5, 0, 0, 7, 0, -3, 6, 0, 2, 0, -1};
  CHECK(s.indices == idx);
  CHECK(s.values == val);

  sparse_2_4_matrix<int4> s4;
  REQUIRE(compress_2_4(w.cview(), &s4).ok());
  CHECK(s4.indices == idx);
  const std::vector<std::uint8_t> packed = {0x50, 0x00, 0x07, 0x6D, 0x20, 0xF0};
  CHECK(s4.values == packed);
}

TEST_CASE("2:4 rejects a violating matrix naming the first bad group, writing nothing", "[sparse][2:4]") {
  for (mem_order order : all_orders) {
    matrix w(7, 3, order);
    w.fill(0);
    // Column 0 fine; column 1 group 1 (k 4..6) has 3 nonzeros; column 2 group 0 has 4.
    w.set(0, 0, 1);
    w.set(3, 0, 2);
    w.set(4, 1, 1);
    w.set(5, 1, -1);
    w.set(6, 1, 3);
    for (int k = 0; k < 4; ++k) w.set(k, 2, k + 1);
    sparse_2_4_matrix<> s;
    s.K = 123;
    s.values = {1, 2};
    status st = compress_2_4(w.cview(), &s);
    CHECK(st.code() == errc::invalid_argument);
    CHECK(st.message() == "w: not 2:4 sparse: column n = 1, group g = 1 (k = 4..6) has 3 nonzeros, at most 2 allowed");
    CHECK(s.K == 123);
    CHECK(s.values == std::vector<std::int8_t>{1, 2});
    // Fix column 1: now column 2 group 0 is the first offender.
    w.set(6, 1, 0);
    st = compress_2_4(w.cview(), &s);
    CHECK(st.message() == "w: not 2:4 sparse: column n = 2, group g = 0 (k = 0..3) has 4 nonzeros, at most 2 allowed");
    CHECK(s.K == 123);
  }
  // int4 storage rejects values outside [-8, 7].
  matrix w(4, 2, mem_order::row_major);
  w.fill(0);
  w.set(2, 1, 8);
  sparse_2_4_matrix<int4> s4;
  status st = compress_2_4(w.cview(), &s4);
  CHECK(st.code() == errc::invalid_argument);
  CHECK(st.message() == "w: value 8 at (k = 2, n = 1) is outside the int4 range [-8, 7]");
  CHECK(s4.K == 0);
}

TEST_CASE("2:4 pruning keeps the two largest magnitudes per group", "[sparse][2:4]") {
  for (int trial = 0; trial < 300; ++trial) {
    const std::int64_t K = uniform(1, 10), N = uniform(1, 10);
    matrix w(K, N, all_orders[uniform(0, 2)]);
    const bool small = uniform(0, 1) == 1;  // small range: many magnitude ties
    for (std::int64_t k = 0; k < K; ++k)
      for (std::int64_t n = 0; n < N; ++n) w.set(k, n, small ? uniform(-2, 2) : uniform(-128, 127));
    matrix orig(K, N, mem_order::row_major);
    for (std::int64_t k = 0; k < K; ++k)
      for (std::int64_t n = 0; n < N; ++n) orig.set(k, n, w(k, n));
    INFO("K " << K << " N " << N);
    REQUIRE(prune_2_4(w.view).ok());
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t k0 = 0; k0 < K; k0 += 4) {
        std::vector<std::int64_t> ks;
        for (std::int64_t k = k0; k < std::min(k0 + 4, K); ++k) ks.push_back(k);
        std::stable_sort(ks.begin(), ks.end(), [&](std::int64_t a, std::int64_t b) {
          return std::abs(int{orig(a, n)}) > std::abs(int{orig(b, n)});
        });
        for (std::size_t i = 0; i < ks.size(); ++i) REQUIRE(w(ks[i], n) == (i < 2 ? orig(ks[i], n) : 0));
      }
    sparse_2_4_matrix<> s;
    REQUIRE(compress_2_4(w.cview(), &s).ok());
    // Pruning an already 2:4 matrix changes nothing.
    matrix again(K, N, mem_order::col_major);
    REQUIRE(decompress(s, again.view).ok());
    REQUIRE(prune_2_4(again.view).ok());
    REQUIRE(same_values(again, w));
  }
  // Hand example: ties go to the lower k; -128 beats 127.
  matrix w(8, 1, mem_order::row_major);
  const int v[8] = {3, -3, 3, 1, 127, 5, -128, 127};
  for (int k = 0; k < 8; ++k) w.set(k, 0, v[k]);
  REQUIRE(prune_2_4(w.view).ok());
  const int expect[8] = {3, -3, 0, 0, 127, 0, -128, 0};
  for (int k = 0; k < 8; ++k) CHECK(int{w(k, 0)} == expect[k]);
}

TEST_CASE("2:4 argument validation", "[sparse][2:4]") {
  sparse_2_4_matrix<> s;
  matrix w(8, 2, mem_order::row_major, Quant::per_axis(1, {0.5f, 0.25f}, {0, 3}));
  w.fill(0);
  status st = compress_2_4(w.cview(), &s);
  CHECK(st.code() == errc::invalid_quantization);
  CHECK(st.message().find("w: zero_point[1] = 3") == 0);
  CHECK(st.message().find("zero point 0") != std::string::npos);
  CHECK(prune_2_4(w.view).code() == errc::invalid_quantization);

  std::int8_t buf3[8] = {};
  CHECK(compress_2_4(TensorView<const std::int8_t>(buf3, Layout::row_major({2, 2, 2})), &s).code() == errc::invalid_shape);
  CHECK(compress_2_4(TensorView<const std::int8_t>(buf3, 0, Layout::matrix(4, 4), {}, 8), &s).code() == errc::buffer_too_small);
  CHECK(compress_2_4(TensorView<const std::int8_t>(buf3, Layout::matrix(2, 2)), static_cast<sparse_2_4_matrix<>*>(nullptr)).code() ==
        errc::invalid_argument);
  // Pruning in place needs a layout without repeated addresses.
  CHECK(prune_2_4(TensorView<std::int8_t>(buf3, Layout::strided({4, 2}, {1, 0}))).code() == errc::invalid_layout);

  matrix ok(5, 3, mem_order::row_major);
  fill_2_4(ok);
  REQUIRE(compress_2_4(ok.cview(), &s).ok());
  // Wrong dense shape / zero point / overlap with the compressed storage: nothing written.
  matrix d(3, 5, mem_order::row_major);
  d.fill(9);
  st = decompress(s, d.view);
  CHECK(st.code() == errc::invalid_shape);
  CHECK(st.message() == "dense: shape [3,5], expected [5,3]");
  CHECK(d(0, 0) == 9);
  matrix dz(5, 3, mem_order::row_major, Quant::per_tensor(1.0f, 1));
  dz.fill(9);
  CHECK(decompress(s, dz.view).code() == errc::invalid_quantization);
  CHECK(dz(0, 0) == 9);
  CHECK(decompress(s, TensorView<std::int8_t>(reinterpret_cast<std::int8_t*>(s.indices.data()), Layout::matrix(5, 3))).code() ==
        errc::aliasing);
  // A corrupted structure is caught before anything is written.
  sparse_2_4_matrix<> bad = s;
  bad.indices[1] = 1 | 1 << 2;
  matrix d2(5, 3, mem_order::row_major);
  d2.fill(9);
  CHECK(decompress(bad, d2.view).code() == errc::invalid_argument);
  bad = s;
  bad.values.pop_back();
  CHECK(decompress(bad, d2.view).code() == errc::invalid_shape);
  bad = s;  // K = 5: group 1 covers k 4..7, k 5..7 are padding
  bad.indices[s.groups() + 1] = 2 | 3 << 2;
  bad.values[static_cast<std::size_t>((s.groups() + 1) * 2)] = 4;
  CHECK(decompress(bad, d2.view).code() == errc::invalid_argument);
  CHECK(d2(0, 0) == 9);
}

// ----------------------------------------------------------------------------------------------
// Block CSR and CSR

TEST_CASE("block CSR round trips for 1x4, 4x1, 16x4 and ragged shapes", "[sparse][block]") {
  const std::int64_t shapes[][2] = {{1, 4}, {4, 1}, {16, 4}, {3, 5}, {2, 2}, {1, 1}};
  for (const auto& bs : shapes) {
    const std::int64_t bn = bs[0], bk = bs[1];
    for (int trial = 0; trial < 60; ++trial) {
      const std::int64_t K = uniform(1, 21), N = uniform(1, 37);
      matrix w(K, N, all_orders[uniform(0, 2)]);
      // Random elements, then whole blocks zeroed at random.
      const int zero_pct = uniform(0, 100);
      for (std::int64_t k = 0; k < K; ++k)
        for (std::int64_t n = 0; n < N; ++n) w.set(k, n, uniform(0, 3) ? uniform(-128, 127) : 0);
      const std::int64_t R = (N + bn - 1) / bn, C = (K + bk - 1) / bk;
      std::int64_t nonzero_blocks = 0;
      for (std::int64_t r = 0; r < R; ++r)
        for (std::int64_t c = 0; c < C; ++c) {
          const bool zero = uniform(0, 99) < zero_pct;
          bool any = false;
          for (std::int64_t n = r * bn; n < std::min(N, r * bn + bn); ++n)
            for (std::int64_t k = c * bk; k < std::min(K, c * bk + bk); ++k) {
              if (zero) w.set(k, n, 0);
              any = any || w(k, n) != 0;
            }
          nonzero_blocks += any;
        }
      INFO("block " << bn << "x" << bk << " K " << K << " N " << N);
      block_csr_matrix s;
      REQUIRE(compress_block_csr(w.cview(), bn, bk, &s).ok());
      REQUIRE(s.validate("s").ok());
      CHECK(s.block_rows() == R);
      CHECK(s.block_cols() == C);
      CHECK(s.stored_blocks() == nonzero_blocks);
      CHECK(static_cast<std::int64_t>(s.values.size()) == nonzero_blocks * bn * bk);
      for (std::int64_t b = 0; b < s.stored_blocks(); ++b)
        CHECK(std::any_of(s.block(b), s.block(b) + bn * bk, [](std::int8_t v) { return v != 0; }));
      for (std::int64_t k = 0; k < K; ++k)
        for (std::int64_t n = 0; n < N; ++n) REQUIRE(s.at(k, n) == w(k, n));
      matrix d(K, N, all_orders[uniform(0, 2)]);
      d.fill(-5);
      REQUIRE(decompress(s, d.view).ok());
      REQUIRE(same_values(w, d));

      csr_matrix c;
      REQUIRE(compress_csr(w.cview(), &c).ok());
      REQUIRE(c.validate("c").ok());
      d.fill(-5);
      REQUIRE(decompress(c, d.view).ok());
      REQUIRE(same_values(w, d));
      CHECK(nonzeros(c) == nonzeros(s));
      CHECK(static_cast<std::int64_t>(c.values.size()) == nonzeros(c));
    }
  }
}

TEST_CASE("block CSR stores each block row-major over (channel, k)", "[sparse][block]") {
  // K = 3, N = 3 with 2x2 blocks: ragged block row 1 (n = 2) and block column 1 (k = 2).
  matrix w(3, 3, mem_order::row_major);
  const int v[3][3] = {{1, 2, 0}, {3, 0, 0}, {0, 0, 4}};  // w[k][n]
  for (int k = 0; k < 3; ++k)
    for (int n = 0; n < 3; ++n) w.set(k, n, v[k][n]);
  block_csr_matrix s;
  REQUIRE(compress_block_csr(w.cview(), 2, 2, &s).ok());
  CHECK(s.row_ptr == std::vector<std::int32_t>{0, 1, 2});
  CHECK(s.col_idx == std::vector<std::int32_t>{0, 1});
  // Block (0,0): channels 0,1 x k 0,1 -> {w00, w10, w01, w11}; block (1,1): channel 2 x k 2 -> {4, pad, pad, pad}.
  CHECK(s.values == std::vector<std::int8_t>{1, 3, 2, 0, 4, 0, 0, 0});
}

TEST_CASE("block pruning reaches the requested zero fraction by smallest L1 norm", "[sparse][block]") {
  const std::int64_t shapes[][2] = {{1, 4}, {4, 1}, {16, 4}, {3, 5}};
  for (const auto& bs : shapes) {
    const std::int64_t bn = bs[0], bk = bs[1];
    for (int trial = 0; trial < 20; ++trial) {
      const std::int64_t K = uniform(4, 40), N = uniform(16, 70);
      matrix w(K, N, all_orders[uniform(0, 2)]);
      for (std::int64_t k = 0; k < K; ++k)
        for (std::int64_t n = 0; n < N; ++n) w.set(k, n, nonzero_value());
      const std::int64_t R = (N + bn - 1) / bn, C = (K + bk - 1) / bk;
      std::vector<std::int64_t> l1(static_cast<std::size_t>(R * C), 0);
      for (std::int64_t k = 0; k < K; ++k)
        for (std::int64_t n = 0; n < N; ++n) l1[static_cast<std::size_t>((n / bn) * C + k / bk)] += std::abs(int{w(k, n)});
      INFO("block " << bn << "x" << bk << " K " << K << " N " << N);
      REQUIRE(prune_blocks(w.view, bn, bk, 0.8).ok());
      block_csr_matrix s;
      REQUIRE(compress_block_csr(w.cview(), bn, bk, &s).ok());
      const double total = static_cast<double>(R * C);
      CHECK(std::abs(block_zero_fraction(s) - 0.8) <= 1.0 / total);
      // Every zeroed block has an L1 norm no larger than any kept block.
      std::int64_t max_zeroed = -1, min_kept = INT64_MAX;
      for (std::int64_t r = 0; r < R; ++r)
        for (std::int64_t c = 0; c < C; ++c) {
          const bool kept = detail::csr_find(s.row_ptr, s.col_idx, r, c) >= 0;
          const std::int64_t norm = l1[static_cast<std::size_t>(r * C + c)];
          if (kept) min_kept = std::min(min_kept, norm);
          else max_zeroed = std::max(max_zeroed, norm);
        }
      CHECK(max_zeroed <= min_kept);
      // Kept blocks are unchanged: every in-range element of a kept block is still nonzero.
      std::int64_t kept_elements = 0;
      for (std::int64_t r = 0; r < R; ++r)
        for (std::int64_t c = 0; c < C; ++c)
          if (detail::csr_find(s.row_ptr, s.col_idx, r, c) >= 0)
            kept_elements += (std::min(N, r * bn + bn) - r * bn) * (std::min(K, c * bk + bk) - c * bk);
      CHECK(nonzeros(s) == kept_elements);
    }
  }
  // Edge targets.
  matrix w(8, 8, mem_order::row_major);
  w.fill(1);
  REQUIRE(prune_blocks(w.view, 4, 4, 0.0).ok());
  CHECK(w(7, 7) == 1);
  REQUIRE(prune_blocks(w.view, 4, 4, 1.0).ok());
  block_csr_matrix s;
  REQUIRE(compress_block_csr(w.cview(), 4, 4, &s).ok());
  CHECK(s.stored_blocks() == 0);
  CHECK(block_zero_fraction(s) == 1.0);
}

TEST_CASE("block CSR and CSR argument validation", "[sparse][block]") {
  matrix w(4, 4, mem_order::row_major);
  w.fill(1);
  block_csr_matrix s;
  s.K = 42;
  status st = compress_block_csr(w.cview(), 0, 4, &s);
  CHECK(st.code() == errc::invalid_argument);
  CHECK(st.message() == "bn, bk: block shape 0x4 (bn x bk) must have both sides in [1, 65536]");
  CHECK(compress_block_csr(w.cview(), 4, -1, &s).code() == errc::invalid_argument);
  CHECK(s.K == 42);
  CHECK(prune_blocks(w.view, 1, 0, 0.5).code() == errc::invalid_argument);
  CHECK(prune_blocks(w.view, 1, 4, 1.5).code() == errc::invalid_argument);
  CHECK(prune_blocks(w.view, 1, 4, std::nan("")).code() == errc::invalid_argument);
  CHECK(w(0, 0) == 1);
  matrix wz(4, 4, mem_order::row_major, Quant::per_tensor(0.1f, -2));
  CHECK(compress_block_csr(wz.cview(), 1, 4, &s).code() == errc::invalid_quantization);
  CHECK(prune_blocks(wz.view, 1, 4, 0.5).code() == errc::invalid_quantization);
  csr_matrix c;
  CHECK(compress_csr(wz.cview(), &c).code() == errc::invalid_quantization);

  REQUIRE(compress_block_csr(w.cview(), 1, 4, &s).ok());
  REQUIRE(compress_csr(w.cview(), &c).ok());
  matrix d(4, 5, mem_order::row_major);
  d.fill(9);
  CHECK(decompress(s, d.view).code() == errc::invalid_shape);
  CHECK(decompress(c, d.view).code() == errc::invalid_shape);
  CHECK(d(0, 0) == 9);
  CHECK(decompress(s, TensorView<std::int8_t>(s.values.data(), Layout::matrix(4, 4))).code() == errc::aliasing);
  CHECK(decompress(c, TensorView<std::int8_t>(c.values.data(), Layout::matrix(4, 4))).code() == errc::aliasing);

  matrix d2(4, 4, mem_order::row_major);
  d2.fill(9);
  block_csr_matrix bad = s;
  bad.col_idx[0] = 5;  // only one block column
  CHECK(decompress(bad, d2.view).code() == errc::invalid_argument);
  bad = s;
  bad.row_ptr[1] = 0;  // row 0 empty, row 1 holds two blocks in the same column
  CHECK(decompress(bad, d2.view).code() == errc::invalid_argument);
  csr_matrix badc = c;
  std::swap(badc.col_idx[0], badc.col_idx[1]);  // not ascending
  CHECK(decompress(badc, d2.view).code() == errc::invalid_argument);
  badc = c;
  badc.row_ptr[1] = 100;  // past the end, then decreasing: rejected without reading past col_idx
  CHECK(decompress(badc, d2.view).code() == errc::invalid_argument);
  badc = c;
  badc.row_ptr.pop_back();
  CHECK(decompress(badc, d2.view).code() == errc::invalid_shape);
  CHECK(d2(0, 0) == 9);
}

TEST_CASE("CSR round trips on very sparse strided matrices", "[sparse][csr]") {
  for (int trial = 0; trial < 200; ++trial) {
    const std::int64_t K = uniform(0, 30), N = uniform(0, 12);
    matrix w(K, N, all_orders[uniform(0, 2)]);
    for (std::int64_t k = 0; k < K; ++k)
      for (std::int64_t n = 0; n < N; ++n) w.set(k, n, uniform(0, 9) == 0 ? nonzero_value() : 0);
    csr_matrix c;
    REQUIRE(compress_csr(w.cview(), &c).ok());
    CHECK(static_cast<std::int64_t>(c.row_ptr.size()) == N + 1);
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int32_t i = c.row_ptr[static_cast<std::size_t>(n)]; i < c.row_ptr[static_cast<std::size_t>(n + 1)]; ++i)
        REQUIRE(w(c.col_idx[static_cast<std::size_t>(i)], n) == c.values[static_cast<std::size_t>(i)]);
    for (std::int64_t k = 0; k < K; ++k)
      for (std::int64_t n = 0; n < N; ++n) REQUIRE(c.at(k, n) == w(k, n));
    matrix d(K, N, all_orders[uniform(0, 2)]);
    d.fill(3);
    REQUIRE(decompress(c, d.view).ok());
    REQUIRE(same_values(w, d));
  }
}

TEST_CASE("storage bytes and density on a hand-computed example", "[sparse][bytes]") {
  // K = 8, N = 4, 6 nonzeros (w[k][n]).
  matrix w(8, 4, mem_order::row_major);
  w.fill(0);
  w.set(0, 0, 1);  // channel 0: group 0 (block column 0)
  w.set(3, 0, 2);
  w.set(5, 2, 3);  // channel 2: group 1 (block column 1)
  w.set(1, 3, 4);  // channel 3: groups 0 and 1
  w.set(4, 3, 5);
  w.set(7, 3, -6);

  sparse_2_4_matrix<> s24;
  REQUIRE(compress_2_4(w.cview(), &s24).ok());
  CHECK(storage_bytes(s24) == 4 * 2 * 2 + 4 * 2);  // 16 values + 8 index bytes = 24
  sparse_2_4_matrix<int4> s24_4;
  REQUIRE(compress_2_4(w.cview(), &s24_4).ok());
  CHECK(storage_bytes(s24_4) == 8 + 8);
  CHECK(density(s24) == Approx(6.0 / 32.0));
  CHECK(zero_fraction(s24_4) == Approx(26.0 / 32.0));

  block_csr_matrix b;
  REQUIRE(compress_block_csr(w.cview(), 1, 4, &b).ok());
  CHECK(b.row_ptr == std::vector<std::int32_t>{0, 1, 1, 2, 4});
  CHECK(b.col_idx == std::vector<std::int32_t>{0, 1, 0, 1});
  CHECK(storage_bytes(b) == 4 * 4 + 5 * 4 + 4 * 4);  // 16 values + 20 row_ptr + 16 col_idx = 52
  CHECK(block_zero_fraction(b) == Approx(4.0 / 8.0));
  CHECK(density(b) == Approx(6.0 / 32.0));

  block_csr_matrix b16;
  REQUIRE(compress_block_csr(w.cview(), 16, 4, &b16).ok());
  CHECK(b16.stored_blocks() == 2);
  CHECK(storage_bytes(b16) == 2 * 64 + 2 * 4 + 2 * 4);  // 128 + 8 + 8 = 144

  csr_matrix c;
  REQUIRE(compress_csr(w.cview(), &c).ok());
  CHECK(c.row_ptr == std::vector<std::int32_t>{0, 2, 2, 3, 6});
  CHECK(c.col_idx == std::vector<std::int32_t>{0, 3, 5, 1, 4, 7});
  CHECK(storage_bytes(c) == 6 + 5 * 4 + 6 * 4);  // 50
  CHECK(zero_fraction(c) == Approx(26.0 / 32.0));

  csr_matrix empty;
  matrix e(0, 3, mem_order::row_major);
  REQUIRE(compress_csr(e.cview(), &empty).ok());
  CHECK(storage_bytes(empty) == 4 * 4);
  CHECK(density(empty) == 0.0);
}
