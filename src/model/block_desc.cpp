// The block tables (contract and the Llama table in words: block_desc.h).
#include "model/block_desc.h"

#include "common/error.h"

namespace sr {
namespace {

// A size, resolved against the config.
enum class Dim : uint8_t { Hidden, Intermediate, QDim, KvDim, HeadDim, Experts, ExpertFfn, SharedFfn, One };
// When a bias or a norm is there.
enum class When : uint8_t { Always, Never, QkvBias, QkNorm };
// Whose heads a linear's rows are, for the interleaved RoPE layout.
enum class Rope : uint8_t { None, Heads, KvHeads };
// Input ids and fused groups of the Llama block.
enum Input : int { AttnIn = 0, AttnOut, FfnIn, FfnAct, SharedAct, ExpertInputs };  // expert e: 2e + {0, 1} past the last
enum Group : int { Alone = -1, Qkv = 0, GateUp, ExpertGroups };                  // expert e: ExpertGroups + e

struct LinearRow {
  const char *label, *module, *gguf;
  Dim out, in;
  Input input;
  Group group;
  When bias;
  Rope rope;
  bool keep_16bit = false;
};
struct NormRow {
  const char *label, *module, *gguf;
  Dim size;
  When when;
};

// Row order = llama::Linear / llama::Norm (block_desc.h); the forward relies on it.
constexpr LinearRow kLlamaLinears[] = {
    {"q", "self_attn.q_proj", "attn_q", Dim::QDim, Dim::Hidden, AttnIn, Qkv, When::QkvBias, Rope::Heads},
    {"k", "self_attn.k_proj", "attn_k", Dim::KvDim, Dim::Hidden, AttnIn, Qkv, When::QkvBias, Rope::KvHeads},
    {"v", "self_attn.v_proj", "attn_v", Dim::KvDim, Dim::Hidden, AttnIn, Qkv, When::QkvBias, Rope::None},
    {"o", "self_attn.o_proj", "attn_output", Dim::Hidden, Dim::QDim, AttnOut, Alone, When::Never, Rope::None},
    {"gate", "mlp.gate_proj", "ffn_gate", Dim::Intermediate, Dim::Hidden, FfnIn, GateUp, When::Never, Rope::None},
    {"up", "mlp.up_proj", "ffn_up", Dim::Intermediate, Dim::Hidden, FfnIn, GateUp, When::Never, Rope::None},
    {"down", "mlp.down_proj", "ffn_down", Dim::Hidden, Dim::Intermediate, FfnAct, Alone, When::Never, Rope::None},
};
// A MoE block's feed-forward, after q, k, v, o (block_desc.h): the router, the experts (the rows
// of kExpertLinears once per expert, modules under the family's expert prefix), the shared expert.
struct MoeNames { const char *router, *experts, *gate, *up, *down; };
constexpr MoeNames kMixtralNames = {"block_sparse_moe.gate", "block_sparse_moe.experts.", "w1", "w3", "w2"};
constexpr MoeNames kQwenMoeNames = {"mlp.gate", "mlp.experts.", "gate_proj", "up_proj", "down_proj"};
constexpr LinearRow kSharedExpertLinears[] = {
    {"shexp.gate", "mlp.shared_expert.gate_proj", "ffn_gate_shexp", Dim::SharedFfn, Dim::Hidden, FfnIn, GateUp, When::Never, Rope::None},
    {"shexp.up", "mlp.shared_expert.up_proj", "ffn_up_shexp", Dim::SharedFfn, Dim::Hidden, FfnIn, GateUp, When::Never, Rope::None},
    {"shexp.down", "mlp.shared_expert.down_proj", "ffn_down_shexp", Dim::Hidden, Dim::SharedFfn, SharedAct, Alone, When::Never, Rope::None},
    {"shexp.inp", "mlp.shared_expert_gate", "ffn_gate_inp_shexp", Dim::One, Dim::Hidden, FfnIn, Alone, When::Never, Rope::None, true},
};

constexpr NormRow kLlamaNorms[] = {
    {"attn", "input_layernorm", "attn_norm", Dim::Hidden, When::Always},
    {"ffn", "post_attention_layernorm", "ffn_norm", Dim::Hidden, When::Always},
    {"q", "self_attn.q_norm", "attn_q_norm", Dim::HeadDim, When::QkNorm},
    {"k", "self_attn.k_norm", "attn_k_norm", Dim::HeadDim, When::QkNorm},
};

int64_t size_of(Dim d, const ModelConfig& c) {
  switch (d) {
    case Dim::Hidden: return c.hidden;
    case Dim::Intermediate: return c.intermediate;
    case Dim::QDim: return c.q_dim();
    case Dim::KvDim: return c.kv_dim();
    case Dim::HeadDim: return c.head_dim;
    case Dim::Experts: return c.moe.n_experts;
    case Dim::ExpertFfn: return c.moe.expert_intermediate;
    case Dim::SharedFfn: return c.moe.shared_intermediate;
    case Dim::One: return 1;
  }
  return 0;
}

bool holds(When w, const ModelConfig& c) {
  switch (w) {
    case When::Always: return true;
    case When::Never: return false;
    case When::QkvBias: return c.qkv_bias;
    case When::QkNorm: return c.qk_norm;
  }
  return false;
}

int64_t rope_heads(Rope r, const ModelConfig& c) {
  return r == Rope::Heads ? c.n_heads : r == Rope::KvHeads ? c.n_kv_heads : 0;
}

LinearDesc linear_of(const LinearRow& r, const ModelConfig& c) {
  return {r.label, r.module, r.gguf, size_of(r.out, c), size_of(r.in, c), r.input, r.group,
          holds(r.bias, c), rope_heads(r.rope, c), -1, r.keep_16bit};
}

// The router, E experts and the shared expert if any, appended to d (the table in block_desc.h).
void append_moe(const ModelConfig& c, BlockDesc& d) {
  const MoeNames& n = c.arch == Arch::Mixtral ? kMixtralNames : kQwenMoeNames;
  d.linears.push_back(linear_of({"router", n.router, "ffn_gate_inp", Dim::Experts, Dim::Hidden, FfnIn, Alone,
                                 When::Never, Rope::None, true}, c));
  const int64_t Fe = c.moe.expert_intermediate, D = c.hidden;
  for (int64_t e = 0; e < c.moe.n_experts; ++e) {
    const std::string label = "exp" + std::to_string(e) + ".", module = n.experts + std::to_string(e) + ".";
    const int in = int(ExpertInputs + 2 * e), group = int(ExpertGroups + e);
    d.linears.push_back({label + "gate", module + n.gate, "ffn_gate_exps", Fe, D, in, group, false, 0, e});
    d.linears.push_back({label + "up", module + n.up, "ffn_up_exps", Fe, D, in, group, false, 0, e});
    d.linears.push_back({label + "down", module + n.down, "ffn_down_exps", D, Fe, in + 1, Alone, false, 0, e});
  }
  if (c.moe.shared_intermediate > 0)
    for (const LinearRow& r : kSharedExpertLinears) d.linears.push_back(linear_of(r, c));
}

}  // namespace

int BlockDesc::find(const std::string& s) const {
  for (size_t i = 0; i < linears.size(); ++i)
    if (linears[i].label == s || linears[i].module == s) return int(i);
  return -1;
}

BlockDesc describe_block(const ModelConfig& c, int64_t block) {
  // Every supported architecture (model/config.h Arch) is a Llama-family block; Qwen2 and Qwen3
  // differ through the config flags the table's conditions read, the MoE families by their
  // feed-forward (append_moe) in their sparse blocks.
  const bool sparse = c.sparse_block(block);
  BlockDesc d;
  for (const LinearRow& r : kLlamaLinears) {
    if (sparse && r.input >= FfnIn) break;
    d.linears.push_back(linear_of(r, c));
  }
  if (sparse) append_moe(c, d);
  for (const NormRow& r : kLlamaNorms)
    d.norms.push_back({r.label, r.module, r.gguf, size_of(r.size, c), holds(r.when, c)});
  return d;
}

const BlockDesc& BlockDescs::operator[](int64_t block) const {
  SR_CHECK(block >= 0 && block < size(), "[model] block ", block, " out of range [0, ", size(), ")");
  return kinds[size_t(kind_of[size_t(block)])];
}

const BlockDesc& BlockDescs::widest() const {
  SR_CHECK(!kinds.empty(), "[model] a model without blocks has no block description");
  const BlockDesc* w = &kinds.front();
  for (const BlockDesc& d : kinds)
    if (d.count() > w->count()) w = &d;
  return *w;
}

BlockDescs describe_blocks(const ModelConfig& c) {
  BlockDescs out;
  int sparse_kind = -1, dense_kind = -1;
  for (int64_t b = 0; b < c.n_layers; ++b) {
    int& kind = c.sparse_block(b) ? sparse_kind : dense_kind;
    if (kind < 0) {
      kind = int(out.kinds.size());
      out.kinds.push_back(describe_block(c, b));
    }
    out.kind_of.push_back(kind);
  }
  return out;
}

std::string block_prefix(int64_t block) { return "model.layers." + std::to_string(block) + "."; }

std::string linear_name(const BlockDesc& d, int64_t block, int i) {
  SR_CHECK(i >= 0 && i < int(d.linears.size()), "[model] linear index ", i, " out of range [0, ", d.linears.size(),
           ")");
  return block_prefix(block) + d.linears[size_t(i)].module;
}

const std::vector<std::pair<std::string, std::string>>& block_tensor_name_pairs() {
  static const std::vector<std::pair<std::string, std::string>> pairs = [] {
    std::vector<std::pair<std::string, std::string>> out;
    for (const NormRow& r : kLlamaNorms) out.emplace_back(std::string(r.module) + ".weight", std::string(r.gguf) + ".weight");
    for (const LinearRow& r : kLlamaLinears) {
      out.emplace_back(std::string(r.module) + ".weight", std::string(r.gguf) + ".weight");
      if (r.bias != When::Never) out.emplace_back(std::string(r.module) + ".bias", std::string(r.gguf) + ".bias");
    }
    return out;
  }();
  return pairs;
}

}  // namespace sr
