#include "quant/quantized_layer.h"

#include <map>

#include "common/error.h"
#include "common/json_parse.h"
#include "model/tensor_convert.h"

namespace sr {
namespace {

// The fields of Encoded a block state stores, by tensor-name suffix.
const std::pair<const char*, at::Tensor Encoded::*> kEncodedParts[] = {
    {".codes", &Encoded::codes},   {".scales", &Encoded::scales}, {".zeros", &Encoded::zeros},
    {".global_scale", &Encoded::global_scale}, {".ggml", &Encoded::ggml}};

}  // namespace

void save_block_state(const std::string& path, const std::vector<QuantizedLayer>& layers,
                      const nlohmann::json& stats) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  nlohmann::json schemes = nlohmann::json::object();
  auto add = [&](const std::string& name, const at::Tensor& t) {
    if (t.defined()) tensors.emplace_back(name, t);
  };
  for (const QuantizedLayer& l : layers) {
    schemes[l.name] = l.scheme.to_json();
    for (const auto& [suffix, field] : kEncodedParts) add(l.name + suffix, l.encoded.*field);
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
  const nlohmann::json schemes = parse_json_text(meta["layers"], "[state] " + path + " (metadata 'layers')");
  if (stats) *stats = parse_json_text(meta.count("stats") ? meta["stats"] : "{}", "[state] " + path + " (metadata 'stats')");
  SR_CHECK(schemes.is_object(), "[state] ", path, ": metadata 'layers' is not an object");
  // Scales, zero points and ranges must be finite: NaN scales would flow into the final model.
  for (const auto& [name, t] : tensors)
    if (t.is_floating_point() && t.numel() > 0)
      SR_CHECK(at::isfinite(t).all().item<bool>(), "[state] ", path, ": tensor ", name,
               " holds NaN or infinite values; the saved state is corrupt, delete the .partial folder to start over");
  for (const auto& item : schemes.items()) {
    const std::string name = item.key();  // a copy, not a binding: the lambda below captures it
    const nlohmann::json& scheme = item.value();
    QuantizedLayer l;
    l.name = name;
    try {
      l.scheme = QuantScheme::from_json(scheme);
    } catch (const Error& e) {
      fail("[state] ", path, ": layer ", name, ": ", e.what());
    }
    auto get = [&](const std::string& suffix) {
      auto it = by_name.find(name + suffix);
      return it == by_name.end() ? at::Tensor() : it->second;
    };
    for (const auto& [suffix, field] : kEncodedParts) l.encoded.*field = get(suffix);
    if (auto m = get(".act_max"); m.defined()) l.act.act_max = m.reshape({});
    for (const auto& [part, t] : {std::pair<const char*, const at::Tensor&>{".codes", l.encoded.codes},
                                  {".zeros", l.encoded.zeros}, {".ggml", l.encoded.ggml}})
      SR_CHECK(!t.defined() || t.scalar_type() == at::kByte, "[state] ", path, ": tensor ", name, part, " is ",
               dtype_name(t.scalar_type()), ", expected U8; the saved state is corrupt");
    if (l.scheme.is_gguf())
      SR_CHECK(l.encoded.ggml.defined(), "[state] ", path, ": ", l.scheme.name(), " layer ", name, " lacks its ggml rows");
    else
      SR_CHECK(l.encoded.codes.defined() && l.encoded.scales.defined(), "[state] ", path, ": layer ", name,
               " lacks codes or scales");
    out.push_back(std::move(l));
  }
  return out;
}

at::Tensor decode_saved_layer(const QuantizedLayer& l, const QuantScheme& planned, int64_t out, int64_t in,
                              const std::string& file) {
  SR_CHECK(l.scheme == planned, "[state] ", file, ": layer ", l.name, " was saved as ", l.scheme.name(),
           " but the plan quantizes it as ", planned.name(), "; delete the .partial folder to start over");
  const at::Tensor& codes = l.encoded.codes;
  SR_CHECK(!codes.defined() || (codes.dim() == 2 && codes.size(0) == out && codes.size(1) == in), "[state] ", file,
           ": layer ", l.name, " has codes of shape ", codes.sizes(), ", the model's weight is [", out, ", ", in, "]");
  at::Tensor w;
  try {
    w = l.dequantized();
  } catch (const std::exception& e) {  // codes/scales of the wrong shape or dtype
    fail("[state] ", file, ": layer ", l.name, " cannot be decoded as ", l.scheme.name(), " (", e.what(),
         "); the saved state is corrupt, delete the .partial folder to start over");
  }
  SR_CHECK(w.dim() == 2 && w.size(0) == out && w.size(1) == in, "[state] ", file, ": layer ", l.name,
           " decodes to shape ", w.sizes(), ", the model's is [", out, ", ", in, "]");
  SR_CHECK(at::isfinite(w).all().item<bool>(), "[state] ", file, ": layer ", l.name,
           " decodes to NaN or infinite weights; the saved state is corrupt, delete the .partial folder");
  return w;
}

}  // namespace sr
