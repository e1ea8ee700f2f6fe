// Shared pieces of the seeded fuzz drivers (issue 14): the generator, operand buffers, random
// views and quantization, and the check every driver applies to one call:
//   - the call returns (under ASan + UBSan: without touching memory it does not own, no UB);
//   - error  => not one byte of the output buffer changed, and the message names an argument;
//   - success => the inputs are unchanged and every other backend (simd at every level this CPU
//     offers, the NPU emulator where the op has it) says the same and writes the same bytes.
// A driver is `NPUQ_FUZZ_MAIN("name", one_call)` with one_call(fuzz::gen&, fuzz::driver&) making
// one random call: a program `name [seconds] [seed]` that makes calls until the time is up, or,
// built with NPUQ_LIBFUZZER=1 (clang -fsanitize=fuzzer; CMake option NPUQ_LIBFUZZER), a libFuzzer
// target making one call per input, whose bytes are the generator's choices (then its own stream,
// seeded from the input, once they run out), so coverage guides the mutations.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <limits>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <npuq/npu.hpp>
#include <npuq/npuq.hpp>

namespace npuq {
namespace fuzz {

constexpr unsigned char canary = 0xA5;
constexpr std::int64_t int64_max = std::numeric_limits<std::int64_t>::max();

struct gen {
  std::mt19937_64 r;
  explicit gen(std::uint64_t seed) : r(seed) {}
  // libFuzzer: choices from `data` first.
  gen(const unsigned char* data, std::size_t size) : r(hash(data, size)), data_(data), size_(size) {}
  std::int64_t in(std::int64_t lo, std::int64_t hi) {
    if (pos_ >= size_) return std::uniform_int_distribution<std::int64_t>(lo, hi)(r);
    // As many of the input's next bytes as the range needs: one byte's mutation moves one choice.
    const std::uint64_t span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
    std::uint64_t x = 0;
    for (std::uint64_t left = span; pos_ < size_; left >>= 8) {
      x = x << 8 | data_[pos_++];
      if (left >> 8 == 0) break;
    }
    const std::uint64_t v = span == std::numeric_limits<std::uint64_t>::max() ? x : x % (span + 1);
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(lo) + v);  // modulo 2^64: inside [lo, hi]
  }
  bool chance(int percent) { return in(0, 99) < percent; }
  // Mostly in [lo, hi], sometimes an adversarial value.
  std::int64_t extent(std::int64_t lo, std::int64_t hi) {
    if (!chance(4)) return in(lo, hi);
    const std::int64_t odd[] = {0, -1, int64_max, int64_max / 2, int64_max / 2 + 1, std::int64_t{1} << 32, std::int64_t{1} << 62,
                                (std::int64_t{1} << 62) - 1};
    return odd[in(0, 7)];
  }

