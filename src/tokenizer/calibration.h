// Calibration samples for imatrix collection, optimized RTN, SignRound tuning and
// DeltaLoss scoring (spec §2.1).
//
// Sample selection:
//   JSON lines (*.jsonl): one document per "text" field, each tokenized with BOS
//     (if the tokenizer adds one: Tokenizer::add_bos) and truncated to seqlen; documents shorter than seqlen, or whose last token
//     repeats more than seqlen/2 times, are dropped (auto-round's filter); the
//     survivors are shuffled with `seed` and the first nsamples kept.
//   Plain text (anything else) and JSONL with too few long documents: the whole
//     text is tokenized as one stream and cut into windows of seqlen-1 tokens,
//     each prefixed with BOS (auto-round's `concat` mode; windows of seqlen tokens
//     without BOS when the tokenizer adds none, e.g. Qwen2's); windows are shuffled
//     with `seed` and the first nsamples kept. Short stories never reach 2048
//     tokens one by one, so this is the useful mode for most plain-text corpora.
// The token-validity mask marks positions that count in a tuning loss: every
// position but the last (auto-round always masks the last), and no padding (none
// is ever produced here).
#pragma once
#include <cstdint>
#include <string>

#include "common/torch.h"
#include "tokenizer/tokenizer.h"

namespace sr {

struct CalibOptions {
  std::string dataset;    // file path (plain text or JSONL)
  int64_t nsamples = 128;
  int64_t seqlen = 2048;
  uint64_t seed = 42;
};

struct CalibData {
  at::Tensor tokens;  // [N, T] int64
  at::Tensor mask;    // [N, T] bool, true = position counts in the loss
  std::string mode;   // "documents" or "concatenated"
  int64_t available = 0;  // samples that passed the filter before taking nsamples
};

// Throws naming the dataset if it yields no sample at all. Yields fewer than
// nsamples (with a note on stderr) when the text is too short.
CalibData load_calibration(const Tokenizer& tok, const CalibOptions& opt);

}  // namespace sr
