#include "quant/layer_plan.h"

#include <cstdio>

#include "common/error.h"
#include "quant/layer_config.h"

namespace sr {

const LayerChoice* LayerPlan::find(const std::string& name) const {
  for (const LayerChoice& c : layers) if (c.name == name) return &c;
  return nullptr;
}

const LayerChoice* LayerPlan::find(int64_t block, int linear) const {
  for (const LayerChoice& c : layers) if (c.block == block && c.linear == linear) return &c;
  return nullptr;
}

nlohmann::ordered_json LayerPlan::to_json() const {
  nlohmann::ordered_json layers_json = nlohmann::ordered_json::object();
  for (const LayerChoice& c : layers) layers_json[c.name] = c.scheme.to_json();
  return layers_json;
}

int64_t LayerPlan::quantized_count() const {
  int64_t n = 0;
  for (const LayerChoice& c : layers) n += c.quantized();
  return n;
}

double LayerPlan::average_bits(bool ignore) const {
  double bits = 0, weights = 0;
  for (const LayerChoice& c : layers) {
    bits += double(layer_bits(c.scheme, c.out, c.in, ignore));
    weights += double(c.out) * double(c.in);
  }
  return weights > 0 ? bits / weights : 0;
}

LayerPlan make_layer_plan(const Model& model, const PlanOptions& opt) {
  opt.scheme.validate();
  LayerPlan plan;
  plan.blocks = model.block_descs();
  for (const LinearInfo& l : model.linears()) {
    if (l.block < 0 && !opt.quant_lm_head) continue;
    auto d = opt.layer_defaults.find(l.name);
    const bool router = l.linear >= 0 && plan.blocks[l.block].linears[size_t(l.linear)].keep_16bit;
    if (d == opt.layer_defaults.end() && router)
      plan.layers.push_back({l.name, l.block, l.linear, l.out, l.in, preset_scheme("BF16"),
                             "router: 16-bit unless a layer config names it", SchemeOrigin::LayerDefault});
    else if (d == opt.layer_defaults.end()) plan.layers.push_back({l.name, l.block, l.linear, l.out, l.in, opt.scheme, "default"});
    else plan.layers.push_back({l.name, l.block, l.linear, l.out, l.in, d->second.scheme, d->second.source,
                                SchemeOrigin::LayerDefault});
  }
  if (opt.quant_lm_head && model.config().tie_embeddings) {
    std::fprintf(stderr, "note: quant_lm_head ignored: lm_head is tied to the embeddings\n");
    plan.layers.pop_back();
  }
  for (const auto& [name, scheme] : opt.layer_schemes) {
    LayerChoice* c = nullptr;
    for (LayerChoice& l : plan.layers)
      if (l.name == name) c = &l;
    SR_CHECK(c, "[layer plan] a scheme for '", name, "': the model has no such quantizable layer");
    c->scheme = scheme;
    c->source = "override: " + name;
    c->origin = SchemeOrigin::Override;
  }
  if (!opt.override_file.empty()) {
    std::vector<std::string> names;
    for (const LayerChoice& c : plan.layers) names.push_back(c.name);
    std::vector<LayerOverride> ovs = read_layer_config(opt.override_file, names);
    for (LayerChoice& c : plan.layers) {
      LayerOverride* hit = find_layer_override(ovs, c.name);
      if (!hit) continue;
      hit->used = true;
      c.scheme = hit->scheme;
      c.source = "override: " + hit->key;
      c.origin = SchemeOrigin::Override;
    }
    for (const LayerOverride& o : ovs)
      SR_CHECK(o.used, "[layer config] ", opt.override_file, ": key '", o.key, "' matches no quantizable layer");
  }
  for (LayerChoice& c : plan.layers) {
    if (!c.scheme.quantized()) continue;
    FitResult f = fits(c.scheme, c.out, c.in);
    if (f.ok) continue;
    std::fprintf(stderr, "note: %s [%lld, %lld] stays 16-bit: %s\n", c.name.c_str(), (long long)c.out,
                 (long long)c.in, f.reason.c_str());
    c.source = "kept: " + f.reason;
    c.origin = SchemeOrigin::Kept;
    c.scheme = preset_scheme("BF16");
  }
  return plan;
}

}  // namespace sr
