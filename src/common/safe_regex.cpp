#include "common/safe_regex.h"

#include <cctype>
#include <cstring>
#include <memory>

#include "common/error.h"
#include "common/limits.h"

namespace sr {
namespace {

using Set = std::bitset<256>;
constexpr int kMaxGroupDepth = 32;

struct Node {
  enum Kind { Chars, Concat, Alt, Star, Plus, Quest, Bol, Eol } kind;
  Set set;
  std::vector<std::unique_ptr<Node>> kids;
};
using NodeP = std::unique_ptr<Node>;

NodeP make(Node::Kind k) {
  auto n = std::make_unique<Node>();
  n->kind = k;
  return n;
}

Set class_of(char e) {  // \d \w \s and their negations
  Set s;
  for (int c = 0; c < 256; ++c) {
    const bool digit = c >= '0' && c <= '9';
    const bool word = digit || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool space = c == ' ' || (c >= '\t' && c <= '\r');
    switch (std::tolower(static_cast<unsigned char>(e))) {
      case 'd': s[size_t(c)] = digit; break;
      case 'w': s[size_t(c)] = word; break;
      default: s[size_t(c)] = space; break;
    }
  }
  return std::isupper(static_cast<unsigned char>(e)) ? ~s : s;
}

class Parser {
 public:
  Parser(const std::string& p, const std::string& source) : p_(p), source_(source) {}

  NodeP parse() {
    NodeP n = alt(0);
    if (i_ < p_.size()) bad(p_[i_] == ')' ? "unbalanced ')'" : "unexpected character");
    return n;
  }

 private:
  [[noreturn]] void bad(const std::string& why) const {
    fail(source_, ": key '", p_, "' is not a supported pattern: ", why, " at offset ", i_,
         " (accepted: literals, '.', escapes like \\. \\d \\w \\s, classes [...], groups (a|b), "
         "quantifiers * + ?, anchors ^ $; see docs/robustness.md)");
  }
  bool more() const { return i_ < p_.size(); }

  NodeP alt(int depth) {
    NodeP first = concat(depth);
    if (!more() || p_[i_] != '|') return first;
    NodeP n = make(Node::Alt);
    n->kids.push_back(std::move(first));
    while (more() && p_[i_] == '|') {
      ++i_;
      n->kids.push_back(concat(depth));
    }
    return n;
  }

  NodeP concat(int depth) {
    NodeP n = make(Node::Concat);
    while (more() && p_[i_] != '|' && p_[i_] != ')') n->kids.push_back(repeat(depth));
    return n;
  }

  NodeP repeat(int depth) {
    if (p_[i_] == '*' || p_[i_] == '+' || p_[i_] == '?') bad("quantifier with nothing to repeat");
    if (p_[i_] == '{') bad("counted repetition {m,n} is not supported");
    NodeP n = atom(depth);
    if (more() && (p_[i_] == '*' || p_[i_] == '+' || p_[i_] == '?')) {
      if (n->kind == Node::Bol || n->kind == Node::Eol) bad("quantifier on an anchor");
      const char q = p_[i_++];
      if (more() && p_[i_] == '?') ++i_;  // lazy form: same set of matching names
      NodeP r = make(q == '*' ? Node::Star : q == '+' ? Node::Plus : Node::Quest);
      r->kids.push_back(std::move(n));
      n = std::move(r);
      if (more() && p_[i_] == '{') bad("counted repetition {m,n} is not supported");
      // ECMAScript refuses "a?*", "a**", "a*+" (nothing to repeat); so do we.
      if (more() && (p_[i_] == '*' || p_[i_] == '+' || p_[i_] == '?')) bad("quantifier with nothing to repeat");
    }
    return n;
  }

  NodeP chars(const Set& s) {
    NodeP n = make(Node::Chars);
    n->set = s;
    return n;
  }

  // One escaped item after '\' (i_ at the character after the backslash).
  Set escape() {
    if (!more()) bad("trailing backslash");
    const char e = p_[i_++];
    Set s;
    if (std::strchr("dDwWsS", e)) return class_of(e);
    if (e == 't') s['\t'] = true;
    else if (e == 'n') s['\n'] = true;
    else if (e == 'r') s['\r'] = true;
    else if (std::isalnum(static_cast<unsigned char>(e))) {
      --i_;
      bad(std::string("escape \\") + e + " is not supported");
    } else {
      s[static_cast<unsigned char>(e)] = true;
    }
    return s;
  }

  Set char_class() {  // i_ just after '['
    Set s;
    const bool negate = more() && p_[i_] == '^';
    if (negate) ++i_;
    if (more() && p_[i_] == ']') bad("empty character class []");
    while (more() && p_[i_] != ']') {
      if (p_[i_] == '\\') {
        ++i_;
        const Set e = escape();
        if (!range_follows()) {
          s |= e;
          continue;
        }
        if (e.count() != 1) bad("a class escape cannot start a range");
        unsigned lo = 0;
        while (!e[lo]) ++lo;
        range(s, lo);
        continue;
      }
      const unsigned lo = static_cast<unsigned char>(p_[i_++]);
      if (range_follows()) range(s, lo);
      else s[lo] = true;
    }
    if (!more()) bad("unterminated character class '['");
    ++i_;  // ']'
    return negate ? ~s : s;
  }

  bool range_follows() const { return more() && p_[i_] == '-' && i_ + 1 < p_.size() && p_[i_ + 1] != ']'; }

  void range(Set& s, unsigned lo) {  // i_ at '-'
    ++i_;
    unsigned hi;
    if (p_[i_] == '\\') {
      ++i_;
      Set e = escape();
      if (e.count() != 1) bad("a class escape cannot end a range");
      hi = 0;
      while (!e[hi]) ++hi;
    } else {
      hi = static_cast<unsigned char>(p_[i_++]);
    }
    if (hi < lo) bad("range out of order in character class");
    for (unsigned c = lo; c <= hi; ++c) s[c] = true;
  }

