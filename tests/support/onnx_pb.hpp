// A small protobuf wire-format reader for the ONNX backend node tests.
//
// The conformance test reads ONNX models (model.onnx) and tensors (input_N.pb, output_0.pb)
// without a protobuf library, so this header decodes just the fields the test needs
// (ModelProto -> GraphProto -> NodeProto / AttributeProto, and TensorProto) and skips every
// other field by its wire type. Every read is bounds-checked; a malformed or unsupported file
// raises `parse_error` naming the message, the field and the byte offset, so a corrupt file
// fails the test loudly instead of turning into a wrong tensor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace npuq_test {
namespace onnx_pb {

class parse_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

enum class wire_type : std::uint8_t { varint = 0, fixed64 = 1, length_delimited = 2, start_group = 3, end_group = 4, fixed32 = 5 };

inline const char* to_string(wire_type t) {
  switch (t) {
    case wire_type::varint: return "varint";
    case wire_type::fixed64: return "fixed64";
    case wire_type::length_delimited: return "length-delimited";
    case wire_type::start_group: return "start-group";
    case wire_type::end_group: return "end-group";
    case wire_type::fixed32: return "fixed32";
  }
  return "?";
}

// One field header: number, wire type and the byte offset of its tag in the file.
struct field_header {
  std::uint32_t number = 0;
  wire_type type = wire_type::varint;
  std::size_t offset = 0;
};

// Cursor over one message's bytes. `base` is the offset of the first byte within the file, so
// errors report file offsets; `what` names the message ("model.onnx: NodeProto", ...).
class wire_reader {
 public:
  wire_reader(const unsigned char* data, std::size_t size, std::string what, std::size_t base = 0)
      : begin_(data), p_(data), end_(data + size), base_(base), what_(std::move(what)) {}

  bool done() const { return p_ == end_; }
  std::size_t offset() const { return base_ + static_cast<std::size_t>(p_ - begin_); }
  const std::string& what() const { return what_; }

  [[noreturn]] void fail(const std::string& msg) const {
    throw parse_error(what_ + ": " + msg + " (at byte " + std::to_string(offset()) + ")");
  }

  // Base-128 varint, at most 10 bytes; the 10th byte may only carry bit 63.
  std::uint64_t read_varint() {
    std::uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      if (p_ == end_) fail("truncated varint");
      const std::uint8_t b = *p_++;
      if (i == 9 && b > 1) fail("varint does not fit in 64 bits");
      v |= static_cast<std::uint64_t>(b & 0x7F) << (7 * i);
      if ((b & 0x80) == 0) return v;
    }
    fail("varint longer than 10 bytes");
  }

  std::uint32_t read_fixed32() {
    if (remaining() < 4) fail("truncated fixed32");
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(p_[i]) << (8 * i);
    p_ += 4;
    return v;
  }
  std::uint64_t read_fixed64() {
    if (remaining() < 8) fail("truncated fixed64");
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(p_[i]) << (8 * i);
    p_ += 8;
    return v;
  }

  // Next field header. Groups (wire types 3, 4) are deprecated and not used by ONNX.
  field_header read_header() {
    field_header h;
    h.offset = offset();
    const std::uint64_t tag = read_varint();
    if (tag > 0xFFFFFFFFu) fail("field tag " + std::to_string(tag) + " does not fit in 32 bits");
    const auto wt = static_cast<unsigned>(tag & 7u);
    h.number = static_cast<std::uint32_t>(tag >> 3);
    if (h.number == 0) fail("field number 0 is invalid");
    if (wt == 3 || wt == 4) fail("field " + std::to_string(h.number) + " uses a group (wire type " + std::to_string(wt) + "), not supported");
    if (wt > 5) fail("field " + std::to_string(h.number) + " has invalid wire type " + std::to_string(wt));
    h.type = static_cast<wire_type>(wt);
    return h;
  }

