// GgufWriter: writer -> reader round trips for every tensor type and metadata value
// type, the on-disk layout (alignment, padding, file size), atomic replacement,
// validation of block scales, misuse errors, and an end-to-end check that the writer
// plus our ref encoders rebuild llama-quantize's files byte for byte.
#include "io/gguf_writer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>

#include "common/error.h"
#include "io/gguf_reader.h"
#include "testutil.h"

namespace sr {
namespace {
namespace fs = std::filesystem;

std::vector<float> gaussian(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.05f);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& v : x) v = d(rng);
  return x;
}

std::vector<uint8_t> quantize(GgmlType t, const std::vector<float>& x) {
  std::vector<uint8_t> b(ggml_row_bytes(t, int64_t(x.size())));
  const GgmlTypeTraits& tr = ggml_codec(t);
  const int64_t n = int64_t(x.size());
  if (!tr.requires_importance) {
    tr.quantize_row_ref(x.data(), b.data(), n);
  } else {  // the types llama.cpp refuses without an imatrix: unit importance, row by row
    const int64_t row = tr.block_size == 256 ? 512 : 96;
    const std::vector<float> w(size_t(row), 1.0f);
    for (int64_t r = 0; r < n / row; ++r) tr.quantize_row_weighted(x.data() + r * row, b.data() + r * ggml_row_bytes(t, row), row, w.data());
  }
  return b;
}

std::vector<uint8_t> slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// One value of every GGUF value type, scalars and arrays (including empty ones).
std::vector<std::pair<std::string, GgufValue>> every_value() {
  return {
      {"t.u8", GgufValue::scalar<uint8_t>(250)},
      {"t.i8", GgufValue::scalar<int8_t>(-100)},
      {"t.u16", GgufValue::scalar<uint16_t>(65000)},
      {"t.i16", GgufValue::scalar<int16_t>(-32000)},
      {"t.u32", GgufValue::scalar<uint32_t>(4000000000u)},
      {"t.i32", GgufValue::scalar<int32_t>(-2000000000)},
      {"t.f32", GgufValue::scalar<float>(-1.5e-7f)},
      {"t.bool", GgufValue::scalar<bool>(true)},
      {"t.str", GgufValue::string("héllo, ggml")},
      {"t.empty_str", GgufValue::string("")},
      {"t.u64", GgufValue::scalar<uint64_t>(18000000000000000000ull)},
      {"t.i64", GgufValue::scalar<int64_t>(-9000000000000000000ll)},
      {"t.f64", GgufValue::scalar<double>(3.141592653589793)},
      {"a.u8", GgufValue::array<uint8_t>({1, 2, 255})},
      {"a.i8", GgufValue::array<int8_t>({-1, 0, 1})},
      {"a.u16", GgufValue::array<uint16_t>({7, 65535})},
      {"a.i16", GgufValue::array<int16_t>({-7, 32767})},
      {"a.u32", GgufValue::array<uint32_t>({1, 2, 3, 4})},
      {"a.i32", GgufValue::array<int32_t>({-1, 1 << 30})},
      {"a.f32", GgufValue::array<float>({0.5f, -0.25f, 1e30f})},
      {"a.bool", GgufValue::array<bool>({true, false, true})},
      {"a.str", GgufValue::array<std::string>({"<unk>", "", "▁the"})},
      {"a.u64", GgufValue::array<uint64_t>({1ull << 40})},
      {"a.i64", GgufValue::array<int64_t>({-(1ll << 40), 5})},
      {"a.f64", GgufValue::array<double>({1e-300, -2.0})},
      {"a.empty_f32", GgufValue::array<float>({})},
      {"a.empty_str", GgufValue::array<std::string>({})},
  };
}

