// The metadata of a GGUF model file written from a ModelConfig and a Vocabulary, for the
// family's GGUF architecture (model/gguf_arch.h: llama, qwen2, qwen3, qwen2moe, qwen3moe).
//
// Entries, in this order (keys as llama.cpp reads them and convert_hf_to_gguf.py writes them;
// all integers u32, all reals f32; <a> = the architecture name):
//   general.architecture <a>, general.type "model",
//   [general.sampling.*: generation_config.json's top_k (i32), top_p, min_p, temperature (as
//        general.sampling.temp), ... as gguf-py's Metadata reads them], general.name,
//   [general.version, organization, finetune, basename, size_label: gguf-py's heuristics on
//        config.json's _name_or_path and the folder name (export/gguf_naming.h), size_label
//        else from the parameter count of the file's tensors; a GGUF source: its own general.*]
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
//   general.quantization_version 2
//   tokenizer.ggml.*  (tokenizer/gguf_vocab.h: "llama" SentencePiece or "gpt2" byte-level BPE
//        with its pre-tokenizer name and merges; from a folder, the special ids, add flags and
//        chat template SpecialVocab resolves, and for llama add_space_prefix from
//        tokenizer_config.json's add_prefix_space)
// This is the converter's order (its F32 file); llama-quantize moves quantization_version and
// file_type to the end, which no reader minds.
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
// The default (no source) writes key_length, general.name only and the vocabulary's own special ids.
struct GgufSource {
  bool head_dim_named = true;  // config.json names head_dim
  GgufSpecialVocab special;    // SpecialVocab's ids, add flags and chat template; added tokens
  // gguf-py Metadata's inputs from a Hugging Face folder: the model ids its heuristics read, in
  // their order (config.json's _name_or_path when it has at most one '/', then the folder
  // name; the first to give a field wins), and generation_config.json's general.sampling.* entries.
  std::vector<std::string> model_ids;
  std::vector<std::pair<std::string, GgufValue>> sampling;
  // A GGUF source's own descriptive general.* entries (name, basename, size_label, sampling, ...),
  // written as they are, as llama-quantize copies them.
  std::vector<std::pair<std::string, GgufValue>> general;
  bool hf_folder = false;      // the facts come from a Hugging Face folder
};

// The source facts of the model at `model_path`: a Hugging Face folder (config.json and the
// tokenizer files beside it, read as the converter reads them), a GGUF file (its own keys, so
// GGUF in gives the same keys out), else (llama2.c) the default. `vocab` is the tokenizer the
// file stores (SentencePiece limits the ids to config.json's vocab_size, else its own size, as
// the converter). Throws sr::Error naming the file on malformed JSON or an unreadable value.
// (The README.md model card's front matter, which gguf-py also reads for names, licence, tags
// and base models, is not read.)
GgufSource gguf_source_of(const std::string& model_path, const Vocabulary& vocab);

// Metadata entries for `c`, `vocab`, written as `mix`. general.name: the source's (gguf-py's
// heuristics, or a GGUF source's own), else `model_name`. A vocabulary shorter than c.vocab is
// padded with unused "[PAD<id>]" tokens (score -10000), as convert_hf_to_gguf.py does, and the
// source's added tokens re-type theirs (tokenizer/gguf_vocab.h GgufAddedToken); a longer one throws.
std::vector<std::pair<std::string, GgufValue>> gguf_model_metadata(const ModelConfig& c, const Vocabulary& vocab,
                                                                   GgufMix mix, const std::string& model_name,
                                                                   const GgufSource& source = {});

// The rope_freqs.weight values [head_dim / 2] for `c`: its freq_factors if any (a
// model read from GGUF), else for "llama3" scaling the divisors convert_hf_to_gguf.py
// computes (in fp32, like its torch code), else empty (the file has no rope_freqs).
std::vector<float> gguf_rope_freq_factors(const ModelConfig& c);

}  // namespace sr
