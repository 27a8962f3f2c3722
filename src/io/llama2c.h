// llama2.c legacy checkpoints (`run.c`'s format, "version 0") and its tokenizer.bin.
//
// Checkpoint layout (all little-endian):
//   int32 dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
//     (vocab_size < 0 means the classifier is NOT shared with the embedding)
//   f32 token_embedding[vocab][dim]
//   f32 rms_att[L][dim]
//   f32 wq[L][dim][dim], wk[L][kv_dim][dim], wv[L][kv_dim][dim], wo[L][dim][dim]   ([out][in])
//   f32 rms_ffn[L][dim]
//   f32 w1[L][hidden][dim] (gate), w2[L][dim][hidden] (down), w3[L][hidden][dim] (up)
//   f32 rms_final[dim]
//   f32 freq_cis_real[seq_len][head_size/2], freq_cis_imag[...]   (unused: recomputed)
//   f32 wcls[vocab][dim]                                           (only if unshared)
// with kv_dim = dim * n_kv_heads / n_heads. q/k rows are in the interleaved RoPE
// layout (rotation pairs (2i, 2i+1)); model/ converts them to the Hugging Face
// layout at load.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/tensor_store.h"

namespace sr {

struct Llama2cHeader {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
  bool shared_classifier;  // vocab_size was positive in the file
};

// Maps the checkpoint and adds its tensors to `store` under Hugging Face names
// (model.embed_tokens.weight, model.layers.N.self_attn.q_proj.weight, ..., and
// lm_head.weight only when unshared). Throws sr::Error naming the file if the
// header is implausible or the file size does not match it exactly.
Llama2cHeader read_llama2c(const std::string& path, TensorStore& store);

// True if the file starts like a llama2.c checkpoint of the versioned formats
// ("ak42" magic), which we do not read.
bool is_llama2c_versioned(const std::string& path);

struct Llama2cVocab {
  std::vector<std::string> pieces;  // token text (llama2.c uses ' ' where SentencePiece has U+2581)
  std::vector<float> scores;        // merge priority (higher merges first)
  int32_t max_token_length = 0;
};

// Reads tokenizer.bin: int32 max_token_length, then per token: f32 score,
// int32 len, len bytes. Throws naming the file on truncation or absurd lengths.
Llama2cVocab read_llama2c_tokenizer(const std::string& path, int32_t vocab_size);

}  // namespace sr
