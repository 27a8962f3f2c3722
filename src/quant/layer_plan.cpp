#include "quant/layer_plan.h"

#include <cstdio>
#include <fstream>

#include "common/error.h"
#include "common/json_parse.h"
#include "common/safe_regex.h"

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
  for (const LayerChoice& c : layers) layers_json[c.name] = nlohmann::ordered_json::parse(c.scheme.to_json().dump());
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

namespace {

struct Override {
  std::string key;
  QuantScheme scheme;
  bool exact;         // key names a layer exactly
  SafeRegex pattern;
  bool used = false;
};

std::vector<Override> read_overrides(const std::string& path, const std::vector<LayerChoice>& layers) {
  nlohmann::ordered_json j;
  try {
    j = read_ordered_json_file(path);
  } catch (const Error& ex) {
    fail("[layer config] ", ex.what());
  }
  // Accept both the bare mapping and the {"layers": {...}} record we write ourselves.
  if (j.is_object() && j.contains("layers") && j["layers"].is_object()) j = j["layers"];
  SR_CHECK(j.is_object(), "[layer config] ", path, ": expected an object mapping layer names or regexes to schemes");
  std::vector<Override> out;
  for (auto& [key, value] : j.items()) {
    Override o;
    o.key = key;
    try {
      o.scheme = QuantScheme::from_json(nlohmann::json::parse(value.dump()));
    } catch (const Error& e) {
      fail("[layer config] ", path, ": entry '", key, "': ", e.what());
    }
    o.exact = false;
    for (const LayerChoice& c : layers) o.exact |= c.name == key;
    if (!o.exact) o.pattern = SafeRegex(key, "[layer config] " + path);  // neither a layer name nor a safe pattern: throws
    out.push_back(std::move(o));
  }
  return out;
}

}  // namespace

LayerPlan make_layer_plan(const Model& model, const PlanOptions& opt) {
  opt.scheme.validate();
  LayerPlan plan;
  plan.block = model.block_desc();
  for (const LinearInfo& l : model.linears()) {
    if (l.block < 0 && !opt.quant_lm_head) continue;
    auto d = opt.layer_defaults.find(l.name);
    if (d == opt.layer_defaults.end()) plan.layers.push_back({l.name, l.block, l.linear, l.out, l.in, opt.scheme, "default"});
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
    std::vector<Override> ovs = read_overrides(opt.override_file, plan.layers);
    for (LayerChoice& c : plan.layers) {
      Override* hit = nullptr;
      for (Override& o : ovs) if (o.exact && o.key == c.name) { hit = &o; break; }
      if (!hit)
        for (Override& o : ovs) if (!o.exact && o.pattern.search(c.name)) { hit = &o; break; }
      if (!hit) continue;
      hit->used = true;
      c.scheme = hit->scheme;
      c.source = "override: " + hit->key;
      c.origin = SchemeOrigin::Override;
    }
    for (const Override& o : ovs)
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
