#include "io/safetensors.h"

#include <filesystem>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/json_parse.h"
#include "common/limits.h"

namespace sr {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kMaxHeaderBytes = 100ull << 20;  // the safetensors spec's own limit

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Multiplies the dims into an element count, failing on negatives or overflow.
uint64_t checked_numel(const std::vector<int64_t>& shape, const std::string& where) {
  uint64_t n = 1;
  for (int64_t d : shape) {
    SR_CHECK(d >= 0, where, ": negative dimension ", d);
    SR_CHECK(d == 0 || n <= std::numeric_limits<uint64_t>::max() / uint64_t(d), where,
             ": shape overflows");
    n *= uint64_t(d);
  }
  return n;
}

TensorEntry parse_entry(const std::string& name, const json& info, const MappedFile* file,
                        uint64_t data_start) {
  const std::string where = "[safetensors] " + file->path() + ": tensor '" + name + "'";
  SR_CHECK(info.is_object(), where, ": header entry is not an object");
  SR_CHECK(info.contains("dtype") && info["dtype"].is_string(), where, ": missing string 'dtype'");
  SR_CHECK(info.contains("shape") && info["shape"].is_array(), where, ": missing array 'shape'");
  SR_CHECK(info.contains("data_offsets") && info["data_offsets"].is_array() &&
               info["data_offsets"].size() == 2,
           where, ": 'data_offsets' must be [begin, end]");
  TensorEntry e;
  e.name = name;
  e.dtype = info["dtype"].get<std::string>();
  const int esize = dtype_size(e.dtype);
  SR_CHECK(esize > 0, where, ": unsupported dtype '", e.dtype, "'");
  for (const json& d : info["shape"]) {
    SR_CHECK(d.is_number_integer(), where, ": shape entries must be integers");
    e.shape.push_back(d.get<int64_t>());
  }
  const json& off = info["data_offsets"];
  SR_CHECK(off[0].is_number_unsigned() && off[1].is_number_unsigned(), where,
           ": data_offsets must be non-negative integers");
  const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
  const uint64_t data_size = file->size() - data_start;
  SR_CHECK(begin <= end && end <= data_size, where, ": data [", begin, ", ", end,
           ") lies outside the data section (", data_size, " bytes; file truncated?)");
  const uint64_t numel = checked_numel(e.shape, where);
  SR_CHECK(numel <= std::numeric_limits<uint64_t>::max() / uint64_t(esize) &&
               numel * uint64_t(esize) == end - begin,
           where, ": shape needs ", numel, " x ", esize, " bytes but data_offsets span ", end - begin);
  e.data = file->data() + data_start + begin;
  e.nbytes = end - begin;
  e.file = file;
  return e;
}

}  // namespace

std::map<std::string, std::string> read_safetensors(const std::string& path, TensorStore& store) {
  const MappedFile* file = store.own(std::make_shared<MappedFile>(path));
  const std::string where = "[safetensors] " + path;
  SR_CHECK(file->size() >= 8, where, ": file too short for a header (", file->size(), " bytes)");
  const uint64_t n = read_u64_le(file->data());
  SR_CHECK(n <= kMaxHeaderBytes && n <= file->size() - 8, where, ": header length ", n,
           " exceeds the file (", file->size(), " bytes) or the 100 MB limit");
  const std::string_view text(reinterpret_cast<const char*>(file->data()) + 8, size_t(n));
  check_json_depth(text, where + " (header)", limits::kMaxJsonDepth);
  json header;
  std::set<std::string> names;  // nlohmann keeps the last of two equal keys: refuse them instead
  try {
    header = json::parse(text.begin(), text.end(), [&](int depth, json::parse_event_t ev, json& parsed) {
      if (ev == json::parse_event_t::key && depth == 1)
        SR_CHECK(names.insert(parsed.get<std::string>()).second, where, ": tensor '", parsed.get<std::string>(),
                 "' appears twice in the header");
      return true;
    });
  } catch (const json::exception& ex) {
    fail(where, ": header is not valid JSON: ", ex.what());
  }
  SR_CHECK(header.is_object(), where, ": header is not a JSON object");
  std::map<std::string, std::string> metadata;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      SR_CHECK(it->is_object(), where, ": __metadata__ is not an object");
      for (auto m = it->begin(); m != it->end(); ++m)
        if (m->is_string()) metadata[m.key()] = m->get<std::string>();
      continue;
    }
    store.add(parse_entry(it.key(), *it, file, 8 + n));
  }
  return metadata;
}

