#include "io/tensor_store.h"

#include <sstream>

#include "common/error.h"

namespace sr {

int64_t TensorEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorEntry::describe() const {
  std::ostringstream os;
  os << "'" << name << "' [";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "] " << dtype;
  if (file) os << " (" << file->path() << ")";
  return os.str();
}

const MappedFile* TensorStore::own(std::shared_ptr<MappedFile> file) {
  files_.push_back(std::move(file));
  return files_.back().get();
}

void TensorStore::add(TensorEntry e) {
  SR_CHECK(!entries_.count(e.name), "[tensors] duplicate tensor '", e.name, "' in ",
           e.file ? e.file->path() : std::string("?"));
  std::string key = e.name;
  entries_.emplace(std::move(key), std::move(e));
}

const TensorEntry* TensorStore::find(const std::string& name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : &it->second;
}

const TensorEntry& TensorStore::get(const std::string& name) const {
  const TensorEntry* e = find(name);
  SR_CHECK(e, "[tensors] tensor '", name, "' is missing from ", sources());
  return *e;
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (auto& kv : entries_) out.push_back(kv.first);
  return out;
}

uint64_t TensorStore::total_bytes() const {
  uint64_t n = 0;
  for (auto& kv : entries_) n += kv.second.nbytes;
  return n;
}

std::string TensorStore::sources() const {
  std::string s;
  for (size_t i = 0; i < files_.size(); ++i) {
    if (i == 3) { s += ", ... (" + std::to_string(files_.size()) + " files)"; break; }
    s += (i ? ", " : "") + files_[i]->path();
  }
  return s.empty() ? "(no files)" : s;
}

void TensorStore::release(const TensorEntry& e) const {
  if (e.file && e.data) e.file->release(uint64_t(e.data - e.file->data()), e.nbytes);
}

int dtype_size(const std::string& t) {
  if (t == "F64" || t == "I64" || t == "U64") return 8;
  if (t == "F32" || t == "I32" || t == "U32") return 4;
  if (t == "F16" || t == "BF16" || t == "I16" || t == "U16") return 2;
  if (t == "I8" || t == "U8" || t == "BOOL" || t == "F8_E4M3" || t == "F8_E5M2") return 1;
  return 0;
}

}  // namespace sr
