// QuantScheme: how one layer's weight (and input activation) is quantized, the named presets
// of auto-round (spec §0.6, auto_round/schemes.py), parsing from a preset name, from explicit
// fields or from JSON (the per-layer override file and the fake-quant export record hold this
// JSON), the §0.1 shape check and the §4.3 bit cost.
//
// JSON form (every field written; on reading, absent fields take auto-round's defaults):
//   {"bits": 4, "group_size": 128, "sym": true, "data_type": "int",
//    "act_bits": 16, "act_group_size": 128, "act_sym": true, "act_data_type": "bf16",
//    "act_dynamic": true}
//   A JSON string is a preset name; an object may name a base preset under "scheme" and
//   override some fields: {"scheme": "W2A16", "group_size": 64}.
// data_type strings: "int", "mx_fp", "mx_fp_rceil", "nv_fp", "fp8", "fp16", "bf16"; accepted
//   aliases: "fp" (fp8 at 8 bits, bf16 at 16), "float"/"bfloat16" (bf16), "float16" (fp16),
//   "mx_fp4"/"mx_fp8", "nv_fp4", "nv_fp4_with_static_gs", "fp8_e4m3", "fp8_sym", "fp8_static".
//   Names, aliases, the per-side validity rules and the qdq entry points of every data type
//   are its row in quant/formats/data_type_traits.h (and its qdq row in quant/data_types.h).
//
// GGUF block types (spec §5.4) are schemes too: data_type "gguf:<type>" with <type> one of
//   q2_k q3_k q4_k q5_k q6_k q4_0 q4_1 q5_0 q5_1 q8_0 (any case): the ggml types with
//   frozen-parameter hooks (ggml_block_param_types()). The type's traits row fixes bits,
//   group_size (its sub-block) and sym, as §5.4's table says; act_bits must stay 16 (llama.cpp
//   quantizes activations itself). The string "gguf:q4_k" is accepted wherever a preset name
//   is, and to_json writes {"bits": 4, "group_size": 32, "sym": false, "data_type": "gguf:q4_k",
//   ...}. Such layers are quantized with the ggml codecs and frozen per-row parameters
//   (quant/gguf_qdq.h), so what is tuned is exactly what a GGUF file stores.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "quant/formats/ggml_types.h"

namespace sr {

// Frozen numeric values (style.md #3): never renumber; retired ids stay commented in place.
// Each value has one row in quant/formats/data_type_traits.h and one in quant/data_types.h.
enum class DataType : int {
  Int = 0,        // INT, sym (signed full-range scale) or asym (zero point)
  MxFp = 1,       // MXFP4 (E2M1) / MXFP8 (E4M3), E8M0 scale per 32, floor rule
  MxFpRceil = 2,  // as MxFp with the RCEIL shared-exponent rule
  NvFp = 3,       // NVFP4: E2M1, E4M3 scale per 16, fp32 global scale
  Fp8 = 4,        // FP8 E4M3 with fp32 scales (per tensor / row / group)
  Float16 = 5,    // not quantized, fp16
  BFloat16 = 6,   // not quantized, bf16 (auto-round "fp" at 16 bits, "float")
  Gguf = 7,       // a ggml block type (QuantScheme::ggml_type), stored as llama.cpp does
};

const char* to_string(DataType t);
// Parses a data_type string (aliases above); `bits` resolves "fp". Throws sr::Error listing
// the accepted names.
DataType parse_data_type(const std::string& s, int bits);

struct QuantScheme {
  int bits = 4;
  int64_t group_size = 128;  // G (group.h): > 0, -1 per row, 0 per tensor
  bool sym = true;
  DataType data_type = DataType::Int;
  int act_bits = 16;              // <= 8: activations are qdq'd (§1.6)
  int64_t act_group_size = 128;   // -1 per token row, 0 per tensor
  bool act_sym = true;
  DataType act_data_type = DataType::BFloat16;
  bool act_dynamic = true;        // false: static (calibrated act_max; FP8_STATIC, NVFP4's gs)
  GgmlType ggml_type = GgmlType::F32;  // data_type Gguf only: the block type (Q4_K, Q8_0, ...)

  bool quantized() const { return bits < 16; }
  bool act_quantized() const { return act_bits <= 8; }

  bool is_gguf() const { return data_type == DataType::Gguf; }

