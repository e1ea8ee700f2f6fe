// SCALE-Sim v2 reproduced exactly: every figure SCALE-Sim reported in tests/data/scalesim/vectors.csv
// (produced by running SCALE-Sim itself, see make_vectors.py there) against npuq's model of it
// (npu/scalesim.hpp), and the scalesim_compat emulator profile charging conv and GEMM ops with it.
#include "support/catch.hpp"

#include <npuq/npu.hpp>
#include <npuq/npuq.hpp>

#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#ifndef NPUQ_SCALESIM_DATA_DIR
#error "NPUQ_SCALESIM_DATA_DIR must name tests/data/scalesim"
#endif

using namespace npuq;

namespace {

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  std::istringstream ss(line);
  while (std::getline(ss, cell, ',')) {
    const auto b = cell.find_first_not_of(" \t\r"), e = cell.find_last_not_of(" \t\r");
    out.push_back(b == std::string::npos ? "" : cell.substr(b, e - b + 1));
  }
  return out;
}

// Rows of a CSV file as header -> value maps; lines starting with '#' are comments.
std::vector<std::map<std::string, std::string>> read_csv(const std::string& path, std::string* comment = nullptr) {
  std::ifstream f(path);
  REQUIRE(f.good());
  std::vector<std::map<std::string, std::string>> rows;
  std::vector<std::string> header;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    if (line[0] == '#') {
      if (comment) *comment += line;
      continue;
    }
    const auto cells = split_csv(line);
    if (header.empty()) {
      header = cells;
      continue;
    }
    REQUIRE(cells.size() == header.size());
    std::map<std::string, std::string> row;
    for (std::size_t i = 0; i < cells.size(); ++i) row[header[i]] = cells[i];
    rows.push_back(row);
  }
  return rows;
}

std::int64_t to_i(const std::string& s) {
  // SCALE-Sim prints some counts as floats ("2543.0").
  return static_cast<std::int64_t>(std::strtod(s.c_str(), nullptr));
}
double to_d(const std::string& s) { return std::strtod(s.c_str(), nullptr); }

npu::dataflow flow_of(const std::string& s) {
  if (s == "os") return npu::dataflow::output_stationary;
  if (s == "ws") return npu::dataflow::weight_stationary;
  REQUIRE(s == "is");
  return npu::dataflow::input_stationary;
}

// The layer a vectors.csv row names ("<layer>" or "<depthwise layer>/ch<i>", one channel of it).
npu::scalesim_layer layer_of(const std::map<std::string, std::map<std::string, std::string>>& layers, const std::string& name) {
  const std::string base = name.substr(0, name.find('/'));
  REQUIRE(layers.count(base) == 1);
  const auto& l = layers.at(base);
  if (l.at("kind") == "gemm") return npu::scalesim_layer::gemm(to_i(l.at("M")), to_i(l.at("N")), to_i(l.at("K")));
  npu::scalesim_layer s;
  s.ifmap_h = to_i(l.at("H"));
  s.ifmap_w = to_i(l.at("W"));
  s.filt_h = to_i(l.at("R"));
  s.filt_w = to_i(l.at("S"));
  s.channels = name.find("/ch") != std::string::npos ? 1 : to_i(l.at("C"));
  s.filters = to_i(l.at("N"));
  s.stride_h = s.stride_w = to_i(l.at("stride"));
  return s;
}

struct vector_set {
  std::map<std::string, std::map<std::string, std::string>> layers;
  std::vector<std::map<std::string, std::string>> rows;
  std::string comment;
};

const vector_set& vectors() {
  static const vector_set v = [] {
    vector_set s;
    for (auto& l : read_csv(std::string(NPUQ_SCALESIM_DATA_DIR) + "/layers.csv")) s.layers[l.at("name")] = l;
    s.rows = read_csv(std::string(NPUQ_SCALESIM_DATA_DIR) + "/vectors.csv", &s.comment);
    // InterfaceBandwidth USER runs: the same columns plus the bandwidth.
    for (auto& r : read_csv(std::string(NPUQ_SCALESIM_DATA_DIR) + "/vectors_user.csv", &s.comment)) s.rows.push_back(r);
    return s;
  }();
  return v;
}

npu::scalesim_config config_of(const std::map<std::string, std::string>& r) {
  npu::scalesim_config c;
  c.rows = to_i(r.at("rows"));
  c.cols = to_i(r.at("cols"));
  c.flow = flow_of(r.at("dataflow"));
  c.ifmap_sram_bytes = 1024 * to_i(r.at("ifmap_kb"));
  c.filter_sram_bytes = 1024 * to_i(r.at("filter_kb"));
  c.ofmap_sram_bytes = 1024 * to_i(r.at("ofmap_kb"));
  c.user_bandwidth = r.count("bandwidth") ? to_i(r.at("bandwidth")) : 0;
  return c;
}

}  // namespace