TEST(GgufWriter, MetadataOfEveryValueTypeRoundTrips) {
  test::TempDir dir;
  const auto values = every_value();
  {
    GgufWriter w(dir / "meta.gguf");
    for (const auto& [k, v] : values) w.set(k, v);
    w.finish();
  }
  GgufReader r(dir / "meta.gguf");
  ASSERT_EQ(r.metadata().size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_EQ(r.metadata()[i].first, values[i].first);
    EXPECT_TRUE(r.metadata()[i].second == values[i].second) << values[i].first;
  }
  EXPECT_EQ(r.get<uint8_t>("t.u8"), 250);
  EXPECT_EQ(r.get<int8_t>("t.i8"), -100);
  EXPECT_EQ(r.get<uint16_t>("t.u16"), 65000);
  EXPECT_EQ(r.get<int16_t>("t.i16"), -32000);
  EXPECT_EQ(r.get<uint32_t>("t.u32"), 4000000000u);
  EXPECT_EQ(r.get<int32_t>("t.i32"), -2000000000);
  EXPECT_EQ(r.get<float>("t.f32"), -1.5e-7f);
  EXPECT_TRUE(r.get<bool>("t.bool"));
  EXPECT_EQ(r.get<std::string>("t.str"), "héllo, ggml");
  EXPECT_EQ(r.get<std::string>("t.empty_str"), "");
  EXPECT_EQ(r.get<uint64_t>("t.u64"), 18000000000000000000ull);
  EXPECT_EQ(r.get<int64_t>("t.i64"), -9000000000000000000ll);
  EXPECT_EQ(r.get<double>("t.f64"), 3.141592653589793);
  EXPECT_EQ(r.get_array<bool>("a.bool"), (std::vector<bool>{true, false, true}));
  EXPECT_EQ(r.get_array<std::string>("a.str"), (std::vector<std::string>{"<unk>", "", "▁the"}));
  EXPECT_EQ(r.get_array<int64_t>("a.i64"), (std::vector<int64_t>{-(1ll << 40), 5}));
  EXPECT_EQ(r.get_array<double>("a.f64"), (std::vector<double>{1e-300, -2.0}));
  EXPECT_TRUE(r.get_array<float>("a.empty_f32").empty());
  EXPECT_TRUE(r.tensors().empty());
}

TEST(GgufWriter, TensorsOfEveryTypeRoundTripWithAlignedOffsets) {
  test::TempDir dir;
  struct Item {
    std::string name;
    GgmlType type;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
  };
  std::vector<Item> items;
  uint32_t seed = 0;
  for (GgmlType t : ggml_supported_types()) {
    const int64_t row = ggml_type_traits(t).block_size == 256 ? 512 : 96;  // 96 = 3 legacy blocks
    // Odd row counts make sizes that are not multiples of 32, so padding is exercised.
    for (const std::vector<int64_t>& shape : {std::vector<int64_t>{row}, std::vector<int64_t>{3, row},
                                              std::vector<int64_t>{2, 1, 3, row}}) {
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      items.push_back({ggml_type_name(t) + "." + std::to_string(shape.size()) + "d", t, shape,
                       quantize(t, gaussian(n, ++seed))});
    }
  }
  {
    GgufWriter w(dir / "t.gguf");
    w.set("general.architecture", GgufValue::string("test"));
    for (const Item& it : items) w.add_tensor(it.name, it.type, it.shape);
    for (const Item& it : items) {
      EXPECT_EQ(w.tensor_bytes(it.name), it.bytes.size());
      w.write_tensor(it.name, it.bytes.data(), it.bytes.size());
    }
    EXPECT_FALSE(fs::exists(dir / "t.gguf")) << "nothing at the final path before finish()";
    w.finish();
  }
  GgufReader r(dir / "t.gguf");
  EXPECT_EQ(r.version(), 3u);
  ASSERT_EQ(r.tensors().size(), items.size());
  uint64_t data = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const GgufTensorInfo& t = r.tensors()[i];
    EXPECT_EQ(t.name, items[i].name);
    EXPECT_EQ(t.type, items[i].type);
    EXPECT_EQ(t.shape, items[i].shape);
    EXPECT_EQ(t.offset % 32, 0u);
    EXPECT_EQ(t.offset, data);
    ASSERT_EQ(t.nbytes, items[i].bytes.size());
    EXPECT_EQ(std::memcmp(t.data, items[i].bytes.data(), t.nbytes), 0) << t.name;
    std::vector<float> expect(size_t(t.n_elements()));
    ggml_codec(t.type).dequantize_row(items[i].bytes.data(), expect.data(), t.n_elements());
    EXPECT_EQ(r.decode_f32(t), expect) << t.name;
    data += (t.nbytes + 31) / 32 * 32;
  }
  EXPECT_EQ(r.data_offset() % 32, 0u);
  EXPECT_EQ(r.file_size(), r.data_offset() + data) << "header + pad + aligned tensors";
  const std::vector<uint8_t> file = slurp(dir / "t.gguf");
  for (uint64_t p = r.data_offset() + r.tensors().back().offset + r.tensors().back().nbytes; p < file.size(); ++p) {
    ASSERT_EQ(file[p], 0) << "padding is zeros";
  }
}

