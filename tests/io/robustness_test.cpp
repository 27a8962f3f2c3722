// Issue 13: bad inputs give a clear error naming the file, field or key, never a
// crash, a hang or a silent "PPL nan". Table-driven: each row corrupts one input and
// names the fragment the error must contain. docs/robustness.md lists every row.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <regex>

#include "common/input_file.h"
#include "common/json_parse.h"
#include "common/safe_regex.h"
#include "io/gguf_reader.h"
#include "io/safetensors.h"
#include "io/text.h"
#include "model/model.h"
#include "model/quant_config.h"
#include "model/tensor_convert.h"
#include "random_model.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"
#include "quant/layer_plan.h"

namespace sr {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

struct Case {
  std::string what;
  std::function<void(const std::string& dir)> mutate;  // corrupts the copy in `dir`
  std::string expect;                                  // fragment of the error message
};

std::string nested(int depth, bool object = false) {
  std::string s;
  for (int i = 0; i < depth; ++i) s += object ? "{\"a\":" : "[";
  s += "1";
  for (int i = 0; i < depth; ++i) s += object ? "}" : "]";
  return s;
}

json read_json(const std::string& p) { return json::parse(test::read_text(p)); }
void write_file(const std::string& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }
void set_config(const std::string& dir, const std::function<void(json&)>& f) {
  json j = read_json(dir + "/config.json");
  f(j);
  write_file(dir + "/config.json", j.dump());
}

// Replaces one tensor of a safetensors file (dtypes kept).
void patch_tensor(const std::string& file, const std::string& name, const std::function<void(at::Tensor&)>& f) {
  std::map<std::string, std::string> meta;
  auto tensors = load_tensors(file, &meta);
  for (auto& [n, t] : tensors)
    if (n == name) f(t);
  fs::remove(file);
  save_tensors(file, tensors, meta);
}

// Runs f; the test fails (instead of hanging the suite) if it takes over `seconds`.
std::string error_within(double seconds, const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  std::string e = test::error_of(f);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), seconds);
  return e;
}

void expect_error(const std::string& err, const std::string& fragment, const std::string& what) {
  EXPECT_FALSE(err.empty()) << what << ": accepted";
  EXPECT_NE(err.find(fragment), std::string::npos) << what << ": error was: " << err;
}

