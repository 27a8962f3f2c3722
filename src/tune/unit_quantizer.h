// Quantizing one "unit" of the model — nblocks consecutive decoder blocks
// (nblocks = 1 by default) — given its cached calibration activations:
//   RTN             plain rounding, no data (spec §2.8)
//   optimized RTN   imatrix-weighted initial-scale search, then rounding (§2.8, §3.3)
//   SignRound       sign-SGD on the rounding offsets v and scale multipliers (§2.4-2.6);
//                   V2 (alg_ext) adds the imatrix-weighted init scale with β in [0, 2]
//                   and the outlier-filtered loss (§3.1-3.5)
// The unit is tuned to reproduce the FP unit's outputs `y_ref` from the
// quantized-path inputs `x_in` (§2.3).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/torch.h"
#include "model/llama.h"
#include "quant/layer_plan.h"
#include "quant/quantized_layer.h"
#include "tune/act_cache.h"

namespace sr {

class Comm;  // common/dist.h

// How the calibration samples are split for a data-parallel run (tune/pipeline.h): `count`
// shards of equal size over all ranks. The rows of x_in / y_ref / mask are the `local` shards
// this process holds, one after another, the first being shard `first`. Each tuning step draws
// an equal share of the global batch from every shard (shard k's own sampler), sums the losses and
// gradients shard by shard in shard order, then over the ranks (comm). One process holding every
// shard therefore computes what `count` ranks compute, bit for bit with 2.
struct DataShards {
  int64_t count = 1;
  int64_t local = 1;
  int64_t first = 0;
  const Comm* comm = nullptr;  // null: every shard is local
};

enum class Method { Rtn, OptRtn, SignRound };

// Recomputation inside the blocks during tuning (model/block_checkpoint.h): bounds the graph of
// one forward and backward at long sequences (the attention's B·H·T² scores one kv head at a time,
// the MLP's B·T·F activations only during their own backward) for about one more forward per
// step. The gradients, and so the tuned weights, are the same either way.
enum class Checkpoint { Off, On, Auto };

struct TuneOptions {
  Method method = Method::SignRound;
  int64_t iters = 200;
  double lr = 0;          // 0: auto, 1/iters (2/iters for layers of <= 3 bits when iters >= 1000)
  double minmax_lr = 0;   // 0: lr
  int64_t batch_size = 8;
  int64_t gradient_accumulate_steps = 1;
  bool not_use_best_mse = false;
  bool enable_minmax_tuning = true;
  bool alg_ext = true;    // SignRoundV2 for schemes that have it (sym int, MX, NV)
  uint64_t seed = 42;
  DataShards shards;      // the default: one process, one shard (the batch drawn from all samples)
  // bf16 autocast over the sign-SGD loop's forwards and backwards (common/amp.h): matmuls in bf16,
  // v, α, β, the weights' qdq, the activations' qdq, the target and the loss in fp32. Off gives
  // the fp32 loop bit for bit. The caller decides (bf16_compute_supported, --disable_amp).
  bool amp = false;
  // Auto: on when tuning_graph_bytes without it exceeds graph_budget (bytes; 0: never).
  Checkpoint checkpoint = Checkpoint::Off;
  int64_t graph_budget = 0;
  // Called after each sign-SGD iteration of a unit with the iterations done, their total and the
  // seconds since the loop began (progress lines and their ETA); absent: nothing.
  std::function<void(int64_t done, int64_t total, double seconds)> on_iteration;
};

// Estimated peak bytes of the autograd graph of one tuning forward and backward of a unit of
// `nblocks` blocks on `rows` samples of T tokens (model/block_checkpoint.h, block_graph_bytes).
int64_t tuning_graph_bytes(const ModelConfig& c, int64_t rows, int64_t T, int64_t nblocks, bool checkpointed);
// Whether tuning a unit of `nblocks` blocks on samples of T tokens recomputes (TuneOptions::checkpoint).
bool use_checkpointing(const ModelConfig& c, const TuneOptions& opt, int64_t T, int64_t nblocks);

struct UnitInput {
  std::vector<int64_t> blocks;           // consecutive block indices
  std::vector<BlockWeights> fp;          // their full-precision weights
  ActivationCache x_in;                  // [N, T, D] tuning inputs (any float dtype; a tensor converts)
  ActivationCache y_ref;                 // [N, T, D] FP outputs of the unit
  at::Tensor mask;                       // [N, T] bool token-validity mask
  std::map<std::string, at::Tensor> imatrix;  // layer name -> [I] Σ x² over the FP pass
  std::map<std::string, at::Tensor> act_max;  // layer name -> scalar max |x| over the FP pass
  // layer name -> rows its input had over the FP pass (the tokens routed to it, for an expert);
  // layers absent saw every token of x_in.
  std::map<std::string, int64_t> tokens;
};

struct UnitResult {
  std::vector<QuantizedLayer> layers;     // every quantized layer of the unit
  std::vector<BlockWeights> quantized;    // fake-quant weights, one per block
  // method, losses, best iteration, checkpoint, seconds (total; loop_seconds: the sign-SGD loop)
  nlohmann::json stats;
};

// REQUIRES: for SignRound and OptRtn, x_in/y_ref/mask filled; for Rtn they may be undefined.
UnitResult quantize_unit(const ModelConfig& config, const LayerPlan& plan, const UnitInput& in,
                         const RopeTables& rope, const TuneOptions& opt);

// lm_head's inputs (after the final norm), for §2.7.
struct HeadInput {
  at::Tensor weight;    // [V, D] FP lm_head
  ActivationCache x_fp;  // [N, T, D] FP-path inputs, or undefined (RTN)
  ActivationCache x_q;   // [N, T, D] quantized-path inputs, or undefined (RTN)
  at::Tensor mask;      // [N, T]
  at::Tensor imatrix;   // [D] Σ x² over the FP inputs, or undefined
  int64_t tokens = -1;  // the tokens imatrix summed over; -1: all of x_fp's
  at::Tensor act_max;   // scalar, or undefined
};

// Quantizes lm_head alone (spec §2.7): tuned with sign-SGD on its cached inputs when
// SignRound runs with data, else RTN / optimized RTN. Returns one layer.
UnitResult quantize_head(const LayerPlan& plan, const HeadInput& in, const TuneOptions& opt);

// The input hook that quantizes activations of the block's act-quantized layers
// (nullptr when none is). `act` supplies calibrated act_max per layer name.
InputHook activation_hook(const LayerPlan& plan, int64_t block, const std::map<std::string, ActQuantState>& act);

// The forward of the unit with the given (fake-quant or FP) weights; `checkpointed`: with
// recomputation in the backward (model/block_checkpoint.h), the same values.
at::Tensor unit_forward(const ModelConfig& config, const std::vector<BlockWeights>& weights,
                        const std::vector<InputHook>& hooks, const at::Tensor& x, const RopeTables& rope,
                        bool checkpointed = false);

}  // namespace sr
