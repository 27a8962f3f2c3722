#include "model/tensor_convert.h"

#include "common/error.h"

namespace sr {

at::Tensor entry_to_float(const TensorEntry& e) {
  void* data = const_cast<uint8_t*>(e.data);
  at::IntArrayRef shape(e.shape);
  if (e.dtype == "F32") return at::from_blob(data, shape, at::kFloat).clone();
  if (e.dtype == "F16") return at::from_blob(data, shape, at::kHalf).to(at::kFloat);
  if (e.dtype == "BF16") return at::from_blob(data, shape, at::kBFloat16).to(at::kFloat);
  fail("[model] tensor ", e.describe(), ": dtype ", e.dtype, " is not supported for weights (F32, F16, BF16)");
}

}  // namespace sr
