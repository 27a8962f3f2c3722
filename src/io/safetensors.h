// safetensors (Hugging Face) reading and writing.
//
// File layout: u64 little-endian N | N bytes of UTF-8 JSON header | data.
// The header maps tensor name -> {"dtype": "F32"|"F16"|"BF16"|..., "shape": [d0, ...],
// "data_offsets": [begin, end]} with offsets relative to the start of the data
// section, plus an optional "__metadata__" object of string -> string.
// The reader trusts nothing: every length, offset and size is checked against the
// file before an entry is created.
#pragma once
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "io/tensor_store.h"

namespace sr {

// Adds every tensor of the safetensors file `path` to `store` (the map stays owned
// by the store). Returns the "__metadata__" strings. Throws sr::Error naming the
// file (and tensor) on a truncated file, malformed or lying header, unknown dtype.
std::map<std::string, std::string> read_safetensors(const std::string& path, TensorStore& store);

// Reads the weights of a Hugging Face model folder: `model.safetensors`, or the
// shards listed in `model.safetensors.index.json` (every tensor named in its
// weight_map must be present in the shard it names).
TensorStore read_safetensors_folder(const std::string& dir);

// One tensor of a file being written: data_offsets [begin, end) in its data section.
struct SafetensorsEntry {
  std::string name, dtype;
  std::vector<int64_t> shape;
  uint64_t begin, end;
};
// The bytes before a file's data section: the 8-byte length prefix and the JSON header of
// `entries` (plus "__metadata__" unless empty), padded with spaces so the data starts
// 8-byte aligned.
std::string safetensors_header(const std::vector<SafetensorsEntry>& entries,
                               const std::map<std::string, std::string>& metadata);

// Streaming writer: declare every tensor first, then write their bytes in the
// same order; the header is written before the first tensor so tensors can be
// produced one block at a time without holding the model.
class SafetensorsWriter {
 public:
  // REQUIRES: dtype is a plain dtype (dtype_size > 0); names unique.
  void declare(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape);
  void set_metadata(std::map<std::string, std::string> metadata) { metadata_ = std::move(metadata); }
  // Opens `path` for writing (the caller makes the folder atomic) and writes the header.
  void begin(const std::string& path);
  // REQUIRES: begin() called; `name` is the next declared tensor; nbytes matches its declaration.
  void write(const std::string& name, const void* data, uint64_t nbytes);
  // REQUIRES: every declared tensor written. Flushes and closes; throws on I/O error.
  void finish();
  uint64_t total_bytes() const;  // header + data, known after all declarations

 private:
  std::vector<SafetensorsEntry> decls_;
  std::map<std::string, std::string> metadata_;
  std::ofstream out_;
  std::string path_;
  size_t next_ = 0;
  uint64_t data_bytes_ = 0;
};

}  // namespace sr
