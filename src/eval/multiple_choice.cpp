#include "eval/multiple_choice.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>
#include <numeric>

#include "common/error.h"
#include "common/input_file.h"
#include "common/json_parse.h"
#include "common/limits.h"
#include "common/progress.h"
#include "common/sysinfo.h"
#include "eval/layerwise.h"
#include "io/text.h"

namespace sr {
namespace {

// One (item, choice) sequence: the tokens fed and scored, and where the continuation starts.
struct Row {
  int64_t item = 0, choice = 0;
  std::vector<int32_t> seq;  // context + continuation, left-truncated to the model's context + 1
  int64_t cont = 0;          // the last `cont` tokens of seq are the continuation
};

template <typename T>
T field(const nlohmann::json& j, const char* name, const char* alt, const std::string& where) {
  const char* key = j.contains(name) ? name : (alt && j.contains(alt) ? alt : nullptr);
  SR_CHECK(key, "[eval] ", where, ": missing \"", name, "\"");
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("[eval] ", where, ": \"", key, "\" has the wrong type");
  }
}

std::vector<Row> make_rows(const Tokenizer& tok, const std::vector<ChoiceItem>& items, int64_t max_tokens,
                           int64_t& truncated) {
  std::vector<Row> rows;
  truncated = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const std::vector<int32_t> ctx = tok.encode_with_bos(items[i].context);
    bool cut = false;
    for (size_t c = 0; c < items[i].choices.size(); ++c) {
      Row r{int64_t(i), int64_t(c), tok.encode_with_bos(items[i].context + " " + items[i].choices[c]), 0};
      r.cont = int64_t(r.seq.size()) - int64_t(ctx.size());
      SR_CHECK(r.cont > 0, "[eval] item ", i, " choice ", c, " adds no token to its context");
      if (int64_t(r.seq.size()) > max_tokens) {
        r.seq.erase(r.seq.begin(), r.seq.end() - max_tokens);
        r.cont = std::min(r.cont, max_tokens - 1);
        cut = true;
      }
      rows.push_back(std::move(r));
    }
    truncated += cut;
  }
  return rows;
}

// Log-likelihood of each row's continuation; rows are run in buckets of similar length.
std::vector<double> row_logliks(const Model& model, const std::vector<Row>& rows, const ChoiceOptions& opt) {
  std::vector<size_t> order(rows.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rows[a].seq.size() < rows[b].seq.size(); });
  std::vector<double> out(rows.size(), 0.0);
  const int64_t n_buckets = (int64_t(rows.size()) + opt.bucket_rows - 1) / opt.bucket_rows;
  Progress progress("multiple choice", int(n_buckets), opt.progress);
  for (int64_t b0 = 0; b0 < int64_t(rows.size()); b0 += opt.bucket_rows) {
    const int64_t n = std::min<int64_t>(opt.bucket_rows, int64_t(rows.size()) - b0);
    const int64_t T = int64_t(rows[order[size_t(b0 + n - 1)]].seq.size()) - 1;  // longest input in the bucket
    at::Tensor inputs = at::zeros({n, T}, at::kLong);   // padding (id 0) sits after the scored positions
    at::Tensor targets = at::zeros({n, T}, at::kLong);
    at::Tensor scored = at::zeros({n, T}, at::kBool);
    for (int64_t r = 0; r < n; ++r) {
      const Row& row = rows[order[size_t(b0 + r)]];
      const int64_t len = int64_t(row.seq.size()) - 1;
      auto seq = at::from_blob(const_cast<int32_t*>(row.seq.data()), {len + 1}, at::kInt).to(at::kLong);
      inputs[r].narrow(0, 0, len).copy_(seq.narrow(0, 0, len));
      targets[r].narrow(0, 0, len).copy_(seq.narrow(0, 1, len));
      scored[r].narrow(0, len - row.cont, row.cont).fill_(true);
    }
    LayerwiseOptions lo;
    lo.progress = false;
    run_layerwise(model, inputs, lo, [&](int64_t row, const at::Tensor& logits) {
      const int64_t b = logits.size(0);
      const at::Tensor t = targets.narrow(0, row, b);
      const at::Tensor lp = logits.gather(-1, t.unsqueeze(-1)).squeeze(-1) - at::logsumexp(logits, -1);
      const at::Tensor sums = (lp * scored.narrow(0, row, b)).sum(1, false, at::kDouble);
      for (int64_t k = 0; k < b; ++k) out[order[size_t(b0 + row + k)]] = sums[k].item<double>();
    });
    progress.update(int(b0 / opt.bucket_rows + 1));
  }
  return out;
}

