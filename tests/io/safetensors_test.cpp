// safetensors reader/writer: round trips, sharded folders, and one handcrafted
// corrupt file per reader error branch (each must throw sr::Error naming the file).
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "testutil.h"

namespace sr {
namespace {

// Writes "u64 len | header | data" with a caller-chosen header and data.
std::string write_raw(const test::TempDir& dir, const std::string& header, const std::string& data,
                      uint64_t claimed_len = UINT64_MAX) {
  const std::string path = dir / "x.safetensors";
  std::ofstream out(path, std::ios::binary);
  uint64_t n = claimed_len == UINT64_MAX ? header.size() : claimed_len;
  out.write(reinterpret_cast<const char*>(&n), 8);
  out << header << data;
  return path;
}

void expect_error(const std::string& path, const std::string& fragment) {
  TensorStore store;
  try {
    read_safetensors(path, store);
    FAIL() << "expected an error containing '" << fragment << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << "message must name the file: " << msg;
  }
}

TEST(Safetensors, WriteReadRoundTrip) {
  test::TempDir dir;
  std::vector<float> a = {1, 2, 3, 4, 5, 6};
  std::vector<uint16_t> b = {0x3c00, 0xc000};
  SafetensorsWriter w;
  w.declare("a", "F32", {2, 3});
  w.declare("b", "F16", {2});
  w.set_metadata({{"format", "pt"}});
  w.begin(dir / "m.safetensors");
  w.write("a", a.data(), 24);
  w.write("b", b.data(), 4);
  w.finish();
  EXPECT_EQ(std::filesystem::file_size(dir / "m.safetensors"), w.total_bytes());
  TensorStore store;
  auto meta = read_safetensors(dir / "m.safetensors", store);
  EXPECT_EQ(meta["format"], "pt");
  const TensorEntry& ea = store.get("a");
  EXPECT_EQ(ea.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(ea.dtype, "F32");
  EXPECT_EQ(std::memcmp(ea.data, a.data(), 24), 0);
  EXPECT_EQ(store.get("b").nbytes, 4u);
  EXPECT_EQ((reinterpret_cast<uintptr_t>(ea.data) - reinterpret_cast<uintptr_t>(ea.file->data())) % 8, 0u);
}

TEST(Safetensors, WriterRejectsOutOfOrderAndWrongSizes) {
  test::TempDir dir;
  SafetensorsWriter w;
  w.declare("a", "F32", {2});
  w.declare("b", "F32", {2});
  w.begin(dir / "m.safetensors");
  float x[2] = {0, 0};
  EXPECT_THROW(w.write("b", x, 8), Error);
  EXPECT_THROW(w.write("a", x, 4), Error);
  w.write("a", x, 8);
  EXPECT_THROW(w.finish(), Error);  // b never written
  EXPECT_THROW(SafetensorsWriter().declare("c", "Q4_K", {2}), Error);
}

TEST(Safetensors, CorruptFiles) {
  test::TempDir dir;
  const std::string ok_entry = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string data(8, '\0');
  {  // shorter than the 8-byte length prefix
    std::ofstream(dir / "short.safetensors") << "abc";
    expect_error(dir / "short.safetensors", "too short");
  }
  expect_error(write_raw(dir, ok_entry, data, 1ull << 40), "header length");
  expect_error(write_raw(dir, ok_entry, data, ok_entry.size() + 100), "header length");
  expect_error(write_raw(dir, "{not json", data), "not valid JSON");
  expect_error(write_raw(dir, "[1,2]", data), "not a JSON object");
  expect_error(write_raw(dir, R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", data), "outside the data");
  expect_error(write_raw(dir, R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data), "data_offsets span");
  expect_error(write_raw(dir, R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data), "negative");
  expect_error(write_raw(dir, R"({"t":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}})", data), "unsupported dtype");
  expect_error(write_raw(dir, R"({"t":{"shape":[2],"data_offsets":[0,8]}})", data), "dtype");
  expect_error(write_raw(dir, R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data), "outside the data");
  expect_error(write_raw(dir, R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data), "data_offsets");
  expect_error(write_raw(dir, R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", data),
               "overflows");
  // truncated data: header promises 8 bytes, file has 4
  expect_error(write_raw(dir, ok_entry, std::string(4, '\0')), "outside the data");
}

TEST(Safetensors, ShardedFolderAndBrokenIndex) {
  test::TempDir dir;
  for (int k = 0; k < 2; ++k) {
    SafetensorsWriter w;
    const std::string name = k == 0 ? "a" : "b";
    w.declare(name, "F32", {1});
    w.begin(dir / ("s" + std::to_string(k) + ".safetensors"));
    float x = float(k);
    w.write(name, &x, 4);
    w.finish();
  }
  std::ofstream(dir / "model.safetensors.index.json")
      << R"({"weight_map":{"a":"s0.safetensors","b":"s1.safetensors"}})";
  TensorStore store = read_safetensors_folder(dir.path());
  EXPECT_EQ(store.size(), 2u);
  std::ofstream(dir / "model.safetensors.index.json", std::ios::trunc)
      << R"({"weight_map":{"a":"s0.safetensors","b":"s9.safetensors"}})";
  EXPECT_THROW(read_safetensors_folder(dir.path()), Error);
  std::ofstream(dir / "model.safetensors.index.json", std::ios::trunc)
      << R"({"weight_map":{"a":"s0.safetensors","b":"s0.safetensors"}})";
  EXPECT_THROW(read_safetensors_folder(dir.path()), Error);  // b is not in s0
  std::ofstream(dir / "model.safetensors.index.json", std::ios::trunc) << "{";
  EXPECT_THROW(read_safetensors_folder(dir.path()), Error);
}

}  // namespace
}  // namespace sr