  NodeP atom(int depth) {
    const char c = p_[i_++];
    switch (c) {
      case '(': {
        if (depth + 1 > kMaxGroupDepth) bad("groups nested deeper than 32");
        if (more() && p_[i_] == '?') {
          if (i_ + 1 < p_.size() && p_[i_ + 1] == ':') i_ += 2;
          else bad("look-around and named groups (?...) are not supported");
        }
        NodeP n = alt(depth + 1);
        if (!more() || p_[i_] != ')') bad("unbalanced '('");
        ++i_;
        return n;
      }
      case '[': return chars(char_class());
      case '.': return chars(Set().set().reset('\n').reset('\r'));
      case '^': return make(Node::Bol);
      case '$': return make(Node::Eol);
      case '\\': {
        if (more() && (p_[i_] == 'b' || p_[i_] == 'B')) bad("word boundaries \\b \\B are not supported");
        if (more() && p_[i_] >= '0' && p_[i_] <= '9') bad("back-references are not supported");
        return chars(escape());
      }
      case ']': case '}': --i_; bad(std::string("unbalanced '") + c + "'");
      default: return chars(Set().set(static_cast<unsigned char>(c)));
    }
  }

  const std::string& p_;
  const std::string& source_;
  size_t i_ = 0;
};

// Emits Thompson NFA code for a node (Russ Cox, "Regular Expression Matching: the VM approach").
class Compiler {
 public:
  Compiler(std::vector<SafeRegex::Inst>& prog, std::vector<Set>& sets) : prog_(prog), sets_(sets) {}

  void emit(const Node& n) {
    using I = SafeRegex::Inst;
    switch (n.kind) {
      case Node::Chars:
        sets_.push_back(n.set);
        prog_.push_back({I::Set, int(sets_.size() - 1), 0});
        break;
      case Node::Bol: prog_.push_back({I::Bol, 0, 0}); break;
      case Node::Eol: prog_.push_back({I::Eol, 0, 0}); break;
      case Node::Concat:
        for (const auto& k : n.kids) emit(*k);
        break;
      case Node::Alt: {
        std::vector<size_t> jumps;
        for (size_t k = 0; k + 1 < n.kids.size(); ++k) {
          const size_t split = add({I::Split, 0, 0});
          prog_[split].x = int(prog_.size());
          emit(*n.kids[k]);
          jumps.push_back(add({I::Jmp, 0, 0}));
          prog_[split].y = int(prog_.size());
        }
        emit(*n.kids.back());
        for (size_t j : jumps) prog_[j].x = int(prog_.size());
        break;
      }
      case Node::Star:
      case Node::Quest: {  // Split to the body or past it; a star's body jumps back to the Split
        const size_t split = add({I::Split, 0, 0});
        prog_[split].x = int(prog_.size());
        emit(*n.kids[0]);
        if (n.kind == Node::Star) add({I::Jmp, int(split), 0});
        prog_[split].y = int(prog_.size());
        break;
      }
      case Node::Plus: {
        const int start = int(prog_.size());
        emit(*n.kids[0]);
        add({I::Split, start, int(prog_.size()) + 1});
        break;
      }
    }
  }

 private:
  size_t add(SafeRegex::Inst i) {
    prog_.push_back(i);
    return prog_.size() - 1;
  }
  std::vector<SafeRegex::Inst>& prog_;
  std::vector<Set>& sets_;
};

}  // namespace

SafeRegex::SafeRegex(const std::string& pattern, const std::string& source) : pattern_(pattern) {
  SR_CHECK(pattern.size() <= limits::kMaxRegexKeyBytes, source, ": key of ", pattern.size(),
           " bytes is longer than the limit of ", limits::kMaxRegexKeyBytes, " bytes for a layer pattern");
  NodeP root = Parser(pattern_, source).parse();
  Compiler(prog_, sets_).emit(*root);
  prog_.push_back({Inst::Match, 0, 0});
}

bool SafeRegex::search(std::string_view s) const {
  if (prog_.empty()) return true;
  const size_t n = s.size();
  std::vector<size_t> stamp(prog_.size(), size_t(-1));
  std::vector<int> clist, nlist, stack;
  // Adds pc and everything reachable from it without consuming a character, at
  // position pos, to `list`. Returns true when Match is reachable.
  auto add = [&](std::vector<int>& list, int pc0, size_t pos) {
    stack.assign(1, pc0);
    while (!stack.empty()) {
      const int pc = stack.back();
      stack.pop_back();
      if (stamp[size_t(pc)] == pos) continue;
      stamp[size_t(pc)] = pos;
      const Inst& in = prog_[size_t(pc)];
      switch (in.op) {
        case Inst::Match: return true;
        case Inst::Jmp: stack.push_back(in.x); break;
        case Inst::Split: stack.push_back(in.y); stack.push_back(in.x); break;
        case Inst::Bol: if (pos == 0) stack.push_back(pc + 1); break;
        case Inst::Eol: if (pos == n) stack.push_back(pc + 1); break;
        case Inst::Set: list.push_back(pc); break;
      }
    }
    return false;
  };
  for (size_t pos = 0;; ++pos) {
    if (add(clist, 0, pos)) return true;  // search: a match may start at any position
    if (pos == n) return false;
    nlist.clear();
    const unsigned char c = static_cast<unsigned char>(s[pos]);
    for (int pc : clist)
      if (sets_[size_t(prog_[size_t(pc)].x)][c] && add(nlist, pc + 1, pos + 1)) return true;
    std::swap(clist, nlist);
  }
}

}  // namespace sr
