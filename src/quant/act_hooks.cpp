#include "quant/act_hooks.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>

#include "common/error.h"
#include "common/input_file.h"
#include "common/json_parse.h"
#include "common/limits.h"
#include "model/packed_weights.h"
#include "model/tensor_convert.h"
#include "quant/formats/autoround_scheme.h"
#include "quant/block_quant.h"
#include "quant/qdq.h"

namespace sr {
namespace fs = std::filesystem;

namespace {

// Per block: the act-quantized linears' schemes and states, the rest left as they are.
struct BlockActs {
  BlockSchemes schemes;
  std::vector<ActQuantState> act;
};
struct ModelActs {
  std::vector<BlockActs> blocks;
  int count = 0;  // act-quantized linears

  // of(name, act) -> the scheme of the linear `name` when it quantizes activations (filling
  // act where the scheme needs a calibrated range), else nullopt.
  template <class Of>
  ModelActs(const Model& m, Of of) {
    for (int64_t b = 0; b < m.config().n_layers; ++b) {
      const BlockDesc& d = m.block_desc(b);
      blocks.push_back(BlockActs{unquantized_block(d), std::vector<ActQuantState>(d.linears.size())});
      for (size_t i = 0; i < d.linears.size(); ++i) {
        ActQuantState a;
        const std::optional<QuantScheme> s = of(linear_name(d, b, int(i)), a);
        if (!s) continue;
        blocks[size_t(b)].schemes[i] = *s;
        blocks[size_t(b)].act[i] = a;
        ++count;
      }
    }
  }
};

// quantization.json (written by every signround export): per-layer schemes and the exact
// calibrated act_max.
ModelActs acts_from_record(const Model& model, const fs::path& rec) {
  const nlohmann::json j = parse_json_text(read_input_file(rec.string(), limits::kMaxJsonFileBytes),
                                           "[quantization] " + rec.string());
  return ModelActs(model, [&](const std::string& name, ActQuantState& a) -> std::optional<QuantScheme> {
    if (!j.contains("layers") || !j["layers"].contains(name)) return std::nullopt;
    QuantScheme s = QuantScheme::from_json(j["layers"][name]);
    if (!s.quantized() || !s.act_quantized()) return std::nullopt;
    if (j.contains("act_max") && j["act_max"].contains(name))
      a.act_max = at::scalar_tensor(j["act_max"][name].get<double>(), at::kFloat);
    return s;
  });
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
ModelActs acts_from_config(const Model& model) {
  const PackedWeights* pw = model.packed_weights();
  return ModelActs(model, [&](const std::string& name, ActQuantState& a) -> std::optional<QuantScheme> {
    if (!pw) return std::nullopt;
    const QuantConfig& qc = pw->config();
    QuantScheme s = scheme_from_autoround_json(qc.layer_fields(name), qc.source + " layer " + name);
    if (!s.quantized() || !s.act_quantized()) return std::nullopt;
    if (s.act_data_type == DataType::NvFp && !s.act_dynamic) {
      const TensorEntry* t = model.tensors().find(name + ".input_global_scale");
      SR_CHECK(t, "[quantization] ", qc.source, ": ", name, " has static NVFP4 activations but tensor '", name,
               ".input_global_scale' is missing");
      a.act_max = act_max_for_global_scale(entry_to_float(*t).reshape({-1})[0].item<float>(), t->describe());
    }
    return s;
  });
}

}  // namespace

int install_activation_quantization(Model& model) {
  const fs::path dir = fs::is_directory(model.path()) ? fs::path(model.path()) : fs::path(model.path()).parent_path();
  const fs::path rec = dir / "quantization.json";
  auto acts = std::make_shared<const ModelActs>(fs::exists(rec) ? acts_from_record(model, rec) : acts_from_config(model));
  if (acts->count == 0) return 0;
  model.set_input_hooks([acts](int64_t block) -> InputHook {
    const BlockActs& b = acts->blocks[size_t(block)];
    return block_activation_hook(b.schemes, b.act, StaticRange::Calibrated);
  });
  return acts->count;
}

}  // namespace sr
