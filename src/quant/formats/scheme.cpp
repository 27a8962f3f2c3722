#include "quant/formats/scheme.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/json_parse.h"
#include "common/strings.h"
#include "quant/formats/data_type_traits.h"
#include "quant/formats/ggml_frozen.h"

namespace sr {
namespace {

// s without surrounding whitespace and quotes ("W4A16", 'bits=4' as typed in shells and JSON).
std::string trim_and_unquote(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\n\r'\"");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\n\r'\"") - b + 1);
}

// §5.4: the ggml types that are GGUF quantization schemes are those with frozen-parameter
// hooks, linear or table (ggml_has_block_params says which); their traits row (ggml_types.h) fixes bits, group (the sub-block) and sym.
std::vector<GgmlType> gguf_scheme_types() {
  std::vector<GgmlType> out;
  for (uint32_t id = 0; id < kGgmlTypeIdEnd; ++id)
    if (ggml_has_block_params(GgmlType(id))) out.push_back(GgmlType(id));
  return out;
}

std::string gguf_type_list() {
  std::string out;
  for (GgmlType t : gguf_scheme_types())
    out += (out.empty() ? "gguf:" : ", gguf:") + ascii_lower(ggml_type_name(t));
  return out;
}

const GgmlTypeTraits& gguf_traits(GgmlType t) {
  SR_CHECK(ggml_has_block_params(t), "[QuantScheme] ggml type ", ggml_type_name(t),
           " is not a GGUF quantization scheme (supported: ", gguf_type_list(), ")");
  return ggml_type_traits(t);
}

// The sub-block of a GGUF scheme type: its linear hooks' group, or its table hooks' (the
// i-quants, all symmetric).
int64_t gguf_group(const GgmlTypeTraits& tr) { return tr.has_block_params() ? tr.params.group : tr.table.group; }

bool has_gguf_prefix(const std::string& s) { return ascii_lower(s).rfind("gguf:", 0) == 0; }

// "gguf:q4_k" -> Q4_K (any case); throws listing the accepted names otherwise.
GgmlType parse_gguf_scheme_type(const std::string& text) {
  const std::string t = trim_and_unquote(text);
  SR_CHECK(has_gguf_prefix(t), "[QuantScheme] '", text, "' is not a GGUF scheme (expected one of ", gguf_type_list(),
           ")");
  const std::string type = ascii_lower(t.substr(5));
  for (GgmlType g : gguf_scheme_types())
    if (ascii_lower(ggml_type_name(g)) == type) return g;
  sr::fail("[QuantScheme] unknown GGUF scheme '", text, "' — expected one of ", gguf_type_list());
}

// A weight-side scheme as auto-round normalizes it: act_group_size defaults to group_size,
// act_sym to sym, act_data_type to data_type when act_bits < 16 (else "float").
QuantScheme make(int bits, int64_t g, bool sym, DataType dt, int act_bits = 16,
                 DataType act_dt = DataType::BFloat16, int64_t act_g = -2, bool act_dynamic = true) {
  QuantScheme s;
  s.bits = bits, s.group_size = g, s.sym = sym, s.data_type = dt;
  s.act_bits = act_bits;
  s.act_group_size = act_g == -2 ? g : act_g;
  s.act_sym = true;
  s.act_data_type = act_bits < 16 ? act_dt : DataType::BFloat16;
  s.act_dynamic = act_dynamic;
  return s;
}

