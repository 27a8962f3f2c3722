// The GGUF metadata convert_hf_to_gguf.py takes from a Hugging Face folder beyond the config
// and the tokens (export/gguf_metadata.h GgufSource, tokenizer/gguf_vocab.h GgufSpecialVocab):
// tokenizer.chat_template, the special token ids and add flags SpecialVocab resolves, and
// attention.key_length / value_length only where config.json names head_dim. Each key is
// checked present or absent with its value, for SentencePiece and byte-level BPE folders, and
// through GGUF in, GGUF out.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "byte_level_fixture.h"
#include "export/gguf_from_model.h"
#include "io/gguf_reader.h"
#include "model/llama.h"
#include "model/model.h"
#include "random_model.h"
#include "testutil.h"
#include "tokenizer/gguf_vocab.h"

namespace sr {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

const char* kTemplate = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}";

void patch_config(const std::string& dir, const json& extra) {
  json cfg;
  std::ifstream(dir + "/config.json") >> cfg;
  cfg.update(extra);
  test::write_json(dir + "/config.json", cfg);
}

std::string to_gguf(const std::string& src, const std::string& out) {
  GgufModelExportOptions o;
  o.progress = false;
  o.plan.log = false;
  export_gguf(*Model::open(src), out, GgufMix::F32, o);
  return out;
}

// A random Llama with the demo model's SentencePiece tokenizer.model (1024 pieces).
std::string spm_folder(const test::TempDir& dir) {
  test::RandomModelSpec s;
  s.vocab = 1024;
  const std::string hf = test::write_random_hf_model(dir / "spm", s);
  fs::copy_file(test::repo("demo/tinystories-llama-4m/tokenizer.model"), hf + "/tokenizer.model");
  return hf;
}

std::string bpe_folder(const test::TempDir& dir, const test::ByteLevelSpec& spec, const json& tokenizer_config) {
  test::RandomModelSpec s;
  s.vocab = 288;
  const std::string hf = test::write_random_hf_model(dir / "bpe", s);
  test::write_json(hf + "/tokenizer.json", test::byte_level_tokenizer_json(spec));
  if (!tokenizer_config.is_null()) test::write_json(hf + "/tokenizer_config.json", tokenizer_config);
  return hf;
}

TEST(GgufSpecialVocab, SentencePieceChatTemplatePaddingAndHeadDim) {
  test::TempDir dir;
  const std::string hf = spm_folder(dir);
  // Without a template, pad or head_dim: none of the keys (the golden 4m files stay as they were).
  GgufReader plain(to_gguf(hf, dir / "plain.gguf"));
  EXPECT_FALSE(plain.has("tokenizer.chat_template"));
  EXPECT_FALSE(plain.has("tokenizer.ggml.padding_token_id"));
  EXPECT_FALSE(plain.has("llama.attention.key_length"));
  EXPECT_FALSE(plain.has("llama.attention.value_length"));
  EXPECT_EQ(plain.get<uint32_t>("llama.rope.dimension_count"), 16u);  // LlamaModel writes it always

  test::write_json(hf + "/tokenizer_config.json", {{"chat_template", kTemplate}, {"add_bos_token", true}});
  patch_config(hf, {{"pad_token_id", 0}, {"head_dim", 16}, {"sep_token_id", 5000}});  // 5000: past the vocabulary
  GgufReader r(to_gguf(hf, dir / "full.gguf"));
  EXPECT_EQ(r.get<std::string>("tokenizer.chat_template"), kTemplate);
  EXPECT_EQ(r.get<uint32_t>("tokenizer.ggml.padding_token_id"), 0u);
  EXPECT_FALSE(r.has("tokenizer.ggml.seperator_token_id"));  // SentencePiece: ids limited to the pieces
  EXPECT_EQ(r.get<uint32_t>("llama.attention.key_length"), 16u);
  EXPECT_EQ(r.get<uint32_t>("llama.attention.value_length"), 16u);
  EXPECT_EQ(r.get<uint32_t>("tokenizer.ggml.bos_token_id"), 1u);  // from tokenizer.model, as before

  // GGUF in, GGUF out: the same keys.
  GgufReader again(to_gguf(dir / "full.gguf", dir / "again.gguf"));
  EXPECT_EQ(again.get<std::string>("tokenizer.chat_template"), kTemplate);
  EXPECT_EQ(again.get<uint32_t>("tokenizer.ggml.padding_token_id"), 0u);
  EXPECT_EQ(again.get<uint32_t>("llama.attention.key_length"), 16u);
  GgufReader plain_again(to_gguf(dir / "plain.gguf", dir / "plain-again.gguf"));
  EXPECT_FALSE(plain_again.has("llama.attention.key_length"));
  EXPECT_FALSE(plain_again.has("tokenizer.chat_template"));
}