TEST(Robustness, HfConfigValuesAndLimits) {
  test::TempDir tmp;
  const std::string base = test::write_random_hf_model(tmp / "base", {});
  auto cfg = [](const char* key, json v) { return [=](const std::string& d) { set_config(d, [&](json& j) { j[key] = v; }); }; };
  auto rope = [](json r) { return [=](const std::string& d) { set_config(d, [&](json& j) { j["rope_scaling"] = r; }); }; };
  const std::vector<Case> cases = {
      {"layer count in the billions", cfg("num_hidden_layers", 3000000000LL), "num_hidden_layers 3000000000 is over the limit"},
      {"hidden_size too large", cfg("hidden_size", int64_t(1) << 40), "hidden_size"},
      {"intermediate_size too large", cfg("intermediate_size", int64_t(1) << 40), "intermediate_size"},
      {"heads too many", cfg("num_attention_heads", int64_t(1) << 40), "num_attention_heads"},
      {"kv heads too many", cfg("num_key_value_heads", int64_t(1) << 40), "num_key_value_heads"},
      {"head_dim x heads overflows int64", cfg("head_dim", int64_t(1) << 61), "head_dim"},
      {"vocab too large", cfg("vocab_size", int64_t(1) << 40), "vocab_size"},
      {"max_position_embeddings terabytes", cfg("max_position_embeddings", int64_t(1) << 45), "max_position_embeddings"},
      {"negative max_position_embeddings", cfg("max_position_embeddings", -5), "max_position_embeddings"},
      {"negative layer count", cfg("num_hidden_layers", -1), "sizes must be positive"},
      // nlohmann's get<int64_t>() casts a float: 256.5 was read as 256, and 1e37 is undefined
      // behaviour (found by fuzz/hf_config_fuzz under UBSan).
      {"hidden_size 256.5", cfg("hidden_size", 256.5), "field 'hidden_size' must be an integer, got 256.5"},
      {"vocab_size 1e37", cfg("vocab_size", 1.02e37), "field 'vocab_size' must be an integer"},
      {"rope_theta zero", cfg("rope_theta", 0.0), "rope_theta must be positive"},
      {"rope_theta negative", cfg("rope_theta", -10000.0), "rope_theta must be positive"},
      {"rms_norm_eps zero", cfg("rms_norm_eps", 0.0), "rms_norm_eps must be positive"},
      {"rms_norm_eps negative", cfg("rms_norm_eps", -1e-6), "rms_norm_eps must be positive"},
      {"linear rope factor zero", rope({{"type", "linear"}, {"factor", 0.0}}), "rope_scaling.factor must be positive"},
      {"linear rope factor negative", rope({{"type", "linear"}, {"factor", -2.0}}), "rope_scaling.factor must be positive"},
      {"llama3 rope low > high", rope({{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0},
                                       {"high_freq_factor", 1.0}, {"original_max_position_embeddings", 8192}}),
       "low_freq_factor"},
      {"config.json nested 100000 deep", [](const std::string& d) { write_file(d + "/config.json", nested(100000)); },
       "nested deeper than 256"},
      {"hidden_size nested 100000 deep (its dump in the error message overflowed the stack)",
       [](const std::string& d) { write_file(d + "/config.json", "{\"hidden_size\": " + nested(100000) + "}"); },
       "nested deeper than 256"},
      {"config.json not JSON", [](const std::string& d) { write_file(d + "/config.json", "{\"hidden_size\": 64,"); },
       "config.json: not valid JSON"},
      {"config.json is a FIFO",
       [](const std::string& d) { fs::remove(d + "/config.json"); ASSERT_EQ(::mkfifo((d + "/config.json").c_str(), 0600), 0); },
       "FIFO"},
      {"index.json nested deep",
       [](const std::string& d) { write_file(d + "/model.safetensors.index.json", nested(100000, true)); },
       "model.safetensors.index.json: JSON nested deeper"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string dir = tmp / ("m" + std::to_string(i));
    fs::copy(base, dir, fs::copy_options::recursive);
    cases[i].mutate(dir);
    const std::string err = error_within(10, [&] { Model::open(dir)->load_block(0); });
    expect_error(err, cases[i].expect, cases[i].what);
    if (cases[i].what.find("FIFO") == std::string::npos && cases[i].what.find("index") == std::string::npos)
      EXPECT_NE(err.find("config.json"), std::string::npos) << cases[i].what << ": " << err;
  }
}

TEST(Robustness, NonFiniteWeightsAreRefusedNamingTheTensor) {
  test::TempDir tmp;
  const std::string down = "model.layers.0.mlp.down_proj.weight";
  for (const char* dtype : {"F32", "F16", "BF16"})
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
      test::RandomModelSpec spec;
      spec.dtype = dtype;
      const std::string dir = test::write_random_hf_model(tmp / (std::string(dtype) + std::to_string(std::isnan(bad))), spec);
      patch_tensor(dir + "/model.safetensors", down, [&](at::Tensor& t) { t.view({-1})[7] = bad; });
      const std::string err = test::error_of([&] { Model::open(dir)->load_block(0); });
      expect_error(err, down, std::string(dtype) + " non-finite");
      EXPECT_NE(err.find("NaN or infinite"), std::string::npos) << err;
    }
  // GGUF (f32 tensors): patch the bytes of one weight.
  const std::string gguf = test::write_random_gguf_model(tmp / "g", {}, "f32");
  uint64_t at = 0;
  {
    GgufReader r(gguf);
    at = r.data_offset() + r.tensor("blk.0.ffn_down.weight").offset + 4 * 3;
  }
  {
    std::fstream f(gguf, std::ios::in | std::ios::out | std::ios::binary);
    const float nan = std::numeric_limits<float>::quiet_NaN();
    f.seekp(std::streamoff(at));
    f.write(reinterpret_cast<const char*>(&nan), 4);
  }
  expect_error(test::error_of([&] { Model::open(gguf)->load_block(0); }), "blk.0.ffn_down.weight", "GGUF NaN");
}

