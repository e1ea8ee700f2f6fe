// npuq_onnx_run: runs a quantized ONNX model (tools/onnx_runner/onnx_model.hpp) on npuq's scalar
// and simd backends and on the NPU tile emulator's presets, and reports accuracy, per-layer
// shapes / kernels / time, and the emulator's cycles, utilisation, DRAM bytes and energy.
//
// Why this exists: it is how a user sees npuq run a real trained network (tools/digits) end to
// end, and, given ONNX Runtime's outputs, whether npuq's integers equal ORT's.
//
//   npuq_onnx_run <model.onnx> <images.pb> [options]
//     --labels FILE       INT64 TensorProto of labels: report accuracy (argmax of the first output)
//     --reference DIR     compare the graph outputs with DIR/full_<output>.pb (ONNX Runtime's)
//     --backends LIST     comma list of scalar, simd, npu (default: all three)
//     --presets LIST      NPU presets (default: every preset; those whose numerics are fixed to
//                         something other than the model's onnx profile are listed as skipped)
//     --layer-reference DIR  compare every layer output with DIR/layers_<value>.pb (ORT's values for
//                         the first images) and print one line per layer
//     --limit N           only the first N images
//     --trace-dir DIR     write each preset's per-tile trace to DIR/<model>_<preset>.csv
//     --quiet-layers      totals only, no per-layer tables
// Exit status: 0 when every run succeeded and every compared output matched (outputs listed in
// --allow-mismatch OUTPUT may differ: reported, not fatal); 1 otherwise; 2 on bad usage.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "onnx_model.hpp"

namespace run = npuq_tools::onnx_run;
namespace pb = npuq_test::onnx_pb;