TEST_CASE("the SCALE-Sim model reproduces every figure SCALE-Sim v2 reported", "[npu][scalesim]") {
  const vector_set& v = vectors();
  REQUIRE(v.comment.find("SCALE-Sim v2 commit") != std::string::npos);
  REQUIRE(v.rows.size() >= 100);
  std::int64_t flows[3] = {0, 0, 0}, user = 0, stalled = 0, closed_form = 0;
  for (const auto& r : v.rows) {
    const npu::scalesim_config cfg = config_of(r);
    const npu::scalesim_layer layer = layer_of(v.layers, r.at("layer"));
    INFO(r.at("layer") << " on " << cfg.rows << "x" << cfg.cols << " " << r.at("dataflow") << ", SRAM KiB " << r.at("ifmap_kb") << "/"
                       << r.at("filter_kb") << "/" << r.at("ofmap_kb"));
    npu::scalesim_figures f;
    REQUIRE(npu::scalesim_simulate(cfg, layer, &f).ok());
    CHECK(f.total_cycles == to_i(r.at("total_cycles")));
    CHECK(f.stall_cycles == to_i(r.at("stall_cycles")));
    CHECK(f.overall_util == to_d(r.at("overall_util")));  // the same double, not an approximation
    CHECK(f.mapping_eff == to_d(r.at("mapping_eff")));
    CHECK(f.compute_util == to_d(r.at("compute_util")));
    CHECK(f.sram_ifmap_reads == to_i(r.at("sram_ifmap_reads")));
    CHECK(f.sram_filter_reads == to_i(r.at("sram_filter_reads")));
    CHECK(f.sram_ofmap_writes == to_i(r.at("sram_ofmap_writes")));
    CHECK(f.dram_ifmap_reads == to_i(r.at("dram_ifmap_reads")));
    CHECK(f.dram_filter_reads == to_i(r.at("dram_filter_reads")));
    CHECK(f.dram_ofmap_writes == to_i(r.at("dram_ofmap_writes")));
    ++flows[static_cast<int>(cfg.flow)];
    user += cfg.user_bandwidth > 0;
    stalled += f.stall_cycles > 0;
    closed_form += f.lines_walked == 0;
  }
  // Both paths: the line walk, and its closed-form outcome for buffers that never fill.
  CHECK(closed_form > 0);
  CHECK(closed_form < static_cast<std::int64_t>(v.rows.size()));
  // USER-bandwidth runs, some of them with stalls.
  CHECK(user > 0);
  CHECK(stalled > 0);
  // The set covers all three dataflows. (SCALE-Sim reports no stalls in CALC mode: its ofmap
  // buffer drains `cols` words per cycle, as fast as the array writes.)
  CHECK(flows[0] > 0);
  CHECK(flows[1] > 0);
  CHECK(flows[2] > 0);
}

TEST_CASE("the SCALE-Sim model names bad layers and configs", "[npu][scalesim]") {
  npu::scalesim_figures f;
  npu::scalesim_layer big_filter{4, 4, 5, 5, 1, 1, 1, 1};
  const status s = npu::scalesim_simulate(npu::scalesim_config{}, big_filter, &f);
  CHECK(s.code() == errc::invalid_argument);
  CHECK(s.message().find("filter 5x5 is larger than the ifmap 4x4") != std::string::npos);
  npu::scalesim_config zero;
  zero.rows = 0;
  CHECK(npu::scalesim_simulate(zero, npu::scalesim_layer::gemm(4, 4, 4), &f).message().find("rows and cols") != std::string::npos);
  npu::scalesim_config tiny;
  tiny.ifmap_sram_bytes = 50;
  CHECK(npu::scalesim_simulate(tiny, npu::scalesim_layer::gemm(4, 4, 4), &f).message().find("at least 100 bytes") != std::string::npos);
}

