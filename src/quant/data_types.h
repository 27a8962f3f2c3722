// Registry of the number formats a QuantScheme names (DataType, scheme.h): one row per
// type, as GgmlTypeTraits (quant/formats/ggml_types.h) is for the ggml block types. A row
// holds the type's names, the rules a scheme side of that type must satisfy, its §4.3 cost
// property, and the entry points quant/qdq.cpp dispatches through (no switch on the data
// type anywhere else in quant/). Adding a format = its family in quant/formats, a frozen
// DataType value, and a row in data_types.cpp; the table-driven tests (qdq_test AllSchemes,
// scheme_test) then cover it once a preset or test scheme uses it.
//
// Entry-point contracts are those of the qdq.h functions they implement (same arguments);
// a null entry point means the operation does not exist for the type, and the dispatcher
// throws sr::Error naming the type.
// Thread-safety: the table is immutable after static initialisation.
#pragma once
#include <cstdint>
#include <vector>

#include "quant/scheme.h"

namespace at {
class Tensor;
}

namespace sr {

struct QdqResult;
struct Encoded;
struct WeightQuantParams;
struct ActQuantState;

struct DataTypeTraits {
  DataType type;
  const char* name;            // what to_string and the scheme JSON write ("mx_fp")
  std::vector<const char*> aliases;  // further names parse_data_type accepts ("mx_fp4")
  const char* autoround_name;  // auto-round's quantization_config data_type ("fp": FP8 at 8
                               // bits, unquantized at 16; the GGUF types have none of their own)
  bool quantized;              // false: the 16-bit float types, only valid with bits >= 16
  // Validity of one side (weight or activation) of a quantized scheme; throws sr::Error
  // naming `side`. Null: the type cannot be a quantized side (fp16/bf16; GGUF types are
  // whole schemes, checked by QuantScheme::validate).
  void (*check_side)(int bits, int64_t group, const char* side);
  // §0.1 / §4.3: one scale per group stored in 8 bits (E8M0, E4M3), and groups must tile
  // the input dimension (fits: in % group_size == 0).
  bool block_scaled;

  // ---- entry points (qdq.h) ----
  QdqResult (*qdq)(const at::Tensor& w, const QuantScheme& s, const WeightQuantParams& p);
  Encoded (*encode)(const at::Tensor& w, const QuantScheme& s, const WeightQuantParams& p);
  at::Tensor (*decode)(const Encoded& e, const QuantScheme& s);
  // Activation qdq of x under the act_* fields of s (result in fp32 or x's dtype).
  at::Tensor (*qdq_act)(const at::Tensor& x, const QuantScheme& s, const ActQuantState& st);
  // §3.3 search on grouped weights wg [N, L] with importance q [N, L]; sym schemes only.
  at::Tensor (*search_init_scale)(const at::Tensor& wg, const QuantScheme& s, const at::Tensor& q);
  // The per-layer global scale of w (NV: 2688/amax); null for types without one.
  at::Tensor (*global_scale)(const at::Tensor& w);
  bool v1_alpha;  // the v1 wrapper tunes a per-group clip multiplier alpha (INT only, §1.7)
};

// The row of `type`. Throws sr::Error for a value outside the enum.
const DataTypeTraits& data_type_traits(DataType type);
// Every row, in DataType order.
const std::vector<DataTypeTraits>& data_type_registry();

}  // namespace sr
