#include "quant/quantized_layer.h"

#include <map>

#include "common/error.h"
#include "model/tensor_convert.h"

namespace sr {

void save_block_state(const std::string& path, const std::vector<QuantizedLayer>& layers,
                      const nlohmann::json& stats) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  nlohmann::json schemes = nlohmann::json::object();
  auto add = [&](const std::string& name, const at::Tensor& t) {
    if (t.defined()) tensors.emplace_back(name, t);
  };
  for (const QuantizedLayer& l : layers) {
    schemes[l.name] = l.scheme.to_json();
    add(l.name + ".codes", l.encoded.codes);
    add(l.name + ".scales", l.encoded.scales);
    add(l.name + ".zeros", l.encoded.zeros);
    add(l.name + ".global_scale", l.encoded.global_scale);
    add(l.name + ".ggml", l.encoded.ggml);
    add(l.name + ".act_max", l.act.act_max.defined() ? l.act.act_max.reshape({1}) : at::Tensor());
  }
  save_tensors(path, tensors, {{"layers", schemes.dump()}, {"stats", stats.dump()}});
}

std::vector<QuantizedLayer> load_block_state(const std::string& path, nlohmann::json* stats) {
  std::map<std::string, std::string> meta;
  auto tensors = load_tensors(path, &meta);
  SR_CHECK(meta.count("layers"), "[state] ", path, " is not a signround block state (no 'layers' metadata)");
  std::map<std::string, at::Tensor> by_name(tensors.begin(), tensors.end());
  std::vector<QuantizedLayer> out;
  nlohmann::json schemes;
  try {
    schemes = nlohmann::json::parse(meta["layers"]);
    if (stats) *stats = nlohmann::json::parse(meta.count("stats") ? meta["stats"] : "{}");
  } catch (const nlohmann::json::exception& ex) {
    fail("[state] ", path, ": malformed metadata: ", ex.what());
  }
  for (auto& [name, scheme] : schemes.items()) {
    QuantizedLayer l;
    l.name = name;
    l.scheme = QuantScheme::from_json(scheme);
    auto get = [&](const std::string& suffix) {
      auto it = by_name.find(name + suffix);
      return it == by_name.end() ? at::Tensor() : it->second;
    };
    l.encoded.codes = get(".codes");
    l.encoded.scales = get(".scales");
    l.encoded.zeros = get(".zeros");
    l.encoded.global_scale = get(".global_scale");
    l.encoded.ggml = get(".ggml");
    if (auto m = get(".act_max"); m.defined()) l.act.act_max = m.reshape({});
    if (l.scheme.is_gguf())
      SR_CHECK(l.encoded.ggml.defined(), "[state] ", path, ": ", l.scheme.name(), " layer ", name, " lacks its ggml rows");
    else
      SR_CHECK(l.encoded.codes.defined() && l.encoded.scales.defined(), "[state] ", path, ": layer ", name,
               " lacks codes or scales");
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace sr
