// Perplexity and KL divergence of a model over a tokenized text.
//
// Protocols (the scored window is the part that matters; spelled out here):
//   llamacpp  llama-perplexity's: the whole text is tokenized with BOS first and
//             cut into chunks of ctx tokens (a trailing partial chunk is dropped);
//             each chunk's first token is replaced by BOS; only the second half
//             is scored: logits at positions [ctx/2, ctx-2] predict tokens
//             [ctx/2+1, ctx-1], i.e. ctx-1-ctx/2 tokens per chunk.
//   windows   the text is tokenized without BOS and cut into non-overlapping
//             windows of ctx tokens; each window is fed as BOS + window and all
//             ctx tokens of the window are scored.
// PPL = exp(mean NLL); its uncertainty is llama.cpp's: ppl * stderr(NLL).
// KLD (with a base model): mean over scored positions of
//   KL(p_base || p_model) = sum_v p_base(v) (log p_base(v) - log p_model(v)),
// plus the share of positions where both models rank the same token first, and the rest of
// llama-perplexity --kl-divergence's statistics (eval/kld_stats.h).
// The base is exact fp32 log-probs, or llama.cpp's 16-bit records (eval/logits_file.h), which
// are measured as llama.cpp measures them: terms with log p_base <= -16 are left out.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/kld_stats.h"
#include "model/model.h"

namespace sr {

class Comm;    // common/dist.h
struct Share;  // common/dist.h

enum class Protocol { LlamaCpp, Windows };

struct EvalOptions {
  int64_t ctx = 512;
  int64_t chunks = -1;  // -1: every complete chunk
  Protocol protocol = Protocol::LlamaCpp;
  bool progress = true;
  // A data-parallel run (common/dist.h), or null. With a group each rank runs the models on its
  // contiguous share of the chunks (share_of; uneven shares are fine), every scored position's
  // values (NLL, and with a base its KLD, the base's NLL, same top token) are gathered on every
  // rank, and every rank computes the figures from all of them: the KLD statistics, percentiles
  // included, are those of one process over the same values; the means differ from one process's
  // only by the order of the double sums. A KLD base then covers this rank's chunks only (below).
  const Comm* comm = nullptr;
};

struct EvalResult {
  double ppl = 0, ppl_stderr = 0;
  double nll = 0, nll_stderr = 0;  // mean NLL (nats) and its standard error
  int64_t tokens = 0;              // scored tokens
  int64_t chunks = 0;
  bool has_kld = false;
  double kld = 0, kld_stderr = 0;
  double top1 = 0, top1_stderr = 0;  // share in [0, 1]
  KldStats kld_stats;                // everything llama-perplexity --kl-divergence reports
  double seconds = 0;            // wall time, including the base model's pass for KLD
  double tokens_per_second = 0;  // tokens fed to the model (chunks x sequence length) / seconds of its pass
};

// The [N, T] token matrix and the scored positions of a protocol.
struct EvalBatch {
  at::Tensor inputs;     // [N, T] int64, what the model sees
  at::Tensor targets;    // [N, S] int64, the token predicted at each scored position
  int64_t first = 0;     // logits at positions [first, first + S) are scored
};

// REQUIRES: `ids` is the text tokenized WITH BOS for llamacpp, WITHOUT for windows.
// bos_id < 0 (no BOS added: a vocabulary without one, e.g. Qwen2's, or add_bos false, as
// llama-perplexity decides by llama_vocab_get_add_bos): llamacpp keeps each chunk's first
// token; windows scores tokens 1..ctx-1 of each window (no BOS to predict token 0 from).
// Throws if the text yields no complete chunk (names how many tokens are needed).
EvalBatch make_eval_batch(const std::vector<int32_t>& ids, int32_t bos_id, const EvalOptions& opt);

// Tokenizes `text` as the protocol says and evaluates. `base` (optional) must
// share the vocabulary; it sees the same inputs.
EvalResult evaluate_text(const Model& model, const std::string& text, const EvalOptions& opt,
                         const Model* base = nullptr);
EvalResult evaluate_batch(const Model& model, const EvalBatch& batch, const EvalOptions& opt,
                          const Model* base = nullptr);

// What a KLD compares against, at the batch's scored positions: exactly one of
//   log_probs  [N, S, V] fp32 log-probabilities (scored_log_probs), or
//   records    [N, S, logits_row_words(V)] int16: llama.cpp's 16-bit records
//              (scored_log_prob_records, or a file read by read_logits_file).
struct KldBase {
  at::Tensor log_probs;
  at::Tensor records;
};

// The chunks (rows of a batch of n) whose models this rank runs: all of them without a group.
Share eval_share(const EvalOptions& opt, int64_t n);

// Log-probabilities [N, S, V] (fp32) of `base` at the batch's scored positions: what
// the KLD compares against. Compute them once to compare several models with one base.
// With opt.comm: this rank's rows only (eval_share).
at::Tensor scored_log_probs(const Model& base, const EvalBatch& batch, const EvalOptions& opt);
// The same as llama.cpp's records (eval/logits_file.h): what a log-probability file holds.
// REQUIRES: no opt.comm (the records are not gathered).
at::Tensor scored_log_prob_records(const Model& base, const EvalBatch& batch, const EvalOptions& opt);
// evaluate_batch with a KLD base computed beforehand (seconds and tokens_per_second then
// cover the evaluated model's pass only); an empty KldBase measures no KLD. With
// `records_out`, also returns the evaluated model's own scored_log_prob_records. Throws if
// the base's shape does not match the batch and the model's vocabulary. With opt.comm the base
// holds this rank's rows (eval_share) and records_out must be null.
EvalResult evaluate_batch_against(const Model& model, const EvalBatch& batch, const EvalOptions& opt,
                                  const KldBase& base, at::Tensor* records_out = nullptr);
// The same against exact log-probs (KldBase{base_log_probs, {}}).
EvalResult evaluate_batch_against(const Model& model, const EvalBatch& batch, const EvalOptions& opt,
                                  const at::Tensor& base_log_probs);

}  // namespace sr
