#include "eval/cloze.h"

#include <algorithm>
#include <sstream>

#include "common/error.h"
#include "common/strings.h"

namespace sr {
namespace {

// splitmix64: a fixed generator, so items do not depend on the standard library.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  uint64_t below(uint64_t n) { return next() % n; }  // the modulo bias is irrelevant here
};

// Paragraphs: runs of non-blank lines joined by single spaces.
std::vector<std::string> paragraphs(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    line = trim(line);
    if (line.empty()) {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += (cur.empty() ? "" : " ") + line;
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

}  // namespace

std::vector<std::string> split_sentences(const std::string& paragraph) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < paragraph.size(); ++i) {
    const char c = paragraph[i];
    if (c != '.' && c != '!' && c != '?') continue;
    size_t end = i + 1;
    while (end < paragraph.size() && (paragraph[end] == '"' || paragraph[end] == '\'')) ++end;
    if (end < paragraph.size() && paragraph[end] != ' ') continue;  // "3.5", "Mr.Smith", "?!"
    const std::string s = trim(paragraph.substr(start, end - start));
    if (!s.empty()) out.push_back(s);
    start = end;
    i = end - 1;
  }
  const std::string rest = trim(paragraph.substr(std::min(start, paragraph.size())));
  if (!rest.empty()) out.push_back(rest);  // an unterminated tail is a sentence too
  return out;
}

std::vector<ChoiceItem> cloze_items_from_text(const std::string& text, const std::string& source, int64_t n_items,
                                              int64_t n_choices, uint64_t seed) {
  SR_CHECK(n_choices >= 2, "[eval] cloze items need at least 2 choices, got ", n_choices);
  SR_CHECK(n_items >= 1, "[eval] cloze items: count must be positive, got ", n_items);
  struct Usable { std::string context, ending; };
  std::vector<Usable> usable;
  for (const std::string& p : paragraphs(text)) {
    const std::vector<std::string> s = split_sentences(p);
    if (s.size() < 3) continue;
    std::string ctx = s[0];
    for (size_t k = 1; k + 1 < s.size(); ++k) ctx += " " + s[k];
    usable.push_back({ctx, s.back()});
  }
  SR_CHECK(int64_t(usable.size()) >= n_choices, "[eval] ", source, ": only ", usable.size(),
           " paragraphs with 3 or more sentences; cloze items with ", n_choices, " choices need at least ", n_choices);
  SplitMix64 rng{seed};
  std::vector<ChoiceItem> items;
  for (size_t i = 0; i < usable.size() && int64_t(items.size()) < n_items; ++i) {
    ChoiceItem it;
    it.context = usable[i].context;
    it.label = int64_t(rng.below(uint64_t(n_choices)));
    std::vector<std::string> others;
    for (int guard = 0; int64_t(others.size()) < n_choices - 1 && guard < 1000; ++guard) {
      const std::string& e = usable[rng.below(usable.size())].ending;
      if (e != usable[i].ending && std::find(others.begin(), others.end(), e) == others.end()) others.push_back(e);
    }
    if (int64_t(others.size()) < n_choices - 1) continue;  // too few distinct endings around
    for (int64_t c = 0, o = 0; c < n_choices; ++c)
      it.choices.push_back(c == it.label ? usable[i].ending : others[size_t(o++)]);
    items.push_back(std::move(it));
  }
  SR_CHECK(!items.empty(), "[eval] ", source, ": no cloze item could be made");
  return items;
}

}  // namespace sr
