// Model::open on corrupt or unsupported GGUF files: each gives an error naming the
// file and the key or tensor at fault (never a crash), and a GGUF tokenizer we cannot
// use fails only when a tokenizer is needed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "common/error.h"
#include "io/gguf_reader.h"
#include "io/gguf_writer.h"
#include "model/model.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {

using Kv = std::vector<std::pair<std::string, GgufValue>>;
struct Tensor {
  std::string name;
  GgmlType type;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

// Copies `src` to `dst` with its metadata and tensors edited by the callbacks.
std::string rewrite(const std::string& src, const std::string& dst, const std::function<void(Kv&)>& edit_kv,
                    const std::function<void(std::vector<Tensor>&)>& edit_tensors = nullptr) {
  GgufReader r(src);
  Kv kv = r.metadata();
  std::vector<Tensor> ts;
  for (const GgufTensorInfo& t : r.tensors()) ts.push_back({t.name, t.type, t.shape, {t.data, t.data + t.nbytes}});
  if (edit_kv) edit_kv(kv);
  if (edit_tensors) edit_tensors(ts);
  GgufWriter w(dst);
  for (auto& [k, v] : kv) w.set(k, v);
  for (const Tensor& t : ts) w.add_tensor(t.name, t.type, t.shape);
  for (const Tensor& t : ts) w.write_tensor(t.name, t.bytes.data(), t.bytes.size());
  w.finish();
  return dst;
}

void set_kv(Kv& kv, const std::string& key, GgufValue v) {
  for (auto& [k, old] : kv)
    if (k == key) { old = std::move(v); return; }
  kv.emplace_back(key, std::move(v));
}

void drop_kv(Kv& kv, const std::string& key) {
  kv.erase(std::remove_if(kv.begin(), kv.end(), [&](const auto& e) { return e.first == key; }), kv.end());
}

std::string open_error(const std::string& path, const OpenOptions& o = {}) {
  try {
    Model::open(path, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

class GgufModelErrors : public ::testing::Test {
 protected:
  void SetUp() override { good_ = test::write_random_gguf_model(dir_.path(), {}, "q4_0"); }
  // The good file rewritten; returns the error Model::open gives for it.
  std::string error_with(const std::function<void(Kv&)>& kv, const std::function<void(std::vector<Tensor>&)>& ts = nullptr) {
    return open_error(rewrite(good_, dir_ / "bad.gguf", kv, ts));
  }
  test::TempDir dir_;
  std::string good_;
};

TEST_F(GgufModelErrors, TheGoodFileOpensAndRuns) {
  auto m = Model::open(good_);
  EXPECT_EQ(m->format(), "gguf");
  EXPECT_EQ(m->config().vocab, 96);
  EXPECT_EQ(m->tokenizer().vocab_size(), 96);
  auto logits = m->forward(at::randint(0, 96, {1, 7}, at::kLong));
  EXPECT_TRUE(logits.isfinite().all().item<bool>());
}

TEST_F(GgufModelErrors, UnsupportedArchitectureIsNamed) {
  const std::string e = error_with([](Kv& kv) { set_kv(kv, "general.architecture", GgufValue::string("gemma2")); });
  EXPECT_NE(e.find("architecture 'gemma2' is not supported (supported: llama, qwen2, qwen3, qwen2moe, qwen3moe)"),
            std::string::npos) << e;
  EXPECT_NE(e.find("bad.gguf"), std::string::npos) << e;
}

TEST_F(GgufModelErrors, MissingOrMistypedHyperParameters) {
  std::string e = error_with([](Kv& kv) { drop_kv(kv, "llama.block_count"); });
  EXPECT_NE(e.find("llama.block_count is missing"), std::string::npos) << e;
  e = error_with([](Kv& kv) { set_kv(kv, "llama.embedding_length", GgufValue::string("64")); });
  EXPECT_NE(e.find("llama.embedding_length is str, expected an integer"), std::string::npos) << e;
  e = error_with([](Kv& kv) { drop_kv(kv, "llama.attention.layer_norm_rms_epsilon"); });
  EXPECT_NE(e.find("layer_norm_rms_epsilon is missing"), std::string::npos) << e;
  e = error_with([](Kv& kv) { set_kv(kv, "llama.vocab_size", GgufValue::scalar<uint32_t>(100)); });
  EXPECT_NE(e.find("llama.vocab_size = 100 but token_embd.weight has 96 rows"), std::string::npos) << e;
  e = error_with([](Kv& kv) { set_kv(kv, "llama.attention.head_count_kv", GgufValue::array<uint32_t>({2, 2})); });
  EXPECT_NE(e.find("per-layer head counts"), std::string::npos) << e;
  e = error_with([](Kv& kv) { set_kv(kv, "llama.rope.dimension_count", GgufValue::scalar<uint32_t>(8)); });
  EXPECT_NE(e.find("partial RoPE"), std::string::npos) << e;
  e = error_with([](Kv& kv) { set_kv(kv, "llama.rope.scaling.type", GgufValue::string("longrope")); });
  EXPECT_NE(e.find("'longrope' is not supported"), std::string::npos) << e;
  e = error_with([](Kv& kv) { set_kv(kv, "llama.rope.scaling.type", GgufValue::string("yarn")); });
  EXPECT_NE(e.find("yarn rope scaling without llama.rope.scaling.original_context_length"), std::string::npos) << e;
  e = error_with([](Kv& kv) {
    set_kv(kv, "llama.rope.scaling.type", GgufValue::string("yarn"));
    set_kv(kv, "llama.rope.scaling.original_context_length", GgufValue::scalar<uint32_t>(64));
    set_kv(kv, "llama.rope.scaling.yarn_beta_fast", GgufValue::scalar<float>(16));
  });
  EXPECT_NE(e.find("llama.rope.scaling.yarn_beta_fast other than 32"), std::string::npos) << e;
  // A dense file claiming experts: a Mixtral needs expert_used_count, then its expert tensors.
  e = error_with([](Kv& kv) { set_kv(kv, "llama.expert_count", GgufValue::scalar<uint32_t>(8)); });
  EXPECT_NE(e.find("metadata llama.expert_used_count is missing"), std::string::npos) << e;
  e = error_with([](Kv& kv) {
    set_kv(kv, "llama.expert_count", GgufValue::scalar<uint32_t>(8));
    set_kv(kv, "llama.expert_used_count", GgufValue::scalar<uint32_t>(2));
  });
  EXPECT_NE(e.find("unexpected tensor 'blk.0.ffn_down.weight'"), std::string::npos) << e;
  e = error_with([](Kv& kv) {  // key_length given (else derived as 64 / 3, refused as partial RoPE first)
    set_kv(kv, "llama.attention.head_count", GgufValue::scalar<uint32_t>(3));
    set_kv(kv, "llama.attention.key_length", GgufValue::scalar<uint32_t>(16));
    set_kv(kv, "llama.attention.value_length", GgufValue::scalar<uint32_t>(16));
  });
  EXPECT_NE(e.find("not a multiple of num_key_value_heads"), std::string::npos) << e;
}

TEST_F(GgufModelErrors, MissingExtraAndMisshapedTensorsAreNamed) {
  auto drop = [](const std::string& name) {
    return [name](std::vector<Tensor>& ts) {
      ts.erase(std::remove_if(ts.begin(), ts.end(), [&](const Tensor& t) { return t.name == name; }), ts.end());
    };
  };
  std::string e = error_with(nullptr, drop("blk.1.ffn_up.weight"));
  EXPECT_NE(e.find("'blk.1.ffn_up.weight' is missing"), std::string::npos) << e;
  e = error_with(nullptr, drop("token_embd.weight"));
  EXPECT_NE(e.find("token_embd.weight"), std::string::npos) << e;
  e = error_with(nullptr, [](std::vector<Tensor>& ts) {
    ts.push_back({"blk.0.attn_qkv.weight", GgmlType::F32, {4}, std::vector<uint8_t>(16)});
  });
  EXPECT_NE(e.find("unexpected tensor 'blk.0.attn_qkv.weight'"), std::string::npos) << e;
  e = error_with(nullptr, [](std::vector<Tensor>& ts) {
    for (Tensor& t : ts)
      if (t.name == "blk.0.attn_v.weight") t.shape = {t.shape[1], t.shape[0]};  // 32x64 -> 64x32
  });
  EXPECT_NE(e.find("'blk.0.attn_v.weight' [64, 32] Q4_0"), std::string::npos) << e;
  EXPECT_NE(e.find("should have shape [32, 64]"), std::string::npos) << e;
  e = error_with(nullptr, [](std::vector<Tensor>& ts) {
    for (Tensor& t : ts)
      if (t.name == "rope_freqs.weight" || t.name == "output_norm.weight") t.name = "rope_freqs.weight";
  });
  EXPECT_NE(e.find("rope_freqs.weight has 64 elements, expected head_dim / 2 = 8"), std::string::npos) << e;
}

// A type ggml defines but we cannot decode (an F32 norm of 64 patched to Q8_1: two 36-byte
// blocks inside its 256 bytes), and IQ4_NL, which has Q4_0's block geometry and decodes.
TEST_F(GgufModelErrors, UndecodableTypeIsNamedAtOpen) {
  std::ifstream in(good_, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string name = "blk.0.attn_q.weight";
  auto it = std::search(bytes.begin(), bytes.end(), name.begin(), name.end());
  ASSERT_NE(it, bytes.end());
  const size_t type_at = size_t(it - bytes.begin()) + name.size() + 4 + 2 * 8;  // n_dims, ne[2]
  uint32_t type;
  std::memcpy(&type, &bytes[type_at], 4);
  ASSERT_EQ(type, uint32_t(GgmlType::Q4_0));
  std::vector<char> norm_patched = bytes;
  const std::string norm = "blk.0.attn_norm.weight";
  auto at = std::search(bytes.begin(), bytes.end(), norm.begin(), norm.end());
  ASSERT_NE(at, bytes.end());
  const size_t norm_type_at = size_t(at - bytes.begin()) + norm.size() + 4 + 8;  // n_dims, ne[1]
  uint32_t norm_type;
  std::memcpy(&norm_type, &bytes[norm_type_at], 4);
  ASSERT_EQ(norm_type, uint32_t(GgmlType::F32));
  norm_type = uint32_t(GgmlType::Q8_1);
  std::memcpy(&norm_patched[norm_type_at], &norm_type, 4);
  std::ofstream(dir_ / "q81.gguf", std::ios::binary).write(norm_patched.data(), std::streamsize(norm_patched.size()));
  const std::string e = open_error(dir_ / "q81.gguf");
  EXPECT_NE(e.find("tensor " + norm + " has type q8_1, which signround cannot decode"), std::string::npos) << e;
  type = uint32_t(GgmlType::IQ4_NL);
  std::memcpy(&bytes[type_at], &type, 4);
  std::ofstream(dir_ / "iq.gguf", std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  EXPECT_NO_THROW(Model::open(dir_ / "iq.gguf")->load_block(0));
}

TEST_F(GgufModelErrors, TruncatedFileNamesTheFile) {
  std::filesystem::copy_file(good_, dir_ / "cut.gguf");
  std::filesystem::resize_file(dir_ / "cut.gguf", std::filesystem::file_size(good_) - 100);
  const std::string e = open_error(dir_ / "cut.gguf");
  EXPECT_NE(e.find("cut.gguf"), std::string::npos) << e;
}

TEST_F(GgufModelErrors, MalformedTokenizerMetadataFailsAtOpen) {
  std::string e = error_with([](Kv& kv) { set_kv(kv, "tokenizer.ggml.scores", GgufValue::array<float>({0, 1})); });
  EXPECT_NE(e.find("tokenizer.ggml.scores has 2 entries but tokenizer.ggml.tokens has 96"), std::string::npos) << e;
  e = error_with([](Kv& kv) {
    std::vector<int32_t> types(96, 1);
    types[5] = 9;
    set_kv(kv, "tokenizer.ggml.token_type", GgufValue::array(types));
  });
  EXPECT_NE(e.find("tokenizer.ggml.token_type[5] is 9"), std::string::npos) << e;
  e = error_with([](Kv& kv) { set_kv(kv, "tokenizer.ggml.bos_token_id", GgufValue::scalar<uint32_t>(500)); });
  EXPECT_NE(e.find("500"), std::string::npos) << e;
}

// Like an HF folder with an unreadable tokenizer.json: the model opens, and the error
// appears when a tokenizer is needed.
TEST_F(GgufModelErrors, UnsupportedTokenizerFailsOnlyWhenNeeded) {
  auto m = Model::open(rewrite(good_, dir_ / "bert.gguf",
                               [](Kv& kv) { set_kv(kv, "tokenizer.ggml.model", GgufValue::string("bert")); }));
  EXPECT_FALSE(m->has_tokenizer());
  m->forward(at::zeros({1, 3}, at::kLong));
  try {
    m->tokenizer();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer model 'bert' is not supported"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tokenizer_path"), std::string::npos) << e.what();
  }
  // A byte-level ("gpt2") vocabulary with a pre-tokenizer we do not implement.
  auto pre = Model::open(rewrite(good_, dir_ / "falcon.gguf", [](Kv& kv) {
    set_kv(kv, "tokenizer.ggml.model", GgufValue::string("gpt2"));
    set_kv(kv, "tokenizer.ggml.pre", GgufValue::string("falcon"));
  }));
  EXPECT_FALSE(pre->has_tokenizer());
  try {
    pre->tokenizer();
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pre-tokenizer 'falcon'"), std::string::npos) << e.what();
  }
  // "gpt2" without merges is malformed: the file is refused, naming the key.
  try {
    Model::open(rewrite(good_, dir_ / "gpt2.gguf",
                        [](Kv& kv) { set_kv(kv, "tokenizer.ggml.model", GgufValue::string("gpt2")); }));
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tokenizer.ggml.merges"), std::string::npos) << e.what();
  }
  auto none = Model::open(rewrite(good_, dir_ / "none.gguf", [](Kv& kv) {
    kv.erase(std::remove_if(kv.begin(), kv.end(), [](const auto& e) { return e.first.rfind("tokenizer.", 0) == 0; }),
             kv.end());
  }));
  EXPECT_THROW(none->tokenizer(), Error);
}

// --tokenizer replaces the embedded one.
TEST(GgufModelTokenizer, OverrideWins) {
  SR_REQUIRE_SHARED("reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-f32.gguf");
  OpenOptions o;
  o.tokenizer_path = test::shared("models/tinystories-llama-4m/tokenizer.model");
  auto m = Model::open(test::shared("reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-f32.gguf"), o);
  EXPECT_EQ(m->tokenizer().vocabulary().source, o.tokenizer_path);
  o.tokenizer_path = "/nonexistent/tokenizer.model";
  EXPECT_NE(open_error(test::shared("reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-f32.gguf"), o)
                .find("does not exist"),
            std::string::npos);
}

}  // namespace
}  // namespace sr
