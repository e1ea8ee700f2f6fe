// ONNX backend node tests (Debian libonnx-testdata) run through npuq on the scalar backend.
//
// The ONNX conformance vectors are an outside definition of what QLinearConv, QLinearMatMul,
// ConvInteger and MatMulInteger compute, so npuq's onnx() profile is checked against them bit for
// bit. Each model.onnx is decoded for its op and attributes (anything the test cannot express is
// a failure, not an approximation), inputs and the expected output come from the .pb files, and
// the ONNX NCHW / OIHW tensors reach npuq as strided views without copies. Missing test data is a
// failure with instructions, never a silent skip.
#include "support/catch.hpp"
#include "support/onnx_pb.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include <npuq/npuq.hpp>

namespace pb = npuq_test::onnx_pb;

namespace {

const std::string testdata_dir = NPUQ_ONNX_TESTDATA_DIR;

// A node, attribute or tensor this test cannot map onto npuq.
class unsupported : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

std::string missing_data_message(const std::string& path) {
  return "ONNX backend test data not found: " + path +
         " does not exist. Install the Debian package libonnx-testdata (apt-get install libonnx-testdata), "
         "or configure with -DNPUQ_ONNX_TESTDATA_DIR=<dir holding the node tests>.";
}

// One data set of one node test: the node, every value it can read, and the expected output.
struct node_test {
  std::string name;  // "test_qlinearconv/test_data_set_0"
  pb::node_proto node;
  std::map<std::string, pb::tensor_proto> values;  // graph inputs with a data file, then initializers
  pb::tensor_proto expected;

