// The importance matrix of a run by layer, and llama.cpp's imatrix files (io/imatrix_file.h)
// mapped onto a model's linears through its block description:
//   blk.<b>.<gguf stem>.weight      -> model.layers.<b>.<module>   (a dense linear)
//   blk.<b>.ffn_gate_exps.weight    -> the experts' gate projections, matrix e = expert e
//   output.weight                   -> lm_head (llama-imatrix --process-output)
// A layer's importance keeps Σx² and the tokens it summed over, so that llama.cpp's mean
// (Σx² / tokens, what the GGUF encoders take) and auto-round's Σx² (what the V2 and opt-RTN
// searches take, quant/block_quant.h scheme_importance) both come out as the pipeline would
// have collected them. From a legacy file, whose values are mean x ncall, "tokens" is ncall
// (chunks), so the mean is llama-quantize's exactly and Σx² is off by the chunk size, a
// factor the searches do not see.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "common/torch.h"
#include "io/imatrix_file.h"
#include "model/block_desc.h"
#include "model/config.h"

namespace sr {

struct LayerImportance {
  at::Tensor sum_sq;   // [in] float: Σx² over the layer's input tokens
  int64_t tokens = 0;  // how many; 0: unknown, sum_sq is the importance as is
};

// By layer name (LayerChoice::name: "model.layers.3.mlp.down_proj", "lm_head").
using Importances = std::map<std::string, LayerImportance>;

// llama.cpp's imatrix of a layer: Σx² / tokens in float (1s for a matrix that saw no token
// in a GGUF imatrix, as llama-quantize); sum_sq itself when tokens is 0.
at::Tensor importance_mean(const LayerImportance& l);

// The entries of `f` (read from `path`) as layer importances of a model with config `c` and
// blocks `blocks` (Model::block_descs()). Throws sr::Error naming `path` and the first entry whose name is not a linear of
// the model (its block out of range, an unknown stem, output.weight of a tied model) or whose
// size is not the linear's input size (times the experts for a stacked expert tensor).
// Layers the file does not name are absent (llama-quantize quantizes them without one).
Importances importances_from_file(const ImatrixFile& f, const std::string& path, const ModelConfig& c,
                                  const BlockDescs& blocks);

// The importances as an imatrix file in GGUF meaning (ImatrixFile::legacy false): llama.cpp's
// names, each stacked expert tensor's matrices in expert order (an expert without an entry:
// zeros and count 0, as llama-imatrix stores an expert that saw no token).
ImatrixFile imatrix_file_of(const Importances& im, const ModelConfig& c, const BlockDescs& blocks);

}  // namespace sr
