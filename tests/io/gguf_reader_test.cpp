// Reading the llama.cpp-made GGUF files in ../shared/reference/llamacpp: every file
// and tensor is listed and decoded; layouts (shapes, offsets, padding) are checked
// against what llama.cpp writes; decoded quantized tensors are compared with the F32
// original; typed metadata getters are exercised on real keys.
#include "io/gguf_reader.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>

#include "common/error.h"
#include "testutil.h"

namespace sr {
namespace {

const std::string kDir4m = "reference/llamacpp/tinystories-llama-4m/";
const std::string kF32 = kDir4m + "tinystories-llama-4m-f32.gguf";
const std::string k260K = "reference/llamacpp/stories260K/stories260K-f32.gguf";

std::vector<std::string> reference_files() {
  std::vector<std::string> out;
  for (const std::string& dir : {kDir4m, std::string("reference/llamacpp/stories260K/")}) {
    if (!test::have_shared(dir)) continue;
    for (const auto& e : std::filesystem::directory_iterator(test::shared(dir))) {
      if (e.path().extension() == ".gguf") out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

uint64_t align32(uint64_t v) { return (v + 31) / 32 * 32; }

TEST(GgufReaderReference, EveryFileListsAndDecodesEveryTensor) {
  SR_REQUIRE_SHARED(kF32);
  const std::vector<std::string> files = reference_files();
  ASSERT_EQ(files.size(), 13u) << "12 tinystories-4m files + stories260K";
  for (const std::string& path : files) {
    GgufReader r(path);
    EXPECT_EQ(r.version(), 3u) << path;
    EXPECT_EQ(r.alignment(), 32u) << path;
    EXPECT_EQ(r.data_offset() % 32, 0u) << path;
    std::map<std::string, int> types;
    uint64_t end = 0;
    for (const GgufTensorInfo& t : r.tensors()) {
      ++types[ggml_type_name(t.type)];
      // llama.cpp writes tensors back to back, each padded to the alignment.
      EXPECT_EQ(t.offset, end) << path << " " << t.name;
      end = t.offset + align32(t.nbytes);
      const std::vector<float> y = r.decode_f32(t);
      ASSERT_EQ(int64_t(y.size()), t.n_elements());
      for (float v : y) ASSERT_TRUE(std::isfinite(v)) << path << " " << t.name;
      r.release(t);
    }
    EXPECT_EQ(r.file_size(), r.data_offset() + end) << path << ": header + aligned data";
    std::cout << "  " << std::filesystem::path(path).filename().string() << ": " << r.tensors().size()
              << " tensors, " << r.metadata().size() << " keys;";
    for (const auto& [type, count] : types) std::cout << " " << type << " x" << count;
    std::cout << "\n";
  }
}

TEST(GgufReaderReference, ShapesAreRowMajorOutermostFirst) {
  SR_REQUIRE_SHARED(kF32);
  GgufReader r(test::shared(kF32));
  ASSERT_EQ(r.tensors().size(), 39u);
  // ggml ne = [256, 1024] for the embedding: 1024 rows of 256.
  const GgufTensorInfo& emb = r.tensor("token_embd.weight");
  EXPECT_EQ(emb.shape, (std::vector<int64_t>{1024, 256}));
  EXPECT_EQ(emb.row_length(), 256);
  EXPECT_EQ(emb.n_rows(), 1024);
  EXPECT_EQ(emb.nbytes, 1024u * 256 * 4);
  EXPECT_EQ(r.tensor("blk.0.ffn_down.weight").shape, (std::vector<int64_t>{256, 768}));
  EXPECT_EQ(r.tensor("blk.0.attn_k.weight").shape, (std::vector<int64_t>{128, 256}));
  EXPECT_EQ(r.tensor("output_norm.weight").shape, (std::vector<int64_t>{256}));
  EXPECT_EQ(r.find_tensor("no.such.tensor"), nullptr);
  EXPECT_THROW(r.tensor("no.such.tensor"), Error);

  SR_REQUIRE_SHARED(k260K);
  GgufReader s(test::shared(k260K));
  EXPECT_EQ(s.tensors().size(), 48u);
  EXPECT_EQ(s.tensor("blk.0.ffn_down.weight").shape, (std::vector<int64_t>{64, 172}));
  EXPECT_EQ(s.tensor("blk.0.ffn_up.weight").shape, (std::vector<int64_t>{172, 64}));
}

TEST(GgufReaderReference, TypedMetadataGetters) {
  SR_REQUIRE_SHARED(kF32);
  GgufReader r(test::shared(kF32));
  EXPECT_EQ(r.get<std::string>("general.architecture"), "llama");
  EXPECT_EQ(r.get<uint32_t>("llama.block_count"), 4u);
  EXPECT_EQ(r.get<uint32_t>("llama.embedding_length"), 256u);
  EXPECT_FLOAT_EQ(r.get<float>("llama.rope.freq_base"), 10000.0f);
  EXPECT_TRUE(r.get<bool>("tokenizer.ggml.add_bos_token"));
  EXPECT_FALSE(r.get<bool>("tokenizer.ggml.add_eos_token"));
  const auto tokens = r.get_array<std::string>("tokenizer.ggml.tokens");
  ASSERT_EQ(tokens.size(), 1024u);
  EXPECT_EQ(tokens[1], "<s>");
  EXPECT_EQ(r.get_array<float>("tokenizer.ggml.scores").size(), 1024u);
  EXPECT_EQ(r.get_array<int32_t>("tokenizer.ggml.token_type")[0], 3);
  EXPECT_EQ(r.value("tokenizer.ggml.tokens").type_name(), "arr[str]");
  EXPECT_EQ(r.get_or<uint32_t>("general.alignment", 32u), 32u);
  EXPECT_EQ(r.metadata().front().first, "general.architecture");  // file order is kept

  const std::string path = test::shared(kF32);
  try {
    r.get<uint64_t>("llama.block_count");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("'llama.block_count'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("is u32, expected u64"), std::string::npos) << msg;
  }
  EXPECT_THROW(r.get<std::string>("llama.block_count"), Error);
  EXPECT_THROW(r.get<uint32_t>("tokenizer.ggml.tokens"), Error);   // an array, not a scalar
  EXPECT_THROW(r.get_array<int32_t>("tokenizer.ggml.scores"), Error);
  EXPECT_THROW(r.get<uint32_t>("no.such.key"), Error);
}

// Decoded quantized tensors against the F32 originals, relative RMS error per type.
TEST(GgufReaderReference, QuantizedFilesDecodeCloseToF32) {
  SR_REQUIRE_SHARED(kF32);
  GgufReader f32(test::shared(kF32));
  // Bounds ~1.5x the values measured on this model (printed below).
  const std::map<GgmlType, double> bound = {
      {GgmlType::Q8_0, 0.006}, {GgmlType::Q6_K, 0.02}, {GgmlType::Q5_K, 0.045}, {GgmlType::Q5_0, 0.05},
      {GgmlType::Q4_K, 0.09},  {GgmlType::Q4_1, 0.1},  {GgmlType::Q4_0, 0.11},  {GgmlType::Q3_K, 0.2},
      {GgmlType::Q2_K, 0.42},  {GgmlType::F32, 0.0}};
  std::map<GgmlType, std::pair<double, double>> err;  // type -> (sum sq err, sum sq)
  for (const char* mix : {"Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0", "Q3_K_M",
                          "Q3_K_S", "Q2_K"}) {
    GgufReader q(test::shared(kDir4m + "tinystories-llama-4m-" + std::string(mix) + ".gguf"));
    for (const GgufTensorInfo& t : q.tensors()) {
      const std::vector<float> x = f32.decode_f32(f32.tensor(t.name));
      const std::vector<float> y = q.decode_f32(t);
      ASSERT_EQ(x.size(), y.size());
      auto& [se, ss] = err[t.type];
      for (size_t i = 0; i < x.size(); ++i) {
        se += double(x[i] - y[i]) * (x[i] - y[i]);
        ss += double(x[i]) * x[i];
      }
    }
  }
  for (const auto& [type, e] : err) {
    const double rel = std::sqrt(e.first / e.second);
    std::cout << "  " << ggml_type_name(type) << ": relative rms error vs F32 " << rel << "\n";
    ASSERT_TRUE(bound.count(type)) << ggml_type_name(type);
    EXPECT_LE(rel, bound.at(type)) << ggml_type_name(type);
    if (type != GgmlType::F32) EXPECT_GT(rel, 0.0);
  }
}

}  // namespace
}  // namespace sr
