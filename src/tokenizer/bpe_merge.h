// The merge loop both BPE families share (SentencePiece BPE in tokenizer.cpp, byte-level BPE in
// byte_level_bpe.cpp): start from `s` cut into symbols of the given byte lengths, repeatedly
// merge the adjacent pair with the highest priority — ties: the leftmost pair — until no
// adjacent pair is a merge. SentencePiece's priority is the merged piece's score; byte-level
// BPE's is minus the merge's rank.
//
// priority(left, right) returns the pair's priority, or nothing when the pair does not merge;
// left and right are adjacent views into s. A priority queue holds the candidate pairs; a
// candidate whose symbols changed since it was queued is stale and skipped, so each merge
// costs O(log n) plus two lookups. Returns the final symbols as views into s, in order.
#pragma once
#include <cstddef>
#include <optional>
#include <queue>
#include <string_view>
#include <vector>

namespace sr {

template <typename Priority>
std::vector<std::string_view> bpe_merge(std::string_view s, const std::vector<size_t>& lengths,
                                        const Priority& priority) {
  struct Symbol {
    int prev, next;
    size_t begin, len;  // len == 0: merged away
  };
  struct Candidate {
    double priority;
    int left;
    size_t total_len;  // left.len + right.len when queued; stale if it changed
    bool operator<(const Candidate& o) const {  // the queue pops the largest: best priority, then leftmost
      return priority < o.priority || (priority == o.priority && left > o.left);
    }
  };
  std::vector<Symbol> sym;
  size_t at = 0;
  for (size_t l : lengths) {
    sym.push_back({int(sym.size()) - 1, int(sym.size()) + 1, at, l});
    at += l;
  }
  if (sym.empty()) return {};
  sym.back().next = -1;

  std::priority_queue<Candidate> queue;
  auto try_pair = [&](int left) {
    if (left < 0 || sym[size_t(left)].next < 0) return;
    const Symbol& a = sym[size_t(left)];
    const Symbol& b = sym[size_t(a.next)];
    const std::optional<double> p = priority(s.substr(a.begin, a.len), s.substr(b.begin, b.len));
    if (p) queue.push({*p, left, a.len + b.len});
  };
  for (int i = 0; i + 1 < int(sym.size()); ++i) try_pair(i);

  while (!queue.empty()) {
    const Candidate c = queue.top();
    queue.pop();
    Symbol& a = sym[size_t(c.left)];
    if (a.len == 0 || a.next < 0) continue;
    Symbol& b = sym[size_t(a.next)];
    if (a.len + b.len != c.total_len) continue;  // stale: a neighbour was merged meanwhile
    a.len += b.len;
    b.len = 0;
    a.next = b.next;
    if (a.next >= 0) sym[size_t(a.next)].prev = c.left;
    try_pair(a.prev);
    try_pair(c.left);
  }
  std::vector<std::string_view> out;
  for (int i = 0; i >= 0; i = sym[size_t(i)].next) out.push_back(s.substr(sym[size_t(i)].begin, sym[size_t(i)].len));
  return out;
}

}  // namespace sr
