// The metadata of a GGUF model file written from a ModelConfig and a Vocabulary, for the
// family's GGUF architecture (model/gguf_arch.h: llama, qwen2, qwen3, qwen2moe, qwen3moe).
//
// Entries, in this order (keys as llama.cpp reads them and convert_hf_to_gguf.py writes them;
// all integers u32, all reals f32; <a> = the architecture name):
//   general.architecture <a>, general.type "model", general.name
//   <a>.block_count, context_length, embedding_length, feed_forward_length,
//        attention.head_count, attention.head_count_kv, rope.freq_base,
//        attention.layer_norm_rms_epsilon,
//        [llama with experts: expert_count], [MoE: expert_used_count],
//        attention.key_length, attention.value_length
//   general.file_type (the mix's llama_ftype)
//   [qwen2moe, qwen3moe: <a>.expert_count, expert_feed_forward_length,
//        expert_shared_feed_forward_length (qwen2moe)]
//   [llama: llama.vocab_size, llama.rope.dimension_count,
//        llama.rope.scaling.type "linear" + llama.rope.scaling.factor (linear scaling only;
//        Llama-3 scaling travels as the rope_freqs.weight tensor, see below)]
//   [YaRN, every architecture: <a>.rope.scaling.type "yarn", .factor, .original_context_length]
//   tokenizer.ggml.*  (tokenizer/gguf_vocab.h: "llama" SentencePiece or "gpt2" byte-level BPE
//        with its pre-tokenizer name and merges)
//   general.quantization_version 2
//   [tokenizer.ggml.{padding,seperator,...}_token_id, add_*_token, tokenizer.chat_template: what
//        SpecialVocab takes from the source folder, tokenizer/gguf_vocab.h]
// key_length / value_length are written when the source names head_dim (config.json's "head_dim",
// or a GGUF source's key_length), as the converter does; llama.cpp derives the same value
// otherwise. No sliding window is written: llama.cpp has none for these architectures.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "export/gguf_plan.h"
#include "io/gguf.h"
#include "model/config.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"

namespace sr {

constexpr uint32_t kGgmlQuantizationVersion = 2;  // GGML_QNT_VERSION

// What convert_hf_to_gguf.py reads from the model's folder beyond ModelConfig and Vocabulary.
// The default (no source) writes key_length and the vocabulary's own special ids.
struct GgufSource {
  bool head_dim_named = true;  // config.json names head_dim
  GgufSpecialVocab special;    // SpecialVocab's ids, add flags and chat template
};

// The source facts of the model at `model_path`: a Hugging Face folder (config.json and the
// tokenizer files beside it, read as the converter reads them), a GGUF file (its own keys, so
// GGUF in gives the same keys out), else (llama2.c) the default. `vocab` is the tokenizer the
// file stores (SentencePiece limits the ids to its size, as the converter). Throws sr::Error
// naming the file on malformed JSON.
GgufSource gguf_source_of(const std::string& model_path, const Vocabulary& vocab);

// Metadata entries for `c`, `vocab`, written as `mix` under the name `model_name`.
// A vocabulary shorter than c.vocab is padded with unused "[PAD<i>]" tokens (score
// -1000), as convert_hf_to_gguf.py does; a longer one throws.
std::vector<std::pair<std::string, GgufValue>> gguf_model_metadata(const ModelConfig& c, const Vocabulary& vocab,
                                                                   GgufMix mix, const std::string& model_name,
                                                                   const GgufSource& source = {});

// The rope_freqs.weight values [head_dim / 2] for `c`: its freq_factors if any (a
// model read from GGUF), else for "llama3" scaling the divisors convert_hf_to_gguf.py
// computes (in fp32, like its torch code), else empty (the file has no rope_freqs).
std::vector<float> gguf_rope_freq_factors(const ModelConfig& c);

}  // namespace sr
