#include "alloc/score_cache.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "common/atomic_file.h"
#include "common/dist.h"
#include "common/error.h"
#include "common/json_parse.h"

namespace sr {
namespace fs = std::filesystem;

namespace {

// 64-bit FNV-1a of raw bytes.
uint64_t fnv1a64(const void* data, size_t bytes) {
  uint64_t h = 1469598103934665603ULL;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

constexpr int kCacheVersion = 1;  // bump when the score definition changes

nlohmann::json file_stamp(const fs::path& p) {
  const auto mtime = fs::last_write_time(p).time_since_epoch();
  return {{"name", p.filename().string()},
          {"bytes", int64_t(fs::file_size(p))},
          {"mtime", int64_t(std::chrono::duration_cast<std::chrono::seconds>(mtime).count())}};
}

// The model's files (a folder's regular files, or the file itself) by size and mtime.
nlohmann::json model_stamp(const Model& model) {
  const fs::path root = fs::absolute(model.path());
  nlohmann::json files = nlohmann::json::array();
  if (fs::is_directory(root)) {
    std::vector<fs::path> names;
    for (const auto& e : fs::directory_iterator(root))
      if (e.is_regular_file()) names.push_back(e.path());
    std::sort(names.begin(), names.end());
    for (const fs::path& p : names) files.push_back(file_stamp(p));
  } else {
    files.push_back(file_stamp(root));
  }
  return {{"path", root.lexically_normal().string()}, {"files", files}};
}

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", (unsigned long long)v);
  return buf;
}

}  // namespace

nlohmann::json deltaloss_cache_key(const Model& model, const std::vector<ScoredLayer>& layers,
                                   const QuantScheme& option, const at::Tensor& tokens, const DeltaLossOptions& opt) {
  const at::Tensor t = tokens.to(at::kLong).contiguous();
  nlohmann::json names = nlohmann::json::array();
  for (const ScoredLayer& l : layers) names.push_back(l.name);
  nlohmann::json key = {{"version", kCacheVersion},
          {"model", model_stamp(model)},
          {"tokens", {{"shape", t.sizes().vec()}, {"fnv1a64", hex64(fnv1a64(t.data_ptr(), size_t(t.nbytes())))}}},
          {"batch_size", opt.batch_size},
          {"weight_term", opt.weight_term},
          {"target", opt.target == DeltaLossTarget::Labels ? "labels" : "full_precision"},
          {"layers", names},
          {"option", option.to_json()}};
  // amp's scores are not fp32's: their own key (no field for fp32, so earlier entries stay valid).
  if (opt.amp) key["compute_dtype"] = "bf16";
  return key;
}

std::string default_score_cache_dir() {
  if (const char* d = std::getenv("SIGNROUND_CACHE_DIR"); d && *d) return (fs::path(d) / "deltaloss").string();
  if (const char* d = std::getenv("XDG_CACHE_HOME"); d && *d) return (fs::path(d) / "signround" / "deltaloss").string();
  if (const char* d = std::getenv("HOME"); d && *d) return (fs::path(d) / ".cache" / "signround" / "deltaloss").string();
  return "";
}

std::string ScoreCache::file_for(const nlohmann::json& key) const {
  const std::string text = key.dump();
  return (fs::path(dir_) / ("deltaloss-" + hex64(fnv1a64(text.data(), text.size())) + ".json")).string();
}

std::optional<DeltaLossScores> ScoreCache::load(const nlohmann::json& key) const {
  if (!enabled()) return std::nullopt;
  const std::string f = file_for(key);
  if (!fs::exists(f)) return std::nullopt;
  try {
    nlohmann::json j = read_json_file(f);
    if (j.at("key") != key) {
      std::fprintf(stderr, "note: score cache %s holds other settings; scoring again\n", f.c_str());
      return std::nullopt;
    }
    return DeltaLossScores::from_json(j.at("scores"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "note: score cache %s is unreadable (%s); scoring again\n", f.c_str(), e.what());
    return std::nullopt;
  }
}

void ScoreCache::store(const nlohmann::json& key, const DeltaLossScores& scores) const {
  if (!enabled()) return;
  std::error_code ec;
  fs::create_directories(dir_, ec);
  SR_CHECK(!ec, "[score cache] cannot create ", dir_, ": ", ec.message());
  write_file_atomically(file_for(key), nlohmann::json{{"key", key}, {"scores", scores.to_json()}}.dump(1) + "\n",
                        "[score cache]");
}

DeltaLossScores cached_deltaloss_scores(const ScoreCache& cache, const Model& model,
                                        const std::vector<ScoredLayer>& layers, const QuantScheme& option,
                                        const at::Tensor& tokens, const DeltaLossOptions& opt, bool* hit) {
  const nlohmann::json key = deltaloss_cache_key(model, layers, option, tokens, opt);
  // Data-parallel: rank 0's cache decides for every rank (the others may not see its disk).
  const bool rank0 = !opt.comm || opt.comm->rank() == 0;
  std::optional<DeltaLossScores> found = rank0 ? cache.load(key) : std::nullopt;
  if (found && found->score.size() != layers.size()) found.reset();
  if (rank0_says(opt.comm, found.has_value())) {
    if (hit) *hit = true;
    if (!opt.comm) return *found;
    const std::string record = rank0_string(opt.comm, rank0 ? found->to_json().dump() : std::string());
    return DeltaLossScores::from_json(nlohmann::json::parse(record));
  }
  if (hit) *hit = false;
  DeltaLossScores s = deltaloss_scores(model, layers, option, tokens, opt);
  if (rank0) cache.store(key, s);
  return s;
}

}  // namespace sr
