#include "tokenizer/calibration.h"

#include <algorithm>
#include <cstdio>
#include <random>

#include "common/error.h"
#include "io/text.h"

namespace sr {
namespace {

bool is_jsonl(const std::string& p) {
  return p.size() >= 6 && (p.compare(p.size() - 6, 6, ".jsonl") == 0 || p.compare(p.size() - 5, 5, ".json") == 0);
}

// auto-round's filter: long enough, and not degenerate (last token repeated > seqlen/2 times).
bool keep_document(const std::vector<int32_t>& ids, int64_t seqlen) {
  if (int64_t(ids.size()) < seqlen) return false;
  const int32_t last = ids[size_t(seqlen - 1)];
  return std::count(ids.begin(), ids.begin() + seqlen, last) <= seqlen / 2;
}

std::vector<std::vector<int32_t>> document_samples(const Tokenizer& tok, const std::vector<std::string>& docs,
                                                   int64_t seqlen) {
  std::vector<std::vector<int32_t>> out;
  for (const std::string& d : docs) {
    std::vector<int32_t> ids = tok.encode_with_bos(d);
    if (keep_document(ids, seqlen)) out.emplace_back(ids.begin(), ids.begin() + seqlen);
  }
  return out;
}

std::vector<std::vector<int32_t>> window_samples(const Tokenizer& tok, const std::vector<std::string>& docs,
                                                 int64_t seqlen) {
  std::string all;
  for (const std::string& d : docs) all += (all.empty() ? "" : "\n\n") + d;
  const std::vector<int32_t> stream = tok.encode(all);
  const int64_t body = seqlen - (tok.add_bos() ? 1 : 0);
  std::vector<std::vector<int32_t>> out;
  for (int64_t at = 0; at + body <= int64_t(stream.size()); at += body) {
    std::vector<int32_t> s;
    if (tok.add_bos()) s.push_back(tok.bos_id());
    s.insert(s.end(), stream.begin() + at, stream.begin() + at + body);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

CalibData load_calibration(const Tokenizer& tok, const CalibOptions& opt) {
  SR_CHECK(opt.nsamples >= 1, "[calibration] nsamples must be >= 1, got ", opt.nsamples);
  SR_CHECK(opt.seqlen >= 2, "[calibration] seqlen must be at least 2, got ", opt.seqlen);
  const std::vector<std::string> docs = read_documents(opt.dataset);
  CalibData out;
  std::vector<std::vector<int32_t>> samples;
  if (is_jsonl(opt.dataset)) {
    samples = document_samples(tok, docs, opt.seqlen);
    out.mode = "documents";
  }
  if (int64_t(samples.size()) < opt.nsamples) {
    if (out.mode == "documents")
      std::fprintf(stderr, "calibration: only %zu documents of %s have %lld tokens; concatenating instead\n",
                   samples.size(), opt.dataset.c_str(), (long long)opt.seqlen);
    samples = window_samples(tok, docs, opt.seqlen);
    out.mode = "concatenated";
  }
  SR_CHECK(!samples.empty(), "[calibration] ", opt.dataset, " is too short for one sample of seqlen ", opt.seqlen, " tokens");
  out.available = int64_t(samples.size());
  std::shuffle(samples.begin(), samples.end(), std::mt19937_64(opt.seed));
  const int64_t n = std::min<int64_t>(opt.nsamples, int64_t(samples.size()));
  if (n < opt.nsamples)
    std::fprintf(stderr, "calibration: %s yields %lld samples of %lld tokens (asked for %lld)\n",
                 opt.dataset.c_str(), (long long)n, (long long)opt.seqlen, (long long)opt.nsamples);
  out.tokens = at::empty({n, opt.seqlen}, at::kLong);
  auto acc = out.tokens.accessor<int64_t, 2>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t t = 0; t < opt.seqlen; ++t) acc[i][t] = samples[size_t(i)][size_t(t)];
  out.mask = at::ones({n, opt.seqlen}, at::kBool);
  out.mask.select(1, opt.seqlen - 1).fill_(false);
  return out;
}

}  // namespace sr