  // Node input i, or nullptr when it is omitted (past the end, or named "").
  const pb::tensor_proto* input(std::size_t i) const {
    if (i >= node.input.size() || node.input[i].empty()) return nullptr;
    auto it = values.find(node.input[i]);
    if (it == values.end())
      throw std::runtime_error(name + ": node input '" + node.input[i] + "' is neither a graph input with a data file nor an initializer");
    return &it->second;
  }
  const pb::tensor_proto& required(std::size_t i, const char* role) const {
    const pb::tensor_proto* t = input(i);
    if (t == nullptr) throw std::runtime_error(name + ": required input #" + std::to_string(i) + " (" + role + ") is missing");
    return *t;
  }
};

pb::model_proto load_model(const std::string& test) {
  const std::string path = testdata_dir + "/" + test + "/model.onnx";
  pb::model_proto m = pb::parse_model(pb::read_file(path), path);
  if (m.graph.node.size() != 1)
    throw unsupported(path + ": graph has " + std::to_string(m.graph.node.size()) + " nodes, the test runs single-node graphs");
  const pb::node_proto& n = m.graph.node[0];
  if (!n.domain.empty() && n.domain != "ai.onnx") throw unsupported(path + ": node domain '" + n.domain + "' is not the default ONNX domain");
  if (n.output.size() != 1) throw unsupported(path + ": node has " + std::to_string(n.output.size()) + " outputs, expected 1");
  return m;
}

node_test load_data_set(const std::string& test, const pb::model_proto& m, const std::string& set_dir) {
  node_test t;
  t.name = test + "/" + set_dir.substr(set_dir.find_last_of('/') + 1);
  t.node = m.graph.node[0];
  for (std::size_t i = 0;; ++i) {
    const std::string path = set_dir + "/input_" + std::to_string(i) + ".pb";
    if (!pb::file_exists(path)) break;
    if (i >= m.graph.input.size())
      throw std::runtime_error(path + ": the graph declares only " + std::to_string(m.graph.input.size()) + " inputs");
    pb::tensor_proto v = pb::parse_tensor(pb::read_file(path), path);
    const std::string& graph_name = m.graph.input[i];
    if (!v.name.empty() && v.name != graph_name)
      throw std::runtime_error(path + ": tensor is named '" + v.name + "' but graph input #" + std::to_string(i) + " is '" + graph_name + "'");
    t.values[graph_name] = std::move(v);
  }
  for (const pb::tensor_proto& init : m.graph.initializer) t.values.emplace(init.name, init);  // data files take precedence
  const std::string out_path = set_dir + "/output_0.pb";
  t.expected = pb::parse_tensor(pb::read_file(out_path), out_path);
  if (!t.expected.name.empty() && t.expected.name != t.node.output[0])
    throw std::runtime_error(out_path + ": tensor is named '" + t.expected.name + "' but the node output is '" + t.node.output[0] + "'");
  return t;
}

// ---------------------------------------------------------------------------------------------
// ONNX tensors -> npuq views and quantization

template <class T>
struct type_tag {
  using type = T;
};

// Calls f(type_tag<uint8_t>) or f(type_tag<int8_t>) for the tensor's element type.
template <class F>
std::string with_8bit_type(const pb::tensor_proto& t, const char* role, F&& f) {
  switch (t.data_type) {
    case static_cast<std::int32_t>(pb::data_type::uint8): return f(type_tag<std::uint8_t>{});
    case static_cast<std::int32_t>(pb::data_type::int8): return f(type_tag<std::int8_t>{});
    default: throw unsupported(std::string(role) + " has data type " + pb::data_type_name(t.data_type) + "; npuq takes UINT8 or INT8");
  }
}

// Row-major layout of ONNX dims (rank 1..6).
npuq::Layout row_major(const std::vector<std::int64_t>& d) {
  switch (d.size()) {
    case 1: return npuq::Layout::row_major({d[0]});
    case 2: return npuq::Layout::row_major({d[0], d[1]});
    case 3: return npuq::Layout::row_major({d[0], d[1], d[2]});
    case 4: return npuq::Layout::row_major({d[0], d[1], d[2], d[3]});
    case 5: return npuq::Layout::row_major({d[0], d[1], d[2], d[3], d[4]});
    case 6: return npuq::Layout::row_major({d[0], d[1], d[2], d[3], d[4], d[5]});
    default: throw unsupported("tensor of rank " + std::to_string(d.size()) + " (npuq layouts take rank 1..6)");
  }
}

std::string shape_of(const std::vector<std::int64_t>& d) {
  std::string s = "[";
  for (std::size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

void require_same_type(const pb::tensor_proto* zp, const pb::tensor_proto& data, const char* role) {
  if (zp != nullptr && zp->data_type != data.data_type)
    throw std::runtime_error(std::string(role) + " has data type " + pb::data_type_name(zp->data_type) + ", its tensor is " +
                             pb::data_type_name(data.data_type));
}

// Zero point (nullptr: 0) and scale (nullptr: 1) of a per-tensor quantized operand.
npuq::Quant per_tensor_quant(const pb::tensor_proto* scale, const pb::tensor_proto* zp, const char* role) {
  float s = 1.0f;
  std::int64_t z = 0;
  if (scale != nullptr) {
    const std::vector<float> v = pb::tensor_values<float>(*scale);
    if (v.size() != 1)
      throw unsupported(std::string(role) + " scale has shape " + scale->shape_string() + "; npuq quantizes this operand per tensor only");
    s = v[0];
  }
  if (zp != nullptr) {
    const std::vector<std::int64_t> v = pb::integer_values(*zp);
    if (v.size() != 1)
      throw unsupported(std::string(role) + " zero point has shape " + zp->shape_string() + "; npuq quantizes this operand per tensor only");
    z = v[0];
  }
  return npuq::Quant::per_tensor(s, static_cast<std::int32_t>(z));
}

// Per-tensor or per-channel quantization along `axis` (of `channels` entries) of a weight
// operand. A missing scale means 1.0 (integer ops), a missing zero point 0.
npuq::Quant channel_quant(const pb::tensor_proto* scale, const pb::tensor_proto* zp, int axis, std::int64_t channels,
                          const char* role) {
  std::vector<float> scales = scale != nullptr ? pb::tensor_values<float>(*scale) : std::vector<float>{1.0f};
  const std::vector<std::int64_t> zps64 = zp != nullptr ? pb::integer_values(*zp) : std::vector<std::int64_t>{0};
  const auto n = static_cast<std::size_t>(channels);
  if ((scales.size() != 1 && scales.size() != n) || (zps64.size() != 1 && zps64.size() != n))
    throw unsupported(std::string(role) + ": " + std::to_string(scales.size()) + " scales and " + std::to_string(zps64.size()) +
                      " zero points for " + std::to_string(channels) + " channels (expected 1 or one per channel)");
  const std::vector<std::int32_t> zps(zps64.begin(), zps64.end());
  if (scales.size() == 1 && zps.size() == 1) return npuq::Quant::per_tensor(scales[0], zps[0]);
  if (scales.size() == 1) scales.assign(n, scales[0]);
  return npuq::Quant::per_axis(axis, std::move(scales), zps);
}

// ---------------------------------------------------------------------------------------------
// Running and comparing

template <class Y>
std::string first_mismatch(const pb::tensor_proto& t, const std::vector<Y>& expected, const std::vector<Y>& got) {
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < expected.size(); ++i)
    if (expected[i] != got[i] && bad++ == 0) first = i;
  if (bad == 0) return {};
  std::vector<std::int64_t> idx(t.dims.size());
  std::int64_t rest = static_cast<std::int64_t>(first);
  for (std::size_t d = t.dims.size(); d-- > 0;) {
    idx[d] = rest % t.dims[d];
    rest /= t.dims[d];
  }
  std::ostringstream os;
  os << "output '" << t.name << "' shape " << t.shape_string() << " " << pb::data_type_name(t.data_type) << ": " << bad << " of "
     << expected.size() << " elements differ; first at flat index " << first << " = " << shape_of(idx) << ": expected "
     << static_cast<std::int64_t>(expected[first]) << ", npuq computed " << static_cast<std::int64_t>(got[first]);
  return os.str();
}

// Runs `run(out)` twice, with the output buffer pre-filled with Y's minimum and then its
// maximum (so an element npuq never writes cannot pass by luck), and compares with the expected
// tensor. Returns "" on a bit-exact match, otherwise what went wrong.
template <class Y, class Run>
std::string run_and_compare(const pb::tensor_proto& expected_t, Run&& run) {
  const std::vector<Y> expected = pb::tensor_values<Y>(expected_t);
  for (Y fill : {std::numeric_limits<Y>::min(), std::numeric_limits<Y>::max()}) {
    std::vector<Y> out(expected.size(), fill);
    const npuq::status s = run(out);
    if (!s.ok()) return "npuq rejected the call: " + s.to_string();
    const std::string diff = first_mismatch(expected_t, expected, out);
    if (!diff.empty()) return diff + " (output pre-filled with " + std::to_string(static_cast<std::int64_t>(fill)) + ")";
  }
  return {};
}

void reject_attributes(const pb::node_proto& n) {
  if (!n.attribute.empty())
    throw unsupported(n.op_type + ": attribute '" + n.attribute[0].name + "' is not supported by this test");
}

void require_inputs_at_most(const pb::node_proto& n, std::size_t count) {
  if (n.input.size() > count)
    throw unsupported(n.op_type + ": " + std::to_string(n.input.size()) + " inputs, the op takes at most " + std::to_string(count));
}

// --- MatMul --------------------------------------------------------------------------------------

template <class A, class B, class Y>
std::string run_matmul(const node_test& t, const npuq::numerics_profile& profile, const pb::tensor_proto& a, npuq::Quant aq,
                       const pb::tensor_proto& b, npuq::Quant bq, npuq::Quant yq) {
  const std::size_t ar = a.dims.size(), br = b.dims.size();
  if (ar < 2 || br < 2)
    throw unsupported(t.node.op_type + ": 1-D operands (a " + a.shape_string() + ", b " + b.shape_string() + ") are not supported");
  if (br != 2 && br != ar)
    throw unsupported(t.node.op_type + ": b " + b.shape_string() + " must be 2-D or have a's rank (a " + a.shape_string() +
                      "); broadcasting is not supported");
  for (std::size_t d = 0; br == ar && d + 2 < ar; ++d)
    if (a.dims[d] != b.dims[d])
      throw unsupported(t.node.op_type + ": batch dimensions of a " + a.shape_string() + " and b " + b.shape_string() +
                        " differ; broadcasting is not supported");
  const std::vector<A> av = pb::tensor_values<A>(a);
  const std::vector<B> bv = pb::tensor_values<B>(b);
  const npuq::TensorView<const A> a_view(av.data(), row_major(a.dims), std::move(aq), static_cast<std::int64_t>(av.size()));
  const npuq::TensorView<const B> b_view(bv.data(), row_major(b.dims), std::move(bq), static_cast<std::int64_t>(bv.size()));
  npuq::gemm_params params;
  params.numerics = profile;
  const npuq::Layout y_layout = row_major(t.expected.dims);
  return run_and_compare<Y>(t.expected, [&](std::vector<Y>& out) {
    const npuq::TensorView<Y> y_view(out.data(), y_layout, yq, static_cast<std::int64_t>(out.size()));
    return npuq::try_gemm(npuq::scalar, params, a_view, b_view, npuq::no_bias, y_view);
  });
}

// QLinearMatMul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point)
std::string run_qlinear_matmul(const node_test& t, const npuq::numerics_profile& profile) {
  reject_attributes(t.node);
  require_inputs_at_most(t.node, 8);
  const pb::tensor_proto& a = t.required(0, "a");
  const pb::tensor_proto& b = t.required(3, "b");
  const pb::tensor_proto& y_zp = t.required(7, "y_zero_point");
  require_same_type(&t.required(2, "a_zero_point"), a, "a_zero_point");
  require_same_type(&t.required(5, "b_zero_point"), b, "b_zero_point");
  const npuq::Quant aq = per_tensor_quant(&t.required(1, "a_scale"), &t.required(2, "a_zero_point"), "a");
  const npuq::Quant bq = channel_quant(&t.required(4, "b_scale"), &t.required(5, "b_zero_point"),
                                       static_cast<int>(b.dims.size()) - 1, b.dims.empty() ? 0 : b.dims.back(), "b");
  const npuq::Quant yq = per_tensor_quant(&t.required(6, "y_scale"), &y_zp, "y");
  return with_8bit_type(a, "a", [&](auto at) {
    return with_8bit_type(b, "b", [&](auto bt) {
      return with_8bit_type(y_zp, "y_zero_point", [&](auto yt) {
        using A = typename decltype(at)::type;
        using B = typename decltype(bt)::type;
        using Y = typename decltype(yt)::type;
        return run_matmul<A, B, Y>(t, profile, a, aq, b, bq, yq);
      });
    });
  });
}

// MatMulInteger(A, B, a_zero_point?, b_zero_point?) -> int32
std::string run_matmul_integer(const node_test& t, const npuq::numerics_profile& profile) {
  reject_attributes(t.node);
  require_inputs_at_most(t.node, 4);
  const pb::tensor_proto& a = t.required(0, "A");
  const pb::tensor_proto& b = t.required(1, "B");
  require_same_type(t.input(2), a, "a_zero_point");
  require_same_type(t.input(3), b, "b_zero_point");
  const npuq::Quant aq = per_tensor_quant(nullptr, t.input(2), "A");
  const npuq::Quant bq = channel_quant(nullptr, t.input(3), static_cast<int>(b.dims.size()) - 1, b.dims.empty() ? 0 : b.dims.back(), "B");
  return with_8bit_type(a, "A", [&](auto at) {
    return with_8bit_type(b, "B", [&](auto bt) {
      using A = typename decltype(at)::type;
      using B = typename decltype(bt)::type;
      return run_matmul<A, B, std::int32_t>(t, profile, a, aq, b, bq, npuq::Quant::none());
    });
  });
}

// --- Conv ----------------------------------------------------------------------------------------

const pb::attribute_proto& typed(const pb::node_proto& n, const pb::attribute_proto& a, pb::attribute_type want) {
  if (a.type != static_cast<std::int32_t>(want))
    throw unsupported(n.op_type + ": attribute '" + a.name + "' has type " + pb::attribute_type_name(a.type) + ", expected " +
                      pb::attribute_type_name(static_cast<std::int32_t>(want)));
  return a;
}

std::vector<std::int64_t> ints_of(const pb::node_proto& n, const pb::attribute_proto& a, std::size_t count) {
  typed(n, a, pb::attribute_type::ints);
  if (a.ints.size() != count)
    throw unsupported(n.op_type + ": attribute '" + a.name + "' has " + std::to_string(a.ints.size()) + " values, expected " +
                      std::to_string(count) + " (2-D convolution)");
  return a.ints;
}

// Leading padding of SAME_LOWER along one axis (ONNX puts the odd extra row at the start).
void same_lower(std::int64_t in, std::int64_t k, std::int64_t stride, std::int64_t dil, std::int64_t* lo, std::int64_t* hi) {
  const std::int64_t out = (in + stride - 1) / stride;
  const std::int64_t total = std::max<std::int64_t>((out - 1) * stride + (k - 1) * dil + 1 - in, 0);
  *hi = total / 2;
  *lo = total - *hi;
}

// Conv attributes -> conv2d_params. x is NCHW, w is OIHW.
npuq::conv2d_params conv_params(const pb::node_proto& n, const std::vector<std::int64_t>& x, const std::vector<std::int64_t>& w) {
  npuq::conv2d_params p;
  std::string auto_pad = "NOTSET";
  std::vector<std::int64_t> pads;
  for (const pb::attribute_proto& a : n.attribute) {
    if (a.name == "auto_pad") {
      auto_pad = typed(n, a, pb::attribute_type::string).s;
    } else if (a.name == "dilations") {
      const std::vector<std::int64_t> d = ints_of(n, a, 2);
      p.dilation_h = d[0];
      p.dilation_w = d[1];
    } else if (a.name == "group") {
      p.groups = typed(n, a, pb::attribute_type::int_).i;
    } else if (a.name == "kernel_shape") {
      const std::vector<std::int64_t> k = ints_of(n, a, 2);
      if (k[0] != w[2] || k[1] != w[3])
        throw std::runtime_error(n.op_type + ": kernel_shape " + shape_of(k) + " differs from the weights' spatial shape " + shape_of(w));
    } else if (a.name == "pads") {
      pads = ints_of(n, a, 4);
    } else if (a.name == "strides") {
      const std::vector<std::int64_t> s = ints_of(n, a, 2);
      p.stride_h = s[0];
      p.stride_w = s[1];
    } else {
      throw unsupported(n.op_type + ": attribute '" + a.name + "' is not supported by this test");
    }
  }
  if (auto_pad != "NOTSET" && !pads.empty())
    throw std::runtime_error(n.op_type + ": pads and auto_pad = " + auto_pad + " cannot be used together");
  if (auto_pad == "NOTSET") {
    if (!pads.empty()) p.padding = npuq::padding_spec::explicit_(pads[0], pads[2], pads[1], pads[3]);  // [t, l, b, r]
  } else if (auto_pad == "VALID") {
    p.padding = npuq::padding_spec::valid();
  } else if (auto_pad == "SAME_UPPER") {
    p.padding = npuq::padding_spec::same();  // extra row / column at the end, as TensorFlow SAME
  } else if (auto_pad == "SAME_LOWER") {
    std::int64_t t = 0, b = 0, l = 0, r = 0;
    same_lower(x[2], w[2], p.stride_h, p.dilation_h, &t, &b);
    same_lower(x[3], w[3], p.stride_w, p.dilation_w, &l, &r);
    p.padding = npuq::padding_spec::explicit_(t, b, l, r);
  } else {
    throw unsupported(n.op_type + ": auto_pad = '" + auto_pad + "' is not supported");
  }
  return p;
}

template <class X, class W, class Y>
std::string run_conv(const node_test& t, const npuq::numerics_profile& profile, const pb::tensor_proto& x, npuq::Quant xq,
                     const pb::tensor_proto& w, npuq::Quant wq, const pb::tensor_proto* bias, npuq::Quant yq) {
  npuq::conv2d_params params = conv_params(t.node, x.dims, w.dims);
  params.numerics = profile;
  const std::vector<std::int64_t>& xd = x.dims;
  const std::vector<std::int64_t>& wd = w.dims;
  const std::vector<std::int64_t>& yd = t.expected.dims;
  const std::vector<X> xv = pb::tensor_values<X>(x);
  const std::vector<W> wv = pb::tensor_values<W>(w);
  // NCHW input, OIHW weights and NCHW output as strided views of the ONNX buffers: no copies.
  const npuq::TensorView<const X> x_view(xv.data(), npuq::Layout::nchw(xd[0], xd[1], xd[2], xd[3]), std::move(xq),
                                         static_cast<std::int64_t>(xv.size()));
  const npuq::TensorView<const W> w_view(wv.data(), npuq::Layout::oihw(wd[0], wd[1], wd[2], wd[3]), std::move(wq),
                                         static_cast<std::int64_t>(wv.size()));
  std::vector<std::int32_t> bv;
  npuq::TensorView<const std::int32_t> b_view;  // rank 0: no bias
  if (bias != nullptr) {
    if (bias->dims.size() != 1 || bias->dims[0] != wd[0])
      throw std::runtime_error(t.node.op_type + ": bias shape " + bias->shape_string() + ", expected [" + std::to_string(wd[0]) + "]");
    bv = pb::tensor_values<std::int32_t>(*bias);
    b_view = npuq::TensorView<const std::int32_t>(bv.data(), npuq::Layout::row_major({wd[0]}), npuq::Quant::none(),
                                                  static_cast<std::int64_t>(bv.size()));
  }
  if (yd.size() != 4) throw std::runtime_error(t.node.op_type + ": expected output has shape " + shape_of(yd) + ", not 4-D NCHW");
  const npuq::Layout y_layout = npuq::Layout::nchw(yd[0], yd[1], yd[2], yd[3]);
  return run_and_compare<Y>(t.expected, [&](std::vector<Y>& out) {
    const npuq::TensorView<Y> y_view(out.data(), y_layout, yq, static_cast<std::int64_t>(out.size()));
    return npuq::try_conv2d(npuq::scalar, params, x_view, w_view, b_view, y_view);
  });
}

void require_conv2d_shapes(const pb::node_proto& n, const pb::tensor_proto& x, const pb::tensor_proto& w) {
  if (x.dims.size() != 4 || w.dims.size() != 4)
    throw unsupported(n.op_type + ": x " + x.shape_string() + ", w " + w.shape_string() +
                      "; only 2-D convolution (4-D NCHW input, OIHW weights) is supported");
}

// QLinearConv(x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, y_zero_point, B?)
std::string run_qlinear_conv(const node_test& t, const npuq::numerics_profile& profile) {
  require_inputs_at_most(t.node, 9);
  const pb::tensor_proto& x = t.required(0, "x");
  const pb::tensor_proto& w = t.required(3, "w");
  const pb::tensor_proto& y_zp = t.required(7, "y_zero_point");
  require_conv2d_shapes(t.node, x, w);
  require_same_type(&t.required(2, "x_zero_point"), x, "x_zero_point");
  require_same_type(&t.required(5, "w_zero_point"), w, "w_zero_point");
  const npuq::Quant xq = per_tensor_quant(&t.required(1, "x_scale"), &t.required(2, "x_zero_point"), "x");
  const npuq::Quant wq = channel_quant(&t.required(4, "w_scale"), &t.required(5, "w_zero_point"), 0, w.dims[0], "w");
  const npuq::Quant yq = per_tensor_quant(&t.required(6, "y_scale"), &y_zp, "y");
  const pb::tensor_proto* bias = t.input(8);
  return with_8bit_type(x, "x", [&](auto xt) {
    return with_8bit_type(w, "w", [&](auto wt) {
      return with_8bit_type(y_zp, "y_zero_point", [&](auto yt) {
        using X = typename decltype(xt)::type;
        using W = typename decltype(wt)::type;
        using Y = typename decltype(yt)::type;
        return run_conv<X, W, Y>(t, profile, x, xq, w, wq, bias, yq);
      });
    });
  });
}

// ConvInteger(x, w, x_zero_point?, w_zero_point?) -> int32
std::string run_conv_integer(const node_test& t, const npuq::numerics_profile& profile) {
  require_inputs_at_most(t.node, 4);
  const pb::tensor_proto& x = t.required(0, "x");
  const pb::tensor_proto& w = t.required(1, "w");
  require_conv2d_shapes(t.node, x, w);
  require_same_type(t.input(2), x, "x_zero_point");
  require_same_type(t.input(3), w, "w_zero_point");
  const npuq::Quant xq = per_tensor_quant(nullptr, t.input(2), "x");
  const npuq::Quant wq = channel_quant(nullptr, t.input(3), 0, w.dims[0], "w");
  return with_8bit_type(x, "x", [&](auto xt) {
    return with_8bit_type(w, "w", [&](auto wt) {
      using X = typename decltype(xt)::type;
      using W = typename decltype(wt)::type;
      return run_conv<X, W, std::int32_t>(t, profile, x, xq, w, wq, nullptr, npuq::Quant::none());
    });
  });
}

// Runs one loaded data set; "" when npuq matches bit for bit.
std::string run_node(const node_test& t, const npuq::numerics_profile& profile = npuq::numerics_profile::onnx()) {
  const std::string& op = t.node.op_type;
  if (op == "QLinearMatMul") return run_qlinear_matmul(t, profile);
  if (op == "MatMulInteger") return run_matmul_integer(t, profile);
  if (op == "QLinearConv") return run_qlinear_conv(t, profile);
  if (op == "ConvInteger") return run_conv_integer(t, profile);
  throw unsupported("op type '" + op + "' is not handled by this test");
}

// Runs every data set of a node test and reports each as one assertion.
void check_node_test(const std::string& test, const std::string& op_type) {
  const std::string model_path = testdata_dir + "/" + test + "/model.onnx";
  if (!pb::file_exists(model_path)) FAIL(missing_data_message(model_path));
  pb::model_proto model;
  std::string error;
  try {
    model = load_model(test);
    if (model.graph.node[0].op_type != op_type)
      error = model_path + ": node op type is '" + model.graph.node[0].op_type + "', expected '" + op_type + "'";
  } catch (const std::exception& e) {
    error = e.what();
  }
  if (!error.empty()) FAIL(error);

  int sets = 0;
  for (;; ++sets) {
    const std::string set_dir = testdata_dir + "/" + test + "/test_data_set_" + std::to_string(sets);
    if (!pb::file_exists(set_dir + "/output_0.pb")) break;
    std::string result;
    try {
      result = run_node(load_data_set(test, model, set_dir));
    } catch (const std::exception& e) {
      result = e.what();
    }
    INFO(test << "/test_data_set_" << sets << " (" << op_type << ", profile onnx, scalar backend)");
    if (!result.empty()) FAIL_CHECK(result);
    else SUCCEED("bit-exact");
  }
  if (sets == 0) FAIL(missing_data_message(testdata_dir + "/" + test + "/test_data_set_0/output_0.pb"));
}

// Loads data set 0 of a node test for the self-checks below.
node_test load_first_data_set(const std::string& test) {
  const std::string model_path = testdata_dir + "/" + test + "/model.onnx";
  if (!pb::file_exists(model_path)) throw std::runtime_error(missing_data_message(model_path));
  return load_data_set(test, load_model(test), testdata_dir + "/" + test + "/test_data_set_0");
}

// The message of the exception f throws, or "" when it does not throw.
std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int v : b) s.push_back(static_cast<char>(v));
  return s;
}


