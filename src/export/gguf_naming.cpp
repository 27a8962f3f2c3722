// general.* naming as gguf-py derives it (contract in gguf_naming.h). The steps follow
// metadata.py's get_model_id_components in its order: each later step reads what the earlier ones
// annotated.
#include "export/gguf_naming.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <string_view>
#include <vector>

namespace sr {
namespace {

bool digit(char c) { return c >= '0' && c <= '9'; }
bool alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
char lower(char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; }
char upper(char c) { return c >= 'a' && c <= 'z' ? char(c - 'a' + 'A') : c; }
bool word_char(char c) { return alpha(c) || digit(c) || c == '_'; }  // \w

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

bool in(char c, std::string_view set) { return set.find(lower(c)) != std::string_view::npos; }

// Consumes one or more digits at s[i]; false if there is none.
bool digits(std::string_view s, size_t& i) {
  const size_t start = i;
  while (i < s.size() && digit(s[i])) ++i;
  return i > start;
}

// (v|iter)?\d+([.]\d+)*
bool is_version(std::string_view s) {
  size_t i = 0;
  if (s.size() >= 4 && iequal(s.substr(0, 4), "iter")) i = 4;
  else if (!s.empty() && lower(s[0]) == 'v') i = 1;
  if (!digits(s, i)) return false;
  while (i < s.size()) {
    if (s[i] != '.') return false;
    ++i;
    if (!digits(s, i)) return false;
  }
  return true;
}

// i?q\d(_\w)* | b?fp?(16|32)
bool is_quant_type(std::string_view s) {
  size_t i = 0;
  if (i < s.size() && lower(s[i]) == 'i') ++i;
  if (i + 1 < s.size() && lower(s[i]) == 'q' && digit(s[i + 1])) {
    i += 2;
    while (i < s.size()) {
      if (s[i] != '_' || i + 1 >= s.size() || !word_char(s[i + 1])) break;
      i += 2;
    }
    if (i == s.size()) return true;
  }
  i = 0;
  if (i < s.size() && lower(s[i]) == 'b') ++i;
  if (i >= s.size() || lower(s[i]) != 'f') return false;
  ++i;
  if (i < s.size() && lower(s[i]) == 'p') ++i;
  const std::string_view rest = s.substr(i);
  return rest == "16" || rest == "32";
}

// \d+([._]\d+)?[KMBT]\d? from s[i] to the end.
bool number_label_tail(std::string_view s, size_t i) {
  if (!digits(s, i)) return false;
  if (i < s.size() && (s[i] == '.' || s[i] == '_')) {
    size_t j = i + 1;
    if (digits(s, j)) i = j;
  }
  if (i >= s.size() || !in(s[i], "kmbt")) return false;
  ++i;
  if (i < s.size() && digit(s[i])) ++i;
  return i == s.size();
}

// ([A]|\d+[x])?\d+([._]\d+)?[KMBT][\d]? | small | mini | medium | large | x?xl
bool is_size_label(std::string_view s) {
  for (const char* w : {"small", "mini", "medium", "large", "xl", "xxl"})
    if (iequal(s, w)) return true;
  if (number_label_tail(s, 0)) return true;
  if (!s.empty() && lower(s[0]) == 'a' && number_label_tail(s, 1)) return true;
  size_t i = 0;
  return digits(s, i) && i < s.size() && lower(s[i]) == 'x' && number_label_tail(s, i + 1);
}

// A\d+([._]\d+)?[KMBT][\d]?
bool is_active_params_label(std::string_view s) {
  return !s.empty() && lower(s[0]) == 'a' && number_label_tail(s, 1);
}

// "7b1" -> "7.1b" (bloom), "1_6b" -> "1.6b", then a lower-case suffix after a digit upper-cased.
// nullopt where the converter's Python would fail on it (a one-character label ending in a digit).
std::optional<std::string> normalize_size_label(std::string label) {
  std::replace(label.begin(), label.end(), '_', '.');
  if (!label.empty() && digit(label.back())) {
    if (label.size() < 2) return std::nullopt;
    const char last = label.back(), before = label[label.size() - 2];
    label = label.substr(0, label.size() - 2) + "." + last + before;
  }
  if (label.size() > 1 && digit(label[label.size() - 2]) && in(label.back(), "kmbt") && label.back() == lower(label.back()))
    label.back() = upper(label.back());
  return label;
}

// float(label[:-1]) * 1000 ** " KMBT".find(label[-1]); nullopt where float() fails: only digits
// with at most one '.' parse here ("8x7", "A4", "min" and "1.5.3" do not).
std::optional<double> size_label_params(std::string_view label) {
  if (label.empty()) return std::nullopt;
  const std::string number(label.substr(0, label.size() - 1));
  size_t i = 0;
  if (!digits(number, i)) return std::nullopt;
  if (i < number.size() && number[i] == '.') {
    ++i;
    digits(number, i);
  }
  if (i != number.size()) return std::nullopt;
  const size_t power = std::string_view(" KMBT").find(label.back());
  return std::strtod(number.c_str(), nullptr) *
         (power == std::string_view::npos ? 1.0 / 1000 : std::pow(1000.0, double(power)));
}

enum Kind { Basename = 1, SizeLabel = 2, Finetune = 4, Version = 8, Type = 16 };

std::vector<std::string> split_dashes(const std::string& s) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == '-') {
      if (i > start) parts.push_back(s.substr(start, i - start));  // empty parts are dropped
      start = i + 1;
    }
  return parts;
}

}  // namespace

