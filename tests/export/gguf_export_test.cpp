// GgufModelWriter / export_gguf: the 4m HF model written with each llama.cpp mix is
// llama-quantize's file tensor for tensor, byte for byte (same types, same q/k
// permutation, same encoders); files load back through our reader and Model::open with
// the same logits; streaming order, threads and ready-made blocks do not change a byte.
#include "export/gguf_export.h"
#include "export/gguf_metadata.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "eval/perplexity.h"
#include "export/gguf_encode.h"
#include "export/gguf_from_model.h"
#include "io/gguf_reader.h"
#include "gguf_compare.h"
#include "io/text.h"
#include "model/gguf_names.h"
#include "model/matrix_rows.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {
namespace fs = std::filesystem;

const std::string kDir = "reference/llamacpp/tinystories-llama-4m/";
std::string ref_gguf(const std::string& type) { return kDir + "tinystories-llama-4m-" + type + ".gguf"; }

std::string lower(std::string s) {
  for (char& ch : s) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

GgufModelExportOptions quiet() {
  GgufModelExportOptions o;
  o.progress = false;
  o.plan.log = false;
  return o;
}

class MatchesLlamaQuantize : public ::testing::TestWithParam<std::string> {};

TEST_P(MatchesLlamaQuantize, TensorBytesAndFileSize) {
  SR_REQUIRE_SHARED(ref_gguf(GetParam()));
  auto m = Model::open(test::shared("models/tinystories-llama-4m"));
  test::TempDir tmp;
  const std::string ours_path = tmp / "ours.gguf";
  export_gguf(*m, ours_path, parse_gguf_mix(lower(GetParam())), quiet());
  GgufReader ours(ours_path), theirs(test::shared(ref_gguf(GetParam())));
  test::expect_same_gguf_tensors(ours, theirs);
  // Same data section; the header differs a little (metadata, docs/gguf.md).
  EXPECT_EQ(ours.file_size() - ours.data_offset(), theirs.file_size() - theirs.data_offset());
  EXPECT_EQ(ours.get<uint32_t>("general.file_type"), theirs.get<uint32_t>("general.file_type"));
  EXPECT_EQ(ours.get<uint32_t>("general.quantization_version"), 2u);
  EXPECT_EQ(ours.get_array<std::string>("tokenizer.ggml.tokens"), theirs.get_array<std::string>("tokenizer.ggml.tokens"));
  // convert_hf_to_gguf.py re-types the special tokens of tokenizer_config.json's
  // added_tokens_decoder as control tokens with score -1000, and so do we: the vocabulary keys
  // agree, and with them the whole metadata, so the files have the same size (the order of two
  // keys differs: llama-quantize moves them to the end).
  EXPECT_EQ(ours.get_array<float>("tokenizer.ggml.scores"), theirs.get_array<float>("tokenizer.ggml.scores"));
  EXPECT_EQ(ours.get_array<int32_t>("tokenizer.ggml.token_type"), theirs.get_array<int32_t>("tokenizer.ggml.token_type"));
  EXPECT_EQ(ours.file_size(), theirs.file_size());
  // Our model loader reads it back as the same model as llama.cpp's file.
  auto a = Model::open(ours_path), b = Model::open(test::shared(ref_gguf(GetParam())));
  EXPECT_TRUE(at::equal(a->load_block(2).weight(llama::Q), b->load_block(2).weight(llama::Q)));
  EXPECT_EQ(a->config().rms_eps, b->config().rms_eps);
}

INSTANTIATE_TEST_SUITE_P(TinyStories4m, MatchesLlamaQuantize,
                         ::testing::Values("Q8_0", "Q6_K", "Q5_K_M", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0",
                                           "Q3_K_M", "Q3_K_S", "Q2_K"));

// The F32 file is convert_hf_to_gguf.py's, tensor for tensor (its order differs).
TEST(GgufExport, F32TensorsEqualConvertHfToGguf) {
  SR_REQUIRE_SHARED(ref_gguf("f32"));
  auto m = Model::open(test::shared("models/tinystories-llama-4m"));
  test::TempDir tmp;
  export_gguf(*m, tmp / "f32.gguf", GgufMix::F32, quiet());
  GgufReader ours(tmp / "f32.gguf"), theirs(test::shared(ref_gguf("f32")));
  for (const GgufTensorInfo& b : theirs.tensors()) {
    const GgufTensorInfo& a = ours.tensor(b.name);
    ASSERT_EQ(a.nbytes, b.nbytes) << b.name;
    EXPECT_EQ(std::memcmp(a.data, b.data, a.nbytes), 0) << b.name;
  }
}

TEST(GgufExport, Q4KMPerplexityEqualsLlamaCpps) {
  SR_REQUIRE_SHARED(ref_gguf("Q4_K_M"));
  SR_REQUIRE_SHARED("data/tinystories_val.txt");
  auto hf = Model::open(test::shared("models/tinystories-llama-4m"));
  test::TempDir tmp;
  export_gguf(*hf, tmp / "q4km.gguf", GgufMix::Q4_K_M, quiet());
  auto m = Model::open(tmp / "q4km.gguf");
  EvalOptions o;
  o.ctx = 256;
  o.chunks = 200;
  o.progress = false;
  const EvalResult r = evaluate_text(*m, read_text_file(test::shared("data/tinystories_val.txt")), o);
  std::printf("our Q4_K_M file: PPL %.4f +/- %.5f (llama.cpp's file in llama-perplexity: 7.757544)\n", r.ppl,
              r.ppl_stderr);
  EXPECT_LT(std::abs(r.ppl / 7.757544 - 1), 1e-3);
}

// HF -> GGUF F32 -> Model: the same model, for GQA, tied embeddings and both RoPE
// scalings GGUF carries (linear as metadata, llama3 as rope_freqs.weight).
TEST(GgufExport, RandomModelsRoundTrip) {
  struct Case { const char* what; test::RandomModelSpec spec; };
  std::vector<Case> cases(4);
  cases[0].what = "gqa";
  cases[1].what = "tied";
  cases[1].spec.tied = true;
  cases[2].what = "linear rope";
  cases[2].spec.rope_scaling_json = R"({"type": "linear", "factor": 2.0})";
  cases[3].what = "llama3 rope";
  cases[3].spec.rope_scaling_json = R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
      "high_freq_factor": 4.0, "original_max_position_embeddings": 64})";
  for (const Case& c : cases) {
    test::TempDir tmp;
    const std::string path = test::write_random_gguf_model(tmp.path(), c.spec, "f32");
    auto g = Model::open(path), h = Model::open(tmp / "hf");
    EXPECT_EQ(g->config().tie_embeddings, c.spec.tied) << c.what;
    auto tokens = at::randint(0, c.spec.vocab, {2, 100}, at::kLong);
    const double diff = (g->forward(tokens) - h->forward(tokens)).abs().max().item<double>();
    EXPECT_LT(diff, 2e-5) << c.what;
    GgufReader r(path);
    EXPECT_EQ(r.find_tensor("rope_freqs.weight") != nullptr, std::string(c.what) == "llama3 rope") << c.what;
    EXPECT_EQ(r.get<std::string>("general.name"), "Hf");  // the HF folder's name, as convert_hf_to_gguf.py takes it
    EXPECT_EQ(r.get<uint32_t>("llama.context_length"), 256u);
    EXPECT_EQ(r.get<std::string>("tokenizer.ggml.model"), "llama");
  }
}