// ONNX ConvInteger written directly on NCHW x / OIHW w buffers from the operator's definition,
// used to check the attribute mapping (pads order, strides, dilations, group, auto_pad) on
// shapes the conformance vectors do not cover. Returns the NCHW output and its dims.
std::vector<std::int32_t> conv_integer_direct(const std::vector<std::uint8_t>& x, const std::vector<std::int64_t>& xd,
                                              const std::vector<std::int8_t>& w, const std::vector<std::int64_t>& wd, int x_zp,
                                              const std::vector<int>& w_zp, std::int64_t group, const std::string& auto_pad,
                                              const std::vector<std::int64_t>& pads, const std::vector<std::int64_t>& strides,
                                              const std::vector<std::int64_t>& dilations, std::vector<std::int64_t>* yd) {
  std::int64_t lo[2], out[2];
  for (int a = 0; a < 2; ++a) {
    const std::int64_t in = xd[2 + a], eff = (wd[2 + a] - 1) * dilations[a] + 1, s = strides[a];
    std::int64_t l = 0, h = 0;
    if (auto_pad == "NOTSET") {
      l = pads[a];
      h = pads[a + 2];
    } else if (auto_pad != "VALID") {
      const std::int64_t o = (in + s - 1) / s;
      const std::int64_t total = std::max<std::int64_t>(0, (o - 1) * s + eff - in);
      l = auto_pad == "SAME_UPPER" ? total / 2 : (total + 1) / 2;
      h = total - l;
    }
    lo[a] = l;
    out[a] = (in + l + h - eff) / s + 1;
  }
  const std::int64_t N = xd[0], C = xd[1], H = xd[2], W = xd[3], M = wd[0], CG = wd[1], KH = wd[2], KW = wd[3];
  *yd = {N, M, out[0], out[1]};
  std::vector<std::int32_t> y(static_cast<std::size_t>(N * M * out[0] * out[1]));
  std::size_t at = 0;
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t m = 0; m < M; ++m)
      for (std::int64_t oy = 0; oy < out[0]; ++oy)
        for (std::int64_t ox = 0; ox < out[1]; ++ox) {
          std::int32_t acc = 0;
          const std::int64_t g = m / (M / group);
          for (std::int64_t c = 0; c < CG; ++c)
            for (std::int64_t ky = 0; ky < KH; ++ky)
              for (std::int64_t kx = 0; kx < KW; ++kx) {
                const std::int64_t iy = oy * strides[0] - lo[0] + ky * dilations[0];
                const std::int64_t ix = ox * strides[1] - lo[1] + kx * dilations[1];
                const std::int64_t ic = g * CG + c;
                const int xv = (iy < 0 || iy >= H || ix < 0 || ix >= W) ? x_zp : x[static_cast<std::size_t>(((n * C + ic) * H + iy) * W + ix)];
                const int wv = w[static_cast<std::size_t>(((m * CG + c) * KH + ky) * KW + kx)];
                acc += (xv - x_zp) * (wv - w_zp[static_cast<std::size_t>(m)]);
              }
          y[at++] = acc;
        }
  return y;
}

