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
//   tokenizer.ggml.*  (tokenizer/gguf_vocab.h: "llama" SentencePiece or "gpt2" byte-level BPE
//        with its pre-tokenizer name and merges)
//   general.quantization_version 2
// key_length / value_length are written always (the converter writes them when config.json
// names head_dim; llama.cpp reads the same value either way). No sliding window is written:
// llama.cpp has none for these architectures.
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
