// GGUF metadata values (io/gguf.h).
#include "io/gguf.h"

#include "common/error.h"

namespace sr {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "GGUF fields and ggml blocks are read and written as host-order little-endian");

std::string gguf_value_type_name(GgufValueType type) {
  static const char* const kNames[kGgufValueTypeEnd] = {"u8",  "i8",   "u16", "i16", "u32",
                                                        "i32", "f32",  "bool", "str", "arr",
                                                        "u64", "i64",  "f64"};
  const auto id = uint32_t(type);
  return id < kGgufValueTypeEnd ? kNames[id] : "type(" + std::to_string(id) + ")";
}

size_t gguf_scalar_size(GgufValueType type) {
  switch (type) {
    case GgufValueType::kUint8:
    case GgufValueType::kInt8:
    case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16:
    case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32:
    case GgufValueType::kInt32:
    case GgufValueType::kFloat32: return 4;
    case GgufValueType::kUint64:
    case GgufValueType::kInt64:
    case GgufValueType::kFloat64: return 8;
    case GgufValueType::kString:
    case GgufValueType::kArray: return 0;
  }
  return 0;
}

std::string GgufValue::type_name() const {
  if (!is_array_) return gguf_value_type_name(elem_);
  return "arr[" + gguf_value_type_name(elem_) + "]";
}

GgufValue GgufValue::from_parts(GgufValueType elem, bool is_array, uint64_t count,
                                std::vector<uint8_t> bytes, std::vector<std::string> strings) {
  const bool is_string = elem == GgufValueType::kString;
  SR_CHECK(uint32_t(elem) < kGgufValueTypeEnd && elem != GgufValueType::kArray,
           "[gguf] invalid metadata element type ", uint32_t(elem));
  SR_CHECK(is_array || count == 1, "[gguf] a scalar metadata value holds one element, got ", count);
  SR_CHECK(is_string ? (strings.size() == count && bytes.empty())
                     : (bytes.size() == count * gguf_scalar_size(elem) && strings.empty()),
           "[gguf] metadata value of type ", gguf_value_type_name(elem), " with ", count,
           " elements has ", bytes.size(), " bytes and ", strings.size(), " strings");
  GgufValue v;
  v.elem_ = elem;
  v.is_array_ = is_array;
  v.count_ = count;
  v.bytes_ = std::move(bytes);
  v.strings_ = std::move(strings);
  return v;
}

void GgufValue::check_type(GgufValueType want, bool want_array, const std::string& context) const {
  if (elem_ == want && is_array_ == want_array) return;
  const std::string wanted =
      want_array ? "arr[" + gguf_value_type_name(want) + "]" : gguf_value_type_name(want);
  fail(context, " is ", type_name(), ", expected ", wanted);
}

}  // namespace sr
