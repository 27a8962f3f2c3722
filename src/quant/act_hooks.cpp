#include "quant/act_hooks.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "quant/qdq.h"

namespace sr {
namespace fs = std::filesystem;

int install_activation_quantization(Model& model) {
  const fs::path dir = fs::is_directory(model.path()) ? fs::path(model.path()) : fs::path(model.path()).parent_path();
  const fs::path rec = dir / "quantization.json";
  if (!fs::exists(rec)) return 0;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(std::ifstream(rec));
  } catch (const nlohmann::json::exception& ex) {
    fail("[quantization] ", rec.string(), ": not valid JSON: ", ex.what());
  }
  struct Entry { QuantScheme scheme; ActQuantState act; };
  std::map<std::pair<int64_t, int>, Entry> entries;
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
  if (entries.empty()) return 0;
  auto shared = std::make_shared<std::map<std::pair<int64_t, int>, Entry>>(std::move(entries));
  model.set_input_hooks([shared](int64_t block) -> InputHook {
    return [shared, block](Proj p, const at::Tensor& x) {
      auto it = shared->find({block, int(p)});
      return it == shared->end() ? x : qdq_act(x, it->second.scheme, it->second.act);
    };
  });
  return int(shared->size());
}

}  // namespace sr
