// A sharded Hugging Face folder as Model::open reads it (io/safetensors.h
// read_safetensors_folder): the input is model.safetensors.index.json; the folder also
// holds two small valid shards (tensors a, b in the first, c in the second), so an index
// can name real shards, missing shards, path-like shard names, or tensors that are absent.
#include "fuzz_util.h"
#include "io/safetensors.h"

namespace {

std::string shard(const std::string& header_json, size_t data_bytes) {
  std::string h = header_json;
  while ((h.size() + 8) % 8) h += ' ';
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((uint64_t(h.size()) >> (8 * i)) & 0xFF);
  return out + h + std::string(data_bytes, '\0');
}

const std::string& folder() {
  static const std::string dir = [] {
    const std::string d = sr::fuzz::scratch_dir() + "/index";
    std::filesystem::create_directories(d);
    std::ofstream(d + "/model-00001-of-00002.safetensors", std::ios::binary)
        << shard(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F16","shape":[2,2],"data_offsets":[8,16]}})", 16);
    std::ofstream(d + "/model-00002-of-00002.safetensors", std::ios::binary)
        << shard(R"({"c":{"dtype":"BF16","shape":[3],"data_offsets":[0,6]}})", 6);
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = folder();
  std::ofstream(dir + "/model.safetensors.index.json", std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), std::streamsize(size));
  sr::fuzz::expect_ok_or_error([&] {
    sr::TensorStore store = sr::read_safetensors_folder(dir);
    for (const std::string& name : store.names()) (void)store.get(name).describe();
  });
  return 0;
}
