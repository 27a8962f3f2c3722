// The exact DP of alloc/knapsack.h (spec §4.6) against a hand-solved case and against brute
// force over every assignment of small random instances; plus the allocation layer around it:
// budgets, snapping, infeasible targets, baselines, fused groups and the §4.7 rules.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "alloc/allocation.h"
#include "alloc/knapsack.h"
#include "cli/flag_values.h"
#include "common/error.h"
#include "testutil.h"

namespace sr {
namespace {

using cli::parse_alloc_options;
using cli::parse_bit_cost;

KnapsackItem item(std::vector<std::pair<int64_t, double>> opts) {
  KnapsackItem it;
  for (auto [c, s] : opts) it.options.push_back({c, s});
  return it;
}

// Three items, two options each; solved by hand (see the comments per budget).
TEST(Knapsack, HandSolvedCase) {
  const std::vector<KnapsackItem> items = {item({{4, 10}, {8, 1}}), item({{4, 6}, {8, 2}}), item({{2, 3}, {4, 0}})};
  // Cheapest: 4 + 4 + 2 = 10 bits, score 19. Upgrades: A +4 bits −9, B +4 −4, C +2 −3.
  struct Case { int64_t budget; std::vector<int> choice; int64_t cost; double score; };
  const std::vector<Case> cases = {
      {10, {0, 0, 0}, 10, 19},  // nothing to spend
      {13, {0, 0, 1}, 12, 16},  // 3 spare bits: only C fits
      {14, {1, 0, 0}, 14, 10},  // 4 spare: A (−9) beats C (−3)
      {16, {1, 0, 1}, 16, 7},   // A + C
      {18, {1, 1, 0}, 18, 6},   // A + B (−13) beats A + C (−12)
      {20, {1, 1, 1}, 20, 3},   // everything
      {99, {1, 1, 1}, 20, 3},
  };
  for (const Case& c : cases) {
    const KnapsackSolution s = solve_knapsack(items, c.budget);
    EXPECT_EQ(s.choice, c.choice) << "budget " << c.budget;
    EXPECT_EQ(s.cost, c.cost) << "budget " << c.budget;
    EXPECT_DOUBLE_EQ(s.score, c.score) << "budget " << c.budget;
  }
  EXPECT_THROW(solve_knapsack(items, 9), Error);
}

// Every assignment, in the DP's summation order; returns the best score within budget (inf if none).
double brute_force(const std::vector<KnapsackItem>& items, int64_t budget) {
  double best = INFINITY;
  std::vector<int> k(items.size(), 0);
  std::function<void(size_t, int64_t, double)> rec = [&](size_t i, int64_t cost, double score) {
    if (cost > budget) return;
    if (i == items.size()) {
      best = std::min(best, score);
      return;
    }
    for (const KnapsackOption& o : items[i].options) rec(i + 1, cost + o.cost, score + o.score);
  };
  rec(0, 0, 0.0);
  return best;
}

// Random instances with few distinct costs (like layers of equal shape), so ties in bits and
// in score both occur, with a random number of options (1..3) per item.
std::vector<KnapsackItem> random_instance(std::mt19937_64& rng, int n_items) {
  std::uniform_int_distribution<int> n_opt(1, 3), cost(0, 12);
  std::uniform_int_distribution<int> score_units(0, 20);
  std::vector<KnapsackItem> items(static_cast<size_t>(n_items));
  for (KnapsackItem& it : items) {
    const int m = n_opt(rng);
    for (int j = 0; j < m; ++j) it.options.push_back({int64_t(cost(rng)), 0.25 * score_units(rng)});
  }
  return items;
}

TEST(Knapsack, EqualsBruteForceOnRandomInstances) {
  std::mt19937_64 rng(7);
  int checked = 0, infeasible = 0;
  for (int trial = 0; trial < 600; ++trial) {
    const int n = 1 + trial % 8;  // up to 8 items x 3 options (3^8 = 6561 assignments)
    const std::vector<KnapsackItem> items = random_instance(rng, n);
    const int64_t lo = min_total_cost(items), hi = max_total_cost(items);
    const int64_t budget = std::uniform_int_distribution<int64_t>(std::max<int64_t>(0, lo - 3), hi + 2)(rng);
    const double want = brute_force(items, budget);
    if (!std::isfinite(want)) {
      EXPECT_THROW(solve_knapsack(items, budget), Error) << "budget " << budget << " below " << lo;
      ++infeasible;
      continue;
    }
    const KnapsackSolution s = solve_knapsack(items, budget);
    ASSERT_EQ(s.choice.size(), items.size());
    int64_t cost = 0;
    double score = 0;
    for (size_t i = 0; i < items.size(); ++i) {
      ASSERT_GE(s.choice[i], 0);
      ASSERT_LT(size_t(s.choice[i]), items[i].options.size());
      cost += items[i].options[size_t(s.choice[i])].cost;
      score += items[i].options[size_t(s.choice[i])].score;
    }
    EXPECT_LE(cost, budget) << "trial " << trial;
    EXPECT_EQ(cost, s.cost) << "trial " << trial;
    EXPECT_DOUBLE_EQ(score, s.score) << "trial " << trial;
    EXPECT_DOUBLE_EQ(s.score, want) << "trial " << trial << ": DP " << s.score << " vs brute force " << want;
    ++checked;
  }
  EXPECT_GT(checked, 400);
  EXPECT_GT(infeasible, 10);
}

// style.md habit 11: ≤ 6 layers × 3 options, every assignment enumerated explicitly (3^6 = 729),
// with real-valued scores and costs shaped like layer bit counts.
TEST(Knapsack, EnumeratesAllAssignmentsOfSixLayersThreeOptions) {
  std::mt19937_64 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<KnapsackItem> items(6);
    for (KnapsackItem& it : items) {
      const int64_t n = 1024 * std::uniform_int_distribution<int>(1, 4)(rng);  // weights of the layer
      for (int bits : {2, 4, 8}) it.options.push_back({n * bits + n / 32 * 8, std::exp(-0.7 * bits) *
                                                      std::uniform_real_distribution<double>(0.5, 2)(rng)});
    }
    const int64_t lo = min_total_cost(items), hi = max_total_cost(items);
    const int64_t budget = lo + int64_t(double(hi - lo) * std::uniform_real_distribution<double>(0, 1)(rng));
    double best = INFINITY;
    for (int code = 0; code < 729; ++code) {
      int64_t cost = 0;
      double score = 0;
      for (int i = 0, c = code; i < 6; ++i, c /= 3) {
        cost += items[size_t(i)].options[size_t(c % 3)].cost;
        score += items[size_t(i)].options[size_t(c % 3)].score;
      }
      if (cost <= budget) best = std::min(best, score);
    }
    const KnapsackSolution s = solve_knapsack(items, budget);
    EXPECT_LE(s.cost, budget);
    EXPECT_NEAR(s.score, best, 1e-12 * std::max(1.0, best)) << "trial " << trial;
  }
}

TEST(Knapsack, RejectsMalformedItemsAndBoundsStates) {
  EXPECT_THROW(solve_knapsack({KnapsackItem{}}, 10), Error);
  EXPECT_THROW(solve_knapsack({item({{-1, 0}})}, 10), Error);
  EXPECT_THROW(solve_knapsack({item({{1, NAN}})}, 10), Error);
  EXPECT_THROW(solve_knapsack({item({{1, -2}})}, 10), Error);
  // Powers of two make every subset total distinct, and a score of (all bits − bits spent)
  // keeps every one on the Pareto front: 2^11 states before the last item > a limit of 1000.
  std::vector<KnapsackItem> items;
  for (int i = 0; i < 12; ++i) items.push_back(item({{0, double(1 << i)}, {int64_t(1) << i, 0.0}}));
  EXPECT_THROW(solve_knapsack(items, 1 << 13, 1000), Error);
  EXPECT_NO_THROW(solve_knapsack(items, 1 << 13));
  EXPECT_TRUE(solve_knapsack({}, 0).choice.empty());
}

// --- the allocation layer -----------------------------------------------------------------

// A plan of `blocks` blocks shaped like the 4m demo model (q/o 256², k/v 128×256, MLP 768).
LayerPlan demo_like_plan(int64_t blocks) {
  LayerPlan plan;
  ModelConfig c;  // the demo model's shapes
  c.hidden = 256;
  c.intermediate = 768;
  c.n_heads = 8;
  c.n_kv_heads = 4;
  c.head_dim = 32;
  c.n_layers = blocks;
  plan.blocks = describe_blocks(c);
  const int64_t outs[test::kLlamaLinears] = {256, 128, 128, 256, 768, 768, 256};
  const int64_t ins[test::kLlamaLinears] = {256, 256, 256, 256, 256, 256, 768};
  for (int64_t b = 0; b < blocks; ++b)
    for (int p = llama::Q; p <= llama::Down; ++p)
      plan.layers.push_back({test::layer_name(b, p), b, p, outs[int(p)], ins[int(p)], preset_scheme("BF16"), "default"});
  return plan;
}

TEST(Allocation, BudgetRangeSnappingAndInfeasibleMessage) {
  const AllocProblem p = make_alloc_problem(demo_like_plan(4), parse_alloc_options("MXFP4,MXFP8"), FusePolicy::Auto, false);
  const BudgetRange r = budget_range(p);
  EXPECT_DOUBLE_EQ(r.min_avg, 4.25);
  EXPECT_DOUBLE_EQ(r.max_avg, 8.25);
  EXPECT_EQ(item_budget(p, 4.2505), r.min_bits);  // within 1e-3: snapped
  EXPECT_EQ(item_budget(p, 8.2495), r.max_bits);
  EXPECT_EQ(item_budget(p, 4.5), int64_t(4.5 * 3145728));
  try {
    item_budget(p, 4.0);
    FAIL() << "4.0 bits accepted";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("avg_bits 4"), std::string::npos) << m;
    EXPECT_NE(m.find("4.2500 and 8.2500"), std::string::npos) << m;
  }
  EXPECT_THROW(item_budget(p, 9.0), Error);
  EXPECT_THROW(allocate(p, nullptr, 4.5, AllocatorKind::DeltaLoss), Error);  // needs scores
}

