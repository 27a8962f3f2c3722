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
#include "export/gguf_naming.h"
#include "io/gguf_reader.h"
#include "model/llama.h"
#include "model/model.h"
#include "random_model.h"
#include "testutil.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"

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

// The whole metadata of a SentencePiece Llama folder, key by key in order, as the current
// convert_hf_to_gguf.py writes it (F32), worked out by hand from its rules:
//   ModelBase.prepare_metadata: general.architecture, type; gguf-py Metadata from
//     generation_config.json (sampling: top_k i32, temperature -> temp f32, in set_gguf_meta_model's
//     order) and config.json's _name_or_path "acme/Tiny-Llama-3-0.2M-Chat-v1": name "Tiny Llama 3
//     0.2M Chat v1", version "v1", organization "Acme", finetune "Chat", basename "Tiny-Llama-3",
//     size_label "0.2M" (kept: 0.2M is within 7/8 of the 205,120 parameters; the folder name
//     "spm" fills nothing that is left); TextModel/LlamaModel.set_gguf_parameters (no head_dim
//     in config.json: no key/value_length); quantization_version;
//   _set_vocab_sentencepiece: tokens with tokenizer_config's added_tokens_decoder re-typed (score
//     -1000; special -> control 3; "<|im_end|>" looks special -> control; "hello\u2581world" ->
//     user-defined 4 with a space), SpecialVocab (bos/eos from config.json, add flags from
//     tokenizer_config.json; no unknown_token_id: nothing names one), then LlamaModel's
//     add_space_prefix from add_prefix_space.
TEST(GgufSpecialVocab, SentencePieceMetadataIsTheConvertersKeyForKey) {
  test::TempDir dir;
  const std::string hf = spm_folder(dir);
  patch_config(hf, {{"_name_or_path", "acme/Tiny-Llama-3-0.2M-Chat-v1"}});
  test::write_json(hf + "/generation_config.json", {{"temperature", 0.7}, {"top_k", 40}, {"do_sample", true}});
  const json special = {{"content", "<s>"}, {"special", true}};
  test::write_json(hf + "/tokenizer_config.json",
                   {{"add_bos_token", true},
                    {"add_eos_token", false},
                    {"add_prefix_space", false},
                    {"added_tokens_decoder",
                     {{"0", {{"content", "<unk>"}, {"special", true}}},
                      {"1", special},
                      {"2", {{"content", "</s>"}, {"special", true}}},
                      {"1000", {{"content", "<|im_end|>"}, {"special", false}}},
                      {"1001", {{"content", "hello\u2581world"}, {"special", false}}},
                      {"5000", {{"content", "<far>"}, {"special", true}}}}}});  // past the vocabulary: skipped
  GgufReader r(to_gguf(hf, dir / "f32.gguf"));
  std::vector<std::string> keys;
  for (const auto& kv : r.metadata()) keys.push_back(kv.first);
  const std::vector<std::string> want = {
      "general.architecture", "general.type", "general.sampling.top_k", "general.sampling.temp", "general.name",
      "general.version", "general.organization", "general.finetune", "general.basename", "general.size_label",
      "llama.block_count", "llama.context_length", "llama.embedding_length", "llama.feed_forward_length",
      "llama.attention.head_count", "llama.attention.head_count_kv", "llama.rope.freq_base",
      "llama.attention.layer_norm_rms_epsilon", "general.file_type", "llama.vocab_size", "llama.rope.dimension_count",
      "general.quantization_version", "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
      "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id",
      "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
      "tokenizer.ggml.add_space_prefix"};
  EXPECT_EQ(keys, want);
  EXPECT_EQ(r.get<int32_t>("general.sampling.top_k"), 40);
  EXPECT_EQ(r.get<float>("general.sampling.temp"), 0.7f);
  EXPECT_EQ(r.get<std::string>("general.name"), "Tiny Llama 3 0.2M Chat v1");
  EXPECT_EQ(r.get<std::string>("general.version"), "v1");
  EXPECT_EQ(r.get<std::string>("general.organization"), "Acme");
  EXPECT_EQ(r.get<std::string>("general.finetune"), "Chat");
  EXPECT_EQ(r.get<std::string>("general.basename"), "Tiny-Llama-3");
  EXPECT_EQ(r.get<std::string>("general.size_label"), "0.2M");
  EXPECT_EQ(r.get<uint32_t>("general.file_type"), 0u);
  EXPECT_EQ(r.get<uint32_t>("llama.vocab_size"), 1024u);
  EXPECT_EQ(r.get<uint32_t>("llama.rope.dimension_count"), 16u);
  EXPECT_EQ(r.get<std::string>("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(r.get<std::string>("tokenizer.ggml.pre"), "default");
  const auto tokens = r.get_array<std::string>("tokenizer.ggml.tokens");
  const auto scores = r.get_array<float>("tokenizer.ggml.scores");
  const auto types = r.get_array<int32_t>("tokenizer.ggml.token_type");
  ASSERT_EQ(tokens.size(), 1024u);
  const Vocabulary sp = read_sentencepiece_model(hf + "/tokenizer.model");  // the other pieces as they are
  for (size_t i = 3; i < 1024; ++i) {
    if (i == 1000 || i == 1001) continue;
    EXPECT_EQ(tokens[i], sp.pieces[i]) << i;
    EXPECT_EQ(scores[i], sp.scores[i]) << i;
    EXPECT_EQ(types[i], int32_t(sp.kinds[i])) << i;
  }
  for (size_t i : {0, 1, 2, 1000, 1001}) EXPECT_EQ(scores[i], -1000.0f) << i;
  EXPECT_EQ(types[0], 3);  // <unk>: unknown (2) in tokenizer.model, control as added special token
  EXPECT_EQ(types[1], 3);
  EXPECT_EQ(tokens[1000], "<|im_end|>");
  EXPECT_EQ(types[1000], 3);
  EXPECT_EQ(tokens[1001], "hello world");
  EXPECT_EQ(types[1001], 4);
  EXPECT_EQ(r.get<uint32_t>("tokenizer.ggml.bos_token_id"), 1u);
  EXPECT_EQ(r.get<uint32_t>("tokenizer.ggml.eos_token_id"), 2u);
  EXPECT_TRUE(r.get<bool>("tokenizer.ggml.add_bos_token"));
  EXPECT_FALSE(r.get<bool>("tokenizer.ggml.add_eos_token"));
  EXPECT_FALSE(r.get<bool>("tokenizer.ggml.add_space_prefix"));

  // Read back, the file tokenizes as llama.cpp would: no space prefix.
  auto m = Model::open(dir / "f32.gguf");
  EXPECT_FALSE(m->tokenizer().vocabulary().add_dummy_prefix);
  // GGUF in, GGUF out: the same keys and values in the same order.
  GgufReader again(to_gguf(dir / "f32.gguf", dir / "again.gguf"));
  ASSERT_EQ(again.metadata().size(), r.metadata().size());
  for (size_t i = 0; i < r.metadata().size(); ++i) {
    EXPECT_EQ(again.metadata()[i].first, r.metadata()[i].first) << i;
    EXPECT_TRUE(again.metadata()[i].second == r.metadata()[i].second) << r.metadata()[i].first;
  }
}

// Without a name in config.json, the folder names the model; the parameter count gives the size
// label (gguf-py utility.size_label: 205,120 parameters -> "205K"). For byte-level BPE folders too.
TEST(GgufSpecialVocab, FolderNameAndParameterCountName) {
  test::TempDir dir;
  GgufReader spm(to_gguf(spm_folder(dir), dir / "spm.gguf"));
  EXPECT_EQ(spm.get<std::string>("general.name"), "Spm");  // folder "spm": a name, too ambiguous for a basename
  EXPECT_FALSE(spm.has("general.basename"));
  // 2 x 1024 x 64 (embedding, output) + 64 + 2 x (4096 + 2 x 2048 + 4096 + 3 x 8192 + 2 x 64) = 205,120
  EXPECT_EQ(spm.get<std::string>("general.size_label"), "205K");
  EXPECT_FALSE(spm.has("tokenizer.ggml.unknown_token_id"));
  EXPECT_FALSE(spm.has("tokenizer.ggml.add_space_prefix"));
  EXPECT_FALSE(spm.has("tokenizer.ggml.add_eos_token"));  // no tokenizer_config.json says

  test::TempDir dir2;
  const std::string bpe = bpe_folder(dir2, {"qwen2"}, json{{"eos_token", "<|endoftext|>"}});
  fs::rename(bpe, dir2 / "qwen-7b-chat");  // a context-free size label far from the count: a finetune
  GgufReader q(to_gguf(dir2 / "qwen-7b-chat", dir2 / "q.gguf"));
  EXPECT_EQ(q.get<std::string>("general.name"), "Qwen 7b Chat");
  EXPECT_EQ(q.get<std::string>("general.basename"), "qwen");
  EXPECT_EQ(q.get<std::string>("general.finetune"), "7b-chat");
  // 2 x 288 x 64 + 64 + 2 x (4096 + 2 x 2048 + 4096 + 3 x 8192 + 2 x 64) = 110,912
  EXPECT_EQ(q.get<std::string>("general.size_label"), "111K");
}

// gguf-py's own examples (gguf-py/tests/test_metadata.py, llama.cpp): model id -> (name component,
// organization, basename, finetune, version, size label), with the parameter count they give.
TEST(GgufNaming, ModelIdComponentsAsGgufPy) {
  struct Case {
    const char* id;
    int64_t params;
    const char *full, *org, *base, *fine, *ver, *size;
  };
  const Case cases[] = {
      {"Mistral/Mixtral-8x7B-Instruct-v0.1", 0, "Mixtral-8x7B-Instruct-v0.1", "Mistral", "Mixtral", "Instruct", "v0.1", "8x7B"},
      {"Mixtral-8x7B-Instruct", 0, "Mixtral-8x7B-Instruct", nullptr, "Mixtral", "Instruct", nullptr, "8x7B"},
      {"Mixtral-v0.1", 0, "Mixtral-v0.1", nullptr, "Mixtral", nullptr, "v0.1", nullptr},
      {"Mixtral", 0, "Mixtral", nullptr, nullptr, nullptr, nullptr, nullptr},
      {"NousResearch/Meta-Llama-3-8B", 0, "Meta-Llama-3-8B", "NousResearch", "Meta-Llama-3", nullptr, nullptr, "8B"},
      {"Qwen1.5-MoE-A2.7B-Chat", 0, "Qwen1.5-MoE-A2.7B-Chat", nullptr, "Qwen1.5-MoE", "Chat", nullptr, "A2.7B"},
      {"Qwen2-57B-A14B-Instruct", 0, "Qwen2-57B-A14B-Instruct", nullptr, "Qwen2", "Instruct", nullptr, "57B-A14B"},
      {"google/gemma-4-26B-A4B-it", 4000000000, "gemma-4-26B-A4B-it", "google", "gemma-4", "it", nullptr, "26B-A4B"},
      {"microsoft/Phi-3-mini-4k-instruct", 4000000000, "Phi-3-mini-4k-instruct", "microsoft", "Phi-3", "4k-instruct",
       nullptr, "mini"},
      {"delphi-suite/stories-llama2-50k", 50000, "stories-llama2-50k", "delphi-suite", "stories-llama2", nullptr, nullptr,
       "50K"},
      {"DeepSeek-Coder-V2-Lite-Instruct", 0, "DeepSeek-Coder-V2-Lite-Instruct", nullptr, "DeepSeek-Coder-V2-Lite",
       "Instruct", nullptr, nullptr},
      {"crestf411/daybreak-kunoichi-2dpo-7b", 0, "daybreak-kunoichi-2dpo-7b", "crestf411", "daybreak-kunoichi", "2dpo",
       nullptr, "7B"},
      {"Qwen2-0.5B-Instruct", 0, "Qwen2-0.5B-Instruct", nullptr, "Qwen2", "Instruct", nullptr, "0.5B"},
      {"smallcloudai/Refact-1_6B-fim", 0, "Refact-1_6B-fim", "smallcloudai", "Refact", "fim", nullptr, "1.6B"},
      {"UCLA-AGI/Gemma-2-9B-It-SPPO-Iter3", 0, "Gemma-2-9B-It-SPPO-Iter3", "UCLA-AGI", "Gemma-2", "It-SPPO", "Iter3", "9B"},
      {"SeaLLMs/SeaLLMs-v3-7B-Chat", 0, "SeaLLMs-v3-7B-Chat", "SeaLLMs", "SeaLLMs-v3", "Chat", nullptr, "7B"},
      {"internlm/internlm2_5-7b-chat-1m", 7000000000, "internlm2_5-7b-chat-1m", "internlm", "internlm2_5", "chat-1m",
       nullptr, "7B"},
      {"pszemraj/jamba-900M-v0.13-KIx2", 0, "jamba-900M-v0.13-KIx2", "pszemraj", "jamba", "KIx2", "v0.13", "900M"},
      {"abacaj/llama-161M-100B", 161000000, "llama-161M-100B", "abacaj", "llama", "100b", nullptr, "161M"},
      {"SparseLLM/relu-100B", 1340000000, "relu-100B", "SparseLLM", "relu", "100b", nullptr, nullptr},
      {"bigscience/bloom-7b1-petals", 0, "bloom-7b1-petals", "bigscience", "bloom", "petals", nullptr, "7.1B"},
      {"MaziyarPanahi/GreenNode-mini-7B-multilingual-v1olet-Mistral-7B-Instruct-v0.1", 0,
       "GreenNode-mini-7B-multilingual-v1olet-Mistral-7B-Instruct-v0.1", "MaziyarPanahi", "GreenNode-mini",
       "multilingual-v1olet-Mistral-Instruct", "v0.1", "7B"},
      {"deepseek-ai/DeepSeek-V2-Chat-0628", 0, "DeepSeek-V2-Chat-0628", "deepseek-ai", "DeepSeek-V2", "Chat", "0628", nullptr},
      {"OpenGVLab/Mini-InternVL-Chat-2B-V1-5", 0, "Mini-InternVL-Chat-2B-V1-5", "OpenGVLab", "Mini-InternVL", "Chat",
       "V1-5", "2B"},
      {"microsoft/Florence-2-base", 0, "Florence-2-base", "microsoft", nullptr, nullptr, nullptr, nullptr},
      {"mistralai/-Mistral--Nemo-Base-2407-", 0, "-Mistral--Nemo-Base-2407-", "mistralai", "Mistral-Nemo-Base", nullptr,
       "2407", nullptr},
      {"Llama-3-Instruct-abliteration-LoRA-8B", -1234, "Llama-3-Instruct-abliteration-LoRA-8B", nullptr, "Llama-3",
       "Instruct-abliteration", nullptr, "8B"},
      {"tinystories-llama-4m", 3672320, "tinystories-llama-4m", nullptr, "tinystories-llama", nullptr, nullptr, "4M"},
  };
  auto opt = [](const char* s) { return s ? std::optional<std::string>(s) : std::nullopt; };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.id);
    const GgufModelIdParts p = gguf_model_id_parts(c.id, c.params);
    EXPECT_EQ(p.full_name, c.full);
    EXPECT_EQ(p.organization, opt(c.org));
    EXPECT_EQ(p.basename, opt(c.base));
    EXPECT_EQ(p.finetune, opt(c.fine));
    EXPECT_EQ(p.version, opt(c.ver));
    EXPECT_EQ(p.size_label, opt(c.size));
  }
  EXPECT_EQ(gguf_id_to_title("Mixtral-8x7B-Instruct-v0.1"), "Mixtral 8x7B Instruct v0.1");
  EXPECT_EQ(gguf_id_to_title("Meta-Llama-3-8B"), "Meta Llama 3 8B");
  EXPECT_EQ(gguf_id_to_title("hermes-2-pro-llama-3-8b-DPO"), "Hermes 2 Pro Llama 3 8b DPO");
  EXPECT_EQ(gguf_id_to_title("tinystories-llama-4m"), "Tinystories Llama 4m");
  // utility.size_label: two significant digits at least, ties of the count's rounding to even.
  EXPECT_EQ(gguf_size_label(3672320, 3672320, 0, 0), "3.7M");
  EXPECT_EQ(gguf_size_label(205120, 205120, 0, 0), "205K");
  EXPECT_EQ(gguf_size_label(494032768, 0, 0, 0), "494M");
  EXPECT_EQ(gguf_size_label(1543714304, 0, 0, 0), "1.5B");
  EXPECT_EQ(gguf_size_label(999999, 0, 0, 0), "1000K");
  EXPECT_EQ(gguf_size_label(1000000, 0, 0, 0), "1.0M");
  EXPECT_EQ(gguf_size_label(46702792704, 1602203648, 5637144576, 8), "8x7.2B");
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