// Ready-made blocks (what SignRound produces), any order of tensors and any thread
// count give the very same file.
TEST(GgufExport, EncodedBlocksStreamingOrderAndThreadsDoNotChangeABit) {
  test::TempDir tmp;
  test::RandomModelSpec spec;
  spec.hidden = 256;
  spec.intermediate = 512;
  spec.heads = 8;
  spec.kv_heads = 2;
  const std::string ref_path = test::write_random_gguf_model(tmp.path(), spec, "q4_k_m");
  auto m = Model::open(tmp / "hf");
  const Vocabulary vocab = test::synthetic_vocabulary(spec.vocab);
  GgufPlanOptions po;
  po.log = false;
  const auto plan = plan_gguf_types(m->config(), GgufMix::Q4_K_M, po);
  // Every tensor in HF layout, by HF name.
  std::vector<std::pair<std::string, at::Tensor>> all = {{"lm_head.weight", m->lm_head()},
                                                          {"model.norm.weight", m->final_norm()},
                                                          {"model.embed_tokens.weight", m->embedding()}};
  for (int64_t i = 0; i < m->config().n_layers; ++i) {
    BlockWeights b = m->load_block(i);
    const std::string pre = "model.layers." + std::to_string(i) + ".";
    all.emplace_back(pre + "input_layernorm.weight", b.norm[llama::AttnNorm]);
    all.emplace_back(pre + "post_attention_layernorm.weight", b.norm[llama::FfnNorm]);
    for (int p = llama::Q; p <= llama::Down; ++p) all.emplace_back(test::layer_name(i, p) + ".weight", b.w[int(p)]);
  }
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  {
    GgufExportOptions fo;  // what export_gguf passes: the folder's facts, the given vocabulary's ids
    fo.model_name = "model-q4_k_m";
    fo.source = gguf_source_of(m->path(), vocab);
    fo.source.special = {};
    GgufModelWriter w(tmp / "reversed.gguf", m->config(), vocab, GgufMix::Q4_K_M, plan, fo);
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
      const GgufTensorPlan& t = w.planned(it->first);
      if (!t.weight_matrix) {
        w.write_float(it->first, it->second);
        continue;
      }
      // Encoded by the caller in HF row order, as SignRound would.
      at::Tensor x = it->second.contiguous();
      std::vector<uint8_t> bytes = ggml_encode_rows(t.type, x.data_ptr<float>(), x.size(0), x.size(1));
      w.write_encoded(it->first, bytes.data(), bytes.size());
    }
    w.finish();
  }
  at::set_num_threads(threads);
  std::ifstream a(ref_path, std::ios::binary), b(tmp / "reversed.gguf", std::ios::binary);
  const std::string sa((std::istreambuf_iterator<char>(a)), {}), sb((std::istreambuf_iterator<char>(b)), {});
  EXPECT_EQ(sa.size(), sb.size());
  EXPECT_TRUE(sa == sb);
}