  // Length-delimited payload as a reader over its bytes.
  wire_reader read_message(const std::string& what) {
    const std::size_t n = read_length();
    wire_reader sub(p_, n, what_ + " > " + what, offset());
    p_ += n;
    return sub;
  }
  std::string read_bytes() {
    const std::size_t n = read_length();
    std::string s(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return s;
  }

  void skip(const field_header& h) {
    switch (h.type) {
      case wire_type::varint: (void)read_varint(); return;
      case wire_type::fixed64: (void)read_fixed64(); return;
      case wire_type::fixed32: (void)read_fixed32(); return;
      case wire_type::length_delimited: {
        const std::size_t n = read_length();
        p_ += n;
        return;
      }
      case wire_type::start_group:
      case wire_type::end_group: break;
    }
    fail("cannot skip field " + std::to_string(h.number));
  }

  void expect(const field_header& h, wire_type t, const char* name) const {
    if (h.type != t)
      fail(std::string("field '") + name + "' (" + std::to_string(h.number) + ") has wire type " + to_string(h.type) +
           ", expected " + to_string(t));
  }

  // Scalar int64 / int32 / enum fields (varint, two's complement for negative values).
  std::int64_t read_int64_field(const field_header& h, const char* name) {
    expect(h, wire_type::varint, name);
    return static_cast<std::int64_t>(read_varint());
  }
  std::int32_t read_int32_field(const field_header& h, const char* name) {
    expect(h, wire_type::varint, name);
    return to_int32(static_cast<std::int64_t>(read_varint()), name);
  }
  float read_float_field(const field_header& h, const char* name) {
    expect(h, wire_type::fixed32, name);
    return bits_to_float(read_fixed32());
  }
  std::string read_string_field(const field_header& h, const char* name) {
    expect(h, wire_type::length_delimited, name);
    return read_bytes();
  }

  // Repeated varint field, packed (one length-delimited run) or not (one value per field).
  void append_int64s(const field_header& h, const char* name, std::vector<std::int64_t>* out) {
    if (h.type == wire_type::varint) {
      out->push_back(static_cast<std::int64_t>(read_varint()));
      return;
    }
    expect(h, wire_type::length_delimited, name);
    wire_reader run = read_message(std::string("packed '") + name + "'");
    while (!run.done()) out->push_back(static_cast<std::int64_t>(run.read_varint()));
  }
  void append_int32s(const field_header& h, const char* name, std::vector<std::int32_t>* out) {
    std::vector<std::int64_t> wide;
    append_int64s(h, name, &wide);
    for (std::int64_t v : wide) out->push_back(to_int32(v, name));
  }
  // Repeated float field, packed (a multiple of 4 bytes) or not.
  void append_floats(const field_header& h, const char* name, std::vector<float>* out) {
    if (h.type == wire_type::fixed32) {
      out->push_back(bits_to_float(read_fixed32()));
      return;
    }
    expect(h, wire_type::length_delimited, name);
    wire_reader run = read_message(std::string("packed '") + name + "'");
    if (run.remaining() % 4 != 0) run.fail("packed float run of " + std::to_string(run.remaining()) + " bytes is not a multiple of 4");
    while (!run.done()) out->push_back(bits_to_float(run.read_fixed32()));
  }

  std::size_t remaining() const { return static_cast<std::size_t>(end_ - p_); }

 private:
  std::size_t read_length() {
    const std::uint64_t n = read_varint();
    if (n > remaining())
      fail("length " + std::to_string(n) + " runs past the end of the message (" + std::to_string(remaining()) + " bytes left)");
    return static_cast<std::size_t>(n);
  }
  std::int32_t to_int32(std::int64_t v, const char* name) const {
    if (v < std::numeric_limits<std::int32_t>::min() || v > std::numeric_limits<std::int32_t>::max())
      fail(std::string("field '") + name + "' value " + std::to_string(v) + " does not fit in int32");
    return static_cast<std::int32_t>(v);
  }
  static float bits_to_float(std::uint32_t u) {
    static_assert(sizeof(float) == 4, "IEEE binary32 float expected");
    float f;
    std::memcpy(&f, &u, sizeof f);
    return f;
  }

  const unsigned char* begin_;
  const unsigned char* p_;
  const unsigned char* end_;
  std::size_t base_;
  std::string what_;
};

// ---------------------------------------------------------------------------------------------
// TensorProto

// TensorProto.DataType values used by the quantized ops.
enum class data_type : std::int32_t { undefined = 0, float32 = 1, uint8 = 2, int8 = 3, int32 = 6, int64 = 7 };

inline std::string data_type_name(std::int32_t t) {
  switch (t) {
    case 0: return "UNDEFINED";
    case 1: return "FLOAT";
    case 2: return "UINT8";
    case 3: return "INT8";
    case 4: return "UINT16";
    case 5: return "INT16";
    case 6: return "INT32";
    case 7: return "INT64";
    case 8: return "STRING";
    case 9: return "BOOL";
    case 10: return "FLOAT16";
    case 11: return "DOUBLE";
    case 12: return "UINT32";
    case 13: return "UINT64";
    default: return "data_type " + std::to_string(t);
  }
}

struct tensor_proto {
  std::vector<std::int64_t> dims;  // empty: scalar
  std::int32_t data_type = 0;
  std::vector<float> float_data;
  std::vector<std::int32_t> int32_data;  // also holds uint8 / int8 values
  std::vector<std::int64_t> int64_data;
  std::string name;
  std::string raw_data;  // little-endian elements
  bool has_raw_data = false;
  std::string source;  // file or message it came from, for messages