template <class T>
pb::tensor_proto make_tensor(const std::string& name, std::vector<std::int64_t> dims, pb::data_type type, const std::vector<T>& v) {
  pb::tensor_proto t;
  t.name = name;
  t.source = "synthetic";
  t.dims = std::move(dims);
  t.data_type = static_cast<std::int32_t>(type);
  t.has_raw_data = true;
  for (T e : v) {
    std::uint64_t u = 0;
    std::memcpy(&u, &e, sizeof e);
    for (std::size_t b = 0; b < sizeof e; ++b) t.raw_data.push_back(static_cast<char>((u >> (8 * b)) & 0xFF));
  }
  return t;
}

pb::attribute_proto ints_attribute(const std::string& name, std::vector<std::int64_t> v) {
  pb::attribute_proto a;
  a.name = name;
  a.type = static_cast<std::int32_t>(pb::attribute_type::ints);
  a.ints = std::move(v);
  return a;
}
}  // namespace

// ---------------------------------------------------------------------------------------------

TEST_CASE("onnx node test_qlinearconv", "[onnx]") { check_node_test("test_qlinearconv", "QLinearConv"); }
TEST_CASE("onnx node test_qlinearmatmul_2D", "[onnx]") { check_node_test("test_qlinearmatmul_2D", "QLinearMatMul"); }
TEST_CASE("onnx node test_qlinearmatmul_3D", "[onnx]") { check_node_test("test_qlinearmatmul_3D", "QLinearMatMul"); }
TEST_CASE("onnx node test_matmulinteger", "[onnx]") { check_node_test("test_matmulinteger", "MatMulInteger"); }
TEST_CASE("onnx node test_basic_convinteger", "[onnx]") { check_node_test("test_basic_convinteger", "ConvInteger"); }
TEST_CASE("onnx node test_convinteger_with_padding", "[onnx]") { check_node_test("test_convinteger_with_padding", "ConvInteger"); }
TEST_CASE("onnx node test_convinteger_without_padding", "[onnx]") {
  check_node_test("test_convinteger_without_padding", "ConvInteger");
}

