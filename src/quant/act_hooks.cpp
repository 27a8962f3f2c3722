#include "quant/act_hooks.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/input_file.h"
#include "common/json_parse.h"
#include "common/limits.h"
#include "model/packed_weights.h"
#include "model/tensor_convert.h"
#include "quant/autoround_scheme.h"
#include "quant/block_quant.h"
#include "quant/qdq.h"

namespace sr {
namespace fs = std::filesystem;

namespace {

struct Entry { QuantScheme scheme; ActQuantState act; };
using Entries = std::map<std::pair<int64_t, int>, Entry>;

// quantization.json (written by every signround export): per-layer schemes and the exact
// calibrated act_max.
Entries entries_from_record(const Model& model, const fs::path& rec) {
  const nlohmann::json j = parse_json_text(read_input_file(rec.string(), limits::kMaxJsonFileBytes),
                                           "[quantization] " + rec.string());
  Entries entries;
  const int64_t L = model.config().n_layers;
  for (int64_t b = 0; b < L; ++b) {
    for (Proj p : kAllProjs) {
      const std::string name = layer_name(b, p);
      if (!j.contains("layers") || !j["layers"].contains(name)) continue;
      QuantScheme s = QuantScheme::from_json(j["layers"][name]);
      if (!s.quantized() || !s.act_quantized()) continue;
      Entry e{s, {}};
      if (j.contains("act_max") && j["act_max"].contains(name))
        e.act.act_max = at::scalar_tensor(j["act_max"][name].get<double>(), at::kFloat);
      entries[{b, int(p)}] = e;
    }
  }
  return entries;
}

// An act_max whose NVFP4 global scale 2688·recip(act_max) (nvfp::qdq_act) is exactly `gs`:
// 2688/gs, moved by a few ulps when the division rounds the other way.
at::Tensor act_max_for_global_scale(float gs, const std::string& tensor) {
  SR_CHECK(std::isfinite(gs) && gs > 0, "[quantization] ", tensor, " must be finite and > 0, got ", gs);
  float a = 2688.0f / gs;
  auto gs_of = [](float x) { return nvfp::global_scale(at::scalar_tensor(x, at::kFloat)).item<float>(); };
  for (int i = 0; i < 8 && gs_of(a) != gs; ++i) a = std::nextafter(a, gs_of(a) > gs ? INFINITY : 0.0f);
  return at::scalar_tensor(a, at::kFloat);
}

// Folders without quantization.json (auto-round's own): the schemes from config.json's
// quantization_config, static NVFP4 input scales from <layer>.input_global_scale.
Entries entries_from_config(const Model& model) {
  Entries entries;
  const PackedWeights* pw = model.packed_weights();
  if (!pw) return entries;
  const QuantConfig& qc = pw->config();
  for (int64_t b = 0; b < model.config().n_layers; ++b) {
    for (Proj p : kAllProjs) {
      const std::string name = layer_name(b, p);
      QuantScheme s = scheme_from_autoround_json(qc.layer_fields(name), qc.source + " layer " + name);
      if (!s.quantized() || !s.act_quantized()) continue;
      Entry e{s, {}};
      if (s.act_data_type == DataType::NvFp && !s.act_dynamic) {
        const TensorEntry* t = model.tensors().find(name + ".input_global_scale");
        SR_CHECK(t, "[quantization] ", qc.source, ": ", name, " has static NVFP4 activations but tensor '", name,
                 ".input_global_scale' is missing");
        e.act.act_max = act_max_for_global_scale(entry_to_float(*t).reshape({-1})[0].item<float>(), t->describe());
      }
      entries[{b, int(p)}] = e;
    }
  }
  return entries;
}

}  // namespace

int install_activation_quantization(Model& model) {
  const fs::path dir = fs::is_directory(model.path()) ? fs::path(model.path()) : fs::path(model.path()).parent_path();
  const fs::path rec = dir / "quantization.json";
  Entries entries = fs::exists(rec) ? entries_from_record(model, rec) : entries_from_config(model);
  if (entries.empty()) return 0;
  // Per block: the act-quantized projections' schemes and states, the rest left as they are.
  const int64_t L = model.config().n_layers;
  auto blocks = std::make_shared<std::vector<std::pair<BlockSchemes, std::array<ActQuantState, kProjCount>>>>(
      size_t(L), std::make_pair(unquantized_block(), std::array<ActQuantState, kProjCount>{}));
  for (const auto& [key, e] : entries) {
    (*blocks)[size_t(key.first)].first[size_t(key.second)] = e.scheme;
    (*blocks)[size_t(key.first)].second[size_t(key.second)] = e.act;
  }
  model.set_input_hooks([blocks](int64_t block) -> InputHook {
    const auto& [schemes, act] = (*blocks)[size_t(block)];
    return block_activation_hook(schemes, act, StaticRange::Calibrated);
  });
  return int(entries.size());
}

}  // namespace sr
