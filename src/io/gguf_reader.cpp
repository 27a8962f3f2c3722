// GGUF reader: a bounds-checked cursor over the map, one function per grammar rule
// of io/gguf.h. All sizes are uint64 and every comparison is written so it cannot
// overflow (compare against what is left, never add first).
#include "io/gguf_reader.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <numeric>

#include "common/error.h"
#include "common/limits.h"

namespace sr {
namespace {

constexpr uint32_t kMaxDims = 4;             // GGML_MAX_DIMS
// Fewest bytes one metadata entry / tensor info can take, to bound the header counts
// by the file size before anything is allocated.
constexpr uint64_t kMinKvBytes = 8 + 4 + 1;                  // key length, type, 1-byte value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 8 + 4 + 8;  // name length, n_dims, one ne, type, offset

class Cursor {
 public:
  explicit Cursor(const MappedFile& f) : f_(f) {}

  uint64_t pos() const { return pos_; }
  uint64_t left() const { return f_.size() - pos_; }

  // Throws unless n more bytes exist; `what` names the item being read.
  void need(uint64_t n, const std::string& what) const {
    if (n <= left()) return;
    fail("[gguf] ", f_.path(), ": file ends inside ", what, " (needs ", n, " bytes at offset ",
         pos_, ", only ", left(), " left of ", f_.size(), ")");
  }

