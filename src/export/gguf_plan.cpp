// llama.cpp's per-tensor type rules for the "llama" architecture (contract and the
// rules in words: gguf_plan.h; table: docs/gguf.md).
#include "export/gguf_plan.h"

#include <algorithm>
#include <cstdio>

#include "common/error.h"
#include "common/strings.h"
#include "model/block_desc.h"
#include "model/gguf_arch.h"
#include "model/gguf_names.h"
#include "quant/formats/ggml_frozen.h"

namespace sr {
namespace {

using T = GgmlType;

const std::vector<GgufMixInfo> kMixes = {
    {GgufMix::Q2_K, "q2_k", 10, T::Q2_K},     {GgufMix::Q2_K_S, "q2_k_s", 21, T::Q2_K},
    {GgufMix::Q3_K_S, "q3_k_s", 11, T::Q3_K}, {GgufMix::Q3_K_M, "q3_k_m", 12, T::Q3_K},
    {GgufMix::Q3_K_L, "q3_k_l", 13, T::Q3_K}, {GgufMix::Q4_0, "q4_0", 2, T::Q4_0},
    {GgufMix::Q4_1, "q4_1", 3, T::Q4_1},      {GgufMix::Q4_K_S, "q4_k_s", 14, T::Q4_K},
    {GgufMix::Q4_K_M, "q4_k_m", 15, T::Q4_K}, {GgufMix::Q5_0, "q5_0", 8, T::Q5_0},
    {GgufMix::Q5_1, "q5_1", 9, T::Q5_1},      {GgufMix::Q5_K_S, "q5_k_s", 16, T::Q5_K},
    {GgufMix::Q5_K_M, "q5_k_m", 17, T::Q5_K}, {GgufMix::Q6_K, "q6_k", 18, T::Q6_K},
    {GgufMix::Q8_0, "q8_0", 7, T::Q8_0},      {GgufMix::F16, "f16", 1, T::F16},
    {GgufMix::BF16, "bf16", 32, T::BF16},     {GgufMix::F32, "f32", 0, T::F32},
    {GgufMix::IQ1_S, "iq1_s", 24, T::IQ1_S},       {GgufMix::IQ1_M, "iq1_m", 31, T::IQ1_M},
    {GgufMix::IQ2_XXS, "iq2_xxs", 19, T::IQ2_XXS}, {GgufMix::IQ2_XS, "iq2_xs", 20, T::IQ2_XS},
    {GgufMix::IQ2_S, "iq2_s", 28, T::IQ2_XS},      {GgufMix::IQ2_M, "iq2_m", 29, T::IQ2_S},
    {GgufMix::IQ3_XXS, "iq3_xxs", 23, T::IQ3_XXS}, {GgufMix::IQ3_XS, "iq3_xs", 22, T::IQ3_S},
    {GgufMix::IQ3_S, "iq3_s", 26, T::IQ3_S},       {GgufMix::IQ3_M, "iq3_m", 27, T::IQ3_S},
    {GgufMix::IQ4_NL, "iq4_nl", 25, T::IQ4_NL},    {GgufMix::IQ4_XS, "iq4_xs", 30, T::IQ4_XS},
};

// llama.cpp's low-bit i-quant mixes: a branch of their own in llama_tensor_get_type.
constexpr GgufMix kLowBitMixes[] = {GgufMix::IQ2_XXS, GgufMix::IQ2_XS, GgufMix::IQ1_S,
                                    GgufMix::IQ2_S,   GgufMix::IQ2_M,  GgufMix::IQ1_M};
// The mixes llama-quantize refuses without an importance matrix (its main(); q2_k_s, also on its
// list, is only noted here as before).
constexpr GgufMix kImatrixMixes[] = {GgufMix::IQ1_S, GgufMix::IQ1_M, GgufMix::IQ2_S, GgufMix::IQ2_XXS,
                                     GgufMix::IQ2_XS};

template <typename List>
bool among(GgufMix m, const List& list) {
  for (GgufMix x : list) if (x == m) return true;
  return false;
}

// The tensors llama_tensor_get_type has rules for (the part of the name after "blk.<i>.").
enum class Role : uint8_t { Other, AttnK, AttnV, AttnOutput, FfnDown, Router, AttnQ, FfnGate, FfnUp, Output, TokenEmbd };

// When a rule applies, from the layer index i of n layers and the model's shape.
enum class When : uint8_t {
  Always,
  GqaAtLeast4,         // n_heads / n_kv_heads >= 4
  FirstTwo,            // i < 2
  FirstFour,           // i < 4
  FirstEighth,         // i < n/8
  FirstSixteenth,      // i < n/16
  MoreBits,            // use_more_bits(i, n)
  ImatrixFirstEighth,  // an imatrix is given and i < n/8
  GqaOrExperts4,       // n_heads / n_kv_heads >= 4 or at least 4 experts
  Experts8,            // exactly 8 experts
  NoImatrix,           // no imatrix is given
  NoImatrixFirstEighth,     // no imatrix and i < n/8
  FirstEighthOr8MoreBits,   // i < n/8, or 8 experts and use_more_bits(i, n)
  Middle,              // n/8 <= i < 7n/8
};

struct Rule { Role role; GgufMix mix; When when; GgmlType type; };

// llama_tensor_get_type's branches for the mixes above, "llama" architecture. For one
// (role, mix), the first rule whose condition holds decides; none: the base type.
constexpr Rule kRules[] = {
    {Role::AttnV, GgufMix::Q2_K, When::GqaAtLeast4, T::Q4_K},
    {Role::AttnV, GgufMix::Q2_K, When::Always, T::Q3_K},
    {Role::AttnV, GgufMix::Q2_K_S, When::GqaAtLeast4, T::Q4_K},
    {Role::AttnV, GgufMix::Q3_K_M, When::FirstTwo, T::Q5_K},
    {Role::AttnV, GgufMix::Q3_K_M, When::Always, T::Q4_K},
    {Role::AttnV, GgufMix::Q3_K_L, When::Always, T::Q5_K},
    {Role::AttnV, GgufMix::Q4_K_M, When::MoreBits, T::Q6_K},
    {Role::AttnV, GgufMix::Q5_K_M, When::MoreBits, T::Q6_K},
    {Role::AttnV, GgufMix::Q4_K_S, When::FirstFour, T::Q5_K},
    {Role::FfnDown, GgufMix::Q2_K, When::Always, T::Q3_K},
    {Role::FfnDown, GgufMix::Q2_K_S, When::FirstEighth, T::Q4_K},
    {Role::FfnDown, GgufMix::Q3_K_M, When::FirstSixteenth, T::Q5_K},
    {Role::FfnDown, GgufMix::Q3_K_M, When::Always, T::Q4_K},
    {Role::FfnDown, GgufMix::Q3_K_L, When::Always, T::Q5_K},
    {Role::FfnDown, GgufMix::Q4_K_M, When::MoreBits, T::Q6_K},
    {Role::FfnDown, GgufMix::Q5_K_M, When::MoreBits, T::Q6_K},
    {Role::FfnDown, GgufMix::Q4_K_S, When::FirstEighth, T::Q5_K},
    {Role::FfnDown, GgufMix::Q4_0, When::ImatrixFirstEighth, T::Q4_1},
    {Role::FfnDown, GgufMix::Q5_0, When::ImatrixFirstEighth, T::Q5_1},
    {Role::AttnOutput, GgufMix::Q2_K, When::Always, T::Q3_K},
    {Role::AttnOutput, GgufMix::Q3_K_M, When::Always, T::Q4_K},
    {Role::AttnOutput, GgufMix::Q3_K_L, When::Always, T::Q5_K},
    // The i-quant mixes. Outside the blocks:
    {Role::Output, GgufMix::IQ2_XXS, When::Always, T::Q5_K},
    {Role::Output, GgufMix::IQ2_XS, When::Always, T::Q5_K},
    {Role::Output, GgufMix::IQ3_XXS, When::Always, T::Q5_K},
    {Role::Output, GgufMix::IQ1_S, When::Always, T::Q5_K},
    {Role::Output, GgufMix::IQ2_S, When::Always, T::Q5_K},
    {Role::Output, GgufMix::IQ2_M, When::Always, T::Q5_K},
    {Role::Output, GgufMix::IQ1_M, When::Always, T::Q5_K},
    {Role::TokenEmbd, GgufMix::IQ2_XXS, When::Always, T::Q2_K},
    {Role::TokenEmbd, GgufMix::IQ2_XS, When::Always, T::Q2_K},
    {Role::TokenEmbd, GgufMix::IQ1_S, When::Always, T::Q2_K},
    {Role::TokenEmbd, GgufMix::IQ1_M, When::Always, T::Q2_K},
    {Role::TokenEmbd, GgufMix::IQ2_S, When::Always, T::IQ3_S},
    {Role::TokenEmbd, GgufMix::IQ2_M, When::Always, T::IQ3_S},
    {Role::TokenEmbd, GgufMix::IQ3_XXS, When::Always, T::IQ3_S},
    // The low-bit mixes (kLowBitMixes).
    {Role::AttnV, GgufMix::IQ2_XXS, When::GqaOrExperts4, T::Q4_K},
    {Role::AttnV, GgufMix::IQ2_XXS, When::Always, T::Q2_K},
    {Role::AttnV, GgufMix::IQ2_XS, When::GqaOrExperts4, T::Q4_K},
    {Role::AttnV, GgufMix::IQ2_XS, When::Always, T::Q2_K},
    {Role::AttnV, GgufMix::IQ1_S, When::GqaOrExperts4, T::Q4_K},
    {Role::AttnV, GgufMix::IQ1_S, When::Always, T::Q2_K},
    {Role::AttnV, GgufMix::IQ1_M, When::GqaOrExperts4, T::Q4_K},
    {Role::AttnV, GgufMix::IQ1_M, When::Always, T::Q2_K},
    {Role::AttnV, GgufMix::IQ2_S, When::GqaOrExperts4, T::Q4_K},
    {Role::AttnV, GgufMix::IQ2_S, When::Always, T::IQ3_S},
    {Role::AttnV, GgufMix::IQ2_M, When::GqaOrExperts4, T::Q4_K},
    {Role::AttnV, GgufMix::IQ2_M, When::Always, T::IQ3_S},
    {Role::AttnK, GgufMix::IQ2_XXS, When::Experts8, T::Q4_K},
    {Role::AttnK, GgufMix::IQ2_XS, When::Experts8, T::Q4_K},
    {Role::AttnK, GgufMix::IQ1_S, When::Experts8, T::Q4_K},
    {Role::AttnK, GgufMix::IQ1_M, When::Experts8, T::Q4_K},
    {Role::AttnK, GgufMix::IQ2_S, When::Experts8, T::Q4_K},
    {Role::AttnK, GgufMix::IQ2_M, When::Experts8, T::Q4_K},
    {Role::FfnDown, GgufMix::IQ2_XXS, When::FirstEighth, T::Q2_K},
    {Role::FfnDown, GgufMix::IQ2_XS, When::FirstEighth, T::Q2_K},
    {Role::FfnDown, GgufMix::IQ1_S, When::FirstEighth, T::Q2_K},
    {Role::FfnDown, GgufMix::IQ1_M, When::FirstEighth, T::Q2_K},
    {Role::FfnDown, GgufMix::IQ2_S, When::FirstEighth, T::IQ3_S},
    {Role::FfnDown, GgufMix::IQ2_M, When::FirstEighth, T::IQ3_S},
    {Role::AttnOutput, GgufMix::IQ1_S, When::Always, T::IQ2_XXS},
    {Role::AttnOutput, GgufMix::IQ1_M, When::Always, T::IQ2_XXS},
    {Role::AttnOutput, GgufMix::IQ2_S, When::Always, T::IQ3_S},
    {Role::AttnOutput, GgufMix::IQ2_M, When::Always, T::IQ3_S},
    // The other i-quant mixes.
    {Role::AttnV, GgufMix::IQ3_XXS, When::GqaAtLeast4, T::Q4_K},
    {Role::AttnV, GgufMix::IQ3_XXS, When::NoImatrix, T::IQ3_S},
    {Role::AttnV, GgufMix::IQ3_XS, When::GqaAtLeast4, T::Q4_K},
    {Role::AttnV, GgufMix::IQ3_S, When::GqaAtLeast4, T::Q4_K},
    {Role::AttnV, GgufMix::IQ3_M, When::Always, T::Q4_K},
    {Role::AttnV, GgufMix::IQ4_NL, When::GqaAtLeast4, T::Q5_K},
    {Role::AttnV, GgufMix::IQ4_XS, When::GqaAtLeast4, T::Q5_K},
    {Role::AttnK, GgufMix::IQ3_XS, When::Always, T::IQ3_XXS},
    {Role::AttnK, GgufMix::IQ3_XXS, When::Always, T::IQ2_S},
    {Role::AttnQ, GgufMix::IQ3_XS, When::Always, T::IQ3_XXS},
    {Role::AttnQ, GgufMix::IQ3_XXS, When::Always, T::IQ2_S},
    {Role::FfnDown, GgufMix::IQ3_XXS, When::NoImatrixFirstEighth, T::Q4_K},
    {Role::FfnDown, GgufMix::IQ3_XXS, When::NoImatrix, T::Q3_K},
    {Role::FfnDown, GgufMix::IQ3_M, When::FirstEighthOr8MoreBits, T::Q4_K},
    {Role::FfnDown, GgufMix::IQ4_NL, When::NoImatrixFirstEighth, T::Q5_K},
    {Role::FfnDown, GgufMix::IQ4_XS, When::NoImatrixFirstEighth, T::Q5_K},
    {Role::AttnOutput, GgufMix::IQ3_XXS, When::Always, T::IQ3_S},
    {Role::AttnOutput, GgufMix::IQ3_M, When::Always, T::Q4_K},
    {Role::FfnGate, GgufMix::IQ3_XS, When::Middle, T::IQ3_XXS},
    {Role::FfnUp, GgufMix::IQ3_XS, When::Middle, T::IQ3_XXS},
};

// Replacement when a row is not a whole number of blocks (llama.cpp's
// convert_incompatible_tensor switch; for Q2_K/Q3_K IQ4_NL replaced by Q4_0, see the header).
struct Fallback { GgmlType from, to; };
constexpr Fallback kFallbacks[] = {
    {T::Q2_K, T::Q4_0},      {T::Q3_K, T::Q4_0},     {T::Q4_K, T::Q5_0},    {T::Q5_K, T::Q5_1},
    {T::Q6_K, T::Q8_0},      {T::IQ1_S, T::IQ4_NL},  {T::IQ1_M, T::IQ4_NL}, {T::IQ2_XXS, T::IQ4_NL},
    {T::IQ2_XS, T::IQ4_NL},  {T::IQ2_S, T::IQ4_NL},  {T::IQ3_XXS, T::IQ4_NL}, {T::IQ3_S, T::IQ4_NL},
    {T::IQ4_XS, T::IQ4_NL},
};

struct Context {
  const ModelConfig& c;
  const GgufMixInfo& mix;
  const GgufPlanOptions& opt;
};

void note(const GgufPlanOptions& opt, const std::string& msg) {
  if (opt.log) std::fprintf(stderr, "[gguf] %s\n", msg.c_str());
}

Role role_of(const std::string& name) {
  auto ends_with = [&](const char* s) {
    const std::string suffix = std::string(".") + s;
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (ends_with("attn_k.weight")) return Role::AttnK;
  if (ends_with("attn_v.weight")) return Role::AttnV;
  if (ends_with("attn_output.weight")) return Role::AttnOutput;
  // llama.cpp matches "ffn_down" anywhere in the name: the experts' and the shared expert's too.
  if (ends_with("ffn_down.weight") || ends_with("ffn_down_exps.weight") || ends_with("ffn_down_shexp.weight"))
    return Role::FfnDown;
  if (ends_with("ffn_gate_inp.weight")) return Role::Router;
  if (ends_with("attn_q.weight")) return Role::AttnQ;
  // llama.cpp matches "ffn_gate" / "ffn_up" anywhere: experts and shared expert too.
  if (ends_with("ffn_gate.weight") || ends_with("ffn_gate_exps.weight") || ends_with("ffn_gate_shexp.weight"))
    return Role::FfnGate;
  if (ends_with("ffn_up.weight") || ends_with("ffn_up_exps.weight") || ends_with("ffn_up_shexp.weight"))
    return Role::FfnUp;
  return Role::Other;
}

bool holds(When w, int64_t i, const Context& x) {
  const int64_t n = x.c.n_layers;
  switch (w) {
    case When::Always: return true;
    case When::GqaAtLeast4: return x.c.n_heads / x.c.n_kv_heads >= 4;
    case When::FirstTwo: return i < 2;
    case When::FirstFour: return i < 4;
    case When::FirstEighth: return i < n / 8;
    case When::FirstSixteenth: return i < n / 16;
    case When::MoreBits: return gguf_use_more_bits(i, n);
    case When::ImatrixFirstEighth: return x.opt.has_imatrix && i < n / 8;
    case When::GqaOrExperts4: return x.c.n_heads / x.c.n_kv_heads >= 4 || x.c.moe.n_experts >= 4;
    case When::Experts8: return x.c.moe.n_experts == 8;
    case When::NoImatrix: return !x.opt.has_imatrix;
    case When::NoImatrixFirstEighth: return !x.opt.has_imatrix && i < n / 8;
    case When::FirstEighthOr8MoreBits: return i < n / 8 || (x.c.moe.n_experts == 8 && gguf_use_more_bits(i, n));
    case When::Middle: return i >= n / 8 && i < 7 * n / 8;
  }
  return false;
}

// llama.cpp's LLM_TYPE_70B for "llama": 80 layers with grouped-query attention.
bool is_70b_shaped(const ModelConfig& c) { return c.n_layers == 80 && c.n_heads != c.n_kv_heads; }

// The first rule of the table for (role, this mix) whose condition holds at layer i, if any.
std::optional<GgmlType> table_rule(Role role, int64_t i, const Context& x) {
  for (const Rule& r : kRules)
    if (r.role == role && r.mix == x.mix.mix && holds(r.when, i, x)) return r.type;
  return std::nullopt;
}

// The output matrix (or the tied embedding, which serves as the output).
GgmlType output_type(const GgufTensorPlan& t, const Context& x) {
  const GgmlType base = x.mix.base;
  if (t.shape.back() % ggml_type_traits(base).block_size != 0) return T::Q8_0;
  if (auto r = table_rule(Role::Output, -1, x)) return *r;
  return base == T::Q8_0 ? T::Q8_0 : T::Q6_K;
}

// llama.cpp's branches for models of exactly 8 experts (Mixtral 8x7B and 8x22B): attn_k and
// attn_v in Q8_0 whatever the mix; attn_output in Q5_K for these mixes, else the base type (the
// dense attn_output rules do not apply). Other expert counts follow the dense rules.
constexpr GgufMix kEightExpertQ5Output[] = {
    GgufMix::Q2_K,    GgufMix::Q3_K_S, GgufMix::Q3_K_M, GgufMix::Q4_K_S, GgufMix::Q4_K_M, GgufMix::IQ3_XS,
    GgufMix::IQ3_XXS, GgufMix::IQ4_NL, GgufMix::IQ3_S,  GgufMix::IQ3_M,  GgufMix::IQ4_XS};

GgmlType block_rule_type(const GgufTensorPlan& t, const Context& x) {
  const Role role = role_of(t.name);
  const int64_t i = gguf_layer_of(t.name);
  // The low-bit i-quant mixes have their own 8-expert rules (in the table) and no 70B bump.
  const bool low = among(x.mix.mix, kLowBitMixes);
  if (!low && x.c.moe.n_experts == 8 && (role == Role::AttnK || role == Role::AttnV)) return T::Q8_0;
  if (x.c.moe.n_experts == 8 && role == Role::AttnOutput)
    return low || among(x.mix.mix, kEightExpertQ5Output) ? T::Q5_K : x.mix.base;
  GgmlType type = table_rule(role, i, x).value_or(x.mix.base);
  // The 70B attn_v bump applies after the mix's own rule, whatever the mix.
  if (!low && role == Role::AttnV && is_70b_shaped(x.c) && (type == T::Q3_K || type == T::Q4_K)) type = T::Q5_K;
  return type;
}

// llama_tensor_get_type before its fallback.
GgmlType rule_type(const GgufTensorPlan& t, const Context& x) {
  const bool is_output = t.name == "output.weight" || (x.c.tie_embeddings && t.name == "token_embd.weight");
  if (is_output) return output_type(t, x);
  if (t.name == "token_embd.weight") return table_rule(Role::TokenEmbd, -1, x).value_or(x.mix.base);
  return block_rule_type(t, x);
}

bool fits(GgmlType type, int64_t row) { return row % ggml_type_traits(type).block_size == 0; }

GgmlType apply_fallback(const GgufTensorPlan& t, GgmlType type, const Context& x) {
  const int64_t row = t.shape.back();
  if (fits(type, row)) return type;
  const Fallback* fb = nullptr;
  for (const Fallback& f : kFallbacks) if (f.from == type) fb = &f;
  SR_CHECK(fb, "[gguf] tensor ", t.name, ": rows of ", row, " elements are not a multiple of ",
           ggml_type_traits(type).block_size, ", required for ", ggml_type_name(type),
           ", which has no fallback (llama-quantize refuses such models too); give this tensor an override "
           "or use an f16/bf16/f32 mix");
  GgmlType to = fits(fb->to, row) ? fb->to : T::F16;
  note(x.opt, "tensor " + t.name + ": rows of " + std::to_string(row) + " elements are not a multiple of " +
                  std::to_string(ggml_type_traits(type).block_size) + " (" + ggml_type_name(type) +
                  "); using fallback " + ggml_type_name(to) +
                  (fb->to == T::Q4_0 ? " (llama.cpp would use iq4_nl)" : ""));
  return to;
}

// Overrides keyed by GGUF name (HF names translated); throws for names not in `plan`.
std::map<std::string, GgmlType> gguf_overrides(const std::vector<GgufTensorPlan>& plan,
                                               const std::map<std::string, GgmlType>& overrides) {
  std::map<std::string, GgmlType> out;
  for (const auto& [name, type] : overrides) {
    const std::string g = gguf_tensor_name(name);
    const bool known = std::any_of(plan.begin(), plan.end(), [&](const GgufTensorPlan& t) { return t.name == g; });
    SR_CHECK(known, "[gguf] override for tensor '", name, "': the model has no such tensor (GGUF name '", g, "')");
    ggml_codec(type);  // throws for types without a codec
    out[g] = type;
  }
  return out;
}

void apply_override(GgufTensorPlan& t, GgmlType type, const Context& x) {
  SR_CHECK(fits(type, t.shape.back()), "[gguf] override for tensor ", t.name, ": rows of ", t.shape.back(),
           " elements are not a multiple of ", ggml_type_traits(type).block_size, ", required for ",
           ggml_type_name(type));
  if (type != t.type) note(x.opt, "tensor " + t.name + ": override " + ggml_type_name(type) + " (mix rule: " +
                                      ggml_type_name(t.type) + ")");
  t.type = type;
  t.why = "override";
}

// The type the user's controls give tensor t, and why; nullopt where they leave it to the mix.
// `matched` counts, per tensor-type rule, the tensors its pattern was found in.
std::optional<std::pair<GgmlType, std::string>> controlled_type(const GgufTensorPlan& t, const Context& x,
                                                                std::vector<int>& matched) {
  const GgufTypeControls& u = x.opt.controls;
  std::optional<std::pair<GgmlType, std::string>> out;
  for (size_t r = 0; r < u.tensor_types.size(); ++r) {
    if (!u.tensor_types[r].pattern.search(t.name)) continue;
    ++matched[r];
    if (!out) out = std::make_pair(u.tensor_types[r].type, "tensor type '" + u.tensor_types[r].pattern.pattern() + "'");
  }
  // The dedicated output and token-embedding types come first, as in llama.cpp.
  const bool embd = t.name == "token_embd.weight";
  const bool output = t.name == "output.weight" || (embd && x.c.tie_embeddings);
  if (embd && u.token_embd_type) return std::make_pair(*u.token_embd_type, std::string("token_embd type"));
  if (output && u.output_type) return std::make_pair(*u.output_type, std::string("output type"));
  if (!out && u.pure) out = std::make_pair(x.mix.base, std::string("pure"));
  return out;
}

// Rule, user controls, fallback and override for one tensor.
void plan_tensor(GgufTensorPlan& t, const std::map<std::string, GgmlType>& overrides, const Context& x,
                 std::vector<int>& matched) {
  if (!t.weight_matrix) return;  // 1-D tensors stay F32
  // llama-quantize never quantizes a MoE router (ffn_gate_inp); only an override changes it.
  if (role_of(t.name) == Role::Router) {
    if (auto o = overrides.find(t.name); o != overrides.end()) apply_override(t, o->second, x);
    return;
  }
  const GgmlType base = x.mix.base;
  const bool quantized_mix = ggml_type_traits(base).block_size > 1;
  GgmlType ruled = quantized_mix ? rule_type(t, x) : base;
  if (ruled != base) t.why = "mix rule";
  const auto user = controlled_type(t, x, matched);
  if (user) {
    ruled = user->first;
    t.why = user->second;
  }
  t.type = ruled;
  auto o = overrides.find(t.name);
  if (o != overrides.end()) return apply_override(t, o->second, x);
  t.type = apply_fallback(t, ruled, x);
  // A user's choice keeps its reason in front: "tensor type 'attn_v', fallback from q4_K".
  if (t.type != ruled) t.why = user ? t.why + ", fallback from " + ggml_type_name(ruled) : "fallback";
}

// llama-quantize refuses these types without an importance matrix for the tensor (IQ1_M only in
// the blocks); token_embd never has one (llama-imatrix does not collect it).
void check_importance(const GgufTensorPlan& t, const Context& x) {
  const bool embd = t.name == "token_embd.weight";
  const bool needs = t.type == T::IQ2_XXS || t.type == T::IQ2_XS || t.type == T::IQ2_S || t.type == T::IQ1_S ||
                     (t.type == T::IQ1_M && !embd && t.name != "output.weight");
  if (!needs) return;
  const auto& covered = x.opt.imatrix_tensors;
  SR_CHECK(x.opt.has_imatrix && !embd && (!covered || covered->count(t.name)), "[gguf] tensor ", t.name,
           " is planned as ", ggml_type_name(t.type), ", which needs an importance matrix for it",
           x.opt.has_imatrix && !embd ? " and the imatrix file has no entry for it" : "",
           ": llama.cpp refuses (\"Missing importance matrix for tensor ", t.name, " in a very low-bit "
           "quantization\"), since the result would be garbage; quantize with calibration data or an imatrix file "
           "that covers it, or give this tensor another type");
}

// The controls' types must be writable, and a block linear's a quantization scheme.
void check_control_types(const GgufTypeControls& u) {
  const std::vector<GgmlType> matrix = gguf_matrix_types();
  for (const GgufTensorTypeRule& r : u.tensor_types) {
    if (std::count(matrix.begin(), matrix.end(), r.type) > 0) continue;
    std::string valid;
    for (GgmlType t : matrix) valid += (valid.empty() ? "" : ", ") + ascii_lower(ggml_type_name(t));
    fail("[gguf] tensor type rule '", r.pattern.pattern(), "': type ", ascii_lower(ggml_type_name(r.type)),
         " cannot be written for a weight matrix (valid: ", valid, ")");
  }
  for (const auto& [what, t] : {std::make_pair("output type", u.output_type),
                                std::make_pair("token_embd type", u.token_embd_type)})
    if (t) {
      bool ok = false;
      for (GgmlType s : ggml_supported_types()) ok |= s == *t;
      SR_CHECK(ok, "[gguf] ", what, " ", ascii_lower(ggml_type_name(*t)), " cannot be written (valid: ",
               ggml_supported_type_names(), ")");
    }
}

// ggml_n_dims of a tensor of this shape (outermost first): trailing ggml dimensions of 1 do not
// count, so a [1, D] gate (Qwen2-MoE's ffn_gate_inp_shexp) is 1-D to llama-quantize.
int ggml_n_dims(const std::vector<int64_t>& shape) {
  int n = 1;
  for (size_t i = 0; i < shape.size(); ++i)  // shape[i] is ggml dimension shape.size() - 1 - i
    if (shape[i] != 1) n = std::max(n, int(shape.size() - i));
  return n;
}

// The model's blocks must be what its GGUF architecture holds (model/gguf_arch.h).
void check_gguf_arch(const ModelConfig& c) {
  const GgufArch& a = gguf_arch_of(c.arch);
  SR_CHECK(!c.qkv_bias || a.qkv_bias != GgufBias::Never, "[gguf] ", c.arch_name,
           " with q/k/v biases (attention_bias) cannot be written: llama.cpp's '", a.name, "' has no attn_q.bias");
  SR_CHECK(c.qkv_bias || a.qkv_bias != GgufBias::Required, "[gguf] ", c.arch_name,
           " without q/k/v biases cannot be written: llama.cpp's '", a.name, "' requires attn_q.bias");
  SR_CHECK(c.qk_norm == a.qk_norm, "[gguf] ", c.arch_name, c.qk_norm ? " with" : " without",
           " q/k norms cannot be written as GGUF architecture '", a.name, "'");
  SR_CHECK(c.is_moe() == a.experts && (c.moe.shared_intermediate > 0) == a.shared_expert, "[gguf] ", c.arch_name,
           c.moe.shared_intermediate > 0 ? " with a shared expert" : c.is_moe() ? " with experts" : "",
           " cannot be written as GGUF architecture '", a.name, "'");
  // llama.cpp's MoE architectures load a router and stacked experts in every block; a dense MLP
  // between sparse blocks has no place in them (its converter does not write one either).
  for (int64_t b = 0; b < c.n_layers; ++b)
    SR_CHECK(c.sparse_block(b) || !c.is_moe(), "[gguf] ", c.arch_name, ": block ", b, " is a dense MLP (",
             (b + 1) % c.moe.sparse_step != 0 ? "config decoder_sparse_step " + std::to_string(c.moe.sparse_step)
                                               : std::string("config mlp_only_layers"),
             "), which GGUF architecture '", a.name, "' cannot hold: llama.cpp requires ffn_gate_inp and the "
             "stacked expert tensors in every block");
}

}  // namespace

std::vector<GgmlType> gguf_matrix_types() {
  std::vector<GgmlType> v = {GgmlType::F16, GgmlType::BF16};
  for (uint32_t id = 0; id < kGgmlTypeIdEnd; ++id)  // the block types and the i-quants (ggml_frozen.h)
    if (ggml_has_block_params(GgmlType(id))) v.push_back(GgmlType(id));
  return v;
}

const std::vector<GgufMixInfo>& gguf_mixes() { return kMixes; }

const GgufMixInfo& gguf_mix_info(GgufMix mix) {
  for (const GgufMixInfo& m : kMixes) if (m.mix == mix) return m;
  fail("[gguf] unknown mix id ", int(mix));
}

GgufMix parse_gguf_mix(const std::string& name) {
  const std::string lower = ascii_lower(name);
  std::string known;
  for (const GgufMixInfo& m : kMixes) {
    if (lower == m.name) return m.mix;
    known += (known.empty() ? "" : ", ") + std::string(m.name);
  }
  fail("[gguf] unknown GGUF mix '", name, "' (known: ", known, ")");
}

bool gguf_use_more_bits(int64_t i, int64_t n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

std::vector<GgufTensorPlan> gguf_tensor_list(const ModelConfig& c) {
  check_gguf_arch(c);
  const int64_t D = c.hidden;
  std::vector<GgufTensorPlan> out;
  auto add = [&](std::string name, std::vector<int64_t> shape) {
    GgufTensorPlan t;
    t.name = std::move(name);
    t.weight_matrix = ggml_n_dims(shape) >= 2;
    t.shape = std::move(shape);
    out.push_back(std::move(t));
  };
  if (!c.tie_embeddings) add("output.weight", {c.vocab, D});
  add("output_norm.weight", {D});
  if (!c.rope_scaling.freq_factors.empty() || c.rope_scaling.type == "llama3") add("rope_freqs.weight", {c.head_dim / 2});
  add("token_embd.weight", {c.vocab, D});
  // A block's tensors as its description lists them, in llama-quantize's order: by name.
  const BlockDesc d = describe_block(c, 0);  // every block alike (check_gguf_arch)
  std::vector<std::pair<std::string, std::vector<int64_t>>> block;  // (GGUF name in the block, shape)
  for (const NormDesc& n : d.norms)
    if (n.present) block.push_back({n.gguf + ".weight", {n.size}});
  for (const LinearDesc& l : d.linears) {
    if (l.bias) block.push_back({l.gguf + ".bias", {l.out}});
    if (l.expert < 0) block.push_back({l.gguf + ".weight", {l.out, l.in}});
    else if (l.expert == 0) block.push_back({l.gguf + ".weight", {c.moe.n_experts, l.out, l.in}});  // stacked
  }
  std::sort(block.begin(), block.end());
  for (int64_t i = 0; i < c.n_layers; ++i)
    for (const auto& [name, shape] : block) add("blk." + std::to_string(i) + "." + name, shape);
  return out;
}

std::vector<GgufTensorPlan> plan_gguf_types(const ModelConfig& c, GgufMix mix, const GgufPlanOptions& opt) {
  const Context x{c, gguf_mix_info(mix), opt};
  std::vector<GgufTensorPlan> plan = gguf_tensor_list(c);
  const std::map<std::string, GgmlType> overrides = gguf_overrides(plan, opt.overrides);
  if (mix == GgufMix::Q2_K_S && !opt.has_imatrix)
    note(opt, "q2_k_s without an imatrix: llama-quantize refuses this (its Q2_K is poor without importance "
              "weights); continuing");
  if (c.sliding_window > 0)
    note(opt, c.arch_name + ": the sliding window (" + std::to_string(c.sliding_window) + " tokens) is not stored: "
              "llama.cpp's '" + gguf_arch_of(c.arch).name + "' attends to the whole context, as its converter writes it");
  if (c.is_moe() && c.moe.norm_topk_prob != gguf_arch_of(c.arch).norm_topk_prob)
    note(opt, c.arch_name + ": norm_topk_prob is " + (c.moe.norm_topk_prob ? "true" : "false") + " but llama.cpp's '" +
              gguf_arch_of(c.arch).name + "' " + (c.moe.norm_topk_prob ? "never renormalises" : "always renormalises") +
              " the top-k routing weights; the GGUF model routes as llama.cpp does");
  SR_CHECK(opt.has_imatrix || !among(mix, kImatrixMixes), "[gguf] mix ", x.mix.name, " needs an importance "
           "matrix: llama.cpp refuses IQ1_S, IQ1_M, IQ2_S, IQ2_XXS and IQ2_XS without one (\"Please do not use ... "
           "quantization without an importance matrix\"), since the result would be garbage; quantize with "
           "calibration data or an imatrix file");
  check_control_types(opt.controls);
  std::vector<int> matched(opt.controls.tensor_types.size(), 0);
  for (GgufTensorPlan& t : plan) {
    plan_tensor(t, overrides, x, matched);
    if (t.weight_matrix) check_importance(t, x);
  }
  for (size_t r = 0; r < matched.size(); ++r)
    SR_CHECK(matched[r] > 0, "[gguf] tensor type pattern '", opt.controls.tensor_types[r].pattern.pattern(),
             "' matches no weight matrix of the model (patterns are searched in GGUF names such as "
             "blk.0.attn_v.weight; norms and MoE routers are never quantized)");
  return plan;
}

}  // namespace sr
