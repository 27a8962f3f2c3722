// The lattice i-quants (quant/formats/ggml_iquants_grid.h) against llama.cpp c392e50:
//   - the generated grids (ggml_iq_grids.cpp) have the checksums of ggml-common.h's tables
//     and lie byte for byte in ../shared's llama-quantize;
//   - llama-quantize's own files (--pure, with llama-imatrix's imatrix of the 4m model; IQ3
//     also without one) decode bit-exactly: llama-quantize requantizing them to F32 gives our
//     decoded floats;
//   - our encoders re-quantize the F32 tensors, row by row with the imatrix row, to the same
//     bytes, tensor by tensor;
//   - without an imatrix the types llama.cpp refuses refuse, with its explanation; IQ1_M, which
//     it allows on output / token_embd, encodes there as llama-quantize does.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include "common/error.h"
#include "io/gguf_reader.h"
#include "io/imatrix_file.h"
#include "quant/formats/ggml_iq_grids.h"
#include "quant/formats/ggml_types.h"
#include "testutil.h"

namespace sr {
namespace {

template <typename T, size_t N>
uint64_t fnv1a64(const T (&table)[N]) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const T& v : table) {
    for (size_t b = 0; b < sizeof(T); ++b) h = (h ^ uint8_t(uint64_t(v) >> (8 * b))) * 0x100000001b3ull;
  }
  return h;
}

template <typename T, size_t N>
std::string bytes_of(const T (&table)[N]) {
  std::string s;
  for (const T& v : table) {
    for (size_t b = 0; b < sizeof(T); ++b) s.push_back(char(uint8_t(uint64_t(v) >> (8 * b))));
  }
  return s;
}

// FNV-1a 64 of each table's little-endian bytes, computed by scripts/gen_iq_grids.py from
// llama.cpp c392e50's tables (ggml-common.h).
TEST(IqGrids, ChecksumsAreGgmlCommonsTables) {
  EXPECT_EQ(fnv1a64(iq_grids::iq2xxs_grid), 0xbb4ee025b5ac6e8eull);
  EXPECT_EQ(fnv1a64(iq_grids::iq2xs_grid), 0xc9b1ee61e79909bdull);
  EXPECT_EQ(fnv1a64(iq_grids::iq2s_grid), 0x123edd38a3b62b90ull);
  EXPECT_EQ(fnv1a64(iq_grids::iq3xxs_grid), 0xdfa5dc83d6a155d5ull);
  EXPECT_EQ(fnv1a64(iq_grids::iq3s_grid), 0xfa37020c25b44829ull);
  EXPECT_EQ(fnv1a64(iq_grids::iq1s_grid), 0x6703ed863501ae2eull);
}

