#include "model/gguf_names.h"

#include <cstdlib>

#include "model/block_desc.h"

namespace sr {
namespace {

struct NamePair { const char* hf; const char* gguf; };
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
    for (const auto& [h, g] : block_tensor_name_pairs()) if (rest == h) return kGgufPrefix + idx + "." + g;
  return hf;
}

std::string hf_tensor_name(const std::string& gguf) {
  for (const NamePair& p : kTopNames) if (gguf == p.gguf) return p.hf;
  std::string idx, rest;
  if (split_layer(gguf, kGgufPrefix, idx, rest))
    for (const auto& [h, g] : block_tensor_name_pairs()) if (rest == g) return kHfPrefix + idx + "." + h;
  return gguf;
}

int gguf_layer_of(const std::string& name) {
  std::string idx, rest;
  if (!split_layer(name, kGgufPrefix, idx, rest) && !split_layer(name, kHfPrefix, idx, rest)) return -1;
  if (idx.size() > 9) return -1;
  return std::atoi(idx.c_str());
}

}  // namespace sr