GgufModelIdParts gguf_model_id_parts(const std::string& id, int64_t total_params) {
  GgufModelIdParts out;
  if (id.find(' ') != std::string::npos) {  // a sentence: a name only
    out.full_name = id;
    return out;
  }
  const size_t slash = id.find('/');
  out.full_name = slash == std::string::npos ? id : id.substr(slash + 1);
  if (slash != std::string::npos && slash > 0 && id[0] != '.') out.organization = id.substr(0, slash);

  std::vector<std::string> parts = split_dashes(out.full_name);
  std::vector<int> kinds(parts.size(), 0);
  const double total = double(total_params), abs_total = std::fabs(total);
  const double seven_eighths = std::floor(7 * abs_total / 8), one_eighth = std::floor(abs_total / 8);
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string part = parts[i];
    if (is_version(part)) {
      kinds[i] |= Version;
    } else if (is_quant_type(part)) {
      kinds[i] |= Type;
      std::transform(part.begin(), part.end(), part.begin(), upper);
      parts[i] = part;
    } else if (i > 0 && is_size_label(part)) {
      part = *normalize_size_label(part);  // matched a size label: at least two characters or not a digit
      if (total_params != 0) {
        const std::optional<double> label = size_label_params(part);
        std::optional<std::string> next;
        if (label && i + 1 < parts.size()) next = normalize_size_label(parts[i + 1]);
        std::optional<double> next_params;
        if (next && is_active_params_label(*next)) next_params = size_label_params(next->substr(1));
        const bool next_failed = next && is_active_params_label(*next) && !next_params;  // float() raised
        if (label && !next_failed) {
          const bool followed_by_active = next_params && std::fabs(*next_params - abs_total) <= seven_eighths;
          const bool far = (total < 0 && *label < one_eighth) || (total > 0 && std::fabs(*label - total) > seven_eighths);
          if (!followed_by_active && far) {  // likely a context length
            kinds[i] |= Finetune;
            part.back() = lower(part.back());
          }
        }
      }
      if (kinds[i] == 0) kinds[i] |= SizeLabel;
      parts[i] = part;
    } else if (i > 0 && (iequal(part, "chat") || iequal(part, "instruct") || iequal(part, "vision") ||
                         iequal(part, "lora"))) {
      kinds[i] |= total_params < 0 && iequal(part, "lora") ? Type : Finetune;
    }
  }
  // Word size labels give way to number ones.
  bool number_label = false;
  for (size_t i = 0; i < parts.size(); ++i)
    if (kinds[i] & SizeLabel) number_label = number_label || std::any_of(parts[i].begin(), parts[i].end(), digit);
  if (number_label)
    for (size_t i = 0; i < parts.size(); ++i)
      if ((kinds[i] & SizeLabel) && std::all_of(parts[i].begin(), parts[i].end(), alpha)) kinds[i] &= ~SizeLabel;
  bool at_start = true;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (at_start && ((kinds[i] == 0 && alpha(parts[i][0])) || (kinds[i] & Version))) {
      kinds[i] |= Basename;
    } else {
      at_start = false;
      if (kinds[i] == 0) kinds[i] |= Finetune;
    }
  }
  for (size_t i = parts.size(); i-- > 0;) {  // a trailing version is no part of the basename
    if ((kinds[i] & Basename) && kinds[i] != Basename) kinds[i] &= ~Basename;
    else break;
  }
  auto join = [&](auto keep) -> std::optional<std::string> {
    std::string s;
    for (size_t i = 0; i < parts.size(); ++i)
      if (keep(i)) s += (s.empty() ? "" : "-") + parts[i];
    if (s.empty()) return std::nullopt;
    return s;
  };
  out.basename = join([&](size_t i) { return (kinds[i] & Basename) != 0; });
  std::string sizes;
  std::set<std::string> seen;
  for (size_t i = 0; i < parts.size(); ++i)
    if ((kinds[i] & SizeLabel) && seen.insert(parts[i]).second) sizes += (sizes.empty() ? "" : "-") + parts[i];
  if (!sizes.empty()) out.size_label = sizes;
  out.finetune = join([&](size_t i) { return (kinds[i] & Finetune) != 0; });
  out.version = join([&](size_t i) { return (kinds[i] & Version) && !(kinds[i] & Basename); });
  if (!out.size_label && !out.finetune && !out.version) out.basename.reset();  // too ambiguous
  return out;
}

