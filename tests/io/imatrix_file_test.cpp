// llama.cpp's imatrix files (io/imatrix_file.h): both formats written and read back, the
// legacy conversion as llama-imatrix does it, the GGUF layout llama.cpp expects, every
// damaged legacy file refused with an sr::Error naming it, and a mutation fuzzer over both
// formats (a damaged file loads or throws sr::Error, nothing else).
#include "io/imatrix_file.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

#include "common/error.h"
#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "testutil.h"

namespace sr {
namespace {

// Two dense entries and a stacked one of 4 matrices (one without tokens).
ImatrixFile sample() {
  ImatrixFile f;
  f.entries["blk.0.attn_q.weight"] = {{1.5f, 2.0f, 0.25f, 8.0f}, {12}};
  f.entries["blk.0.ffn_down.weight"] = {{3.0f, 0.0f, 7.5f, 1.0f, 2.0f, 9.0f}, {5}};
  f.entries["blk.1.ffn_up_exps.weight"] = {{1, 2, 0, 0, 5, 6, 7, 8}, {4, 0, 2, 9}};
  f.datasets = {"calib.txt"};
  f.chunk_count = 3;
  f.chunk_size = 4;
  return f;
}

std::string bytes_of(const std::string& path) { return test::read_text(path); }

void write_bytes(const std::string& path, const std::string& b) { std::ofstream(path, std::ios::binary) << b; }

template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

TEST(ImatrixFile, GgufRoundTripAndLayout) {
  test::TempDir dir;
  const ImatrixFile f = sample();
  write_imatrix_file(dir / "m.gguf", f, false);
  const ImatrixFile g = read_imatrix_file(dir / "m.gguf");
  EXPECT_FALSE(g.legacy);
  ASSERT_EQ(g.entries.size(), f.entries.size());
  for (const auto& [name, e] : f.entries) {
    EXPECT_EQ(g.entries.at(name).sums, e.sums) << name;
    EXPECT_EQ(g.entries.at(name).counts, e.counts) << name;
  }
  EXPECT_EQ(g.datasets, f.datasets);
  EXPECT_EQ(g.chunk_count, 3u);
  EXPECT_EQ(g.chunk_size, 4u);
  // llama.cpp's layout: in_sum2 ne [columns, matrices], counts ne [1, matrices], sorted by name.
  GgufReader r(dir / "m.gguf");
  EXPECT_EQ(r.get<std::string>("general.type"), "imatrix");
  EXPECT_EQ(r.get<uint32_t>("imatrix.chunk_size"), 4u);
  EXPECT_EQ(r.get_array<std::string>("imatrix.datasets"), std::vector<std::string>{"calib.txt"});
  ASSERT_EQ(r.tensors().size(), 6u);
  EXPECT_EQ(r.tensors()[0].name, "blk.0.attn_q.weight.in_sum2");
  EXPECT_EQ(r.tensors()[1].name, "blk.0.attn_q.weight.counts");
  EXPECT_EQ(r.tensor("blk.1.ffn_up_exps.weight.in_sum2").shape, (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(r.tensor("blk.1.ffn_up_exps.weight.counts").shape, (std::vector<int64_t>{4, 1}));
  EXPECT_EQ(r.tensor("blk.0.ffn_down.weight.in_sum2").shape, (std::vector<int64_t>{1, 6}));
}

TEST(ImatrixFile, LegacyIsLlamaImatrixsConversion) {
  test::TempDir dir;
  const ImatrixFile f = sample();
  write_imatrix_file(dir / "m.dat", f, true);
  const ImatrixFile g = read_imatrix_file(dir / "m.dat");
  EXPECT_TRUE(g.legacy);
  EXPECT_EQ(g.datasets, f.datasets);
  EXPECT_EQ(g.chunk_count, 3u);
  for (const auto& [name, e] : f.entries) {
    SCOPED_TRACE(name);
    const ImatrixEntry& l = g.entries.at(name);
    double most = 0;
    for (double c : e.counts) most = std::max(most, c);
    const auto ncall = float(std::ceil(most / 4));
    ASSERT_EQ(l.counts, std::vector<double>{double(ncall)});
    ASSERT_EQ(l.sums.size(), e.sums.size());
    const size_t cols = e.sums.size() / e.counts.size();
    const std::vector<float> gguf_mean = imatrix_mean(e, false), legacy_mean = imatrix_mean(l, true);
    for (size_t i = 0; i < l.sums.size(); ++i) {
      const auto count = float(e.counts[i / cols]);
      EXPECT_EQ(l.sums[i], count > 0 ? e.sums[i] / count * ncall : ncall) << i;
      EXPECT_NEAR(legacy_mean[i], gguf_mean[i], 1e-6 * gguf_mean[i]) << i;
    }
  }
  // The legacy file read back and written again is the same file.
  write_imatrix_file(dir / "again.dat", g, true);
  EXPECT_EQ(bytes_of(dir / "again.dat"), bytes_of(dir / "m.dat"));
}

TEST(ImatrixFile, MeanIsLlamaQuantizes) {
  const ImatrixEntry e{{2, 4, 6, 8, 10, 12}, {2, 0, 4}};
  EXPECT_EQ(imatrix_mean(e, false), (std::vector<float>{1, 2, 1, 1, 2.5f, 3}));
  EXPECT_EQ(imatrix_mean({{3, 6}, {3}}, true), (std::vector<float>{1, 2}));
  EXPECT_EQ(imatrix_mean({{3, 6}, {0}}, true), (std::vector<float>{3, 6}));  // ncall 0: as stored
}

// One valid legacy file: one entry "blk.0.attn_q.weight" of 4 values, ncall 2, then the trailer.
std::string legacy_bytes(int32_t n_entries = 1, int32_t name_len = 19, int32_t ncall = 2, int32_t nval = 4,
                         float v0 = 1.0f, bool trailer = true) {
  std::string s;
  put(s, n_entries);
  put(s, name_len);
  s += "blk.0.attn_q.weight";
  put(s, ncall);
  put(s, nval);
  for (float v : {v0, 2.0f, 3.0f, 4.0f}) put(s, v);
  if (trailer) {
    put(s, int32_t(7));
    put(s, int32_t(5));
    s += "c.txt";
  }
  return s;
}

TEST(ImatrixFile, DamagedLegacyFilesAreRefusedNamingTheFile) {
  test::TempDir dir;
  const std::string path = dir / "x.dat";
  write_bytes(path, legacy_bytes());
  const ImatrixFile ok = read_imatrix_file(path);
  EXPECT_EQ(ok.entries.at("blk.0.attn_q.weight").sums, (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(ok.chunk_count, 7u);
  EXPECT_EQ(ok.datasets, std::vector<std::string>{"c.txt"});
  write_bytes(path, legacy_bytes(1, 19, 2, 4, 1.0f, false));
  EXPECT_EQ(read_imatrix_file(path).entries.size(), 1u) << "files of before the trailer";
  struct Case {
    const char* what;
    std::string bytes;
    const char* says;
  };
  std::string twice = legacy_bytes(2, 19, 2, 4, 1.0f, false);
  twice += twice.substr(4);
  const std::vector<Case> cases = {
      {"empty", "", "empty"},
      {"no entries", legacy_bytes(0), "entry count 0"},
      {"huge entry count", legacy_bytes(1 << 30), "entry count"},
      {"name too long", legacy_bytes(1, 1 << 20), "name of"},
      {"negative ncall", legacy_bytes(1, 19, -1), "negative call count"},
      {"no values", legacy_bytes(1, 19, 2, 0), "0 values"},
      {"too many values", legacy_bytes(1, 19, 2, 1 << 28), "file ends inside"},
      {"NaN", legacy_bytes(1, 19, 2, 4, std::nanf("")), "value 0 is nan"},
      {"negative", legacy_bytes(1, 19, 2, 4, -1.0f), "value 0 is -1"},
      {"duplicate", twice, "appears twice"},
      {"trailing bytes", legacy_bytes() + "xy", "unexpected bytes"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    write_bytes(path, c.bytes);
    const std::string err = test::error_of([&] { read_imatrix_file(path); });
    EXPECT_NE(err.find(path), std::string::npos) << err;
    EXPECT_NE(err.find(c.says), std::string::npos) << err;
  }
  // Every truncation of the valid file (but the one that drops the whole trailer) is refused.
  const std::string full = legacy_bytes();
  for (size_t n = 0; n < full.size(); ++n) {
    write_bytes(path, full.substr(0, n));
    if (n == legacy_bytes(1, 19, 2, 4, 1.0f, false).size()) continue;
    EXPECT_NE(test::error_of([&] { read_imatrix_file(path); }), "") << n << " bytes";
  }
}

TEST(ImatrixFile, GgufFilesThatAreNotImatricesAreRefused) {
  test::TempDir dir;
  auto gguf = [&](const std::string& name, std::function<void(GgufWriter&)> body) {
    const std::string p = dir / name;
    GgufWriter w(p);
    body(w);
    w.finish();
    return test::error_of([&] { read_imatrix_file(p); });
  };
  const std::vector<float> four = {1, 2, 3, 4}, one = {3};
  EXPECT_NE(gguf("model.gguf", [&](GgufWriter& w) {
              w.set("general.type", GgufValue::string("model"));
              w.add_tensor("blk.0.attn_q.weight", GgmlType::F32, {1, 4});
              w.write_tensor("blk.0.attn_q.weight", four.data(), 16);
            }).find("not 'imatrix'"),
            std::string::npos);
  EXPECT_NE(gguf("weights.gguf", [&](GgufWriter& w) {
              w.add_tensor("blk.0.attn_q.weight", GgmlType::F32, {1, 4});
              w.write_tensor("blk.0.attn_q.weight", four.data(), 16);
            }).find("not an imatrix tensor"),
            std::string::npos);
  EXPECT_NE(gguf("alone.gguf", [&](GgufWriter& w) {
              w.add_tensor("a.weight.in_sum2", GgmlType::F32, {1, 4});
              w.write_tensor("a.weight.in_sum2", four.data(), 16);
            }).find("has no a.weight.counts"),
            std::string::npos);
  EXPECT_NE(gguf("counts.gguf", [&](GgufWriter& w) {
              w.add_tensor("a.weight.counts", GgmlType::F32, {1, 1});
              w.write_tensor("a.weight.counts", one.data(), 4);
            }).find("has no a.weight.in_sum2"),
            std::string::npos);
  EXPECT_NE(gguf("mats.gguf", [&](GgufWriter& w) {
              w.add_tensor("a.weight.in_sum2", GgmlType::F32, {2, 2});
              w.add_tensor("a.weight.counts", GgmlType::F32, {1, 1});
              w.write_tensor("a.weight.in_sum2", four.data(), 16);
              w.write_tensor("a.weight.counts", one.data(), 4);
            }).find("one count per matrix"),
            std::string::npos);
  const std::vector<float> half = {2.5f};
  EXPECT_NE(gguf("frac.gguf", [&](GgufWriter& w) {
              w.add_tensor("a.weight.in_sum2", GgmlType::F32, {1, 4});
              w.add_tensor("a.weight.counts", GgmlType::F32, {1, 1});
              w.write_tensor("a.weight.in_sum2", four.data(), 16);
              w.write_tensor("a.weight.counts", half.data(), 4);
            }).find("not a token count"),
            std::string::npos);
}

// Newer llama-imatrix files also hold <weight>.in_sum (Σx), which importance does not use.
TEST(ImatrixFile, GgufWithInSumLoads) {
  test::TempDir dir;
  const std::vector<float> sums = {4, 9}, sum = {-1, 2}, count = {2};
  {
    GgufWriter w(dir / "m.gguf");
    w.set("general.type", GgufValue::string("imatrix"));
    for (const char* t : {"a.weight.in_sum2", "a.weight.counts", "a.weight.in_sum"})
      w.add_tensor(t, GgmlType::F32, {1, std::string(t).find("counts") == std::string::npos ? 2 : 1});
    w.write_tensor("a.weight.in_sum2", sums.data(), 8);
    w.write_tensor("a.weight.counts", count.data(), 4);
    w.write_tensor("a.weight.in_sum", sum.data(), 8);
    w.finish();
  }
  const ImatrixFile f = read_imatrix_file(dir / "m.gguf");
  ASSERT_EQ(f.entries.size(), 1u);
  EXPECT_EQ(imatrix_mean(f.entries.at("a.weight"), false), (std::vector<float>{2, 4.5f}));
  EXPECT_EQ(f.chunk_size, 0u) << "absent keys read as 0";
}

// Random byte damage to valid files of both formats: each loads or throws sr::Error.
TEST(ImatrixFile, MutatedFilesLoadOrThrow) {
  test::TempDir dir;
  write_imatrix_file(dir / "m.gguf", sample(), false);
  write_imatrix_file(dir / "m.dat", sample(), true);
  std::mt19937 rng(7);
  for (const std::string base : {"m.gguf", "m.dat"}) {
    const std::string good = bytes_of(dir / base);
    for (int trial = 0; trial < 300; ++trial) {
      std::string b = good;
      const int flips = 1 + int(rng() % 4);
      for (int k = 0; k < flips; ++k) b[rng() % b.size()] = char(rng() % 256);
      if (trial % 10 == 0) b.resize(rng() % b.size());
      const std::string p = dir / ("fuzz-" + base);
      write_bytes(p, b);
      try {
        read_imatrix_file(p);
      } catch (const Error&) {
      }
    }
  }
}

}  // namespace
}  // namespace sr