// The conformance vectors only use symmetric pads, unit strides and one group; this checks the
// attribute mapping against the operator's definition written out directly.
TEST_CASE("onnx conv attributes map onto npuq as the operator defines them", "[onnx][attributes]") {
  const std::vector<std::int64_t> xd{2, 4, 5, 6}, wd{4, 2, 2, 3};
  std::vector<std::uint8_t> x(2 * 4 * 5 * 6);
  std::vector<std::int8_t> w(4 * 2 * 2 * 3);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<std::uint8_t>((i * 37 + 11) % 256);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<std::int8_t>(static_cast<int>((i * 53 + 7) % 255) - 127);
  const int x_zp = 131;
  const std::vector<int> w_zp{3, -2, 0, 7};

  struct variant {
    std::string auto_pad;
    std::vector<std::int64_t> pads, strides, dilations;
  };
  const variant variants[] = {
      {"NOTSET", {1, 0, 2, 1}, {1, 1}, {1, 1}},  // [top, left, bottom, right], all different
      {"NOTSET", {0, 2, 1, 0}, {2, 1}, {1, 2}},
      {"NOTSET", {2, 1, 0, 3}, {1, 3}, {2, 1}},
      {"SAME_UPPER", {}, {2, 2}, {1, 1}},  // odd total padding on both axes
      {"SAME_LOWER", {}, {2, 2}, {1, 1}},
      {"SAME_LOWER", {}, {1, 2}, {2, 1}},
      {"VALID", {}, {2, 2}, {1, 1}},
  };
  for (const variant& v : variants) {
    node_test t;
    t.name = "synthetic ConvInteger auto_pad " + v.auto_pad + " pads " + shape_of(v.pads) + " strides " + shape_of(v.strides) +
             " dilations " + shape_of(v.dilations);
    t.node.op_type = "ConvInteger";
    t.node.input = {"x", "w", "x_zero_point", "w_zero_point"};
    t.node.output = {"y"};
    if (v.auto_pad != "NOTSET") {
      pb::attribute_proto a;
      a.name = "auto_pad";
      a.type = static_cast<std::int32_t>(pb::attribute_type::string);
      a.s = v.auto_pad;
      t.node.attribute.push_back(a);
    } else {
      t.node.attribute.push_back(ints_attribute("pads", v.pads));
    }
    t.node.attribute.push_back(ints_attribute("strides", v.strides));
    t.node.attribute.push_back(ints_attribute("dilations", v.dilations));
    t.node.attribute.push_back(ints_attribute("kernel_shape", {wd[2], wd[3]}));
    pb::attribute_proto group;
    group.name = "group";
    group.type = static_cast<std::int32_t>(pb::attribute_type::int_);
    group.i = 2;
    t.node.attribute.push_back(group);

    std::vector<std::int64_t> yd;
    const std::vector<std::int32_t> y =
        conv_integer_direct(x, xd, w, wd, x_zp, w_zp, 2, v.auto_pad, v.pads, v.strides, v.dilations, &yd);
    t.values["x"] = make_tensor("x", xd, pb::data_type::uint8, x);
    t.values["w"] = make_tensor("w", wd, pb::data_type::int8, w);
    t.values["x_zero_point"] = make_tensor("x_zero_point", {}, pb::data_type::uint8, std::vector<std::uint8_t>{x_zp});
    t.values["w_zero_point"] = make_tensor("w_zero_point", {4}, pb::data_type::int8, std::vector<std::int8_t>(w_zp.begin(), w_zp.end()));
    t.expected = make_tensor("y", yd, pb::data_type::int32, y);
    std::string result;
    try {
      result = run_node(t);
    } catch (const std::exception& e) {
      result = e.what();
    }
    INFO(t.name << ", output " << shape_of(yd));
    if (!result.empty()) FAIL_CHECK(result);
    else SUCCEED("bit-exact");
  }
}