TensorStore read_safetensors_folder(const std::string& dir) {
  TensorStore store;
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single = fs::path(dir) / "model.safetensors";
  if (!fs::exists(index)) {
    SR_CHECK(fs::exists(single), "[model] ", dir,
             ": no model.safetensors or model.safetensors.index.json (only safetensors weights are read;"
             " convert .bin/.pt checkpoints first)");
    read_safetensors(single.string(), store);
    return store;
  }
  const json idx = read_json_file(index.string());
  SR_CHECK(idx.is_object() && idx.contains("weight_map") && idx["weight_map"].is_object(),
           "[safetensors] ", index.string(), ": missing object 'weight_map'");
  std::set<std::string> shards;
  for (auto& kv : idx["weight_map"].items()) {
    SR_CHECK(kv.value().is_string(), "[safetensors] ", index.string(), ": weight_map['", kv.key(),
             "'] is not a file name");
    const std::string shard = kv.value().get<std::string>();
    SR_CHECK(shard.find('/') == std::string::npos, "[safetensors] ", index.string(),
             ": shard name '", shard, "' must be a plain file name");
    shards.insert(shard);
  }
  for (const std::string& s : shards) {
    const fs::path p = fs::path(dir) / s;
    SR_CHECK(fs::exists(p), "[safetensors] ", index.string(), " names shard ", s,
             " which does not exist");
    read_safetensors(p.string(), store);
  }
  for (auto& kv : idx["weight_map"].items()) {
    const TensorEntry* e = store.find(kv.key());
    SR_CHECK(e && fs::path(e->file->path()).filename() == kv.value().get<std::string>(),
             "[safetensors] ", index.string(), ": tensor '", kv.key(), "' is not in shard ",
             kv.value().get<std::string>());
  }
  return store;
}

// ---- writer ----

std::string safetensors_header(const std::vector<SafetensorsEntry>& entries,
                               const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  for (const SafetensorsEntry& e : entries)
    h[e.name] = {{"dtype", e.dtype}, {"shape", e.shape}, {"data_offsets", {e.begin, e.end}}};
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::string text = h.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');  // the data section starts 8-byte aligned
  std::string out(8, '\0');
  for (size_t i = 0; i < 8; ++i) out[i] = char(uint8_t(uint64_t(text.size()) >> (8 * i)));
  return out + text;
}

void SafetensorsWriter::declare(const std::string& name, const std::string& dtype,
                                const std::vector<int64_t>& shape) {
  SR_CHECK(!out_.is_open(), "[safetensors] declare('", name, "') after begin()");
  const int esize = dtype_size(dtype);
  SR_CHECK(esize > 0, "[safetensors] tensor '", name, "': unsupported dtype ", dtype);
  for (auto& d : decls_) SR_CHECK(d.name != name, "[safetensors] duplicate tensor '", name, "'");
  const uint64_t bytes = checked_numel(shape, "[safetensors] tensor '" + name + "'") * esize;
  decls_.push_back({name, dtype, shape, data_bytes_, data_bytes_ + bytes});
  data_bytes_ += bytes;
}

uint64_t SafetensorsWriter::total_bytes() const { return safetensors_header(decls_, metadata_).size() + data_bytes_; }

void SafetensorsWriter::begin(const std::string& path) {
  path_ = path;
  const std::string header = safetensors_header(decls_, metadata_);
  out_.open(path, std::ios::binary | std::ios::trunc);
  SR_CHECK(out_.good(), "[safetensors] cannot create ", path);
  out_.write(header.data(), std::streamsize(header.size()));
}

void SafetensorsWriter::write(const std::string& name, const void* data, uint64_t nbytes) {
  SR_CHECK(out_.is_open(), "[safetensors] write('", name, "') before begin()");
  SR_CHECK(next_ < decls_.size() && decls_[next_].name == name, "[safetensors] ", path_,
           ": tensor '", name, "' written out of declared order");
  const SafetensorsEntry& d = decls_[next_];
  SR_CHECK(nbytes == d.end - d.begin, "[safetensors] ", path_, ": tensor '", name, "' has ", nbytes,
           " bytes, declared ", d.end - d.begin);
  out_.write(static_cast<const char*>(data), std::streamsize(nbytes));
  SR_CHECK(out_.good(), "[safetensors] write error on ", path_);
  ++next_;
}

void SafetensorsWriter::finish() {
  SR_CHECK(next_ == decls_.size(), "[safetensors] ", path_, ": only ", next_, " of ", decls_.size(),
           " declared tensors were written");
  out_.flush();
  SR_CHECK(out_.good(), "[safetensors] write error on ", path_);
  out_.close();
}

}  // namespace sr