TEST(Allocation, IgnoringScaleBitsAndFixedLayersShiftTheRange) {
  LayerPlan plan = demo_like_plan(2);
  const AllocProblem a = make_alloc_problem(plan, parse_alloc_options("MXFP4,MXFP8"), FusePolicy::Off, true);
  EXPECT_DOUBLE_EQ(budget_range(a).min_avg, 4.0);
  EXPECT_DOUBLE_EQ(budget_range(a).max_avg, 8.0);
  plan.layers[0].scheme = preset_scheme("BF16");  // q_proj of block 0 fixed at 16 bits
  plan.layers[0].source = "override: q";
  plan.layers[0].origin = SchemeOrigin::Override;  // what makes it fixed (not the text)
  const AllocProblem b = make_alloc_problem(plan, parse_alloc_options("MXFP4,MXFP8"), FusePolicy::Off, true);
  EXPECT_EQ(b.layers.size(), 13u);
  EXPECT_EQ(b.fixed_bits, 16 * 256 * 256);
  EXPECT_NEAR(budget_range(b).min_avg, (16.0 * 65536 + 4.0 * (786432 * 2 - 65536)) / (786432 * 2), 1e-12);
}

TEST(Allocation, FileBitCostsAreTheGgufBlockSizes) {
  const LayerPlan plan = demo_like_plan(1);  // 7 layers of the demo shapes (k/v 128 x 256)
  const auto options = parse_alloc_options("gguf:q2_k,gguf:q3_k,gguf:q6_k");
  const AllocProblem spec = make_alloc_problem(plan, options, FusePolicy::Off, false, BitCost::Spec);
  const AllocProblem file = make_alloc_problem(plan, options, FusePolicy::Off, false, BitCost::File);
  const AllocProblem autoc = make_alloc_problem(plan, options, FusePolicy::Off, false, BitCost::Auto);
  EXPECT_FALSE(spec.file_bits);
  EXPECT_TRUE(file.file_bits);
  EXPECT_TRUE(autoc.file_bits);  // a GGUF option: file bits
  EXPECT_EQ(autoc.cost, file.cost);
  // Block bytes per 256 weights: Q2_K 84, Q3_K 110, Q6_K 210; §4.3: 2.75, 4.0, 7.25 bits/weight.
  const double file_bpw[3] = {84 * 8 / 256.0, 110 * 8 / 256.0, 210 * 8 / 256.0}, spec_bpw[3] = {2.75, 4.0, 7.25};
  for (size_t l = 0; l < file.layers.size(); ++l) {
    const double n = double(file.layers[l].out * file.layers[l].in);
    for (size_t k = 0; k < 3; ++k) {
      EXPECT_DOUBLE_EQ(double(file.cost[l][k]) / n, file_bpw[k]) << file.layers[l].name << " " << options[k].name;
      EXPECT_DOUBLE_EQ(double(spec.cost[l][k]) / n, spec_bpw[k]) << file.layers[l].name << " " << options[k].name;
    }
  }
  EXPECT_DOUBLE_EQ(budget_range(file).min_avg, 2.625);
  EXPECT_THROW(make_alloc_problem(plan, options, FusePolicy::Off, true, BitCost::File), Error);  // scales are stored
  // Non-GGUF options cost the same either way, and auto keeps §4.3 for them.
  const auto mx = parse_alloc_options("MXFP4,MXFP8");
  EXPECT_EQ(make_alloc_problem(plan, mx, FusePolicy::Off, false, BitCost::File).cost,
            make_alloc_problem(plan, mx, FusePolicy::Off, false, BitCost::Spec).cost);
  EXPECT_FALSE(make_alloc_problem(plan, mx, FusePolicy::Off, false, BitCost::Auto).file_bits);
  EXPECT_EQ(parse_bit_cost("file"), BitCost::File);
  EXPECT_THROW(parse_bit_cost("bytes"), Error);
}