// The checks above are only worth something if a wrong answer fails them.
TEST_CASE("onnx conformance detects a perturbed expected output", "[onnx][self-check]") {
  node_test t;
  REQUIRE_NOTHROW(t = load_first_data_set("test_qlinearconv"));
  REQUIRE(run_node(t).empty());
  REQUIRE(t.expected.has_raw_data);
  REQUIRE(t.expected.raw_data.size() > 5);
  t.expected.raw_data[5] = static_cast<char>(t.expected.raw_data[5] ^ 1);
  const std::string diff = run_node(t);
  INFO(diff);
  CHECK(diff.find("1 of 49 elements differ; first at flat index 5 = [0,0,0,5]") != std::string::npos);
}

TEST_CASE("onnx conformance detects a perturbed input zero point", "[onnx][self-check]") {
  node_test t;
  REQUIRE_NOTHROW(t = load_first_data_set("test_convinteger_with_padding"));
  REQUIRE(run_node(t).empty());
  pb::tensor_proto& x_zp = t.values.at("x_zero_point");
  REQUIRE(x_zp.has_raw_data);
  x_zp.raw_data[0] = static_cast<char>(x_zp.raw_data[0] + 1);
  CHECK_FALSE(run_node(t).empty());
}

TEST_CASE("onnx conformance rejects attributes it does not understand", "[onnx][self-check]") {
  node_test t;
  REQUIRE_NOTHROW(t = load_first_data_set("test_convinteger_with_padding"));
  pb::attribute_proto extra;
  extra.name = "storage_order";
  extra.type = static_cast<std::int32_t>(pb::attribute_type::int_);
  t.node.attribute.push_back(extra);
  CHECK(error_of([&] { (void)run_node(t); }).find("attribute 'storage_order' is not supported") != std::string::npos);
  t.node.attribute.pop_back();
  t.node.attribute[0].type = static_cast<std::int32_t>(pb::attribute_type::int_);  // pads declared as INT
  CHECK(error_of([&] { (void)run_node(t); }).find("attribute 'pads' has type INT, expected INTS") != std::string::npos);
}