// The vocabulary-sized matrices encoded a chunk of rows at a time (write_float_rows, rows read
// from the mapped BF16 file by vocab_matrix_rows) give the same file as encoded whole: streamed
// (given first, their turn) or held (given after the blocks), with an imatrix (lm_head) and
// without, in chunks of 7 rows that do not divide the 96 rows; a q projection given in chunks
// (held, its RoPE rows permuted) too.
TEST(GgufExport, ChunkedRowsEqualWholeEncode) {
  test::TempDir tmp;
  test::RandomModelSpec spec;
  spec.hidden = 256;
  spec.intermediate = 256;
  spec.dtype = "BF16";
  auto m = Model::open(test::write_random_hf_model(tmp / "hf", spec));
  for (const char* name : {"lm_head.weight", "model.embed_tokens.weight"}) {
    const at::Tensor& whole = std::string(name) == "lm_head.weight" ? m->lm_head() : m->embedding();
    EXPECT_TRUE(at::equal(vocab_matrix_rows(*m, name, 5, 11), whole.narrow(0, 5, 11))) << name;
    EXPECT_THROW(vocab_matrix_rows(*m, name, 90, 7), Error) << name;
  }
  EXPECT_THROW(vocab_matrix_rows(*m, "model.norm.weight", 0, 1), Error);
  const Vocabulary vocab = test::synthetic_vocabulary(spec.vocab);
  GgufPlanOptions po;
  po.log = false;
  const auto plan = plan_gguf_types(m->config(), GgufMix::Q4_K_M, po);
  const at::Tensor imx = at::rand({256}) + 0.1;
  std::vector<std::pair<std::string, at::Tensor>> blocks;
  for (int64_t i = 0; i < m->config().n_layers; ++i) {
    BlockWeights b = m->load_block(i);
    const std::string pre = "model.layers." + std::to_string(i) + ".";
    blocks.emplace_back(pre + "input_layernorm.weight", b.norm[llama::AttnNorm]);
    blocks.emplace_back(pre + "post_attention_layernorm.weight", b.norm[llama::FfnNorm]);
    for (int p = llama::Q; p <= llama::Down; ++p) blocks.emplace_back(test::layer_name(i, p) + ".weight", b.w[int(p)]);
  }
  auto rows_of = [&](const char* name) {
    return [&m, name](int64_t r0, int64_t n) { return vocab_matrix_rows(*m, name, r0, n); };
  };
  auto top_level = [&](GgufModelWriter& w, bool chunked) {
    if (chunked) w.write_float_rows("lm_head.weight", rows_of("lm_head.weight"), imx, 7);
    else w.write_float("lm_head.weight", m->lm_head(), imx);
    w.write_float("model.norm.weight", m->final_norm());
    if (chunked) w.write_float_rows("model.embed_tokens.weight", rows_of("model.embed_tokens.weight"), {}, 7);
    else w.write_float("model.embed_tokens.weight", m->embedding());
  };
  auto write_blocks = [&](GgufModelWriter& w, bool chunked) {
    for (const auto& [name, t] : blocks) {
      if (chunked && name == test::layer_name(1, llama::Q) + ".weight") {
        const at::Tensor q = t;
        w.write_float_rows(name, [q](int64_t r0, int64_t n) { return q.narrow(0, r0, n); }, {}, 5);
      } else {
        w.write_float(name, t);
      }
    }
  };
  GgufExportOptions fo;
  fo.model_name = "m";  // not the file's name, which differs
  auto file = [&](const std::string& path, bool chunked, bool top_first) {
    GgufModelWriter w(path, m->config(), vocab, GgufMix::Q4_K_M, plan, fo);
    if (top_first) top_level(w, chunked);
    write_blocks(w, chunked);
    if (!top_first) top_level(w, chunked);
    w.finish();
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  const std::string whole = file(tmp / "whole.gguf", false, true);
  EXPECT_TRUE(file(tmp / "streamed.gguf", true, true) == whole);
  EXPECT_TRUE(file(tmp / "held.gguf", true, false) == whole);

  GgufModelWriter w(tmp / "bad.gguf", m->config(), vocab, GgufMix::Q4_K_M, plan);
  EXPECT_THROW(w.write_float_rows("model.norm.weight", [](int64_t, int64_t n) { return at::ones({n}); }), Error);
  EXPECT_THROW(w.write_float_rows("lm_head.weight", [](int64_t, int64_t n) { return at::zeros({n, 128}); }, imx, 7),
               Error);
}

// The imatrix path runs llama.cpp's weighted encoder on each row.
TEST(GgufExport, ImatrixRowsUseTheWeightedEncoder) {
  test::TempDir tmp;
  test::RandomModelSpec spec;
  spec.hidden = 256;
  spec.heads = 4;
  spec.intermediate = 256;
  auto m = Model::open(test::write_random_hf_model(tmp / "hf", spec));
  const Vocabulary vocab = test::synthetic_vocabulary(spec.vocab);
  GgufModelExportOptions o = quiet();
  o.vocabulary = &vocab;
  at::Tensor imx = at::rand({256}) + 0.1;
  o.imatrix["model.layers.1.mlp.down_proj.weight"] = imx;
  o.imatrix["blk.0.attn_q.weight"] = imx;
  export_gguf(*m, tmp / "imx.gguf", GgufMix::Q3_K_S, o);
  GgufReader r(tmp / "imx.gguf");
  at::Tensor w = m->load_block(1).weight(llama::Down).contiguous();
  std::vector<uint8_t> want(r.tensor("blk.1.ffn_down.weight").nbytes);
  const uint64_t row = ggml_row_bytes(GgmlType::Q3_K, 256);
  for (int64_t i = 0; i < 256; ++i)
    ggml_codec(GgmlType::Q3_K).quantize_row_weighted(w.data_ptr<float>() + i * 256, want.data() + i * row, 256,
                                                      imx.data_ptr<float>());
  EXPECT_EQ(std::memcmp(r.tensor("blk.1.ffn_down.weight").data, want.data(), want.size()), 0);
  const std::vector<uint8_t> ref = ggml_encode_rows(GgmlType::Q3_K, w.data_ptr<float>(), 256, 256);
  EXPECT_NE(std::memcmp(r.tensor("blk.1.ffn_down.weight").data, ref.data(), ref.size()), 0);
  o.imatrix = {{"model.layers.9.mlp.down_proj.weight", imx}};
  EXPECT_THROW(export_gguf(*m, tmp / "bad.gguf", GgufMix::Q3_K_S, o), Error);
  o.imatrix = {{"model.layers.0.mlp.down_proj.weight", at::ones({10})}};
  EXPECT_THROW(export_gguf(*m, tmp / "bad.gguf", GgufMix::Q3_K_S, o), Error);
  EXPECT_FALSE(fs::exists(tmp / "bad.gguf"));
}

TEST(GgufExport, MisuseIsAnErrorAndLeavesNoFile) {
  test::TempDir tmp;
  test::RandomModelSpec spec;
  auto m = Model::open(test::write_random_hf_model(tmp / "hf", spec));
  const Vocabulary vocab = test::synthetic_vocabulary(spec.vocab);
  GgufPlanOptions po;
  po.log = false;
  auto plan = plan_gguf_types(m->config(), GgufMix::Q8_0, po);
  {
    GgufModelWriter w(tmp / "x.gguf", m->config(), vocab, GgufMix::Q8_0, plan);
    EXPECT_THROW(w.write_float("model.layers.7.mlp.up_proj.weight", at::zeros({128, 64})), Error);  // no such
    EXPECT_THROW(w.write_float("model.layers.0.mlp.up_proj.weight", at::zeros({64, 128})), Error);  // shape
    w.write_float("model.layers.0.mlp.up_proj.weight", at::zeros({128, 64}));
    EXPECT_THROW(w.write_float("blk.0.ffn_up.weight", at::zeros({128, 64})), Error);  // twice
    EXPECT_THROW(w.write_encoded("model.layers.0.mlp.gate_proj.weight", "", 0), Error);  // size
    EXPECT_THROW(w.write_float("model.layers.0.input_layernorm.weight", at::ones({64}), at::ones({64})), Error);
    EXPECT_NO_THROW(w.write_float("model.layers.0.mlp.gate_proj.weight", at::zeros({128, 64}), at::ones({64})));
    try {
      w.finish();
      ADD_FAILURE() << "expected an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("was never given"), std::string::npos) << e.what();
    }
  }
  EXPECT_FALSE(fs::exists(tmp / "x.gguf"));
}

// As llama.cpp, a type that needs an importance matrix (IQ2_XXS here) is refused without one,
// naming the tensor; with one it is written.
TEST(GgufExport, VeryLowBitTypesNeedAnImatrix) {
  test::TempDir tmp;
  test::RandomModelSpec spec;
  spec.hidden = 256;
  spec.intermediate = 256;
  spec.layers = 1;
  auto m = Model::open(test::write_random_hf_model(tmp / "hf", spec));
  const Vocabulary vocab = test::synthetic_vocabulary(spec.vocab);
  GgufPlanOptions po;
  po.log = false;
  po.overrides = {{"output.weight", GgmlType::IQ2_XXS}};
  // Without an imatrix the plan refuses first; with one promised, the writer still refuses a
  // tensor that arrives without its importances.
  const std::string plan_msg = test::error_of([&] { plan_gguf_types(m->config(), GgufMix::Q8_0, po); });
  EXPECT_NE(plan_msg.find("Missing importance matrix for tensor output.weight"), std::string::npos) << plan_msg;
  po.has_imatrix = true;
  auto plan = plan_gguf_types(m->config(), GgufMix::Q8_0, po);
  GgufModelWriter w(tmp / "x.gguf", m->config(), vocab, GgufMix::Q8_0, plan);
  const std::string msg = test::error_of([&] { w.write_float("lm_head.weight", at::zeros({spec.vocab, 256})); });
  EXPECT_NE(msg.find("Missing importance matrix for tensor output.weight"), std::string::npos) << msg;
  EXPECT_NO_THROW(w.write_float("lm_head.weight", at::randn({spec.vocab, 256}), at::ones({256})));
}

}  // namespace
}  // namespace sr
