// llama.cpp's log-probability file: what `llama-perplexity --kl-divergence-base FILE` writes
// and `--kl-divergence` reads (tools/perplexity/perplexity.cpp). We read and write the same
// layout, so a base model runs once — in llama.cpp or in signround — for many comparisons.
//
// Layout (host byte order, little-endian on every machine llama.cpp supports):
//   char[8]  "_logits_"
//   int32    n_ctx, n_vocab, n_chunk
//   int32    tokens[n_chunk * n_ctx]   the text tokenized with BOS first, chunk after chunk, as in
//                                      the text (each chunk's first token is not replaced by BOS)
//   then, per chunk, one record per scored position p = n_ctx/2 .. n_ctx-2 (the llamacpp
//   protocol's second half, eval/perplexity.h), row_words(n_vocab) uint16 words each:
//     float scale, float min_log_prob, uint16 code[n_vocab], one zero word if n_vocab is odd
//   log p(v) = scale * code[v] + min_log_prob (float arithmetic). The codes span the top 16 nats
//   of the logits: scale = (max - lo) / 65535 with lo = max(min logit, max logit - 16), code =
//   round((logit - lo) / scale), and 0 at or below lo. Terms whose decoded log p is <= -16 are
//   left out of llama.cpp's KL divergence (they are not represented); we do the same.
// Size: 20 + 4 n_chunk n_ctx + 2 n_chunk (n_ctx - 1 - n_ctx/2) row_words bytes — about 2 bytes per
// vocabulary entry per scored token (a 32k vocabulary at ctx 512: 16 MiB a chunk).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "common/torch.h"

namespace sr {

struct LogitsFile {
  int32_t n_ctx = 0, n_vocab = 0, n_chunk = 0;
  std::vector<int32_t> tokens;  // n_chunk * n_ctx
  at::Tensor records;           // [n_chunk, n_ctx - 1 - n_ctx/2, row_words(n_vocab)] int16 (uint16 bits)
};

// uint16 words of one position's record: 2 ((n_vocab + 1) / 2) + 4.
int64_t logits_row_words(int64_t n_vocab);
// Scored positions per chunk: n_ctx - 1 - n_ctx/2.
int64_t logits_scored_per_chunk(int64_t n_ctx);

// Records [..., row_words(V)] int16 of logits [..., V] (any float dtype), as llama.cpp encodes.
at::Tensor encode_log_prob_records(const at::Tensor& logits);
// Log-probabilities [..., n_vocab] float of records [..., row_words(n_vocab)].
at::Tensor decode_log_prob_records(const at::Tensor& records, int64_t n_vocab);

// Reads and checks the whole file (an untrusted input): magic, header ranges, the exact file
// size the header implies, token ids within the vocabulary and every record's scale and
// minimum finite (scale >= 0). Throws sr::Error naming the file and the field.
LogitsFile read_logits_file(const std::string& path);
// Writes `f` atomically (common/atomic_file.h). REQUIRES the shapes above.
void write_logits_file(const std::string& path, const LogitsFile& f);

}  // namespace sr
