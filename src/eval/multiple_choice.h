// Zero-shot multiple choice, scored as lm-evaluation-harness scores its loglikelihood
// tasks (hellaswag, arc, piqa, ...), so that figures compare with published ones.
//
// For an item with context c and choices a_1..a_k:
//   ctx   = encode_with_bos(c)
//   whole = encode_with_bos(c + " " + a_i)            (" ": the harness's target_delimiter)
//   continuation = whole[len(ctx):]                   (the harness's _encode_pair)
//   loglik_i = Σ over continuation tokens of log p(token | everything before it)
// When whole is longer than the model's context + 1, its first tokens are dropped (the
// harness truncates on the left; the item is counted in `truncated`).
//   acc       : argmax_i loglik_i == label
//   acc_norm  : argmax_i loglik_i / bytes(a_i) == label   (the harness's length normalisation)
// Ties go to the lowest index. Standard errors are the sample standard deviation over
// items / sqrt(n), as the harness reports them.
//
// Items file (JSON lines, one item per line, blank lines ignored):
//   {"context": "...", "choices": ["...", "..."], "label": 1}
// ("query" is accepted for "context" and "gold" for "label", the harness's field names).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/model.h"

namespace sr {

struct ChoiceItem {
  std::string context;
  std::vector<std::string> choices;  // at least 2
  int64_t label = 0;                 // index of the correct choice
};

// Throws naming the file and line on malformed input (not JSON, missing or mistyped
// fields, fewer than two choices, label out of range, empty file).
std::vector<ChoiceItem> read_choice_items(const std::string& path);

struct ChoiceOptions {
  int64_t bucket_rows = 256;  // sequences padded to a common length per layer-wise pass
  bool progress = true;
};

struct ChoiceResult {
  int64_t items = 0;
  int64_t truncated = 0;  // items with a sequence cut on the left to fit the context
  double acc = 0, acc_stderr = 0;
  double acc_norm = 0, acc_norm_stderr = 0;
  std::vector<std::vector<double>> loglik;  // [item][choice]
  std::vector<int64_t> predicted, predicted_norm;
  double seconds = 0;
};

// REQUIRES: the model has a tokenizer. Throws if `items` is empty.
ChoiceResult evaluate_choices(const Model& model, const std::vector<ChoiceItem>& items, const ChoiceOptions& opt);

// Share of items where two results pick the same choice (by acc, and by acc_norm).
double choice_agreement(const ChoiceResult& a, const ChoiceResult& b, bool normalized);

}  // namespace sr
