// A story-cloze multiple-choice task cut from any plain text, for models (like the demo
// ones) too small for hellaswag or arc: the context is a paragraph without its last
// sentence, the correct choice is that sentence, the distractors are last sentences of
// other paragraphs. A model that follows the story beats chance (1 / n_choices); a
// quantized model's loss of accuracy is measured on real text, without a dataset.
//
// Paragraphs are separated by blank lines; sentences end with '.', '!' or '?' (and an
// optional closing quote) followed by a space or the end. A paragraph is used when it has
// at least 3 sentences; items take paragraphs in text order, distractors are drawn with a
// fixed generator (splitmix64) seeded by `seed`, so the same text and seed give the same
// items on every platform.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/multiple_choice.h"

namespace sr {

// At most `n_items` items (fewer if the text has fewer usable paragraphs). Throws naming
// `source` when the text yields no item or n_choices < 2.
std::vector<ChoiceItem> cloze_items_from_text(const std::string& text, const std::string& source, int64_t n_items,
                                              int64_t n_choices, uint64_t seed);

// The sentences of one paragraph (exposed for tests).
std::vector<std::string> split_sentences(const std::string& paragraph);

}  // namespace sr