std::vector<std::pair<std::string, QuantScheme>> build_presets() {
  using D = DataType;
  return {
      {"W2A16", make(2, 128, true, D::Int)},
      {"W2A16G64", make(2, 64, true, D::Int)},
      {"W2A16G32", make(2, 32, true, D::Int)},
      {"W3A16", make(3, 128, true, D::Int)},
      {"W4A16", make(4, 128, true, D::Int)},
      {"W5A16", make(5, 128, true, D::Int)},
      {"W6A16", make(6, 128, true, D::Int)},
      {"W8A16", make(8, 128, true, D::Int)},
      {"MXFP4", make(4, 32, true, D::MxFp, 4, D::MxFp, 32)},
      {"MXFP8", make(8, 32, true, D::MxFp, 8, D::MxFp, 32)},
      {"MXFP4_RCEIL", make(4, 32, true, D::MxFp, 4, D::MxFpRceil, 32)},
      {"MXFP8_RCEIL", make(8, 32, true, D::MxFp, 8, D::MxFpRceil, 32)},
      {"NVFP4", make(4, 16, true, D::NvFp, 4, D::NvFp, 16, /*act_dynamic=*/false)},
      {"FPW8A16", make(8, 0, true, D::Fp8)},
      {"FP8_STATIC", make(8, -1, true, D::Fp8, 8, D::Fp8, 0, /*act_dynamic=*/false)},
      {"INT8", make(8, -1, true, D::Int, 8, D::Int, -1)},
      {"INT4", make(4, -1, true, D::Int, 4, D::Int, -1)},
      {"BF16", make(16, 128, true, D::BFloat16)},
  };
}

std::string preset_list() {
  std::string out;
  for (const auto& [name, s] : preset_schemes()) out += (out.empty() ? "" : ", ") + name;
  return out;
}

// Checks one side (weight or activation) of a quantized scheme by its data type's rule.
void check_side(int bits, int64_t g, DataType dt, const char* side) {
  const DataTypeTraits& tr = data_type_traits(dt);
  if (!tr.check_side)
    sr::fail("[QuantScheme] ", side, " data_type ", tr.name, " is not quantized but bits = ", bits);
  tr.check_side(bits, g, side);
}

template <class T>
T get_field(const nlohmann::json& j, const char* key) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    T v{};
    SR_CHECK(j.contains(key) && json_integer(j.at(key), v), "[QuantScheme] field '", key, "' must be an integer, got ",
             j.contains(key) ? j.at(key).dump() : std::string("nothing"));
    return v;
  }
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception& e) {
    sr::fail("[QuantScheme] field '", key, "': ", e.what());
  }
}

// {"data_type": "gguf:q4_k", ...}: the type fixes the weight fields; any given must agree.
void apply_gguf_fields(QuantScheme& s, const nlohmann::json& j) {
  const std::string dt = get_field<std::string>(j, "data_type");
  s = gguf_scheme(parse_gguf_scheme_type(dt));
  if (j.contains("bits"))
    SR_CHECK(get_field<int>(j, "bits") == s.bits, "[QuantScheme] ", dt, " has ", s.bits, " bits, got \"bits\": ",
             get_field<int>(j, "bits"));
  if (j.contains("group_size"))
    SR_CHECK(get_field<int64_t>(j, "group_size") == s.group_size, "[QuantScheme] ", dt, " has group_size ",
             s.group_size, ", got ", get_field<int64_t>(j, "group_size"));
  if (j.contains("sym"))
    SR_CHECK(get_field<bool>(j, "sym") == s.sym, "[QuantScheme] ", dt, " is ", s.sym ? "sym" : "asym",
             ", got \"sym\": ", get_field<bool>(j, "sym"));
  if (j.contains("act_bits"))
    SR_CHECK(get_field<int>(j, "act_bits") >= 16, "[QuantScheme] ", dt,
             " keeps activations in 16 bit (llama.cpp quantizes them itself), got act_bits ",
             get_field<int>(j, "act_bits"));
}

