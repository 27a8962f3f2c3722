// Writes a model's tensors into one or more safetensors shards in a folder, one
// tensor at a time, without knowing the list in advance: tensor bytes go to a
// temporary data file per shard, and finish() prepends each shard's header (one
// extra sequential copy of the data, bounded memory). With max_shard_bytes > 0 a
// new shard starts when the current one would exceed it, and
// model.safetensors.index.json maps every tensor to its shard, as transformers
// expects ("model-00001-of-00003.safetensors", ...).
// The caller makes the folder itself atomic (write into a temporary folder, rename).
#pragma once
#include <cstdint>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace sr {

class SafetensorsStreamWriter {
 public:
  SafetensorsStreamWriter(std::string dir, uint64_t max_shard_bytes = 0, std::string base = "model");
  ~SafetensorsStreamWriter();  // removes temporary data files if finish() was not reached

  // REQUIRES: dtype is a plain dtype; nbytes matches shape; name not added before.
  void add(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
           const void* data, uint64_t nbytes);
  // add() for a tensor given in consecutive parts (a chunk of rows each), so that a large matrix is
  // never held whole: `fill` calls `write(data, nbytes)` with parts that add up to the shape's
  // bytes (throws naming the tensor otherwise, or if a part overruns them).
  using PartWriter = std::function<void(const void* data, uint64_t nbytes)>;
  void add_parts(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
                 const std::function<void(const PartWriter& write)>& fill);
  void set_metadata(std::map<std::string, std::string> m) { metadata_ = std::move(m); }
  // Writes the shard files (and the index when sharded); returns their file names.
  std::vector<std::string> finish();

 private:
  struct Shard { std::string data_path; std::vector<SafetensorsEntry> entries; uint64_t bytes = 0; };
  void open_shard();
  uint64_t expected_bytes(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape) const;

  std::string dir_, base_;
  uint64_t max_shard_ = 0, total_ = 0;
  std::vector<Shard> shards_;
  std::ofstream data_;
  std::map<std::string, std::string> metadata_;
  std::map<std::string, int> names_;
  bool finished_ = false;
};

}  // namespace sr