TEST(GgufSpecialVocab, ByteLevelIdsResolvedAsSpecialVocab) {
  test::TempDir dir;
  // Qwen2's layout: no BOS token in tokenizer_config, pad = eos = an added token, config.json's
  // bos_token_id (1) fills the bos the tokenizer config does not name.
  const json cfg = {{"bos_token", nullptr}, {"eos_token", "<|endoftext|>"}, {"pad_token", {{"content", "<|endoftext|>"}}},
                    {"chat_template", kTemplate}};
  const std::string hf = bpe_folder(dir, {"qwen2"}, cfg);
  GgufReader r(to_gguf(hf, dir / "qwen.gguf"));
  EXPECT_EQ(r.get<uint32_t>("tokenizer.ggml.eos_token_id"), 265u);
  EXPECT_EQ(r.get<uint32_t>("tokenizer.ggml.padding_token_id"), 265u);
  EXPECT_EQ(r.get<uint32_t>("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_FALSE(r.has("tokenizer.ggml.add_bos_token"));  // nothing says: llama.cpp's default for the pre-tokenizer
  EXPECT_FALSE(r.has("tokenizer.ggml.unknown_token_id"));
  EXPECT_EQ(r.get<std::string>("tokenizer.chat_template"), kTemplate);
  auto g = Model::open(dir / "qwen.gguf");
  EXPECT_FALSE(g->tokenizer().add_bos());
  GgufReader again(to_gguf(dir / "qwen.gguf", dir / "again.gguf"));
  EXPECT_EQ(again.get<uint32_t>("tokenizer.ggml.padding_token_id"), 265u);
  EXPECT_EQ(again.get<std::string>("tokenizer.chat_template"), kTemplate);
  EXPECT_FALSE(again.has("tokenizer.ggml.add_bos_token"));

  // Llama 3's layout: BOS from the post-processor's template, named in tokenizer_config.
  test::TempDir dir3;
  const std::string l3 = bpe_folder(dir3, {"llama3", false, true, false, true},
                                    {{"bos_token", "<|begin|>"}, {"eos_token", "<|endoftext|>"}});
  std::ofstream(l3 + "/chat_template.jinja") << "jinja {{ x }}";  // read when tokenizer_config has none
  GgufReader r3(to_gguf(l3, dir3 / "l3.gguf"));
  EXPECT_EQ(r3.get<uint32_t>("tokenizer.ggml.bos_token_id"), 272u);
  EXPECT_EQ(r3.get<uint32_t>("tokenizer.ggml.eos_token_id"), 265u);
  EXPECT_TRUE(r3.get<bool>("tokenizer.ggml.add_bos_token"));
  EXPECT_FALSE(r3.has("tokenizer.ggml.add_sep_token"));  // the pair template has no B
  EXPECT_EQ(r3.get<std::string>("tokenizer.chat_template"), "jinja {{ x }}");
  EXPECT_TRUE(Model::open(dir3 / "l3.gguf")->tokenizer().add_bos());

  // No tokenizer_config.json: SpecialVocab stops before the template (even beside a .jinja).
  test::TempDir dir4;
  const std::string bare = bpe_folder(dir4, {"gpt2"}, nullptr);
  std::ofstream(bare + "/chat_template.jinja") << "unused";
  GgufReader r4(to_gguf(bare, dir4 / "bare.gguf"));
  EXPECT_FALSE(r4.has("tokenizer.chat_template"));
  EXPECT_EQ(r4.get<uint32_t>("tokenizer.ggml.bos_token_id"), 1u);  // config.json
  EXPECT_EQ(r4.get<uint32_t>("tokenizer.ggml.eos_token_id"), 2u);
}

// SpecialVocab's own rules, on folders without a model.
TEST(GgufSpecialVocab, ResolutionRules) {
  test::TempDir dir;
  const std::string d = dir / "f";
  fs::create_directories(d);
  test::write_json(d + "/tokenizer.json",
                   {{"added_tokens", {{{"id", 7}, {"content", "<s>"}}, {{"id", 9}, {"content", "</s>"}}}},
                    {"post_processor",
                     {{"type", "TemplateProcessing"},
                      {"single", {{{"SpecialToken", {{"id", "<s>"}}}}, {{"Sequence", {{"id", "A"}}}},
                                  {{"SpecialToken", {{"id", "</s>"}}}}}},
                      {"pair",
                       {{{"SpecialToken", {{"id", "<s>"}}}}, {{"Sequence", {{"id", "A"}}}},
                        {{"SpecialToken", {{"id", "</s>"}}}}, {{"Sequence", {{"id", "B"}}}},
                        {{"SpecialToken", {{"id", "</s>"}}}}}}}}});
  test::write_json(d + "/tokenizer_config.json",
                   {{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"add_eos_token", false}, {"unk_token", "<unk>"}});
  test::write_json(d + "/config.json", {{"bos_token_id", 3}, {"unk_token_id", 4}, {"eos_token_id", {9, 10}}});
  const GgufSpecialVocab s = read_hf_special_vocab(d, -1);
  EXPECT_EQ(s.id("bos"), 7);  // tokenizer_config's text wins over config.json
  EXPECT_EQ(s.id("eos"), 9);
  EXPECT_EQ(s.id("unk"), 4);  // "<unk>" is no added token: config.json's
  ASSERT_EQ(s.add.size(), 3u);
  EXPECT_EQ(s.add[0], std::make_pair(std::string("bos"), true));
  EXPECT_EQ(s.add[1], std::make_pair(std::string("eos"), false));  // tokenizer_config overrides the template
  // A </s> B: </s> is eos, but single already ends in it, so SpecialVocab says no separator.
  EXPECT_EQ(s.add[2], std::make_pair(std::string("sep"), false));
  EXPECT_FALSE(s.chat_template);

  test::write_json(d + "/config.json", {{"pad_token_id", -1}});
  const std::string err = test::error_of([&] { read_hf_special_vocab(d, -1); });
  EXPECT_NE(err.find("config.json"), std::string::npos) << err;
  EXPECT_NE(err.find("pad"), std::string::npos) << err;
}

// YaRN settings llama.cpp does not run (another beta, DeepSeek's mscale) are refused naming the
// field; Qwen's own (factor, original_max_position_embeddings) open, and scale the rotary tables
// by the attention factor 1 + 0.1 ln(factor).
TEST(GgufSpecialVocab, YarnSettingsLlamaCppDoesNotRunAreRefused) {
  test::TempDir dir;
  test::RandomModelSpec s;
  s.arch = "Qwen2ForCausalLM";
  const std::string hf = test::write_random_hf_model(dir / "hf", s);
  const json yarn = {{"type", "yarn"}, {"factor", 4.0}, {"original_max_position_embeddings", 64}};
  for (const auto& [key, value] : {std::pair<std::string, json>("beta_fast", 16), {"mscale", 0.707},
                                   {"attention_factor", 1.2}}) {
    json bad = yarn;
    bad[key] = value;
    patch_config(hf, {{"rope_scaling", bad}});
    const std::string err = test::error_of([&] { Model::open(hf); });
    EXPECT_NE(err.find("rope_scaling." + key), std::string::npos) << err;
  }
  json no_orig = yarn;
  no_orig.erase("original_max_position_embeddings");
  patch_config(hf, {{"rope_scaling", no_orig}});
  EXPECT_NE(test::error_of([&] { Model::open(hf); }).find("original_max_position_embeddings"), std::string::npos);
  patch_config(hf, {{"rope_scaling", yarn}});
  auto m = Model::open(hf);
  const RopeTables t = m->rope(8);
  EXPECT_NEAR(t.cos[0][0].item<float>(), 1 + 0.1 * std::log(4.0), 1e-6);  // position 0: cos 1 x the factor
  // Pair 7 (past the correction range) turns at a quarter of its speed, pair 0 at its own.
  const double f7 = std::pow(10000.0, -14.0 / 16) / 4;
  EXPECT_NEAR(t.sin[5][7].item<float>(), (1 + 0.1 * std::log(4.0)) * std::sin(5 * f7), 1e-5);
  EXPECT_NEAR(t.sin[5][0].item<float>(), (1 + 0.1 * std::log(4.0)) * std::sin(5.0), 1e-5);
}

}  // namespace
}  // namespace sr