namespace {

// Runs a vectors.csv row's layer as a real op (VALID conv or GEMM, batch 1) on the emulator.
const npu::op_stats& run_on_emulator(npu::emulator& emu, const npu::scalesim_layer& l, bool gemm_layer) {
  if (gemm_layer) {
    const std::int64_t M = l.ifmap_h, K = l.ifmap_w, N = l.filters;
    Tensor<std::int8_t> a(Layout::matrix(M, K), Quant::per_tensor(1.0f));
    Tensor<std::int8_t> b(Layout::matrix(K, N), Quant::per_tensor(1.0f));
    Tensor<std::int32_t> out(Layout::matrix(M, N));
    REQUIRE(try_gemm(emu, gemm_params{}, a, b, no_bias, out).ok());
  } else {
    Tensor<std::int8_t> in(Layout::nhwc(1, l.ifmap_h, l.ifmap_w, l.channels), Quant::per_tensor(1.0f));
    Tensor<std::int8_t> w(Layout::ohwi(l.filters, l.filt_h, l.filt_w, l.channels), Quant::per_tensor(1.0f));
    const std::int64_t eh = (l.ifmap_h - l.filt_h) / l.stride_h + 1, ew = (l.ifmap_w - l.filt_w) / l.stride_w + 1;
    Tensor<std::int32_t> out(Layout::nhwc(1, eh, ew, l.filters));
    conv2d_params p;
    p.stride_h = l.stride_h;
    p.stride_w = l.stride_w;
    p.padding = padding_spec::valid();
    REQUIRE(try_conv2d(emu, p, in, w, no_bias, out).ok());
  }
  return emu.last();
}

}  // namespace

TEST_CASE("scalesim_compat charges conv and GEMM ops exactly as SCALE-Sim v2 reports them", "[npu][scalesim][emulator]") {
  const vector_set& v = vectors();
  int checked = 0;
  for (const auto& r : v.rows) {
    if (r.at("layer").find("/ch") != std::string::npos || r.at("ifmap_kb") == "6144") continue;  // depthwise: below
    const npu::scalesim_config cfg = config_of(r);
    const npu::scalesim_layer layer = layer_of(v.layers, r.at("layer"));
    const bool gemm_layer = v.layers.at(r.at("layer")).at("kind") == "gemm";
    INFO(r.at("layer") << " on " << cfg.rows << "x" << cfg.cols << " " << r.at("dataflow") << ", SRAM KiB " << r.at("ifmap_kb"));
    npu::emulator emu(npu::presets::scalesim_compat(cfg.rows, cfg.cols, cfg.flow, to_i(r.at("ifmap_kb")), to_i(r.at("filter_kb")),
                                                    to_i(r.at("ofmap_kb")), cfg.user_bandwidth));
    const npu::op_stats& st = run_on_emulator(emu, layer, gemm_layer);
    REQUIRE(st.scalesim_layers == 1);
    CHECK(st.cycles.total() == to_i(r.at("total_cycles")));
    CHECK(st.cycles.dma_stall == to_i(r.at("stall_cycles")));
    CHECK(st.scalesim.total_cycles == to_i(r.at("total_cycles")));
    CHECK(st.scalesim.overall_util == to_d(r.at("overall_util")));
    CHECK(st.scalesim.mapping_eff == to_d(r.at("mapping_eff")));
    CHECK(st.scalesim.compute_util == to_d(r.at("compute_util")));
    CHECK(st.sram.ifmap.read == to_i(r.at("sram_ifmap_reads")));
    CHECK(st.sram.weight.read == to_i(r.at("sram_filter_reads")));
    CHECK(st.sram.ofmap.written == to_i(r.at("sram_ofmap_writes")));
    CHECK(st.dram.input_read == to_i(r.at("dram_ifmap_reads")));
    CHECK(st.dram.weight_read == to_i(r.at("dram_filter_reads")));
    CHECK(st.dram.output_written == to_i(r.at("dram_ofmap_writes")));
    CHECK(st.mapping_efficiency() * 100 == Approx(to_d(r.at("mapping_eff"))));
    // The op's own MACs (true output) stay its useful MACs.
    CHECK(st.useful_macs == st.macs);
    ++checked;
  }
  CHECK(checked > 20);
}

