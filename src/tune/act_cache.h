// One activation cache of the block-by-block run: [N, T, D] hidden states of the calibration
// samples (the FP path's or the quantized path's), in memory or in a file on disk.
//
// In memory it is one tensor, read and written in place, exactly as before caches could spill.
// On disk (when the two caches exceed the run's memory budget, tune/pipeline.h) the samples lie
// row-major in a file of N x T x D elements of the cache's dtype, read and written a slice of
// samples at a time with pread/pwrite: the resident set then holds only the slice in use, while
// the kernel's page cache keeps what it can of the file. (Mapping the file would count every page
// touched in the process's resident set: the whole cache after one pass.) The file is unlinked as
// soon as it is opened, so nothing is left behind after the run, a crash or a kill.
//
// Copies share the same storage (a handle), like at::Tensor.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "common/torch.h"

namespace sr {

class ActivationCache {
 public:
  ActivationCache() = default;
  // In memory, from x [N, T, D] (implicit, so a tensor can stand wherever a cache is taken); an
  // undefined tensor gives an undefined cache.
  ActivationCache(at::Tensor x) { if (x.defined()) *this = in_memory(std::move(x)); }  // NOLINT
  // A cache held by `x` [N, T, D] (any float dtype); reads of it are views or index_selects.
  static ActivationCache in_memory(at::Tensor x);
  // A zero-filled cache of `shape` [N, T, D] in a new file in folder `dir`. Throws sr::Error naming
  // `dir` when it is not a writable folder or has less free space than the cache needs.
  static ActivationCache on_disk(const std::string& dir, const std::vector<int64_t>& shape, at::ScalarType dtype);

  bool defined() const { return impl_ != nullptr; }
  bool on_disk() const;
  int64_t size(int64_t dim) const;
  at::ScalarType dtype() const;
  int64_t bytes() const;  // N x T x D x element size

  // Samples [r, r + n), in the cache's dtype: a view of the memory (writes to it are writes to the
  // cache) or a fresh tensor read from the file.
  at::Tensor read(int64_t r, int64_t n) const;
  // The samples `rows` (int64 [B]) as fresh [B, T, D] tensor in the cache's dtype.
  at::Tensor rows(const at::Tensor& rows) const;
  // Stores x [n, T, D] (converted to the cache's dtype) as samples [r, r + n).
  void write(int64_t r, const at::Tensor& x);
  // Every sample of `from` (same shape) into this cache.
  void copy_from(const ActivationCache& from);
  // The whole cache as one tensor: the memory's own, or read from the file (for in-memory uses only
  // when the caller knows it fits).
  at::Tensor all() const { return read(0, size(0)); }

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace sr
