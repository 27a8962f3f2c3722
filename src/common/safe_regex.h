// Regexes from untrusted files (layer-config keys, keys of a model's own
// quantization_config extra_config) matched in time linear in the name: a Thompson
// NFA simulated over all its states at once, so no pattern can backtrack
// exponentially (std::regex hangs on "(.|.)*Z" and recurses per character).
//
// Accepted syntax (ECMAScript subset, searched like std::regex_search: anywhere in
// the name unless anchored):
//   literals              model.layers.0.mlp   (a bare '.' is any character)
//   escapes               \. \\ \- \( ... (any escaped punctuation is literal), \d \D \w \W \s \S, \t \n \r
//   character classes     [0-9] [a-z_] [^.] [\d.]   (ranges, negation, the escapes above)
//   groups, alternation   (q|k|v)_proj   (?:gate|up)_proj   a|b
//   quantifiers           * + ?  on a character, class or group (lazy forms *? +? ?? are accepted
//                         and mean the same here: only whether the name matches counts)
//   anchors               ^ $
// Refused, with an error naming the key: counted repetition {m,n}, back-references
// \1, look-around (?= (?! (?<, word boundaries \b \B, other escaped letters, unbalanced
// ( ) [ ], a quantifier with nothing to repeat, keys over limits::kMaxRegexKeyBytes
// bytes or nesting groups deeper than 32. Matching is byte-wise ('.' is one byte).
#pragma once
#include <bitset>
#include <string>
#include <string_view>
#include <vector>

namespace sr {

class SafeRegex {
 public:
  SafeRegex() = default;
  // Throws sr::Error "<source>: key '<pattern>' ..." when the pattern is outside the
  // accepted syntax (the message says where and why).
  SafeRegex(const std::string& pattern, const std::string& source);

  // True when the pattern matches somewhere in `s` (std::regex_search semantics).
  bool search(std::string_view s) const;
  const std::string& pattern() const { return pattern_; }

  struct Inst {
    enum Op { Set, Split, Jmp, Match, Bol, Eol } op;
    int x = 0, y = 0;  // Set: index into sets_; Split: both targets; Jmp: target
  };

 private:
  std::string pattern_;
  std::vector<Inst> prog_;
  std::vector<std::bitset<256>> sets_;
};

}  // namespace sr
