// The layer-config / extra_config pattern engine (common/safe_regex.h SafeRegex), alone:
// input = pattern '\n' name. Any pattern must compile or be refused with sr::Error, and
// search must end in linear time (-timeout catches a hang). When the pattern is short (<= 10
// bytes, names <= 6), uses
// only the characters ab.|()*+?^$[]-\d and std::regex accepts it, the match must agree with
// std::regex_search (ECMAScript), as docs/robustness.md promises.
#include <cstdlib>
#include <cstring>
#include <regex>

#include "common/safe_regex.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in = sr::fuzz::as_view(data, size);
  const size_t cut = in.find('\n');
  const std::string pattern(in.substr(0, cut));
  const std::string name(cut == std::string_view::npos ? std::string_view() : in.substr(cut + 1));
  sr::SafeRegex re;
  try {
    re = sr::SafeRegex(pattern, "fuzz");
  } catch (const sr::Error& e) {
    sr::fuzz::note_refusal(e);
    return 0;
  }
  const bool ours = re.search(name);
  const bool small_alphabet = pattern.size() <= 10 && name.size() <= 6 &&
                              pattern.find_first_not_of("ab.|()*+?^$[]-\\d") == std::string::npos &&
                              name.find_first_not_of("ab.1") == std::string::npos;
  if (!small_alphabet) return 0;
  // Stacked quantifiers (".?*+", "a**"): a syntax error in ECMAScript, but libstdc++'s
  // std::regex accepts them and then backtracks for minutes on a 4-byte name (the oracle
  // hung, not SafeRegex: fuzz/corpus/safe_regex/stdregex-hang-stacked-quantifiers). Only
  // the lazy forms *? +? ?? are compared.
  for (size_t i = 0; i + 1 < pattern.size(); ++i)
    if (std::strchr("*+?", pattern[i]) && std::strchr("*+", pattern[i + 1]) && (i == 0 || pattern[i - 1] != '\\'))
      return 0;
  try {
    const std::regex std_re(pattern, std::regex::ECMAScript);
    if (ours != std::regex_search(name, std_re)) std::abort();  // the engines disagree
  } catch (const std::regex_error&) {
  }
  return 0;
}