// Applies the fields present in object j onto s; act_* defaults follow auto-round.
void apply_fields(QuantScheme& s, const nlohmann::json& j) {
  static const char* kKnown[] = {"scheme",        "bits",      "group_size",   "sym",
                                 "data_type",     "act_bits",  "act_group_size", "act_sym",
                                 "act_data_type", "act_dynamic"};
  for (const auto& [key, val] : j.items()) {
    SR_CHECK(std::find(std::begin(kKnown), std::end(kKnown), key) != std::end(kKnown),
             "[QuantScheme] unknown field '", key, "'");
  }
  const bool had_act_group = j.contains("act_group_size"), had_act_sym = j.contains("act_sym");
  const bool had_act_dt = j.contains("act_data_type");
  if (j.contains("data_type") && has_gguf_prefix(get_field<std::string>(j, "data_type"))) {
    apply_gguf_fields(s, j);
    return;
  }
  if (j.contains("bits")) s.bits = get_field<int>(j, "bits");
  if (j.contains("group_size")) s.group_size = get_field<int64_t>(j, "group_size");
  if (j.contains("sym")) s.sym = get_field<bool>(j, "sym");
  if (j.contains("data_type")) s.data_type = parse_data_type(get_field<std::string>(j, "data_type"), s.bits);
  if (j.contains("act_bits")) s.act_bits = get_field<int>(j, "act_bits");
  if (had_act_group) s.act_group_size = get_field<int64_t>(j, "act_group_size");
  else if (j.contains("group_size") && !s.act_quantized()) s.act_group_size = s.group_size;
  if (had_act_sym) s.act_sym = get_field<bool>(j, "act_sym");
  if (had_act_dt) s.act_data_type = parse_data_type(get_field<std::string>(j, "act_data_type"), s.act_bits);
  else if (j.contains("act_bits")) s.act_data_type = s.act_quantized() ? s.data_type : DataType::BFloat16;
  if (j.contains("act_dynamic")) s.act_dynamic = get_field<bool>(j, "act_dynamic");
}

// "key=value,key=value" -> JSON object (numbers and booleans typed, the rest strings).
nlohmann::json fields_to_json(const std::string& text) {
  nlohmann::json j = nlohmann::json::object();
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const auto eq = item.find('=');
    SR_CHECK(eq != std::string::npos, "[parse_scheme] expected key=value, got '", item, "'");
    const std::string key = ascii_lower(trim_and_unquote(item.substr(0, eq))), val = trim_and_unquote(item.substr(eq + 1));
    const std::string lv = ascii_lower(val);
    if (lv == "true" || lv == "false") j[key] = lv == "true";
    else if (!val.empty() && (std::isdigit(static_cast<unsigned char>(val[0])) || val[0] == '-')) {
      // The whole value must be the number: "3;group_size=32" is a typo, not bits 3.
      char* end = nullptr;
      errno = 0;
      const long long v = std::strtoll(val.c_str(), &end, 10);
      SR_CHECK(end && *end == '\0' && errno == 0, "[parse_scheme] ", key, " expects an integer, got '", val,
               "' (fields are separated by ',')");
      j[key] = v;
    } else {
      j[key] = val;
    }
  }
  return j;
}

}  // namespace

const char* to_string(DataType t) { return data_type_traits(t).name; }

DataType parse_data_type(const std::string& text, int bits) {
  const std::string s = ascii_lower(trim_and_unquote(text));
  static const std::map<std::string, DataType> kNames = [] {
    std::map<std::string, DataType> m;
    for (const DataTypeTraits& tr : data_type_registry()) {
      if (tr.type == DataType::Gguf) continue;  // a GGUF type is a whole scheme (below)
      m[tr.name] = tr.type;
      for (const char* alias : tr.aliases) m[alias] = tr.type;
    }
    return m;
  }();
  if (s == "fp") return bits == 8 ? DataType::Fp8 : DataType::BFloat16;
  SR_CHECK(s.rfind("gguf", 0) != 0, "[QuantScheme] data_type '", text, "': a GGUF type is a whole scheme; ",
           "name it as the scheme (e.g. scheme \"gguf:q4_k\", or \"data_type\": \"gguf:q4_k\" in JSON)");
  auto it = kNames.find(s);
  if (it != kNames.end()) return it->second;
  std::string names;
  for (const auto& [k, v] : kNames) names += (names.empty() ? "" : ", ") + k;
  sr::fail("[QuantScheme] unknown data_type '", text, "' — expected one of: fp, ", names);
}

