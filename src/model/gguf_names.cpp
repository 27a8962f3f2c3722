#include "model/gguf_names.h"

#include <cstdlib>

#include "model/block_desc.h"

namespace sr {
namespace {

struct NamePair { std::string hf, gguf; };
const NamePair kTopNames[] = {
    {"model.embed_tokens.weight", "token_embd.weight"},
    {"model.norm.weight", "output_norm.weight"},
    {"lm_head.weight", "output.weight"},
};
const std::string kHfPrefix = "model.layers.";
const std::string kGgufPrefix = "blk.";

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

// `name` in the other naming (to GGUF from HF, or back); unchanged without a counterpart.
std::string translate(const std::string& name, bool to_gguf) {
  auto from = [&](const std::string& hf, const std::string& gguf) -> const std::string& { return to_gguf ? hf : gguf; };
  auto to = [&](const std::string& hf, const std::string& gguf) -> const std::string& { return to_gguf ? gguf : hf; };
  for (const NamePair& p : kTopNames)
    if (name == from(p.hf, p.gguf)) return to(p.hf, p.gguf);
  std::string idx, rest;
  if (split_layer(name, from(kHfPrefix, kGgufPrefix), idx, rest))
    for (const auto& [h, g] : block_tensor_name_pairs())
      if (rest == from(h, g)) return to(kHfPrefix, kGgufPrefix) + idx + "." + to(h, g);
  return name;
}

}  // namespace

std::string gguf_tensor_name(const std::string& hf) { return translate(hf, true); }

std::string hf_tensor_name(const std::string& gguf) { return translate(gguf, false); }

int gguf_layer_of(const std::string& name) {
  std::string idx, rest;
  if (!split_layer(name, kGgufPrefix, idx, rest) && !split_layer(name, kHfPrefix, idx, rest)) return -1;
  if (idx.size() > 9) return -1;
  return std::atoi(idx.c_str());
}

}  // namespace sr
