#include "quant/layer_config.h"

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json_parse.h"

namespace sr {

std::vector<LayerOverride> read_layer_config(const std::string& path, const std::vector<std::string>& layer_names) {
  nlohmann::ordered_json j;
  try {
    j = read_ordered_json_file(path);
  } catch (const Error& ex) {
    fail("[layer config] ", ex.what());
  }
  // Accept both the bare mapping and the {"layers": {...}} record we write ourselves.
  if (j.is_object() && j.contains("layers") && j["layers"].is_object()) j = j["layers"];
  SR_CHECK(j.is_object(), "[layer config] ", path, ": expected an object mapping layer names or regexes to schemes");
  std::vector<LayerOverride> out;
  for (auto& [key, value] : j.items()) {
    LayerOverride o;
    o.key = key;
    try {
      o.scheme = QuantScheme::from_json(value);
    } catch (const Error& e) {
      fail("[layer config] ", path, ": entry '", key, "': ", e.what());
    }
    for (const std::string& n : layer_names) o.exact |= n == key;
    if (!o.exact) o.pattern = SafeRegex(key, "[layer config] " + path);  // neither a layer name nor a safe pattern: throws
    out.push_back(std::move(o));
  }
  return out;
}

LayerOverride* find_layer_override(std::vector<LayerOverride>& overrides, const std::string& name) {
  for (LayerOverride& o : overrides)
    if (o.exact && o.key == name) return &o;
  for (LayerOverride& o : overrides)
    if (!o.exact && o.pattern.search(name)) return &o;
  return nullptr;
}

}  // namespace sr
