#include "model/quant_config.h"

#include <sstream>

#include "common/error.h"
#include "common/safe_regex.h"
#include "common/strings.h"
#include "quant/formats/autoround_scheme.h"

namespace sr {
namespace {

const char* kSchemeKeys[] = {"bits",          "group_size", "sym",           "data_type",  "act_bits",
                             "act_group_size", "act_sym",   "act_data_type", "act_dynamic"};

nlohmann::json scheme_keys_of(const nlohmann::json& j) {
  nlohmann::json out = nlohmann::json::object();
  for (const char* k : kSchemeKeys)
    if (j.contains(k) && !j[k].is_null()) out[k] = j[k];
  return out;
}

bool has_regex_syntax(const std::string& key) {
  for (const char* tok : {".*", "^", "$", "|", "(", ")", "[", "]", "?", "+"})
    if (key.find(tok) != std::string::npos) return true;
  return false;
}

bool key_matches(const std::string& key, const std::string& name, const std::string& source) {
  if (!has_regex_syntax(key)) return name.find(key) != std::string::npos;
  return SafeRegex(key, "[quantization_config] " + source + ": extra_config").search(name);
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.size() > prefix.size() && s.compare(0, prefix.size(), prefix) == 0 && s[prefix.size()] == '.';
}

// "model.layers" or "a.layers,b.layers" or ["model.layers"] or [["model.layers.0", ...]].
std::vector<std::string> block_names_of(const nlohmann::json& j) {
  std::vector<std::string> out;
  if (j.is_string()) {
    std::stringstream ss(j.get<std::string>());
    for (std::string item; std::getline(ss, item, ',');)
      if (!item.empty()) out.push_back(item);
  } else if (j.is_array()) {
    for (const auto& e : j) {
      if (e.is_string()) out.push_back(e.get<std::string>());
      else if (e.is_array() && !e.empty()) {  // full block names: use their common "x.layers" prefix
        std::string first = e[0].get<std::string>();
        out.push_back(first.substr(0, first.find_last_of('.')));
      }
    }
  }
  return out;
}

// packing_format -> (normalized name, zero offset). Throws on layouts this reader lacks.
std::pair<std::string, int> auto_round_packing(std::string pf, const std::string& path) {
  if (pf.find("llm_compressor") != std::string::npos) return {"auto_round:llm_compressor", 0};
  SR_CHECK(pf.find("awq") == std::string::npos && pf.find("fp8") == std::string::npos &&
               pf.find("mlx") == std::string::npos,
           "[quantization_config] ", path, ": packing_format '", pf,
           "' is not supported (supported: auto_round, auto_round:auto_gptq, auto_round:gptqmodel, "
           "auto_round:llm_compressor)");
  if (pf.find("gptqmodel") != std::string::npos) return {"auto_round:gptqmodel", 0};
  if (pf.find("gptq") != std::string::npos) return {"auto_round:auto_gptq", 1};
  SR_CHECK(pf.rfind("auto_round", 0) == 0, "[quantization_config] ", path, ": packing_format '", pf,
           "' is not an auto_round packing");
  return {"auto_round", 0};
}

void parse_auto_round(const nlohmann::json& q, const std::string& path, QuantConfig& c) {
  c.defaults = scheme_keys_of(q);
  std::string pf = q.contains("packing_format") ? q["packing_format"].get<std::string>()
                   : q.contains("backend")      ? q["backend"].get<std::string>()
                                                : "";
  if (pf.empty()) {  // old files: auto-round chose the GPTQ layout for sym INT
    const std::string dt = q.value("data_type", "int");
    pf = dt.rfind("mx", 0) == 0 || dt.rfind("nv", 0) == 0 ? "auto_round:llm_compressor"
         : q.value("sym", true)                           ? "auto_round:auto_gptq"
                                                          : "auto_round";
  }
  std::tie(c.packing_format, c.zero_offset) = auto_round_packing(pf, path);
  if (q.contains("extra_config") && !q["extra_config"].is_null()) {
    SR_CHECK(q["extra_config"].is_object(), "[quantization_config] ", path, ": extra_config must be an object");
    for (const auto& [k, v] : q["extra_config"].items()) {
      SR_CHECK(v.is_object(), "[quantization_config] ", path, ": extra_config['", k, "'] must be an object");
      c.extra.emplace_back(k, scheme_keys_of(v));
    }
  }
  if (q.contains("block_name_to_quantize")) c.block_names = block_names_of(q["block_name_to_quantize"]);
}

void parse_gptq(const nlohmann::json& q, const std::string& path, QuantConfig& c) {
  c.packing_format = "gptq";
  c.zero_offset = q.value("checkpoint_format", std::string("gptq")) == "gptq_v2" ? 0 : 1;
  c.defaults = {{"bits", q.at("bits")}, {"group_size", q.contains("group_size") ? q["group_size"] : nlohmann::json(-1)},
                {"sym", q.value("sym", true)}, {"data_type", "int"}};
  if (q.contains("dynamic") && q["dynamic"].is_object()) {
    for (const auto& [k, v] : q["dynamic"].items()) {
      if (k.rfind("-:", 0) == 0) c.extra.emplace_back(k.substr(2), nlohmann::json{{"bits", 16}});
      else c.extra.emplace_back(k.rfind("+:", 0) == 0 ? k.substr(2) : k, scheme_keys_of(v));
    }
  }
  c.lm_head_quantized = q.value("lm_head", false);
  if (q.contains("modules_in_block_to_quantize") && q["modules_in_block_to_quantize"].is_array())
    for (const auto& group : q["modules_in_block_to_quantize"])
      for (const auto& m : group) c.modules_in_block.push_back(m.get<std::string>());
}

}  // namespace

std::optional<QuantConfig> parse_quant_config(const nlohmann::json& config, const std::string& path) {
  if (!config.is_object() || !config.contains("quantization_config") || config["quantization_config"].is_null())
    return std::nullopt;
  const nlohmann::json& q = config["quantization_config"];
  SR_CHECK(q.is_object(), "[quantization_config] ", path, ": quantization_config must be an object, got ", q.dump());
  QuantConfig c;
  c.source = path;
  try {
    const std::string m = ascii_lower(q.value("quant_method", std::string()));
    if (m == "auto-round" || m == "intel/auto-round" || m == "auto_round") {
      c.quant_method = "auto-round";
      parse_auto_round(q, path, c);
    } else if (m == "gptq") {
      c.quant_method = "gptq";
      parse_gptq(q, path, c);
    } else {
      fail("[quantization_config] ", path, ": quant_method '", m,
           "' is not supported (supported: auto-round, gptq)");
    }
  } catch (const nlohmann::json::exception& e) {
    fail("[quantization_config] ", path, ": malformed quantization_config: ", e.what());
  }
  if (c.block_names.empty()) c.block_names = {"model.layers"};
  SR_CHECK(c.defaults.contains("bits") && c.defaults["bits"].is_number_integer(), "[quantization_config] ", path,
           ": 'bits' is missing or not an integer");
  return c;
}

nlohmann::json QuantConfig::layer_fields(const std::string& name) const {
  nlohmann::json f = defaults;
  const std::pair<std::string, nlohmann::json>* hit = nullptr;
  for (const auto& e : extra)
    if (e.first == name) { hit = &e; break; }
  if (!hit)
    for (const auto& e : extra)
      if (key_matches(e.first, name, source)) { hit = &e; break; }
  if (hit) {
    f.update(hit->second);
    return f;
  }
  bool in_block = false;
  for (const std::string& b : block_names) in_block = in_block || starts_with(name, b);
  bool quantized = in_block || (name == "lm_head" && lm_head_quantized);
  if (in_block && !modules_in_block.empty()) {
    quantized = false;
    for (const std::string& m : modules_in_block)
      quantized = quantized || (name.size() > m.size() && name.compare(name.size() - m.size(), m.size(), m) == 0);
  }
  if (!quantized) f["bits"] = 16;
  return f;
}

LayerQuantSpec QuantConfig::layer(const std::string& name) const {
  LayerQuantSpec s;
  s.scheme = scheme_from_autoround_json(layer_fields(name), source + ": layer " + name);
  const QuantScheme& q = s.scheme;
  if (!q.quantized()) return s;
  const DataType dt = q.data_type;
  SR_CHECK(dt == DataType::Int || dt == DataType::MxFp || dt == DataType::MxFpRceil || dt == DataType::NvFp,
           "[quantization_config] ", source, ": layer ", name, " has data_type '", to_string(dt),
           "', which this reader cannot decode (int, mx_fp, nv_fp)");
  s.family = dt == DataType::Int ? PackedFamily::Int : dt == DataType::NvFp ? PackedFamily::Nv : PackedFamily::Mx;
  SR_CHECK(s.family != PackedFamily::Int || q.group_size != 0, "[quantization_config] ", source, ": layer ", name,
           ": group_size 0 (one group per tensor) has no GPTQ packing");
  return s;
}

}  // namespace sr
