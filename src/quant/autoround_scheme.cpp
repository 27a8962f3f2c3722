#include "quant/autoround_scheme.h"

#include "common/error.h"

namespace sr {
namespace {

const char* weight_type_name(const QuantScheme& s) {
  switch (s.data_type) {
    case DataType::Int: return "int";
    case DataType::MxFp: return "mx_fp";
    case DataType::MxFpRceil: return "mx_fp_rceil";
    case DataType::NvFp: return "nv_fp";
    default: return "fp";  // FP8 at 8 bits; unquantized (fp16/bf16) at 16
  }
}

const char* act_type_name(const QuantScheme& s) {
  if (!s.act_quantized()) return "fp";
  switch (s.act_data_type) {
    case DataType::Int: return "int";
    case DataType::MxFp: return "mx_fp";
    case DataType::MxFpRceil: return "mx_fp_rceil";
    case DataType::NvFp: return s.act_dynamic ? "nv_fp" : "nv_fp4_with_static_gs";
    default: return "fp";
  }
}

}  // namespace

nlohmann::ordered_json autoround_scheme_json(const QuantScheme& s) {
  const bool static_nv = s.act_quantized() && s.act_data_type == DataType::NvFp && !s.act_dynamic;
  nlohmann::ordered_json j;
  j["bits"] = s.bits;
  j["group_size"] = s.group_size;
  j["sym"] = s.sym;
  j["data_type"] = weight_type_name(s);
  j["act_bits"] = s.act_bits;
  j["act_group_size"] = s.act_group_size;
  j["act_sym"] = s.act_sym;
  j["act_data_type"] = act_type_name(s);
  j["act_dynamic"] = static_nv ? true : s.act_dynamic;  // the static gs is in the type's name
  return j;
}

QuantScheme scheme_from_autoround_json(const nlohmann::json& j, const std::string& where) {
  SR_CHECK(j.is_object(), "[quantization_config] ", where, ": expected an object of scheme keys, got ", j.dump());
  static const char* kKeys[] = {"bits",    "group_size",    "sym",        "data_type", "act_bits",
                                "act_sym", "act_data_type", "act_dynamic", "act_group_size"};
  nlohmann::json f = nlohmann::json::object();
  for (const char* k : kKeys)
    if (j.contains(k) && !j[k].is_null()) f[k] = j[k];
  try {
    const int bits = f.contains("bits") ? f["bits"].get<int>() : 4;
    if (bits >= 16) f["data_type"] = "bf16";
    const int act_bits = f.contains("act_bits") ? f["act_bits"].get<int>() : 16;
    if (act_bits >= 16) f.erase("act_data_type");
    const bool static_nv = f.contains("act_data_type") && f["act_data_type"] == "nv_fp4_with_static_gs";
    QuantScheme s = QuantScheme::from_json(f);
    if (static_nv) s.act_dynamic = false;
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail("[quantization_config] ", where, ": ", e.what());
  } catch (const Error& e) {
    fail("[quantization_config] ", where, ": ", e.what());
  }
}

}  // namespace sr
