// Packed int4 conversion.
//
// int4 tensors are stored two values per byte, two's complement, element 2i in the low nibble
// (TFLite, TOSA, CMSIS-NN, ONNX). TensorView<int4> reads and writes them directly; these helpers
// convert whole tensors between int8 and int4 views of any layout, rejecting values that do not
// fit (the TFLite range is [-8, 7]; TOSA's symmetric range [-7, 7] is checked with `symmetric`).
#pragma once

#include <cstdint>
#include <string>

#include "npuq/core/tensor.hpp"

namespace npuq {

// dst (int4) = src (int8), elementwise over the same logical shape.
inline status pack_int4(const TensorView<const std::int8_t>& src, const TensorView<int4>& dst, bool symmetric = false) {
  NPUQ_RETURN_IF_ERROR(src.validate("src"));
  NPUQ_RETURN_IF_ERROR(dst.validate("dst"));
  if (src.layout().shape_string() != dst.layout().shape_string())
    return {errc::invalid_shape, "dst: shape " + dst.layout().shape_string() + " differs from src " + src.layout().shape_string()};
  if (!dst.layout().is_non_overlapping()) return {errc::invalid_layout, "dst: layout maps two elements to one nibble"};
  if (overlaps(src, dst)) return {errc::aliasing, "dst: memory overlaps src"};
  const int lo = symmetric ? -7 : -8;
  status bad;
  std::int64_t logical = 0;  // row-major position of the element in the logical shape
  for_each_index(src.layout(), [&](const std::int64_t* i) {
    const int v = src.load(src.offset() + src.layout().offset_of(i));
    if (bad.ok() && (v < lo || v > 7))
      bad = {errc::invalid_argument, "src: value " + std::to_string(v) + " at logical index " + std::to_string(logical) +
                                         " is outside the int4 range [" + std::to_string(lo) + ", 7]"};
    ++logical;
  });
  if (!bad.ok()) return bad;
  detail::copy_elements(src, dst);
  return {};
}

// Checks that every value of an int4 view lies in `range` (int4_range::full accepts every
// nibble; int4_range::symmetric rejects -8, naming the first offending index).
inline status check_int4_range(const TensorView<const int4>& v, int4_range range, const char* name) {
  if (range == int4_range::full) return {};
  status bad;
  for_each_index(v.layout(), [&](const std::int64_t* i) {
    if (!bad.ok() || v.load(v.offset() + v.layout().offset_of(i)) >= int4_min(range)) return;
    std::string at;
    for (int d = 0; d < v.rank(); ++d) at += (d ? ", " : "") + std::to_string(i[d]);
    bad = {errc::invalid_argument, std::string(name) + ": value -8 at [" + at + "] is outside the symmetric int4 range " +
                                       to_string(range) + " (TOSA); use int4_range::full for TFLite's [-8, 7]"};
  });
  return bad;
}

// dst (int8) = src (int4), elementwise over the same logical shape.
inline status unpack_int4(const TensorView<const int4>& src, const TensorView<std::int8_t>& dst) {
  NPUQ_RETURN_IF_ERROR(src.validate("src"));
  NPUQ_RETURN_IF_ERROR(dst.validate("dst"));
  if (src.layout().shape_string() != dst.layout().shape_string())
    return {errc::invalid_shape, "dst: shape " + dst.layout().shape_string() + " differs from src " + src.layout().shape_string()};
  if (!dst.layout().is_non_overlapping()) return {errc::invalid_layout, "dst: layout maps two elements to one address"};
  if (overlaps(src, dst)) return {errc::aliasing, "dst: memory overlaps src"};
  detail::copy_elements(src, dst);
  return {};
}

}  // namespace npuq
