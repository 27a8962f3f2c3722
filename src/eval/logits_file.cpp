#include "eval/logits_file.h"

#include <cstring>
#include <fstream>

#include "common/atomic_file.h"
#include "common/error.h"

namespace sr {

namespace {

constexpr char kMagic[8] = {'_', 'l', 'o', 'g', 'i', 't', 's', '_'};
constexpr int64_t kHeaderBytes = 8 + 3 * 4;
// Generous bounds that keep every size below 2^63 and reject nonsense headers early.
constexpr int64_t kMaxCtx = int64_t(1) << 24, kMaxVocab = int64_t(1) << 24, kMaxChunks = int64_t(1) << 24;

void read_exact(std::ifstream& in, void* dst, int64_t bytes, const std::string& path, const char* what) {
  char* p = static_cast<char*>(dst);
  while (bytes > 0) {
    const int64_t n = std::min<int64_t>(bytes, int64_t(1) << 30);
    in.read(p, n);
    SR_CHECK(in.gcount() == n, "[logits] ", path, ": cannot read ", what);
    p += n;
    bytes -= n;
  }
}

void check_records(const LogitsFile& f, const std::string& path) {
  const int64_t S = logits_scored_per_chunk(f.n_ctx);
  auto head = f.records.narrow(2, 0, 4).contiguous().view(at::kFloat);  // [n_chunk, S, 2]: scale, min
  auto scale = head.select(2, 0), lo = head.select(2, 1);
  auto bad = (~at::isfinite(scale)) | (~at::isfinite(lo)) | (scale < 0);
  if (!bad.any().item<bool>()) return;
  const int64_t i = bad.reshape(-1).nonzero()[0].item<int64_t>();
  fail("[logits] ", path, ": chunk ", i / S, ", scored position ", i % S, ": scale ",
       scale.reshape(-1)[i].item<float>(), " / min_log_prob ", lo.reshape(-1)[i].item<float>(),
       " (expected finite values, scale >= 0)");
}

}  // namespace

int64_t logits_row_words(int64_t n_vocab) { return 2 * ((n_vocab + 1) / 2) + 4; }
int64_t logits_scored_per_chunk(int64_t n_ctx) { return n_ctx - 1 - n_ctx / 2; }

at::Tensor encode_log_prob_records(const at::Tensor& logits_in) {
  at::NoGradGuard no_grad;
  const at::Tensor l = logits_in.to(at::kFloat).contiguous();
  const int64_t V = l.size(-1);
  auto mx = std::get<0>(l.max(-1, true));
  auto lo = at::maximum(std::get<0>(l.min(-1, true)), mx - 16);
  // llama.cpp: a double sum of float exponentials, its log rounded to float
  auto lse = (l - mx).exp().to(at::kDouble).sum(-1, true).log().to(at::kFloat);
  auto min_log_prob = lo - mx - lse;
  auto scale = (mx - lo) / 65535.f;
  auto code = at::where(l > lo, at::round((1 / scale) * (l - lo)), at::zeros_like(l));
  code = at::where(scale > 0, code, at::zeros_like(code)).to(at::kInt).to(at::kShort);  // uint16 bits
  auto head = at::cat({scale, min_log_prob}, -1).contiguous().view(at::kShort);          // 2 floats, 4 words
  std::vector<at::Tensor> parts = {head, code};
  if (V % 2) {
    auto sizes = l.sizes().vec();
    sizes.back() = 1;
    parts.push_back(at::zeros(sizes, at::kShort));
  }
  return at::cat(parts, -1);
}

at::Tensor decode_log_prob_records(const at::Tensor& records, int64_t n_vocab) {
  SR_CHECK(records.size(-1) == logits_row_words(n_vocab), "[logits] records of ", records.size(-1),
           " words do not hold a vocabulary of ", n_vocab);
  auto head = records.narrow(-1, 0, 4).contiguous().view(at::kFloat);
  auto scale = head.narrow(-1, 0, 1), lo = head.narrow(-1, 1, 1);
  auto code = records.narrow(-1, 4, n_vocab).to(at::kInt).bitwise_and(0xFFFF).to(at::kFloat);
  return scale * code + lo;
}

LogitsFile read_logits_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  SR_CHECK(in, "[logits] ", path, ": cannot open the file");
  const int64_t size = int64_t(in.tellg());
  in.seekg(0);
  SR_CHECK(size >= kHeaderBytes, "[logits] ", path, ": ", size, " bytes, too short for the header (", kHeaderBytes,
           " bytes)");
  char magic[8];
  int32_t h[3];
  read_exact(in, magic, 8, path, "the magic");
  read_exact(in, h, sizeof h, path, "the header");
  SR_CHECK(std::memcmp(magic, kMagic, 8) == 0, "[logits] ", path,
           ": not a llama.cpp log-probability file (the magic is not \"_logits_\")");
  LogitsFile f;
  f.n_ctx = h[0];
  f.n_vocab = h[1];
  f.n_chunk = h[2];
  SR_CHECK(f.n_ctx >= 4 && f.n_ctx <= kMaxCtx, "[logits] ", path, ": n_ctx ", f.n_ctx, " is outside [4, ", kMaxCtx,
           "]");
  SR_CHECK(f.n_vocab >= 1 && f.n_vocab <= kMaxVocab, "[logits] ", path, ": n_vocab ", f.n_vocab, " is outside [1, ",
           kMaxVocab, "]");
  SR_CHECK(f.n_chunk >= 1 && f.n_chunk <= kMaxChunks, "[logits] ", path, ": n_chunk ", f.n_chunk, " is outside [1, ",
           kMaxChunks, "]");
  const int64_t n_tokens = int64_t(f.n_chunk) * f.n_ctx, S = logits_scored_per_chunk(f.n_ctx),
                words = logits_row_words(f.n_vocab);
  // Bounded above: < 2^24 * 2^24 * (2^24 + 4) * 2 words would overflow; compare in long double first.
  const long double want_ld = kHeaderBytes + 4.0L * n_tokens + 2.0L * f.n_chunk * S * words;
  SR_CHECK(want_ld == (long double)size, "[logits] ", path, ": ", size, " bytes, but its header (n_ctx ", f.n_ctx,
           ", n_vocab ", f.n_vocab, ", n_chunk ", f.n_chunk, ") implies ", (double)want_ld,
           " bytes (truncated, or not a log-probability file of llama-perplexity)");
  f.tokens.resize(size_t(n_tokens));
  read_exact(in, f.tokens.data(), 4 * n_tokens, path, "the tokens");
  for (int64_t i = 0; i < n_tokens; ++i)
    SR_CHECK(f.tokens[i] >= 0 && f.tokens[i] < f.n_vocab, "[logits] ", path, ": token ", i, " is ", f.tokens[i],
             ", outside the vocabulary of n_vocab ", f.n_vocab);
  f.records = at::empty({f.n_chunk, S, words}, at::kShort);
  read_exact(in, f.records.data_ptr(), 2 * f.records.numel(), path, "the log-probability records");
  check_records(f, path);
  return f;
}

