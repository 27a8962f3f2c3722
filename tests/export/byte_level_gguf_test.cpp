// Byte-level BPE models end to end: an HF folder whose only tokenizer is tokenizer.json
// opens with a working tokenizer (also through --tokenizer, and tokenizer.model keeps
// priority); its GGUF export stores the vocabulary as llama.cpp does for Llama 3 / Qwen2
// (model "gpt2", pre, tokens, token types, merges, BOS/EOS), and the re-read GGUF
// tokenizer encodes every text exactly as the tokenizer.json did; calibration and
// perplexity batches (and `signround eval`) cope with a vocabulary that has no BOS.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "byte_level_fixture.h"
#include "common/error.h"
#include "eval/perplexity.h"
#include "export/gguf_from_model.h"
#include "io/gguf_reader.h"
#include "model/model.h"
#include "random_model.h"
#include "testutil.h"
#include "tokenizer/calibration.h"

namespace sr {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;
using Ids = std::vector<int32_t>;

using test::error_of;

// A random Llama model in dir/hf with the fixture's tokenizer.json (+ config) only.
std::string byte_level_model(const test::TempDir& dir, const test::ByteLevelSpec& spec, const json& config) {
  test::RandomModelSpec s;
  s.vocab = 288;  // > the tokenizer's 273 ids: the GGUF pads the rest
  const std::string hf = test::write_random_hf_model(dir / "hf", s);
  test::write_json(hf + "/tokenizer.json", test::byte_level_tokenizer_json(spec));
  if (!config.is_null()) test::write_json(hf + "/tokenizer_config.json", config);
  return hf;
}

std::vector<std::string> sample_texts() {
  std::vector<std::string> texts = {"the lower", " the<|endoftext|>the", "<tool>call me <tool>", "12345 aaa\n\n  x",
                                    "Gr\xc3\xb6\xc3\x9f" "e \xe6\x97\xa5\xe6\x9c\xac", "xyz lowe ewe", "it'S 'll",
                                    "<|begin|>hi", ""};
  std::mt19937 rng(3);
  const std::string alphabet = "aehlortwxyz '\n\t1234?!<>|";
  for (int n = 0; n < 50; ++n) {
    std::string x;
    for (int i = 0, len = int(rng() % 30); i < len; ++i) x += alphabet[rng() % alphabet.size()];
    texts.push_back(x);
  }
  return texts;
}

GgufModelExportOptions quiet() {
  GgufModelExportOptions o;
  o.progress = false;
  o.plan.log = false;
  return o;
}

TEST(ByteLevelModel, FolderWithOnlyTokenizerJsonOpensAndTokenizes) {
  test::TempDir dir;
  test::ByteLevelSpec spec;
  spec.pattern = "llama3";
  spec.ignore_merges = true;
  spec.template_bos = true;
  const std::string hf = byte_level_model(dir, spec, json{{"eos_token", "<|endoftext|>"}});
  auto m = Model::open(hf);
  ASSERT_TRUE(m->has_tokenizer());
  const Tokenizer& t = m->tokenizer();
  EXPECT_EQ(t.vocabulary().source, hf + "/tokenizer.json");
  EXPECT_EQ(t.encode_with_bos(" the<|endoftext|>"), (Ids{272, 258, 265}));
  EXPECT_EQ(t.eos_id(), 265);

  // --tokenizer with a tokenizer.json elsewhere.
  test::TempDir other;
  test::ByteLevelSpec gpt2;
  gpt2.add_prefix_space = true;
  OpenOptions o;
  o.tokenizer_path = test::write_json(other / "tokenizer.json", test::byte_level_tokenizer_json(gpt2));
  auto m2 = Model::open(hf, o);
  EXPECT_EQ(m2->tokenizer().vocabulary().source, o.tokenizer_path);
  EXPECT_EQ(m2->tokenizer().encode("the"), (Ids{258}));

  // An unreadable tokenizer.json beside the model: it opens; the error names the file
  // when a tokenizer is needed. Through --tokenizer, the error comes at once.
  test::write_json(hf + "/tokenizer.json", json{{"model", {{"type", "Unigram"}}}});
  auto m3 = Model::open(hf);
  EXPECT_FALSE(m3->has_tokenizer());
  const std::string msg = error_of([&] { m3->tokenizer(); });
  EXPECT_NE(msg.find(hf + "/tokenizer.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Unigram"), std::string::npos) << msg;
  o.tokenizer_path = hf + "/tokenizer.json";
  EXPECT_NE(error_of([&] { Model::open(hf, o); }).find("model.type is 'Unigram'"), std::string::npos);
}

TEST(ByteLevelModel, TokenizerModelKeepsPriority) {
  SR_REQUIRE_SHARED("models/tinystories-llama-4m/tokenizer.model");
  test::TempDir dir;
  test::RandomModelSpec s;
  s.vocab = 1024;
  const std::string hf = test::write_random_hf_model(dir / "hf", s);
  test::write_json(hf + "/tokenizer.json", test::byte_level_tokenizer_json());
  fs::copy_file(test::shared("models/tinystories-llama-4m/tokenizer.model"), hf + "/tokenizer.model");
  auto m = Model::open(hf);
  EXPECT_EQ(m->tokenizer().vocabulary().source, hf + "/tokenizer.model");
  EXPECT_EQ(m->tokenizer().vocabulary().model, TokenizerModel::SentencePiece);
}

struct GgufCase {
  const char* what;
  test::ByteLevelSpec spec;
  json config;
  const char* pre;
  int64_t bos;  // tokenizer.ggml.bos_token_id as SpecialVocab resolves it (config.json's 1 when
                // tokenizer_config.json names none)
  int add_bos;  // tokenizer.ggml.add_bos_token; -1: absent (llama.cpp's default for the pre-tokenizer)
};

TEST(ByteLevelModel, GgufExportWritesGpt2VocabularyAndRoundTrips) {
  std::vector<GgufCase> cases(3);
  cases[0] = {"llama3", {"llama3", false, true, false, true},
              json{{"bos_token", "<|begin|>"}, {"eos_token", "<|endoftext|>"}}, "llama-bpe", 272, 1};
  cases[1] = {"qwen2", {"qwen2"}, json{{"bos_token", nullptr}, {"eos_token", "<|endoftext|>"}}, "qwen2", 1, -1};
  cases[2] = {"gpt2 prefix space", {"gpt2", false, false, true}, nullptr, "gpt-2", 1, -1};
  for (const GgufCase& c : cases) {
    test::TempDir dir;
    auto hf = Model::open(byte_level_model(dir, c.spec, c.config));
    const std::string path = dir / "model.gguf";
    export_gguf(*hf, path, parse_gguf_mix("f32"), quiet());

    GgufReader r(path);
    EXPECT_EQ(r.get<std::string>("tokenizer.ggml.model"), "gpt2") << c.what;
    EXPECT_EQ(r.get<std::string>("tokenizer.ggml.pre"), c.pre) << c.what;
    const auto tokens = r.get_array<std::string>("tokenizer.ggml.tokens");
    ASSERT_EQ(tokens.size(), 288u) << c.what;  // padded to the embedding rows
    EXPECT_EQ(tokens[32], "\xC4\xA0");
    EXPECT_EQ(tokens[258], "\xC4\xA0the");
    EXPECT_EQ(tokens[265], "<|endoftext|>");
    EXPECT_EQ(tokens[268], "[PAD268]");
    const auto types = r.get_array<int32_t>("tokenizer.ggml.token_type");
    EXPECT_EQ(types[97], 1);
    EXPECT_EQ(types[265], 3);  // special added token: control
    EXPECT_EQ(types[270], 4);  // non-special added token: user-defined
    EXPECT_EQ(types[268], 5);  // hole: unused
    const auto merges = r.get_array<std::string>("tokenizer.ggml.merges");
    ASSERT_EQ(merges.size(), 9u);
    EXPECT_EQ(merges[0], "\xC4\xA0 t");
    EXPECT_EQ(merges[7], "low er");
    EXPECT_FALSE(r.has("tokenizer.ggml.scores"));
    EXPECT_EQ(r.get<uint32_t>("tokenizer.ggml.bos_token_id"), uint32_t(c.bos)) << c.what;
    EXPECT_EQ(r.has("tokenizer.ggml.add_bos_token"), c.add_bos >= 0) << c.what;
    if (c.add_bos >= 0) EXPECT_EQ(r.get<bool>("tokenizer.ggml.add_bos_token"), c.add_bos == 1) << c.what;

    auto g = Model::open(path);
    ASSERT_TRUE(g->has_tokenizer()) << c.what;
    const Tokenizer &a = hf->tokenizer(), &b = g->tokenizer();
    EXPECT_EQ(b.add_bos(), a.add_bos()) << c.what;  // the ids differ only where no BOS is added
    if (a.add_bos()) EXPECT_EQ(b.bos_id(), a.bos_id()) << c.what;
    if (a.eos_id() >= 0) EXPECT_EQ(b.eos_id(), a.eos_id()) << c.what;
    if (c.spec.add_prefix_space) EXPECT_EQ(b.decode(b.encode("the<tool>x")), " the<tool> x");
    for (const std::string& text : sample_texts()) {
      EXPECT_EQ(b.encode_with_bos(text), a.encode_with_bos(text)) << c.what << ": " << json(text).dump();
      bool has_special = false;  // decode drops special tokens
      for (const char* special : {"<|begin|>", "<|endoftext|>", "<tool>call"})
        has_special |= text.find(special) != std::string::npos;
      // With add_prefix_space the decoded text keeps the added spaces (as Hugging Face's).
      if (!has_special && !c.spec.add_prefix_space) EXPECT_EQ(b.decode(b.encode(text)), text) << c.what;
    }
  }
}

// Without BOS, calibration windows are whole seqlen tokens of text (no -1 ids), and
// the windows protocol scores from the second token.
TEST(ByteLevelModel, NoBosCalibrationAndEvalBatches) {
  test::TempDir dir;
  test::ByteLevelSpec qwen;
  qwen.pattern = "qwen2";
  const Tokenizer tok(read_hf_tokenizer_json(test::write_json(dir / "tokenizer.json", test::byte_level_tokenizer_json(qwen))));
  ASSERT_FALSE(tok.add_bos());
  std::string text;
  for (int i = 0; i < 200; ++i) text += "the lower ewe " + std::to_string(i) + "\n";
  std::ofstream(dir / "calib.txt") << text;
  CalibOptions co;
  co.dataset = dir / "calib.txt";
  co.nsamples = 4;
  co.seqlen = 16;
  const CalibData d = load_calibration(tok, co);
  ASSERT_EQ(d.tokens.size(0), 4);
  EXPECT_GE(d.tokens.min().item<int64_t>(), 0);
  const Ids ids = tok.encode(text);
  EvalOptions eo;
  eo.ctx = 16;
  eo.chunks = 1;
  eo.protocol = Protocol::Windows;
  const EvalBatch w = make_eval_batch(ids, tok.bos_id(), eo);
  EXPECT_EQ(w.inputs.size(1), 16);
  EXPECT_EQ(w.targets.size(1), 15);
  EXPECT_EQ(w.inputs[0][0].item<int64_t>(), ids[0]);
  EXPECT_EQ(w.targets[0][0].item<int64_t>(), ids[1]);
  eo.protocol = Protocol::LlamaCpp;
  const EvalBatch l = make_eval_batch(ids, tok.bos_id(), eo);
  EXPECT_EQ(l.inputs[0][0].item<int64_t>(), ids[0]);  // no BOS written over the first token
}

// The CLI end to end: eval on a folder whose tokenizer is a BOS-less tokenizer.json
// (both protocols), and --tokenizer naming a tokenizer.json.
TEST(ByteLevelModel, EvalCliWithTokenizerJson) {
  test::TempDir dir;
  test::ByteLevelSpec qwen;
  qwen.pattern = "qwen2";
  const std::string hf = byte_level_model(dir, qwen, json{{"bos_token", nullptr}, {"eos_token", "<|endoftext|>"}});
  std::string text;
  for (int i = 0; i < 100; ++i) text += "the lower ewe " + std::to_string(i) + "\n";
  std::ofstream(dir / "text.txt") << text;
  const std::string base = test::cli() + " eval --model " + hf + " --text " + dir / "text.txt" +
                           " --ctx 16 --chunks 2 --json --quiet";
  auto r = test::run_command(base + " --protocol windows");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["tokens"].get<int64_t>(), 2 * 15);  // no BOS: tokens 1..15 of each window
  r = test::run_command(base + " --protocol llamacpp");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["tokens"].get<int64_t>(), 2 * 7);
  EXPECT_GT(json::parse(r.out)["ppl"].get<double>(), 1.0);

  const std::string other = test::write_json(dir / "tokenizer.json", test::byte_level_tokenizer_json());
  r = test::run_command(test::cli() + " inspect --model " + hf + " --tokenizer " + other + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["tokenizer"], other);
}

}  // namespace
}  // namespace sr
