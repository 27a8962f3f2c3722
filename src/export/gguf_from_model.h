// Writes a whole opened Model as a "llama" GGUF file with one of llama.cpp's mixes,
// encoding its fp32 weights with llama.cpp's own encoders (ref, or imatrix-weighted):
// what `llama-quantize` does to convert_hf_to_gguf.py's F32 file, in one pass over the
// model's blocks (one block resident at a time).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "export/gguf_export.h"
#include "model/model.h"

namespace sr {

struct GgufModelExportOptions {
  GgufPlanOptions plan;   // overrides; has_imatrix is set when `imatrix` is not empty
  GgufExportOptions file;  // its `source` is set from the model (without the folder's special ids
                          // when `vocabulary` replaces the tokenizer)
  // Tensor name (HF "model.layers.0.mlp.down_proj.weight" or GGUF) -> importance [in].
  // Matrices without an entry use the ref encoder.
  std::map<std::string, at::Tensor> imatrix;
  // Tokenizer to store; nullptr: the model's (Model::tokenizer() throws if it has none).
  const Vocabulary* vocabulary = nullptr;
  bool progress = true;   // a progress line per block on stderr
};

// Plans, writes and completes `path`; returns the plan used. Throws sr::Error naming
// the file or tensor (e.g. when the model has no tokenizer to store, or an imatrix
// names no tensor of the model).
std::vector<GgufTensorPlan> export_gguf(const Model& m, const std::string& path, GgufMix mix,
                                        const GgufModelExportOptions& opt = {});

}  // namespace sr