TEST(GgufWriter, NonDefaultAlignmentIsStoredAndHonoured) {
  test::TempDir dir;
  const std::vector<float> x = gaussian(96, 1);
  {
    GgufWriter w(dir / "a.gguf", 64);
    EXPECT_THROW(w.set("general.alignment", GgufValue::scalar<uint32_t>(64)), Error);
    w.add_tensor("a", GgmlType::F32, {96});
    w.add_tensor("b", GgmlType::F16, {3});
    w.write_tensor("a", x.data(), 96 * 4);
    const uint16_t h[3] = {0, 0x3c00, 0xbc00};
    w.write_tensor("b", h, 6);
    w.finish();
  }
  GgufReader r(dir / "a.gguf");
  EXPECT_EQ(r.alignment(), 64u);
  EXPECT_EQ(r.get<uint32_t>("general.alignment"), 64u);
  EXPECT_EQ(r.data_offset() % 64, 0u);
  EXPECT_EQ(r.tensor("b").offset, 384u);
  EXPECT_EQ(r.file_size(), r.data_offset() + 384 + 64);
  EXPECT_EQ(r.decode_f32(r.tensor("b")), (std::vector<float>{0.0f, 1.0f, -1.0f}));
  EXPECT_THROW(GgufWriter(dir / "bad.gguf", 48), Error);
}

TEST(GgufWriter, UnfinishedWriterLeavesNothingBehind) {
  test::TempDir dir;
  const std::string path = dir / "m.gguf";
  { std::ofstream(path) << "previous output"; }
  const std::vector<float> x = gaussian(64, 2);
  {
    GgufWriter w(path);
    w.add_tensor("a", GgmlType::F32, {64});
    w.add_tensor("b", GgmlType::F32, {64});
    w.write_tensor("a", x.data(), 256);
    EXPECT_THROW(w.finish(), Error);  // "b" was never written
  }
  EXPECT_EQ(slurp(path), std::vector<uint8_t>({'p', 'r', 'e', 'v', 'i', 'o', 'u', 's', ' ', 'o', 'u', 't', 'p',
                                               'u', 't'}));
  for (const auto& e : fs::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename(), "m.gguf") << "stray file " << e.path();
  }
}

TEST(GgufWriter, RefusesNonFiniteScalesAndValues) {
  test::TempDir dir;
  std::vector<float> x = gaussian(512, 3);
  std::vector<uint8_t> q = quantize(GgmlType::Q4_K, x);
  const uint16_t nan = 0x7e00;
  std::memcpy(q.data() + 144 + 2, &nan, 2);  // dmin of block 1
  {
    GgufWriter w(dir / "v.gguf");
    w.add_tensor("blk.0.attn_q.weight", GgmlType::Q4_K, {2, 256});
    try {
      w.write_tensor("blk.0.attn_q.weight", q.data(), q.size());
      FAIL() << "expected an error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("blk.0.attn_q.weight"), std::string::npos) << msg;
      EXPECT_NE(msg.find("block 1"), std::string::npos) << msg;
      EXPECT_NE(msg.find(dir / "v.gguf"), std::string::npos) << msg;
    }
  }
  x[10] = INFINITY;
  {
    GgufWriter w(dir / "v.gguf");
    w.add_tensor("norm", GgmlType::F32, {512});
    EXPECT_THROW(w.write_tensor("norm", x.data(), 2048), Error);
  }
  EXPECT_FALSE(fs::exists(dir / "v.gguf"));
}

