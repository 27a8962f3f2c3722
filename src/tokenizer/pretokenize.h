// Pre-tokenizers of byte-level BPE tokenizers: the regex that splits text into the
// pieces BPE merges within ("pre-tokens"). Each known regex is implemented by hand
// with the regex's exact semantics (leftmost alternative wins, greedy quantifiers
// with backtracking, find-iter: consecutive non-overlapping matches), over the
// character classes of unicode_classes.h:
//
//   Gpt2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   Llama3  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//           ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+        (one line, no break)
//   Qwen2   as Llama3 with \p{N} instead of \p{N}{1,3}
//
// These are the strings of the tokenizer.json files (GPT-2's is built into Hugging
// Face's ByteLevel pre-tokenizer). Text that no alternative matches would become a
// piece of its own (Hugging Face's "Isolated" split), but each pattern matches every
// character, so the pieces are exactly the matches.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace sr {

enum class PreTokenizer : uint8_t { Gpt2, Llama3, Qwen2 };

// The regex strings above, exactly (JSON-unescaped).
const std::string& pretokenizer_regex(PreTokenizer kind);
// The kind whose regex is exactly `regex`, if any.
std::optional<PreTokenizer> pretokenizer_from_regex(std::string_view regex);

// Splits `text` (UTF-8; invalid bytes are single characters of class Other) into
// consecutive non-empty pieces that concatenate to `text`. The views point into `text`.
std::vector<std::string_view> pretokenize(std::string_view text, PreTokenizer kind);

}  // namespace sr
