// llama-quantize's per-tensor controls for `signround quantize --format gguf:<mix>`
// (GgufTypeControls in export/gguf_plan.h; flags in cli/cmd_quantize.cpp):
//   - plan level: tensor-type rules change exactly the tensors they match (first match wins, the
//     mix rule skipped), pure drops the mix rules, output/token_embd types, the fallback of a
//     rule's type on rows that are not whole blocks, and the errors (unmatched pattern, type);
//   - on the 4m model: the overrides land in the file; --dry_run's total is the byte count of
//     the file the real run writes, and it writes nothing; --output_tensor_type,
//     --token_embedding_type and --pure give llama-quantize's (c392e50) file byte for byte;
//     --target_size and the AutoScheme spellings (--schemes, --bits) reach the same search.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/flag_values.h"
#include "common/error.h"
#include "common/strings.h"
#include "export/gguf_plan.h"
#include "io/gguf_reader.h"
#include "gguf_compare.h"
#include "model/gguf_names.h"
#include "testutil.h"

namespace sr {
namespace {
namespace fs = std::filesystem;
using T = GgmlType;

const std::string kRef = "reference/llamacpp/tinystories-llama-4m/";
const std::string kModel = "models/tinystories-llama-4m";

ModelConfig config(int64_t layers, int64_t hidden, int64_t ffn) {
  ModelConfig c;
  c.n_layers = layers;
  c.n_heads = 8;
  c.n_kv_heads = 2;
  c.hidden = hidden;
  c.head_dim = hidden / 8;
  c.intermediate = ffn;
  c.vocab = 1024;
  return c;
}

std::vector<GgufTensorPlan> plan(const ModelConfig& c, GgufMix mix, const GgufTypeControls& u) {
  GgufPlanOptions o;
  o.controls = u;
  o.log = false;
  return plan_gguf_types(c, mix, o);
}

GgufTensorTypeRule rule(const std::string& pattern, T type) { return {SafeRegex(pattern, "test"), type}; }

TEST(GgufTensorTypes, RulesChangeExactlyTheMatchedTensorsFirstMatchWins) {
  const ModelConfig c = config(8, 512, 1536);
  const auto mix = plan(c, GgufMix::Q4_K_M, {});
  GgufTypeControls u;
  u.tensor_types = {rule("attn_v", T::Q8_0), rule("blk\\.[0-3]\\.(attn_v|ffn_down)", T::Q5_K), rule("ffn_up", T::BF16)};
  const auto got = plan(c, GgufMix::Q4_K_M, u);
  ASSERT_EQ(got.size(), mix.size());
  int changed = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const std::string& n = got[i].name;
    const bool v = n.find("attn_v") != std::string::npos, up = n.find("ffn_up") != std::string::npos;
    const bool down03 = n.find("ffn_down") != std::string::npos && gguf_layer_of(n) >= 0 && gguf_layer_of(n) < 4;
    const T want = v ? T::Q8_0 : down03 ? T::Q5_K : up ? T::BF16 : mix[i].type;
    EXPECT_EQ(ggml_type_name(got[i].type), ggml_type_name(want)) << n;
    if (v || down03 || up) {
      EXPECT_NE(got[i].why.find("tensor type '"), std::string::npos) << n << ": " << got[i].why;
      ++changed;
    } else {
      EXPECT_EQ(got[i].why, mix[i].why) << n;
    }
  }
  EXPECT_EQ(changed, 8 + 4 + 8);
  // q4_k_m's use_more_bits layers had Q6_K; the rule replaced the mix rule, not added to it.
  EXPECT_EQ(mix[0].name, "output.weight");
}

TEST(GgufTensorTypes, PureOutputAndTokenEmbeddingTypes) {
  const ModelConfig c = config(4, 512, 1536);
  GgufTypeControls pure;
  pure.pure = true;
  for (const GgufTensorPlan& t : plan(c, GgufMix::Q3_K_M, pure))
    EXPECT_EQ(ggml_type_name(t.type), ggml_type_name(t.weight_matrix ? T::Q3_K : T::F32)) << t.name;
  GgufTypeControls io;
  io.output_type = T::Q8_0;
  io.token_embd_type = T::Q4_K;
  io.tensor_types = {rule("^(output|token_embd)", T::Q2_K)};  // the dedicated types take precedence
  io.pure = true;
  const auto p = plan(c, GgufMix::Q5_K_M, [&] {
    GgufTypeControls x = io;
    x.tensor_types.push_back(rule("attn_q", T::Q6_K));
    return x;
  }());
  for (const GgufTensorPlan& t : p) {
    if (t.name == "output.weight") EXPECT_EQ(t.type, T::Q8_0);
    if (t.name == "token_embd.weight") EXPECT_EQ(t.type, T::Q4_K);
    if (t.name == "blk.1.attn_q.weight") EXPECT_EQ(t.type, T::Q6_K);
    if (t.name == "blk.1.attn_v.weight") EXPECT_EQ(t.type, T::Q5_K) << "pure: no use_more_bits Q6_K";
  }
  // Tied embeddings: token_embd is the output; the output type applies unless its own is given.
  ModelConfig tied = c;
  tied.tie_embeddings = true;
  GgufTypeControls out_only;
  out_only.output_type = T::Q8_0;
  for (const GgufTensorPlan& t : plan(tied, GgufMix::Q4_K_M, out_only))
    if (t.name == "token_embd.weight") EXPECT_EQ(t.type, T::Q8_0);
}

TEST(GgufTensorTypes, RuleTypesFallBackOnRowsThatAreNotWholeBlocks) {
  const ModelConfig c = config(2, 320, 640);  // rows of 320: whole Q4_0 blocks, not Q4_K's 256
  GgufTypeControls u;
  u.tensor_types = {rule("attn_q", T::Q4_K), rule("ffn_gate", T::Q6_K)};
  for (const GgufTensorPlan& t : plan(c, GgufMix::Q8_0, u)) {
    if (t.name == "blk.0.attn_q.weight") {
      EXPECT_EQ(t.type, T::Q5_0);
      EXPECT_EQ(t.why, "tensor type 'attn_q', fallback from q4_K");
    }
    if (t.name == "blk.0.ffn_gate.weight") EXPECT_EQ(t.type, T::Q8_0);
  }
}

TEST(GgufTensorTypes, BadControlsNameThePatternOrTheType) {
  const ModelConfig c = config(2, 512, 1536);
  GgufTypeControls none;
  none.tensor_types = {rule("attn_v", T::Q8_0), rule("attn_qq", T::Q8_0)};
  std::string e = test::error_of([&] { plan(c, GgufMix::Q4_K_M, none); });
  EXPECT_NE(e.find("'attn_qq' matches no weight matrix"), std::string::npos) << e;
  GgufTypeControls norm;
  norm.tensor_types = {rule("attn_norm", T::Q8_0)};
  e = test::error_of([&] { plan(c, GgufMix::Q4_K_M, norm); });
  EXPECT_NE(e.find("'attn_norm' matches no weight matrix"), std::string::npos) << e;
  GgufTypeControls f32;
  f32.tensor_types = {rule("attn_v", T::F32)};
  e = test::error_of([&] { plan(c, GgufMix::Q4_K_M, f32); });
  EXPECT_NE(e.find("type f32 cannot be written for a weight matrix (valid: f16, bf16, q4_0"), std::string::npos) << e;
}

TEST(GgufTensorTypes, FlagSpellings) {
  const GgufTensorTypeRule r = cli::parse_tensor_type("blk\\.1\\.attn_(q|k)=Q5_K", "--tensor_type");
  EXPECT_TRUE(r.pattern.search("blk.1.attn_k.weight"));
  EXPECT_FALSE(r.pattern.search("blk.11.attn_k.weight"));
  EXPECT_EQ(r.type, T::Q5_K);
  EXPECT_EQ(cli::parse_written_type("--output_tensor_type", "F32"), T::F32);
  // The i-quants are written types since the grid types tune (issue 16); tq2_0 is a ggml type
  // signround does not write.
  EXPECT_EQ(cli::parse_tensor_type("attn_v=iq2_xs", "--tensor_type").type, T::IQ2_XS);
  std::string e = test::error_of([] { cli::parse_tensor_type("attn_v=tq2_0", "--tensor_type"); });
  EXPECT_NE(e.find("'tq2_0' (valid: f16, bf16, q4_0"), std::string::npos) << e;
  e = test::error_of([] { cli::parse_tensor_type("attn_v{2}=q8_0", "--tensor_type"); });
  EXPECT_NE(e.find("--tensor_type"), std::string::npos) << e;
  e = test::error_of([] { cli::parse_tensor_type("attn_(v=q8_0", "--tensor_type"); });
  EXPECT_NE(e.find("--tensor_type"), std::string::npos) << e;
  for (const char* bad : {"attn_v", "=q8_0", "attn_v="})
    EXPECT_NE(test::error_of([&] { cli::parse_tensor_type(bad, "--tensor_type"); }).find("expected REGEX=TYPE"),
              std::string::npos) << bad;
  e = test::error_of([] { cli::parse_written_type("--output_tensor_type", "q9_9"); });
  EXPECT_NE(e.find("--output_tensor_type: unknown or unwritable type 'q9_9' (valid: f32, f16"), std::string::npos) << e;
  EXPECT_EQ(cli::parse_size("--target_size", "1.5G"), 1.5 * 1073741824.0);
  EXPECT_EQ(cli::parse_size("--target_size", "800m"), 800 * 1048576.0);
  EXPECT_EQ(cli::parse_size("--target_size", "123456"), 123456.0);
  EXPECT_EQ(cli::parse_size("--target_size", "1.5GiB"), 1.5 * 1073741824.0);
  EXPECT_EQ(cli::parse_size("--target_size", "2kb"), 2048.0);
  for (const char* bad : {"10Q", "", "-1M", "G", "1.5GBB", "5iB"})
    EXPECT_NE(test::error_of([&] { cli::parse_size("--target_size", bad); }).find("--target_size expects a size"),
              std::string::npos) << bad;
}

// ---- the CLI on the 4m model ----

test::CommandResult quantize(const std::string& args) {
  return test::run_command(test::cli() + " quantize --threads 2 --quiet --model " + test::shared(kModel) + " " + args);
}

void expect_same_tensors(const std::string& ours_path, const std::string& theirs_path) {
  test::expect_same_gguf_tensors(GgufReader(ours_path), GgufReader(theirs_path));
}

// Overrides land in the file on exactly the tensors they match; the dry run reports that file's
// types and its exact byte count, and writes nothing.
TEST(GgufTensorTypes, OverridesLandInTheFileAndTheDryRunPredictsItsSize) {
  SR_REQUIRE_SHARED(kRef + "tinystories-llama-4m-Q4_K_M.gguf");
  test::TempDir dir;
  std::ofstream(dir / "types.txt") << "# one REGEX=TYPE per line\nblk\\.0\\.ffn_(up|gate)=q5_k\n\n";
  const std::string flags = "--iters 0 --disable_opt_rtn --format gguf:q4_k_m --tensor_type attn_v=q8_0 "
                            "--tensor_type_file " + (dir / "types.txt") + " --token_embedding_type q6_k";
  const std::string out = dir / "o.gguf";
  auto dry = quantize(flags + " --dry_run --json --output_dir " + out);
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".partial"));
  const nlohmann::json j = nlohmann::json::parse(dry.out);
  auto r = quantize(flags + " --output_dir " + out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(j["bytes"].get<uint64_t>(), fs::file_size(out));
  GgufReader ours(out), ref(test::shared(kRef + "tinystories-llama-4m-Q4_K_M.gguf"));
  ASSERT_EQ(ours.tensors().size(), j["tensors"].size());
  int changed = 0;
  for (size_t i = 0; i < ours.tensors().size(); ++i) {
    const std::string& n = ours.tensors()[i].name;
    const bool v = n.find("attn_v") != std::string::npos;
    const bool ug = n == "blk.0.ffn_up.weight" || n == "blk.0.ffn_gate.weight";
    const T want = v ? T::Q8_0 : ug ? T::Q5_K : n == "token_embd.weight" ? T::Q6_K : ref.tensor(n).type;
    EXPECT_EQ(ggml_type_name(ours.tensors()[i].type), ggml_type_name(want)) << n;
    EXPECT_EQ(j["tensors"][i]["name"], n);
    EXPECT_EQ(j["tensors"][i]["type"], ascii_lower(ggml_type_name(ours.tensors()[i].type))) << n;
    EXPECT_EQ(j["tensors"][i]["bytes"].get<uint64_t>(), ours.tensors()[i].nbytes) << n;
    changed += ours.tensors()[i].type != ref.tensor(n).type;
  }
  EXPECT_EQ(changed, 4 + 2 + 1) << "attn_v x4 (Q6_K/Q4_K -> Q8_0), blk.0 up/gate, token_embd";
  // The human-readable dry run too: a table and the same total.
  auto text = quantize(flags + " --dry_run");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find(std::to_string(fs::file_size(out)) + " bytes"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("blk.0.ffn_up.weight"), std::string::npos);
}