TEST(GgufWriter, MisuseIsAnError) {
  test::TempDir dir;
  const std::vector<float> x = gaussian(256, 4);
  GgufWriter w(dir / "e.gguf");
  w.set("k", GgufValue::scalar<uint32_t>(1));
  EXPECT_THROW(w.set("k", GgufValue::scalar<uint32_t>(2)), Error);                       // duplicate key
  EXPECT_THROW(w.set("", GgufValue::scalar<uint32_t>(2)), Error);                        // empty key
  EXPECT_THROW(w.add_tensor(std::string(64, 'n'), GgmlType::F32, {256}), Error);          // name too long
  EXPECT_THROW(w.add_tensor("", GgmlType::F32, {256}), Error);                            // empty name
  EXPECT_THROW(w.add_tensor("tq", GgmlType::TQ1_0, {256}), Error);                        // no codec
  EXPECT_THROW(w.add_tensor("q", GgmlType::Q4_K, {4, 128}), Error);                       // partial block
  EXPECT_THROW(w.add_tensor("s", GgmlType::F32, {1, 1, 1, 1, 256}), Error);               // 5 dims
  EXPECT_THROW(w.add_tensor("s", GgmlType::F32, {}), Error);                              // 0 dims
  EXPECT_THROW(w.add_tensor("s", GgmlType::F32, {-1, 256}), Error);                       // negative dim
  w.add_tensor("a", GgmlType::F32, {256});
  w.add_tensor("b", GgmlType::F32, {256});
  EXPECT_THROW(w.add_tensor("a", GgmlType::F32, {256}), Error);                           // duplicate name
  EXPECT_THROW(w.write_tensor("b", x.data(), 1024), Error);                               // out of order
  EXPECT_THROW(w.write_tensor("a", x.data(), 1000), Error);                               // wrong size
  w.write_tensor("a", x.data(), 1024);
  EXPECT_THROW(w.set("late", GgufValue::scalar<uint32_t>(1)), Error);                     // after data
  EXPECT_THROW(w.add_tensor("late", GgmlType::F32, {256}), Error);                        // after data
  w.write_tensor("b", x.data(), 1024);
  EXPECT_THROW(w.write_tensor("c", x.data(), 1024), Error);                               // nothing left
  w.finish();
  EXPECT_THROW(w.finish(), Error);
  GgufReader r(dir / "e.gguf");
  EXPECT_EQ(r.tensors().size(), 2u);
}

