// The metadata of a "llama" GGUF file written from a ModelConfig and a Vocabulary.
//
// Entries, in this order (keys as llama.cpp c392e50 reads them; all integers u32,
// all reals f32, as convert_hf_to_gguf.py writes them):
//   general.architecture "llama", general.type "model", general.name
//   llama.block_count, context_length, embedding_length, feed_forward_length,
//         attention.head_count, attention.head_count_kv, rope.freq_base,
//         attention.layer_norm_rms_epsilon, attention.key_length, attention.value_length
//   general.file_type (the mix's llama_ftype)
//   llama.vocab_size, llama.rope.dimension_count
//   llama.rope.scaling.type "linear" + llama.rope.scaling.factor   (linear scaling only;
//         Llama-3 scaling travels as the rope_freqs.weight tensor, see below)
//   tokenizer.ggml.*  (tokenizer/gguf_vocab.h)
//   general.quantization_version 2
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "export/gguf_plan.h"
#include "io/gguf.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"

namespace sr {

constexpr uint32_t kGgmlQuantizationVersion = 2;  // GGML_QNT_VERSION

// Metadata entries for `c`, `vocab`, written as `mix` under the name `model_name`.
// A vocabulary shorter than c.vocab is padded with unused "[PAD<i>]" tokens (score
// -1000), as convert_hf_to_gguf.py does; a longer one throws.
std::vector<std::pair<std::string, GgufValue>> gguf_model_metadata(const ModelConfig& c, const Vocabulary& vocab,
                                                                   GgufMix mix, const std::string& model_name);

// The rope_freqs.weight values [head_dim / 2] for `c`: its freq_factors if any (a
// model read from GGUF), else for "llama3" scaling the divisors convert_hf_to_gguf.py
// computes (in fp32, like its torch code), else empty (the file has no rope_freqs).
std::vector<float> gguf_rope_freq_factors(const ModelConfig& c);

}  // namespace sr