// --output_tensor_type, --token_embedding_type and --pure equal llama-quantize's (c392e50) file of
// our F32 GGUF's source, tensor for tensor, byte for byte (plain RTN).
TEST(GgufTensorTypes, MatchLlamaQuantizeByteForByte) {
  SR_REQUIRE_SHARED(kRef + "tinystories-llama-4m-f32.gguf");
  SR_REQUIRE_SHARED("tools/llama.cpp/bin/llama-quantize");
  test::TempDir dir;
  struct Case { std::string ours, theirs, mix; };
  const std::vector<Case> cases = {
      {"--output_tensor_type q8_0 --token_embedding_type q4_k", "--output-tensor-type q8_0 --token-embedding-type q4_k",
       "Q4_K_M"},
      {"--pure", "--pure", "Q3_K_M"},
      {"--pure --output_tensor_type f16", "--pure --output-tensor-type f16", "Q5_0"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    SCOPED_TRACE(cases[i].ours);
    const std::string theirs = dir / ("theirs" + std::to_string(i) + ".gguf");
    const std::string ours = dir / ("ours" + std::to_string(i) + ".gguf");
    auto q = test::run_command(test::shared("tools/llama.cpp/bin/llama-quantize") + " " + cases[i].theirs + " " +
                               test::shared(kRef + "tinystories-llama-4m-f32.gguf") + " " + theirs + " " +
                               cases[i].mix + " 2");
    ASSERT_EQ(q.exit_code, 0) << q.err << q.out;
    auto r = quantize("--iters 0 --disable_opt_rtn --format gguf:" + cases[i].mix + " " + cases[i].ours +
                      " --output_dir " + ours);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_same_tensors(ours, theirs);
  }
}

TEST(GgufTensorTypes, BadFlagsAreRefusedNamingWhatIsWrong) {
  SR_REQUIRE_SHARED(kModel);
  test::TempDir dir;
  std::ofstream(dir / "bad.txt") << "attn_v=q8_0\nffn_up q4_k\n";
  const std::string out = " --iters 0 --disable_opt_rtn --output_dir " + (dir / "never.gguf");
  struct Bad { std::string args, expect; };
  const std::vector<Bad> bad = {
      {"--format gguf:q4_k_m --tensor_type attn_vv=q8_0" + out, "'attn_vv' matches no weight matrix"},
      {"--format gguf:q4_k_m --tensor_type attn_v=q4_x" + out, "unknown or unwritable type 'q4_x' (valid: f16, bf16, q4_0"},
      {"--format gguf:q4_k_m --tensor_type_file " + (dir / "bad.txt") + out, "bad.txt:2"},
      {"--tensor_type attn_v=q8_0" + out, "need --format gguf:<mix>"},
      {"--format gguf:q4_k_m --target_size 100K --options gguf:q4_k,gguf:q6_k" + out, "leaves nothing"},
      {"--format gguf:q4_k_m --pure --avg_bits 5 --options gguf:q4_k,gguf:q6_k" + out, "--pure"},
  };
  for (const Bad& b : bad) {
    auto r = quantize(b.args);
    EXPECT_EQ(r.exit_code, 1) << b.args << "\n" << r.err;
    EXPECT_NE(r.err.find(b.expect), std::string::npos) << b.args << "\n" << r.err;
  }
  EXPECT_FALSE(fs::exists(dir / "never.gguf"));
  EXPECT_FALSE(fs::exists(dir / "never.gguf.partial"));
}

// --target_size is the search at file bit costs: the dry run's file fits it and uses the room;
// --schemes/--bits are --options/--avg_bits.
TEST(GgufTensorTypes, TargetSizeAndAutoSchemeSpellings) {
  SR_REQUIRE_SHARED(kModel);
  SR_REQUIRE_SHARED("data/calib_stories.txt");
  test::TempDir cache;  // the DeltaLoss scores are computed once and shared by the four runs
  const std::string common = "--iters 0 --disable_opt_rtn --format gguf:q4_k_m --dry_run --json --score_cache " +
                             std::string(cache / "scores") + " --autoscheme_nsamples 4 --autoscheme_seqlen 64 --dataset " +
                             test::shared("data/calib_stories.txt");
  auto base = quantize(common + " --options gguf:q4_k,gguf:q6_k --avg_bits 4.5 --bit_cost file");
  ASSERT_EQ(base.exit_code, 0) << base.err;
  const uint64_t low = nlohmann::json::parse(base.out)["bytes"];
  const uint64_t target = low + 200000;
  auto sized = quantize(common + " --options gguf:q4_k,gguf:q6_k --target_size " + std::to_string(target));
  ASSERT_EQ(sized.exit_code, 0) << sized.err;
  const nlohmann::json s = nlohmann::json::parse(sized.out);
  EXPECT_LE(s["bytes"].get<uint64_t>(), target);
  EXPECT_GT(s["bytes"].get<uint64_t>(), target - 60000) << "the search should use most of the room";
  // The same budget as bits per weight of the whole file.
  const double bpw = 8.0 * double(target) / s["parameters"].get<double>();
  char bpw_text[32];
  std::snprintf(bpw_text, sizeof(bpw_text), "%.9f", bpw);
  auto by_bpw = quantize(common + " --options gguf:q4_k,gguf:q6_k --target_bpw " + bpw_text);
  ASSERT_EQ(by_bpw.exit_code, 0) << by_bpw.err;
  EXPECT_EQ(nlohmann::json::parse(by_bpw.out)["tensors"], s["tensors"]);
  auto spelled = quantize(common + " --schemes gguf:q4_k,gguf:q6_k --bits 4.5 --bit_cost file");
  ASSERT_EQ(spelled.exit_code, 0) << spelled.err;
  EXPECT_EQ(nlohmann::json::parse(spelled.out)["tensors"], nlohmann::json::parse(base.out)["tensors"]);
}

// `signround autoscheme` takes the same spellings (uniform allocator: no scoring, no data).
TEST(GgufTensorTypes, AutoschemeTakesSchemesAndBits) {
  SR_REQUIRE_SHARED(kModel);
  test::TempDir dir;
  const std::string run = test::cli() + " autoscheme --threads 2 --quiet --allocator uniform --score_cache none --model " +
                          test::shared(kModel) + " --output_dir ";
  auto ours = test::run_command(run + (dir / "a") + " --options W2A16G64,W4A16 --avg_bits 3");
  auto theirs = test::run_command(run + (dir / "b") + " --schemes W2A16G64,W4A16 --bits 3");
  ASSERT_EQ(ours.exit_code, 0) << ours.err;
  ASSERT_EQ(theirs.exit_code, 0) << theirs.err;
  const std::string file = "/layer_config_uniform_3.json";
  ASSERT_TRUE(fs::exists(dir / "a" + file)) << ours.out;
  EXPECT_EQ(test::read_text(dir / "a" + file), test::read_text(dir / "b" + file));
  auto both = test::run_command(run + (dir / "c") + " --options W4A16 --schemes W4A16 --avg_bits 4");
  EXPECT_EQ(both.exit_code, 1);
  EXPECT_NE(both.err.find("--options and --schemes are the same flag"), std::string::npos) << both.err;
}

}  // namespace
}  // namespace sr
