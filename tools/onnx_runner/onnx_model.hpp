// Loads a quantized ONNX model (QOperator form) and runs it layer by layer on npuq's backends.
//
// Why this exists: it shows npuq running real trained networks (tools/digits) from the same
// .onnx file ONNX Runtime runs, under the `onnx` numerics profile, and lets a test compare every
// layer's int8 output with ONNX Runtime's. It is a tool, not part of the library: it maps
// ONNX nodes onto npuq's public ops and nothing else.
//
// Supported nodes (int8 activations and weights, default ONNX domain unless named):
//   QLinearConv        -> npuq::conv2d, or npuq::depthwise_conv2d when group == channels and
//                         each group has one input channel (weights per tensor or per channel)
//   QLinearMatMul      -> npuq::gemm (a [M, K] row-major, b [K, N] per tensor or per column)
//   QLinearMatMul      -> npuq::gemm also with both operands computed (attention's Q K^T and P V):
//                         a [..., M, K], b [K, N] constant or [..., K, N] with a's batch dims
//   Reshape            -> a new shape over the same bytes (NCHW row-major data is contiguous)
//   Transpose          -> the runner permutes the int8 bytes (data movement, no npuq op)
//   com.microsoft QLinearSoftmax (last axis)
//                      -> npuq::softmax with softmax_params::onnxruntime_qlinear (ONNX Runtime's
//                         integer softmax, include/npuq/ops/softmax_qlinear.hpp)
//   DequantizeLinear -> Softmax (last axis) -> QuantizeLinear
//                      -> the same: ONNX Runtime's default graph optimizer fuses this chain into
//                         QLinearSoftmax, so that is what it computes (docs/onnx-models.md)
// Anything else is refused when the model is loaded, with the node's name and op type. The
// protobuf decoding is tests/support/onnx_pb.hpp.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <npuq/npu.hpp>
#include <npuq/npuq.hpp>

#include "support/onnx_pb.hpp"

