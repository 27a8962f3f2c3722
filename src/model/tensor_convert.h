// Stored tensor bytes -> fp32 torch tensors (the one place that knows every
// storage dtype the model loader accepts).
#pragma once
#include "common/torch.h"
#include "io/tensor_store.h"

namespace sr {

// Returns a new contiguous fp32 tensor with e.shape. Supports F32, F16, BF16 and
// (through quant/formats) the ggml block types. Throws naming the tensor otherwise.
at::Tensor entry_to_float(const TensorEntry& e);

}  // namespace sr