// A llama.c checkpoint of the smallest shapes, every weight 0.01 except `poison` at float index `at`.
std::string write_llama2c(const std::string& path, std::vector<int32_t> header, float poison = 0.01f, size_t at = 0) {
  const int64_t D = header[0], F = header[1], L = header[2], H = header[3], KV = header[4];
  const int64_t V = std::abs(int64_t(header[5])), S = header[6], kv = D * KV / H, hh = D / H / 2;
  int64_t n = V * D + L * (2 * D + D * D * 2 + 2 * kv * D + 3 * F * D) + D + 2 * S * hh + (header[5] < 0 ? V * D : 0);
  std::vector<float> w(size_t(std::max<int64_t>(n, 0)), 0.01f);
  if (at < w.size()) w[at] = poison;
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(header.data()), 28);
  f.write(reinterpret_cast<const char*>(w.data()), std::streamsize(w.size() * 4));
  return path;
}

TEST(Robustness, Llama2cHeaderAndWeights) {
  test::TempDir tmp;
  const std::vector<int32_t> ok = {8, 16, 1, 2, 2, 16, 4};
  EXPECT_EQ(test::error_of([&] { Model::open(write_llama2c(tmp / "ok.bin", ok))->load_block(0); }), "");
  // The NaN sits in layer 0's rms weight (after the 16x8 embedding): named on conversion.
  const std::string nan = write_llama2c(tmp / "nan.bin", ok, std::numeric_limits<float>::quiet_NaN(), 16 * 8 + 3);
  expect_error(test::error_of([&] { Model::open(nan)->load_block(0); }), "model.layers.0.input_layernorm.weight",
               "llama2.c NaN");
  std::vector<int32_t> int_min = ok;
  int_min[5] = std::numeric_limits<int32_t>::min();  // -INT32_MIN overflowed before
  write_llama2c(tmp / "intmin.bin", ok);
  {
    std::fstream f(tmp / "intmin.bin", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.write(reinterpret_cast<const char*>(&int_min[5]), 4);
  }
  expect_error(test::error_of([&] { Model::open(tmp / "intmin.bin"); }), "implausible header", "vocab INT32_MIN");
  std::vector<int32_t> layers = ok;
  layers[2] = 2000000000;
  write_file(tmp / "layers.bin", std::string(reinterpret_cast<const char*>(layers.data()), 28) + std::string(64, '\0'));
  expect_error(error_within(5, [&] { Model::open(tmp / "layers.bin"); }), "implausible header", "llama2.c 2e9 layers");
  // A versioned export (llama2.c export.py --version 1/2): magic uint32 0x616b3432 ("ak42"),
  // version, then the 7 header ints. Was misread as a legacy header ("implausible header").
  const uint32_t magic_version[2] = {0x616b3432u, 1};
  write_file(tmp / "v1.bin", std::string(reinterpret_cast<const char*>(magic_version), 8) +
                                 std::string(reinterpret_cast<const char*>(ok.data()), 28) + std::string(256, '\0'));
  expect_error(test::error_of([&] { Model::open(tmp / "v1.bin"); }), "versioned llama2.c export", "llama2.c version 1");
}

// Patches `len` bytes at the offset just past the first occurrence of `marker`.
void patch_after(const std::string& file, const std::string& marker, const void* bytes, size_t len, size_t skip = 0) {
  std::string s = test::read_text(file);
  const size_t p = s.find(marker);
  ASSERT_NE(p, std::string::npos) << marker;
  std::memcpy(&s[p + marker.size() + skip], bytes, len);
  write_file(file, s);
}

TEST(Robustness, GgufLimitsAndMagic) {
  test::TempDir tmp;
  const std::string good = test::write_random_gguf_model(tmp / "g", {}, "f32");
  auto copy = [&](const std::string& name) {
    fs::copy_file(good, tmp / name);
    return tmp / name;
  };
  // llama.block_count: key, u32 type tag (4), u32 value.
  const std::string layers = copy("layers.gguf");
  const uint32_t huge = 0xFFFFFFFFu;
  patch_after(layers, "llama.block_count", &huge, 4, 4);
  expect_error(error_within(5, [&] { Model::open(layers); }), "num_hidden_layers 4294967295 is over the limit",
               "GGUF block_count 4e9");
  const std::string ctx = copy("ctx.gguf");
  patch_after(ctx, "llama.context_length", &huge, 4, 4);
  expect_error(test::error_of([&] { Model::open(ctx); }), "max_position_embeddings", "GGUF context 4e9");
  // The first key's length (offset 24) claims 2^40 bytes.
  const std::string str = copy("str.gguf");
  {
    std::fstream f(str, std::ios::in | std::ios::out | std::ios::binary);
    const uint64_t len = uint64_t(1) << 40;
    f.seekp(24);
    f.write(reinterpret_cast<const char*>(&len), 8);
  }
  // (bounded by the file first: limits::kMaxGgufStringBytes needs a file over 64 MiB to bite)
  expect_error(test::error_of([&] { GgufReader r(str); }), "file ends inside the key of metadata entry #0",
               "GGUF string length 2^40");
  const std::string count = copy("count.gguf");
  {
    std::fstream f(count, std::ios::in | std::ios::out | std::ios::binary);
    const uint64_t n = uint64_t(1) << 32;
    f.seekp(8);
    f.write(reinterpret_cast<const char*>(&n), 8);
  }
  expect_error(test::error_of([&] { GgufReader r(count); }), "tensors, more than the", "GGUF tensor count 2^32");
  const std::string magic = copy("magic.gguf");
  {
    std::fstream f(magic, std::ios::in | std::ios::out | std::ios::binary);
    f.write("GGUX", 4);
  }
  const std::string err = test::error_of([&] { Model::open(magic); });
  expect_error(err, "not a GGUF file", "GGUF bad magic");
  EXPECT_EQ(err.find("llama2.c"), std::string::npos) << err;
}

// A safetensors file from a raw header text and `data_bytes` zero bytes.
std::string write_safetensors_raw(const std::string& path, const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(&s[0], &n, 8);
  write_file(path, s + header + std::string(data_bytes, '\0'));
  return path;
}

TEST(Robustness, SafetensorsHeaders) {
  test::TempDir tmp;
  TensorStore st;
  const std::string entry = R"({"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  const std::string entry2 = R"({"dtype":"F32","shape":[2],"data_offsets":[8,16]})";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"{\"a\":" + entry + ",\"a\":" + entry2 + "}", "tensor 'a' appears twice"},
      {nested(100000), "nested deeper than 256"},
      {"{\"a\":" + entry + ",\"__metadata__\":" + nested(5000, true) + "}", "nested deeper than 256"},
      {"{\"a\":" + entry, "header is not valid JSON"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string f = write_safetensors_raw(tmp / ("h" + std::to_string(i) + ".safetensors"), cases[i].first, 16);
    TensorStore s;
    const std::string err = test::error_of([&] { read_safetensors(f, s); });
    expect_error(err, cases[i].second, "safetensors case " + std::to_string(i));
    EXPECT_NE(err.find(f), std::string::npos) << err;
  }
  TensorStore s;
  EXPECT_EQ(test::error_of([&] { read_safetensors(write_safetensors_raw(tmp / "ok.safetensors", "{\"a\":" + entry + ",\"b\":" + entry2 + "}", 16), s); }), "");
}

