// Seeded fuzz driver for the conv2d family (conv2d, depthwise conv2d) on scalar, simd and the NPU
// emulator (issue 14). A plain driver, not libFuzzer: it draws calls from a seeded generator that
// mixes valid shapes with adversarial ones (extents and strides up to INT64_MAX, zero strides,
// offsets past the buffer, huge padding and dilation, zero points and scales out of range,
// outputs that alias the input, weights or bias), and checks for every call:
//   - the call returns (under ASan + UBSan: without touching memory it does not own, no UB);
//   - error  => not one byte of the output buffer changed, and the message names an argument;
//   - success => the inputs are unchanged and every backend's output equals scalar's byte for byte.
// Usage: fuzz_conv2d [seconds] [seed]. Prints the calls made and how many succeeded; exits 1 on
// the first finding, printing the seed and the call number that reproduce it.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <npuq/npu.hpp>
#include <npuq/npuq.hpp>

using namespace npuq;

namespace {

constexpr unsigned char kCanary = 0xA5;
constexpr std::int64_t kMax = std::numeric_limits<std::int64_t>::max();

struct gen {
  std::mt19937_64 r;
  explicit gen(std::uint64_t seed) : r(seed) {}
  std::int64_t in(std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(r); }
  bool chance(int percent) { return in(0, 99) < percent; }
  // Mostly small values, sometimes an adversarial one.
  std::int64_t extent(std::int64_t lo, std::int64_t hi) {
    if (!chance(4)) return in(lo, hi);
    const std::int64_t odd[] = {0, -1, kMax, kMax / 2, kMax / 2 + 1, std::int64_t{1} << 32, std::int64_t{1} << 62, (std::int64_t{1} << 62) - 1};
    return odd[in(0, 7)];
  }
};

// One buffer per operand: the bytes are owned here; views into it may reach past it (then the op
// must refuse them through the capacity) or alias another operand (out placed inside `pool`).
struct pool {
  std::vector<unsigned char> bytes;
  explicit pool(std::size_t n) : bytes(n) {}
};

// A view of `rank` dims over pool p: either row-major (valid) or random strides and offset.
template <class T>
TensorView<T> random_view(gen& g, pool& p, const std::int64_t* dims, int rank, Quant q) {
  using S = typename TensorView<T>::storage_type;
  const std::int64_t cap = static_cast<std::int64_t>(p.bytes.size() / sizeof(S));
  Layout l = Layout::row_major(dims, rank);
  std::int64_t offset = 0;
  if (g.chance(15)) {
    std::int64_t s[Layout::max_rank] = {};
    for (int i = 0; i < rank; ++i) s[i] = g.chance(10) ? g.extent(0, 64) : l.stride(i);
    l = rank == 4 ? Layout::strided({dims[0], dims[1], dims[2], dims[3]}, {s[0], s[1], s[2], s[3]})
                  : (rank == 3 ? Layout::strided({dims[0], dims[1], dims[2]}, {s[0], s[1], s[2]}) : Layout::strided({dims[0]}, {s[0]}));
    if (g.chance(20)) offset = g.extent(0, 64);
  }
  auto* data = reinterpret_cast<S*>(p.bytes.data());
  // "Unknown capacity" promises that the layout stays inside the buffer: only made when it does.
  std::int64_t span = 0, end = 0;
  const bool inside = l.well_formed() && l.fits() && l.try_span(&span) && checked_add(offset, span, &end) && end <= cap;
  return TensorView<T>(data, offset, l, std::move(q), inside && g.chance(20) ? TensorView<T>::unknown_capacity : cap);
}

void fill(gen& g, pool& p) {
  for (auto& b : p.bytes) b = static_cast<unsigned char>(g.in(0, 255));
}

Quant random_quant(gen& g, std::int64_t channels, int axis, int zp_lo, int zp_hi) {
  auto scale = [&] { return g.chance(3) ? (g.chance(50) ? 0.0f : 1e-30f) : static_cast<float>(g.in(1, 1000)) * 1e-4f; };
  auto zp = [&] { return static_cast<std::int32_t>(g.chance(3) ? g.in(-70000, 70000) : g.in(zp_lo, zp_hi)); };
  if (channels > 0 && channels < 64 && g.chance(40)) {
    std::vector<float> s(static_cast<std::size_t>(channels));
    for (auto& x : s) x = scale();
    return Quant::per_axis(axis, std::move(s), {zp()});
  }
  return Quant::per_tensor(scale(), zp());
}

long successes = 0;

struct finding {
  std::uint64_t seed;
  long call;
  std::string what;
};

[[noreturn]] void report(const finding& f) {
  std::fprintf(stderr, "fuzz_conv2d: FINDING at seed %llu call %ld: %s\n", static_cast<unsigned long long>(f.seed), f.call, f.what.c_str());
  std::exit(1);
}

// One fuzzed call of conv2d (depthwise = false) or depthwise conv2d, int8 in / weights / out.
void one_call(gen& g, std::uint64_t seed, long call, bool depthwise) {
  const std::int64_t N = g.extent(0, 2), H = g.extent(0, 7), W = g.extent(0, 7), C = g.extent(1, 6);
  const std::int64_t KH = g.extent(1, 3), KW = g.extent(1, 3);
  const std::int64_t M = depthwise ? g.extent(1, 2) : 1;
  const std::int64_t OC = depthwise ? (C >= 0 && C <= 64 && M <= 64 ? C * M : kMax) : g.extent(1, 6);
  window_params wp;
  wp.stride_h = g.extent(1, 3);
  wp.stride_w = g.extent(1, 3);
  wp.dilation_h = g.extent(1, 2);
  wp.dilation_w = g.extent(1, 2);
  const int pk = static_cast<int>(g.in(0, 2));
  wp.padding = pk == 0 ? padding_spec::same() : (pk == 1 ? padding_spec::valid()
                                                         : padding_spec::explicit_(g.extent(0, 2), g.extent(0, 2), g.extent(0, 2), g.extent(0, 2)));
  // The output shape the geometry implies (when it resolves); otherwise a random one.
  conv_geometry geo;
  geo.N = N; geo.H = H; geo.W = W; geo.C = C; geo.KH = KH; geo.KW = KW;
  std::int64_t OH = g.extent(0, 7), OW = g.extent(0, 7);
  const bool resolved = N >= 0 && H >= 0 && W >= 0 && detail::resolve_geometry(wp, &geo).ok();
  // A valid call with a giant reduction (a kernel of 2^32 taps over padding) is correct but takes
  // minutes on the reference: skipped, so a run keeps to its time.
  if (resolved && double(N) * double(geo.OH) * double(geo.OW) * double(OC) * double(KH) * double(KW) * double(depthwise ? 1 : std::max<std::int64_t>(C, 1)) > 4e6)
    return;
  if (resolved && !g.chance(5)) {
    OH = geo.OH;
    OW = geo.OW;
  }
  if (OH > 64 || OW > 64 || N > 4 || C > 64 || OC > 64) return;  // the generator asked for an output it cannot hold
  pool pin(4096), pw(4096), pb(512), pout(8192);
  fill(g, pin);
  fill(g, pw);
  fill(g, pb);
  const std::int64_t in_dims[4] = {N, H, W, C};
  const std::int64_t w_dims[4] = {OC, KH, KW, C};
  const std::int64_t dw_dims[3] = {KH, KW, OC};
  const std::int64_t out_dims[4] = {N, OH, OW, OC};
  const std::int64_t bias_dims[1] = {OC};
  TensorView<const std::int8_t> in = random_view<const std::int8_t>(g, pin, in_dims, 4, random_quant(g, 0, 0, -128, 127));
  TensorView<const std::int8_t> w = depthwise ? random_view<const std::int8_t>(g, pw, dw_dims, 3, random_quant(g, OC, 2, -128, 127))
                                              : random_view<const std::int8_t>(g, pw, w_dims, 4, random_quant(g, OC, 0, -128, 127));
  TensorView<const std::int32_t> bias;
  if (g.chance(60)) bias = random_view<const std::int32_t>(g, pb, bias_dims, 1, {});
  // The output: its own buffer, or (sometimes) the input's, the weights' or the bias's.
  const int alias = g.chance(8) ? static_cast<int>(g.in(1, 3)) : 0;
  pool& outp = alias == 1 ? pin : (alias == 2 ? pw : (alias == 3 ? pb : pout));
  if (alias == 0) std::memset(pout.bytes.data(), kCanary, pout.bytes.size());
  const Quant oq = random_quant(g, 0, 0, -128, 127);
  const TensorView<std::int8_t> out = random_view<std::int8_t>(g, outp, out_dims, 4, oq);

  output_params op;
  const numerics_profile profiles[] = {numerics_profile::tflite(), numerics_profile::tosa_single(), numerics_profile::onnx()};
  op.numerics = profiles[g.in(0, 2)];
  if (g.chance(20)) op.clamp = g.chance(50) ? clamp_spec::relu() : clamp_spec::relu6();

  const std::vector<unsigned char> in0 = pin.bytes, w0 = pw.bytes, b0 = pb.bytes, out0 = outp.bytes;
  auto run = [&](const auto& backend) {
    if (depthwise) {
      depthwise_params p;
      static_cast<output_params&>(p) = op;
      static_cast<window_params&>(p) = wp;
      return try_depthwise_conv2d(backend, p, in, w, bias, out);
    }
    conv2d_params p;
    static_cast<output_params&>(p) = op;
    static_cast<window_params&>(p) = wp;
    return try_conv2d(backend, p, in, w, bias, out);
  };
  const std::string op_name = depthwise ? "depthwise_conv2d" : "conv2d";
  const status s = run(scalar);
  if (!s.ok()) {
    if (outp.bytes != out0) report({seed, call, op_name + " failed (" + s.to_string() + ") after writing the output"});
    if (s.message().find(':') == std::string::npos) report({seed, call, "message names no argument: " + s.to_string()});
  } else {
    ++successes;
    if (alias == 0 && (pin.bytes != in0 || pw.bytes != w0 || pb.bytes != b0)) report({seed, call, op_name + " changed an input"});
  }
  const std::vector<unsigned char> ref = outp.bytes;
  // Every other backend: the same verdict, and on success the same bytes.
  auto compare = [&](const auto& backend, const std::string& name) {
    outp.bytes = out0;
    const status t = run(backend);
    // The emulator may refuse what its hardware model cannot hold (e.g. a K tile past its
    // limit): allowed, as long as it says so and writes nothing.
    if (!t.ok() && s.ok() && t.code() == errc::unsupported && name == "npu") {
      if (outp.bytes != out0) report({seed, call, name + " wrote before refusing (" + op_name + ")"});
      return;
    }
    if (t.ok() != s.ok()) report({seed, call, name + " says " + t.to_string() + ", scalar says " + s.to_string()});
    if (outp.bytes != ref) report({seed, call, name + (s.ok() ? " differs from scalar (" : " wrote before failing (") + op_name + ")"});
  };
  if (alias != 0 && s.ok()) return;  // aliasing views that touch nothing: the order of writes is the backend's
  for (isa level : cpu().levels()) compare(simd_backend{level}, std::string("simd ") + to_string(level));
  compare(npu::emulator{}, "npu");
}

}  // namespace

int main(int argc, char** argv) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 10.0;
  const std::uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  gen g(seed);
  const auto start = std::chrono::steady_clock::now();
  long calls = 0;
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
    one_call(g, seed, calls, (calls & 1) != 0);
    ++calls;
  }
  std::printf("fuzz_conv2d: seed %llu, %ld calls (%ld accepted) in %.0f s, no findings\n", static_cast<unsigned long long>(seed), calls,
              successes, seconds);
  return 0;
}