TEST_CASE("scalesim_compat runs a depthwise layer as SCALE-Sim runs a DP layer: one C = 1 layer per channel", "[npu][scalesim][emulator]") {
  const vector_set& v = vectors();
  for (const auto& r : v.rows) {
    if (r.at("layer") != "mobilenet_DP/ch0" || r.at("ifmap_kb") == "6144") continue;
    const npu::scalesim_config cfg = config_of(r);
    const auto& l = v.layers.at("mobilenet_DP");
    const std::int64_t C = to_i(l.at("C")), H = to_i(l.at("H")), R = to_i(l.at("R"));
    INFO(cfg.rows << "x" << cfg.cols << " " << r.at("dataflow") << ", SRAM KiB " << r.at("ifmap_kb"));
    npu::emulator emu(npu::presets::scalesim_compat(cfg.rows, cfg.cols, cfg.flow, to_i(r.at("ifmap_kb")), to_i(r.at("filter_kb")),
                                                    to_i(r.at("ofmap_kb")), cfg.user_bandwidth));
    Tensor<std::int8_t> in(Layout::nhwc(1, H, H, C), Quant::per_tensor(1.0f));
    Tensor<std::int8_t> w(Layout::hwc_m(R, R, C, 1), Quant::per_tensor(1.0f));
    Tensor<std::int32_t> out(Layout::nhwc(1, H - R + 1, H - R + 1, C));
    depthwise_params p;
    p.padding = padding_spec::valid();
    REQUIRE(try_depthwise_conv2d(emu, p, in, w, no_bias, out).ok());
    const npu::op_stats& st = emu.last();
    CHECK(st.scalesim_layers == C);
    // Every channel is the same layer: SCALE-Sim reports C identical rows.
    CHECK(st.cycles.total() == C * to_i(r.at("total_cycles")));
    CHECK(st.dram.input_read == C * to_i(r.at("dram_ifmap_reads")));
    CHECK(st.scalesim.overall_util == to_d(r.at("overall_util")));
  }
}

TEST_CASE("a scalesim_v2 profile names what SCALE-Sim cannot model", "[npu][scalesim][profile]") {
  npu::profile p = npu::presets::scalesim_compat(8, 8, npu::dataflow::weight_stationary, 1, 1, 1);
  REQUIRE(p.validate().ok());
  p.memory.ofmap_bytes = 1;
  CHECK(p.validate().message().find("memory.ofmap_bytes >= 2") != std::string::npos);
  p = npu::presets::scalesim_compat(8192, 8);
  CHECK(p.validate().message().find("up to 4096x4096") != std::string::npos);
  p = npu::presets::scalesim_compat();
  p.array.kind = npu::array_kind::dot_product;
  CHECK(p.validate().message().find("needs a systolic array") != std::string::npos);
  // An emulator with such a profile refuses ops with that message.
  npu::emulator emu(p);
  Tensor<std::int8_t> a(Layout::matrix(2, 2), Quant::per_tensor(1.0f)), b(Layout::matrix(2, 2), Quant::per_tensor(1.0f));
  Tensor<std::int32_t> out(Layout::matrix(2, 2));
  CHECK(try_gemm(emu, gemm_params{}, a, b, no_bias, out).message().find("needs a systolic array") != std::string::npos);
}

TEST_CASE("the closed form for buffers that never fill equals the line walk", "[npu][scalesim]") {
  // Strides past the filter leave input rows unread; the ceil output grid reads past the edge.
  const npu::scalesim_layer layers[] = {{13, 11, 2, 2, 3, 5, 3, 3}, {12, 10, 3, 3, 8, 20, 2, 2}, {9, 9, 3, 1, 2, 7, 1, 2},
                                        npu::scalesim_layer::gemm(37, 11, 29)};
  for (const auto& l : layers)
    for (npu::dataflow flow : {npu::dataflow::output_stationary, npu::dataflow::weight_stationary, npu::dataflow::input_stationary}) {
      npu::scalesim_config big;
      big.rows = 4;
      big.cols = 8;
      big.flow = flow;
      big.ifmap_sram_bytes = big.filter_sram_bytes = big.ofmap_sram_bytes = std::int64_t{1} << 40;
      npu::scalesim_figures closed, walked;
      REQUIRE(npu::scalesim_simulate(big, l, &closed).ok());
      REQUIRE(closed.lines_walked == 0);
      // Sets of exactly as many words as the distinct ifmap addresses: the walk runs, and the last
      // read completes the first set without changing what is read.
      npu::scalesim_config edge = big;
      edge.ifmap_sram_bytes = 100 * closed.dram_ifmap_reads;
      REQUIRE(npu::scalesim_simulate(edge, l, &walked).ok());
      INFO(l.ifmap_h << "x" << l.ifmap_w << " R" << l.filt_h << "x" << l.filt_w << " S" << l.stride_h << " " << npu::to_string(flow));
      CHECK(walked.lines_walked > 0);
      CHECK(walked.total_cycles == closed.total_cycles);
      CHECK(walked.stall_cycles == 0);
      CHECK(walked.dram_ifmap_reads == closed.dram_ifmap_reads);
      CHECK(walked.dram_filter_reads == closed.dram_filter_reads);
      CHECK(walked.dram_ofmap_writes == closed.dram_ofmap_writes);
      CHECK(walked.overall_util == closed.overall_util);
    }
}
