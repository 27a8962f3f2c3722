#include "quant/formats/autoround_scheme.h"

#include "common/error.h"
#include "common/json_parse.h"
#include "quant/formats/data_type_traits.h"

namespace sr {
namespace {

// auto-round's name of the weight side: the data type's row (fp8 and 16-bit floats are "fp").
const char* weight_type_name(const QuantScheme& s) { return data_type_traits(s.data_type).autoround_name; }

// The activation side's: "fp" when unquantized; NVFP4 with a static global scale is its own type.
const char* act_type_name(const QuantScheme& s) {
  if (!s.act_quantized()) return "fp";
  if (s.act_data_type == DataType::NvFp && !s.act_dynamic) return "nv_fp4_with_static_gs";
  return data_type_traits(s.act_data_type).autoround_name;
}

}  // namespace

nlohmann::ordered_json autoround_scheme_json(const QuantScheme& s) {
  const bool static_nv = s.act_quantized() && s.act_data_type == DataType::NvFp && !s.act_dynamic;
  return {{"bits", s.bits}, {"group_size", s.group_size}, {"sym", s.sym}, {"data_type", weight_type_name(s)},
          {"act_bits", s.act_bits}, {"act_group_size", s.act_group_size}, {"act_sym", s.act_sym},
          {"act_data_type", act_type_name(s)},
          {"act_dynamic", static_nv ? true : s.act_dynamic}};  // the static gs is in the type's name
}

QuantScheme scheme_from_autoround_json(const nlohmann::json& j, const std::string& where) {
  SR_CHECK(j.is_object(), "[quantization_config] ", where, ": expected an object of scheme keys, got ", j.dump());
  static const char* kKeys[] = {"bits",    "group_size",    "sym",        "data_type", "act_bits",
                                "act_sym", "act_data_type", "act_dynamic", "act_group_size"};
  nlohmann::json f = nlohmann::json::object();
  for (const char* k : kKeys)
    if (j.contains(k) && !j[k].is_null()) f[k] = j[k];
  try {
    // Integers only (an out-of-range float cast would be undefined); from_json names bad values.
    int bits = 4, act_bits = 16;
    if (f.contains("bits") && json_integer(f["bits"], bits) && bits >= 16) f["data_type"] = "bf16";
    if (!f.contains("act_bits") || (json_integer(f["act_bits"], act_bits) && act_bits >= 16)) f.erase("act_data_type");
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