namespace npuq_tools {
namespace onnx_run {

namespace pb = npuq_test::onnx_pb;

// A node or tensor the runner cannot map onto npuq; the message names the node.
class unsupported_model : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class layer_kind { conv2d, depthwise, gemm, reshape, transpose, softmax };

inline const char* to_string(layer_kind k) {
  switch (k) {
    case layer_kind::conv2d: return "conv2d";
    case layer_kind::depthwise: return "depthwise_conv2d";
    case layer_kind::gemm: return "gemm";
    case layer_kind::reshape: return "reshape";
    case layer_kind::transpose: return "transpose";
    case layer_kind::softmax: return "softmax";
  }
  return "?";
}

inline std::string shape_string(const std::vector<std::int64_t>& d) {
  std::string s = "[";
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

// One npuq call (or a reshape) and the ONNX node(s) it replaces.
struct layer {
  std::string name;     // ONNX node name (the softmax chain: the Softmax node's)
  std::string onnx_op;  // "QLinearConv", "DequantizeLinear+Softmax+QuantizeLinear", ...
  layer_kind kind = layer_kind::conv2d;
  std::string input, output;  // value names
  npuq::Quant in_q, out_q;
  // Weights as stored in the model (OIHW for conv, [K, N] for matmul) and their quantization.
  std::vector<std::int8_t> w;
  std::vector<std::int64_t> w_dims;
  npuq::Quant w_q;
  std::vector<std::int32_t> bias;  // empty: none
  npuq::conv2d_params conv;
  npuq::depthwise_params dw;
  std::int64_t kh = 0, kw = 0;
  std::vector<std::int64_t> pads;  // ONNX order: top, left, bottom, right
  std::vector<std::int64_t> reshape_to;  // ONNX Reshape shape (0 copies, -1 infers)
  std::vector<std::int64_t> perm;        // Transpose
  std::string b_input;                   // QLinearMatMul with a computed b: its value name
  std::int64_t softmax_axis = -1;
};

// A layer's identity: node name, ONNX op, kind, and the value it reads and writes.
inline layer new_layer(const std::string& name, const std::string& onnx_op, layer_kind kind, const std::string& input,
                       const std::string& output) {
  layer l;
  l.name = name;
  l.onnx_op = onnx_op;
  l.kind = kind;
  l.input = input;
  l.output = output;
  return l;
}

struct model {
  std::string path, doc;
  std::string input;                      // graph input name
  std::vector<std::string> outputs;       // graph output names
  std::vector<layer> layers;              // in execution order
};

// An int8 activation in ONNX order (NCHW for images), row-major.
struct value {
  std::vector<std::int64_t> dims;
  std::vector<std::int8_t> data;
};

namespace detail {

inline npuq::Layout row_major(const std::vector<std::int64_t>& d) {
  switch (d.size()) {
    case 1: return npuq::Layout::row_major({d[0]});
    case 2: return npuq::Layout::row_major({d[0], d[1]});
    case 3: return npuq::Layout::row_major({d[0], d[1], d[2]});
    case 4: return npuq::Layout::row_major({d[0], d[1], d[2], d[3]});
    default: throw unsupported_model("tensor of rank " + std::to_string(d.size()) + " (the runner takes rank 1..4)");
  }
}

struct graph_index {
  const pb::graph_proto* g = nullptr;
  std::map<std::string, const pb::tensor_proto*> init;

  std::string where(const pb::node_proto& n) const { return "node '" + n.name + "' (" + n.op_type + ")"; }
  const pb::tensor_proto& constant(const pb::node_proto& n, std::size_t i, const char* role) const {
    if (i >= n.input.size() || n.input[i].empty())
      throw unsupported_model(where(n) + ": input #" + std::to_string(i) + " (" + role + ") is missing");
    auto it = init.find(n.input[i]);
    if (it == init.end())
      throw unsupported_model(where(n) + ": " + role + " '" + n.input[i] + "' must be an initializer (a constant)");
    return *it->second;
  }
  npuq::Quant per_tensor(const pb::node_proto& n, std::size_t scale_i, std::size_t zp_i, const char* role) const {
    const std::vector<float> s = pb::tensor_values<float>(constant(n, scale_i, role));
    const pb::tensor_proto& zp_t = constant(n, zp_i, role);
    if (zp_t.data_type != static_cast<std::int32_t>(pb::data_type::int8))
      throw unsupported_model(where(n) + ": " + role + " zero point is " + pb::data_type_name(zp_t.data_type) +
                              "; the runner takes int8 tensors only");
    const std::vector<std::int8_t> z = pb::tensor_values<std::int8_t>(zp_t);
    if (s.size() != 1 || z.size() != 1)
      throw unsupported_model(where(n) + ": " + role + " must be quantized per tensor (got " + std::to_string(s.size()) + " scales)");
    return npuq::Quant::per_tensor(s[0], z[0]);
  }
  npuq::Quant per_channel(const pb::node_proto& n, std::size_t scale_i, std::size_t zp_i, int axis, std::int64_t channels,
                          const char* role) const {
    std::vector<float> s = pb::tensor_values<float>(constant(n, scale_i, role));
    const std::vector<std::int8_t> z8 = pb::tensor_values<std::int8_t>(constant(n, zp_i, role));
    const auto c = static_cast<std::size_t>(channels);
    if ((s.size() != 1 && s.size() != c) || (z8.size() != 1 && z8.size() != c))
      throw unsupported_model(where(n) + ": " + role + " has " + std::to_string(s.size()) + " scales and " + std::to_string(z8.size()) +
                              " zero points for " + std::to_string(channels) + " channels");
    std::vector<std::int32_t> z(z8.begin(), z8.end());
    if (s.size() == 1 && z.size() == 1) return npuq::Quant::per_tensor(s[0], z[0]);
    if (s.size() == 1) s.assign(c, s[0]);
    if (z.size() == 1) z.assign(c, z[0]);
    return npuq::Quant::per_axis(axis, std::move(s), z);
  }
  std::vector<std::int8_t> int8_weights(const pb::node_proto& n, std::size_t i, const char* role) const {
    const pb::tensor_proto& t = constant(n, i, role);
    if (t.data_type != static_cast<std::int32_t>(pb::data_type::int8))
      throw unsupported_model(where(n) + ": " + role + " is " + pb::data_type_name(t.data_type) + "; the runner takes INT8 weights only");
    return pb::tensor_values<std::int8_t>(t);
  }
};

inline const pb::attribute_proto* attr(const pb::node_proto& n, const char* name) { return n.find_attribute(name); }

inline std::vector<std::int64_t> ints_attr(const graph_index& gi, const pb::node_proto& n, const char* name,
                                           std::vector<std::int64_t> dflt) {
  const pb::attribute_proto* a = attr(n, name);
  if (a == nullptr) return dflt;
  if (a->type != static_cast<std::int32_t>(pb::attribute_type::ints))
    throw unsupported_model(gi.where(n) + ": attribute '" + name + "' is not INTS");
  return a->ints;
}

inline layer load_qlinear_conv(const graph_index& gi, const pb::node_proto& n) {
  for (const pb::attribute_proto& a : n.attribute)
    if (a.name != "kernel_shape" && a.name != "pads" && a.name != "strides" && a.name != "group" && a.name != "dilations" &&
        !(a.name == "auto_pad" && a.s == "NOTSET"))
      throw unsupported_model(gi.where(n) + ": attribute '" + a.name + "' is not supported by the runner");
  layer l = new_layer(n.name, n.op_type, layer_kind::conv2d, n.input.at(0), n.output.at(0));  // kind: set below
  l.in_q = gi.per_tensor(n, 1, 2, "x");
  l.w = gi.int8_weights(n, 3, "w");
  l.w_dims = gi.constant(n, 3, "w").dims;
  if (l.w_dims.size() != 4) throw unsupported_model(gi.where(n) + ": weights " + shape_string(l.w_dims) + " are not 4-D (2-D conv only)");
  const std::int64_t M = l.w_dims[0], CG = l.w_dims[1];
  l.kh = l.w_dims[2];
  l.kw = l.w_dims[3];
  l.out_q = gi.per_tensor(n, 6, 7, "y");
  if (n.input.size() > 8 && !n.input[8].empty()) {
    l.bias = pb::tensor_values<std::int32_t>(gi.constant(n, 8, "B"));
    if (static_cast<std::int64_t>(l.bias.size()) != M) throw unsupported_model(gi.where(n) + ": bias size differs from output channels");
  }
  const std::vector<std::int64_t> pads = ints_attr(gi, n, "pads", {0, 0, 0, 0});
  const std::vector<std::int64_t> strides = ints_attr(gi, n, "strides", {1, 1});
  const std::vector<std::int64_t> dil = ints_attr(gi, n, "dilations", {1, 1});
  if (pads.size() != 4 || strides.size() != 2 || dil.size() != 2) throw unsupported_model(gi.where(n) + ": pads/strides/dilations are not 2-D");
  l.pads = pads;
  const pb::attribute_proto* g = attr(n, "group");
  const std::int64_t groups = g != nullptr ? g->i : 1;
  const npuq::padding_spec padding = npuq::padding_spec::explicit_(pads[0], pads[2], pads[1], pads[3]);
  if (groups > 1 && CG == 1 && M == groups) {
    // Depthwise, multiplier 1: ONNX [C, 1, KH, KW] viewed as npuq's [KH, KW, C] without a copy.
    l.kind = layer_kind::depthwise;
    l.w_q = gi.per_channel(n, 4, 5, 2, M, "w");
    l.dw.numerics = npuq::numerics_profile::onnx();
    l.dw.padding = padding;
    l.dw.stride_h = strides[0];
    l.dw.stride_w = strides[1];
    l.dw.dilation_h = dil[0];
    l.dw.dilation_w = dil[1];
  } else {
    l.kind = layer_kind::conv2d;
    l.w_q = gi.per_channel(n, 4, 5, 0, M, "w");
    l.conv.numerics = npuq::numerics_profile::onnx();
    l.conv.padding = padding;
    l.conv.stride_h = strides[0];
    l.conv.stride_w = strides[1];
    l.conv.dilation_h = dil[0];
    l.conv.dilation_w = dil[1];
    l.conv.groups = groups;
  }
  return l;
}

inline layer load_qlinear_matmul(const graph_index& gi, const pb::node_proto& n) {
  if (!n.attribute.empty()) throw unsupported_model(gi.where(n) + ": attribute '" + n.attribute[0].name + "' is not supported");
  layer l = new_layer(n.name, n.op_type, layer_kind::gemm, n.input.at(0), n.output.at(0));
  l.in_q = gi.per_tensor(n, 1, 2, "a");
  if (n.input.size() > 3 && gi.init.count(n.input[3]) == 0) {  // b is computed by the graph
    l.b_input = n.input.at(3);
    l.w_q = gi.per_tensor(n, 4, 5, "b");
  } else {
    l.w = gi.int8_weights(n, 3, "b");
    l.w_dims = gi.constant(n, 3, "b").dims;
    if (l.w_dims.size() != 2) throw unsupported_model(gi.where(n) + ": b " + shape_string(l.w_dims) + " is not 2-D");
    l.w_q = gi.per_channel(n, 4, 5, 1, l.w_dims[1], "b");
  }
  l.out_q = gi.per_tensor(n, 6, 7, "y");
  return l;
}

}  // namespace detail

// Reads and maps a model; throws pb::parse_error for a malformed file and unsupported_model
// (naming the node) for anything npuq cannot run.
inline model load_model_bytes(const std::string& bytes, const std::string& path) {
  const pb::model_proto m = pb::parse_model(bytes, path);
  model out;
  out.path = path;
  detail::graph_index gi;
  gi.g = &m.graph;
  for (const pb::tensor_proto& t : m.graph.initializer) gi.init[t.name] = &t;
  for (const std::string& in : m.graph.input)
    if (gi.init.count(in) == 0) {
      if (!out.input.empty()) throw unsupported_model(path + ": more than one graph input ('" + out.input + "', '" + in + "')");
      out.input = in;
    }
  if (out.input.empty()) throw unsupported_model(path + ": the graph has no input");
  out.outputs = m.graph.output;
  const std::vector<pb::node_proto>& nodes = m.graph.node;
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const pb::node_proto& n = nodes[i];
    const bool microsoft = n.domain == "com.microsoft";
    if (!n.domain.empty() && n.domain != "ai.onnx" && !(microsoft && n.op_type == "QLinearSoftmax"))
      throw unsupported_model(gi.where(n) + ": domain '" + n.domain +
                              "' is not supported (default ONNX domain, and com.microsoft QLinearSoftmax)");
    if (microsoft) {
      // QLinearSoftmax(X, x_scale, x_zero_point, y_scale, y_zero_point); ORT requires 'opset',
      // whose value sets the default axis (1 below 13, else -1).
      const pb::attribute_proto* opset = n.find_attribute("opset");
      if (opset == nullptr) throw unsupported_model(gi.where(n) + ": QLinearSoftmax without the 'opset' attribute ONNX Runtime requires");
      const pb::attribute_proto* axis = n.find_attribute("axis");
      layer l = new_layer(n.name, "QLinearSoftmax", layer_kind::softmax, n.input.at(0), n.output.at(0));
      l.in_q = gi.per_tensor(n, 1, 2, "x");
      l.out_q = gi.per_tensor(n, 3, 4, "y");
      l.softmax_axis = axis != nullptr ? axis->i : (opset->i < 13 ? 1 : -1);
      out.layers.push_back(l);
    } else if (n.op_type == "QLinearConv") {
      out.layers.push_back(detail::load_qlinear_conv(gi, n));
    } else if (n.op_type == "QLinearMatMul") {
      out.layers.push_back(detail::load_qlinear_matmul(gi, n));
    } else if (n.op_type == "Reshape") {
      layer l = new_layer(n.name, n.op_type, layer_kind::reshape, n.input.at(0), n.output.at(0));
      l.reshape_to = pb::tensor_values<std::int64_t>(gi.constant(n, 1, "shape"));
      out.layers.push_back(l);
    } else if (n.op_type == "Transpose") {
      layer l = new_layer(n.name, n.op_type, layer_kind::transpose, n.input.at(0), n.output.at(0));
      l.perm = detail::ints_attr(gi, n, "perm", {});
      if (l.perm.empty()) throw unsupported_model(gi.where(n) + ": Transpose without 'perm' is not supported");
      out.layers.push_back(l);
    } else if (n.op_type == "DequantizeLinear" && i + 2 < nodes.size() && nodes[i + 1].op_type == "Softmax" &&
               nodes[i + 2].op_type == "QuantizeLinear" && nodes[i + 1].input.at(0) == n.output.at(0) &&
               nodes[i + 2].input.at(0) == nodes[i + 1].output.at(0)) {
      const pb::node_proto& sm = nodes[i + 1];
      const pb::node_proto& q = nodes[i + 2];
      layer l = new_layer(sm.name, "DequantizeLinear+Softmax+QuantizeLinear", layer_kind::softmax, n.input.at(0), q.output.at(0));
      l.in_q = gi.per_tensor(n, 1, 2, "x");
      l.out_q = gi.per_tensor(q, 1, 2, "y");
      const pb::attribute_proto* axis = sm.find_attribute("axis");
      l.softmax_axis = axis != nullptr ? axis->i : -1;  // opset 13 default; checked against the rank when run
      out.layers.push_back(l);
      i += 2;
    } else {
      throw unsupported_model(gi.where(n) + ": npuq has no mapping for this node (supported: QLinearConv, QLinearMatMul, Reshape, "
                              "Transpose, com.microsoft QLinearSoftmax, DequantizeLinear -> Softmax -> QuantizeLinear)");
    }
  }
  return out;
}

inline model load_model(const std::string& path) { return load_model_bytes(pb::read_file(path), path); }

// Whether an NPU preset can run the model's numerics (the `onnx` profile): presets that follow
// each op's numerics can; those that fix their own must fix the same multiplier format,
// rounding and accumulator.
inline bool preset_runs_onnx_numerics(const npuq::npu::profile& p) {
  if (!p.fixed_numerics) return true;
  const npuq::numerics_profile want = npuq::numerics_profile::onnx();
  return p.numerics.format == want.format && p.numerics.mode == want.mode && p.numerics.acc.bits == want.acc.bits &&
         p.numerics.acc.overflow == want.acc.overflow;
}

// What one layer cost on one run.
struct layer_record {
  std::string kernel;  // the kernel that ran (simd: npuq::simd_last_kernel(); npu: the tiling)
  std::vector<std::int64_t> in_dims, out_dims;
  double seconds = 0;
  npuq::npu::op_stats npu;  // emulator only
  bool has_npu = false;
};

namespace detail {

template <class Backend>
std::string kernel_name(const Backend&, layer_kind k) {
  return std::string("scalar reference ") + to_string(k);
}
inline std::string kernel_name(const npuq::simd_backend&, layer_kind) { return npuq::simd_last_kernel(); }
inline std::string kernel_name(const npuq::npu::emulator& e, layer_kind) { return e.ops().empty() ? "" : e.last().tiling; }

template <class Backend>
void record_npu(const Backend&, layer_record*) {}
inline void record_npu(const npuq::npu::emulator& e, layer_record* r) {
  if (e.ops().empty()) return;
  r->npu = e.last();
  r->has_npu = true;
}

inline void check(const npuq::status& s, const layer& l) {
  if (!s.ok()) throw std::runtime_error("layer '" + l.name + "' (" + l.onnx_op + "): npuq rejected the call: " + s.to_string());
}

}  // namespace detail

// Runs one layer on `backend`; reads values[l.input], writes values[l.output].
template <class Backend>
layer_record run_layer(const Backend& backend, const layer& l, std::map<std::string, value>& values) {
  auto it = values.find(l.input);
  if (it == values.end()) throw std::runtime_error("layer '" + l.name + "': input '" + l.input + "' has not been computed");
  const value& x = it->second;
  value y;
  layer_record rec;
  rec.in_dims = x.dims;
  const auto t0 = std::chrono::steady_clock::now();
  const std::int64_t x_size = static_cast<std::int64_t>(x.data.size());
  switch (l.kind) {
    case layer_kind::conv2d:
    case layer_kind::depthwise: {
      if (x.dims.size() != 4) throw std::runtime_error("layer '" + l.name + "': input " + shape_string(x.dims) + " is not NCHW");
      const std::int64_t N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3], M = l.w_dims[0];
      const npuq::window_params& wp = l.kind == layer_kind::conv2d ? static_cast<const npuq::window_params&>(l.conv)
                                                                    : static_cast<const npuq::window_params&>(l.dw);
      // Output extent of ONNX Conv with explicit pads (l.pads: top, left, bottom, right).
      const std::int64_t OH = (H + l.pads[0] + l.pads[2] - ((l.kh - 1) * wp.dilation_h + 1)) / wp.stride_h + 1;
      const std::int64_t OW = (W + l.pads[1] + l.pads[3] - ((l.kw - 1) * wp.dilation_w + 1)) / wp.stride_w + 1;
      if (OH < 1 || OW < 1) throw std::runtime_error("layer '" + l.name + "': input " + shape_string(x.dims) + " is smaller than the kernel");
      y.dims = {N, M, OH, OW};
      y.data.assign(static_cast<std::size_t>(N * M * OH * OW), 0);
      const npuq::TensorView<const std::int8_t> xv(x.data.data(), npuq::Layout::nchw(N, C, H, W), l.in_q, x_size);
      const npuq::TensorView<std::int8_t> yv(y.data.data(), npuq::Layout::nchw(N, M, OH, OW), l.out_q,
                                             static_cast<std::int64_t>(y.data.size()));
      npuq::TensorView<const std::int32_t> bv;
      if (!l.bias.empty())
        bv = npuq::TensorView<const std::int32_t>(l.bias.data(), npuq::Layout::row_major({M}), npuq::Quant::none(), M);
      const std::int64_t w_size = static_cast<std::int64_t>(l.w.size());
      if (l.kind == layer_kind::conv2d) {
        const npuq::TensorView<const std::int8_t> wv(l.w.data(), npuq::Layout::oihw(M, l.w_dims[1], l.kh, l.kw), l.w_q, w_size);
        detail::check(npuq::try_conv2d(backend, l.conv, xv, wv, bv, yv), l);
      } else {
        // ONNX [C, 1, KH, KW] as npuq's [KH, KW, C]: element (ky, kx, c) at c*KH*KW + ky*KW + kx.
        const npuq::TensorView<const std::int8_t> wv(l.w.data(), 0, npuq::Layout::strided({l.kh, l.kw, M}, {l.kw, 1, l.kh * l.kw}), l.w_q,
                                                     w_size);
        detail::check(npuq::try_depthwise_conv2d(backend, l.dw, xv, wv, bv, yv), l);
      }
      break;
    }
    case layer_kind::gemm: {
      // a [..., M, K] times b [K, N] (constant) or [..., K, N] (computed, a's batch dims).
      const std::size_t r = x.dims.size();
      if (r < 2) throw std::runtime_error("layer '" + l.name + "': a " + shape_string(x.dims) + " has rank < 2");
      const value* bval = nullptr;
      if (!l.b_input.empty()) {
        auto bt = values.find(l.b_input);
        if (bt == values.end()) throw std::runtime_error("layer '" + l.name + "': input '" + l.b_input + "' has not been computed");
        bval = &bt->second;
      }
      const std::vector<std::int64_t>& bd = bval ? bval->dims : l.w_dims;
      const bool b_ok = bd.size() == 2 ? bd[0] == x.dims[r - 1]
                                       : bd.size() == r && bd[r - 2] == x.dims[r - 1] &&
                                             std::equal(bd.begin(), bd.end() - 2, x.dims.begin());
      if (!b_ok) throw std::runtime_error("layer '" + l.name + "': a " + shape_string(x.dims) + " does not match b " + shape_string(bd));
      y.dims = x.dims;
      y.dims[r - 1] = bd.back();
      std::int64_t ysize = 1;
      for (std::int64_t d : y.dims) ysize *= d;
      y.data.assign(static_cast<std::size_t>(ysize), 0);
      const std::int8_t* bp = bval ? bval->data.data() : l.w.data();
      const std::int64_t bsize = static_cast<std::int64_t>(bval ? bval->data.size() : l.w.size());
      const npuq::TensorView<const std::int8_t> av(x.data.data(), detail::row_major(x.dims), l.in_q, x_size);
      const npuq::TensorView<const std::int8_t> bv(bp, detail::row_major(bd), l.w_q, bsize);
      const npuq::TensorView<std::int8_t> yv(y.data.data(), detail::row_major(y.dims), l.out_q, ysize);
      npuq::gemm_params p;
      p.numerics = npuq::numerics_profile::onnx();
      detail::check(npuq::try_gemm(backend, p, av, bv, npuq::no_bias, yv), l);
      break;
    }
    case layer_kind::transpose: {
      const std::size_t r = x.dims.size();
      if (l.perm.size() != r) throw std::runtime_error("layer '" + l.name + "': perm has " + std::to_string(l.perm.size()) + " axes, input " + shape_string(x.dims));
      std::vector<std::int64_t> in_stride(r, 1);
      for (std::size_t d = r - 1; d-- > 0;) in_stride[d] = in_stride[d + 1] * x.dims[d + 1];
      y.dims.resize(r);
      std::vector<std::int64_t> step(r);  // input stride of each output axis
      for (std::size_t d = 0; d < r; ++d) {
        const std::int64_t a = l.perm[d];
        if (a < 0 || a >= static_cast<std::int64_t>(r)) throw std::runtime_error("layer '" + l.name + "': perm axis out of range");
        y.dims[d] = x.dims[static_cast<std::size_t>(a)];
        step[d] = in_stride[static_cast<std::size_t>(a)];
      }
      y.data.resize(x.data.size());
      std::vector<std::int64_t> idx(r, 0);
      for (std::size_t o = 0; o < y.data.size(); ++o) {
        std::int64_t off = 0;
        for (std::size_t d = 0; d < r; ++d) off += idx[d] * step[d];
        y.data[o] = x.data[static_cast<std::size_t>(off)];
        for (std::size_t d = r; d-- > 0;) {
          if (++idx[d] < y.dims[d]) break;
          idx[d] = 0;
        }
      }
      rec.kernel = "copy (permute)";
      break;
    }
    case layer_kind::reshape: {
      std::int64_t total = 1, known = 1, infer = -1;
      for (std::int64_t d : x.dims) total *= d;
      y.dims = l.reshape_to;
      for (std::size_t i = 0; i < y.dims.size(); ++i) {
        if (y.dims[i] == 0 && i < x.dims.size()) y.dims[i] = x.dims[i];
        if (y.dims[i] == -1) {
          if (infer >= 0) throw std::runtime_error("layer '" + l.name + "': more than one -1 in the shape");
          infer = static_cast<std::int64_t>(i);
        } else {
          known *= y.dims[i];
        }
      }
      if (infer >= 0 && known > 0) y.dims[static_cast<std::size_t>(infer)] = total / known;
      std::int64_t got = 1;
      for (std::int64_t d : y.dims) got *= d;
      if (got != total)
        throw std::runtime_error("layer '" + l.name + "': cannot reshape " + shape_string(x.dims) + " to " + shape_string(l.reshape_to));
      y.data = x.data;
      rec.kernel = "copy";
      break;
    }
    case layer_kind::softmax: {
      const std::int64_t r = static_cast<std::int64_t>(x.dims.size());
      if (r < 1 || (l.softmax_axis != -1 && l.softmax_axis != r - 1))
        throw std::runtime_error("layer '" + l.name + "': softmax axis " + std::to_string(l.softmax_axis) + " of " + shape_string(x.dims) +
                                 "; npuq's softmax runs over the last axis");
      y.dims = x.dims;
      y.data.assign(x.data.size(), 0);
      const npuq::TensorView<const std::int8_t> xv(x.data.data(), detail::row_major(x.dims), l.in_q, x_size);
      const npuq::TensorView<std::int8_t> yv(y.data.data(), detail::row_major(y.dims), l.out_q, x_size);
      npuq::softmax_params p;  // ONNX Runtime's QLinearSoftmax, also for the chain it fuses
      detail::check(npuq::softmax_params::from_qlinear(l.in_q.scale(), l.out_q.scale(), l.out_q.zero_point(), &p), l);
      detail::check(npuq::try_softmax(backend, p, xv, yv), l);
      break;
    }
  }
  rec.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (l.kind != layer_kind::reshape && l.kind != layer_kind::transpose) {
    rec.kernel = detail::kernel_name(backend, l.kind);
    detail::record_npu(backend, &rec);
  }
  rec.out_dims = y.dims;
  values[l.output] = std::move(y);
  return rec;
}

// Runs the model on a batch; returns every value (graph input included) and fills `records`
// (one per layer) when given.
template <class Backend>
std::map<std::string, value> run(const Backend& backend, const model& m, value input, std::vector<layer_record>* records = nullptr) {
  std::map<std::string, value> values;
  values[m.input] = std::move(input);
  for (const layer& l : m.layers) {
    layer_record r = run_layer(backend, l, values);
    if (records) records->push_back(std::move(r));
  }
  return values;
}

// Images [first, first + count) of an [N, ...] int8 tensor.
inline value slice_batch(const value& all, std::int64_t first, std::int64_t count) {
  value v;
  v.dims = all.dims;
  v.dims[0] = count;
  std::int64_t per = 1;
  for (std::size_t d = 1; d < all.dims.size(); ++d) per *= all.dims[d];
  v.data.assign(all.data.begin() + first * per, all.data.begin() + (first + count) * per);
  return v;
}

// An INT8 TensorProto file as a value.
inline value load_int8(const std::string& path) {
  const pb::tensor_proto t = pb::parse_tensor(pb::read_file(path), path);
  value v;
  v.dims = t.dims;
  v.data = pb::tensor_values<std::int8_t>(t);
  return v;
}

// Index of the first largest element of each row of an [N, classes] value.
inline std::vector<std::int64_t> argmax_rows(const value& v) {
  std::vector<std::int64_t> out;
  if (v.dims.size() != 2) throw std::runtime_error("argmax: value " + shape_string(v.dims) + " is not 2-D");
  for (std::int64_t r = 0; r < v.dims[0]; ++r) {
    std::int64_t best = 0;
    for (std::int64_t c = 1; c < v.dims[1]; ++c)
      if (v.data[static_cast<std::size_t>(r * v.dims[1] + c)] > v.data[static_cast<std::size_t>(r * v.dims[1] + best)]) best = c;
    out.push_back(best);
  }
  return out;
}

}  // namespace onnx_run
}  // namespace npuq_tools
