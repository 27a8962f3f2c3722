// One quantized decoder block: the rules by which a block's linears are quantized under
// per-linear schemes, shared by every stage that quantizes a block (tune/ for `quantize`,
// alloc/ for DeltaLoss scoring and the KLD probe, quant/act_hooks for inference), so that what
// alloc/ measures is what tune/ writes:
//   - NVFP4 global scales: the members of a fused group (q/k/v, gate/up) share the minimum of
//     theirs (§1.4); every other linear keeps its own (fused_global_scales);
//   - importance units: auto-round's searches take Σx² over the calibration tokens, llama.cpp's
//     GGUF encoders its mean, Σx² / tokens (scheme_importance);
//   - weights: RTN (v = 0, α = β = 1) or optimized RTN (the §3.3 / llama.cpp imatrix search)
//     with those global scales and importances (quantize_block_weights);
//   - activations: each act-quantized projection's input qdq'd with its calibrated state, or
//     for a static scheme without one, the range of the tensor at hand (block_activation_hook).
//
// Per-linear vectors (BlockSchemes, BlockTensors, activation states, captures) are indexed like
// the block description's linears (model/block_desc.h); an empty vector means "none".
#pragma once
#include <cstdint>
#include <vector>

#include "common/torch.h"
#include "model/llama.h"
#include "quant/qdq.h"
#include "quant/formats/scheme.h"

namespace sr {

// Per-linear schemes of one block (a 16-bit scheme leaves a linear as it is).
using BlockSchemes = std::vector<QuantScheme>;
// A block with every linear of `d` left as it is (BF16): the start of a BlockSchemes.
BlockSchemes unquantized_block(const BlockDesc& d);
// Per-linear tensors of one block (undefined where none).
using BlockTensors = std::vector<at::Tensor>;

// The global scale each NVFP4-quantized linear of the block quantizes with: within a fused group
// of `d`, the fused scale of its NVFP4 members (whatever their other fields); elsewhere its
// own, nvfp::global_scale(w). Undefined for linears that are not NVFP4. w: the block's FP
// weights (the linears that are not NVFP4 may be undefined).
BlockTensors fused_global_scales(const BlockDesc& d, const BlockWeights& w, const BlockSchemes& s);

// The importance a scheme's search takes from Σx² [I] over `tokens` calibration tokens: Σx²
// itself, or for GGUF types llama.cpp's imatrix, Σx² / tokens (tokens <= 0: unknown, as is).
// Undefined in, undefined out.
at::Tensor scheme_importance(const at::Tensor& sum_sq, const QuantScheme& s, int64_t tokens);

enum class WeightEncoder { Rtn, OptRtn };

// ŵ of one projection under s (no gradient): RTN, or optimized RTN with `importance` (the
// scheme's units, see scheme_importance). REQUIRES: s.quantized().
at::Tensor quantize_weight(const at::Tensor& w, const QuantScheme& s, WeightEncoder e,
                           const at::Tensor& importance, const at::Tensor& global_scale);

// Replaces each quantized linear's weight in `w` by its ŵ under s (fused global scales;
// for OptRtn the importance from sum_sq over `tokens`). Returns the FP weights replaced.
BlockTensors quantize_block_weights(const BlockDesc& d, BlockWeights& w, const BlockSchemes& s, WeightEncoder e,
                                    const BlockTensors& sum_sq = {}, int64_t tokens = 0);

// What the hook saw of a projection's input: x (detached) and x̂ = qdq_act(x), in the graph.
struct ActCapture {
  at::Tensor x, x_hat;
};
using ActCaptures = std::vector<ActCapture>;

// Where a static activation scheme's range comes from: the calibrated act_max given (what
// quantize writes and inference reads; qdq_act refuses what it needs and lacks), or the max |x|
// of the tensor at hand (DeltaLoss scores and the KLD probe measures without calibration).
enum class StaticRange { Calibrated, ThisTensor };

// The input hook quantizing the activations of the block's act-quantized linears with `act`
// (per linear; empty: no calibrated state); nullptr when no linear quantizes its input. When `cap`
// is given, every qdq'd input is recorded there (it must outlive the hook's use; it is resized
// to s.size()).
InputHook block_activation_hook(const BlockSchemes& s, const std::vector<ActQuantState>& act, StaticRange range,
                                ActCaptures* cap = nullptr);

}  // namespace sr