TEST_CASE("onnx_pb decodes packed and unpacked repeated fields", "[onnx_pb]") {
  // dims 2, 3 unpacked; data_type INT8; int32_data packed {-1, 5, -128, 127, 0, 1}: negative int32
  // values are 10-byte sign-extended varints.
  std::string msg = bytes({0x08, 0x02, 0x08, 0x03, 0x10, 0x03});
  const std::string run = bytes({0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,    // -1
                                 0x05,                                                          // 5
                                 0x80, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01,    // -128
                                 0x7F, 0x00, 0x01});                                            // 127, 0, 1
  msg += bytes({0x2A, static_cast<int>(run.size())}) + run;
  const pb::tensor_proto t = pb::parse_tensor(msg, "packed");
  CHECK(t.dims == std::vector<std::int64_t>{2, 3});
  CHECK(pb::tensor_values<std::int8_t>(t) == std::vector<std::int8_t>{-1, 5, -128, 127, 0, 1});

  // dims packed; uint8 values one int32_data field each; float raw_data little-endian.
  const pb::tensor_proto u = pb::parse_tensor(bytes({0x0A, 0x02, 0x01, 0x02, 0x10, 0x02, 0x28, 0xFF, 0x01, 0x28, 0x07}), "unpacked");
  CHECK(u.dims == std::vector<std::int64_t>{1, 2});
  CHECK(pb::tensor_values<std::uint8_t>(u) == std::vector<std::uint8_t>{255, 7});
  const pb::tensor_proto f = pb::parse_tensor(bytes({0x10, 0x01, 0x4A, 0x04, 0x00, 0x00, 0xC0, 0x3F}), "float");
  CHECK(f.dims.empty());
  CHECK(pb::tensor_values<float>(f) == std::vector<float>{1.5f});
  // float_data packed and unpacked.
  const pb::tensor_proto g = pb::parse_tensor(
      bytes({0x08, 0x02, 0x10, 0x01, 0x22, 0x04, 0x00, 0x00, 0x80, 0x3F, 0x25, 0x00, 0x00, 0x00, 0xC0}), "floats");
  CHECK(pb::tensor_values<float>(g) == std::vector<float>{1.0f, -2.0f});
  // Unknown fields of every wire type are skipped.
  const pb::tensor_proto k = pb::parse_tensor(
      bytes({0x18, 0x05, 0x31, 1, 2, 3, 4, 5, 6, 7, 8, 0x35, 1, 2, 3, 4, 0x32, 0x01, 0x41, 0x10, 0x02, 0x4A, 0x01, 0x09}), "skip");
  CHECK(pb::tensor_values<std::uint8_t>(k) == std::vector<std::uint8_t>{9});
}

