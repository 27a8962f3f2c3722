#include "alloc/allocation.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <sstream>

#include "alloc/knapsack.h"
#include "common/error.h"

namespace sr {

int64_t AllocProblem::total_weights() const {
  int64_t n = fixed_weights;
  for (const AllocLayer& l : layers) n += l.out * l.in;
  return n;
}

bool AllocProblem::item_allows(size_t item, size_t option) const {
  for (size_t l : items[item])
    if (cost[l][option] < 0) return false;
  return true;
}

int64_t AllocProblem::item_cost(size_t item, size_t option) const {
  int64_t c = 0;
  for (size_t l : items[item]) c += cost[l][option];
  return c;
}

namespace {

bool wants_fusion(FusePolicy f, const std::vector<AllocOption>& options) {
  if (f != FusePolicy::Auto) return f == FusePolicy::On;
  return std::any_of(options.begin(), options.end(),
                     [](const AllocOption& o) { return o.scheme.data_type == DataType::NvFp; });
}

// The projection of a MoE expert linear (0 gate, 1 up, 2 down), -1 for the others.
int expert_projection(const LinearDesc& l) {
  if (l.expert < 0) return -1;
  return l.gguf == "ffn_down_exps" ? 2 : l.gguf == "ffn_up_exps" ? 1 : 0;
}

std::vector<std::vector<size_t>> make_items(const std::vector<AllocLayer>& layers, bool fuse, bool stack) {
  std::vector<std::vector<size_t>> items;
  std::map<std::pair<int64_t, int64_t>, size_t> group_item;
  constexpr int64_t kExperts = int64_t(1) << 40;  // keys of expert stacks, apart from groups and linears
  for (size_t i = 0; i < layers.size(); ++i) {
    const AllocLayer& l = layers[i];
    // Unfused, or outside any fused group, a linear is an item of its own (its key is unique).
    int64_t group = fuse && l.fuse_group >= 0 ? l.fuse_group : -1 - l.linear;
    if (l.expert_proj >= 0 && (fuse || stack)) group = kExperts + (fuse && !stack && l.expert_proj == 1 ? 0 : l.expert_proj);
    const auto [it, fresh] = group_item.try_emplace({l.block, group}, items.size());
    if (fresh) items.emplace_back();
    items[it->second].push_back(i);
  }
  return items;
}

}  // namespace

AllocProblem make_alloc_problem(const LayerPlan& plan, const std::vector<AllocOption>& options, FusePolicy fuse,
                                bool ignore, BitCost bit_cost) {
  SR_CHECK(!options.empty(), "[allocation] options names no scheme");
  AllocProblem p;
  p.blocks = plan.blocks;
  p.options = options;
  p.ignore_scale_zp_bits = ignore;
  p.file_bits = bit_cost == BitCost::File ||
                (bit_cost == BitCost::Auto &&
                 std::any_of(options.begin(), options.end(), [](const AllocOption& o) { return o.scheme.is_gguf(); }));
  SR_CHECK(!(p.file_bits && ignore), "[allocation] ignore_scale_zp_bits cannot be combined with file bit costs (",
           bit_cost == BitCost::File ? "bit_cost File" : "bit_cost Auto with a GGUF option",
           "): a file stores its scales; use bit_cost Spec");
  auto cost = [&](const QuantScheme& s, int64_t out, int64_t in) {
    return p.file_bits ? layer_file_bits(s, out, in) : layer_bits(s, out, in, ignore);
  };
  for (const LayerChoice& c : plan.layers) {
    if (c.origin != SchemeOrigin::Default) {
      p.fixed_bits += cost(c.scheme, c.out, c.in);
      p.fixed_weights += c.out * c.in;
      continue;
    }
    SR_CHECK(c.block >= 0, "[autoscheme] ", c.name, " cannot be allocated yet (only block projections are candidates)");
    const LinearDesc& d = plan.blocks[c.block].linears[size_t(c.linear)];
    p.layers.push_back({c.name, c.block, c.linear, c.out, c.in, d.fuse_group, expert_projection(d)});
    std::vector<int64_t> row;
    std::string why;
    for (const AllocOption& o : options) {
      const FitResult f = fits(o.scheme, c.out, c.in);
      row.push_back(f.ok ? cost(o.scheme, c.out, c.in) : -1);
      if (!f.ok) why += "\n  " + o.name + ": " + f.reason;
    }
    SR_CHECK(std::any_of(row.begin(), row.end(), [](int64_t b) { return b >= 0; }), "[autoscheme] ", c.name, " [",
             c.out, ", ", c.in, "] fits none of the options:", why);
    p.cost.push_back(row);
  }
  p.fused = wants_fusion(fuse, options);
  p.stacked = std::any_of(options.begin(), options.end(), [](const AllocOption& o) { return o.scheme.is_gguf(); });
  p.items = make_items(p.layers, p.fused, p.stacked);
  for (size_t i = 0; i < p.items.size(); ++i) {
    bool any = false;
    for (size_t k = 0; k < options.size(); ++k) any |= p.item_allows(i, k);
    SR_CHECK(any, "[autoscheme] the fused group of ", p.layers[p.items[i][0]].name,
             " has no option that fits all its members; turn group fusion off (fuse = FusePolicy::Off)");
  }
  return p;
}

namespace {

// The item problem for the knapsack (allowed options only) and the option index each maps to.
struct ItemOptions {
  std::vector<KnapsackItem> items;
  std::vector<std::vector<size_t>> option;  // [item][j] -> index into p.options
};

ItemOptions item_options(const AllocProblem& p, const ScoreTable* scores) {
  ItemOptions r;
  for (size_t i = 0; i < p.items.size(); ++i) {
    KnapsackItem it;
    std::vector<size_t> idx;
    for (size_t k = 0; k < p.options.size(); ++k) {
      if (!p.item_allows(i, k)) continue;
      double s = 0;
      if (scores)
        for (size_t l : p.items[i]) {
          const double v = (*scores)[l][k];
          SR_CHECK(std::isfinite(v) && v >= 0, "[autoscheme] DeltaLoss score of ", p.layers[l].name, " under ",
                   p.options[k].name, " is ", v, " (every calibration batch was skipped?)");
          s += v;
        }
      it.options.push_back({p.item_cost(i, k), s});
      idx.push_back(k);
    }
    r.items.push_back(it);
    r.option.push_back(idx);
  }
  return r;
}

std::string option_names(const AllocProblem& p) {
  std::string s;
  for (const AllocOption& o : p.options) s += (s.empty() ? "" : ",") + o.name;
  return s;
}

// Greedy baseline: everything at its cheapest option, then items in `order` raised to the most
// expensive option that still fits the remaining budget.
std::vector<int> first_fit(const ItemOptions& io, const std::vector<size_t>& order, int64_t budget) {
  std::vector<int> choice(io.items.size());
  int64_t left = budget;
  for (size_t i = 0; i < io.items.size(); ++i) {
    const auto& opts = io.items[i].options;
    const auto cheapest = std::min_element(opts.begin(), opts.end(), [](auto& a, auto& b) { return a.cost < b.cost; });
    choice[i] = int(cheapest - opts.begin());
    left -= cheapest->cost;
  }
  for (size_t i : order) {
    const auto& opts = io.items[i].options;
    const int64_t base = opts[size_t(choice[i])].cost;
    for (size_t j = 0; j < opts.size(); ++j)
      if (opts[j].cost > opts[size_t(choice[i])].cost && opts[j].cost - base <= left) choice[i] = int(j);
    left -= opts[size_t(choice[i])].cost - base;
  }
  return choice;
}

// Every item at the same option k (its cheapest when it cannot take k): the most expensive
// such assignment within the budget.
std::vector<int> uniform_choice(const AllocProblem& p, const ItemOptions& io, int64_t budget) {
  std::vector<int> best;
  int64_t best_cost = -1;
  for (size_t k = 0; k < p.options.size(); ++k) {
    std::vector<int> choice = first_fit(io, {}, budget);  // all cheapest
    int64_t cost = 0;
    for (size_t i = 0; i < io.items.size(); ++i) {
      const auto& map = io.option[i];
      auto it = std::find(map.begin(), map.end(), k);
      if (it != map.end()) choice[i] = int(it - map.begin());
      cost += io.items[i].options[size_t(choice[i])].cost;
    }
    if (cost <= budget && cost > best_cost) {
      best = choice;
      best_cost = cost;
    }
  }
  return best.empty() ? first_fit(io, {}, budget) : best;
}

std::vector<int> baseline_choice(const AllocProblem& p, const ItemOptions& io, AllocatorKind kind, int64_t budget,
                                 uint64_t seed) {
  if (kind == AllocatorKind::Uniform) return uniform_choice(p, io, budget);
  std::vector<size_t> order(io.items.size());
  std::iota(order.begin(), order.end(), 0);
  if (kind == AllocatorKind::Tail) std::reverse(order.begin(), order.end());
  if (kind == AllocatorKind::Random) std::shuffle(order.begin(), order.end(), std::mt19937_64(seed));
  return first_fit(io, order, budget);
}

}  // namespace

BudgetRange budget_range(const AllocProblem& p) {
  const ItemOptions io = item_options(p, nullptr);
  BudgetRange r;
  r.min_bits = p.fixed_bits + min_total_cost(io.items);
  r.max_bits = p.fixed_bits + max_total_cost(io.items);
  const double n = double(p.total_weights());
  r.min_avg = double(r.min_bits) / n;
  r.max_avg = double(r.max_bits) / n;
  return r;
}

int64_t item_budget(const AllocProblem& p, double avg_bits) {
  const BudgetRange r = budget_range(p);
  SR_CHECK(std::isfinite(avg_bits) && avg_bits > 0, "[allocation] avg_bits must be a positive number, got ", avg_bits);
  if (std::fabs(avg_bits - r.min_avg) <= 1e-3) return r.min_bits - p.fixed_bits;
  if (std::fabs(avg_bits - r.max_avg) <= 1e-3) return r.max_bits - p.fixed_bits;
  std::ostringstream range;
  range.precision(4);
  range << std::fixed << r.min_avg << " and " << r.max_avg;
  SR_CHECK(avg_bits >= r.min_avg && avg_bits <= r.max_avg, "[allocation] avg_bits ", avg_bits,
           " is not achievable with options ", option_names(p), p.ignore_scale_zp_bits ? " (scale/zp bits ignored)" : "",
           p.file_bits ? " (file bits)" : "",
           ": the average can lie between ", range.str(), " bits per weight");
  // long double keeps avg · n exact enough for any realistic n (< 2^53 weights).
  const int64_t total = int64_t(std::floor((long double)avg_bits * (long double)p.total_weights() + 1e-6L));
  return std::min(total, r.max_bits) - p.fixed_bits;
}

const char* to_string(AllocatorKind k) {
  switch (k) {
    case AllocatorKind::DeltaLoss: return "deltaloss";
    case AllocatorKind::Uniform: return "uniform";
    case AllocatorKind::Head: return "head8";
    case AllocatorKind::Tail: return "tail8";
    default: return "random";
  }
}

Allocation allocate(const AllocProblem& p, const ScoreTable* scores, double avg_bits, AllocatorKind kind,
                    uint64_t seed) {
  SR_CHECK(kind != AllocatorKind::DeltaLoss || scores, "[autoscheme] the deltaloss allocator needs scores");
  if (scores)
    SR_CHECK(scores->size() == p.layers.size(), "[autoscheme] ", scores->size(), " score rows for ", p.layers.size(),
             " layers");
  const int64_t budget = item_budget(p, avg_bits);
  const ItemOptions io = item_options(p, scores);
  Allocation a;
  a.allocator = kind;
  a.target_avg_bits = avg_bits;
  std::vector<int> choice;
  if (kind == AllocatorKind::DeltaLoss) {
    const KnapsackSolution sol = solve_knapsack(io.items, budget);
    choice = sol.choice;
    a.dp_states = sol.max_states;
  } else {
    choice = baseline_choice(p, io, kind, budget, seed);
  }
  a.option.assign(p.layers.size(), -1);
  a.bits = p.fixed_bits;
  a.score = scores ? 0.0 : std::nan("");
  for (size_t i = 0; i < p.items.size(); ++i) {
    const size_t k = io.option[i][size_t(choice[i])];
    for (size_t l : p.items[i]) {
      a.option[l] = int(k);
      a.bits += p.cost[l][k];
      if (scores) a.score += (*scores)[l][k];
    }
  }
  a.avg_bits = double(a.bits) / double(p.total_weights());
  return a;
}

std::map<std::string, QuantScheme> allocation_layer_schemes(const LayerPlan& plan, const AllocProblem& p,
                                                            const Allocation& a) {
  std::map<std::string, QuantScheme> out;
  for (const LayerChoice& c : plan.layers) out[c.name] = c.scheme;
  for (size_t l = 0; l < p.layers.size(); ++l) out[p.layers[l].name] = p.options[size_t(a.option[l])].scheme;
  return out;
}

nlohmann::ordered_json layer_config_json(const LayerPlan& plan, const AllocProblem& p, const Allocation& a) {
  const std::map<std::string, QuantScheme> chosen = allocation_layer_schemes(plan, p, a);
  nlohmann::ordered_json layers = nlohmann::ordered_json::object();
  for (const LayerChoice& c : plan.layers) layers[c.name] = chosen.at(c.name).to_json();
  nlohmann::ordered_json opts = nlohmann::ordered_json::array();
  for (const AllocOption& o : p.options) opts.push_back(o.name);
  nlohmann::ordered_json j;
  j["layers"] = layers;
  j["autoscheme"] = {{"allocator", to_string(a.allocator)}, {"target_avg_bits", a.target_avg_bits},
                     {"avg_bits", a.avg_bits},  {"bits", a.bits},
                     {"weights", p.total_weights()}, {"options", opts},
                     {"ignore_scale_zp_bits", p.ignore_scale_zp_bits},
                     {"bit_cost", p.file_bits ? "file" : "spec"}, {"fused_groups", p.fused}};
  return j;
}

namespace {

std::vector<size_t> by_loss(const std::vector<double>& loss) {
  std::vector<size_t> idx(loss.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return loss[a] < loss[b]; });
  return idx;
}

}  // namespace