TEST(Robustness, Utf8IsStrict) {
  struct U { std::string bytes; bool ok; const char* what; };
  const std::vector<U> cases = {
      {"plain ascii", true, "ascii"},
      {"\xF0\x9F\x98\x80", true, "U+1F600"},
      {"\xF4\x8F\xBF\xBF", true, "U+10FFFF, the last code point"},
      {"\xEF\xBF\xBD", true, "U+FFFD"},
      {"\xF4\x90\x80\x80", false, "U+110000, beyond Unicode"},
      {"\xF5\x80\x80\x80", false, "lead byte F5"},
      {"\xF7\xBF\xBF\xBF", false, "lead byte F7"},
      {"\xC0\x80", false, "overlong 2-byte NUL"},
      {"\xE0\x80\x80", false, "overlong 3-byte"},
      {"\xE0\x9F\xBF", false, "overlong 3-byte U+07FF"},
      {"\xF0\x80\x80\x80", false, "overlong 4-byte"},
      {"\xF0\x8F\xBF\xBF", false, "overlong 4-byte U+FFFF"},
      {"\xED\xA0\x80", false, "surrogate U+D800"},
      {"\xED\xBF\xBF", false, "surrogate U+DFFF"},
      {"ab\xE2\x82", false, "truncated at the end"},
      {"\x80", false, "lone continuation byte"},
      {"\xFF", false, "byte FF"},
  };
  for (const U& u : cases) {
    const std::string err = test::error_of([&] { check_utf8(u.bytes, "t.txt"); });
    if (u.ok) EXPECT_EQ(err, "") << u.what;
    else expect_error(err, "t.txt: not valid UTF-8 at byte offset", u.what);
  }
}

