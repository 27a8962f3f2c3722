// Rows of the embedding / lm_head a chunk at a time (contract in matrix_rows.h).
#include "model/matrix_rows.h"

#include "common/error.h"
#include "model/tensor_convert.h"

namespace sr {

at::Tensor vocab_matrix_rows(const Model& m, const std::string& hf_name, int64_t r0, int64_t n) {
  const ModelConfig& c = m.config();
  const bool embedding = hf_name == "model.embed_tokens.weight";
  SR_CHECK(embedding || hf_name == "lm_head.weight", "[model] ", m.path(), ": ", hf_name,
           " is not one of the vocabulary-sized matrices (model.embed_tokens.weight, lm_head.weight)");
  SR_CHECK(r0 >= 0 && n >= 0 && r0 + n <= c.vocab, "[model] ", m.path(), ": rows ", r0, "..", r0 + n - 1, " of ",
           hf_name, " lie outside [0, ", c.vocab, ")");
  const std::string stored = m.stored_name(embedding || c.tie_embeddings ? "model.embed_tokens.weight" : hf_name);
  const TensorEntry* e = m.format() == "safetensors" && !m.packed_weights() ? m.tensors().find(stored) : nullptr;
  if (e && (e->dtype == "F32" || e->dtype == "F16" || e->dtype == "BF16")) {
    const at::Tensor all =
        at::from_blob(const_cast<uint8_t*>(e->data), at::IntArrayRef(e->shape), scalar_type_of(e->dtype));
    // A copy even from F32, so that the result never aliases pages about to be released.
    at::Tensor rows = all.narrow(0, r0, n).to(at::kFloat, /*non_blocking=*/false, /*copy=*/true).contiguous();
    m.tensors().release(*e);
    return rows;
  }
  return (embedding ? m.embedding() : m.lm_head()).narrow(0, r0, n).contiguous().clone();
}

}  // namespace sr