 private:
  static std::uint64_t hash(const unsigned char* data, std::size_t size) {  // FNV-1a
    std::uint64_t h = 14695981039346656037ull;
    for (std::size_t i = 0; i < size; ++i) h = (h ^ data[i]) * 1099511628211ull;
    return h;
  }
  const unsigned char* data_ = nullptr;
  std::size_t size_ = 0, pos_ = 0;
};

// The bytes of one operand; views into it may reach past it (the op must then refuse them
// through the capacity) or alias another operand's.
struct pool {
  std::vector<unsigned char> bytes;
  explicit pool(std::size_t n) : bytes(n) {}
  void fill(gen& g) {
    for (auto& b : bytes) b = static_cast<unsigned char>(g.in(0, 255));
  }
  void fill_canary() {
    if (!bytes.empty()) std::memset(bytes.data(), canary, bytes.size());  // an empty vector's data() may be null
  }
};

// Layout::strided over runtime arrays (rank 0..6).
inline Layout strided_layout(const std::int64_t* d, const std::int64_t* s, int rank) {
  switch (rank) {
    case 1: return Layout::strided({d[0]}, {s[0]});
    case 2: return Layout::strided({d[0], d[1]}, {s[0], s[1]});
    case 3: return Layout::strided({d[0], d[1], d[2]}, {s[0], s[1], s[2]});
    case 4: return Layout::strided({d[0], d[1], d[2], d[3]}, {s[0], s[1], s[2], s[3]});
    case 5: return Layout::strided({d[0], d[1], d[2], d[3], d[4]}, {s[0], s[1], s[2], s[3], s[4]});
    case 6: return Layout::strided({d[0], d[1], d[2], d[3], d[4], d[5]}, {s[0], s[1], s[2], s[3], s[4], s[5]});
    default: return Layout::row_major(d, rank);
  }
}

// A view of `rank` dims over pool p: mostly row-major (valid), sometimes random strides (zero,
// huge, transposed) and a random offset, sometimes with the capacity left unknown (only when
// the layout really stays inside the buffer: "unknown" promises that).
template <class T>
TensorView<T> random_view(gen& g, pool& p, const std::int64_t* dims, int rank, Quant q) {
  using S = typename TensorView<T>::storage_type;
  const bool packed = element_traits<std::remove_const_t<T>>::packed;
  const std::int64_t cap = static_cast<std::int64_t>(p.bytes.size() / sizeof(S)) * (packed ? 2 : 1);
  Layout l = Layout::row_major(dims, rank);
  std::int64_t offset = 0;
  if (g.chance(15)) {
    std::int64_t s[Layout::max_rank] = {};
    for (int i = 0; i < rank; ++i) s[i] = g.chance(10) ? g.extent(0, 64) : (g.chance(5) && i + 1 < rank ? l.stride(i + 1) : l.stride(i));
    l = strided_layout(dims, s, rank);
    if (g.chance(20)) offset = g.extent(0, 64);
  }
  auto* data = reinterpret_cast<S*>(p.bytes.data());
  std::int64_t span = 0, end = 0;
  const bool inside = l.well_formed() && l.fits() && l.try_span(&span) && checked_add(offset, span, &end) && end <= cap;
  return TensorView<T>(data, offset, l, std::move(q), inside && g.chance(20) ? TensorView<T>::unknown_capacity : cap);
}

// Mostly a sane scale and zero point in [zp_lo, zp_hi]; sometimes 0, denormal-ish or out of range;
// per-axis along `axis` (when channels is small) in 40% of the calls.
inline Quant random_quant(gen& g, std::int64_t channels, int axis, int zp_lo, int zp_hi) {
  auto scale = [&] { return g.chance(3) ? (g.chance(50) ? 0.0f : 1e-30f) : static_cast<float>(g.in(1, 1000)) * 1e-4f; };
  auto zp = [&] { return static_cast<std::int32_t>(g.chance(3) ? g.in(-70000, 70000) : g.in(zp_lo, zp_hi)); };
  if (channels > 0 && channels < 64 && g.chance(40)) {
    std::vector<float> s(static_cast<std::size_t>(channels));
    for (auto& x : s) x = scale();
    return Quant::per_axis(axis, std::move(s), {zp()});
  }
  return Quant::per_tensor(scale(), zp());
}

// An emulator of one of the presets (generic half of the time). NPUQ_FUZZ_SKIP_PRESET=<name>
// replaces that preset by generic (to fuzz past an open finding in one preset).
inline npu::emulator random_emulator(gen& g) {
  const std::vector<std::string> names = npu::presets::names();
  const std::string& name = names[static_cast<std::size_t>(g.in(0, static_cast<std::int64_t>(names.size()) - 1))];
  const char* skip = std::getenv("NPUQ_FUZZ_SKIP_PRESET");
  npu::profile p;
  if (g.chance(50) || (skip != nullptr && name == skip) || !npu::presets::by_name(name, &p).ok()) p = npu::presets::generic();
  return npu::emulator(p);
}

// " name=layout@offset/capacity" and the quantization's shape, for a finding's report.
template <class T>
std::string describe(const char* name, const TensorView<T>& v) {
  std::string s = std::string(" ") + name + "=" + v.layout().to_string() + "@" + std::to_string(v.offset()) + "/" + std::to_string(v.capacity());
  const Quant& q = v.quant();
  if (q.present())
    s += " q[" + std::to_string(q.scales.size()) + " scales, " + std::to_string(q.zero_points.size()) + " zps (first " +
         std::to_string(q.zero_points.empty() ? 0 : q.zero_points[0]) + "), axis " + std::to_string(q.axis) + "]";
  return s;
}

// The state of one run: where a finding is reported from. `context` (set by the driver before a
// call, e.g. from describe()) is printed with a finding.
struct driver {
  const char* name = "";
  std::uint64_t seed = 0;
  long call = 0;
  long successes = 0;
  std::string context;
  [[noreturn]] void fail(const std::string& what) const {
#if defined(NPUQ_LIBFUZZER) && NPUQ_LIBFUZZER
    std::fprintf(stderr, "%s: FINDING on this input: %s\n  call:%s\n", name, what.c_str(), context.c_str());
    std::abort();  // libFuzzer saves the input
#else
    std::fprintf(stderr, "%s: FINDING at seed %llu call %ld: %s\n  call:%s\n", name, static_cast<unsigned long long>(seed), call, what.c_str(),
                 context.c_str());
    std::exit(1);
#endif
  }
};

// Checks one call: `run(backend)` makes it on that backend and returns its status; `out` is the
// buffer it writes and `inputs` the buffers it only reads (an input may be `out` itself when the
// generator made them alias: then only the verdict and "nothing written on error" are checked,
// since which bytes an aliased call writes in which order is the backend's). `npu` (null when
// the op has no emulator path) may refuse with `unsupported` what its hardware model cannot
// hold, as long as it writes nothing, and may write other bytes where it reports partial sums
// that overflowed a width of its hardware model (array_psum_overflows, spill_saturations).
template <class Run>
void check_call(driver& d, const std::string& op, pool& out, std::initializer_list<const pool*> inputs, const npu::emulator* npu,
                Run&& run) {
  if (std::getenv("NPUQ_FUZZ_VERBOSE") != nullptr) std::fprintf(stderr, "%s:%s\n", op.c_str(), d.context.c_str());  // before a crash
  bool aliased = false;
  std::vector<std::vector<unsigned char>> before;
  for (const pool* p : inputs) {
    aliased = aliased || p == &out;
    before.push_back(p->bytes);
  }
  const std::vector<unsigned char> out0 = out.bytes;
  const status s = run(scalar);
  if (!s.ok()) {
    if (out.bytes != out0) d.fail(op + " failed (" + s.to_string() + ") after writing the output");
    if (s.message().find(':') == std::string::npos) d.fail(op + ": message names no argument: " + s.to_string());
  } else {
    ++d.successes;
    std::size_t i = 0;
    for (const pool* p : inputs)
      if (!aliased && p->bytes != before[i++]) d.fail(op + " changed an input");
  }
  if (aliased && s.ok()) return;
  const std::vector<unsigned char> ref = out.bytes;
  auto compare = [&](const auto& backend, const std::string& name) {
    out.bytes = out0;
    const status t = run(backend);
    if (!t.ok() && s.ok() && t.code() == errc::unsupported && name.rfind("npu", 0) == 0) {
      if (out.bytes != out0) d.fail(name + " wrote before refusing (" + op + ")");
      return;
    }
    if (t.ok() != s.ok()) d.fail(op + ": " + name + " says " + t.to_string() + ", scalar says " + s.to_string());
    if (out.bytes != ref) {
      // A preset that models widths inside the array or spills narrower than the profile's
      // accumulator (Gemmini's 20-bit partial sums) differs from the reference exactly where
      // those overflow, and counts it: the modelled hardware's own result.
      const bool modelled = name.rfind("npu", 0) == 0 && s.ok() && t.ok() && !npu->ops().empty() &&
                            (npu->last().numerics.array_psum_overflows > 0 || npu->last().numerics.spill_saturations > 0);
      if (modelled) return;
      std::size_t i = 0;
      while (out.bytes[i] == ref[i]) ++i;
      d.fail(name + (s.ok() ? " differs from scalar (" : " wrote before failing (") + op + "), first at byte " + std::to_string(i) + ": " +
             std::to_string(out.bytes[i]) + " against " + std::to_string(ref[i]));
    }
  };
  for (isa level : cpu().levels()) compare(simd_backend{level}, std::string("simd ") + to_string(level));
  if (npu != nullptr) compare(*npu, "npu " + npu->config().name);
  out.bytes = ref;
}

// main() of a driver: `name [seconds] [seed]` calls one_call until the time is up.
template <class OneCall>
int run(int argc, char** argv, const char* name, OneCall&& one_call) {
  const double seconds = argc > 1 ? std::atof(argv[1]) : 10.0;
  driver d;
  d.name = name;
  d.seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;
  gen g(d.seed);
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() < seconds) {
    one_call(g, d);
    ++d.call;
  }
  std::printf("%s: seed %llu, %ld calls (%ld accepted) in %.0f s, no findings\n", name, static_cast<unsigned long long>(d.seed), d.call,
              d.successes, seconds);
  return 0;
}

// One call per libFuzzer input.
template <class OneCall>
int run_input(const char* name, OneCall&& one_call, const unsigned char* data, std::size_t size) {
  driver d;
  d.name = name;
  gen g(data, size);
  one_call(g, d);
  return 0;
}

}  // namespace fuzz
}  // namespace npuq

#if defined(NPUQ_LIBFUZZER) && NPUQ_LIBFUZZER
#define NPUQ_FUZZ_MAIN(name, one_call)                                                          \
  extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {          \
    return npuq::fuzz::run_input(name, one_call, data, size);                                   \
  }
#else
#define NPUQ_FUZZ_MAIN(name, one_call) \
  int main(int argc, char** argv) { return npuq::fuzz::run(argc, argv, name, one_call); }
#endif
