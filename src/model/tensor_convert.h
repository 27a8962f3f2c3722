// Stored tensor bytes <-> torch tensors: the one place that maps storage dtype
// names ("F32", "BF16", "U8", ...) to torch scalar types.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/torch.h"
#include "io/tensor_store.h"

namespace sr {

// Returns a new contiguous fp32 tensor with e.shape. Supports F32, F16, BF16 and
// the ggml block types (dequantized). Throws naming the tensor otherwise.
at::Tensor entry_to_float(const TensorEntry& e);

// Returns a copy with the stored dtype kept (F32, F16, BF16, F64, I8, U8, I16, I32, I64, BOOL).
at::Tensor entry_to_tensor(const TensorEntry& e);

// safetensors dtype name of a torch scalar type ("F32", "BF16", "U8", ...); throws if none.
std::string dtype_name(at::ScalarType t);
at::ScalarType scalar_type_of(const std::string& dtype);  // inverse; throws if none

// Writes tensors (contiguous CPU copies are made as needed) to a safetensors file,
// under a temporary name renamed when complete.
void save_tensors(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                  const std::map<std::string, std::string>& metadata = {});
// Reads every tensor of a safetensors file (dtypes kept) and its metadata.
std::vector<std::pair<std::string, at::Tensor>> load_tensors(const std::string& path,
                                                              std::map<std::string, std::string>* metadata = nullptr);

}  // namespace sr
