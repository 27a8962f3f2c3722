// Bit-exactness against llama.cpp. The reference files were made by llama-quantize
// (llama.cpp c392e50, no imatrix) from the F32 GGUF of the same model; see
// ../shared/reference/llamacpp/README.md. For every quantized tensor we re-quantize
// the F32 tensor with our quantize_row_ref for the type it has in that file and
// require identical bytes: this pins every block layout, every search and every
// rounding rule of the ref encoders (all types but Q5_1, which no file contains).
// The same bytes must come out of the frozen-parameter path (search, then encode
// with v = 0) row by row.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "io/gguf_reader.h"
#include "quant/formats/ggml_frozen.h"
#include "quant/formats/ggml_types.h"
#include "testutil.h"

namespace sr {
namespace {

const std::string kDir = "reference/llamacpp/tinystories-llama-4m/";
const std::string kF32 = kDir + "tinystories-llama-4m-f32.gguf";

std::string quant_file(const std::string& mix) { return kDir + "tinystories-llama-4m-" + mix + ".gguf"; }

// "3 of 512 blocks differ, first at block 17: ours 1a 2b.. theirs 1a 2c.."
std::string describe_mismatch(const uint8_t* ours, const uint8_t* theirs, uint64_t nbytes, uint32_t block) {
  uint64_t n_bad = 0, first = ~uint64_t(0);
  for (uint64_t b = 0; b < nbytes / block; ++b) {
    if (std::memcmp(ours + b * block, theirs + b * block, block) != 0) {
      ++n_bad;
      if (first == ~uint64_t(0)) first = b;
    }
  }
  std::ostringstream os;
  os << n_bad << " of " << nbytes / block << " blocks differ";
  if (n_bad) {
    os << ", first at block " << first << ":\n ours  ";
    for (uint32_t i = 0; i < block; ++i) os << std::hex << int(ours[first * block + i]) << ' ';
    os << "\n llama ";
    for (uint32_t i = 0; i < block; ++i) os << std::hex << int(theirs[first * block + i]) << ' ';
  }
  return os.str();
}

class LlamaQuantizeFile : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaQuantizeFile, RefEncoderReproducesEveryTensorByte) {
  const std::string qfile = quant_file(GetParam());
  SR_REQUIRE_SHARED(kF32);
  SR_REQUIRE_SHARED(qfile);
  GgufReader f32(test::shared(kF32));
  GgufReader q(test::shared(qfile));
  ASSERT_EQ(q.tensors().size(), f32.tensors().size());

  std::map<std::string, int> compared;  // ggml type name -> tensors compared
  for (const GgufTensorInfo& t : q.tensors()) {
    const GgufTensorInfo& src = f32.tensor(t.name);
    ASSERT_EQ(src.type, GgmlType::F32) << t.name;
    ASSERT_EQ(src.shape, t.shape) << t.name;
    const std::vector<float> x = f32.decode_f32(src);
    std::vector<uint8_t> ours(t.nbytes);
    ggml_codec(t.type).quantize_row_ref(x.data(), ours.data(), t.n_elements());
    const uint32_t block = ggml_type_traits(t.type).type_size;
    ASSERT_TRUE(std::memcmp(ours.data(), t.data, t.nbytes) == 0)
        << qfile << " tensor " << t.name << " (" << ggml_type_name(t.type) << "): "
        << describe_mismatch(ours.data(), t.data, t.nbytes, block);
    ++compared[ggml_type_name(t.type)];
  }
  std::ostringstream summary;
  for (const auto& [type, count] : compared) summary << type << " x" << count << "  ";
  std::cout << "  " << GetParam() << ": bit-identical tensors: " << summary.str() << "\n";
  EXPECT_GE(compared.size(), 2u) << "every file mixes at least F32 norms and one quantized type";
}

TEST_P(LlamaQuantizeFile, FrozenSearchThenEncodeReproducesEveryRow) {
  const std::string qfile = quant_file(GetParam());
  SR_REQUIRE_SHARED(kF32);
  SR_REQUIRE_SHARED(qfile);
  GgufReader f32(test::shared(kF32));
  GgufReader q(test::shared(qfile));
  int rows = 0;
  for (const GgufTensorInfo& t : q.tensors()) {
    if (!ggml_has_block_params(t.type)) continue;
    const std::vector<float> x = f32.decode_f32(f32.tensor(t.name));
    const int64_t n = t.row_length();
    const uint64_t row_bytes = ggml_row_bytes(t.type, n);
    std::vector<uint8_t> out(row_bytes);
    for (int64_t r = 0; r < t.n_rows(); ++r) {
      const float* xr = x.data() + r * n;
      const GgmlRowParams p = ggml_search_row_ref(t.type, xr, n);
      ggml_encode_row_frozen(p, xr, nullptr, out.data(), GgmlRounding::kLlamaRef);
      ASSERT_TRUE(std::memcmp(out.data(), t.data + r * row_bytes, row_bytes) == 0)
          << t.name << " row " << r << " (" << ggml_type_name(t.type) << ")";
      ++rows;
    }
  }
  EXPECT_GT(rows, 0);
}

INSTANTIATE_TEST_SUITE_P(TinyStories4m, LlamaQuantizeFile,
                         ::testing::Values("Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1",
                                           "Q4_0", "Q3_K_M", "Q3_K_S", "Q2_K"));

// The files must between them exercise every quantized type we claim to pin.
TEST(LlamaQuantizeFiles, CoverEveryRefEncoderButQ5_1) {
  SR_REQUIRE_SHARED(kF32);
  std::set<GgmlType> seen;
  for (const char* mix : {"Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0", "Q3_K_M",
                          "Q3_K_S", "Q2_K"}) {
    GgufReader q(test::shared(quant_file(mix)));
    for (const auto& t : q.tensors()) seen.insert(t.type);
  }
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::Q2_K,
                     GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    EXPECT_TRUE(seen.count(t)) << ggml_type_name(t);
  }
  EXPECT_FALSE(seen.count(GgmlType::Q5_1)) << "a Q5_1 reference appeared: add it to the pinned list";
}

}  // namespace
}  // namespace sr
