// The digits models (tools/digits) run by the ONNX runner on every backend, bit for bit against
// ONNX Runtime.
//
// Why this exists: npuq's ops are checked on random tensors elsewhere; this checks a real trained
// int8 network end to end. The model, the test split and ONNX Runtime's outputs (every layer's
// output for the first images, the graph outputs for the whole split) are committed under
// tests/data/digits (made by tools/digits/make_digits_models.py and tools/digits/ort_reference.sh),
// so the test needs neither PyTorch nor ONNX Runtime. Every softmax (the transformer's
// com.microsoft QLinearSoftmax, and the DequantizeLinear -> Softmax -> QuantizeLinear chains ORT
// fuses into it) runs npuq's onnxruntime_qlinear contract, so everything is compared exactly.
#include "support/catch.hpp"

#include <map>
#include <string>
#include <vector>

#include "onnx_runner/onnx_model.hpp"

namespace run = npuq_tools::onnx_run;
namespace pb = npuq_test::onnx_pb;

namespace {

const std::string data_dir = NPUQ_DIGITS_DATA_DIR;

// Every reference file ort/<model>/<prefix><value>.pb, by value name.
std::map<std::string, run::value> references(const std::string& model, const std::string& prefix, const run::model& m) {
  std::map<std::string, run::value> out;
  std::vector<std::string> names{m.input};
  for (const run::layer& l : m.layers) names.push_back(l.output);
  for (const std::string& n : names) {
    const std::string path = data_dir + "/ort/" + model + "/" + prefix + n + ".pb";
    if (pb::file_exists(path)) out[n] = run::load_int8(path);
  }
  return out;
}

// Number of elements that differ ("shape" when the shapes do).
std::string difference(const run::value& got, const run::value& want) {
  if (got.dims != want.dims) return "shape " + run::shape_string(got.dims) + ", ONNX Runtime " + run::shape_string(want.dims);
  std::size_t bad = 0, first = 0;
  for (std::size_t i = 0; i < want.data.size(); ++i)
    if (got.data[i] != want.data[i] && bad++ == 0) first = i;
  if (bad == 0) return {};
  return std::to_string(bad) + " of " + std::to_string(want.data.size()) + " values differ, first at flat index " + std::to_string(first) +
         ": npuq " + std::to_string(got.data[first]) + ", ONNX Runtime " + std::to_string(want.data[first]);
}

template <class Backend>
void check_model(const std::string& model, const Backend& backend, const std::string& label) {
  const run::model m = run::load_model(data_dir + "/" + model + ".onnx");
  const run::value images = run::load_int8(data_dir + "/test_images.pb");
  const std::vector<std::int64_t> labels =
      pb::tensor_values<std::int64_t>(pb::parse_tensor(pb::read_file(data_dir + "/test_labels.pb"), "test_labels.pb"));
  REQUIRE(images.dims.size() == 4);
  REQUIRE(static_cast<std::int64_t>(labels.size()) == images.dims[0]);

  // Every layer, first images.
  const std::map<std::string, run::value> layer_refs = references(model, "layers_", m);
  REQUIRE(layer_refs.size() >= m.layers.size());  // every layer's output has a reference
  const std::int64_t few = layer_refs.begin()->second.dims.at(0);
  const std::map<std::string, run::value> few_values = run::run(backend, m, run::slice_batch(images, 0, few));
  for (const auto& ref : layer_refs) {
    INFO(label << ": " << model << " value '" << ref.first << "' for the first " << few << " images");
    CHECK(difference(few_values.at(ref.first), ref.second) == "");
  }

  // Graph outputs, whole split: equal to ONNX Runtime's everywhere.
  const std::map<std::string, run::value> full_refs = references(model, "full_", m);
  REQUIRE(full_refs.size() == m.outputs.size());
  const std::map<std::string, run::value> own = run::run(backend, m, images);
  for (const std::string& out : m.outputs) {
    INFO(label << ": " << model << " output '" << out << "' for all " << images.dims[0] << " images");
    CHECK(difference(own.at(out), full_refs.at(out)) == "");
  }
  // The classifier works on npuq's own results: argmax accuracy on the test split.
  const std::vector<std::int64_t> pred = run::argmax_rows(own.at(m.outputs.at(0)));
  std::size_t right = 0;
  for (std::size_t i = 0; i < pred.size(); ++i) right += pred[i] == labels[i] ? 1 : 0;
  INFO(label << ": " << model << " accuracy " << right << " / " << pred.size());
  CHECK(right == (model == "digits_cnn" ? 348u : 340u));  // tests/data/digits/ort/*/accuracy.txt
}

void check_on_every_backend(const std::string& model) {
  check_model(model, npuq::scalar, "scalar");
  check_model(model, npuq::simd, std::string("simd ") + npuq::to_string(npuq::simd.level()));
  int presets = 0;
  for (const std::string& name : npuq::npu::presets::names()) {
    npuq::npu::profile p;
    REQUIRE(npuq::npu::presets::by_name(name, &p).ok());
    if (!run::preset_runs_onnx_numerics(p)) continue;  // tflite / q31 presets fix other numerics
    npuq::npu::emulator emu(p);
    check_model(model, emu, "npu " + name);
    CHECK(!emu.ops().empty());
    ++presets;
  }
  CHECK(presets >= 3);
}

}  // namespace

TEST_CASE("digits CNN equals ONNX Runtime on every backend", "[onnx][digits]") { check_on_every_backend("digits_cnn"); }

TEST_CASE("the runner names a node it cannot map", "[onnx][digits]") {
  std::string bytes = pb::read_file(data_dir + "/digits_cnn.onnx");
  const std::size_t at = bytes.find("QLinearMatMul");
  REQUIRE(at != std::string::npos);
  bytes.replace(at, 13, "MatMulInteger");  // same length: the protobuf stays well-formed
  std::string error;
  try {
    (void)run::load_model_bytes(bytes, "edited.onnx");
  } catch (const run::unsupported_model& e) {
    error = e.what();
  }
  INFO(error);
  CHECK(error.find("node 'fc' (MatMulInteger): npuq has no mapping for this node") != std::string::npos);
}

TEST_CASE("the comparison sees a one-value change in ONNX Runtime's output", "[onnx][digits]") {
  const run::model m = run::load_model(data_dir + "/digits_cnn.onnx");
  const run::value images = run::load_int8(data_dir + "/test_images.pb");
  const std::map<std::string, run::value> values = run::run(npuq::scalar, m, run::slice_batch(images, 0, 4));
  run::value ref = run::load_int8(data_dir + "/ort/digits_cnn/layers_dw_out.pb");
  REQUIRE(difference(values.at("dw_out"), ref).empty());
  ref.data[7] = static_cast<std::int8_t>(ref.data[7] ^ 1);
  CHECK(difference(values.at("dw_out"), ref).rfind("1 of ", 0) == 0);
}

TEST_CASE("digits transformer equals ONNX Runtime on every backend", "[onnx][digits]") { check_on_every_backend("digits_transformer"); }
