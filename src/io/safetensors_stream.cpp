#include "io/safetensors_stream.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "io/tensor_store.h"

namespace sr {
namespace fs = std::filesystem;

SafetensorsStreamWriter::SafetensorsStreamWriter(std::string dir, uint64_t max_shard_bytes, std::string base)
    : dir_(std::move(dir)), base_(std::move(base)), max_shard_(max_shard_bytes) {
  fs::create_directories(dir_);
  open_shard();
}

SafetensorsStreamWriter::~SafetensorsStreamWriter() {
  data_.close();
  std::error_code ec;
  for (const Shard& s : shards_) fs::remove(s.data_path, ec);
}

void SafetensorsStreamWriter::open_shard() {
  data_.close();
  Shard s;
  s.data_path = (fs::path(dir_) / (".shard" + std::to_string(shards_.size()) + ".data.tmp")).string();
  data_.open(s.data_path, std::ios::binary | std::ios::trunc);
  SR_CHECK(data_.good(), "[safetensors] cannot create ", s.data_path);
  shards_.push_back(std::move(s));
}

void SafetensorsStreamWriter::add(const std::string& name, const std::string& dtype, const std::vector<int64_t>& shape,
                                  const void* data, uint64_t nbytes) {
  const uint64_t need = expected_bytes(name, dtype, shape);
  SR_CHECK(need == nbytes, "[safetensors] tensor '", name, "': ", nbytes, " bytes for a shape needing ", need);
  add_parts(name, dtype, shape, [&](const PartWriter& write) { write(data, nbytes); });
}

uint64_t SafetensorsStreamWriter::expected_bytes(const std::string& name, const std::string& dtype,
                                                 const std::vector<int64_t>& shape) const {
  const int esize = dtype_size(dtype);
  SR_CHECK(esize > 0, "[safetensors] tensor '", name, "': unsupported dtype ", dtype);
  uint64_t n = uint64_t(esize);
  for (int64_t d : shape) n *= uint64_t(d);
  return n;
}

void SafetensorsStreamWriter::add_parts(const std::string& name, const std::string& dtype,
                                        const std::vector<int64_t>& shape,
                                        const std::function<void(const PartWriter& write)>& fill) {
  SR_CHECK(!finished_, "[safetensors] add('", name, "') after finish()");
  SR_CHECK(!names_.count(name), "[safetensors] tensor '", name, "' written twice");
  const uint64_t nbytes = expected_bytes(name, dtype, shape);
  if (max_shard_ > 0 && shards_.back().bytes > 0 && shards_.back().bytes + nbytes > max_shard_) open_shard();
  Shard& s = shards_.back();
  uint64_t written = 0;
  fill([&](const void* data, uint64_t n) {
    SR_CHECK(written + n <= nbytes, "[safetensors] tensor '", name, "': parts of ", written + n,
             " bytes overrun its ", nbytes);
    data_.write(static_cast<const char*>(data), std::streamsize(n));
    SR_CHECK(data_.good(), "[safetensors] write error on ", s.data_path);
    written += n;
  });
  SR_CHECK(written == nbytes, "[safetensors] tensor '", name, "': ", written, " bytes for a shape needing ", nbytes);
  s.entries.push_back({name, dtype, shape, s.bytes, s.bytes + nbytes});
  s.bytes += nbytes;
  total_ += nbytes;
  names_[name] = int(shards_.size()) - 1;
}

std::vector<std::string> SafetensorsStreamWriter::finish() {
  SR_CHECK(!finished_, "[safetensors] finish() called twice");
  data_.close();
  finished_ = true;
  const size_t n = shards_.size();
  std::vector<std::string> files;
  for (size_t k = 0; k < n; ++k) {
    char fname[96];
    if (n == 1) std::snprintf(fname, sizeof fname, "%s.safetensors", base_.c_str());
    else std::snprintf(fname, sizeof fname, "%s-%05zu-of-%05zu.safetensors", base_.c_str(), k + 1, n);
    const std::string path = (fs::path(dir_) / fname).string();
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << safetensors_header(shards_[k].entries, metadata_);
    if (shards_[k].bytes > 0) {  // streaming an empty buffer would set failbit
      std::ifstream in(shards_[k].data_path, std::ios::binary);
      out << in.rdbuf();
    }
    out.flush();
    SR_CHECK(out.good(), "[safetensors] write error on ", path);
    files.push_back(fname);
  }
  if (n > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", total_}}}, {"weight_map", nlohmann::json::object()}};
    for (auto& [name, k] : names_) index["weight_map"][name] = files[size_t(k)];
    std::ofstream(fs::path(dir_) / (base_ + ".safetensors.index.json")) << index.dump(2);
  }
  std::error_code ec;
  for (const Shard& s : shards_) fs::remove(s.data_path, ec);
  return files;
}

}  // namespace sr