TEST(Robustness, TextInputsOnlyRegularFiles) {
  test::TempDir tmp;
  ASSERT_EQ(::mkfifo((tmp / "fifo").c_str(), 0600), 0);
  fs::create_directories(tmp / "folder");
  write_file(tmp / "empty.txt", "");
  write_file(tmp / "blank.txt", "\n\n  \n");
  write_file(tmp / "deep.jsonl", "{\"text\": \"a\"}\n" + nested(100000) + "\n");
  write_file(tmp / "notobj.jsonl", "[1, 2]\n");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {tmp / "fifo", "a FIFO"},
      {"/dev/zero", "a character device"},
      {tmp / "folder", "a folder"},
      {tmp / "missing.txt", "No such file"},
      {tmp / "empty.txt", "is empty"},
      {tmp / "blank.txt", "no documents"},
      {tmp / "deep.jsonl", "deep.jsonl:2: JSON nested deeper"},
      {tmp / "notobj.jsonl", "notobj.jsonl:1: expected an object"},
  };
  for (const auto& c : cases) {  // (clang 14 cannot capture a structured binding in a lambda)
    const std::string& path = c.first;
    expect_error(error_within(5, [&] { read_documents(path); }), c.second, path);
  }
  expect_error(test::error_of([&] { read_input_file(tmp / "blank.txt", 3); }), "over the limit of 3 bytes", "size limit");
  // A FIFO given as a model, a tokenizer or a layer config never blocks.
  expect_error(error_within(5, [&] { Model::open(tmp / "fifo"); }), "FIFO", "--model FIFO");
  expect_error(error_within(5, [&] { Model::open("/dev/zero"); }), "character device", "--model /dev/zero");
  expect_error(error_within(5, [&] { read_hf_tokenizer_json(tmp / "fifo"); }), "FIFO", "tokenizer FIFO");
  expect_error(error_within(5, [&] { read_sentencepiece_model(tmp / "fifo"); }), "FIFO", "tokenizer.model FIFO");
}