  // Product of dims (1 for a scalar); rejects negative extents and overflow.
  std::int64_t element_count() const {
    std::int64_t n = 1;
    for (std::int64_t d : dims) {
      if (d < 0) throw parse_error(label() + ": negative dimension " + std::to_string(d) + " in shape " + shape_string());
      if (d != 0 && n > std::numeric_limits<std::int64_t>::max() / d)
        throw parse_error(label() + ": element count of shape " + shape_string() + " overflows");
      n *= d;
    }
    return n;
  }
  std::string shape_string() const {
    std::string s = "[";
    for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? "," : "") + std::to_string(dims[i]);
    return s + "]";
  }
  std::string label() const { return source + (name.empty() ? "" : " '" + name + "'"); }
};

inline tensor_proto parse_tensor(wire_reader r) {
  tensor_proto t;
  t.source = r.what();
  while (!r.done()) {
    const field_header h = r.read_header();
    switch (h.number) {
      case 1: r.append_int64s(h, "dims", &t.dims); break;
      case 2: t.data_type = r.read_int32_field(h, "data_type"); break;
      case 4: r.append_floats(h, "float_data", &t.float_data); break;
      case 5: r.append_int32s(h, "int32_data", &t.int32_data); break;
      case 7: r.append_int64s(h, "int64_data", &t.int64_data); break;
      case 8: t.name = r.read_string_field(h, "name"); break;
      case 9:
        t.raw_data = r.read_string_field(h, "raw_data");
        t.has_raw_data = true;
        break;
      case 13:  // external_data
        r.fail("tensor '" + t.name + "' keeps its data in an external file, not supported");
      case 14:  // data_location
        if (r.read_int64_field(h, "data_location") != 0)
          r.fail("tensor '" + t.name + "' keeps its data in an external file, not supported");
        break;
      default: r.skip(h); break;
    }
  }
  return t;
}

inline tensor_proto parse_tensor(const std::string& bytes, const std::string& what) {
  return parse_tensor(wire_reader(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), what));
}

