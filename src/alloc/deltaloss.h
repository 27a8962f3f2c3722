// DeltaLoss: the per-layer sensitivity of a model to one quantization option (spec §4.4-4.5,
// auto-round auto_scheme/delta_loss.py: get_score_for_scheme, model_forward_low_gpu).
//
// For an option o, every candidate layer ℓ is RTN-quantized with o at once (v = 0, α = β = 1; NVFP4
// global scales fused over q/k/v and gate/up as the pipeline does), and the calibration batches run
// through the whole quantized model (activations qdq'd where o quantizes them) with the causal-LM
// loss L = mean over the batch's B·(T−1) positions of −log p(token_{t+1} | tokens_{≤t}). Then
//   score(ℓ, o) = Σ_batches Σ_i |∂L/∂Ŵ_i · (W_i − Ŵ_i)|          if weight_term   (Ŵ = qdq_w(W))
//               + Σ_batches Σ_t,j |∂L/∂x̂_tj · (x_tj − x̂_tj)|     if o quantizes activations
// where x is the layer's input in the quantized model and x̂ = qdq_act(x) what it multiplies.
// weight_term is §4.4's need_weight_grad: on iff SOME option of the allocation is weight-only
// (bits <= 8 < act_bits) — the caller decides (weight_term_needed). Options that quantize neither
// side (BF16) score 0 without a pass.
//
// Memory (§4.8, "low_gpu_mem_usage"): per batch, the forward runs block by block without a graph,
// keeping each block's input [B, T, D]; the head (final norm, lm_head, loss) gives ∂L/∂h_L; then
// each block, from the last to the first, is loaded again, re-quantized and replayed on its stored
// input with autograd on, and one autograd::grad call returns ∂L/∂(block input) — the next
// block's output gradient — together with ∂L/∂Ŵ and ∂L/∂x̂ of its candidate layers. Only one
// block's graph and weights live at a time: peak ≈ n_layers·B·T·D floats of stored inputs + one
// block's weights and graph + the head's B·T·V logits.
//
// NaN policy (style.md #9): a batch whose loss is not finite is skipped whole; a layer's term
// that is not finite in a batch (NaN/Inf gradients) is left out of that layer's sum. Both are
// counted in the result, never silently dropped.
//
// Data-parallel (DeltaLossOptions::comm): the batches, cut from the tokens as in one process, are
// shared contiguously among the ranks (common/dist.h share_of; uneven shares are fine); each rank
// runs its own, then every batch's per-layer terms, loss and skipped-term count reach every rank
// (gather_rows) and are added in batch order, as one process adds them: the scores, the mean loss
// and the counts equal a 1-process run's bit for bit (each batch is the same rows through the same
// operations). `seconds` and `peak_rss_bytes` stay this rank's.
//
// Shapes: B batch rows, T tokens, D hidden, V vocabulary.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/torch.h"
#include "model/model.h"
#include "quant/formats/scheme.h"

namespace sr {

class Comm;  // common/dist.h

// A layer whose sensitivity is measured: a linear of a decoder block.
struct ScoredLayer {
  std::string name;
  int64_t block = 0;
  int linear = 0;  // index in the block description
};

// What L is. Labels: the spec's causal-LM loss against the next tokens. FullPrecision (our
// extension, docs/decisions.md): L = mean over all B·T positions of KL(p_fp || p_quantized), the
// unquantized model's next-token distribution as soft labels (one extra no-graph forward per
// batch); its gradient is caused by the quantization itself, not by the model's own errors.
enum class DeltaLossTarget { Labels, FullPrecision };

struct DeltaLossOptions {
  int64_t batch_size = 8;   // rows per forward/backward (the last batch may be smaller)
  DeltaLossTarget target = DeltaLossTarget::Labels;
  bool weight_term = false; // add the Σ|g_Ŵ ⊙ (W − Ŵ)| term (§4.4)
  bool progress = true;     // one stderr line per batch
  // bf16 autocast over the quantized model's forwards and backwards (common/amp.h); the option's
  // qdq, the FP target's forward (FullPrecision), the loss and the score sums stay fp32.
  bool amp = false;
  // The group of a data-parallel run (see above), or null: one process scores every batch.
  const Comm* comm = nullptr;
};

struct DeltaLossScores {
  std::vector<double> score;     // per layer (same order as the input); 0 for unquantized options
  int64_t batches = 0;           // batches run
  int64_t skipped_batches = 0;   // batches whose loss was not finite
  int64_t skipped_terms = 0;     // (layer, batch) terms left out for non-finite gradients
  double mean_loss = 0;          // mean calibration loss of the quantized model (finite batches)
  double seconds = 0;
  int64_t peak_rss_bytes = 0;    // process high-water mark after the pass
  bool amp = false;              // computed under bf16 autocast (the record says "compute_dtype")
  nlohmann::json to_json() const;
  static DeltaLossScores from_json(const nlohmann::json& j);  // throws sr::Error on a malformed record
};

// §4.4: whether the weight term is on for a set of options (some option is weight-only).
bool weight_term_needed(const std::vector<QuantScheme>& options);

// Scores `layers` of `model` under `option` on `tokens` [N, T] int64 (N >= 1, T >= 2).
// The model's own input hooks are not used (the option's activation qdq is applied instead);
// layers not listed stay in full precision. A layer that the option does not fit (§0.1) is an
// error: the caller leaves it out. Throws sr::Error naming the layer or the flag.
DeltaLossScores deltaloss_scores(const Model& model, const std::vector<ScoredLayer>& layers,
                                 const QuantScheme& option, const at::Tensor& tokens, const DeltaLossOptions& opt);

// The causal-LM loss and its gradient with respect to every weight of a plain full-graph
// forward + backward of the (unquantized) model on tokens [B, T]: the reference cost that
// DeltaLoss's time is compared with (bench/). Returns the loss.
double full_forward_backward(const Model& model, const at::Tensor& tokens);

}  // namespace sr