// A tensor written in parts (write_tensor_part, how the exporter streams a large matrix chunk by
// chunk) gives the same file as written whole; parts are checked like whole tensors, and a
// non-finite block is named by its index in the whole tensor.
TEST(GgufWriter, TensorWrittenInPartsEqualsWhole) {
  test::TempDir dir;
  const std::vector<float> x = gaussian(7 * 256, 6), y = gaussian(64, 7);
  const std::vector<uint8_t> q = quantize(GgmlType::Q4_K, x);
  const uint64_t row = ggml_row_bytes(GgmlType::Q4_K, 256);
  auto declare = [](GgufWriter& w) {
    w.add_tensor("big", GgmlType::Q4_K, {7, 256});
    w.add_tensor("after", GgmlType::F32, {64});
  };
  {
    GgufWriter w(dir / "whole.gguf");
    declare(w);
    w.write_tensor("big", q.data(), q.size());
    w.write_tensor("after", y.data(), y.size() * 4);
    w.finish();
  }
  {
    GgufWriter w(dir / "parts.gguf");
    declare(w);
    w.write_tensor_part("big", q.data(), 3 * row);  // rows 0..2, then 3..5, then 6
    EXPECT_EQ(w.bytes_written() % 32, 3 * row % 32);  // no padding inside a tensor (432 % 32 = 16)
    EXPECT_EQ(w.data_written(), 3 * row);              // the progress lines' count: tensor data only
    EXPECT_THROW(w.write_tensor("after", y.data(), y.size() * 4), Error);  // "big" is not complete
    EXPECT_THROW(w.write_tensor("big", q.data(), q.size()), Error);        // whole after parts
    w.write_tensor_part("big", q.data() + 3 * row, 3 * row);
    w.write_tensor_part("big", q.data() + 6 * row, row);
    w.write_tensor_part("after", y.data(), 32 * 4);
    w.write_tensor_part("after", y.data() + 32, 32 * 4);
    w.finish();
  }
  EXPECT_EQ(slurp(dir / "whole.gguf"), slurp(dir / "parts.gguf"));

  std::vector<uint8_t> bad = q;
  const uint16_t nan = 0x7e00;
  std::memcpy(bad.data() + 4 * row + 2, &nan, 2);  // dmin of row 4's block: block 4 of the tensor
  GgufWriter w(dir / "bad.gguf");
  declare(w);
  EXPECT_THROW(w.write_tensor_part("big", q.data(), 100), Error);        // not a whole block
  EXPECT_THROW(w.write_tensor_part("big", q.data(), 8 * row), Error);    // more than the tensor
  EXPECT_THROW(w.write_tensor_part("after", y.data(), 4), Error);        // out of order
  w.write_tensor_part("big", bad.data(), 3 * row);
  try {
    w.write_tensor_part("big", bad.data() + 3 * row, 3 * row);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("block 4 "), std::string::npos) << e.what();
  }
}

// The writer plus our ref encoders rebuild each llama-quantize output file byte for
// byte: same metadata in the same order, same tensor infos, offsets, padding and data.
class RebuildLlamaFile : public ::testing::TestWithParam<std::string> {};

TEST_P(RebuildLlamaFile, ByteForByte) {
  const std::string dir = "reference/llamacpp/tinystories-llama-4m/";
  const std::string qrel = dir + "tinystories-llama-4m-" + GetParam() + ".gguf";
  SR_REQUIRE_SHARED(qrel);
  GgufReader f32(test::shared(dir + "tinystories-llama-4m-f32.gguf"));
  GgufReader ref(test::shared(qrel));
  test::TempDir tmp;
  {
    GgufWriter w(tmp / "out.gguf");
    for (const auto& [key, value] : ref.metadata()) w.set(key, value);
    for (const GgufTensorInfo& t : ref.tensors()) w.add_tensor(t.name, t.type, t.shape);
    for (const GgufTensorInfo& t : ref.tensors()) {  // streamed one tensor at a time
      const std::vector<float> x = f32.decode_f32(f32.tensor(t.name));
      std::vector<uint8_t> q(t.nbytes);
      ggml_codec(t.type).quantize_row_ref(x.data(), q.data(), t.n_elements());
      w.write_tensor(t.name, q.data(), q.size());
    }
    w.finish();
  }
  const std::vector<uint8_t> ours = slurp(tmp / "out.gguf");
  const std::vector<uint8_t> theirs = slurp(test::shared(qrel));
  ASSERT_EQ(ours.size(), theirs.size());
  size_t first = 0;
  while (first < ours.size() && ours[first] == theirs[first]) ++first;
  EXPECT_EQ(first, ours.size()) << "first differing byte at offset " << first;
}

INSTANTIATE_TEST_SUITE_P(TinyStories4m, RebuildLlamaFile,
                         ::testing::Values("f32", "Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1",
                                           "Q4_0", "Q3_K_M", "Q3_K_S", "Q2_K"));

}  // namespace
}  // namespace sr