namespace {

struct options {
  std::string model, images, labels, reference, trace_dir, layer_reference;
  std::vector<std::string> backends{"scalar", "simd", "npu"};
  std::vector<std::string> presets;
  std::set<std::string> allow_mismatch;
  std::int64_t limit = -1;
  bool layers = true;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::string base_name(const std::string& path) {
  std::string b = path.substr(path.find_last_of('/') + 1);
  const std::size_t dot = b.rfind('.');
  return dot == std::string::npos ? b : b.substr(0, dot);
}

std::string dims_string(const std::vector<std::int64_t>& d) { return run::shape_string(d); }

struct outcome {
  bool ok = true;
};

// Compares the graph outputs with ORT's; prints one line per output.
void compare(const options& o, const run::model& m, const std::map<std::string, run::value>& values, outcome* res) {
  if (o.reference.empty()) return;
  for (const std::string& name : m.outputs) {
    const std::string path = o.reference + "/full_" + name + ".pb";
    run::value ref = run::load_int8(path);
    if (o.limit >= 0 && o.limit < ref.dims.at(0)) ref = run::slice_batch(ref, 0, o.limit);
    const run::value& got = values.at(name);
    if (got.dims != ref.dims) {
      std::printf("    %-8s vs ONNX Runtime: shape %s, ORT has %s: MISMATCH\n", name.c_str(), dims_string(got.dims).c_str(),
                  dims_string(ref.dims).c_str());
      res->ok = false;
      continue;
    }
    std::size_t diff = 0, maxd = 0;
    for (std::size_t i = 0; i < ref.data.size(); ++i)
      if (got.data[i] != ref.data[i]) {
        ++diff;
        const std::size_t d = static_cast<std::size_t>(std::abs(int(got.data[i]) - int(ref.data[i])));
        if (d > maxd) maxd = d;
      }
    const bool allowed = o.allow_mismatch.count(name) != 0;
    if (diff == 0)
      std::printf("    %-8s vs ONNX Runtime: bit-exact (%zu int8 values)\n", name.c_str(), ref.data.size());
    else
      std::printf("    %-8s vs ONNX Runtime: %zu of %zu int8 values differ (max |diff| %zu)%s\n", name.c_str(), diff, ref.data.size(), maxd,
                  allowed ? " [allowed: see docs/onnx-models.md]" : ": MISMATCH");
    if (diff != 0 && !allowed) res->ok = false;
  }
}

// Compares every layer's output with ORT's per-layer values (first images) when asked.
void compare_layers(const options& o, const run::model& m, const std::map<std::string, run::value>& values, outcome* res) {
  if (o.layer_reference.empty()) return;
  for (const run::layer& l : m.layers) {
    const std::string path = o.layer_reference + "/layers_" + l.output + ".pb";
    if (!pb::file_exists(path)) continue;
    const run::value ref = run::load_int8(path);
    const run::value got = run::slice_batch(values.at(l.output), 0, ref.dims.at(0));
    std::size_t diff = 0;
    for (std::size_t i = 0; i < ref.data.size() && got.dims == ref.dims; ++i) diff += got.data[i] != ref.data[i] ? 1 : 0;
    if (got.dims != ref.dims) diff = ref.data.size();
    std::printf("    layer %-18s %-14s vs ONNX Runtime (first %lld images): %s\n", l.name.c_str(), l.output.c_str(),
                static_cast<long long>(ref.dims[0]), diff == 0 ? "bit-exact" : (std::to_string(diff) + " of " + std::to_string(ref.data.size()) + " differ").c_str());
    if (diff != 0 && o.allow_mismatch.count(l.output) == 0) res->ok = false;
  }
}

void report_accuracy(const options& o, const run::model& m, const std::map<std::string, run::value>& values) {
  if (o.labels.empty()) return;
  const pb::tensor_proto t = pb::parse_tensor(pb::read_file(o.labels), o.labels);
  const std::vector<std::int64_t> labels = pb::tensor_values<std::int64_t>(t);
  const std::vector<std::int64_t> pred = run::argmax_rows(values.at(m.outputs.at(0)));
  std::size_t right = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) right += pred[i] == labels.at(i) ? 1 : 0;
  std::printf("    accuracy: %zu / %zu = %.2f%% (argmax of '%s')\n", right, pred.size(), 100.0 * double(right) / double(pred.size()),
              m.outputs.at(0).c_str());
}

void print_layers(const run::model& m, const std::vector<run::layer_record>& recs, bool npu) {
  double total = 0;
  for (const run::layer_record& r : recs) total += r.seconds;
  if (!npu) {
    std::printf("    %-3s %-10s %-18s %-16s %-16s %9s  %s\n", "#", "node", "npuq op", "in", "out", "time ms", "kernel");
    for (std::size_t i = 0; i < recs.size(); ++i) {
      const run::layer& l = m.layers[i];
      const run::layer_record& r = recs[i];
      std::printf("    %-3zu %-10s %-18s %-16s %-16s %9.3f  %s\n", i, l.name.c_str(), run::to_string(l.kind), dims_string(r.in_dims).c_str(),
                  dims_string(r.out_dims).c_str(), 1e3 * r.seconds, r.kernel.c_str());
    }
    std::printf("    total host time %.3f ms\n", 1e3 * total);
    return;
  }
  std::printf("    %-3s %-10s %-18s %-16s %10s %9s %6s %10s %10s %9s  %s\n", "#", "node", "npuq op", "out", "cycles", "stall", "util",
              "DRAM in B", "DRAM out B", "energy uJ", "tiling");
  for (std::size_t i = 0; i < recs.size(); ++i) {
    const run::layer& l = m.layers[i];
    const run::layer_record& r = recs[i];
    if (!r.has_npu) {
      std::printf("    %-3zu %-10s %-18s %-16s %10s  (no NPU op: %s)\n", i, l.name.c_str(), run::to_string(l.kind), dims_string(r.out_dims).c_str(),
                  "-", r.kernel.c_str());
      continue;
    }
    const npuq::npu::op_stats& s = r.npu;
    std::printf("    %-3zu %-10s %-18s %-16s %10lld %9lld %5.1f%% %10lld %10lld %9.3f  %s\n", i, l.name.c_str(), run::to_string(l.kind),
                dims_string(r.out_dims).c_str(), static_cast<long long>(s.cycles.total()), static_cast<long long>(s.cycles.dma_stall),
                100.0 * s.utilisation(), static_cast<long long>(s.dram.read()), static_cast<long long>(s.dram.output_written),
                s.energy.total() / 1e6, s.tiling.c_str());
  }
}

template <class Backend>
void run_backend(const options& o, const run::model& m, const run::value& images, const Backend& backend, const std::string& label,
                 bool npu, outcome* res, npuq::npu::emulator* emu = nullptr) {
  std::printf("\n== %s\n", label.c_str());
  std::vector<run::layer_record> recs;
  std::map<std::string, run::value> values;
  try {
    values = run::run(backend, m, images, &recs);
  } catch (const std::exception& e) {
    std::printf("    FAILED: %s\n", e.what());
    res->ok = false;
    return;
  }
  if (o.layers) print_layers(m, recs, npu);
  if (emu != nullptr) {
    const npuq::npu::op_stats t = emu->totals();
    const double us = double(t.cycles.total()) / emu->config().clock_mhz;
    std::printf("    total: %lld cycles = %.2f us at %.0f MHz (%.3f us per image), utilisation %.1f%%, DMA stall %lld cycles, DRAM %lld B in / %lld B out,"
                " energy %.3f uJ (%.2f pJ/MAC)\n",
                static_cast<long long>(t.cycles.total()), us, emu->config().clock_mhz, us / double(images.dims[0]), 100.0 * t.utilisation(),
                static_cast<long long>(t.cycles.dma_stall), static_cast<long long>(t.dram.read()), static_cast<long long>(t.dram.output_written),
                t.energy.total() / 1e6, t.pj_per_mac());
    if (!o.trace_dir.empty()) {
      const std::string path = o.trace_dir + "/" + base_name(o.model) + "_" + emu->config().name + ".csv";
      std::ofstream f(path);
      emu->write_trace_csv(f);
      std::printf("    trace: %s\n", path.c_str());
    }
  }
  report_accuracy(o, m, values);
  compare(o, m, values, res);
  compare_layers(o, m, values, res);
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s <model.onnx> <images.pb> [--labels FILE] [--reference DIR] [--backends scalar,simd,npu] [--presets LIST]\n"
               "       [--limit N] [--trace-dir DIR] [--allow-mismatch OUTPUT] [--quiet-layers]\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  options o;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(usage(argv[0]));
      }
      return argv[++i];
    };
    if (a == "--labels") o.labels = next();
    else if (a == "--reference") o.reference = next();
    else if (a == "--backends") o.backends = split_list(next());
    else if (a == "--presets") o.presets = split_list(next());
    else if (a == "--layer-reference") o.layer_reference = next();
    else if (a == "--limit") o.limit = std::atoll(next().c_str());
    else if (a == "--trace-dir") o.trace_dir = next();
    else if (a == "--allow-mismatch") o.allow_mismatch.insert(next());
    else if (a == "--quiet-layers") o.layers = false;
    else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "unknown option %s\n", a.c_str());
      return usage(argv[0]);
    } else pos.push_back(a);
  }
  if (pos.size() != 2) return usage(argv[0]);
  o.model = pos[0];
  o.images = pos[1];
  if (o.presets.empty() || (o.presets.size() == 1 && o.presets[0] == "all")) o.presets = npuq::npu::presets::names();

  run::model m;
  run::value images;
  try {
    m = run::load_model(o.model);
    images = run::load_int8(o.images);
    if (o.limit >= 0 && o.limit < images.dims.at(0)) images = run::slice_batch(images, 0, o.limit);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "npuq_onnx_run: %s\n", e.what());
    return 1;
  }
  std::printf("model %s: %zu npuq layers, input '%s' %s, outputs", o.model.c_str(), m.layers.size(), m.input.c_str(),
              dims_string(images.dims).c_str());
  for (const std::string& out : m.outputs) std::printf(" '%s'", out.c_str());
  std::printf("; numerics %s\n", npuq::numerics_profile::onnx().describe().c_str());

  outcome res;
  for (const std::string& b : o.backends) {
    if (b == "scalar") {
      run_backend(o, m, images, npuq::scalar, "backend scalar", false, &res);
    } else if (b == "simd") {
      run_backend(o, m, images, npuq::simd, std::string("backend simd (") + npuq::to_string(npuq::simd.level()) + ")", false, &res);
    } else if (b == "npu") {
      for (const std::string& name : o.presets) {
        npuq::npu::profile prof;
        const npuq::status s = npuq::npu::presets::by_name(name, &prof);
        if (!s.ok()) {
          std::fprintf(stderr, "npuq_onnx_run: %s\n", s.to_string().c_str());
          return 2;
        }
        if (!run::preset_runs_onnx_numerics(prof)) {
          std::printf("\n== npu %s: skipped: the preset's numerics are fixed to %s, the model needs %s\n", name.c_str(),
                      prof.numerics.describe().c_str(), npuq::numerics_profile::onnx().describe().c_str());
          continue;
        }
        npuq::npu::emulator emu(prof);
        run_backend(o, m, images, emu, "npu " + prof.describe(), true, &res, &emu);
      }
    } else {
      std::fprintf(stderr, "unknown backend '%s' (scalar, simd, npu)\n", b.c_str());
      return 2;
    }
  }
  return res.ok ? 0 : 1;
}
