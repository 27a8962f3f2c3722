// Streaming GGUF v3 writer (grammar in io/gguf.h).
//
// Use in two phases:
//   1. declare: set() metadata and add_tensor() every tensor (name, type, shape), in
//      the order the data will come;
//   2. stream: write_tensor() each tensor's bytes in declared order (the header is
//      written on the first call), so a caller can produce one transformer block's
//      tensors at a time without holding the model; then finish().
// Offsets are assigned at declaration: each tensor starts at a multiple of the
// alignment (32 unless given) and is padded with zeros to it, as llama.cpp writes
// them, so the file size is header + pad + sum(align_up(nbytes)).
//
// Before any tensor byte is written, write_tensor() checks the size and validates
// the data like ggml_validate_row_data: every fp16 block scale (d, dmin, m) and every
// F32/F16/BF16 element must be finite. Bytes go to "<path>.tmp-<pid>"; finish()
// flushes, re-opens the temporary with GgufReader to verify it, and only then renames
// it to `path`. If the writer is destroyed before finish() (an exception), the
// temporary is removed and `path` is untouched.
//
// Errors: sr::Error naming the output file and the key or tensor. Not thread-safe.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/atomic_file.h"
#include "io/gguf.h"
#include "quant/formats/ggml_types.h"

namespace sr {

// A tensor as gguf_file_size sees it (GgufWriter::add_tensor's arguments).
struct GgufTensorDecl {
  std::string name;
  GgmlType type;
  std::vector<int64_t> shape;
};

// The size in bytes of the file a GgufWriter writes with these metadata entries (set in this
// order) and these tensors (declared in this order), computed without writing anything. Rows
// must be whole blocks of their type (throws otherwise).
uint64_t gguf_file_size(const std::vector<std::pair<std::string, GgufValue>>& kv,
                        const std::vector<GgufTensorDecl>& tensors, uint32_t alignment = kGgufDefaultAlignment);

class GgufWriter {
 public:
  // REQUIRES: alignment is a power of two (a non-default one is stored as
  // "general.alignment").
  explicit GgufWriter(const std::string& path, uint32_t alignment = kGgufDefaultAlignment);
  ~GgufWriter();
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Adds a metadata entry. Throws on a duplicate or empty key, on "general.alignment"
  // (use the constructor), or after the first write_tensor().
  void set(const std::string& key, GgufValue value);

  // Declares a tensor. shape is row-major, outermost first (shape.back() = row
  // length), 1 to 4 dimensions, each >= 0. Throws on a duplicate or empty name, a
  // name longer than 63 bytes (llama.cpp's limit), a type without a codec here, a
  // row length that is not a multiple of the block size, or after write_tensor().
  void add_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& shape);

  // Writes the data of the next declared tensor: `name` must be that tensor and
  // nbytes its exact size. Validates the blocks first (see the header comment).
  void write_tensor(const std::string& name, const void* data, uint64_t nbytes);

  // Writes the next `nbytes` of the next declared tensor's data, so that a large tensor can be
  // streamed a chunk of rows at a time: parts follow each other, each a whole number of the
  // type's blocks, validated as write_tensor validates (an error names the block's index in the
  // whole tensor); the tensor is complete, and the next one may start, when its parts add up to
  // its size. write_tensor is one part of the whole size.
  void write_tensor_part(const std::string& name, const void* data, uint64_t nbytes);

  // Completes the file and renames it into place. Throws if a declared tensor has
  // not been written, on any I/O error, or if the re-read file does not match.
  void finish();

  // Size in bytes of the declared tensor `name` (after add_tensor).
  uint64_t tensor_bytes(const std::string& name) const;
  const std::string& path() const { return atomic_.final_path(); }
  // Bytes written to the file so far (header and padding included); of them, the tensor data's
  // (padding included, 0 before the header); and the size of the tensor data declared (padding
  // included): progress lines compare the last two.
  uint64_t bytes_written() const { return written_; }
  uint64_t data_written() const { return header_written_ ? written_ - data_start_ : 0; }
  uint64_t data_bytes() const { return data_size_; }

 private:
  struct Declared {
    std::string name;
    GgmlType type;
    std::vector<int64_t> shape;
    uint64_t nbytes;
    uint64_t offset;
  };

  void write_header();
  void write_bytes(const void* p, size_t n);
  void pad_to_alignment();
  // Checks `nbytes` of t's data that start at block `first_block` of the tensor.
  void validate(const Declared& t, const void* data, uint64_t nbytes, int64_t first_block) const;

  AtomicPath atomic_;
  std::FILE* out_ = nullptr;
  uint32_t alignment_;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::unordered_set<std::string> keys_;
  std::vector<Declared> tensors_;
  uint64_t data_size_ = 0;     // sum of aligned tensor sizes declared so far
  uint64_t written_ = 0;       // bytes written to the file so far
  uint64_t data_start_ = 0;    // file offset of the tensor data (set with the header)
  size_t next_tensor_ = 0;     // index of the next tensor to write
  uint64_t part_written_ = 0;  // bytes of the next tensor already written (write_tensor_part)
  bool header_written_ = false;
  bool finished_ = false;
};

}  // namespace sr