// Mean of a 0/1 outcome and its standard error (sample standard deviation / sqrt(n)).
std::pair<double, double> mean_and_stderr(const std::vector<int64_t>& predicted, const std::vector<ChoiceItem>& items) {
  const double n = double(items.size());
  double hits = 0;
  for (size_t i = 0; i < items.size(); ++i) hits += predicted[i] == items[i].label;
  const double p = hits / n;
  const double var = n > 1 ? p * (1 - p) * n / (n - 1) : 0.0;
  return {p, std::sqrt(var / n)};
}

}  // namespace

std::vector<ChoiceItem> read_choice_items(const std::string& path) {
  std::istringstream in(read_input_file(path, limits::kMaxTextFileBytes, "[eval]"));
  std::vector<ChoiceItem> items;
  std::string line;
  for (int64_t no = 1; std::getline(in, line); ++no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path + ":" + std::to_string(no);
    nlohmann::json j;
    try {
      j = parse_json_text(line, where);
    } catch (const Error& ex) {
      fail("[eval] ", where, ": not a JSON object: ", ex.what());
    }
    SR_CHECK(j.is_object(), "[eval] ", where, ": not a JSON object");
    ChoiceItem it;
    it.context = field<std::string>(j, "context", "query", where);
    it.choices = field<std::vector<std::string>>(j, "choices", nullptr, where);
    it.label = field<int64_t>(j, "label", "gold", where);
    SR_CHECK(it.choices.size() >= 2, "[eval] ", where, ": needs at least 2 choices, got ", it.choices.size());
    SR_CHECK(it.label >= 0 && it.label < int64_t(it.choices.size()), "[eval] ", where, ": label ", it.label,
             " outside [0, ", it.choices.size(), ")");
    check_utf8(it.context, where);
    for (const std::string& c : it.choices) check_utf8(c, where);
    items.push_back(std::move(it));
  }
  SR_CHECK(!items.empty(), "[eval] ", path, " has no items");
  return items;
}

ChoiceResult evaluate_choices(const Model& model, const std::vector<ChoiceItem>& items, const ChoiceOptions& opt) {
  SR_CHECK(!items.empty(), "[eval] no multiple-choice items");
  SR_CHECK(opt.bucket_rows >= 1, "[eval] bucket_rows must be positive");
  const double t0 = now_seconds();
  ChoiceResult r;
  r.items = int64_t(items.size());
  const std::vector<Row> rows = make_rows(model.tokenizer(), items, model.config().max_position + 1, r.truncated);
  const std::vector<double> ll = row_logliks(model, rows, opt);
  r.loglik.resize(items.size());
  for (size_t k = 0; k < rows.size(); ++k) r.loglik[size_t(rows[k].item)].push_back(ll[k]);
  for (size_t i = 0; i < items.size(); ++i) {
    int64_t best = 0, best_norm = 0;
    double norm_best = -INFINITY;
    for (size_t c = 0; c < items[i].choices.size(); ++c) {
      if (r.loglik[i][c] > r.loglik[i][size_t(best)]) best = int64_t(c);
      const double norm = r.loglik[i][c] / double(std::max<size_t>(items[i].choices[c].size(), 1));
      if (norm > norm_best) { norm_best = norm; best_norm = int64_t(c); }
    }
    r.predicted.push_back(best);
    r.predicted_norm.push_back(best_norm);
  }
  std::tie(r.acc, r.acc_stderr) = mean_and_stderr(r.predicted, items);
  std::tie(r.acc_norm, r.acc_norm_stderr) = mean_and_stderr(r.predicted_norm, items);
  r.seconds = now_seconds() - t0;
  return r;
}

double choice_agreement(const ChoiceResult& a, const ChoiceResult& b, bool normalized) {
  const auto& pa = normalized ? a.predicted_norm : a.predicted;
  const auto& pb = normalized ? b.predicted_norm : b.predicted;
  SR_CHECK(pa.size() == pb.size() && !pa.empty(), "[eval] choice agreement needs results on the same items");
  double same = 0;
  for (size_t i = 0; i < pa.size(); ++i) same += pa[i] == pb[i];
  return same / double(pa.size());
}

}  // namespace sr
