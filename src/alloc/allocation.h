// Mixed-precision allocation (AutoScheme, spec §4): which option (scheme) each candidate layer
// gets so that the model's average bits per weight stays within a budget, by DeltaLoss + the exact
// DP of alloc/knapsack.h, or by one of the baselines used to measure DeltaLoss's benefit.
//
// Terms.
//   candidate layer  a block Linear the allocation decides (forward order: block, then its linears
//                    as the block description lists them). lm_head and the embeddings are not candidates yet (our pipeline
//                    keeps them in 16 bit); the §4.7 rules for them are below, ready for GGUF.
//   fixed layer      a layer whose scheme the user fixed in a layer config file (or that the §0.1
//                    shape check keeps in 16 bit): not allocated, its bits count in the budget.
//   item             what the DP chooses for: one layer, or a fused group of layers that must
//                    share one option (a fused group of the block description: q/k/v and gate/up
//                    of one Llama block; see FusePolicy).
//   option           a candidate scheme (AllocOption); an item can take an option only if the option
//                    fits (§0.1) every member.
// Average bits (§4.3, §4.6): Σ cost / Σ weights over candidate and fixed layers, cost =
// layer_bits(scheme, out, in, ignore_scale_zp_bits) — or, with BitCost::File, what each layer
// occupies in its file (layer_file_bits; see BitCost).
#pragma once
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "quant/layer_plan.h"

namespace sr {

// One candidate option: the name the user wrote and the scheme it names (the CLI parses
// --options into these: cli/flag_values.h).
struct AllocOption {
  std::string name;    // "MXFP4", "W2A16G64", ...
  QuantScheme scheme;
};

// Which layers must share one option. q/k/v feed one fused qkv_proj and gate/up one
// gate_up_proj in vLLM-style runtimes, which need one scheme per fused weight; NVFP4 also
// shares one global scale across them (§1.4, min of the members'). GGUF keeps every tensor
// separately typed (llama.cpp's own mixes give attn_v more bits than attn_q), so it never needs
// fusion. Auto: fuse iff some option is NVFP4 (nv_fp).
// MoE experts: whatever the policy, the experts of one projection in a block are one item when an
// option is a GGUF type (GGUF stacks them into one tensor of one type); with fusion they are too,
// gate and up together (vLLM's fused-MoE weights w13 and w2 hold every expert). Their scores and
// costs add up.
enum class FusePolicy { Auto, On, Off };

// What a layer's bits are. Spec: §4.3's layer_bits, auto-round's estimate. File: the bits the
// layer occupies when written (layer_file_bits) — for GGUF k-quants the block size (Q3_K 3.4375
// bits/weight where §4.3 says 4.0, Q6_K 6.5625 where it says 7.25, Q2_K 2.625 for 2.75), so an
// allocation compared with llama.cpp's mixes at equal file size optimizes the constraint it is
// judged by; other families cost the same either way. Auto: File when an option is a GGUF type.
enum class BitCost { Auto, Spec, File };

struct AllocLayer {
  std::string name;
  int64_t block = 0;
  int linear = 0;          // index in the block description
  int64_t out = 0, in = 0;
  int fuse_group = -1;     // the block description's fused group (-1: alone)
  int expert_proj = -1;    // a MoE expert's projection (0 gate, 1 up, 2 down); -1 otherwise
};

struct AllocProblem {
  BlockDescs blocks;                        // what each block holds (the plan's)
  std::vector<AllocLayer> layers;           // candidates, forward order
  std::vector<AllocOption> options;
  std::vector<std::vector<size_t>> items;   // member layer indices; items in forward order
  std::vector<std::vector<int64_t>> cost;   // [layer][option] bits, -1 when the option does not fit
  int64_t fixed_bits = 0, fixed_weights = 0;
  bool ignore_scale_zp_bits = false;
  bool file_bits = false;                   // costs are layer_file_bits (BitCost::File)
  bool fused = false;                       // items are fused groups
  bool stacked = false;                     // the experts of one projection are one item (GGUF)

