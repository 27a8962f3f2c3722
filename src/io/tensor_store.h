// A read-only view of named tensors stored in one or more memory-mapped files
// (safetensors shards, a GGUF file, a llama2.c checkpoint). Nothing is copied at
// open time: an entry points into its file's map and is converted to a torch
// tensor only when a model block asks for it (model/weights.h).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/mapped_file.h"

namespace sr {

struct TensorEntry {
  std::string name;
  std::vector<int64_t> shape;  // row-major, outermost dimension first ([out, in] for a Linear)
  std::string dtype;           // storage type: "F32", "F16", "BF16", "I32", "U8", ... or a ggml
                               // block type name ("Q4_K", "Q8_0", ...) for GGUF tensors
  const uint8_t* data = nullptr;
  uint64_t nbytes = 0;
  const MappedFile* file = nullptr;  // owner of `data`; names the source in errors

  int64_t numel() const;
  std::string describe() const;  // "name [d0, d1] DTYPE (file)"
};

class TensorStore {
 public:
  // Keeps `file` alive as long as the store; entries added later may point into it.
  const MappedFile* own(std::shared_ptr<MappedFile> file);
  // REQUIRES: e.data lies inside e.file. Throws on a duplicate name.
  void add(TensorEntry e);

  const TensorEntry* find(const std::string& name) const;  // nullptr if absent
  const TensorEntry& get(const std::string& name) const;   // throws naming the tensor and files
  bool has(const std::string& name) const { return find(name) != nullptr; }
  std::vector<std::string> names() const;                  // sorted
  size_t size() const { return entries_.size(); }
  uint64_t total_bytes() const;
  // Files this store reads from, for messages ("model-00001-of-00002.safetensors, ...").
  std::string sources() const;

  // Drops the entry's pages from the resident set (see MappedFile::release).
  void release(const TensorEntry& e) const;

 private:
  std::vector<std::shared_ptr<MappedFile>> files_;
  std::map<std::string, TensorEntry> entries_;
};

// Bytes per element of a plain (non-block) storage dtype name, 0 if not plain.
int dtype_size(const std::string& dtype);

}  // namespace sr
