#include "model/gguf_names.h"

#include <cstdlib>

namespace sr {
namespace {

struct NamePair { const char* hf; const char* gguf; };
// Per-block tensors: the part after "model.layers.<i>." / "blk.<i>.".
constexpr NamePair kBlockNames[] = {
    {"input_layernorm.weight", "attn_norm.weight"},
    {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"self_attn.q_proj.weight", "attn_q.weight"},   {"self_attn.k_proj.weight", "attn_k.weight"},
    {"self_attn.v_proj.weight", "attn_v.weight"},   {"self_attn.o_proj.weight", "attn_output.weight"},
    {"self_attn.q_proj.bias", "attn_q.bias"},       {"self_attn.k_proj.bias", "attn_k.bias"},
    {"self_attn.v_proj.bias", "attn_v.bias"},       {"self_attn.q_norm.weight", "attn_q_norm.weight"},
    {"self_attn.k_norm.weight", "attn_k_norm.weight"},
    {"mlp.gate_proj.weight", "ffn_gate.weight"},    {"mlp.up_proj.weight", "ffn_up.weight"},
    {"mlp.down_proj.weight", "ffn_down.weight"},
};
constexpr NamePair kTopNames[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};
constexpr const char* kHfPrefix = "model.layers.";
constexpr const char* kGgufPrefix = "blk.";

// Splits "<prefix><i>.<rest>" into i and rest; false if `name` has another form.
bool split_layer(const std::string& name, const std::string& prefix, std::string& index, std::string& rest) {
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  const size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size()) return false;
  index = name.substr(prefix.size(), dot - prefix.size());
  if (index.find_first_not_of("0123456789") != std::string::npos) return false;
  rest = name.substr(dot + 1);
  return true;
}

}  // namespace

std::string gguf_tensor_name(const std::string& hf) {
  for (const NamePair& p : kTopNames) if (hf == p.hf) return p.gguf;
  std::string idx, rest;
  if (split_layer(hf, kHfPrefix, idx, rest))
    for (const NamePair& p : kBlockNames) if (rest == p.hf) return kGgufPrefix + idx + "." + p.gguf;
  return hf;
}

std::string hf_tensor_name(const std::string& gguf) {
  for (const NamePair& p : kTopNames) if (gguf == p.gguf) return p.hf;
  std::string idx, rest;
  if (split_layer(gguf, kGgufPrefix, idx, rest))
    for (const NamePair& p : kBlockNames) if (rest == p.gguf) return kHfPrefix + idx + "." + p.hf;
  return gguf;
}

int gguf_layer_of(const std::string& name) {
  std::string idx, rest;
  if (!split_layer(name, kGgufPrefix, idx, rest) && !split_layer(name, kHfPrefix, idx, rest)) return -1;
  if (idx.size() > 9) return -1;
  return std::atoi(idx.c_str());
}

}  // namespace sr