// Scores where later blocks and MLPs are more sensitive, so the allocators differ visibly.
ScoreTable synthetic_scores(const AllocProblem& p) {
  ScoreTable s(p.layers.size(), std::vector<double>(p.options.size()));
  for (size_t l = 0; l < p.layers.size(); ++l)
    for (size_t k = 0; k < p.options.size(); ++k)
      s[l][k] = (1.0 + double(p.layers[l].block)) * (1.0 + int(p.layers[l].linear) % 3) / double(1 + 4 * k);
  return s;
}

TEST(Allocation, EveryAllocatorStaysWithinBudgetAndDeltaLossScoresLowest) {
  const AllocProblem p = make_alloc_problem(demo_like_plan(4), parse_alloc_options("MXFP4,MXFP8"), FusePolicy::Off, false);
  const ScoreTable s = synthetic_scores(p);
  for (double target : {4.25, 4.5, 5.0, 6.0, 8.25}) {
    const Allocation dl = allocate(p, &s, target, AllocatorKind::DeltaLoss);
    for (AllocatorKind k : {AllocatorKind::DeltaLoss, AllocatorKind::Uniform, AllocatorKind::Head, AllocatorKind::Tail,
                            AllocatorKind::Random}) {
      const Allocation a = allocate(p, &s, target, k, 3);
      EXPECT_LE(a.avg_bits, target + 1e-12) << to_string(k) << " " << target;
      EXPECT_LE(dl.score, a.score + 1e-12) << to_string(k) << " " << target;
    }
  }
  // head8 raises the first layers: at 4.5 bits block 0's q, k, v, o exactly use the spare bits.
  const Allocation head = allocate(p, &s, 4.5, AllocatorKind::Head);
  for (size_t l = 0; l < p.layers.size(); ++l) EXPECT_EQ(head.option[l], l < 4 ? 1 : 0) << p.layers[l].name;
  const Allocation tail = allocate(p, &s, 4.5, AllocatorKind::Tail);
  EXPECT_EQ(tail.option.back(), 1);  // block 3's down_proj (4 · 196608 bits = the spare bits)
  EXPECT_EQ(tail.option.front(), 0);
  // Different seeds, different random orders; the same seed, the same allocation.
  EXPECT_EQ(allocate(p, &s, 6, AllocatorKind::Random, 1).option, allocate(p, &s, 6, AllocatorKind::Random, 1).option);
  EXPECT_NE(allocate(p, &s, 6, AllocatorKind::Random, 1).option, allocate(p, &s, 6, AllocatorKind::Random, 2).option);
  // uniform takes the most expensive single option within the budget.
  EXPECT_DOUBLE_EQ(allocate(p, &s, 8.0, AllocatorKind::Uniform).avg_bits, 4.25);
  EXPECT_DOUBLE_EQ(allocate(p, &s, 8.25, AllocatorKind::Uniform).avg_bits, 8.25);
}