  // The preset name when the scheme equals a preset (operator==), "gguf:q4_k" for a ggml
  // block type, else a description such as "int3 asym g64 / a16".
  std::string name() const;
  nlohmann::json to_json() const;
  // Throws sr::Error (naming the field) on unknown fields, wrong types or invalid values.
  static QuantScheme from_json(const nlohmann::json& j);
  // Throws sr::Error explaining the first inconsistency (bits vs data_type, group sizes).
  void validate() const;

  // auto-round's equality: activation fields are ignored when both act_bits >= 16.
  bool operator==(const QuantScheme& o) const;
  bool operator!=(const QuantScheme& o) const { return !(*this == o); }
};

// The presets of §0.6 in a fixed order: W2A16 W2A16G64 W2A16G32 W3A16 W4A16 W5A16 W6A16 W8A16
// MXFP4 MXFP8 MXFP4_RCEIL MXFP8_RCEIL NVFP4 FPW8A16 FP8_STATIC INT8 INT4 BF16.
const std::vector<std::pair<std::string, QuantScheme>>& preset_schemes();
// Case-insensitive preset lookup; also accepts W8A8 / INT8_W8A8 (INT8), W4A4 (INT4) and
// "gguf:<type>" (gguf_scheme). Throws sr::Error listing the presets when unknown.
QuantScheme preset_scheme(const std::string& name);

// The scheme of a ggml block type (§5.4 table; from its GgmlTypeTraits row: bits, params.group,
// !params.asym):
//   q4_0 / q5_0 / q8_0: int sym, G = 32;     q4_1 / q5_1: asym, G = 32;
//   q2_k: asym, G = 16;  q3_k: sym, G = 16;  q4_k / q5_k: asym, G = 32;  q6_k: sym, G = 16.
// F16 and BF16 give the unquantized fp16 / bf16 schemes (what a GGUF plan may fall back to).
// Throws sr::Error naming the type for types without a frozen-parameter codec (F32, IQ*, ...).
QuantScheme gguf_scheme(GgmlType type);
// The ggml type a GGUF file stores a layer of scheme `s` in: its block type, F16 or BF16.
// Throws sr::Error naming the scheme for anything else (INT/MX/NV/FP8 cannot be stored).
GgmlType ggml_type_of(const QuantScheme& s);

// Parses "W4A16" (a preset, any case), a JSON object text, or comma-separated key=value
// fields with an optional base preset: "scheme=W2A16,group_size=64" or "bits=3,sym=false".
QuantScheme parse_scheme(const std::string& text);

// §0.1: whether a weight [out, in] can use the scheme, else it stays in 16 bit. INT
// weight-only needs out % 32 == 0 and in % 32 == 0; MX/NV need in % G == 0; a GGUF type
// needs in to be a multiple of its block (256 for k-quants, 32 for the legacy types).
struct FitResult {
  bool ok = true;
  std::string reason;  // empty when ok
};
FitResult fits(const QuantScheme& s, int64_t out, int64_t in);

// §4.3 bit cost of a weight [out, in]: b·n plus n_g·(scale_bits + zp_bits) unless b >= 16 or
// ignore_scale_zp_bits. scale_bits = 8 for MX/NV, else 16; zp_bits = b for INT (sym too) and
// for any asym, else 0; n_g = out·ceil(in/G), out (G = -1) or 1 (G = 0).
// GGUF k-quants (super-group of S = block_size / params.group sub-blocks with
// sb = params.sub_scale_bits of their traits row: Q2_K 16/4, Q3_K 16/6, Q4_K and Q5_K 8/6, Q6_K 16/8): b·n + n_g·sb·2 + ceil(n_g/S)·64, e.g. Q4_K 4.625 and Q2_K
// 2.75 bits/weight; the legacy types count as int G = 32 (q4_0 4.625). These are auto-round's
// costs, what the allocator compares; layer_file_bits gives what the file really takes.
int64_t layer_bits(const QuantScheme& s, int64_t out, int64_t in, bool ignore_scale_zp_bits);

// Bits the layer really occupies when stored: for a GGUF type out·ggml_row_bytes·8 (Q4_K
// 4.5, Q2_K 2.625, Q6_K 6.5625, Q4_0 4.5 bits/weight), bits·n for 16-bit schemes, and
// layer_bits(s, out, in, false) for the other families.
int64_t layer_file_bits(const QuantScheme& s, int64_t out, int64_t in);

}  // namespace sr