std::string QuantScheme::name() const {
  if (is_gguf()) return "gguf:" + ascii_lower(ggml_type_name(ggml_type));
  for (const auto& [n, s] : preset_schemes())
    if (s == *this) return n;
  std::ostringstream os;
  os << to_string(data_type);
  if (quantized()) os << bits << (sym ? " sym" : " asym") << " g" << group_size;
  os << " / ";
  if (act_quantized())
    os << "a:" << to_string(act_data_type) << act_bits << " g" << act_group_size
       << (act_dynamic ? " dynamic" : " static");
  else
    os << "a16";
  return os.str();
}

nlohmann::json QuantScheme::to_json() const {
  return {{"bits", bits}, {"group_size", group_size}, {"sym", sym},
          {"data_type", is_gguf() ? name() : std::string(to_string(data_type))}, {"act_bits", act_bits},
          {"act_group_size", act_group_size}, {"act_sym", act_sym}, {"act_data_type", to_string(act_data_type)},
          {"act_dynamic", act_dynamic}};
}

QuantScheme QuantScheme::from_json(const nlohmann::json& j) {
  if (j.is_string()) return preset_scheme(j.get<std::string>());
  SR_CHECK(j.is_object(), "[QuantScheme] expected a preset name or an object, got ", j.dump());
  QuantScheme s;  // auto-round QuantizationScheme defaults: int4 sym g128
  if (j.contains("scheme")) s = preset_scheme(get_field<std::string>(j, "scheme"));
  apply_fields(s, j);
  s.validate();
  return s;
}

void QuantScheme::validate() const {
  if (is_gguf()) {
    const QuantScheme f = gguf_scheme(gguf_traits(ggml_type).type);
    SR_CHECK(bits == f.bits && group_size == f.group_size && sym == f.sym, "[QuantScheme] ", name(),
             " must have bits ", f.bits, ", group_size ", f.group_size, ", ", f.sym ? "sym" : "asym", "; got bits ",
             bits, ", group_size ", group_size, ", ", sym ? "sym" : "asym");
    SR_CHECK(!act_quantized(), "[QuantScheme] ", name(), " keeps activations in 16 bit, got act_bits ", act_bits);
    return;
  }
  if (bits >= 16) {
    SR_CHECK(!data_type_traits(data_type).quantized, "[QuantScheme] bits ", bits, " needs data_type fp16/bf16, got ",
             to_string(data_type));
  } else {
    check_side(bits, group_size, data_type, "weight");
  }
  if (act_quantized()) check_side(act_bits, act_group_size, act_data_type, "activation");
  else SR_CHECK(act_bits >= 16, "[QuantScheme] act_bits must be <= 8 or >= 16, got ", act_bits);
}

bool QuantScheme::operator==(const QuantScheme& o) const {
  const bool same_w = bits == o.bits && group_size == o.group_size && sym == o.sym &&
                      data_type == o.data_type && (!is_gguf() || ggml_type == o.ggml_type);
  if (!same_w || act_bits != o.act_bits) return false;
  if (act_bits >= 16) return true;
  return act_group_size == o.act_group_size && act_sym == o.act_sym &&
         act_data_type == o.act_data_type && act_dynamic == o.act_dynamic;
}

const std::vector<std::pair<std::string, QuantScheme>>& preset_schemes() {
  static const auto presets = build_presets();
  return presets;
}

QuantScheme preset_scheme(const std::string& name) {
  if (has_gguf_prefix(trim_and_unquote(name))) return gguf_scheme(parse_gguf_scheme_type(trim_and_unquote(name)));
  static const std::map<std::string, std::string> kAliases = {{"W8A8", "INT8"}, {"INT8_W8A8", "INT8"}, {"W4A4", "INT4"}};
  std::string key = ascii_upper(trim_and_unquote(name));
  if (auto alias = kAliases.find(key); alias != kAliases.end()) key = alias->second;
  for (const auto& [n, s] : preset_schemes())
    if (n == key) return s;
  sr::fail("[QuantScheme] unknown scheme '", name, "' — presets: ", preset_list(), "; GGUF types: ",
           gguf_type_list());
}

