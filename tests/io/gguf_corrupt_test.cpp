// Handcrafted GGUF files, one per error branch of GgufReader (io/gguf_reader.h): each
// differs from a valid baseline in one thing and must throw sr::Error whose message
// names the file and the key/tensor involved. A mutation fuzzer then checks that no
// damaged file does anything but load or throw sr::Error.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <random>

#include "common/error.h"
#include "io/gguf_reader.h"
#include "testutil.h"

namespace sr {
namespace {

// Little-endian byte builder for GGUF pieces.
struct Bytes {
  std::vector<uint8_t> b;
  template <typename T>
  Bytes& pod(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(T));
    return *this;
  }
  Bytes& str(const std::string& s) {
    pod<uint64_t>(s.size());
    b.insert(b.end(), s.begin(), s.end());
    return *this;
  }
};

using KvWriter = std::function<void(Bytes&)>;

KvWriter kv_str(const std::string& key, const std::string& v) {
  return [=](Bytes& b) { b.str(key).pod<uint32_t>(8).str(v); };
}
KvWriter kv_u32(const std::string& key, uint32_t v) {
  return [=](Bytes& b) { b.str(key).pod<uint32_t>(4).pod<uint32_t>(v); };
}
KvWriter kv_raw(std::function<void(Bytes&)> f) { return f; }

struct TensorSpec {
  std::string name;
  std::vector<int64_t> ne;  // ggml order, innermost first
  uint32_t type;
  uint64_t offset;
  int64_t n_dims = -1;      // -1: ne.size()
};

// Knobs of the file to build; the defaults give a valid file with one string key, an
// F32 tensor "a" of 8 elements at 0 and a Q8_0 tensor "b" of 32 elements at 32.
struct Spec {
  std::string magic = "GGUF";
  uint32_t version = 3;
  int64_t n_tensors = -1;  // -1: tensors.size()
  int64_t n_kv = -1;       // -1: kvs.size()
  std::vector<KvWriter> kvs = {kv_str("general.architecture", "llama")};
  std::vector<TensorSpec> tensors = {{"a", {8}, 0, 0}, {"b", {32}, 8, 32}};
  uint64_t data_bytes = 96;          // 32 (a) + 34 (b) padded to 64
  size_t truncate = size_t(-1);      // keep only this many bytes
};

// Header and metadata only: the tensor infos start at this size.
Bytes build_prefix(const Spec& s) {
  Bytes b;
  b.b.insert(b.b.end(), s.magic.begin(), s.magic.end());
  b.pod<uint32_t>(s.version);
  b.pod<uint64_t>(s.n_tensors >= 0 ? uint64_t(s.n_tensors) : s.tensors.size());
  b.pod<uint64_t>(s.n_kv >= 0 ? uint64_t(s.n_kv) : s.kvs.size());
  for (const KvWriter& kv : s.kvs) kv(b);
  return b;
}

std::vector<uint8_t> build(const Spec& s) {
  Bytes b = build_prefix(s);
  for (const TensorSpec& t : s.tensors) {
    b.str(t.name).pod<uint32_t>(uint32_t(t.n_dims >= 0 ? t.n_dims : int64_t(t.ne.size())));
    for (int64_t d : t.ne) b.pod<int64_t>(d);
    b.pod<uint32_t>(t.type).pod<uint64_t>(t.offset);
  }
  while (b.b.size() % 32) b.b.push_back(0);
  b.b.insert(b.b.end(), s.data_bytes, 0);
  if (s.truncate < b.b.size()) b.b.resize(s.truncate);
  return b.b;
}

class GgufCorrupt : public ::testing::Test {
 protected:
  std::string write(const std::vector<uint8_t>& bytes) {
    const std::string path = dir_ / ("f" + std::to_string(++count_) + ".gguf");
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    return path;
  }
  // Reading must throw sr::Error mentioning the file and every one of `parts`.
  void expect_error(const Spec& s, const std::vector<std::string>& parts) {
    const std::string path = write(build(s));
    try {
      GgufReader r(path);
      ADD_FAILURE() << "no error; expected one mentioning '" << parts.front() << "'";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(path), std::string::npos) << "message does not name the file: " << msg;
      for (const std::string& p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "missing '" << p << "' in: " << msg;
    }
  }
  test::TempDir dir_;
  int count_ = 0;
};

TEST_F(GgufCorrupt, BaselineIsValid) {
  GgufReader r(write(build(Spec{})));
  EXPECT_EQ(r.tensors().size(), 2u);
  EXPECT_EQ(r.tensor("b").type, GgmlType::Q8_0);
  EXPECT_EQ(r.get<std::string>("general.architecture"), "llama");
  Spec v2;
  v2.version = 2;
  EXPECT_EQ(GgufReader(write(build(v2))).version(), 2u);
}

// ---- header ---------------------------------------------------------------------------

TEST_F(GgufCorrupt, EmptyFile) {
  Spec s;
  s.truncate = 0;
  expect_error(s, {"too short"});
}

TEST_F(GgufCorrupt, BadMagic) {
  Spec s;
  s.magic = "GGML";
  expect_error(s, {"not a GGUF file", "47 47 4d 4c"});
}

TEST_F(GgufCorrupt, UnsupportedVersions) {
  Spec s;
  s.version = 1;
  expect_error(s, {"version 1 is no longer supported"});
  s.version = 4;
  expect_error(s, {"version 4 but this reader supports versions 2 and 3"});
  s.version = 0x03000000;
  expect_error(s, {"big-endian"});
}

TEST_F(GgufCorrupt, TruncatedHeader) {
  Spec s;
  s.truncate = 12;
  expect_error(s, {"file ends inside the tensor count"});
}

TEST_F(GgufCorrupt, AbsurdCounts) {
  Spec s;
  s.n_kv = int64_t(1) << 60;
  expect_error(s, {"metadata entries, more than"});
  s = Spec{};
  s.n_tensors = int64_t(1) << 62;
  expect_error(s, {"tensors, more than"});
  s = Spec{};
  s.n_tensors = -1;
  s.n_kv = 3;  // only one entry present: the next "key length" is tensor bytes
  expect_error(s, {"metadata"});
}

// ---- metadata -------------------------------------------------------------------------

TEST_F(GgufCorrupt, KeyLengthPastEof) {
  Spec s;
  s.kvs = {kv_raw([](Bytes& b) { b.pod<uint64_t>(uint64_t(1) << 40); })};
  expect_error(s, {"file ends inside the key of metadata entry #0"});
}

TEST_F(GgufCorrupt, EmptyKey) {
  Spec s;
  s.kvs = {kv_u32("", 1)};
  expect_error(s, {"metadata entry #0 has an empty key"});
}

TEST_F(GgufCorrupt, UnknownValueType) {
  Spec s;
  s.kvs = {kv_raw([](Bytes& b) { b.str("x.key").pod<uint32_t>(13).pod<uint32_t>(0); })};
  expect_error(s, {"'x.key'", "unknown value type 13"});
}

TEST_F(GgufCorrupt, ArrayOfArrays) {
  Spec s;
  s.kvs = {kv_raw([](Bytes& b) { b.str("nested").pod<uint32_t>(9).pod<uint32_t>(9).pod<uint64_t>(1); })};
  expect_error(s, {"'nested'", "array of arrays"});
}

TEST_F(GgufCorrupt, UnknownArrayElementType) {
  Spec s;
  s.kvs = {kv_raw([](Bytes& b) { b.str("arr").pod<uint32_t>(9).pod<uint32_t>(77).pod<uint64_t>(1); })};
  expect_error(s, {"'arr'", "unknown array element type 77"});
}

TEST_F(GgufCorrupt, AbsurdArrayLengths) {
  Spec s;
  s.kvs = {kv_raw([](Bytes& b) { b.str("nums").pod<uint32_t>(9).pod<uint32_t>(4).pod<uint64_t>(uint64_t(1) << 61); })};
  expect_error(s, {"'nums'", "claims 2305843009213693952 elements of u32"});
  s.kvs = {kv_raw([](Bytes& b) { b.str("toks").pod<uint32_t>(9).pod<uint32_t>(8).pod<uint64_t>(uint64_t(1) << 40); })};
  expect_error(s, {"'toks'", "strings"});
}

TEST_F(GgufCorrupt, StringValuePastEof) {
  Spec s;
  s.kvs = {kv_raw([](Bytes& b) { b.str("name").pod<uint32_t>(8).pod<uint64_t>(1000000); })};
  expect_error(s, {"file ends inside the value of key 'name'"});
  s.kvs = {kv_raw([](Bytes& b) { b.str("toks").pod<uint32_t>(9).pod<uint32_t>(8).pod<uint64_t>(2).str("ok").pod<uint64_t>(~uint64_t(0)); })};
  expect_error(s, {"file ends inside the value of key 'toks'"});
}

TEST_F(GgufCorrupt, BoolOtherThanZeroOrOne) {
  Spec s;
  s.kvs = {kv_raw([](Bytes& b) { b.str("flag").pod<uint32_t>(7).pod<uint8_t>(2); })};
  expect_error(s, {"'flag'", "bool byte 2"});
}

TEST_F(GgufCorrupt, DuplicateKey) {
  Spec s;
  s.kvs = {kv_u32("llama.block_count", 4), kv_u32("llama.block_count", 5)};
  expect_error(s, {"'llama.block_count' appears twice"});
}

TEST_F(GgufCorrupt, BadAlignment) {
  Spec s;
  s.kvs.push_back(kv_raw([](Bytes& b) { b.str("general.alignment").pod<uint32_t>(10).pod<uint64_t>(32); }));
  expect_error(s, {"'general.alignment' is u64, expected u32"});
  s = Spec{};
  s.kvs.push_back(kv_u32("general.alignment", 48));
  expect_error(s, {"'general.alignment' is 48, expected a power of two"});
  s = Spec{};
  s.kvs.push_back(kv_u32("general.alignment", 0));
  expect_error(s, {"power of two"});
}

// ---- tensor infos ---------------------------------------------------------------------

TEST_F(GgufCorrupt, TensorNamePastEof) {
  Spec s;
  s.tensors = {{std::string(10, 'x'), {8}, 0, 0}};
  s.truncate = build_prefix(s).b.size() + 8 + 3;  // 3 bytes into the name
  expect_error(s, {"file ends inside the name of tensor #0"});
}

TEST_F(GgufCorrupt, TruncatedInsideTheShape) {
  Spec s;
  s.tensors = {{"a", {8, 4}, 0, 0}};
  s.truncate = build_prefix(s).b.size() + (8 + 1) + 4 + 4;  // half of ne[0]
  expect_error(s, {"file ends inside the shape of tensor 'a'"});
}

TEST_F(GgufCorrupt, DuplicateTensorName) {
  Spec s;
  s.tensors = {{"a", {8}, 0, 0}, {"a", {8}, 0, 32}};
  expect_error(s, {"tensor name 'a' appears twice"});
}

TEST_F(GgufCorrupt, DimensionCount) {
  Spec s;
  s.tensors[0].ne = {8, 1, 1, 1, 1};
  expect_error(s, {"tensor 'a' has 5 dimensions, expected 1 to 4"});
  s = Spec{};
  s.tensors[0].ne = {};
  expect_error(s, {"tensor 'a' has 0 dimensions"});
}

TEST_F(GgufCorrupt, NegativeDimension) {
  Spec s;
  s.tensors[0].ne = {8, -3};
  expect_error(s, {"tensor 'a' dimension 1 is -3"});
}

TEST_F(GgufCorrupt, OverflowingDimensions) {
  Spec s;
  s.tensors[0].ne = {int64_t(1) << 32, int64_t(1) << 32};
  expect_error(s, {"tensor 'a' has more than 2^63 elements"});
  s.tensors[0].ne = {int64_t(1) << 31, int64_t(1) << 31};  // 2^62 elements of 4 bytes = 2^64 bytes
  expect_error(s, {"tensor 'a' byte size overflows"});
}

TEST_F(GgufCorrupt, UnknownGgmlType) {
  Spec s;
  s.tensors[1].type = 99;
  expect_error(s, {"tensor 'b' has unknown ggml type id 99"});
  s.tensors[1].type = 4;  // retired Q4_2
  expect_error(s, {"tensor 'b' has unknown ggml type id 4"});
}

TEST_F(GgufCorrupt, RowNotAWholeNumberOfBlocks) {
  Spec s;
  s.tensors[1].ne = {48};
  expect_error(s, {"tensor 'b' of type q8_0 has rows of 48 elements, not a multiple of its block size 32"});
}

// ---- data section ---------------------------------------------------------------------

TEST_F(GgufCorrupt, TensorDataPastEof) {
  Spec s;
  s.data_bytes = 40;  // b needs [32, 66)
  expect_error(s, {"tensor 'b' data [32, +34) lies past the end"});
  s = Spec{};
  s.tensors[1].offset = uint64_t(1) << 63;
  expect_error(s, {"tensor 'b'", "lies past the end"});
}

TEST_F(GgufCorrupt, NoDataSection) {
  Spec s;
  s.data_bytes = 0;
  s.truncate = build(s).size() - 7;  // ends inside the padding after the tensor infos
  expect_error(s, {"before its data section"});
}

TEST_F(GgufCorrupt, MisalignedOffset) {
  Spec s;
  s.tensors[1].offset = 48;
  expect_error(s, {"tensor 'b' data offset 48 is not a multiple of the alignment 32"});
}

TEST_F(GgufCorrupt, OverlappingTensors) {
  Spec s;
  s.tensors[1].offset = 0;
  expect_error(s, {"'a'", "'b'", "overlap"});
}

// ---- accessors ------------------------------------------------------------------------

TEST_F(GgufCorrupt, AccessorsNameTheFileAndKey) {
  Spec s;
  s.tensors.push_back({"iq", {256}, 34, 96});  // TQ1_0: listed, not decodable
  s.data_bytes = 96 + 54 + 10;
  const std::string path = write(build(s));
  GgufReader r(path);
  EXPECT_EQ(r.tensor("iq").type, GgmlType::TQ1_0);
  EXPECT_EQ(r.tensor("iq").nbytes, 54u);
  try {
    r.decode_f32(r.tensor("iq"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'iq' has type tq1_0"), std::string::npos) << e.what();
  }
  for (auto fn : std::vector<std::function<void()>>{
           [&] { r.get<uint32_t>("general.architecture"); }, [&] { r.get<std::string>("missing.key"); },
           [&] { r.get_array<std::string>("general.architecture"); }, [&] { r.tensor("missing"); }}) {
    try {
      fn();
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
}

// ---- fuzzing --------------------------------------------------------------------------

// A richer valid file: arrays, strings and three tensors.
std::vector<uint8_t> fuzz_seed() {
  Spec s;
  s.kvs = {kv_str("general.architecture", "llama"), kv_u32("general.alignment", 32),
           kv_raw([](Bytes& b) {
             b.str("tokenizer.ggml.tokens").pod<uint32_t>(9).pod<uint32_t>(8).pod<uint64_t>(3).str("<s>").str("a").str("");
           }),
           kv_raw([](Bytes& b) { b.str("scores").pod<uint32_t>(9).pod<uint32_t>(6).pod<uint64_t>(2).pod<float>(1).pod<float>(2); }),
           kv_raw([](Bytes& b) { b.str("flag").pod<uint32_t>(7).pod<uint8_t>(1); })};
  s.tensors = {{"a", {8}, 0, 0}, {"b", {32}, 8, 32}, {"c", {256, 2}, 12, 96}};
  s.data_bytes = 96 + 288;
  return build(s);
}

TEST_F(GgufCorrupt, MutatedFilesLoadOrThrowSrError) {
  const std::vector<uint8_t> seed = fuzz_seed();
  { GgufReader ok(write(seed)); EXPECT_EQ(ok.tensors().size(), 3u); }
  std::mt19937 rng(20250220);
  const uint64_t extremes[] = {0, 1, 0xff, 0x7fffffff, 0xffffffff, uint64_t(1) << 31, uint64_t(1) << 63,
                               ~uint64_t(0), 33, 256};
  int loaded = 0, rejected = 0;
  const std::string path = dir_ / "fuzz.gguf";
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<uint8_t> f = seed;
    const int kind = int(rng() % 3);
    const size_t header_end = f.size() - 384;  // mutate mostly the header and infos
    if (kind == 0) {
      f.resize(rng() % f.size());
    } else if (kind == 1) {
      for (int k = 0, n = 1 + int(rng() % 4); k < n; ++k) f[rng() % header_end] ^= uint8_t(1u << (rng() % 8));
    } else {
      const uint64_t v = extremes[rng() % std::size(extremes)];
      const size_t at = rng() % (header_end - 8);
      std::memcpy(f.data() + at, &v, (rng() % 2) ? 8 : 4);
    }
    std::ofstream(path, std::ios::binary | std::ios::trunc)
        .write(reinterpret_cast<const char*>(f.data()), std::streamsize(f.size()));
    try {
      GgufReader r(path);
      for (const GgufTensorInfo& t : r.tensors()) {
        if (ggml_type_traits(t.type).supported()) r.decode_f32(t);
      }
      ++loaded;
    } catch (const Error&) {
      ++rejected;
    }  // anything else escapes and fails the test
  }
  std::cout << "  fuzz: " << loaded << " mutated files loaded, " << rejected << " rejected with sr::Error\n";
  EXPECT_GT(rejected, 1000);
}

}  // namespace
}  // namespace sr