TEST(Allocation, FusedGroupsShareOneOption) {
  const auto opts = parse_alloc_options("NVFP4,MXFP8");
  const AllocProblem p = make_alloc_problem(demo_like_plan(3), opts, FusePolicy::Auto, false);
  EXPECT_TRUE(p.fused);          // auto: NVFP4 present
  EXPECT_EQ(p.items.size(), 12u);  // per block: qkv, o, gate_up, down
  const ScoreTable s = synthetic_scores(p);
  for (double target : {5.0, 6.0, 7.0}) {
    const Allocation a = allocate(p, &s, target, AllocatorKind::DeltaLoss);
    for (int64_t b = 0; b < 3; ++b) {
      const size_t q = size_t(b * 7);
      EXPECT_EQ(a.option[q], a.option[q + 1]);
      EXPECT_EQ(a.option[q], a.option[q + 2]);
      EXPECT_EQ(a.option[q + 4], a.option[q + 5]);
    }
  }
  EXPECT_FALSE(make_alloc_problem(demo_like_plan(1), parse_alloc_options("MXFP4,MXFP8"), FusePolicy::Auto, false).fused);
  EXPECT_TRUE(make_alloc_problem(demo_like_plan(1), parse_alloc_options("MXFP4,MXFP8"), FusePolicy::On, false).fused);
}