QuantScheme gguf_scheme(GgmlType type) {
  if (type == GgmlType::F16) return make(16, 128, true, DataType::Float16);
  if (type == GgmlType::BF16) return preset_scheme("BF16");
  const GgmlTypeTraits& tr = gguf_traits(type);
  QuantScheme s = make(tr.bits, gguf_group(tr), !tr.params.asym, DataType::Gguf);
  s.ggml_type = type;
  return s;
}

GgmlType ggml_type_of(const QuantScheme& s) {
  if (s.is_gguf()) return s.ggml_type;
  if (!s.quantized() && s.data_type == DataType::Float16) return GgmlType::F16;
  if (!s.quantized() && s.data_type == DataType::BFloat16) return GgmlType::BF16;
  sr::fail("[QuantScheme] scheme ", s.name(), " has no GGUF type: GGUF stores ", gguf_type_list(),
           ", fp16 or bf16");
}

QuantScheme parse_scheme(const std::string& text) {
  const std::string t = trim_and_unquote(text);
  SR_CHECK(!t.empty(), "[parse_scheme] empty scheme");
  if (t[0] == '{') {
    nlohmann::json j;
    try {
      j = parse_json_text(t, "[parse_scheme] JSON scheme");
    } catch (const Error& e) {
      sr::fail(e.what());
    }
    return QuantScheme::from_json(j);
  }
  if (t.find('=') != std::string::npos) return QuantScheme::from_json(fields_to_json(t));
  return preset_scheme(t);
}

FitResult fits(const QuantScheme& s, int64_t out, int64_t in) {
  std::ostringstream why;
  if (!s.quantized()) return {};
  if (s.is_gguf()) {
    const int64_t block = ggml_type_traits(s.ggml_type).block_size;
    if (in % block == 0) return {};
    why << s.name() << " layers need in divisible by its block of " << block << ", got in = " << in;
    return {false, why.str()};
  }
  if (s.data_type == DataType::Int && !s.act_quantized() && (out % 32 != 0 || in % 32 != 0)) {
    why << "INT weight-only layers need out and in divisible by 32 (export packs 32-bit words), "
        << "got [" << out << ", " << in << "]";
    return {false, why.str()};
  }
  const bool block = data_type_traits(s.data_type).block_scaled;
  if (block && s.group_size > 0 && in % s.group_size != 0) {
    why << to_string(s.data_type) << " layers need in divisible by the group size "
        << s.group_size << ", got in = " << in;
    return {false, why.str()};
  }
  return {};
}

int64_t layer_bits(const QuantScheme& s, int64_t out, int64_t in, bool ignore_scale_zp_bits) {
  const int64_t n = out * in;
  if (s.bits >= 16 || ignore_scale_zp_bits) return int64_t(s.bits) * n;
  if (s.is_gguf() && gguf_traits(s.ggml_type).params.sub_scale_bits > 0) {
    const GgmlTypeTraits& tr = gguf_traits(s.ggml_type);
    const int64_t group = tr.params.group, super_groups = tr.block_size / group;
    const int64_t groups = out * ((in + group - 1) / group);
    return int64_t(s.bits) * n + groups * tr.params.sub_scale_bits * 2 + (groups + super_groups - 1) / super_groups * 64;
  }
  const int64_t groups = s.group_size > 0   ? out * ((in + s.group_size - 1) / s.group_size)
                         : s.group_size == -1 ? out
                                              : 1;
  const int scale_bits = data_type_traits(s.data_type).block_scaled ? 8 : 16;
  // GGUF legacy types are auto-round's "int" data types (q4_1: int_asym_float_zp): zp paid too.
  const int zp_bits = (!s.sym || s.data_type == DataType::Int || s.is_gguf()) ? s.bits : 0;
  return int64_t(s.bits) * n + groups * (scale_bits + zp_bits);
}

int64_t layer_file_bits(const QuantScheme& s, int64_t out, int64_t in) {
  if (s.is_gguf()) return out * int64_t(ggml_row_bytes(s.ggml_type, in)) * 8;
  if (!s.quantized()) return int64_t(s.bits) * out * in;
  return layer_bits(s, out, in, false);
}

}  // namespace sr
