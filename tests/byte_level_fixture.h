// A small hand-made byte-level BPE tokenizer.json for tests, whose encodings can be
// worked out by hand:
//   ids 0..255   the 256 byte characters, id = byte value (GPT-2's bytes_to_unicode:
//                id 32 = "Ġ" (space), id 10 = "Ċ" (newline), id 97 = "a")
//   merges (rank: "a b" -> id):
//     0 "Ġ t" -> 256 "Ġt"     1 "h e" -> 257 "he"     2 "Ġt he" -> 258 "Ġthe"
//     3 "a a" -> 259 "aa"     4 "l o" -> 260 "lo"     5 "lo w" -> 261 "low"
//     6 "e r" -> 262 "er"     7 "low er" -> 263 "lower"   8 "w e" -> 264 "we"
//   265 "<|endoftext|>"  added, special
//   266 "xyz"            in model.vocab, no merge builds it (for ignore_merges)
//   267..269             holes (no token)
//   270 "<tool>"         added, not special
//   271 "<tool>call"     added, special (longest match wins over "<tool>")
//   272 "<|begin|>"      added, special (BOS of the template variant)
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace sr::test {

struct ByteLevelSpec {
  std::string pattern = "gpt2";  // "gpt2" (ByteLevel use_regex), "llama3" or "qwen2" (Split + ByteLevel)
  bool split_gpt2 = false;       // gpt2 pattern as an explicit Split (like llama3/qwen2)
  bool ignore_merges = false;
  bool add_prefix_space = false;  // ByteLevel add_prefix_space (gpt2 form only)
  bool template_bos = false;      // post_processor Sequence[ByteLevel, TemplateProcessing(<|begin|> $A)]
  bool merges_as_pairs = false;   // ["a", "b"] instead of "a b"
  bool nfc = false;               // normalizer NFC (as Qwen2)
};

nlohmann::json byte_level_tokenizer_json(const ByteLevelSpec& spec = {});
// The exact regex strings of the tokenizer.json files.
std::string llama3_regex();
std::string qwen2_regex();
std::string gpt2_regex();

// Writes `j` to `path`; returns path.
std::string write_json(const std::string& path, const nlohmann::json& j);

}  // namespace sr::test