// Every truncation and many single-byte corruptions of real files either parse or raise
// parse_error: no crash, no other exception, no read past the buffer (run under ASan).
TEST_CASE("onnx_pb survives truncated and corrupted files", "[onnx_pb]") {
  const std::string model_path = testdata_dir + "/test_qlinearconv/model.onnx";
  const std::string tensor_path = testdata_dir + "/test_qlinearconv/test_data_set_0/input_0.pb";
  if (!pb::file_exists(model_path)) FAIL(missing_data_message(model_path));
  const std::string files[] = {pb::read_file(model_path), pb::read_file(tensor_path)};
  std::size_t parsed = 0, rejected = 0;
  auto attempt = [&](const std::string& b, bool model) {
    try {
      if (model) {
        (void)pb::parse_model(b, "model");
      } else {
        const pb::tensor_proto t = pb::parse_tensor(b, "tensor");
        if (t.data_type == static_cast<std::int32_t>(pb::data_type::uint8)) (void)pb::tensor_values<std::uint8_t>(t);
      }
      ++parsed;
    } catch (const pb::parse_error&) {
      ++rejected;
    }
  };
  for (int f = 0; f < 2; ++f) {
    const std::string& bytes_f = files[f];
    for (std::size_t n = 0; n < bytes_f.size(); ++n) attempt(bytes_f.substr(0, n), f == 0);
    for (std::size_t i = 0; i < bytes_f.size(); ++i)
      for (int mask : {0x01, 0x80, 0xFF}) {
        std::string b = bytes_f;
        b[i] = static_cast<char>(b[i] ^ mask);
        attempt(b, f == 0);
      }
  }
  CHECK(parsed > 0);
  CHECK(rejected > 0);
}

TEST_CASE("onnx_pb rejects malformed input with a clear message", "[onnx_pb]") {
  auto parse_error_of = [](const std::string& b) { return error_of([&] { (void)pb::parse_tensor(b, "t.pb"); }); };
  auto values_error_of = [](const std::string& b) {
    return error_of([&] { (void)pb::tensor_values<std::uint8_t>(pb::parse_tensor(b, "t.pb")); });
  };
  CHECK(parse_error_of(bytes({0x08, 0x80})).find("t.pb: truncated varint (at byte 2)") != std::string::npos);
  CHECK(parse_error_of(bytes({0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02})).find("does not fit in 64 bits") !=
        std::string::npos);
  CHECK(parse_error_of(bytes({0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x81, 0x00})).find("does not fit") !=
        std::string::npos);
  CHECK(parse_error_of(bytes({0x4A, 0x05, 0x01})).find("length 5 runs past the end of the message (1 bytes left)") != std::string::npos);
  CHECK(parse_error_of(bytes({0x0D, 0x01, 0x00, 0x00, 0x00})).find("field 'dims' (1) has wire type fixed32, expected length-delimited") !=
        std::string::npos);
  CHECK(parse_error_of(bytes({0x35, 0x01, 0x02})).find("truncated fixed32") != std::string::npos);
  CHECK(parse_error_of(bytes({0x0B})).find("group") != std::string::npos);
  CHECK(parse_error_of(bytes({0x0E})).find("invalid wire type 6") != std::string::npos);
  CHECK(parse_error_of(bytes({0x00})).find("field number 0") != std::string::npos);
  CHECK(parse_error_of(bytes({0x22, 0x03, 0, 0, 0})).find("not a multiple of 4") != std::string::npos);
  CHECK(parse_error_of(bytes({0x10, 0x80, 0x80, 0x80, 0x80, 0x10})).find("does not fit in int32") != std::string::npos);
  CHECK(parse_error_of(bytes({0x70, 0x01})).find("external file") != std::string::npos);
  CHECK(values_error_of(bytes({0x08, 0x02, 0x10, 0x02, 0x4A, 0x01, 0x07})).find("raw_data holds 1 bytes, shape [2] of UINT8 needs 2 x 1") !=
        std::string::npos);
  CHECK(values_error_of(bytes({0x10, 0x02, 0x28, 0xAC, 0x02})).find("int32_data[0] = 300 is out of range for UINT8") != std::string::npos);
  CHECK(values_error_of(bytes({0x10, 0x03, 0x28, 0x01})).find("data type is INT8, expected UINT8") != std::string::npos);
  CHECK(values_error_of(bytes({0x08, 0x03, 0x10, 0x02, 0x28, 0x01})).find("int32_data holds 1 values, shape [3] needs 3") !=
        std::string::npos);
  CHECK(values_error_of(bytes({0x08, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x10, 0x02}))
            .find("negative dimension -1") != std::string::npos);
  CHECK(error_of([] { (void)pb::parse_model(bytes({0x08, 0x07}), "m.onnx"); }).find("m.onnx: ModelProto has no graph") != std::string::npos);
  CHECK(error_of([] { (void)pb::read_file("/nonexistent/npuq/model.onnx"); }).find("cannot open /nonexistent/npuq/model.onnx") !=
        std::string::npos);
}
