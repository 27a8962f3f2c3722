// Streaming GGUF v3 writer (contract in io/gguf_writer.h).
#include "io/gguf_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "io/gguf_reader.h"

namespace sr {
namespace {

constexpr uint32_t kGgufVersion = 3;
constexpr size_t kMaxDims = 4;

uint64_t align_up(uint64_t v, uint64_t a) { return v + (a - v % a) % a; }

// Appends the GGUF encoding of primitives to a byte buffer (the header is built in
// memory: it is small, and the tensor data is streamed separately).
struct Bytes {
  std::vector<uint8_t> buf;

  template <typename T>
  void pod(const T& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    buf.insert(buf.end(), p, p + sizeof(T));
  }
  void str(const std::string& s) {
    pod<uint64_t>(s.size());
    buf.insert(buf.end(), s.begin(), s.end());
  }
  void value(const GgufValue& v) {
    if (v.is_array()) {
      pod<uint32_t>(uint32_t(GgufValueType::kArray));
      pod<uint32_t>(uint32_t(v.elem_type()));
      pod<uint64_t>(v.count());
    } else {
      pod<uint32_t>(uint32_t(v.elem_type()));
    }
    if (v.elem_type() == GgufValueType::kString) {
      for (const std::string& s : v.strings()) str(s);
    } else {
      buf.insert(buf.end(), v.bytes().begin(), v.bytes().end());
    }
  }
};

// The header up to the tensor infos: magic, version, counts and the metadata entries.
Bytes header_prefix(const std::vector<std::pair<std::string, GgufValue>>& kv, size_t n_tensors, uint32_t alignment) {
  Bytes h;
  h.buf.insert(h.buf.end(), {'G', 'G', 'U', 'F'});
  h.pod<uint32_t>(kGgufVersion);
  const bool store_alignment = alignment != kGgufDefaultAlignment;
  h.pod<uint64_t>(n_tensors);
  h.pod<uint64_t>(kv.size() + (store_alignment ? 1 : 0));
  for (const auto& [key, value] : kv) {
    h.str(key);
    h.value(value);
  }
  if (store_alignment) {
    h.str(kGgufAlignmentKey);
    h.value(GgufValue::scalar<uint32_t>(alignment));
  }
  return h;
}

// One tensor info: name, dimension count, dimensions, type, offset.
void tensor_info(Bytes& h, const std::string& name, const std::vector<int64_t>& shape, GgmlType type,
                 uint64_t offset) {
  h.str(name);
  h.pod<uint32_t>(uint32_t(shape.size()));
  for (auto it = shape.rbegin(); it != shape.rend(); ++it) h.pod<int64_t>(*it);  // ne: innermost first
  h.pod<uint32_t>(uint32_t(type));
  h.pod<uint64_t>(offset);
}

}  // namespace

uint64_t gguf_file_size(const std::vector<std::pair<std::string, GgufValue>>& kv,
                        const std::vector<GgufTensorDecl>& tensors, uint32_t alignment) {
  Bytes h = header_prefix(kv, tensors.size(), alignment);
  uint64_t data = 0;
  for (const GgufTensorDecl& t : tensors) {
    tensor_info(h, t.name, t.shape, t.type, data);
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    const int64_t row = t.shape.empty() ? 0 : t.shape.back();
    data += align_up(row ? ggml_row_bytes(t.type, row) * uint64_t(n / row) : 0, alignment);
  }
  return align_up(h.buf.size(), alignment) + data;
}

GgufWriter::GgufWriter(const std::string& path, uint32_t alignment) : atomic_(path), alignment_(alignment) {
  SR_CHECK(alignment && !(alignment & (alignment - 1)), "[gguf] ", path, ": alignment ", alignment,
           " is not a power of two");
  out_ = std::fopen(atomic_.temp().c_str(), "wb");
  SR_CHECK(out_, "[gguf] cannot create ", atomic_.temp(), ": ", std::strerror(errno));
}

GgufWriter::~GgufWriter() {
  if (out_) std::fclose(out_);  // the AtomicPath member then removes the temporary
}

void GgufWriter::set(const std::string& key, GgufValue value) {
  SR_CHECK(!header_written_, "[gguf] ", path(), ": metadata key '", key,
           "' set after tensor data started; set all metadata first");
  SR_CHECK(!key.empty(), "[gguf] ", path(), ": empty metadata key");
  SR_CHECK(key != kGgufAlignmentKey, "[gguf] ", path(), ": set the alignment through the GgufWriter "
           "constructor, not as metadata key '", key, "'");
  SR_CHECK(keys_.insert(key).second, "[gguf] ", path(), ": metadata key '", key, "' set twice");
  kv_.emplace_back(key, std::move(value));
}

void GgufWriter::add_tensor(const std::string& name, GgmlType type, const std::vector<int64_t>& shape) {
  SR_CHECK(!header_written_, "[gguf] ", path(), ": tensor '", name,
           "' declared after tensor data started; declare all tensors first");
  SR_CHECK(!name.empty() && name.size() <= kGgufMaxTensorName, "[gguf] ", path(), ": tensor name '", name,
           "' must have 1 to ", kGgufMaxTensorName, " bytes, has ", name.size());
  for (const Declared& t : tensors_) {
    SR_CHECK(t.name != name, "[gguf] ", path(), ": tensor '", name, "' declared twice");
  }
  const GgmlTypeTraits& tr = ggml_codec(type);
  SR_CHECK(!shape.empty() && shape.size() <= kMaxDims, "[gguf] ", path(), ": tensor '", name, "' has ",
           shape.size(), " dimensions, expected 1 to ", kMaxDims);
  int64_t n = 1;
  for (int64_t d : shape) {
    SR_CHECK(d >= 0 && !__builtin_mul_overflow(n, d, &n), "[gguf] ", path(), ": tensor '", name,
             "' has an invalid dimension ", d);
  }
  const int64_t row = shape.back();
  SR_CHECK(row % tr.block_size == 0, "[gguf] ", path(), ": tensor '", name, "' of type ", tr.name,
           " has rows of ", row, " elements, not a multiple of its block size ", tr.block_size);
  const uint64_t nbytes = row ? ggml_row_bytes(type, row) * uint64_t(n / row) : 0;
  tensors_.push_back({name, type, shape, nbytes, data_size_});
  data_size_ += align_up(nbytes, alignment_);
}

uint64_t GgufWriter::tensor_bytes(const std::string& name) const {
  for (const Declared& t : tensors_) {
    if (t.name == name) return t.nbytes;
  }
  fail("[gguf] ", path(), ": no tensor '", name, "' was declared");
}

void GgufWriter::write_bytes(const void* p, size_t n) {
  if (n && std::fwrite(p, 1, n, out_) != n) {
    fail("[gguf] cannot write ", atomic_.temp(), " (for ", path(), "): ", std::strerror(errno));
  }
  written_ += n;
}

void GgufWriter::pad_to_alignment() {
  static const uint8_t kZeros[256] = {};
  uint64_t pad = align_up(written_, alignment_) - written_;
  while (pad) {
    const size_t chunk = pad < sizeof(kZeros) ? size_t(pad) : sizeof(kZeros);
    write_bytes(kZeros, chunk);
    pad -= chunk;
  }
}

void GgufWriter::write_header() {
  Bytes h = header_prefix(kv_, tensors_.size(), alignment_);
  for (const Declared& t : tensors_) tensor_info(h, t.name, t.shape, t.type, t.offset);
  write_bytes(h.buf.data(), h.buf.size());
  pad_to_alignment();
  data_start_ = written_;
  header_written_ = true;
}

void GgufWriter::validate(const Declared& t, const void* data, uint64_t nbytes, int64_t first_block) const {
  const int64_t part_bad = ggml_first_nonfinite_block(t.type, data, nbytes);
  if (part_bad < 0) return;
  const int64_t bad = first_block + part_bad;
  const GgmlTypeTraits& tr = ggml_type_traits(t.type);
  if (tr.block_size == 1) {
    fail("[gguf] ", path(), ": tensor '", t.name, "' element ", bad, " is not finite; refusing to write it");
  }
  fail("[gguf] ", path(), ": tensor '", t.name, "' block ", bad, " (elements ", bad * tr.block_size, "..",
       (bad + 1) * tr.block_size - 1, ") has a non-finite ", tr.name, " scale; refusing to write it");
}

void GgufWriter::write_tensor(const std::string& name, const void* data, uint64_t nbytes) {
  if (next_tensor_ < tensors_.size() && tensors_[next_tensor_].name == name) {
    const Declared& t = tensors_[next_tensor_];
    SR_CHECK(part_written_ == 0, "[gguf] ", path(), ": tensor '", name, "' written whole after ", part_written_,
             " bytes of it were written in parts");
    SR_CHECK(nbytes == t.nbytes, "[gguf] ", path(), ": tensor '", name, "' needs ", t.nbytes, " bytes (",
             ggml_type_name(t.type), "), got ", nbytes);
  }
  write_tensor_part(name, data, nbytes);
}

void GgufWriter::write_tensor_part(const std::string& name, const void* data, uint64_t nbytes) {
  SR_CHECK(!finished_, "[gguf] ", path(), ": tensor '", name, "' written after finish()");
  SR_CHECK(next_tensor_ < tensors_.size(), "[gguf] ", path(), ": tensor '", name,
           "' written, but all ", tensors_.size(), " declared tensors are already written");
  const Declared& t = tensors_[next_tensor_];
  SR_CHECK(t.name == name, "[gguf] ", path(), ": tensor '", name, "' written out of order; the next declared "
           "tensor is '", t.name, "'", part_written_ ? " (partly written)" : "");
  const uint64_t block_bytes = ggml_type_traits(t.type).type_size;
  SR_CHECK(nbytes <= t.nbytes - part_written_ && nbytes % block_bytes == 0, "[gguf] ", path(), ": tensor '", name,
           "' needs ", t.nbytes, " bytes (", ggml_type_name(t.type), "), ", part_written_,
           " of them written; a part of ", nbytes, " bytes is ",
           nbytes % block_bytes ? "not a whole number of blocks" : "too large");
  validate(t, data, nbytes, int64_t(part_written_ / block_bytes));
  if (!header_written_) write_header();
  write_bytes(data, size_t(nbytes));
  part_written_ += nbytes;
  if (part_written_ < t.nbytes) return;
  pad_to_alignment();
  part_written_ = 0;
  ++next_tensor_;
}

void GgufWriter::finish() {
  SR_CHECK(!finished_, "[gguf] ", path(), ": finish() called twice");
  SR_CHECK(next_tensor_ == tensors_.size(), "[gguf] ", path(), ": only ", next_tensor_, " of ",
           tensors_.size(), " declared tensors were written; the next is '",
           next_tensor_ < tensors_.size() ? tensors_[next_tensor_].name : "", "'");
  if (!header_written_) write_header();
  const bool flushed = std::fflush(out_) == 0 && ::fsync(::fileno(out_)) == 0;
  const int err = errno;
  const bool closed = std::fclose(out_) == 0;
  out_ = nullptr;
  SR_CHECK(flushed && closed, "[gguf] cannot complete ", atomic_.temp(), " (for ", path(),
           "): ", std::strerror(err));
  // Re-read what was written before it replaces anything.
  {
    GgufReader check(atomic_.temp());
    SR_CHECK(check.tensors().size() == tensors_.size() && check.metadata().size() >= kv_.size() &&
                 check.file_size() == written_,
             "[gguf] ", path(), ": the written file does not read back as declared (", check.tensors().size(),
             " tensors, ", check.file_size(), " bytes; expected ", tensors_.size(), " tensors, ", written_,
             " bytes)");
  }
  atomic_.commit();
  finished_ = true;
}

}  // namespace sr
