// Both imatrix formats (io/imatrix_file.h). The legacy reader is a bounds-checked cursor
// over the mapped file (sizes compared with what is left, never added first); the GGUF
// reader leans on GgufReader's validation and checks the imatrix layout on top.
#include "io/imatrix_file.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "common/atomic_file.h"
#include "common/error.h"
#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "io/mapped_file.h"

namespace sr {
namespace {

constexpr int64_t kMaxNameBytes = 4096;  // a weight name (llama.cpp's are under 64)
constexpr char kSum2[] = ".in_sum2", kCounts[] = ".counts", kSum[] = ".in_sum";

class LegacyCursor {
 public:
  explicit LegacyCursor(const MappedFile& f) : f_(f) {}
  uint64_t left() const { return f_.size() - pos_; }
  const uint8_t* bytes(uint64_t n, const std::string& what) {
    if (n > left())
      fail("[imatrix] ", f_.path(), ": file ends inside ", what, " (needs ", n, " bytes at offset ", pos_, ", only ",
           left(), " left): truncated or not an imatrix file");
    const uint8_t* p = f_.data() + pos_;
    pos_ += n;
    return p;
  }
  int32_t i32(const std::string& what) {
    int32_t v;
    std::memcpy(&v, bytes(4, what), 4);
    return v;
  }

