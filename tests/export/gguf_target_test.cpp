// GGUF as a quantization target (export/gguf_target.h, `signround quantize --format gguf:<mix>`)
// on the 4m model:
//   - plain RTN to gguf:q4_k_m and gguf:q2_k is llama-quantize's file tensor for tensor, byte
//     for byte (types from the mix, data from the ref encoders);
//   - SignRound to q4_k_m and q2_k: the file decodes to exactly the fake-quant weights of the
//     run (bit for bit), `signround eval` reads it, and its KLD is below the RTN file's;
//   - optimized RTN uses llama.cpp's imatrix semantics (mean x²) and its imatrix encoder;
//   - a run interrupted and resumed writes the same file; --layer_config overrides land in
//     the file; inconsistent flags are refused before any work.
#include "export/gguf_target.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "export/gguf_encode.h"
#include "io/gguf_reader.h"
#include "gguf_compare.h"
#include "model/model.h"
#include "testutil.h"
#include "tune/unit_quantizer.h"

namespace sr {
namespace {
namespace fs = std::filesystem;

const std::string kRef = "reference/llamacpp/tinystories-llama-4m/";
const std::string kModel = "models/tinystories-llama-4m";

test::CommandResult quantize(const std::string& args) {
  return test::run_command(test::cli() + " quantize --threads 2 --quiet --model " + test::shared(kModel) + " " + args);
}

std::string calib(int64_t nsamples, int64_t seqlen) {
  return " --dataset " + test::shared("data/calib_stories.txt") + " --nsamples " + std::to_string(nsamples) +
         " --seqlen " + std::to_string(seqlen);
}

nlohmann::json eval_json(const std::string& model, int chunks) {
  auto r = test::run_command(test::cli() + " eval --threads 2 --quiet --json --ctx 256 --chunks " +
                             std::to_string(chunks) + " --model " + model + " --text " +
                             test::shared("data/tinystories_val.txt") + " --kld-base " + test::shared(kModel));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.exit_code == 0 ? nlohmann::json::parse(r.out) : nlohmann::json{{"kld", 1e9}, {"ppl", 1e9}};
}

// Tensor-for-tensor equality of two GGUF files (names, types, shapes, bytes).
void expect_same_tensors(const std::string& ours_path, const std::string& theirs_path) {
  test::expect_same_gguf_tensors(GgufReader(ours_path), GgufReader(theirs_path));
}

TEST(GgufTarget, RtnIsLlamaQuantizesFileByteForByte) {
  SR_REQUIRE_SHARED(kRef + "tinystories-llama-4m-Q2_K.gguf");
  test::TempDir dir;
  for (std::string mix : {"Q4_K_M", "Q2_K"}) {
    SCOPED_TRACE(mix);
    const std::string out = dir / (mix + ".gguf");
    auto r = quantize("--iters 0 --disable_opt_rtn --format gguf:" + mix + " --output_dir " + out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    expect_same_tensors(out, test::shared(kRef + "tinystories-llama-4m-" + mix + ".gguf"));
    GgufReader g(out);
    EXPECT_EQ(g.get<std::string>("general.quantized_by"), "signround");
    EXPECT_EQ(g.get<std::string>("signround.recipe"), "rtn");
    // Metadata stays within what llama-quantize --imatrix adds (its file is 224 bytes larger).
    EXPECT_LE(fs::file_size(out), fs::file_size(test::shared(kRef + "tinystories-llama-4m-" + mix + ".gguf")) + 224);
    EXPECT_EQ(g.get<std::string>("general.name"), "Tinystories Llama 4m");  // convert_hf_to_gguf.py's name
    EXPECT_EQ(g.get<std::string>("general.name"), GgufReader(test::shared(kRef + "tinystories-llama-4m-" + mix + ".gguf"))
                                                      .get<std::string>("general.name"));
    EXPECT_FALSE(fs::exists(out + ".partial"));
  }
}

// SignRound into a GGUF target and a fake-quant folder in one run: the file is what was tuned.
TEST(GgufTarget, SignRoundFileIsTheTunedModelAndBeatsRtn) {
  SR_REQUIRE_SHARED(kRef + "tinystories-llama-4m-Q2_K.gguf");
  SR_REQUIRE_SHARED("data/calib_stories.txt");
  test::TempDir dir;
  for (std::string mix : {"q4_k_m", "q2_k"}) {
    SCOPED_TRACE(mix);
    const std::string out = dir / mix;
    auto r = quantize("--iters 20 --batch_size 4 --format gguf:" + mix + ",fake --output_dir " + out + calib(16, 128));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::string upper = mix;
    for (char& ch : upper) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    const std::string file = out + "/gguf-" + mix + "/tinystories-llama-4m-" + upper + ".gguf";
    ASSERT_TRUE(fs::exists(file)) << file;
    auto gguf = Model::open(file), fake = Model::open(out + "/fake");
    for (int64_t b = 0; b < gguf->config().n_layers; ++b) {
      const BlockWeights a = gguf->load_block(b), f = fake->load_block(b);
      for (int p = llama::Q; p <= llama::Down; ++p)
        ASSERT_TRUE(at::equal(a.weight(p).view(at::kInt), f.weight(p).view(at::kInt))) << test::layer_name(b, p);
    }
    GgufReader g(file);
    EXPECT_EQ(g.get<std::string>("signround.recipe"),
              "signround_v2 iters=20 nsamples=16 seqlen=128 seed=42 dataset=calib_stories.txt");
    EXPECT_LE(fs::file_size(file), fs::file_size(test::shared(kRef + "tinystories-llama-4m-" + upper + ".gguf")) + 224)
        << "no larger than llama-quantize --imatrix's file";
    const nlohmann::json tuned = eval_json(file, 30);
    const nlohmann::json rtn = eval_json(test::shared(kRef + "tinystories-llama-4m-" + upper + ".gguf"), 30);
    std::printf("%s: SignRound (20 iters) KLD %.6f PPL %.4f; llama.cpp RTN KLD %.6f PPL %.4f\n", mix.c_str(),
                tuned["kld"].get<double>(), tuned["ppl"].get<double>(), rtn["kld"].get<double>(),
                rtn["ppl"].get<double>());
    EXPECT_LT(tuned["kld"].get<double>(), rtn["kld"].get<double>());
  }
}

TEST(GgufTarget, ResumedRunWritesTheSameFile) {
  SR_REQUIRE_SHARED("data/calib_stories.txt");
  test::TempDir dir;
  const std::string common = "--iters 3 --batch_size 2 --format gguf:q3_k_m" + calib(4, 64);
  auto full = quantize(common + " --output_dir " + (dir / "full.gguf"));
  ASSERT_EQ(full.exit_code, 0) << full.err;
  auto cut = quantize(common + " --output_dir " + (dir / "cut.gguf") + " --stop_after_units 2");
  EXPECT_NE(cut.exit_code, 0);
  EXPECT_FALSE(fs::exists(dir / "cut.gguf"));
  EXPECT_TRUE(fs::exists(dir / "cut.gguf.partial/block_00001.safetensors"));
  auto resumed = quantize(common + " --output_dir " + (dir / "cut.gguf") + " --resume");
  ASSERT_EQ(resumed.exit_code, 0) << resumed.err;
  EXPECT_EQ(test::read_text(dir / "full.gguf"), test::read_text(dir / "cut.gguf"));
}

TEST(GgufTarget, LayerConfigOverridesLandInTheFile) {
  SR_REQUIRE_SHARED(kModel);
  test::TempDir dir;
  std::ofstream(dir / "layers.json") << R"({"model.layers.0.mlp.down_proj": "gguf:q8_0",
                                           "model.layers.1.self_attn.v_proj": "BF16",
                                           "mlp\\.up_proj": {"data_type": "gguf:q5_1"}})";
  auto r = quantize("--iters 0 --disable_opt_rtn --format gguf:q4_k_s --layer_config " + (dir / "layers.json") +
                    " --output_dir " + (dir / "out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string file = dir / "out/tinystories-llama-4m-Q4_K_S.gguf";
  ASSERT_TRUE(fs::exists(file));
  EXPECT_TRUE(fs::exists(dir / "out/signround_run.json"));
  GgufReader g(file);
  EXPECT_EQ(g.tensor("blk.0.ffn_down.weight").type, GgmlType::Q8_0);
  EXPECT_EQ(g.tensor("blk.1.attn_v.weight").type, GgmlType::BF16);
  EXPECT_EQ(g.tensor("blk.2.ffn_up.weight").type, GgmlType::Q5_1);
  EXPECT_EQ(g.tensor("blk.0.attn_v.weight").type, GgmlType::Q5_K) << "q4_k_s rule: attn_v Q5_K for i < 4";
  EXPECT_EQ(g.tensor("blk.2.ffn_gate.weight").type, GgmlType::Q4_K);
  // RTN bytes are llama.cpp's ref encoder of the weight.
  auto m = Model::open(test::shared(kModel));
  const at::Tensor down = m->load_block(0).weight(llama::Down).contiguous();
  const auto want = ggml_encode_rows(GgmlType::Q8_0, down.data_ptr<float>(), down.size(0), down.size(1));
  const GgufTensorInfo& t = g.tensor("blk.0.ffn_down.weight");
  ASSERT_EQ(t.nbytes, want.size());
  EXPECT_EQ(std::memcmp(t.data, want.data(), want.size()), 0);
}

TEST(GgufTarget, InconsistentFlagsAreRefusedBeforeAnyWork) {
  SR_REQUIRE_SHARED(kModel);
  test::TempDir dir;
  std::ofstream(dir / "int.json") << R"({"mlp\\.down_proj": "W4A16"})";
  const std::string out = " --iters 0 --disable_opt_rtn --output_dir " + (dir / "never");
  struct Bad { std::string args, expect; };
  const std::vector<Bad> bad = {
      {"--format gguf:q4_k_m,gguf:q2_k" + out, "one GGUF mix"},
      {"--format gguf:q4_k_m --scheme W4A16" + out, "disagrees"},
      {"--format gguf:q4_k_m --scheme gguf:q5_k" + out, "disagrees"},
      {"--format gguf:q4_k_m --layer_config " + (dir / "int.json") + out, "GGUF cannot store"},
      {"--format gguf:q9_k" + out, "--format"},
      {"--format gguf:q4_k_m --scheme gguf:q4_k --act_bits 8" + out, "act"},
  };
  for (const Bad& b : bad) {
    auto r = quantize(b.args);
    EXPECT_EQ(r.exit_code, 1) << b.args << "\n" << r.err;
    EXPECT_NE(r.err.find(b.expect), std::string::npos) << b.args << "\n" << r.err;
  }
  EXPECT_FALSE(fs::exists(dir / "never"));
  EXPECT_FALSE(fs::exists(dir / "never.partial"));
  // An agreeing --scheme is accepted.
  auto ok = quantize("--format gguf:q4_k_m --scheme GGUF:Q4_K" + out);
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
}

// The mix's per-layer types as plan defaults (4 layers, GQA 2).
TEST(GgufTarget, MixDefinesThePerLayerSchemes) {
  SR_REQUIRE_SHARED(kModel);
  auto m = Model::open(test::shared(kModel));
  GgufTarget target = plan_gguf_target(m->config(), GgufMix::Q4_K_M, false);
  PlanOptions po{gguf_mix_scheme(GgufMix::Q4_K_M), "", false, gguf_layer_defaults(target, m->block_descs())};
  const LayerPlan plan = make_layer_plan(*m, po);
  ASSERT_EQ(plan.layers.size(), 28u);
  // use_more_bits(i, 4) holds for layers 2 and 3 (i >= 7n/8 -> 3; (i - n/8) % 3 == 2 -> 2).
  for (int64_t b = 0; b < 4; ++b) {
    const bool more = gguf_use_more_bits(b, 4);
    EXPECT_EQ(plan.find(b, llama::V)->scheme.name(), more ? "gguf:q6_k" : "gguf:q4_k") << b;
    EXPECT_EQ(plan.find(b, llama::Down)->scheme.name(), more ? "gguf:q6_k" : "gguf:q4_k") << b;
    EXPECT_EQ(plan.find(b, llama::Q)->scheme.name(), "gguf:q4_k");
  }
  EXPECT_NE(plan.find(3, llama::V)->source.find("q4_k_m"), std::string::npos) << plan.find(3, llama::V)->source;
  settle_gguf_target(target, plan, "gguf:q4_k_m");  // the defaults change no type
  const auto& file_plan = target.tensors;
  const auto llama = plan_gguf_types(m->config(), GgufMix::Q4_K_M, {false, {}, false});
  ASSERT_EQ(file_plan.size(), llama.size());
  for (size_t i = 0; i < llama.size(); ++i) EXPECT_EQ(file_plan[i].type, llama[i].type) << llama[i].name;
  // A layer's final scheme settles its tensor's type; a scheme GGUF cannot store is refused.
  LayerPlan changed = plan;
  changed.layers[0].scheme = gguf_scheme(GgmlType::Q8_0);  // model.layers.0.self_attn.q_proj
  GgufTarget t2 = plan_gguf_target(m->config(), GgufMix::Q4_K_M, false);
  settle_gguf_target(t2, changed, "gguf:q4_k_m");
  EXPECT_EQ(t2.tensor("blk.0.attn_q.weight").type, GgmlType::Q8_0);
  EXPECT_EQ(t2.tensor("blk.0.attn_q.weight").why, "override");
  EXPECT_EQ(t2.tensor("blk.1.attn_q.weight").type, GgmlType::Q4_K);
  changed.layers[1].scheme = preset_scheme("W4A16");
  EXPECT_NE(test::error_of([&] { settle_gguf_target(t2, changed, "gguf:q4_k_m"); }).find("GGUF cannot store"),
            std::string::npos);
  EXPECT_EQ(gguf_format_mix("GGUF:Q2_K_S"), GgufMix::Q2_K_S);
  EXPECT_EQ(gguf_format_mix("gguf:bf16"), GgufMix::BF16);  // converted without quantizing
  EXPECT_THROW(gguf_format_mix("gguf:q9_k"), Error);
}

// Optimized RTN of a GGUF layer = llama-quantize --imatrix with llama.cpp's imatrix (mean x²).
TEST(GgufTarget, OptimizedRtnUsesLlamaCppsImatrixSemantics) {
  SR_REQUIRE_SHARED(kModel);
  auto m = Model::open(test::shared(kModel));
  const ModelConfig& c = m->config();
  LayerPlan plan = make_layer_plan(*m, {gguf_scheme(GgmlType::Q4_0), "", false, {}});
  for (LayerChoice& l : plan.layers)
    if (l.linear == llama::Up) l.scheme = gguf_scheme(GgmlType::Q3_K);
  UnitInput in;
  in.blocks = {0};
  in.fp = {m->load_block(0)};
  at::manual_seed(5);
  in.x_in = m->embed(at::randint(0, c.vocab, {3, 40}, at::kLong));
  in.mask = at::ones({3, 40}, at::kBool);
  std::map<int, at::Tensor> sums;
  const RopeTables& rope = m->rope(40);
  in.y_ref = block_forward(c, in.fp[0], in.x_in.all(), at::arange(40), rope, [&](int p, const at::Tensor& x) {
    auto sq = x.reshape({-1, x.size(-1)}).pow(2).sum(0);
    sums[p] = sums[p].defined() ? sums[p] + sq : sq;
    return x;
  });
  for (int p = llama::Q; p <= llama::Down; ++p) in.imatrix[test::layer_name(0, p)] = sums[p];
  TuneOptions opt;
  opt.method = Method::OptRtn;
  const UnitResult r = quantize_unit(c, plan, in, rope, opt);
  ASSERT_EQ(r.layers.size(), 7u);
  for (const QuantizedLayer& l : r.layers) {
    SCOPED_TRACE(l.name);
    const int p = plan.find(l.name)->linear;
    const at::Tensor w = in.fp[0].weight(p).contiguous();
    const at::Tensor mean = (sums[p] / 120.0).contiguous();
    const auto want = ggml_encode_rows(l.scheme.ggml_type, w.data_ptr<float>(), w.size(0), w.size(1),
                                       mean.data_ptr<float>());
    const at::Tensor got = l.encoded.ggml.contiguous();
    ASSERT_EQ(size_t(got.numel()), want.size());
    EXPECT_EQ(std::memcmp(got.data_ptr<uint8_t>(), want.data(), want.size()), 0);
  }
}

}  // namespace
}  // namespace sr
