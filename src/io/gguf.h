// GGUF: the container llama.cpp loads. This header holds the byte grammar and the
// metadata value type shared by io/gguf_reader.h and io/gguf_writer.h.
//
// Grammar (little-endian; ggml/docs/gguf.md and ggml/src/gguf.cpp of llama.cpp c392e50):
//   file        := header kv{n_kv} tensor_info{n_tensors} pad data
//   header      := "GGUF" version:u32 n_tensors:u64 n_kv:u64      (version 2 or 3;
//                  v1 used u32 counts and is not supported; v2 and v3 share this layout)
//   kv          := key:string value_type:u32 value
//   value       := u8 | i8 | u16 | i16 | u32 | i32 | f32 | bool | string | u64 | i64 | f64
//                | array := elem_type:u32 count:u64 value{count}      (elements are not arrays)
//   bool        := one byte, 0 or 1
//   string      := length:u64 bytes{length}                          (UTF-8, no terminator)
//   tensor_info := name:string n_dims:u32 ne:i64{n_dims} type:u32 offset:u64
//                  ne is innermost first (ne[0] = row length); type is a ggml type id
//                  (quant/formats/ggml_types.h); offset is relative to the data section
//                  and a multiple of the alignment.
//   pad         := zero bytes up to the next multiple of the alignment
//   data        := the tensor bytes; llama.cpp writes them in tensor_info order, each
//                  padded with zeros to the alignment.
// The alignment is the u32 metadata key "general.alignment" (a power of two), 32 if absent.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace sr {

constexpr uint32_t kGgufDefaultAlignment = 32;
constexpr const char* kGgufAlignmentKey = "general.alignment";
constexpr size_t kGgufMaxTensorName = 63;  // ggml's GGML_MAX_NAME (64) minus the terminator

// Frozen IDs of the GGUF value types (gguf_type); a test asserts them.
enum class GgufValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
constexpr uint32_t kGgufValueTypeEnd = 13;

// "u32", "str", "arr[f32]" style names used in messages.
std::string gguf_value_type_name(GgufValueType type);
// Bytes of one scalar of `type` (0 for string and array).
size_t gguf_scalar_size(GgufValueType type);

// The C++ type that holds each GGUF scalar type (bool <-> kBool, std::string <-> kString).
template <typename T>
struct GgufTypeOf;
#define SR_GGUF_TYPE_OF(T, V) \
  template <>                 \
  struct GgufTypeOf<T> {      \
    static constexpr GgufValueType value = GgufValueType::V; \
  }
SR_GGUF_TYPE_OF(uint8_t, kUint8);
SR_GGUF_TYPE_OF(int8_t, kInt8);
SR_GGUF_TYPE_OF(uint16_t, kUint16);
SR_GGUF_TYPE_OF(int16_t, kInt16);
SR_GGUF_TYPE_OF(uint32_t, kUint32);
SR_GGUF_TYPE_OF(int32_t, kInt32);
SR_GGUF_TYPE_OF(float, kFloat32);
SR_GGUF_TYPE_OF(bool, kBool);
SR_GGUF_TYPE_OF(std::string, kString);
SR_GGUF_TYPE_OF(uint64_t, kUint64);
SR_GGUF_TYPE_OF(int64_t, kInt64);
SR_GGUF_TYPE_OF(double, kFloat64);
#undef SR_GGUF_TYPE_OF

// One metadata value: a scalar, a string, or an array of scalars or strings.
// Numbers and bools are kept as their little-endian file bytes.
class GgufValue {
 public:
  GgufValue() = default;

  template <typename T>
  static GgufValue scalar(const T& v);
  template <typename T>
  static GgufValue array(const std::vector<T>& v);
  static GgufValue string(std::string s) { return scalar(s); }

  bool is_array() const { return is_array_; }
  // The scalar type, or the element type of an array.
  GgufValueType elem_type() const { return elem_; }
  // kArray for arrays, otherwise elem_type().
  GgufValueType type() const { return is_array_ ? GgufValueType::kArray : elem_; }
  uint64_t count() const { return count_; }  // 1 for scalars
  std::string type_name() const;             // "u32", "arr[str]"

  // Typed access. Throws sr::Error "<context>: is <actual>, expected <T>" when the
  // stored type differs (no conversions, not even u32 -> u64).
  template <typename T>
  T as(const std::string& context) const;
  template <typename T>
  std::vector<T> as_array(const std::string& context) const;

  // Raw storage, for the reader and writer.
  const std::vector<uint8_t>& bytes() const { return bytes_; }
  const std::vector<std::string>& strings() const { return strings_; }
  static GgufValue from_parts(GgufValueType elem, bool is_array, uint64_t count,
                              std::vector<uint8_t> bytes, std::vector<std::string> strings);

  bool operator==(const GgufValue& o) const {
    return elem_ == o.elem_ && is_array_ == o.is_array_ && count_ == o.count_ && bytes_ == o.bytes_ &&
           strings_ == o.strings_;
  }

 private:
  void check_type(GgufValueType want, bool want_array, const std::string& context) const;
  template <typename T>
  T element(uint64_t i) const;  // REQUIRES: i < count_ and T the stored type

  GgufValueType elem_ = GgufValueType::kUint8;
  bool is_array_ = false;
  uint64_t count_ = 0;
  std::vector<uint8_t> bytes_;        // count * scalar size (numbers, bools)
  std::vector<std::string> strings_;  // count strings (string values)
};

// ---- template definitions ---------------------------------------------------------------

template <typename T>
GgufValue GgufValue::array(const std::vector<T>& v) {
  GgufValue out;
  out.elem_ = GgufTypeOf<T>::value;
  out.is_array_ = true;
  out.count_ = v.size();
  if constexpr (std::is_same_v<T, std::string>) {
    out.strings_ = v;
  } else if constexpr (std::is_same_v<T, bool>) {
    for (bool b : v) out.bytes_.push_back(b ? 1 : 0);
  } else {
    out.bytes_.resize(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(out.bytes_.data(), v.data(), out.bytes_.size());
  }
  return out;
}

template <typename T>
GgufValue GgufValue::scalar(const T& v) {
  GgufValue out = array(std::vector<T>{v});
  out.is_array_ = false;
  return out;
}

template <typename T>
T GgufValue::element(uint64_t i) const {
  if constexpr (std::is_same_v<T, std::string>) {
    return strings_[size_t(i)];
  } else if constexpr (std::is_same_v<T, bool>) {
    return bytes_[size_t(i)] != 0;
  } else {
    T v;
    std::memcpy(&v, bytes_.data() + i * sizeof(T), sizeof(T));
    return v;
  }
}

template <typename T>
T GgufValue::as(const std::string& context) const {
  check_type(GgufTypeOf<T>::value, false, context);
  return element<T>(0);
}

template <typename T>
std::vector<T> GgufValue::as_array(const std::string& context) const {
  check_type(GgufTypeOf<T>::value, true, context);
  std::vector<T> out;
  out.reserve(size_t(count_));
  for (uint64_t i = 0; i < count_; ++i) out.push_back(element<T>(i));
  return out;
}

}  // namespace sr
