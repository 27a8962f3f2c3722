// Many KLD measurements of nearby allocations, cheaply: the engine behind --measure_kld and the
// measured refinement (alloc/refine.h).
//
// A probe holds the calibration tokens [N, T] and, computed once, the full-precision model's
// log-probabilities on them. kld(a) runs the model with every block projection quantized as the
// assignment `a` says, by the rules `quantize` applies (quant/block_quant.h: fused NVFP4 global
// scales, importance units; static activation schemes take the range of the tensor at hand)
// with the probe's encoder, and returns
//   KLD = mean over all N·T positions of Σ_v p_fp(v) (log p_fp(v) − log p_q(v)).
// Encoders: Rtn (plain round-to-nearest, §2.8) or OptRtn — what `quantize --iters 0` writes by
// default: the §3.3 imatrix-weighted search (GGUF: llama.cpp's imatrix encoder) with the
// importance Σx² of each projection's input collected during the probe's own FP pass (GGUF:
// its mean over the tokens, as the quantize pipeline passes it). Measuring with the encoder
// that will be used matters: at 2 bits opt-RTN repairs much of what RTN breaks. Given an imatrix
// (an imatrix file: `quantize --imatrix`), OptRtn uses it instead, as the quantize pipeline does:
// a layer the file does not name is searched without importances (llama-quantize's way).
//
// Two caches make a search affordable:
//   base prefix  set_base(a) keeps a's input to every block; kld(b) then starts at the first
//                block where b differs from the base (a one-layer change in block i runs blocks
//                i.. only). Memory: n_layers · N·T·D floats.
//   weights      the quantized weight of each (block, linear, scheme, global scale) seen, while their
//                total stays under `weight_cache_bytes`; past that, weights are requantized on
//                every use (slower, same numbers).
// The FP log-probabilities take N·T·V floats (16 MB for 16 × 256 tokens and a 1024 vocabulary;
// 0.5 GB for a 32k vocabulary). Results do not depend on the caches or on `batch`, up to float
// summation order.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "common/torch.h"
#include "model/llama.h"
#include "model/model.h"
#include "quant/block_quant.h"
#include "quant/formats/scheme.h"

namespace sr {

enum class ProbeEncoder { Rtn, OptRtn };

// A given imatrix by full HF module name ("model.layers.3.mlp.down_proj"): Σx² [in] and the
// tokens it summed over (0: unknown, Σx² is the importance as is).
struct GivenImportance {
  at::Tensor sum_sq;
  int64_t tokens = 0;
};
using GivenImportances = std::map<std::string, GivenImportance>;

class KldProbe {
 public:
  // Runs the FP model on `tokens` [N >= 1, T >= 2] int64 in batches of `batch` rows. Throws
  // sr::Error on malformed tokens or batch.
  // `given` (kept by pointer; may be null): the OptRtn encoder's importances instead of the
  // probe's own Σx².
  KldProbe(const Model& model, const at::Tensor& tokens, int64_t batch, ProbeEncoder encoder = ProbeEncoder::Rtn,
           int64_t weight_cache_bytes = int64_t(1) << 30, const GivenImportances* given = nullptr);

  // KLD of assignment `a` ([n_layers] block schemes, each one per linear of the model's block
  // description; a 16-bit scheme leaves a linear as is). Throws sr::Error on other sizes.
  double kld(const std::vector<BlockSchemes>& a);

  // Keeps a's block inputs so that later kld() calls reuse the blocks `a` shares with them.
  void set_base(const std::vector<BlockSchemes>& a);

  int64_t evaluations() const { return evaluations_; }
  int64_t blocks_run() const { return blocks_run_; }

 private:
  at::Tensor block(int64_t b, const BlockSchemes& s, const at::Tensor& h);
  const at::Tensor& quantized_weight(int64_t b, int linear, const QuantScheme& s, const at::Tensor& w,
                                     const at::Tensor& global_scale);
  void check(const std::vector<BlockSchemes>& a) const;

  const Model& model_;
  at::Tensor tokens_, positions_;
  int64_t batch_;
  ProbeEncoder encoder_;
  std::vector<BlockTensors> imatrix_;                 // [block][linear] Σx² over the FP pass or given (OptRtn)
  std::vector<std::vector<int64_t>> imatrix_tokens_;  // [block][linear] the tokens each Σx² summed over
  std::vector<at::Tensor> fp_logp_;                   // per batch [b, T, V]
  std::vector<BlockSchemes> base_;                    // empty: no base
  std::vector<std::vector<at::Tensor>> base_inputs_;  // [batch][block] input of block
  std::map<std::tuple<int64_t, int, std::string, float>, at::Tensor> wcache_;
  at::Tensor scratch_;                                // a weight past the cache limit
  int64_t wcache_bytes_ = 0, wcache_limit_;
  int64_t evaluations_ = 0, blocks_run_ = 0;
};

}  // namespace sr
