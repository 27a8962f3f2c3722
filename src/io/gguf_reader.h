// Reads GGUF v2/v3 files (grammar in io/gguf.h) from a read-only memory map.
//
// The constructor parses and validates the whole header up front and trusts nothing:
// every count, string length, array size, dimension, dimension product, tensor byte
// size, offset, alignment and data range is checked against the file size with
// overflow-safe arithmetic; duplicate keys and duplicate tensor names are rejected,
// as are unknown value types, unknown or retired ggml type ids, rows that are not a
// whole number of blocks, misaligned or overlapping tensor data, nested arrays,
// bool bytes other than 0/1, and tensors with 0 or more than 4 dimensions (llama.cpp
// never writes 0). Unlike llama.cpp, gaps between tensors are allowed. Every failure throws sr::Error naming the file and,
// where there is one, the key or tensor, what was expected and what was found.
// Tensor data is not touched until asked for.
//
// Ownership: the reader owns the map; GgufTensorInfo::data points into it and is
// valid while the reader lives. Thread-safety: const methods may be called
// concurrently.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "io/gguf.h"
#include "io/mapped_file.h"
#include "quant/formats/ggml_types.h"

namespace sr {

struct GgufTensorInfo {
  std::string name;
  GgmlType type = GgmlType::F32;  // a known ggml type; may lack a codec (see ggml_codec)
  // Row-major, outermost first: ggml's ne reversed. A [out, in] linear weight is
  // {out, in}; shape.back() is the row length ne[0].
  std::vector<int64_t> shape;
  uint64_t offset = 0;           // from the start of the data section
  uint64_t nbytes = 0;           // ggml_row_bytes(type, row_length) * n_rows
  const uint8_t* data = nullptr; // into the map

  int64_t n_elements() const;
  int64_t row_length() const { return shape.empty() ? 1 : shape.back(); }
  int64_t n_rows() const { return row_length() ? n_elements() / row_length() : 0; }
};

class GgufReader {
 public:
  // Maps and validates `path`. Throws sr::Error (see the header comment).
  explicit GgufReader(const std::string& path);

  const std::string& path() const { return file_.path(); }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // absolute file offset of the data section
  uint64_t file_size() const { return file_.size(); }

  // ---- metadata, in file order ----
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  bool has(const std::string& key) const { return kv_index_.count(key) != 0; }
  // Throws if the key is absent.
  const GgufValue& value(const std::string& key) const;
  // Typed getters: T is uint8_t..int64_t, float, double, bool or std::string. Throw
  // sr::Error naming the file and key if it is absent or of another GGUF type.
  template <typename T>
  T get(const std::string& key) const {
    return value(key).as<T>(context(key));
  }
  template <typename T>
  T get_or(const std::string& key, const T& fallback) const {
    return has(key) ? get<T>(key) : fallback;
  }
  template <typename T>
  std::vector<T> get_array(const std::string& key) const {
    return value(key).as_array<T>(context(key));
  }

  // ---- tensors, in file order ----
  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* find_tensor(const std::string& name) const;
  const GgufTensorInfo& tensor(const std::string& name) const;  // throws if absent

  // Decodes a whole tensor to fp32 ([n_elements]) exactly as ggml dequantizes it.
  // Throws if the tensor's type has no codec here.
  std::vector<float> decode_f32(const GgufTensorInfo& t) const;

  // Drops the tensor's pages from the resident set (see MappedFile::release).
  void release(const GgufTensorInfo& t) const;

 private:
  std::string context(const std::string& key) const;
  void parse();

  MappedFile file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = kGgufDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::unordered_map<std::string, size_t> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace sr
