// The block tables (contract and the Llama table in words: block_desc.h).
#include "model/block_desc.h"

#include "common/error.h"

namespace sr {
namespace {

// A size, resolved against the config.
enum class Dim : uint8_t { Hidden, Intermediate, QDim, KvDim, HeadDim };
// When a bias or a norm is there.
enum class When : uint8_t { Always, Never, QkvBias, QkNorm };
// Whose heads a linear's rows are, for the interleaved RoPE layout.
enum class Rope : uint8_t { None, Heads, KvHeads };
// Input ids and fused groups of the Llama block.
enum Input : int { AttnIn = 0, AttnOut, FfnIn, FfnAct };
enum Group : int { Alone = -1, Qkv = 0, GateUp };

struct LinearRow {
  const char *label, *module, *gguf;
  Dim out, in;
  Input input;
  Group group;
  When bias;
  Rope rope;
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

}  // namespace

int BlockDesc::find(const std::string& s) const {
  for (size_t i = 0; i < linears.size(); ++i)
    if (linears[i].label == s || linears[i].module == s) return int(i);
  return -1;
}

BlockDesc describe_block(const ModelConfig& c) {
  // Every supported architecture (model/config.h Arch) is a Llama-family block; Qwen2 and Qwen3
  // differ through the config flags the table's conditions read.
  BlockDesc d;
  for (const LinearRow& r : kLlamaLinears)
    d.linears.push_back({r.label, r.module, r.gguf, size_of(r.out, c), size_of(r.in, c), r.input, r.group,
                         holds(r.bias, c), rope_heads(r.rope, c)});
  for (const NormRow& r : kLlamaNorms)
    d.norms.push_back({r.label, r.module, r.gguf, size_of(r.size, c), holds(r.when, c)});
  return d;
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
