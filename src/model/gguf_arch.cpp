// The GGUF architecture table (contract and the table in words: gguf_arch.h).
#include "model/gguf_arch.h"

#include <iterator>

#include "common/error.h"

namespace sr {
namespace {

using B = GgufBias;
using K = GgufExpertKeys;

// Row order: for one GGUF name, the first row with the file's expert-ness is what the reader
// makes of it (so "llama" reads as Llama, or Mixtral with experts; never as Mistral).
constexpr GgufArch kArchs[] = {
    // family          name        rope   bias          qk_norm experts shared keys     norm_topk llama_keys c392e50
    {Arch::Llama,    "llama",    true,  B::Optional, false, false, false, K::None,  false, true,  true},
    {Arch::Mixtral,  "llama",    true,  B::Optional, false, true,  false, K::Llama, true,  true,  true},
    {Arch::Mistral,  "llama",    true,  B::Optional, false, false, false, K::None,  false, true,  true},
    {Arch::Qwen2,    "qwen2",    false, B::Required, false, false, false, K::None,  false, false, true},
    {Arch::Qwen3,    "qwen3",    false, B::Never,    true,  false, false, K::None,  false, false, false},
    {Arch::Qwen2Moe, "qwen2moe", false, B::Required, false, true,  true,  K::Qwen,  false, false, true},
    {Arch::Qwen3Moe, "qwen3moe", false, B::Never,    true,  true,  false, K::Qwen,  true,  false, false},
};

}  // namespace

const GgufArch& gguf_arch_of(Arch family) {
  for (const GgufArch& a : kArchs)
    if (a.family == family) return a;
  fail("[gguf] model family ", int(family), " has no GGUF architecture");
}

const GgufArch* find_gguf_arch(const std::string& name, bool has_experts) {
  for (const GgufArch& a : kArchs)
    if (name == a.name && a.experts == has_experts) return &a;
  return nullptr;
}

std::string gguf_arch_names() {
  std::string out;
  for (size_t i = 0; i < std::size(kArchs); ++i) {
    bool seen = false;
    for (size_t j = 0; j < i; ++j) seen = seen || std::string(kArchs[j].name) == kArchs[i].name;
    if (!seen) out += (out.empty() ? "" : ", ") + std::string(kArchs[i].name);
  }
  return out;
}

}  // namespace sr
