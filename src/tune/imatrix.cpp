#include "tune/imatrix.h"

#include <algorithm>
#include <vector>

#include "common/error.h"
#include "model/gguf_names.h"

namespace sr {
namespace {

const char kHead[] = "output.weight";

// The linears (indices in the block) stored under each GGUF stem, in expert order.
std::map<std::string, std::vector<int>> linears_by_stem(const BlockDesc& d) {
  std::map<std::string, std::vector<int>> out;
  for (int i = 0; i < int(d.linears.size()); ++i) out[d.linears[size_t(i)].gguf].push_back(i);
  for (auto& [stem, v] : out)
    std::sort(v.begin(), v.end(), [&](int a, int b) { return d.linears[size_t(a)].expert < d.linears[size_t(b)].expert; });
  return out;
}

at::Tensor to_tensor(const float* p, int64_t n) { return at::from_blob(const_cast<float*>(p), {n}, at::kFloat).clone(); }

// Matrix m of `e` (m < the matrices the model has for it): Σx² and tokens. A single count
// stands for every matrix (legacy files; llama-imatrix broadcasts it the same way).
LayerImportance matrix_of(const ImatrixEntry& e, bool legacy, int64_t m, int64_t cols) {
  const double count = e.counts.size() == 1 ? e.counts[0] : e.counts[size_t(m)];
  if (!legacy && count <= 0) return {at::ones({cols}, at::kFloat), 1};  // llama-quantize: 1s
  return {to_tensor(e.sums.data() + m * cols, cols), int64_t(count)};
}

}  // namespace

at::Tensor importance_mean(const LayerImportance& l) {
  return l.tokens > 0 ? l.sum_sq / double(l.tokens) : l.sum_sq;
}

Importances importances_from_file(const ImatrixFile& f, const std::string& path, const ModelConfig& c,
                                  const BlockDescs& blocks) {
  std::vector<std::map<std::string, std::vector<int>>> kind_stems;
  for (const BlockDesc& d : blocks.kinds) kind_stems.push_back(linears_by_stem(d));
  Importances out;
  for (const auto& [name, e] : f.entries) {
    const auto n_vals = int64_t(e.sums.size());
    if (name == kHead) {
      SR_CHECK(!c.tie_embeddings, "[imatrix] ", path, ": entry ", name, " is not a linear of the model (its output "
               "shares the embedding matrix)");
      SR_CHECK(n_vals == c.hidden && e.counts.size() == 1, "[imatrix] ", path, ": entry ", name, " has ", n_vals,
               " values in ", e.counts.size(), " matrices; the model's output layer has ", c.hidden, " inputs");
      out["lm_head"] = matrix_of(e, f.legacy, 0, c.hidden);
      continue;
    }
    const int b = gguf_layer_of(name);
    const bool in_range = b >= 0 && b < c.n_layers && b < blocks.size();
    const BlockDesc& d = in_range ? blocks[b] : blocks.widest();
    const auto& stems = kind_stems[in_range ? size_t(blocks.kind_of[size_t(b)]) : 0];
    const std::string prefix = "blk." + std::to_string(b) + ".", suffix = ".weight";
    const bool shaped = in_range && name.rfind(prefix, 0) == 0 && name.size() > prefix.size() + suffix.size() &&
                        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
    const auto it = shaped ? stems.find(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()))
                           : stems.end();
    SR_CHECK(it != stems.end(), "[imatrix] ", path, ": entry ", name, " is not a linear of the model",
             " (", c.n_layers, " blocks of ", d.linears.size(), " linears, llama.cpp's names blk.<i>.<stem>.weight)");
    const std::vector<int>& ls = it->second;
    const int64_t cols = d.linears[size_t(ls[0])].in, n_mat = int64_t(ls.size());
    SR_CHECK(n_vals == cols * n_mat && (e.counts.size() == 1 || int64_t(e.counts.size()) == n_mat), "[imatrix] ",
             path, ": entry ", name, " has ", n_vals, " values in ", e.counts.size(), " matrices; the model's ",
             n_mat > 1 ? std::to_string(n_mat) + " experts have " : std::string("linear has "), cols, " inputs",
             n_mat > 1 ? " each" : "", " (an imatrix of another model?)");
    for (int64_t m = 0; m < n_mat; ++m)
      out[block_prefix(b) + d.linears[size_t(ls[size_t(m)])].module] = matrix_of(e, f.legacy, m, cols);
  }
  return out;
}

ImatrixFile imatrix_file_of(const Importances& im, const ModelConfig& c, const BlockDescs& blocks) {
  ImatrixFile f;
  auto append = [&](const std::string& name, int64_t m, int64_t n_mat, const LayerImportance* l, int64_t cols) {
    ImatrixEntry& e = f.entries[name];
    if (e.counts.empty()) {
      e.sums.assign(size_t(cols * n_mat), 0.0f);
      e.counts.assign(size_t(n_mat), 0.0);
    }
    if (!l) return;
    const at::Tensor s = l->sum_sq.to(at::kFloat).contiguous();
    SR_CHECK(s.numel() == cols, "[imatrix] layer of ", name, " has ", s.numel(), " sums for ", cols, " inputs");
    std::copy(s.data_ptr<float>(), s.data_ptr<float>() + cols, e.sums.begin() + m * cols);
    e.counts[size_t(m)] = double(l->tokens);
  };
  for (int64_t b = 0; b < c.n_layers; ++b) {
    const BlockDesc& d = blocks[b];
    for (const auto& [stem, ls] : linears_by_stem(d)) {
      bool any = false;
      for (int i : ls) any = any || im.count(block_prefix(b) + d.linears[size_t(i)].module);
      if (!any) continue;
      const std::string name = "blk." + std::to_string(b) + "." + stem + ".weight";
      for (size_t m = 0; m < ls.size(); ++m) {
        const auto it = im.find(block_prefix(b) + d.linears[size_t(ls[m])].module);
        append(name, int64_t(m), int64_t(ls.size()), it == im.end() ? nullptr : &it->second, d.linears[size_t(ls[m])].in);
      }
    }
  }
  if (auto it = im.find("lm_head"); it != im.end()) append(kHead, 0, 1, &it->second, c.hidden);
  return f;
}

}  // namespace sr