TEST(Allocation, OptionsParsingAndLayerConfig) {
  const auto opts = parse_alloc_options("MXFP4, mxfp8,MXFP4,{\"bits\": 4, \"group_size\": 64},scheme=W2A16;group_size=64");
  ASSERT_EQ(opts.size(), 4u);  // the repeated MXFP4 is dropped
  EXPECT_EQ(opts[1].scheme, preset_scheme("MXFP8"));
  EXPECT_EQ(opts[2].scheme.group_size, 64);
  EXPECT_EQ(opts[3].scheme, preset_scheme("W2A16G64"));
  EXPECT_THROW(parse_alloc_options("MXFP4,,MXFP8"), Error);
  try {
    parse_alloc_options("gguf:q4_k");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("GGUF"), std::string::npos) << e.what();
  }
  LayerPlan plan = demo_like_plan(1);
  const AllocProblem p = make_alloc_problem(plan, parse_alloc_options("MXFP4,MXFP8"), FusePolicy::Off, false);
  const ScoreTable s = synthetic_scores(p);
  const Allocation a = allocate(p, &s, 6.0, AllocatorKind::DeltaLoss);
  const auto j = layer_config_json(plan, p, a);
  ASSERT_EQ(j["layers"].size(), 7u);
  for (size_t l = 0; l < 7; ++l)
    EXPECT_EQ(QuantScheme::from_json(nlohmann::json::parse(j["layers"][p.layers[l].name].dump())),
              p.options[size_t(a.option[l])].scheme);
  EXPECT_EQ(j["autoscheme"]["allocator"], "deltaloss");
}

// §4.7 rules, case by case as the spec lists them.
TEST(Allocation, HeadAndEmbeddingRules) {
  const auto o = parse_alloc_options("W2A16,W4A16,W8A16,BF16");  // bits 2, 4, 8, 16
  const std::vector<double> loss = {9, 5, 2, 0};
  EXPECT_EQ(head_options(o, loss, 5.0), (std::vector<size_t>{2, 3}));  // several >= 6 bits, target <= 6: all
  EXPECT_EQ(head_options(o, loss, 7.0), (std::vector<size_t>{3}));     // target > 6: the highest
  const auto low = parse_alloc_options("W2A16,W4A16");
  EXPECT_EQ(head_options(low, {3, 1}, 3.0), (std::vector<size_t>{1}));  // none >= 6: lowest loss
  const auto one = parse_alloc_options("W2A16,W8A16");
  EXPECT_EQ(head_options(one, {3, 1}, 3.0), (std::vector<size_t>{1}));  // exactly one >= 6
  // Tied: by loss, <= 6 bits first when target <= 6.
  EXPECT_EQ(embedding_option_order(o, loss, 4.5, true), (std::vector<size_t>{1, 0, 3, 2}));
  EXPECT_EQ(embedding_option_order(o, loss, 7.0, true), (std::vector<size_t>{3, 2, 1, 0}));
  // Untied: bits == floor(target) first; else the next higher width; then the rest by loss.
  EXPECT_EQ(embedding_option_order(o, loss, 4.5, false), (std::vector<size_t>{1, 3, 2, 0}));
  EXPECT_EQ(embedding_option_order(o, loss, 5.0, false), (std::vector<size_t>{2, 3, 1, 0}));
}

}  // namespace
}  // namespace sr
