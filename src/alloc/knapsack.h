// Exact multiple-choice knapsack: the optimizer of the mixed-precision allocation (spec §4.6,
// auto-round auto_scheme/delta_loss.py: choose_bits_per_layer_with_path).
//
// Problem. Items i = 0..n-1 (a layer, or a group of layers that must share one scheme). Item i
// offers options k = 0..m_i-1, each with an integer cost c_ik >= 0 and a score s_ik >= 0. Choose
// exactly one option per item so that the total cost Σ_i c_i,k(i) is at most the budget P and the
// total score Σ_i s_i,k(i) is minimal. The allocator feeds it costs in bits (§4.3) and DeltaLoss
// scores (lower = less loss increase), but nothing here knows about layers.
//
// Budget units. Costs and the budget are int64 counts of bits: a layer's cost is layer_bits(),
// the budget P = floor(avg_bits · Σ weights) minus the bits of fixed layers. Integer units make the
// DP exact: no cost is rounded, and two totals are equal only when they are the same number of bits.
//
// Algorithm (dynamic programming over items in the given order).
//   S_0 = {(bits 0, score 0)}.
//   S_i = prune( { (b + c_ik, s + s_ik) : (b, s) ∈ S_{i-1}, k, b + c_ik <= P } ).
//   prune (Pareto): sort the candidates by bits (ties by score) and keep a state only if its score
//   is strictly lower than the score of every state kept before it, i.e. of every cheaper state.
//   A dropped state (b, s) has a kept state (b', s') with b' <= b and s' <= s; whatever options the
//   remaining items take, appending them to (b', s') costs no more and scores no more, so some
//   optimum survives every pruning step (exchange argument) and min over S_n is the optimum.
//   After pruning, S_i is sorted by bits with strictly decreasing scores, so the answer is its LAST
//   state: the most expensive one, with the lowest score.
// Path reconstruction. Every state stores (index of its parent in S_{i-1}, option k). The
// states of all layers S_1..S_n are kept, and the choice is read back from the answer in S_n to
// S_0: one step per item.
// Complexity. With |S| the largest pruned front and m = max_i m_i: time O(Σ_i |S_{i-1}| m_i
// log(|S_{i-1}| m_i)) for the sorts, memory O(Σ_i |S_i|) for the back-pointers. |S_i| is at most
// min(P + 1, number of distinct totals after i items); layers of equal shape have equal costs, so
// for a Llama with s distinct shapes the distinct totals grow polynomially, as O(n^(s·(m−1))), not
// as m^n, and Pareto pruning keeps far fewer. The 4m demo model (28 layers, 3 shapes, 2 options)
// has at most 9·9·13 = 1,053 distinct totals; its largest pruned front holds 48, 53 and 64 states
// at 4.5, 5 and 6 bits (dp_states in autoscheme.json).
// Ties. Equal scores at equal bits keep the state reached with the lower option index on the
// earlier item (a stable sort of the expansion order); the result is deterministic.
#pragma once
#include <cstdint>
#include <vector>

namespace sr {

struct KnapsackOption {
  int64_t cost = 0;   // bits, >= 0
  double score = 0;   // >= 0 and finite; lower is better
};

struct KnapsackItem {
  std::vector<KnapsackOption> options;  // at least one
};

struct KnapsackSolution {
  std::vector<int> choice;  // option index per item
  int64_t cost = 0;         // Σ chosen costs, <= budget
  double score = 0;         // Σ chosen scores, minimal
  int64_t max_states = 0;   // largest pruned front |S_i| seen (for the docs' complexity figures)
};

// Cheapest and most expensive totals over all assignments.
int64_t min_total_cost(const std::vector<KnapsackItem>& items);
int64_t max_total_cost(const std::vector<KnapsackItem>& items);

// Solves the problem above. Throws sr::Error when no assignment fits the budget (naming the
// cheapest total), when an item has no option, a negative cost or a non-finite or negative
// score, or when a front would exceed `state_limit` states (the memory guard; the message
// names the item where it happened).
KnapsackSolution solve_knapsack(const std::vector<KnapsackItem>& items, int64_t budget,
                                int64_t state_limit = 50'000'000);

}  // namespace sr