namespace detail {

template <class T>
constexpr std::int32_t data_type_of() {
  if (std::is_same<T, float>::value) return static_cast<std::int32_t>(data_type::float32);
  if (std::is_same<T, std::uint8_t>::value) return static_cast<std::int32_t>(data_type::uint8);
  if (std::is_same<T, std::int8_t>::value) return static_cast<std::int32_t>(data_type::int8);
  if (std::is_same<T, std::int32_t>::value) return static_cast<std::int32_t>(data_type::int32);
  if (std::is_same<T, std::int64_t>::value) return static_cast<std::int32_t>(data_type::int64);
  return -1;
}

// Element i of little-endian raw data.
template <class T>
T load_le(const std::string& raw, std::size_t i) {
  using U = std::conditional_t<sizeof(T) == 1, std::uint8_t,
                               std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>;
  U u = 0;
  for (std::size_t b = 0; b < sizeof(T); ++b)
    u |= static_cast<U>(static_cast<U>(static_cast<unsigned char>(raw[i * sizeof(T) + b])) << (8 * b));
  T v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// Typed-field values converted to T, range-checked for the integer types.
template <class T, class S>
std::vector<T> narrow_typed(const tensor_proto& t, const std::vector<S>& src, const char* field) {
  std::vector<T> out;
  out.reserve(src.size());
  for (std::size_t i = 0; i < src.size(); ++i) {
    const S v = src[i];
    if constexpr (std::is_integral<T>::value && sizeof(T) < sizeof(S)) {
      if (v < static_cast<S>(std::numeric_limits<T>::min()) || v > static_cast<S>(std::numeric_limits<T>::max()))
        throw parse_error(t.label() + ": " + field + "[" + std::to_string(i) + "] = " + std::to_string(v) +
                          " is out of range for " + data_type_name(t.data_type));
    }
    out.push_back(static_cast<T>(v));
  }
  return out;
}

}  // namespace detail

// The tensor's elements in storage order (row-major over dims). The data type must be exactly T's;
// values come from raw_data or from the typed field ONNX uses for T (int32_data for 8-bit types).
template <class T>
std::vector<T> tensor_values(const tensor_proto& t) {
  constexpr std::int32_t want = detail::data_type_of<T>();
  static_assert(want >= 0, "tensor_values: T must be float, uint8_t, int8_t, int32_t or int64_t");
  if (t.data_type != want)
    throw parse_error(t.label() + ": data type is " + data_type_name(t.data_type) + ", expected " + data_type_name(want));
  const std::int64_t count = t.element_count();
  const std::size_t typed = t.float_data.size() + t.int32_data.size() + t.int64_data.size();
  std::vector<T> out;
  if (t.has_raw_data) {
    if (typed != 0) throw parse_error(t.label() + ": has both raw_data and typed data fields");
    // Compared by division so a huge shape cannot overflow into a match.
    if (t.raw_data.size() % sizeof(T) != 0 || static_cast<std::uint64_t>(t.raw_data.size() / sizeof(T)) != static_cast<std::uint64_t>(count))
      throw parse_error(t.label() + ": raw_data holds " + std::to_string(t.raw_data.size()) + " bytes, shape " + t.shape_string() +
                        " of " + data_type_name(t.data_type) + " needs " + std::to_string(count) + " x " + std::to_string(sizeof(T)));
    out.resize(static_cast<std::size_t>(count));
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = detail::load_le<T>(t.raw_data, i);
    return out;
  }
  const char* field = "";
  if constexpr (std::is_same<T, float>::value) {
    field = "float_data";
    if (t.int32_data.size() + t.int64_data.size() != 0) throw parse_error(t.label() + ": FLOAT tensor stores data in an integer field");
    out = t.float_data;
  } else if constexpr (std::is_same<T, std::int64_t>::value) {
    field = "int64_data";
    if (t.float_data.size() + t.int32_data.size() != 0) throw parse_error(t.label() + ": INT64 tensor stores data outside int64_data");
    out = t.int64_data;
  } else {
    field = "int32_data";
    if (t.float_data.size() + t.int64_data.size() != 0)
      throw parse_error(t.label() + ": " + data_type_name(want) + " tensor stores data outside int32_data");
    out = detail::narrow_typed<T>(t, t.int32_data, field);
  }
  if (static_cast<std::int64_t>(out.size()) != count)
    throw parse_error(t.label() + ": " + field + " holds " + std::to_string(out.size()) + " values, shape " + t.shape_string() +
                      " needs " + std::to_string(count));
  return out;
}

// Elements of any integer tensor (UINT8, INT8, INT32, INT64) widened to int64.
inline std::vector<std::int64_t> integer_values(const tensor_proto& t) {
  auto widen = [](const auto& v) { return std::vector<std::int64_t>(v.begin(), v.end()); };
  switch (t.data_type) {
    case static_cast<std::int32_t>(data_type::uint8): return widen(tensor_values<std::uint8_t>(t));
    case static_cast<std::int32_t>(data_type::int8): return widen(tensor_values<std::int8_t>(t));
    case static_cast<std::int32_t>(data_type::int32): return widen(tensor_values<std::int32_t>(t));
    case static_cast<std::int32_t>(data_type::int64): return tensor_values<std::int64_t>(t);
    default: throw parse_error(t.label() + ": data type " + data_type_name(t.data_type) + " is not an integer type");
  }
}

// ---------------------------------------------------------------------------------------------
// ModelProto / GraphProto / NodeProto / AttributeProto

// AttributeProto.AttributeType values.
enum class attribute_type : std::int32_t { undefined = 0, float_ = 1, int_ = 2, string = 3, tensor = 4, graph = 5, floats = 6, ints = 7, strings = 8 };

inline std::string attribute_type_name(std::int32_t t) {
  switch (t) {
    case 0: return "UNDEFINED";
    case 1: return "FLOAT";
    case 2: return "INT";
    case 3: return "STRING";
    case 4: return "TENSOR";
    case 5: return "GRAPH";
    case 6: return "FLOATS";
    case 7: return "INTS";
    case 8: return "STRINGS";
    default: return "attribute type " + std::to_string(t);
  }
}

struct attribute_proto {
  std::string name;
  std::int32_t type = 0;  // attribute_type
  float f = 0.0f;
  std::int64_t i = 0;
  std::string s;
  std::vector<float> floats;
  std::vector<std::int64_t> ints;
  bool has_f = false, has_i = false, has_s = false;
};

struct node_proto {
  std::vector<std::string> input;  // "" marks an omitted optional input
  std::vector<std::string> output;
  std::string name;
  std::string op_type;
  std::string domain;
  std::vector<attribute_proto> attribute;

