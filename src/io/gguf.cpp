// GGUF metadata values (io/gguf.h).
#include "io/gguf.h"

#include "common/error.h"

namespace sr {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "GGUF fields and ggml blocks are read and written as host-order little-endian");

namespace {

// One row per value type, in ID order: its name in messages and the bytes of one scalar
// (0 for string and array).
struct ValueTypeRow {
  const char* name;
  size_t size;
};
constexpr ValueTypeRow kValueTypes[kGgufValueTypeEnd] = {
    {"u8", 1},  {"i8", 1},  {"u16", 2},   {"i16", 2}, {"u32", 4}, {"i32", 4}, {"f32", 4},
    {"bool", 1}, {"str", 0}, {"arr", 0}, {"u64", 8}, {"i64", 8}, {"f64", 8}};

}  // namespace

std::string gguf_value_type_name(GgufValueType type) {
  const auto id = uint32_t(type);
  return id < kGgufValueTypeEnd ? kValueTypes[id].name : "type(" + std::to_string(id) + ")";
}

size_t gguf_scalar_size(GgufValueType type) {
  const auto id = uint32_t(type);
  return id < kGgufValueTypeEnd ? kValueTypes[id].size : 0;
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
