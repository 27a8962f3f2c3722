// What each number format does to tensors: its qdq, encode, decode, activation-qdq, scale
// search and global-scale entry points, one row per DataType in DataType order, beside its
// torch-free row of names and rules (quant/formats/data_type_traits.h; ggml splits its
// type_traits the same way). quant/qdq.cpp dispatches through these rows: no switch on the
// data type anywhere else in quant/.
//
// Entry-point contracts are those of the qdq.h functions they implement (same arguments);
// a null entry point means the operation does not exist for the type, and the dispatcher
// throws sr::Error naming the type.
// Thread-safety: the table is immutable after static initialisation.
#pragma once
#include <vector>

#include "quant/formats/data_type_traits.h"

namespace at {
class Tensor;
}

namespace sr {

struct QdqResult;
struct Encoded;
struct WeightQuantParams;
struct ActQuantState;

struct DataTypeQdq {
  DataType type;
  QdqResult (*qdq)(const at::Tensor& w, const QuantScheme& s, const WeightQuantParams& p);
  Encoded (*encode)(const at::Tensor& w, const QuantScheme& s, const WeightQuantParams& p);
  at::Tensor (*decode)(const Encoded& e, const QuantScheme& s);
  // Activation qdq of x under the act_* fields of s (result in fp32 or x's dtype).
  at::Tensor (*qdq_act)(const at::Tensor& x, const QuantScheme& s, const ActQuantState& st);
  // §3.3 search on grouped weights wg [N, L] with importance q [N, L]; sym schemes only.
  at::Tensor (*search_init_scale)(const at::Tensor& wg, const QuantScheme& s, const at::Tensor& q);
  // The per-layer global scale of w (NV: 2688/amax); null for types without one.
  at::Tensor (*global_scale)(const at::Tensor& w);
};

// The row of `type`. Throws sr::Error for a value outside the enum.
const DataTypeQdq& data_type_qdq(DataType type);
// Every row, in DataType order.
const std::vector<DataTypeQdq>& data_type_qdq_registry();

}  // namespace sr
