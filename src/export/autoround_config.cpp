#include "export/autoround_config.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "common/error.h"
#include "quant/formats/autoround_scheme.h"

namespace sr {
namespace {

bool same(double a, double b) { return std::fabs(a - b) <= 1e-12 * std::max(std::fabs(a), std::fabs(b)); }

// auto-round filter_quantization_config: only hyper-parameters that differ from the defaults.
void add_tuning_overrides(nlohmann::ordered_json& q, const std::optional<TuningRecipe>& recipe, int default_bits) {
  if (!recipe) return;
  const TuningRecipe& r = *recipe;
  if (r.iters != 200) q["iters"] = r.iters;
  const double lr_default = r.iters > 0 ? 1.0 / double(r.iters) : 5e-3;
  double lr = r.lr;
  if (lr <= 0) lr = r.iters >= 1000 && default_bits <= 3 ? 2.0 / double(r.iters) : lr_default;  // our auto rule
  const double minmax = r.minmax_lr > 0 ? r.minmax_lr : lr;
  if (!same(lr, lr_default)) q["lr"] = lr;
  if (!same(minmax, lr_default)) q["minmax_lr"] = minmax;
  const std::tuple<const char*, int64_t, int64_t> ints[] = {  // key, value, auto-round's default
      {"batch_size", r.batch_size, 8}, {"gradient_accumulate_steps", r.gradient_accumulate_steps, 1},
      {"nsamples", r.nsamples, 128}, {"seqlen", r.seqlen, 2048}};
  for (const auto& [key, value, fallback] : ints)
    if (value != fallback) q[key] = value;
  if (!r.enable_minmax_tuning) q["enable_minmax_tuning"] = false;
  if (!r.enable_quanted_input) q["enable_quanted_input"] = false;
  if (!r.dataset.empty() && r.dataset != "NeelNanda/pile-10k") q["dataset"] = r.dataset;
}

// The keys of `layer` that differ from `base` (act_* other than act_bits only when either
// side quantizes activations).
nlohmann::ordered_json differing_keys(const QuantScheme& layer, const QuantScheme& base) {
  const nlohmann::ordered_json a = autoround_scheme_json(layer), b = autoround_scheme_json(base);
  const bool acts = layer.act_quantized() || base.act_quantized();
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& [k, v] : a.items()) {
    if (!acts && k.rfind("act_", 0) == 0 && k != "act_bits") continue;
    if (v != b[k]) out[k] = v;
  }
  return out;
}

}  // namespace

QuantScheme plan_default_scheme(const LayerPlan& plan) {
  for (const LayerChoice& c : plan.layers)
    if (c.origin == SchemeOrigin::Default && c.quantized()) return c.scheme;
  std::vector<std::pair<QuantScheme, int>> counts;  // in first-seen order, which breaks ties
  for (const LayerChoice& c : plan.layers) {
    if (!c.quantized()) continue;
    auto it = std::find_if(counts.begin(), counts.end(), [&](const auto& e) { return e.first == c.scheme; });
    if (it == counts.end()) counts.push_back({c.scheme, 1});
    else ++it->second;
  }
  SR_CHECK(!counts.empty(), "[export] the layer plan quantizes no layer: nothing to pack (use format fake)");
  return std::max_element(counts.begin(), counts.end(), [](const auto& a, const auto& b) { return a.second < b.second; })
      ->first;
}

std::string layer_regex(const std::string& name) {
  std::string r = ".*";
  for (char ch : name) {
    if (ch == '.') r += '\\';
    r += ch;
  }
  return r + ".*";
}

nlohmann::ordered_json autoround_quantization_config(const LayerPlan& plan, const std::string& packing_format,
                                                     const std::optional<TuningRecipe>& recipe) {
  const QuantScheme def = plan_default_scheme(plan);
  const nlohmann::ordered_json ds = autoround_scheme_json(def);
  nlohmann::ordered_json q;
  for (const char* k : {"bits", "group_size", "sym", "data_type"}) q[k] = ds[k];
  add_tuning_overrides(q, recipe, def.bits);
  if (def.act_quantized())
    for (const char* k : {"act_bits", "act_group_size", "act_sym", "act_data_type", "act_dynamic"}) q[k] = ds[k];
  q["quant_method"] = "auto-round";
  q["packing_format"] = packing_format;
  q["block_name_to_quantize"] = "model.layers";
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
  for (const LayerChoice& c : plan.layers) {
    if (c.block < 0) {
      if (c.quantized()) extra[c.name] = autoround_scheme_json(c.scheme);
      continue;
    }
    nlohmann::ordered_json d = differing_keys(c.scheme, def);
    if (!d.empty()) extra[c.name] = d;
  }
  if (!extra.empty()) q["extra_config"] = extra;
  return q;
}

nlohmann::ordered_json gptq_quantization_config(const LayerPlan& plan, const std::optional<TuningRecipe>& recipe) {
  const QuantScheme def = plan_default_scheme(plan);
  nlohmann::ordered_json q = {
      {"bits", def.bits}, {"group_size", def.group_size}, {"sym", def.sym}, {"data_type", "int"}};
  add_tuning_overrides(q, recipe, def.bits);
  nlohmann::ordered_json dynamic = nlohmann::ordered_json::object();
  for (const LayerChoice& c : plan.layers) {
    if (c.block < 0) continue;
    if (!c.quantized()) {
      dynamic["-:" + layer_regex(c.name)] = nlohmann::ordered_json::object();
    } else if (c.scheme.bits != def.bits || c.scheme.group_size != def.group_size || c.scheme.sym != def.sym) {
      dynamic["+:" + layer_regex(c.name)] = {{"bits", c.scheme.bits}, {"group_size", c.scheme.group_size},
                                             {"sym", c.scheme.sym}};
    }
  }
  q["lm_head"] = false;
  q["provider"] = "signround";
  q["quant_method"] = "gptq";
  q["desc_act"] = false;
  q["true_sequential"] = false;
  q["damp_percent"] = 0.01;
  if (!dynamic.empty()) q["dynamic"] = dynamic;
  return q;
}

}  // namespace sr