TEST(Robustness, TokenizerFiles) {
  test::TempDir tmp;
  // (a deep pre_tokenizer overflowed the stack before: SIGSEGV)
  write_file(tmp / "tokenizer.json", "{\"pre_tokenizer\": " + nested(100000) +
                                         ", \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
  const std::string err = error_within(10, [&] { read_hf_tokenizer_json(tmp / "tokenizer.json"); });
  expect_error(err, "nested deeper than 256", "tokenizer.json deep");
  EXPECT_NE(err.find(tmp / "tokenizer.json"), std::string::npos) << err;
  // tokenizer_config.json beside a model: read when the model has a tokenizer.
  const std::string dir = test::write_random_hf_model(tmp / "m", {});
  fs::copy_file(test::repo("demo/tinystories-llama-4m/tokenizer.model"), dir + "/tokenizer.model");
  write_file(dir + "/tokenizer_config.json", nested(100000));
  expect_error(error_within(10, [&] { Model::open(dir); }), "tokenizer_config.json: JSON nested deeper",
               "tokenizer_config.json deep");
}

TEST(Robustness, LayerConfigKeysCannotHang) {
  test::TempDir tmp;
  test::RandomModelSpec spec;
  spec.hidden = 128;  // every projection fits W4A16's groups of 128
  spec.intermediate = 256;
  const std::string dir = test::write_random_hf_model(tmp / "m", spec);
  auto model = Model::open(dir);
  auto plan_with = [&](const std::string& text) {
    write_file(tmp / "lc.json", text);
    return make_layer_plan(*model, PlanOptions{preset_scheme("W4A16"), tmp / "lc.json", false, {}});
  };
  struct C { std::string json, expect; };
  const std::vector<C> cases = {
      {R"x({"(.|.)*Z": "W8A16"})x", "matches no quantizable layer"},  // accepted, linear time, no hang
      {R"x({"(a+)+$": "W8A16"})x", "matches no quantizable layer"},
      {R"x({"layers\\.(\\d{1,2})\\.": "W8A16"})x", "counted repetition"},
      {R"x({"mlp.?*proj": "W8A16"})x", "quantifier with nothing to repeat"},  // was accepted; ECMAScript refuses
      {R"x({"(?=mlp)": "W8A16"})x", "look-around"},
      {R"x({"(mlp)\\1": "W8A16"})x", "back-references"},
      {R"x({"(mlp": "W8A16"})x", "unbalanced '('"},
      {R"x({"[mlp": "W8A16"})x", "unterminated character class"},
      {"{\"" + std::string(2000, 'a') + "\": \"W8A16\"}", "longer than the limit of 1024"},
      {nested(100000, true), "nested deeper than 256"},
      {R"x({"mlp": )x", "not valid JSON"},
      {R"x({"mlp": {"bits": 4.5}})x", "field 'bits' must be an integer, got 4.5"},  // was read as 4
      {R"x({"mlp": {"bits": 4, "group_size": 1e30}})x", "field 'group_size' must be an integer"},  // was UB
  };
  for (const C& c : cases) {
    const std::string err = error_within(5, [&] { plan_with(c.json); });
    expect_error(err, c.expect, c.json.substr(0, 60));
    EXPECT_NE(err.find("lc.json"), std::string::npos) << err;
  }
  ASSERT_EQ(::mkfifo((tmp / "fifo.json").c_str(), 0600), 0);
  expect_error(error_within(5, [&] { make_layer_plan(*model, PlanOptions{preset_scheme("W4A16"), tmp / "fifo.json", false, {}}); }),
               "FIFO", "layer config FIFO");
  // The accepted subset still selects what it says.
  const LayerPlan p = plan_with(R"x({"layers\\.[0-9]+\\.mlp\\.(?:gate|up)_proj$": "W8A16", "^model\\.layers\\.1\\.self_attn\\.[qk]_proj": "W2A16"})x");
  int w8 = 0, w2 = 0;
  for (const LayerChoice& c : p.layers) {
    w8 += c.scheme.bits == 8;
    w2 += c.scheme.bits == 2;
  }
  EXPECT_EQ(w8, 4);
  EXPECT_EQ(w2, 2);
}

TEST(Robustness, QuantizationConfigKeysCannotHang) {
  auto config = [](const std::string& key) {
    return json{{"quantization_config",
                 {{"quant_method", "auto-round"}, {"bits", 4}, {"group_size", 128}, {"sym", true},
                  {"extra_config", {{key, {{"bits", 8}}}}}}}};
  };
  const auto c = parse_quant_config(config("(.|.)*Z"), "m/config.json");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(error_within(2, [&] { EXPECT_EQ(c->layer("model.layers.0.mlp.down_proj").scheme.bits, 4); }), "");
  expect_error(test::error_of([&] {
                 auto b = parse_quant_config(config("(x{2,})"), "m/config.json");
                 if (b) b->layer("model.layers.0.mlp.down_proj");
               }),
               "not a supported pattern", "extra_config counted repetition");
  // An extra_config entry's bits / group_size as a float: was cast (4.5 -> 4; 1e30 undefined).
  for (const json& bad : {json{{"bits", 4.5}}, json{{"bits", 4}, {"group_size", 1e30}}}) {
    json q = config("mlp");
    q["quantization_config"]["extra_config"]["mlp"] = bad;
    expect_error(test::error_of([&] {
                   auto c2 = parse_quant_config(q, "m/config.json");
                   if (c2) c2->layer("model.layers.0.mlp.down_proj");
                 }),
                 "must be an integer", "extra_config " + bad.dump());
  }
}

// SafeRegex agrees with std::regex_search on the accepted subset (a fixed table; the
// random differential check of 425k cases is described in docs/robustness.md).
TEST(Robustness, SafeRegexMatchesStdRegexOnItsSubset) {
  const char* patterns[] = {"model\\.layers\\.0\\.", "layers\\.[0-9]+\\.mlp", "(q|k|v)_proj$", "^model\\.layers\\.(1|2)\\.",
                            "mlp\\.(?:gate|up)_proj", "\\d+\\.self_attn\\.o_proj", "^lm_head$", "layers\\.1[0-5]\\.",
                            "[^.]+_proj$", ".*down.*", "a?b+c*", "(a*)*b", "[\\d.]+mlp", "[a-z_]+$", "x|", ""};
  const char* names[] = {"model.layers.0.mlp.down_proj", "model.layers.12.self_attn.q_proj", "model.layers.1.mlp.gate_proj",
                         "lm_head", "model.layers.15.mlp.up_proj", "bbb", "abc", ""};
  for (const char* p : patterns)
    for (const char* n : names)
      EXPECT_EQ(SafeRegex(p, "t").search(n), std::regex_search(std::string(n), std::regex(p))) << p << " on " << n;
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(SafeRegex("(.|.)*Z", "t").search(std::string(100000, 'a')));
  EXPECT_FALSE(SafeRegex("(a|aa)*(b|bb)*c", "t").search(std::string(100000, 'a')));
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
}

TEST(Robustness, JsonDepthScanRespectsStrings) {
  // Brackets inside strings (and escaped quotes) do not count.
  EXPECT_EQ(test::error_of([] { parse_json_text("{\"a\": \"" + std::string(1000, '[') + "\\\"" + std::string(1000, '{') + "\"}", "s.json"); }), "");
  EXPECT_EQ(test::error_of([] { parse_json_text(nested(256), "ok.json"); }), "");
  expect_error(test::error_of([] { parse_json_text(nested(257), "d.json"); }), "d.json: JSON nested deeper than 256 levels",
               "257 levels");
  expect_error(test::error_of([] { read_json_file("/dev/zero"); }), "character device", "/dev/zero JSON");
}

// The CLI end to end: clear errors with exit code 1, never a hang (timeout's 124), a
// crash (139) or "internal error" (3).
TEST(RobustnessCli, BadInputsGiveClearErrors) {
  test::TempDir tmp;
  ASSERT_EQ(::mkfifo((tmp / "fifo").c_str(), 0600), 0);
  const std::string demo = test::repo("demo/tinystories-llama-4m");
  fs::copy(demo, tmp / "deep", fs::copy_options::recursive);
  write_file(tmp / "deep/config.json", "{\"hidden_size\": " + nested(200000) + "}");  // SIGSEGV before
  fs::copy(demo, tmp / "qc", fs::copy_options::recursive);
  set_config(tmp / "qc", [](json& j) {
    j["quantization_config"] = {{"quant_method", "auto-round"}, {"bits", 4}, {"group_size", 128}, {"sym", true},
                                {"extra_config", {{"(.|.)*Z", {{"bits", 8}}}}}};
  });
  write_file(tmp / "magic.gguf", "GGUX" + std::string(64, '\0'));
  write_file(tmp / "file.txt", "a regular file");
  const std::string q = " quantize --iters 0 --disable_opt_rtn --model " + demo;
  struct C { std::string args, expect; };
  const std::vector<C> cases = {
      {" inspect --model " + (tmp / "fifo"), "FIFO"},
      {" inspect --model /dev/zero", "character device"},
      {" inspect --model " + (tmp / "deep"), "nested deeper than 256"},
      {" inspect --model " + (tmp / "magic.gguf"), "not a GGUF file"},
      {" eval --model " + demo + " --text " + (tmp / "fifo"), "FIFO"},
      {" eval --model " + demo + " --text /dev/zero", "character device"},
      {" eval --model " + demo + " --text " + (tmp / "file.txt") + " --tokenizer " + (tmp / "fifo"), "FIFO"},
      {q + " --group_size -5 --output_dir " + (tmp / "o1"), "weight group_size must be > 0 (weights per group), -1"},
      {q + " --output_dir " + (tmp / "file.txt/sub"), tmp / "file.txt"},
  };
  for (const C& c : cases) {
    const auto r = test::run_command("timeout 60 " + test::cli() + c.args);
    EXPECT_EQ(r.exit_code, 1) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_EQ(r.err.find("internal error"), std::string::npos) << c.args << "\n" << r.err;
  }
  // A catastrophic regex inside the model's own quantization_config: inspect ends (the
  // folder has no packed tensors, so it is refused for that, not hung).
  const auto r = test::run_command("timeout 60 " + test::cli() + " inspect --model " + (tmp / "qc"));
  EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 1) << r.exit_code << "\n" << r.err;
}

}  // namespace
}  // namespace sr
