// KLD statistics (eval/kld_stats.h) against a small example worked by hand, and llama.cpp's
// log-probability file (eval/logits_file.h): its 16-bit code, a write/read round trip and the
// reader's refusals of damaged files (an untrusted input: this binary runs under sanitizers).
#include "eval/kld_stats.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "common/error.h"
#include "eval/logits_file.h"
#include "testutil.h"

namespace sr {
namespace {

double quantile(const std::vector<Quantile>& q, const std::string& name) {
  for (const Quantile& e : q)
    if (e.name == name) return e.value;
  ADD_FAILURE() << "no quantile " << name;
  return NAN;
}

// Twelve positions: KLD_i = 0.1 i; base p(correct) = 0.5 and model p = 0.5 + d_i with
// d_i = 0.02 (i - 5.5); positions 0, 1, 2 disagree on the top token.
//   mean KLD 0.55; population variance 0.01 * (12² - 1)/12 = 0.119167 -> stderr sqrt(v/11) = 0.104083
//   sorted percentiles (x = f * 11, linear): 90 % x = 9.9 -> 0.99; 99.9 % x = 10.989 -> 1.0989;
//     10 % x = 1.1 -> 0.11; 1 % x = 0.11 -> 0.011; 0.1 % -> 0.0011; median (0.5 + 0.6)/2 = 0.55
//   Δp: mean 0; mean Δp² = 0.0004 * 143/12 = 0.00476667 -> RMS 0.0690411, stderr of the mean
//     sqrt(0.00476667/11) = 0.0208167; mean Δp⁴ = 1.6e-7 * 3038.75/12 = 4.05167e-5, so
//     var(Δp²) = 4.05167e-5 - 0.00476667² = 1.77956e-5 -> stderr 0.00127192 -> RMS stderr
//     0.5 / 0.0690411 * 0.00127192 = 0.0092113; 75 % x = 8.25 -> 0.02 * 2.75 = 0.055
//   same top 9/12 = 0.75 ± sqrt(0.75 * 0.25 / 11) = 0.130558; PPL(base) = 2.
TEST(KldStats, HandWorkedExample) {
  KldAccumulator acc;
  for (int i = 0; i < 12; ++i)
    acc.add(0.1 * i, -std::log(0.5f + 0.02f * (i - 5.5f)), -std::log(0.5f), i >= 3);
  const KldStats s = acc.finish();
  EXPECT_EQ(s.count, 12);
  EXPECT_NEAR(s.kld, 0.55, 1e-9);
  EXPECT_NEAR(s.kld_stderr, 0.104083, 1e-6);
  EXPECT_NEAR(quantile(s.kld_quantiles, "max"), 1.1, 1e-6);
  EXPECT_NEAR(quantile(s.kld_quantiles, "99.9%"), 1.0989, 1e-6);
  EXPECT_NEAR(quantile(s.kld_quantiles, "90.0%"), 0.99, 1e-6);
  EXPECT_NEAR(quantile(s.kld_quantiles, "median"), 0.55, 1e-6);
  EXPECT_NEAR(quantile(s.kld_quantiles, "10.0%"), 0.11, 1e-6);
  EXPECT_NEAR(quantile(s.kld_quantiles, "1.0%"), 0.011, 1e-6);
  EXPECT_NEAR(quantile(s.kld_quantiles, "0.1%"), 0.0011, 1e-6);
  EXPECT_NEAR(quantile(s.kld_quantiles, "min"), 0.0, 1e-9);
  ASSERT_EQ(s.kld_quantiles.size(), 11u);  // max, 99.9, 99, 95, 90, median, 10, 5, 1, 0.1, min
  EXPECT_NEAR(s.dp, 0.0, 1e-6);
  EXPECT_NEAR(s.dp_stderr, 0.0208167, 1e-6);
  EXPECT_NEAR(s.dp_rms, 0.0690411, 1e-6);
  EXPECT_NEAR(s.dp_rms_stderr, 0.0092113, 1e-6);
  EXPECT_NEAR(quantile(s.dp_quantiles, "75.0%"), 0.055, 1e-6);
  EXPECT_NEAR(quantile(s.dp_quantiles, "max"), 0.11, 1e-6);
  EXPECT_NEAR(quantile(s.dp_quantiles, "min"), -0.11, 1e-6);
  ASSERT_EQ(s.dp_quantiles.size(), 13u);
  EXPECT_NEAR(s.same_top, 0.75, 1e-12);
  EXPECT_NEAR(s.same_top_stderr, 0.130558, 1e-6);
  EXPECT_NEAR(s.ppl_base, 2.0, 1e-6);
  EXPECT_LT(s.ppl_base_stderr, 1e-3);  // a constant base NLL: only float rounding (llama.cpp squares in float)
}

TEST(KldStats, LlamaCppConventionsForFewValues) {
  // llama.cpp reports no standard error from 10 values or fewer.
  EXPECT_EQ(llamacpp_mean_and_stderr(10, 30, 10).second, 0.0);
  EXPECT_GT(llamacpp_mean_and_stderr(11, 30, 11).second, 0.0);
  EXPECT_NEAR(llamacpp_median({1, 2, 7}), 2.0, 0);
  EXPECT_NEAR(llamacpp_median({1, 2, 7, 9}), 4.5, 0);
  EXPECT_EQ(llamacpp_percentile({1, 2, 7}, 0.f), 1.0);
  EXPECT_EQ(llamacpp_percentile({1, 2, 7}, 1.f), 7.0);
  EXPECT_NEAR(llamacpp_percentile({1, 2, 7}, 0.75f), 4.5, 1e-6);  // x = 1.5
}

// llama.cpp's code for logits {0, -1, -20}: lo = max(-20, 0 - 16) = -16, scale = 16/65535,
// codes {65535, round(15/scale) = 61439, 0}, min_log_prob = -16 - log(1 + e^-1 + e^-20).
TEST(LogitsFile, EncodesAsLlamaCpp) {
  auto logits = at::tensor({0.f, -1.f, -20.f}).view({1, 1, 3});
  auto rec = encode_log_prob_records(logits);
  ASSERT_EQ(rec.sizes(), at::IntArrayRef({1, 1, 8}));  // 4 + 3 + 1 padding word
  float head[2];
  std::memcpy(head, rec.data_ptr(), 8);
  const double lse = std::log(1 + std::exp(-1.0) + std::exp(-20.0));
  EXPECT_NEAR(head[0], 16.0 / 65535, 1e-9);
  EXPECT_NEAR(head[1], -16 - lse, 1e-5);
  auto code = rec.view({-1}).to(at::kInt).bitwise_and(0xFFFF);
  EXPECT_EQ(code[4].item<int>(), 65535);
  EXPECT_EQ(code[5].item<int>(), 61439);
  EXPECT_EQ(code[6].item<int>(), 0);
  EXPECT_EQ(code[7].item<int>(), 0);
  auto lp = decode_log_prob_records(rec, 3).view({-1});
  EXPECT_NEAR(lp[0].item<float>(), -lse, 1e-4);
  EXPECT_NEAR(lp[1].item<float>(), -1 - lse, 1e-3);  // within one code step (2.4e-4) and float rounding
  EXPECT_LT(lp[2].item<float>(), -16.f);              // not represented: left out of the KLD
}

TEST(LogitsFile, DecodesWithinHalfAStepOfTheLogProbs) {
  at::manual_seed(3);
  auto logits = at::randn({2, 5, 64}) * 3;
  auto lp = at::log_softmax(logits, -1);
  auto back = decode_log_prob_records(encode_log_prob_records(logits), 64);
  auto kept = lp > (std::get<0>(lp.max(-1, true)) - 15.9);
  EXPECT_LT(((back - lp).abs() * kept).max().item<float>(), 16.f / 65535 * 0.5f + 2e-5f);
}

LogitsFile small_file() {
  LogitsFile f;
  f.n_ctx = 8;
  f.n_vocab = 5;
  f.n_chunk = 2;
  for (int i = 0; i < 16; ++i) f.tokens.push_back(i % 5);
  at::manual_seed(1);
  f.records = encode_log_prob_records(at::randn({2, logits_scored_per_chunk(8), 5}));
  return f;
}

TEST(LogitsFile, WriteReadRoundTrip) {
  test::TempDir dir;
  const LogitsFile f = small_file();
  write_logits_file(dir / "a.kld", f);
  const int64_t words = logits_row_words(5);  // 10
  EXPECT_EQ(words, 10);
  EXPECT_EQ(int64_t(test::read_text(dir / "a.kld").size()), 20 + 4 * 16 + 2 * 2 * 3 * words);
  const LogitsFile g = read_logits_file(dir / "a.kld");
  EXPECT_EQ(g.n_ctx, 8);
  EXPECT_EQ(g.n_vocab, 5);
  EXPECT_EQ(g.n_chunk, 2);
  EXPECT_EQ(g.tokens, f.tokens);
  EXPECT_TRUE(at::equal(g.records, f.records));
}

// Writes `bytes` to dir/name and returns read_logits_file's message.
std::string read_error(const test::TempDir& dir, const std::string& name, const std::string& bytes) {
  std::ofstream(dir / name, std::ios::binary) << bytes;
  return test::error_of([&] { read_logits_file(dir / name); });
}

TEST(LogitsFile, RefusesDamagedFiles) {
  test::TempDir dir;
  write_logits_file(dir / "good.kld", small_file());
  const std::string good = test::read_text(dir / "good.kld");
  auto with_int = [&](size_t at, int32_t v) {
    std::string b = good;
    std::memcpy(&b[at], &v, 4);
    return b;
  };
  std::string e = read_error(dir, "short.kld", good.substr(0, 12));
  EXPECT_NE(e.find("short.kld"), std::string::npos) << e;
  EXPECT_NE(e.find("too short for the header"), std::string::npos) << e;
  e = read_error(dir, "magic.kld", "_logitz_" + good.substr(8));
  EXPECT_NE(e.find("_logits_"), std::string::npos) << e;
  e = read_error(dir, "trunc.kld", good.substr(0, good.size() - 2));
  EXPECT_NE(e.find("implies"), std::string::npos) << e;
  EXPECT_NE(e.find("n_ctx 8, n_vocab 5, n_chunk 2"), std::string::npos) << e;
  e = read_error(dir, "ctx.kld", with_int(8, 2));
  EXPECT_NE(e.find("n_ctx 2 is outside"), std::string::npos) << e;
  e = read_error(dir, "vocab.kld", with_int(12, -7));
  EXPECT_NE(e.find("n_vocab -7"), std::string::npos) << e;
  e = read_error(dir, "chunks.kld", with_int(16, 1 << 30));  // a huge count must not allocate
  EXPECT_NE(e.find("n_chunk"), std::string::npos) << e;
  e = read_error(dir, "bigchunks.kld", with_int(16, 1 << 20));
  EXPECT_NE(e.find("implies"), std::string::npos) << e;
  e = read_error(dir, "token.kld", with_int(20 + 4 * 3, 5));
  EXPECT_NE(e.find("token 3 is 5, outside the vocabulary"), std::string::npos) << e;
  const size_t second_record = 20 + 4 * 16 + 2 * 10;  // chunk 0, position 1
  const float nan = NAN;
  std::string b = good;
  std::memcpy(&b[second_record], &nan, 4);
  e = read_error(dir, "nan.kld", b);
  EXPECT_NE(e.find("chunk 0, scored position 1"), std::string::npos) << e;
  EXPECT_NE(read_error(dir, "missing/none.kld", "").find("cannot"), std::string::npos);
}

// Random damage (bytes overwritten, the file cut anywhere): a clean sr::Error or a file that
// reads, never a crash (this binary runs under ASan/UBSan in the sanitizer build).
TEST(LogitsFile, RandomDamageReadsOrThrows) {
  test::TempDir dir;
  write_logits_file(dir / "good.kld", small_file());
  const std::string good = test::read_text(dir / "good.kld");
  std::mt19937 rng(5);
  int refused = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string b = good;
    if (trial % 3 == 0) {
      b.resize(rng() % b.size());
    } else {
      const size_t span = trial % 2 ? 40 : b.size();  // the header and first tokens, or anywhere
      for (int k = 0, n = 1 + int(rng() % 4); k < n; ++k) b[rng() % span] = char(rng());
    }
    std::ofstream(dir / "d.kld", std::ios::binary | std::ios::trunc) << b;
    try {
      const LogitsFile f = read_logits_file(dir / "d.kld");
      EXPECT_EQ(int64_t(f.tokens.size()), int64_t(f.n_chunk) * f.n_ctx);
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 100);  // every cut file, most damaged headers
}

}  // namespace
}  // namespace sr
