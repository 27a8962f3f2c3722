#include "alloc/knapsack.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "common/error.h"

namespace sr {
namespace {

// One DP state: bits spent and score reached after some items, and how it was reached.
struct State {
  int64_t bits;
  double score;
  int64_t parent;  // index into the previous front (-1 for S_0)
  int option;      // option taken on this item
};

void check_items(const std::vector<KnapsackItem>& items) {
  for (size_t i = 0; i < items.size(); ++i) {
    SR_CHECK(!items[i].options.empty(), "[knapsack] item ", i, " has no option");
    for (const KnapsackOption& o : items[i].options) {
      SR_CHECK(o.cost >= 0, "[knapsack] item ", i, ": negative cost ", o.cost);
      SR_CHECK(std::isfinite(o.score) && o.score >= 0, "[knapsack] item ", i,
               ": score must be finite and >= 0, got ", o.score);
    }
  }
}

// Every state of `front` extended by every option of `item` that stays within the budget.
std::vector<State> expand(const std::vector<State>& front, const KnapsackItem& item, int64_t budget) {
  std::vector<State> next;
  next.reserve(front.size() * item.options.size());
  for (size_t s = 0; s < front.size(); ++s)
    for (size_t k = 0; k < item.options.size(); ++k) {
      const KnapsackOption& o = item.options[k];
      if (o.cost > budget - front[s].bits) continue;
      next.push_back({front[s].bits + o.cost, front[s].score + o.score, int64_t(s), int(k)});
    }
  return next;
}

// Pareto pruning (see the header): sorted by bits, strictly decreasing scores.
void prune(std::vector<State>& states) {
  std::stable_sort(states.begin(), states.end(), [](const State& a, const State& b) {
    return a.bits != b.bits ? a.bits < b.bits : a.score < b.score;
  });
  size_t kept = 0;
  double best = std::numeric_limits<double>::infinity();
  for (const State& s : states) {
    if (!(s.score < best)) continue;
    best = s.score;
    states[kept++] = s;
  }
  states.resize(kept);
}

// Σ over items of their cheapest (most_expensive = false) or most expensive option's cost.
int64_t extreme_total_cost(const std::vector<KnapsackItem>& items, bool most_expensive) {
  check_items(items);
  int64_t total = 0;
  for (const KnapsackItem& it : items) {
    const auto [lo, hi] = std::minmax_element(it.options.begin(), it.options.end(),
                                              [](auto& a, auto& b) { return a.cost < b.cost; });
    total += most_expensive ? hi->cost : lo->cost;
  }
  return total;
}

}  // namespace

int64_t min_total_cost(const std::vector<KnapsackItem>& items) { return extreme_total_cost(items, false); }
int64_t max_total_cost(const std::vector<KnapsackItem>& items) { return extreme_total_cost(items, true); }

KnapsackSolution solve_knapsack(const std::vector<KnapsackItem>& items, int64_t budget, int64_t state_limit) {
  const int64_t cheapest = min_total_cost(items);
  SR_CHECK(cheapest <= budget, "[knapsack] infeasible: the cheapest assignment costs ", cheapest,
           " bits, the budget is ", budget);
  std::vector<std::vector<State>> fronts;  // fronts[i] = S_{i+1}
  fronts.reserve(items.size());
  std::vector<State> front = {{0, 0.0, -1, -1}};
  KnapsackSolution sol;
  for (size_t i = 0; i < items.size(); ++i) {
    SR_CHECK(int64_t(front.size() * items[i].options.size()) <= state_limit, "[knapsack] item ", i, ": ",
             front.size() * items[i].options.size(), " states exceed the limit of ", state_limit,
             " (too many distinct totals; coarser costs or fewer options would help)");
    std::vector<State> next = expand(front, items[i], budget);
    prune(next);
    sol.max_states = std::max<int64_t>(sol.max_states, int64_t(next.size()));
    fronts.push_back(next);
    front = std::move(next);
  }
  // The last state of a pruned front is the lowest score (and within budget by construction).
  sol.choice.assign(items.size(), -1);
  const State& answer = front.back();
  sol.cost = answer.bits;
  sol.score = answer.score;
  int64_t at = int64_t(front.size()) - 1;
  for (size_t i = items.size(); i-- > 0;) {
    const State& s = fronts[i][size_t(at)];
    sol.choice[i] = s.option;
    at = s.parent;
  }
  return sol;
}

}  // namespace sr