std::vector<size_t> head_options(const std::vector<AllocOption>& options, const std::vector<double>& total_loss,
                                 double target) {
  SR_CHECK(options.size() == total_loss.size() && !options.empty(), "[head_options] ", options.size(), " options, ",
           total_loss.size(), " losses");
  std::vector<size_t> high;
  for (size_t k = 0; k < options.size(); ++k)
    if (options[k].scheme.bits >= 6) high.push_back(k);
  if (high.empty()) return {by_loss(total_loss).front()};
  if (high.size() == 1 || target <= 6) return high;
  return {*std::max_element(high.begin(), high.end(), [&](size_t a, size_t b) {
    return options[a].scheme.bits < options[b].scheme.bits;
  })};
}

std::vector<size_t> embedding_option_order(const std::vector<AllocOption>& options,
                                           const std::vector<double>& total_loss, double target, bool tied) {
  SR_CHECK(options.size() == total_loss.size() && !options.empty(), "[embedding_option_order] ", options.size(),
           " options, ", total_loss.size(), " losses");
  // Untied, the bit width tried first: floor(target) if an option has it, else the next higher one
  // present (the smallest width >= floor(target)).
  const int fl = int(std::floor(target));
  int want = 1 << 30;
  for (const AllocOption& o : options)
    if (o.scheme.bits >= fl) want = std::min(want, o.scheme.bits);
  // The preferred options first, then the others, each group by loss.
  std::vector<size_t> order = by_loss(total_loss);
  std::stable_partition(order.begin(), order.end(), [&](size_t k) {
    const int bits = options[k].scheme.bits;
    return tied ? target > 6 || bits <= 6 : bits == want;
  });
  return order;
}

}  // namespace sr
