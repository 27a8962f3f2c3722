// Limits on sizes read from untrusted inputs (config.json, GGUF metadata, llama2.c
// headers, JSON and text files). Every reader checks its sizes against these before
// it allocates or loops, and the refusal names the file, the field and the limit.
//
// Each limit is far above any real model or file, so it only ever refuses corrupt or
// hostile input (issue 13). The products that matter (heads x head_dim, the embedding
// and a whole block) are bounded too, with overflow-safe arithmetic (checked_mul).
#pragma once
#include <cstdint>

namespace sr::limits {

// Model hyper-parameters. The largest open models today: 126 layers (Llama 3.1 405B),
// hidden 16384, FFN 53248, 128 heads, head_dim 256, vocab 256k, context 1M.
constexpr int64_t kMaxLayers = 4096;              // num_hidden_layers / block_count / n_layers
constexpr int64_t kMaxHidden = 1 << 17;           // hidden_size (131072)
constexpr int64_t kMaxIntermediate = 1 << 20;     // intermediate_size
constexpr int64_t kMaxHeads = 4096;               // attention / key-value heads
constexpr int64_t kMaxHeadDim = 4096;             // head_dim
constexpr int64_t kMaxExperts = 4096;             // num_experts / num_local_experts / expert_count
constexpr int64_t kMaxVocab = 1 << 24;            // vocab_size (16.7M)
constexpr int64_t kMaxContext = 1 << 24;          // max_position_embeddings / context_length (16M)
// One projection's elements (q_proj: hidden x heads*head_dim, the FFN, the embedding).
constexpr int64_t kMaxMatrixElements = int64_t(1) << 36;

// Files.
constexpr uint64_t kMaxTextFileBytes = 4ull << 30;   // calibration / evaluation texts
constexpr uint64_t kMaxJsonFileBytes = 1ull << 30;   // config.json, tokenizer.json, layer configs, run.json
constexpr int kMaxJsonDepth = 256;                    // nesting of [ and {: real files use < 10
constexpr uint64_t kMaxGgufStringBytes = 64ull << 20;  // one GGUF string (chat templates are ~10 KB)
constexpr uint64_t kMaxGgufTensors = 1ull << 20;     // tensors in one GGUF file
constexpr uint64_t kMaxGgufKeys = 1ull << 20;        // metadata entries in one GGUF file
constexpr size_t kMaxRegexKeyBytes = 1024;           // one layer-config / extra_config key

// a * b, or false when it overflows int64 or either is negative.
inline bool checked_mul(int64_t a, int64_t b, int64_t* out) {
  if (a < 0 || b < 0) return false;
  return !__builtin_mul_overflow(a, b, out);
}

}  // namespace sr::limits