TEST(IqGrids, TablesLieVerbatimInLlamaQuantize) {
  const std::string bin = "tools/llama.cpp/bin/llama-quantize";
  SR_REQUIRE_SHARED(bin);
  std::ifstream in(test::shared(bin), std::ios::binary);
  const std::string blob((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(blob.find(bytes_of(iq_grids::iq2xxs_grid)), std::string::npos);
  EXPECT_NE(blob.find(bytes_of(iq_grids::iq2xs_grid)), std::string::npos);
  EXPECT_NE(blob.find(bytes_of(iq_grids::iq2s_grid)), std::string::npos);
  EXPECT_NE(blob.find(bytes_of(iq_grids::iq3xxs_grid)), std::string::npos);
  EXPECT_NE(blob.find(bytes_of(iq_grids::iq3s_grid)), std::string::npos);
  EXPECT_NE(blob.find(bytes_of(iq_grids::iq1s_grid)), std::string::npos);
}

TEST(IqGrids, SignRuleIsGgmlsKsigns) {
  // ggml-common.h's ksigns_iq2xs begins 0, 129, 130, 3, 132, 5, 6, 135 and ends 126, 255.
  const uint8_t head[8] = {0, 129, 130, 3, 132, 5, 6, 135};
  for (uint32_t i = 0; i < 8; ++i) EXPECT_EQ(iq_grids::ksigns(i), head[i]) << i;
  EXPECT_EQ(iq_grids::ksigns(126), 126);
  EXPECT_EQ(iq_grids::ksigns(127), 255);
}

TEST(IqEncoders, TheTypesLlamaCppRefusesNeedAnImatrix) {
  const std::vector<float> x(512, 0.5f);
  std::vector<uint8_t> out(512);
  for (GgmlType t : {GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S, GgmlType::IQ1_S}) {
    const GgmlTypeTraits& tr = ggml_codec(t);
    EXPECT_TRUE(tr.requires_importance) << tr.name;
    try {
      tr.quantize_row_ref(x.data(), out.data(), 512);
      ADD_FAILURE() << tr.name << ": expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(tr.name), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("importance matrix"), std::string::npos) << e.what();
    }
    EXPECT_THROW(tr.quantize_row_weighted(x.data(), out.data(), 512, nullptr), Error) << tr.name;
  }
  // IQ1_M: llama.cpp refuses it only inside the blocks (the GGUF plan's check); its output /
  // token_embd get ggml's x^2 weights (LlamaIq1m below). A weighted entry still needs weights.
  for (GgmlType t : {GgmlType::IQ3_XXS, GgmlType::IQ3_S, GgmlType::IQ1_M}) {
    EXPECT_FALSE(ggml_codec(t).requires_importance);
    EXPECT_NO_THROW(ggml_codec(t).quantize_row_ref(x.data(), out.data(), 512));
  }
  EXPECT_THROW(ggml_codec(GgmlType::IQ1_M).quantize_row_weighted(x.data(), out.data(), 512, nullptr), Error);
}

// Non-finite input is the caller's to refuse (the GGUF writer checks the blocks); the encoders
// must not crash on it: they throw sr::Error or write blocks.
TEST(IqEncoders, NonFiniteInputDoesNotCrash) {
  for (float bad : {std::nanf(""), INFINITY}) {
    std::vector<float> x(512, 0.25f), w(512, 1.0f);
    x[3] = bad;
    x[300] = -bad;
    for (GgmlType t : {GgmlType::IQ3_XXS, GgmlType::IQ3_S, GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ2_S,
                       GgmlType::IQ1_S, GgmlType::IQ1_M}) {
      std::vector<uint8_t> out(ggml_row_bytes(t, 512));
      try {
        ggml_codec(t).quantize_row_weighted(x.data(), out.data(), 512, w.data());
      } catch (const Error&) {
      }
    }
  }
}

// ---- llama-quantize's files ---------------------------------------------------------------

const std::string kF32 = "reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-f32.gguf";
const std::string kBin = "tools/llama.cpp/bin/";

struct IqCase {
  std::string ftype;  // llama-quantize's type argument
  std::string type;   // the ggml type of the linears it writes with --pure
  bool slow;
};

// llama-imatrix's file for the 4m model, made once for this binary.
class LlamaIq : public ::testing::TestWithParam<IqCase> {
 protected:
  static void SetUpTestSuite() {
    if (!test::have_shared(kBin + "llama-imatrix") || !test::have_shared(kF32) ||
        !test::have_shared("data/calib_stories.txt"))
      return;
    dir_ = new test::TempDir();
    test::run_llama_imatrix_4m(dir_->path(), 20000, 4, *dir_ / "im.dat");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    SR_REQUIRE_SHARED(kBin + "llama-quantize");
    SR_REQUIRE_SHARED(kBin + "llama-imatrix");
    SR_REQUIRE_SHARED(kF32);
    SR_REQUIRE_SHARED("data/calib_stories.txt");
    ASSERT_TRUE(std::filesystem::exists(*dir_ / "im.dat"));
  }
  // llama-quantize --pure to `type` (embeddings and output kept at q8_0, which have no imatrix
  // entry), with the imatrix or without; and its requantization of that file to F32.
  static void llama_quantize(const std::string& type, bool imatrix, const std::string& out, const std::string& f32) {
    const std::string q = test::shared(kBin + "llama-quantize");
    auto r = test::run_command(q + " --pure --token-embedding-type q8_0 --output-tensor-type q8_0 " +
                               (imatrix ? "--imatrix " + (*dir_ / "im.dat") + " " : std::string()) +
                               test::shared(kF32) + " " + out + " " + type + " 2");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    r = test::run_command(q + " --allow-requantize --pure " + out + " " + f32 + " F32 2");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }
  static test::TempDir* dir_;
};
test::TempDir* LlamaIq::dir_ = nullptr;

void expect_decodes_and_encodes_like_llama(const std::string& theirs_path, const std::string& f32_path,
                                           const std::string& decoded_path, const ImatrixFile* im, GgmlType type) {
  GgufReader theirs(theirs_path), f32(f32_path), decoded(decoded_path);
  const GgmlTypeTraits& tr = ggml_codec(type);
  int compared = 0;
  double encode_s = 0;
  int64_t encoded = 0;
  for (const GgufTensorInfo& t : theirs.tensors()) {
    if (t.type != type) continue;
    SCOPED_TRACE(t.name);
    ++compared;
    const int64_t n = t.row_length(), rows = t.n_rows();
    // Decoding: llama.cpp's floats, bit for bit.
    const GgufTensorInfo& d = decoded.tensor(t.name);
    ASSERT_EQ(d.type, GgmlType::F32);
    std::vector<float> ours(size_t(n * rows));
    tr.dequantize_row(t.data, ours.data(), n * rows);
    EXPECT_EQ(std::memcmp(ours.data(), d.data, ours.size() * 4), 0) << "decoded floats differ";
    // Encoding: the same bytes from the F32 tensor, row by row.
    const GgufTensorInfo& x = f32.tensor(t.name);
    std::vector<float> xs(size_t(n * rows));
    std::memcpy(xs.data(), x.data, xs.size() * 4);
    std::vector<float> w;
    if (im) {
      auto it = im->entries.find(t.name);
      ASSERT_NE(it, im->entries.end());
      w = imatrix_mean(it->second, im->legacy);
      ASSERT_EQ(int64_t(w.size()), n);
    }
    const uint64_t row_bytes = ggml_row_bytes(type, n);
    std::vector<uint8_t> enc(row_bytes * uint64_t(rows));
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t r = 0; r < rows; ++r) {
      if (im) tr.quantize_row_weighted(xs.data() + r * n, enc.data() + r * row_bytes, n, w.data());
      else tr.quantize_row_ref(xs.data() + r * n, enc.data() + r * row_bytes, n);
    }
    encode_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    encoded += n * rows;
    ASSERT_EQ(enc.size(), t.nbytes);
    int64_t bad = 0, first = -1;
    for (uint64_t b = 0; b < t.nbytes / tr.type_size; ++b) {
      if (std::memcmp(enc.data() + b * tr.type_size, t.data + b * tr.type_size, tr.type_size) != 0) {
        if (first < 0) first = int64_t(b);
        ++bad;
      }
    }
    EXPECT_EQ(bad, 0) << bad << " of " << t.nbytes / tr.type_size << " blocks differ, the first " << first;
  }
  EXPECT_EQ(compared, 28) << "7 linears x 4 blocks of type " << tr.name;
  std::printf("  %s%s: encoded %lld weights in %.2f s (one thread)\n", tr.name, im ? " imatrix" : "",
              static_cast<long long>(encoded), encode_s);
}

TEST_P(LlamaIq, FilesDecodeAndEncodeByteForByte) {
  const IqCase& c = GetParam();
  // llama-quantize builds the 1024- and 2048-point neighbour tables by sorting every grid for
  // each of ~40k lattice points: ~10 s of CPU per run, so these types run on request.
  if (c.slow && !std::getenv("SIGNROUND_SLOW_IQ"))
    GTEST_SKIP() << "set SIGNROUND_SLOW_IQ=1 to compare " << c.type << " (llama-quantize takes ~10-60 s for it)";
  const GgmlType t = ggml_type_from_name(c.type);
  const ImatrixFile im = read_imatrix_file(*dir_ / "im.dat");
  const std::string theirs = *dir_ / (c.ftype + ".gguf"), decoded = *dir_ / (c.ftype + "-f32.gguf");
  llama_quantize(c.ftype, true, theirs, decoded);
  expect_decodes_and_encodes_like_llama(theirs, test::shared(kF32), decoded, &im, t);
  if (ggml_codec(t).requires_importance) return;
  SCOPED_TRACE("without imatrix");
  llama_quantize(c.ftype, false, theirs, decoded);
  expect_decodes_and_encodes_like_llama(theirs, test::shared(kF32), decoded, nullptr, t);
}

// llama-quantize's type names (ftypes) and the ggml type --pure gives every linear: its
// "IQ2_S" means IQ2_XS linears, "IQ2_M" IQ2_S ones.
INSTANTIATE_TEST_SUITE_P(Types, LlamaIq,
                         ::testing::Values(IqCase{"IQ3_XXS", "iq3_xxs", false}, IqCase{"IQ3_S", "iq3_s", false},
                                           IqCase{"IQ2_XXS", "iq2_xxs", false}, IqCase{"IQ2_XS", "iq2_xs", false},
                                           IqCase{"IQ2_M", "iq2_s", true}, IqCase{"IQ1_S", "iq1_s", true},
                                           IqCase{"IQ1_M", "iq1_m", true}),
                         [](const ::testing::TestParamInfo<IqCase>& i) { return i.param.type; });

// llama-quantize without an imatrix writes IQ1_M output and token_embd (ggml's x^2 weights; it
// refuses IQ1_M only inside the blocks): our ref encoder gives its bytes.
TEST(LlamaIq1m, OutputAndTokenEmbdWithoutImatrixEncodeLikeLlamaQuantize) {
  if (!std::getenv("SIGNROUND_SLOW_IQ"))
    GTEST_SKIP() << "set SIGNROUND_SLOW_IQ=1 (llama-quantize takes ~10-60 s to build IQ1_M's neighbour tables)";
  SR_REQUIRE_SHARED(kBin + "llama-quantize");
  SR_REQUIRE_SHARED(kF32);
  test::TempDir dir;
  const std::string out = dir / "iq1m-ends.gguf";
  auto r = test::run_command(test::shared(kBin + "llama-quantize") +
                             " --output-tensor-type iq1_m --token-embedding-type iq1_m " + test::shared(kF32) + " " +
                             out + " Q8_0 2");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  GgufReader theirs(out), f32(test::shared(kF32));
  const GgmlTypeTraits& tr = ggml_codec(GgmlType::IQ1_M);
  for (const char* name : {"output.weight", "token_embd.weight"}) {
    SCOPED_TRACE(name);
    const GgufTensorInfo& t = theirs.tensor(name);
    ASSERT_EQ(t.type, GgmlType::IQ1_M);
    const int64_t n = t.row_length(), rows = t.n_rows();
    std::vector<float> x(size_t(n * rows));
    std::memcpy(x.data(), f32.tensor(name).data, x.size() * 4);
    const uint64_t row_bytes = ggml_row_bytes(GgmlType::IQ1_M, n);
    std::vector<uint8_t> enc(row_bytes * uint64_t(rows));
    for (int64_t i = 0; i < rows; ++i) tr.quantize_row_ref(x.data() + i * n, enc.data() + i * row_bytes, n);
    ASSERT_EQ(enc.size(), t.nbytes);
    EXPECT_EQ(std::memcmp(enc.data(), t.data, enc.size()), 0);
  }
}

}  // namespace
}  // namespace sr
