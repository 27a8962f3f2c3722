// A read-only memory map of a whole file. Weights are read straight from the map
// and copied into tensors block by block; release() then drops the pages of a
// range from this process's resident set (madvise DONTNEED: the page cache keeps
// them, the RSS no longer counts them), so walking a model block by block keeps the
// resident set near one block instead of growing to the whole file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace sr {

class MappedFile {
 public:
  // Maps `path` read-only. Throws sr::Error naming the file if it cannot be
  // opened or mapped. An empty file maps to size() == 0, data() == nullptr.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // True if [offset, offset+length) lies inside the file (overflow-safe).
  bool contains(uint64_t offset, uint64_t length) const {
    return offset <= size_ && length <= size_ - offset;
  }

  // Hint that [offset, offset+length) is no longer needed resident (whole pages
  // inside the range only). Never changes the file's contents.
  void release(uint64_t offset, uint64_t length) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace sr