  int64_t total_weights() const;            // candidates + fixed
  // Whether item i can take option k (fits every member).
  bool item_allows(size_t item, size_t option) const;
  int64_t item_cost(size_t item, size_t option) const;  // REQUIRES: item_allows
};

// Builds the problem from a plan made with BF16 as default scheme (make_layer_plan): layers
// with source "default" are candidates, the others fixed with their scheme. Throws if a
// candidate fits no option (naming it).
// Throws if ignore_scale_zp_bits is combined with file costs (a file stores its scales).
AllocProblem make_alloc_problem(const LayerPlan& plan, const std::vector<AllocOption>& options,
                                FusePolicy fuse, bool ignore_scale_zp_bits, BitCost cost = BitCost::Spec);

// The averages the problem can reach: every item at its cheapest / most expensive option.
struct BudgetRange {
  int64_t min_bits = 0, max_bits = 0;  // totals including fixed layers
  double min_avg = 0, max_avg = 0;
};
BudgetRange budget_range(const AllocProblem& p);

// Bits the items may spend for a target average: floor(avg_bits · total_weights) − fixed_bits,
// after snapping a target within 1e-3 of an end of the range onto it (§4.1). Throws sr::Error
// ("[allocation] avg_bits 3.1 is not achievable with options ...: between 4.250 and 8.250") outside.
int64_t item_budget(const AllocProblem& p, double avg_bits);

enum class AllocatorKind { DeltaLoss, Uniform, Head, Tail, Random };
const char* to_string(AllocatorKind k);

// DeltaLoss scores [layer][option] (alloc/deltaloss.h); NaN where an option does not fit.
using ScoreTable = std::vector<std::vector<double>>;

struct Allocation {
  AllocatorKind allocator = AllocatorKind::DeltaLoss;
  double target_avg_bits = 0;
  std::vector<int> option;     // per candidate layer: index into options
  int64_t bits = 0;            // total including fixed layers
  double avg_bits = 0;         // bits / total_weights
  double score = 0;            // Σ chosen scores (NaN without scores)
  int64_t dp_states = 0;       // largest DP front (DeltaLoss only)
  double measured_kld = std::nan("");  // KLD to the FP model on the scoring tokens (alloc/measured_kld.h), if measured
  // With refinement (alloc/refine.h): the DP's answer's measured KLD before refinement, and the
  // refinement's evaluations; NaN / 0 otherwise.
  double unrefined_kld = std::nan("");
  int64_t refine_evaluations = 0;
};

// Allocates for one target average:
//   deltaloss  the exact DP of knapsack.h on item scores Σ_member score[layer][option];
//   uniform    every item the same option: the most expensive option whose all-layers total
//              fits (items that cannot take it keep their cheapest option);
//   head8      all items at their cheapest option, then, in forward order, each item is raised
//              to the most expensive option that still fits the remaining budget ("first layers
//              in 8 bits until the budget is met");
//   tail8      the same in reverse order;  random  the same in an order shuffled with `seed`.
// REQUIRES: scores (|layers| × |options|) for deltaloss; optional otherwise (then score = NaN).
// Throws as item_budget does, and when a needed score is not finite (naming layer and option).
Allocation allocate(const AllocProblem& p, const ScoreTable* scores, double avg_bits, AllocatorKind kind,
                    uint64_t seed = 42);

// The per-layer scheme file (tune/layer_plan.h format) for the allocation: every candidate and
// every fixed layer of `plan` by exact name, plus an "autoscheme" record (target, achieved
// average, options, allocator) that readers of the file ignore.
nlohmann::ordered_json layer_config_json(const LayerPlan& plan, const AllocProblem& p, const Allocation& a);
// The same schemes in memory, by exact layer name (PlanOptions::layer_schemes).
std::map<std::string, QuantScheme> allocation_layer_schemes(const LayerPlan& plan, const AllocProblem& p,
                                                            const Allocation& a);

// §4.7 lm_head rule (auto-round _apply_head_trick), for when lm_head becomes a candidate:
// options with >= 6 bits: none -> the single lowest-loss option; one -> it; several -> the
// highest-bit one when target > 6, else all of them. `total_loss[k]` is option k's loss summed
// over layers. Returns allowed option indices (feasibility widening is the caller's).
std::vector<size_t> head_options(const std::vector<AllocOption>& options, const std::vector<double>& total_loss,
                                 double target_avg_bits);
// §4.7 embedding rule (auto-round _select_embedding_scheme_index): the option order it tries.
// Tied: lowest loss first, restricted to <= 6 bits unless target > 6. Untied: options with
// bits == floor(target), else the next higher bit width present, else all; by loss. The caller
// takes the first whose cost leaves room for the cheapest choice of every other item.
std::vector<size_t> embedding_option_order(const std::vector<AllocOption>& options,
                                           const std::vector<double>& total_loss, double target_avg_bits,
                                           bool tied);

}  // namespace sr