  const attribute_proto* find_attribute(const std::string& n) const {
    for (const attribute_proto& a : attribute)
      if (a.name == n) return &a;
    return nullptr;
  }
};

struct graph_proto {
  std::string name;
  std::vector<node_proto> node;
  std::vector<tensor_proto> initializer;
  std::vector<std::string> input;   // ValueInfoProto names, in order (input_N.pb is input[N])
  std::vector<std::string> output;  // ValueInfoProto names (output_N.pb is output[N])
};

struct opset_id {
  std::string domain;
  std::int64_t version = 0;
};

struct model_proto {
  std::int64_t ir_version = 0;
  std::vector<opset_id> opset_import;
  graph_proto graph;
  bool has_graph = false;
};

inline attribute_proto parse_attribute(wire_reader r) {
  attribute_proto a;
  while (!r.done()) {
    const field_header h = r.read_header();
    switch (h.number) {
      case 1: a.name = r.read_string_field(h, "name"); break;
      case 2:
        a.f = r.read_float_field(h, "f");
        a.has_f = true;
        break;
      case 3:
        a.i = r.read_int64_field(h, "i");
        a.has_i = true;
        break;
      case 4:
        a.s = r.read_string_field(h, "s");
        a.has_s = true;
        break;
      case 7: r.append_floats(h, "floats", &a.floats); break;
      case 8: r.append_int64s(h, "ints", &a.ints); break;
      case 20: a.type = r.read_int32_field(h, "type"); break;
      default: r.skip(h); break;  // t, g, strings, tensors, graphs, doc_string, ...
    }
  }
  return a;
}

inline node_proto parse_node(wire_reader r) {
  node_proto n;
  while (!r.done()) {
    const field_header h = r.read_header();
    switch (h.number) {
      case 1: n.input.push_back(r.read_string_field(h, "input")); break;
      case 2: n.output.push_back(r.read_string_field(h, "output")); break;
      case 3: n.name = r.read_string_field(h, "name"); break;
      case 4: n.op_type = r.read_string_field(h, "op_type"); break;
      case 5:
        r.expect(h, wire_type::length_delimited, "attribute");
        n.attribute.push_back(parse_attribute(r.read_message("AttributeProto")));
        break;
      case 7: n.domain = r.read_string_field(h, "domain"); break;
      default: r.skip(h); break;
    }
  }
  return n;
}

// ValueInfoProto: only the name (field 1) is needed.
inline std::string parse_value_info_name(wire_reader r) {
  std::string name;
  while (!r.done()) {
    const field_header h = r.read_header();
    if (h.number == 1) name = r.read_string_field(h, "name");
    else r.skip(h);
  }
  return name;
}

inline graph_proto parse_graph(wire_reader r) {
  graph_proto g;
  while (!r.done()) {
    const field_header h = r.read_header();
    switch (h.number) {
      case 1:
        r.expect(h, wire_type::length_delimited, "node");
        g.node.push_back(parse_node(r.read_message("NodeProto #" + std::to_string(g.node.size()))));
        break;
      case 2: g.name = r.read_string_field(h, "name"); break;
      case 5:
        r.expect(h, wire_type::length_delimited, "initializer");
        g.initializer.push_back(parse_tensor(r.read_message("initializer #" + std::to_string(g.initializer.size()))));
        break;
      case 11:
        r.expect(h, wire_type::length_delimited, "input");
        g.input.push_back(parse_value_info_name(r.read_message("input ValueInfoProto")));
        break;
      case 12:
        r.expect(h, wire_type::length_delimited, "output");
        g.output.push_back(parse_value_info_name(r.read_message("output ValueInfoProto")));
        break;
      default: r.skip(h); break;
    }
  }
  return g;
}

inline model_proto parse_model(wire_reader r) {
  model_proto m;
  while (!r.done()) {
    const field_header h = r.read_header();
    switch (h.number) {
      case 1: m.ir_version = r.read_int64_field(h, "ir_version"); break;
      case 7:
        r.expect(h, wire_type::length_delimited, "graph");
        if (m.has_graph) r.fail("ModelProto has more than one graph field");
        m.graph = parse_graph(r.read_message("GraphProto"));
        m.has_graph = true;
        break;
      case 8: {
        r.expect(h, wire_type::length_delimited, "opset_import");
        wire_reader o = r.read_message("OperatorSetIdProto");
        opset_id id;
        while (!o.done()) {
          const field_header oh = o.read_header();
          if (oh.number == 1) id.domain = o.read_string_field(oh, "domain");
          else if (oh.number == 2) id.version = o.read_int64_field(oh, "version");
          else o.skip(oh);
        }
        m.opset_import.push_back(id);
        break;
      }
      default: r.skip(h); break;
    }
  }
  if (!m.has_graph) throw parse_error(r.what() + ": ModelProto has no graph");
  return m;
}

inline model_proto parse_model(const std::string& bytes, const std::string& what) {
  return parse_model(wire_reader(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), what));
}

// Whole file as bytes; throws parse_error naming the path when it cannot be read.
inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw parse_error("cannot open " + path);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw parse_error("error reading " + path);
  return bytes;
}

inline bool file_exists(const std::string& path) { return static_cast<bool>(std::ifstream(path, std::ios::binary)); }

}  // namespace onnx_pb
}  // namespace npuq_test