 private:
  const MappedFile& f_;
  uint64_t pos_ = 0;
};

bool ends_with(const std::string& s, const char* suffix) {
  const size_t n = std::strlen(suffix);
  return s.size() > n && s.compare(s.size() - n, n, suffix) == 0;
}

void check_values(const std::string& path, const std::string& name, const std::vector<float>& v) {
  for (size_t i = 0; i < v.size(); ++i)
    SR_CHECK(std::isfinite(v[i]) && v[i] >= 0, "[imatrix] ", path, ": entry ", name, " value ", i, " is ", v[i],
             " (a sum or mean of squares is finite and >= 0)");
}

// Counts for whole matrices of sums (what the readers guarantee; callers may build entries).
void check_shape(const ImatrixEntry& e, const char* who) {
  SR_CHECK(!e.counts.empty() && e.sums.size() % e.counts.size() == 0, who, ": an entry has ", e.sums.size(),
           " sums for ", e.counts.size(), " counts");
}

ImatrixFile read_legacy(const MappedFile& f) {
  const std::string& path = f.path();
  LegacyCursor c(f);
  ImatrixFile out;
  out.legacy = true;
  const int32_t n = c.i32("the entry count");
  // Each entry takes at least 17 bytes: a count beyond that is corrupt, not a reason to loop.
  SR_CHECK(n >= 1 && uint64_t(n) <= c.left() / 17, "[imatrix] ", path, ": entry count ", n,
           " is not possible in a file of ", f.size(), " bytes (not an imatrix file?)");
  for (int32_t i = 0; i < n; ++i) {
    const std::string at = "entry " + std::to_string(i);
    const int32_t len = c.i32("the name length of " + at);
    SR_CHECK(len >= 1 && len <= kMaxNameBytes, "[imatrix] ", path, ": ", at, " has a name of ", len,
             " bytes (1 to ", kMaxNameBytes, " expected)");
    const uint8_t* p = c.bytes(uint64_t(len), "the name of " + at);
    const std::string name(reinterpret_cast<const char*>(p), size_t(len));
    const int32_t ncall = c.i32("the call count of " + name);
    const int32_t nval = c.i32("the value count of " + name);
    SR_CHECK(ncall >= 0, "[imatrix] ", path, ": entry ", name, " has a negative call count ", ncall);
    SR_CHECK(nval >= 1, "[imatrix] ", path, ": entry ", name, " has ", nval, " values (at least 1 expected)");
    const uint8_t* values = c.bytes(uint64_t(nval) * 4, std::to_string(nval) + " values of " + name);
    ImatrixEntry e;
    e.sums.resize(size_t(nval));  // only now: nval is bounded by the file
    std::memcpy(e.sums.data(), values, size_t(nval) * 4);
    check_values(path, name, e.sums);
    e.counts = {double(ncall)};
    SR_CHECK(out.entries.emplace(name, std::move(e)).second, "[imatrix] ", path, ": entry ", name, " appears twice");
  }
  if (c.left() == 0) return out;  // files of before the trailer
  const int32_t last_call = c.i32("the chunk count after the entries");
  const int32_t len = c.i32("the dataset name length");
  SR_CHECK(last_call >= 0 && len >= 0, "[imatrix] ", path, ": negative chunk count (", last_call,
           ") or dataset name length (", len, ") after the entries");
  const uint8_t* p = c.bytes(uint64_t(len), "the dataset name");
  SR_CHECK(c.left() == 0, "[imatrix] ", path, ": ", c.left(), " unexpected bytes after the dataset name");
  out.chunk_count = uint32_t(last_call);
  if (len > 0) out.datasets.emplace_back(reinterpret_cast<const char*>(p), size_t(len));
  return out;
}

std::vector<float> f32_data(const GgufReader& g, const GgufTensorInfo& t) {
  SR_CHECK(t.type == GgmlType::F32, "[imatrix] ", g.path(), ": tensor ", t.name, " is ", ggml_type_name(t.type),
           ", expected F32");
  std::vector<float> v(size_t(t.n_elements()));
  std::memcpy(v.data(), t.data, v.size() * 4);
  return v;
}

ImatrixFile read_gguf(const std::string& path) {
  GgufReader g(path);
  ImatrixFile out;
  if (g.has("general.type")) {
    const auto type = g.get<std::string>("general.type");
    SR_CHECK(type == "imatrix", "[imatrix] ", path, ": general.type is '", type, "', not 'imatrix' (a model file?)");
  }
  if (g.has("imatrix.datasets")) out.datasets = g.get_array<std::string>("imatrix.datasets");
  out.chunk_count = g.get_or<uint32_t>("imatrix.chunk_count", 0);
  out.chunk_size = g.get_or<uint32_t>("imatrix.chunk_size", 0);
  for (const GgufTensorInfo& t : g.tensors()) {
    if (ends_with(t.name, kCounts) || ends_with(t.name, kSum)) continue;  // read with their in_sum2
    SR_CHECK(ends_with(t.name, kSum2), "[imatrix] ", path, ": tensor ", t.name,
             " is not an imatrix tensor (<weight>.in_sum2, .counts or .in_sum): a model file?");
    const std::string name = t.name.substr(0, t.name.size() - std::strlen(kSum2));
    const GgufTensorInfo* counts = g.find_tensor(name + kCounts);
    SR_CHECK(counts, "[imatrix] ", path, ": tensor ", t.name, " has no ", name, kCounts);
    SR_CHECK(t.shape.size() <= 2 && t.n_elements() > 0, "[imatrix] ", path, ": tensor ", t.name,
             " must be [matrices, columns], got ", t.shape.size(), " dimensions and ", t.n_elements(), " elements");
    const int64_t n_mat = t.shape.size() == 2 ? t.shape[0] : 1;
    SR_CHECK(counts->n_elements() == n_mat, "[imatrix] ", path, ": tensor ", counts->name,
             " must hold one count per matrix of ", t.name, " (", n_mat, "), got ", counts->n_elements());
    ImatrixEntry e;
    e.sums = f32_data(g, t);
    check_values(path, t.name, e.sums);
    for (float c : f32_data(g, *counts)) {
      SR_CHECK(std::isfinite(c) && c >= 0 && c == std::floor(c), "[imatrix] ", path, ": tensor ", counts->name,
               " holds ", c, ", not a token count");
      e.counts.push_back(c);
    }
    out.entries.emplace(name, std::move(e));
  }
  for (const GgufTensorInfo& t : g.tensors())
    if (ends_with(t.name, kCounts)) {
      const std::string name = t.name.substr(0, t.name.size() - std::strlen(kCounts));
      SR_CHECK(out.entries.count(name), "[imatrix] ", path, ": tensor ", t.name, " has no ", name, kSum2);
    }
  SR_CHECK(!out.entries.empty(), "[imatrix] ", path, ": no <weight>.in_sum2 tensor: not an imatrix file");
  return out;
}

// llama-imatrix's legacy view of a GGUF-meaning entry, or false when no matrix saw a token
// (it leaves those out).
bool to_legacy(const ImatrixEntry& e, uint32_t chunk_size, ImatrixEntry& out) {
  check_shape(e, "[imatrix] write");
  const double most = *std::max_element(e.counts.begin(), e.counts.end());
  if (most <= 0) return false;
  const double chunk = chunk_size > 0 ? double(chunk_size) : most;
  const auto ncall = float(std::ceil(most / chunk));
  const size_t cols = e.sums.size() / e.counts.size();
  out.sums.resize(e.sums.size());
  for (size_t i = 0; i < e.sums.size(); ++i) {
    const auto count = float(e.counts[i / cols]);
    out.sums[i] = count > 0 ? e.sums[i] / count * ncall : ncall;
  }
  out.counts = {double(ncall)};
  return true;
}

template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

void write_legacy(const std::string& path, const ImatrixFile& f) {
  std::string s;
  std::vector<std::pair<std::string, ImatrixEntry>> entries;
  for (const auto& [name, e] : f.entries) {
    ImatrixEntry l;
    if (f.legacy) l = e;
    else if (!to_legacy(e, f.chunk_size, l)) continue;
    entries.emplace_back(name, std::move(l));
  }
  SR_CHECK(!entries.empty(), "[imatrix] ", path, ": no entry with data to write");
  put(s, int32_t(entries.size()));
  for (const auto& [name, e] : entries) {
    put(s, int32_t(name.size()));
    s += name;
    put(s, int32_t(e.counts.at(0)));
    put(s, int32_t(e.sums.size()));
    s.append(reinterpret_cast<const char*>(e.sums.data()), e.sums.size() * 4);
  }
  put(s, int32_t(f.chunk_count));
  const std::string dataset = f.datasets.empty() ? std::string() : f.datasets.back();
  put(s, int32_t(dataset.size()));
  s += dataset;
  write_file_atomically(path, s, "[imatrix]");
}

void write_gguf(const std::string& path, const ImatrixFile& f) {
  GgufWriter w(path);
  w.set("general.type", GgufValue::string("imatrix"));
  w.set("imatrix.datasets", GgufValue::array<std::string>(f.datasets));
  w.set("imatrix.chunk_count", GgufValue::scalar<uint32_t>(f.chunk_count));
  w.set("imatrix.chunk_size", GgufValue::scalar<uint32_t>(f.chunk_size));
  std::vector<std::pair<std::string, std::vector<float>>> data;
  for (const auto& [name, e] : f.entries) {
    const auto n_mat = int64_t(e.counts.size());
    SR_CHECK(n_mat > 0 && e.sums.size() % size_t(n_mat) == 0, "[imatrix] ", path, ": entry ", name, " has ",
             e.sums.size(), " sums for ", n_mat, " matrices");
    w.add_tensor(name + kSum2, GgmlType::F32, {n_mat, int64_t(e.sums.size()) / n_mat});
    w.add_tensor(name + kCounts, GgmlType::F32, {n_mat, 1});
    data.emplace_back(name + kSum2, e.sums);
    data.emplace_back(name + kCounts, std::vector<float>(e.counts.begin(), e.counts.end()));
  }
  for (const auto& [name, v] : data) w.write_tensor(name, v.data(), v.size() * 4);
  w.finish();
}

}  // namespace

ImatrixFile read_imatrix_file(const std::string& path) {
  MappedFile f(path);
  SR_CHECK(f.size() > 0, "[imatrix] ", path, ": the file is empty");
  if (f.size() >= 4 && std::memcmp(f.data(), "GGUF", 4) == 0) return read_gguf(path);
  return read_legacy(f);
}

void write_imatrix_file(const std::string& path, const ImatrixFile& f, bool legacy) {
  if (legacy) return write_legacy(path, f);
  write_gguf(path, f);
}

std::vector<float> imatrix_mean(const ImatrixEntry& e, bool legacy) {
  check_shape(e, "[imatrix_mean]");
  std::vector<float> out(e.sums.size());
  if (legacy) {
    const auto ncall = int64_t(e.counts.at(0));
    for (size_t i = 0; i < out.size(); ++i) out[i] = ncall > 0 ? e.sums[i] / float(ncall) : e.sums[i];
    return out;
  }
  const size_t cols = e.sums.size() / e.counts.size();
  for (size_t i = 0; i < out.size(); ++i) {
    const auto count = float(e.counts[i / cols]);
    out[i] = count > 0 ? e.sums[i] / count : 1.0f;
  }
  return out;
}

}  // namespace sr
