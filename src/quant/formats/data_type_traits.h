// Registry of the number formats a QuantScheme names (DataType, scheme.h): one row per type,
// as GgmlTypeTraits (ggml_types.h) is for the ggml block types. A row holds the type's names,
// the rules a scheme side of that type must satisfy and its §4.3 cost property; torch-free, so
// every stage down to model/ can validate a scheme. What the type does to tensors (its qdq,
// encode and decode entry points) is its row in quant/data_types.h, in the same order — the
// split ggml makes between type_traits and type_traits_cpu. Adding a format = its family in
// quant/formats, a frozen DataType value, a row here and a row there; the table-driven tests
// (scheme_test's registry test, qdq_test AllSchemes) then cover it.
// Thread-safety: the table is immutable after static initialisation.
#pragma once
#include <cstdint>
#include <vector>

#include "common/error.h"
#include "quant/formats/scheme.h"

namespace sr {

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
  bool v1_alpha;  // the v1 wrapper tunes a per-group clip multiplier alpha (INT only, §1.7)
};

// The row of `type`. Throws sr::Error for a value outside the enum.
const DataTypeTraits& data_type_traits(DataType type);
// Every row, in DataType order.
const std::vector<DataTypeTraits>& data_type_registry();

// The row of `type` in a table kept in DataType order (this one, or quant/data_types.h's).
// Throws sr::Error for a value outside the enum.
template <class Row>
const Row& data_type_row(const std::vector<Row>& rows, DataType type) {
  const auto i = size_t(type);
  SR_CHECK(i < rows.size() && rows[i].type == type, "[data_type] unknown data type id ", int(type));
  return rows[i];
}

}  // namespace sr