std::string gguf_id_to_title(const std::string& id) {
  std::string s = id;
  std::replace(s.begin(), s.end(), '-', ' ');
  std::string out, word;
  auto flush = [&] {
    if (word.empty()) return;
    const bool has_cased = std::any_of(word.begin(), word.end(), alpha);
    const bool all_lower = has_cased && std::none_of(word.begin(), word.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
    size_t i = word[0] == 'v' ? 1 : 0;
    bool version = i == 1 && digits(word, i);
    while (version && i < word.size()) {
      version = word[i] == '.';
      ++i;
      version = version && digits(word, i);
    }
    if (all_lower && !version && !digit(word[0])) {  // str.title: a letter after a non-letter is upper case
      for (size_t j = 0; j < word.size(); ++j)
        word[j] = j > 0 && alpha(word[j - 1]) ? lower(word[j]) : upper(word[j]);
    }
    out += (out.empty() ? "" : " ") + word;
    word.clear();
  };
  for (char c : s) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') flush();
    else word += c;
  }
  flush();
  return out;
}

namespace {

// utility.py model_weight_count_rounded_notation.
std::string rounded_notation(double n, int min_digits) {
  double scaled;
  char suffix;
  if (n >= 1e12) scaled = n * 1e-12, suffix = 'T';
  else if (n >= 1e9) scaled = n * 1e-9, suffix = 'B';
  else if (n >= 1e6) scaled = n * 1e-6, suffix = 'M';
  else scaled = n * 1e-3, suffix = 'K';
  // len(str(round(scaled)).lstrip('0')): the digits of the rounded value (ties to even, as Python).
  const double rounded = std::nearbyint(scaled);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.0f", rounded);
  std::string_view d(buf);
  while (!d.empty() && d.front() == '0') d.remove_prefix(1);
  const int fix = std::max(min_digits - int(d.size()), 0);
  std::snprintf(buf, sizeof buf, "%.*f%c", fix, scaled, suffix);
  return buf;
}

}  // namespace

std::string gguf_size_label(int64_t total_params, int64_t shared_params, int64_t expert_params, int64_t expert_count) {
  if (expert_count > 0)
    return std::to_string(expert_count) + "x" +
           rounded_notation(double(std::llabs(shared_params) + std::llabs(expert_params)), 2);
  return rounded_notation(double(std::llabs(total_params)), 2);
}

}  // namespace sr