  template <typename T>
  T pod(const std::string& what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, f_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  const uint8_t* bytes(uint64_t n, const std::string& what) {
    need(n, what);
    const uint8_t* p = f_.data() + pos_;
    pos_ += n;
    return p;
  }

  std::string str(const std::string& what) {
    const auto len = pod<uint64_t>("the length of " + what);
    need(len, what);  // first bounded by the file, then by the limit
    if (len > limits::kMaxGgufStringBytes)
      fail("[gguf] ", f_.path(), ": ", what, " claims ", len, " bytes at offset ", pos_ - 8, ", over the limit of ",
           limits::kMaxGgufStringBytes, " bytes for one string");
    const uint8_t* p = bytes(len, what);
    return std::string(reinterpret_cast<const char*>(p), size_t(len));
  }

 private:
  const MappedFile& f_;
  uint64_t pos_ = 0;
};

std::string hex_bytes(const uint8_t* p, size_t n) {
  std::string out;
  char buf[4];
  for (size_t i = 0; i < n; ++i) {
    std::snprintf(buf, sizeof(buf), "%02x", p[i]);
    out += (i ? " " : "") + std::string(buf);
  }
  return out;
}

void check_version(const std::string& path, uint32_t version) {
  SR_CHECK(version != 1, "[gguf] ", path,
           ": GGUF version 1 is no longer supported; re-convert the model with a current llama.cpp");
  // A big-endian file has its version byte-swapped (0x03000000 reads as 50331648).
  SR_CHECK((version & 0xffffu) != 0 || version == 0, "[gguf] ", path,
           ": looks like a big-endian GGUF (version field ", version,
           "); only little-endian files are supported");
  SR_CHECK(version == 2 || version == 3, "[gguf] ", path, ": this GGUF file is version ", version,
           " but this reader supports versions 2 and 3");
}

bool is_power_of_two(uint64_t v) { return v && !(v & (v - 1)); }

}  // namespace

int64_t GgufTensorInfo::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated against overflow when read
  return n;
}

GgufReader::GgufReader(const std::string& path) : file_(path) { parse(); }

std::string GgufReader::context(const std::string& key) const {
  return "[gguf] " + path() + ": metadata key '" + key + "'";
}

const GgufValue& GgufReader::value(const std::string& key) const {
  auto it = kv_index_.find(key);
  SR_CHECK(it != kv_index_.end(), context(key), " is missing");
  return kv_[it->second].second;
}

const GgufTensorInfo* GgufReader::find_tensor(const std::string& name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufTensorInfo& GgufReader::tensor(const std::string& name) const {
  const GgufTensorInfo* t = find_tensor(name);
  SR_CHECK(t, "[gguf] ", path(), ": no tensor named '", name, "' (the file has ", tensors_.size(),
           " tensors)");
  return *t;
}

std::vector<float> GgufReader::decode_f32(const GgufTensorInfo& t) const {
  const GgmlTypeTraits& tr = ggml_type_traits(t.type);
  SR_CHECK(tr.supported(), "[gguf] ", path(), ": tensor '", t.name, "' has type ", tr.name,
           ", which this build cannot decode");
  std::vector<float> out(size_t(t.n_elements()));
  if (!out.empty()) tr.dequantize_row(t.data, out.data(), t.n_elements());
  return out;
}

void GgufReader::release(const GgufTensorInfo& t) const { file_.release(data_offset_ + t.offset, t.nbytes); }

// ---- parsing ------------------------------------------------------------------------------

namespace {

struct Parser {
  const std::string& path;
  Cursor& cur;

  // Header: magic, version, counts.
  void header(uint32_t* version, uint64_t* n_tensors, uint64_t* n_kv, uint64_t file_size) {
    SR_CHECK(file_size >= 4, "[gguf] ", path, ": file is ", file_size, " bytes, too short for a GGUF header");
    const uint8_t* magic = cur.bytes(4, "the magic");
    SR_CHECK(std::memcmp(magic, "GGUF", 4) == 0, "[gguf] ", path, ": not a GGUF file (starts with bytes ",
             hex_bytes(magic, 4), ", expected 47 47 55 46 = \"GGUF\")");
    *version = cur.pod<uint32_t>("the version");
    check_version(path, *version);
    *n_tensors = cur.pod<uint64_t>("the tensor count");
    *n_kv = cur.pod<uint64_t>("the metadata count");
    SR_CHECK(*n_kv <= cur.left() / kMinKvBytes, "[gguf] ", path, ": header claims ", *n_kv,
             " metadata entries, more than the ", cur.left(), " remaining bytes can hold");
    SR_CHECK(*n_tensors <= cur.left() / kMinTensorInfoBytes, "[gguf] ", path, ": header claims ",
             *n_tensors, " tensors, more than the ", cur.left(), " remaining bytes can hold");
    SR_CHECK(*n_kv <= limits::kMaxGgufKeys && *n_tensors <= limits::kMaxGgufTensors, "[gguf] ", path,
             ": header claims ", *n_tensors, " tensors and ", *n_kv, " metadata entries; the limits are ",
             limits::kMaxGgufTensors, " and ", limits::kMaxGgufKeys);
  }

  GgufValueType value_type(const std::string& key, const char* role) {
    const auto t = cur.pod<uint32_t>("the " + std::string(role) + " type of key '" + key + "'");
    SR_CHECK(t < kGgufValueTypeEnd, "[gguf] ", path, ": metadata key '", key, "' has unknown ", role,
             " type ", t, " (GGUF defines 0..", kGgufValueTypeEnd - 1, ")");
    return GgufValueType(t);
  }

  GgufValue values(const std::string& key, GgufValueType elem, bool is_array, uint64_t count) {
    const std::string what = "the value of key '" + key + "'";
    if (elem == GgufValueType::kString) {
      SR_CHECK(count <= cur.left() / 8, "[gguf] ", path, ": metadata key '", key, "' claims ", count,
               " strings, more than the ", cur.left(), " remaining bytes can hold");
      std::vector<std::string> strings;
      strings.reserve(size_t(count));
      for (uint64_t i = 0; i < count; ++i) strings.push_back(cur.str(what));
      return GgufValue::from_parts(elem, is_array, count, {}, std::move(strings));
    }
    const uint64_t size = gguf_scalar_size(elem);
    SR_CHECK(count <= cur.left() / size, "[gguf] ", path, ": metadata key '", key, "' claims ", count,
             " elements of ", gguf_value_type_name(elem), ", more than the ", cur.left(),
             " remaining bytes can hold");
    const uint8_t* p = cur.bytes(count * size, what);
    std::vector<uint8_t> bytes(p, p + count * size);
    if (elem == GgufValueType::kBool) {
      for (uint64_t i = 0; i < count; ++i) {
        SR_CHECK(bytes[i] <= 1, "[gguf] ", path, ": metadata key '", key, "' holds bool byte ",
                 int(bytes[i]), " at element ", i, ", expected 0 or 1");
      }
    }
    return GgufValue::from_parts(elem, is_array, count, std::move(bytes), {});
  }

  std::pair<std::string, GgufValue> kv(uint64_t index) {
    std::string key = cur.str("the key of metadata entry #" + std::to_string(index));
    SR_CHECK(!key.empty(), "[gguf] ", path, ": metadata entry #", index, " has an empty key");
    GgufValueType type = value_type(key, "value");
    if (type != GgufValueType::kArray) return {key, values(key, type, false, 1)};
    GgufValueType elem = value_type(key, "array element");
    SR_CHECK(elem != GgufValueType::kArray, "[gguf] ", path, ": metadata key '", key,
             "' is an array of arrays, which GGUF does not allow");
    const auto count = cur.pod<uint64_t>("the array length of key '" + key + "'");
    return {key, values(key, elem, true, count)};
  }

  // Shape (outermost first) and element count of a tensor info, overflow-checked.
  std::vector<int64_t> shape(const std::string& name) {
    const std::string what = "the shape of tensor '" + name + "'";
    const auto n_dims = cur.pod<uint32_t>(what);
    SR_CHECK(n_dims >= 1 && n_dims <= kMaxDims, "[gguf] ", path, ": tensor '", name, "' has ", n_dims,
             " dimensions, expected 1 to ", kMaxDims);
    std::vector<int64_t> ne(n_dims);
    int64_t total = 1;
    for (uint32_t j = 0; j < n_dims; ++j) {
      ne[j] = cur.pod<int64_t>(what);
      SR_CHECK(ne[j] >= 0, "[gguf] ", path, ": tensor '", name, "' dimension ", j, " is ", ne[j],
               ", expected >= 0");
      SR_CHECK(!__builtin_mul_overflow(total, ne[j], &total), "[gguf] ", path, ": tensor '", name,
               "' has more than 2^63 elements (dimension ", j, " = ", ne[j], ")");
    }
    return std::vector<int64_t>(ne.rbegin(), ne.rend());
  }

  GgufTensorInfo tensor_info(uint64_t index) {
    GgufTensorInfo t;
    t.name = cur.str("the name of tensor #" + std::to_string(index));
    t.shape = shape(t.name);
    const auto type_id = cur.pod<uint32_t>("the type of tensor '" + t.name + "'");
    SR_CHECK(ggml_type_id_known(type_id), "[gguf] ", path, ": tensor '", t.name, "' has unknown ggml type id ",
             type_id, " (known: 0..", kGgmlTypeIdEnd - 1, " except retired 4, 5, 31-33, 36-38)");
    t.type = GgmlType(type_id);
    const GgmlTypeTraits& tr = ggml_type_traits(t.type);
    SR_CHECK(t.row_length() % tr.block_size == 0, "[gguf] ", path, ": tensor '", t.name, "' of type ",
             tr.name, " has rows of ", t.row_length(), " elements, not a multiple of its block size ",
             tr.block_size);
    const uint64_t row_bytes = uint64_t(t.row_length() / tr.block_size) * tr.type_size;
    SR_CHECK(!__builtin_mul_overflow(row_bytes, uint64_t(t.n_rows()), &t.nbytes), "[gguf] ", path,
             ": tensor '", t.name, "' byte size overflows 64 bits");
    t.offset = cur.pod<uint64_t>("the data offset of tensor '" + t.name + "'");
    return t;
  }
};

}  // namespace

void GgufReader::parse() {
  Cursor cur(file_);
  Parser p{file_.path(), cur};
  uint64_t n_tensors = 0, n_kv = 0;
  p.header(&version_, &n_tensors, &n_kv, file_.size());

  for (uint64_t i = 0; i < n_kv; ++i) {
    auto entry = p.kv(i);
    SR_CHECK(!kv_index_.count(entry.first), "[gguf] ", path(), ": metadata key '", entry.first,
             "' appears twice");
    kv_index_[entry.first] = kv_.size();
    kv_.push_back(std::move(entry));
  }
  if (has(kGgufAlignmentKey)) {
    alignment_ = get<uint32_t>(kGgufAlignmentKey);
    SR_CHECK(is_power_of_two(alignment_), context(kGgufAlignmentKey), " is ", alignment_,
             ", expected a power of two");
  }

  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t = p.tensor_info(i);
    SR_CHECK(!tensor_index_.count(t.name), "[gguf] ", path(), ": tensor name '", t.name, "' appears twice");
    tensor_index_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t pos = cur.pos();
  data_offset_ = pos + (alignment_ - pos % alignment_) % alignment_;
  const uint64_t size = file_.size();
  SR_CHECK(tensors_.empty() || data_offset_ <= size, "[gguf] ", path(), ": file ends at ", size,
           " before its data section (", data_offset_, ")");
  const uint64_t data_size = tensors_.empty() ? 0 : size - data_offset_;
  for (GgufTensorInfo& t : tensors_) {
    SR_CHECK(t.offset % alignment_ == 0, "[gguf] ", path(), ": tensor '", t.name, "' data offset ", t.offset,
             " is not a multiple of the alignment ", alignment_);
    SR_CHECK(t.offset <= data_size && t.nbytes <= data_size - t.offset, "[gguf] ", path(), ": tensor '",
             t.name, "' data [", t.offset, ", +", t.nbytes, ") lies past the end of the data section (",
             data_size, " bytes at file offset ", data_offset_, ")");
    t.data = file_.data() + data_offset_ + t.offset;
  }

  // No two tensors may share bytes.
  std::vector<size_t> order(tensors_.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return tensors_[a].offset < tensors_[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensorInfo& a = tensors_[order[k - 1]];
    const GgufTensorInfo& b = tensors_[order[k]];
    SR_CHECK(a.offset + a.nbytes <= b.offset, "[gguf] ", path(), ": tensors '", a.name, "' [", a.offset,
             ", +", a.nbytes, ") and '", b.name, "' [", b.offset, ", ...) overlap");
  }
}

}  // namespace sr