void write_logits_file(const std::string& path, const LogitsFile& f) {
  const int64_t S = logits_scored_per_chunk(f.n_ctx);
  SR_CHECK(int64_t(f.tokens.size()) == int64_t(f.n_chunk) * f.n_ctx, "[logits] ", path, ": ", f.tokens.size(),
           " tokens for ", f.n_chunk, " chunks of ", f.n_ctx);
  SR_CHECK(f.records.scalar_type() == at::kShort && f.records.dim() == 3 && f.records.size(0) == f.n_chunk &&
               f.records.size(1) == S && f.records.size(2) == logits_row_words(f.n_vocab),
           "[logits] ", path, ": records of shape ", f.records.sizes(), " do not match n_chunk ", f.n_chunk,
           ", n_ctx ", f.n_ctx, ", n_vocab ", f.n_vocab);
  AtomicPath out(path);
  {
    std::ofstream os(out.temp(), std::ios::binary);
    SR_CHECK(os, "[logits] cannot write ", out.temp());
    const int32_t h[3] = {f.n_ctx, f.n_vocab, f.n_chunk};
    os.write(kMagic, 8);
    os.write(reinterpret_cast<const char*>(h), sizeof h);
    os.write(reinterpret_cast<const char*>(f.tokens.data()), std::streamsize(4 * f.tokens.size()));
    const at::Tensor r = f.records.contiguous();
    os.write(static_cast<const char*>(r.data_ptr()), std::streamsize(2 * r.numel()));
    os.flush();
    SR_CHECK(os, "[logits] cannot write ", out.temp(), " (disk full?)");
  }
  out.commit();
}

}  // namespace sr
