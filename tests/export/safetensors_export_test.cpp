// auto_round and auto_gptq safetensors exports, read back by Model::open:
//   - for each representative scheme, the dequantized weights of the packed folder equal the
//     fake-quant weights (decode of the tuning state, and the fake export's F32 tensors) bit
//     for bit, logits and perplexity equal the fake export's exactly;
//   - packed bytes per layer equal the §4.3 bit count (b·n + groups·(scale + zero bits));
//   - quantization_config keys, zero conventions, g_idx; sharded output;
//   - schemes a format cannot store are refused before quantizing (CLI included);
//   - corrupt folders (shapes, missing tensors, bad quantization_config, NaN scale codes,
//     act-order g_idx, config/tensor disagreement) fail naming the tensor or key.
// The 4m demo model (in the repo) is quantized by RTN (opt-RTN with calibration for NVFP4).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "eval/perplexity.h"
#include "export/export_job.h"
#include "export/hf_folder.h"
#include "io/text.h"
#include "model/model.h"
#include "model/packed_weights.h"
#include "model/tensor_convert.h"
#include "quant/act_hooks.h"
#include "quant/formats/packing.h"
#include "random_model.h"
#include "testutil.h"
#include "tune/pipeline.h"

namespace sr {
namespace {
namespace fs = std::filesystem;

const std::string kDemo = "demo/tinystories-llama-4m";

nlohmann::json read_json(const std::string& p) { return nlohmann::json::parse(std::ifstream(p)); }
void write_json_file(const std::string& p, const nlohmann::json& j) { std::ofstream(p) << j.dump(2); }

// One quantization run (RTN, or calibrated opt-RTN) saved in a state folder, exportable.
struct QRun {
  std::unique_ptr<Model> model;
  LayerPlan plan;
  std::string state;
  nlohmann::json record;
  TuningRecipe recipe;

  ExportJob job(uint64_t shard = 0) const {
    ExportJob j;
    j.model = model.get();
    j.plan = &plan;
    const std::string s = state;
    j.block_layers = [s](int64_t b) { return load_saved_block(s, b); };
    j.record = record;
    j.recipe = recipe;
    j.max_shard_bytes = shard;
    return j;
  }
};

QRun quantize(const std::string& model_path, const QuantScheme& scheme, const std::string& dir, bool calibrate,
             const std::string& layer_config = "") {
  QRun r;
  r.model = Model::open(model_path);
  r.plan = make_layer_plan(*r.model, {scheme, layer_config, false});
  QuantizeOptions o;
  o.progress = false;
  o.tune.iters = 0;
  o.tune.method = calibrate ? Method::OptRtn : Method::Rtn;
  if (calibrate) {
    o.calib.dataset = test::repo("demo/stories.txt");
    o.calib.nsamples = 4;
    o.calib.seqlen = 64;
  }
  r.state = dir + "/state";
  nlohmann::json settings = {{"iters", 0}, {"nsamples", o.calib.nsamples}, {"seqlen", o.calib.seqlen},
                             {"dataset", o.calib.dataset}};
  r.record = run_quantization(*r.model, r.plan, o, r.state, settings);
  r.record["settings"] = settings;
  r.recipe.method = calibrate ? "opt_rtn" : "rtn";
  r.recipe.iters = 0;
  r.recipe.nsamples = o.calib.nsamples, r.recipe.seqlen = o.calib.seqlen, r.recipe.dataset = o.calib.dataset;
  return r;
}

bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes() || a.scalar_type() != at::kFloat || b.scalar_type() != at::kFloat) return false;
  return at::equal(a.contiguous().view(at::kInt), b.contiguous().view(at::kInt));
}

double ppl(Model& m) {
  install_activation_quantization(m);
  EvalOptions o;
  o.ctx = 64;
  o.chunks = 6;
  o.progress = false;
  return evaluate_text(m, read_text_file(test::repo("demo/stories.txt")), o).ppl;
}

// Σ stored bytes of the packed tensors of layer `name` in an opened folder.
uint64_t packed_bytes(const Model& m, const std::string& name) {
  uint64_t n = 0;
  for (const std::string& t : m.tensors().names())
    if (t.rfind(name + ".", 0) == 0 && t != name + ".bias") n += m.tensors().get(t).nbytes;
  return n;
}

struct Case {
  std::string label, scheme;
  std::vector<std::string> formats;  // besides "fake"
  bool calibrate = false;
};

// The whole check for one scheme: export fake + packed formats, reopen, compare.
void check_case(const Case& c) {
  SCOPED_TRACE(c.label);
  test::TempDir dir;
  const QuantScheme scheme = parse_scheme(c.scheme);
  QRun run = quantize(test::repo(kDemo), scheme, dir.path(), c.calibrate);
  export_model("fake", run.job(), dir / "fake");
  auto fake = Model::open(dir / "fake");
  const double fake_ppl = ppl(*fake);
  for (const std::string& f : c.formats) {
    SCOPED_TRACE(f);
    check_export_plan(f, run.plan, c.calibrate);
    export_model(f, run.job(), dir / f);
    ASSERT_TRUE(fs::exists(dir / (f + "/model.safetensors")));
    ASSERT_TRUE(fs::exists(dir / (f + "/tokenizer.model")));
    auto packed = Model::open(dir / f);
    ASSERT_NE(packed->packed_weights(), nullptr);
    const nlohmann::json qc = read_json(dir / (f + "/config.json"))["quantization_config"];
    EXPECT_EQ(qc, read_json(dir / (f + "/quantization_config.json")));
    EXPECT_EQ(qc["bits"], scheme.bits);
    EXPECT_EQ(qc["quant_method"], f == "auto_gptq" ? "gptq" : "auto-round");
    for (int64_t b = 0; b < run.model->config().n_layers; ++b) {
      BlockWeights pw = packed->load_block(b), fw = fake->load_block(b);
      for (const QuantizedLayer& l : load_saved_block(run.state, b)) {
        const int p = run.plan.find(l.name)->linear;
        EXPECT_TRUE(same_bits(pw.weight(p), l.dequantized())) << l.name;
        EXPECT_TRUE(same_bits(pw.weight(p), fw.weight(p))) << l.name;
        // §4.3: b·n + groups·(scale bits + zero bits), plus GPTQ's g_idx and NV's two fp32 scales.
        uint64_t want = uint64_t(layer_bits(l.scheme, l.encoded.codes.size(0), l.encoded.codes.size(1), false)) / 8;
        if (f == "auto_gptq") want += uint64_t(l.encoded.codes.size(1)) * 4;
        if (scheme.data_type == DataType::NvFp) want += 8;
        EXPECT_EQ(packed_bytes(*packed, l.name), want) << l.name;
      }
      EXPECT_TRUE(same_bits(pw.norm[llama::AttnNorm], fw.norm[llama::AttnNorm]));
    }
    auto tokens = at::randint(0, 1000, {2, 16}, at::kLong);
    install_activation_quantization(*packed);
    EXPECT_TRUE(at::equal(packed->forward(tokens), fake->forward(tokens)));
    EXPECT_EQ(ppl(*packed), fake_ppl);
  }
  std::printf("%-22s PPL %.6f (fake and every packed format)\n", c.label.c_str(), fake_ppl);
}

// The embedding and lm_head written a chunk of rows at a time (add_vocab_matrix, as the fake and
// packed exports write them) give the bytes of the whole matrix written at once, for chunks of 7
// rows that do not divide the 96 rows, from a BF16 source kept BF16 and cast to F16; parts that do
// not add up to the tensor are refused.
TEST(SafetensorsExport, VocabMatricesInChunksEqualWhole) {
  test::TempDir tmp;
  test::RandomModelSpec spec;
  spec.dtype = "BF16";
  auto m = Model::open(test::write_random_hf_model(tmp / "hf", spec));
  auto folder = [&](const std::string& dir, bool chunked) {
    fs::create_directories(dir);
    SafetensorsStreamWriter st(dir);
    for (const char* name : {"model.embed_tokens.weight", "lm_head.weight"}) {
      if (chunked) add_vocab_matrix(st, *m, name, at::kBFloat16, 7);
      else add_tensor(st, name, std::string(name) == "lm_head.weight" ? m->lm_head() : m->embedding(), at::kBFloat16);
    }
    st.finish();
    std::ifstream in(fs::path(dir) / "model.safetensors", std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), {});
  };
  EXPECT_TRUE(folder(tmp / "whole", false) == folder(tmp / "chunked", true));
  {
    fs::create_directories(tmp / "f16");
    SafetensorsStreamWriter a(tmp / "f16");
    add_vocab_matrix(a, *m, "lm_head.weight", at::kHalf, 7);
    a.finish();
    auto t = load_tensors((fs::path(tmp / "f16") / "model.safetensors").string());
    EXPECT_TRUE(at::equal(t.at(0).second, m->lm_head().to(at::kHalf)));
  }
  fs::create_directories(tmp / "bad");
  SafetensorsStreamWriter st(tmp / "bad");
  const std::vector<float> x(8, 1.0f);
  EXPECT_THROW(st.add_parts("t", "F32", {2, 4}, [&](const SafetensorsStreamWriter::PartWriter& w) { w(x.data(), 16); }),
               Error);  // 16 of 32 bytes
  EXPECT_THROW(st.add_parts("u", "F32", {1, 4},
                            [&](const SafetensorsStreamWriter::PartWriter& w) {
                              w(x.data(), 16);
                              w(x.data(), 16);
                            }),
               Error);  // overrun
}

TEST(SafetensorsExport, IntSchemesBitExactAcrossFormats) {
  const std::vector<std::string> both = {"auto_round", "auto_gptq"};
  for (const Case& c : std::vector<Case>{{"W4A16", "W4A16", both},
                                         {"W2A16G64", "W2A16G64", both},
                                         {"W3A16 (3-bit)", "W3A16", both},
                                         {"W8A16", "W8A16", both},
                                         {"W4 per-channel", "scheme=W4A16,group_size=-1", both},
                                         {"asym W4 g128", "bits=4,group_size=128,sym=false", {"auto_round"}},
                                         {"W5A16 (bit stream)", "W5A16", {"auto_round"}}})
    check_case(c);
}

TEST(SafetensorsExport, MxNvSchemesBitExact) {
  for (const Case& c : std::vector<Case>{{"MXFP4", "MXFP4", {"auto_round"}},
                                         {"MXFP8", "MXFP8", {"auto_round"}},
                                         {"NVFP4 (calibrated)", "NVFP4", {"auto_round"}, true}})
    check_case(c);
}

TEST(SafetensorsExport, ConfigKeysAndZeroConventions) {
  test::TempDir dir;
  {  // sym INT: auto_round:auto_gptq, zero stored as 2^(b-1) - 1; GPTQ also writes g_idx.
    QRun run = quantize(test::repo(kDemo), preset_scheme("W4A16"), dir / "sym", false);
    export_model("auto_round", run.job(), dir / "ar");
    export_model("auto_gptq", run.job(), dir / "gq");
    const auto ar = read_json(dir / "ar/config.json")["quantization_config"];
    EXPECT_EQ(ar["packing_format"], "auto_round:auto_gptq");
    EXPECT_EQ(ar["block_name_to_quantize"], "model.layers");
    EXPECT_EQ(ar["data_type"], "int");
    EXPECT_EQ(ar["group_size"], 128);
    EXPECT_EQ(ar["sym"], true);
    EXPECT_EQ(ar["iters"], 0);
    EXPECT_FALSE(ar.contains("act_bits"));     // weight-only: act_* filtered out
    EXPECT_FALSE(ar.contains("extra_config"));
    EXPECT_FALSE(ar.contains("batch_size"));   // equals auto-round's default
    const auto gq = read_json(dir / "gq/config.json");
    EXPECT_EQ(gq["torch_dtype"], "float16");
    const auto& g = gq["quantization_config"];
    EXPECT_EQ(g["desc_act"], false);
    EXPECT_EQ(g["true_sequential"], false);
    EXPECT_EQ(g["damp_percent"], 0.01);
    EXPECT_EQ(g["lm_head"], false);
    auto m = Model::open(dir / "gq");
    const std::string q = "model.layers.0.self_attn.q_proj";
    auto zeros = packing::unpack_gptq(entry_to_tensor(m->tensors().get(q + ".qzeros")), 4, 256, 1);
    EXPECT_TRUE(at::equal(zeros, at::full_like(zeros, 7)));
    EXPECT_EQ(m->tensors().get(q + ".qzeros").shape, (std::vector<int64_t>{2, 32}));
    EXPECT_EQ(m->tensors().get(q + ".qweight").shape, (std::vector<int64_t>{32, 256}));
    EXPECT_TRUE(m->tensors().has(q + ".g_idx"));
    EXPECT_EQ(m->parameter_count(), run.model->parameter_count());  // packed linears count as [O, I]
    EXPECT_FALSE(Model::open(dir / "ar")->tensors().has(q + ".g_idx"));
  }
  {  // asym INT: "auto_round", zero point stored as is.
    QRun run = quantize(test::repo(kDemo), parse_scheme("bits=4,sym=false"), dir / "asym", false);
    export_model("auto_round", run.job(), dir / "ara");
    EXPECT_EQ(read_json(dir / "ara/config.json")["quantization_config"]["packing_format"], "auto_round");
    auto m = Model::open(dir / "ara");
    const QuantizedLayer l = load_saved_block(run.state, 0)[0];
    auto zeros = packing::unpack_gptq(entry_to_tensor(m->tensors().get(l.name + ".qzeros")), 4, l.encoded.codes.size(0), 1);
    EXPECT_TRUE(at::equal(zeros.t(), l.encoded.zeros));
  }
  {  // MXFP4: llm_compressor packing, act_* written, E8M0 scale bytes as encoded.
    QRun run = quantize(test::repo(kDemo), preset_scheme("MXFP4"), dir / "mx", false);
    export_model("auto_round", run.job(), dir / "mx4");
    const auto q = read_json(dir / "mx4/config.json")["quantization_config"];
    EXPECT_EQ(q["packing_format"], "auto_round:llm_compressor");
    EXPECT_EQ(q["data_type"], "mx_fp");
    EXPECT_EQ(q["act_bits"], 4);
    EXPECT_EQ(q["act_data_type"], "mx_fp");
    EXPECT_EQ(q["act_dynamic"], true);
    auto m = Model::open(dir / "mx4");
    const QuantizedLayer l = load_saved_block(run.state, 1)[3];
    EXPECT_EQ(m->tensors().get(l.name + ".weight_scale").dtype, "U8");
    EXPECT_TRUE(at::equal(entry_to_tensor(m->tensors().get(l.name + ".weight_scale")), l.encoded.scales));
    EXPECT_TRUE(at::equal(packing::unpack_fp4_pairs(entry_to_tensor(m->tensors().get(l.name + ".weight_packed")),
                                                    l.encoded.codes.size(1)),
                          l.encoded.codes));
  }
}

TEST(SafetensorsExport, NvfpActivationScaleFromConfigWithoutRecord) {
  // auto-round's own folders carry no quantization.json: eval must take the NVFP4 input
  // global scale from the tensors and reach the same perplexity.
  test::TempDir dir;
  QRun run = quantize(test::repo(kDemo), preset_scheme("NVFP4"), dir.path(), true);
  export_model("auto_round", run.job(), dir / "nv");
  const auto q = read_json(dir / "nv/config.json")["quantization_config"];
  EXPECT_EQ(q["act_data_type"], "nv_fp4_with_static_gs");
  EXPECT_EQ(q["act_dynamic"], true);  // as auto-round's NVFP4 preset writes it
  auto with = Model::open(dir / "nv");
  const double p1 = ppl(*with);
  fs::remove(dir / "nv/quantization.json");
  auto without = Model::open(dir / "nv");
  EXPECT_EQ(install_activation_quantization(*without), 28);
  EXPECT_EQ(ppl(*without), p1);
  const QuantizedLayer l = load_saved_block(run.state, 0)[0];
  const float gs = entry_to_float(without->tensors().get(l.name + ".input_global_scale")).item<float>();
  EXPECT_EQ(gs, 2688.0f * (1.0f / l.act.act_max.item<float>()));
}

TEST(SafetensorsExport, MixedPlanExtraConfigAndDynamic) {
  test::TempDir dir;
  write_json_file(dir / "layers.json", {{"model.layers.0.mlp.down_proj", "W8A16"},
                                        {"model.layers.1.self_attn.q_proj", "BF16"},
                                        {"mlp\\.up_proj", {{"bits", 4}, {"group_size", 64}}}});
  QRun run = quantize(test::repo(kDemo), preset_scheme("W4A16"), dir.path(), false, dir / "layers.json");
  export_model("fake", run.job(), dir / "fake");
  export_model("auto_round", run.job(), dir / "ar");
  export_model("auto_gptq", run.job(), dir / "gq");
  const auto ar = read_json(dir / "ar/config.json")["quantization_config"];
  const auto& ex = ar["extra_config"];
  EXPECT_EQ(ex["model.layers.0.mlp.down_proj"], (nlohmann::json{{"bits", 8}}));
  EXPECT_EQ(ex["model.layers.1.self_attn.q_proj"], (nlohmann::json{{"bits", 16}, {"data_type", "fp"}}));
  EXPECT_EQ(ex["model.layers.2.mlp.up_proj"], (nlohmann::json{{"group_size", 64}}));
  EXPECT_FALSE(ex.contains("model.layers.2.mlp.gate_proj"));
  const auto gq = read_json(dir / "gq/config.json")["quantization_config"]["dynamic"];
  EXPECT_EQ(gq["-:.*model\\.layers\\.1\\.self_attn\\.q_proj.*"], nlohmann::json::object());
  EXPECT_EQ(gq["+:.*model\\.layers\\.0\\.mlp\\.down_proj.*"],
            (nlohmann::json{{"bits", 8}, {"group_size", 128}, {"sym", true}}));
  auto fake = Model::open(dir / "fake");
  const double p = ppl(*fake);
  for (const char* f : {"ar", "gq"}) {
    auto m = Model::open(dir / f);
    EXPECT_TRUE(m->tensors().has("model.layers.1.self_attn.q_proj.weight")) << f;   // kept plain
    EXPECT_FALSE(m->tensors().has("model.layers.0.mlp.down_proj.weight")) << f;     // packed
    for (int64_t b = 0; b < 4; ++b)
      for (int pr = llama::Q; pr <= llama::Down; ++pr) EXPECT_TRUE(same_bits(m->load_block(b).weight(pr), fake->load_block(b).weight(pr)));
    EXPECT_EQ(ppl(*m), p) << f;
  }
}

TEST(SafetensorsExport, ShardedOutputReadsBack) {
  test::TempDir dir;
  QRun run = quantize(test::repo(kDemo), preset_scheme("W4A16"), dir.path(), false);
  export_model("auto_round", run.job(1 << 20), dir / "sh");
  export_model("auto_round", run.job(), dir / "one");
  int shards = 0;
  for (const auto& e : fs::directory_iterator(dir / "sh"))
    shards += e.path().extension() == ".safetensors";
  EXPECT_GE(shards, 3);
  const auto index = read_json(dir / "sh/model.safetensors.index.json");
  EXPECT_TRUE(index["weight_map"].contains("model.layers.3.mlp.down_proj.qweight"));
  auto a = Model::open(dir / "sh"), b = Model::open(dir / "one");
  auto tokens = at::randint(0, 1000, {1, 24}, at::kLong);
  EXPECT_TRUE(at::equal(a->forward(tokens), b->forward(tokens)));
  for (const auto& e : fs::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(SafetensorsExport, BiasesAndF16SourceAcrossFormats) {
  // A Qwen2-style F16 model with q/k/v biases: unquantized tensors (and biases) keep the
  // source dtype in both formats, so auto_round and auto_gptq decode to the same model.
  test::TempDir dir;
  test::RandomModelSpec spec;
  spec.arch = "Qwen2ForCausalLM";
  spec.dtype = "F16";
  test::write_random_hf_model(dir / "src", spec);
  QRun run = quantize(dir / "src", preset_scheme("W4A16"), dir.path(), false);
  export_model("auto_round", run.job(), dir / "ar");
  export_model("auto_gptq", run.job(), dir / "gq");
  auto ar = Model::open(dir / "ar"), gq = Model::open(dir / "gq");
  EXPECT_EQ(ar->tensors().get("model.layers.0.self_attn.q_proj.bias").dtype, "F16");
  EXPECT_EQ(ar->tensors().get("model.norm.weight").dtype, "F16");
  for (const QuantizedLayer& l : load_saved_block(run.state, 1))
    EXPECT_TRUE(same_bits(ar->load_block(1).weight(run.plan.find(l.name)->linear), l.dequantized())) << l.name;
  auto tokens = at::randint(0, 96, {2, 12}, at::kLong);
  EXPECT_TRUE(at::equal(ar->forward(tokens), gq->forward(tokens)));
}

TEST(SafetensorsExport, KeptLayersFromLlama2cSource) {
  // stories260K (llama2.c, interleaved q/k rows): its MLP (172 wide) stays 16-bit by the shape
  // rule, so extra_config / dynamic carry 16-bit entries and the kept layers are plain tensors.
  SR_REQUIRE_SHARED("models/stories260K/stories260K.bin");
  test::TempDir dir;
  QRun run = quantize(test::shared("models/stories260K/stories260K.bin"), preset_scheme("W4A16"), dir.path(), false);
  export_model("fake", run.job(), dir / "fake");
  export_model("auto_round", run.job(), dir / "ar");
  export_model("auto_gptq", run.job(), dir / "gq");
  const auto ex = read_json(dir / "ar/config.json")["quantization_config"]["extra_config"];
  EXPECT_EQ(ex["model.layers.4.mlp.up_proj"], (nlohmann::json{{"bits", 16}, {"data_type", "fp"}}));
  EXPECT_EQ(ex.size(), 15u);
  auto fake = Model::open(dir / "fake");
  auto tokens = at::randint(0, 512, {2, 16}, at::kLong);
  for (const char* f : {"ar", "gq"}) {
    auto m = Model::open(dir / f);
    EXPECT_TRUE(m->tensors().has("model.layers.4.mlp.up_proj.weight")) << f;
    EXPECT_TRUE(m->tensors().has("model.layers.4.self_attn.q_proj.qweight")) << f;
    EXPECT_TRUE(at::equal(m->forward(tokens), fake->forward(tokens))) << f;
  }
}

// --- refusals before quantizing -------------------------------------------------------

std::string plan_error(const std::string& format, const std::string& scheme, bool calibrated = true,
                       const std::string& layer_config = "") {
  auto m = Model::open(test::repo(kDemo));
  LayerPlan plan = make_layer_plan(*m, {parse_scheme(scheme), layer_config, false});
  try {
    check_export_plan(format, plan, calibrated);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SafetensorsExport, RefusesSchemesAFormatCannotStore) {
  auto has = [](const std::string& msg, const std::string& part) {
    return msg.find(part) != std::string::npos;
  };
  std::string e = plan_error("auto_gptq", "MXFP4");
  EXPECT_TRUE(has(e, "format auto_gptq") && has(e, "MXFP4") && has(e, "q_proj")) << e;
  e = plan_error("auto_gptq", "bits=4,sym=false");
  EXPECT_TRUE(has(e, "asymmetric")) << e;
  e = plan_error("auto_gptq", "W5A16");
  EXPECT_TRUE(has(e, "2, 3, 4 and 8")) << e;
  e = plan_error("auto_round", "INT4");  // W4A4
  EXPECT_TRUE(has(e, "quantized activations")) << e;
  e = plan_error("auto_round", "FPW8A16");
  EXPECT_TRUE(has(e, "FP8")) << e;
  e = plan_error("auto_round", "NVFP4", /*calibrated=*/false);
  EXPECT_TRUE(has(e, "calibrated act_max")) << e;
  test::TempDir dir;
  write_json_file(dir / "mix.json", {{"model.layers.0.mlp.down_proj", "MXFP4"}});
  e = plan_error("auto_round", "W4A16", true, dir / "mix.json");
  EXPECT_TRUE(has(e, "mixes INT and MX/NV")) << e;
  EXPECT_EQ(plan_error("auto_round", "W4A16"), "");
  EXPECT_EQ(plan_error("auto_gptq", "W3A16"), "");
  EXPECT_EQ(plan_error("auto_round", "MXFP8"), "");
}

TEST(SafetensorsExport, CliRefusesBeforeQuantizing) {
  test::TempDir dir;
  auto r = test::run_command(test::cli() + " quantize --quiet --model " + test::repo(kDemo) +
                             " --scheme MXFP4 --format fake,auto_gptq --iters 0 --disable_opt_rtn --output_dir " +
                             (dir / "out"));
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("format auto_gptq"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir / "out"));
  EXPECT_FALSE(fs::exists(dir / "out.partial"));  // nothing was quantized
}

TEST(SafetensorsExport, CliQuantizeEvalEqualPpl) {
  test::TempDir dir;
  auto r = test::run_command(test::cli() + " quantize --quiet --threads 2 --model " + test::repo(kDemo) +
                             " --scheme W3A16 --format fake,auto_round,auto_gptq --iters 0 --disable_opt_rtn "
                             "--max_shard_size 1 --output_dir " + (dir / "out"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> ppls;
  for (const char* f : {"fake", "auto_round", "auto_gptq"}) {
    auto e = test::run_command(test::cli() + " eval --quiet --json --threads 2 --ctx 64 --chunks 6 --model " +
                               (dir / ("out/" + std::string(f))) + " --text " + test::repo("demo/stories.txt"));
    ASSERT_EQ(e.exit_code, 0) << e.err;
    ppls.push_back(nlohmann::json::parse(e.out)["ppl"].dump());
  }
  EXPECT_EQ(ppls[0], ppls[1]);
  EXPECT_EQ(ppls[0], ppls[2]);
  EXPECT_TRUE(fs::exists(dir / "out/auto_gptq/model.safetensors.index.json"));
}

// --- corrupt folders ------------------------------------------------------------------

class CorruptFolder : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    QRun run = quantize(test::repo(kDemo), preset_scheme("W4A16"), dir_->path(), false);
    export_model("auto_gptq", run.job(), *dir_ / "gq");
    export_model("fake", run.job(), *dir_ / "fake");
    QRun nv = quantize(test::repo(kDemo), preset_scheme("MXFP4"), *dir_ / "mx", false);
    export_model("auto_round", nv.job(), *dir_ / "mx4");
  }
  static void TearDownTestSuite() { delete dir_; }

  // A fresh copy of folder `name` to damage.
  std::string copy(const std::string& name) {
    const std::string dst = *dir_ / ("bad-" + std::to_string(n_++));
    fs::copy(*dir_ / name, dst, fs::copy_options::recursive);
    return dst;
  }
  static void edit_config(const std::string& folder, const std::function<void(nlohmann::json&)>& fn) {
    nlohmann::json j = read_json(folder + "/config.json");
    fn(j);
    write_json_file(folder + "/config.json", j);
  }
  static void edit_tensors(const std::string& folder,
                           const std::function<void(std::vector<std::pair<std::string, at::Tensor>>&)>& fn) {
    const std::string f = folder + "/model.safetensors";
    auto t = load_tensors(f);
    fn(t);
    save_tensors(f, t, {{"format", "pt"}});
  }
  // Overwrites byte `index` of tensor `name`'s data in a single-file folder.
  static void patch_byte(const std::string& folder, const std::string& name, uint64_t index, uint8_t value) {
    const std::string f = folder + "/model.safetensors";
    std::fstream io(f, std::ios::in | std::ios::out | std::ios::binary);
    uint64_t n = 0;
    io.read(reinterpret_cast<char*>(&n), 8);
    std::string header(n, '\0');
    io.read(header.data(), std::streamsize(n));
    const uint64_t begin = nlohmann::json::parse(header)[name]["data_offsets"][0].get<uint64_t>();
    io.seekp(std::streamoff(8 + n + begin + index));
    io.put(char(value));
  }
  static std::string open_error(const std::string& folder, bool load_all = false) {
    try {
      auto m = Model::open(folder);
      if (load_all)
        for (int64_t b = 0; b < m->config().n_layers; ++b) m->load_block(b);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  static test::TempDir* dir_;
  static inline int n_ = 0;
};
test::TempDir* CorruptFolder::dir_ = nullptr;

const std::string kQ = "model.layers.0.self_attn.q_proj";

TEST_F(CorruptFolder, WrongQweightShape) {
  const std::string d = copy("gq");
  edit_tensors(d, [](auto& t) {
    for (auto& [n, x] : t)
      if (n == kQ + ".qweight") x = x.narrow(0, 0, x.size(0) - 1).clone();
  });
  const std::string e = open_error(d);
  EXPECT_NE(e.find(kQ + ".qweight"), std::string::npos) << e;
  EXPECT_NE(e.find("should have shape [32, 256]"), std::string::npos) << e;
}

TEST_F(CorruptFolder, MissingScales) {
  const std::string d = copy("gq");
  edit_tensors(d, [](auto& t) {
    t.erase(std::remove_if(t.begin(), t.end(), [](auto& p) { return p.first == kQ + ".scales"; }), t.end());
  });
  const std::string e = open_error(d);
  EXPECT_NE(e.find("'" + kQ + ".scales' is missing"), std::string::npos) << e;
}

TEST_F(CorruptFolder, WrongScaleDtype) {
  const std::string d = copy("gq");
  edit_tensors(d, [](auto& t) {
    for (auto& [n, x] : t)
      if (n == kQ + ".qzeros") x = x.to(at::kLong);
  });
  const std::string e = open_error(d);
  EXPECT_NE(e.find(kQ + ".qzeros"), std::string::npos) << e;
  EXPECT_NE(e.find("should have dtype I32"), std::string::npos) << e;
}

TEST_F(CorruptFolder, ActOrderGidx) {
  const std::string d = copy("gq");
  edit_tensors(d, [](auto& t) {
    for (auto& [n, x] : t)
      if (n == kQ + ".g_idx") x = x.flip(0).contiguous();
  });
  const std::string e = open_error(d);
  EXPECT_NE(e.find("act-order"), std::string::npos) << e;
}

TEST_F(CorruptFolder, BadQuantizationConfig) {
  struct Bad { std::function<void(nlohmann::json&)> edit; std::string expect; };
  const std::vector<Bad> cases = {
      {[](auto& j) { j["quantization_config"]["quant_method"] = "awq"; }, "quant_method 'awq' is not supported"},
      {[](auto& j) { j["quantization_config"] = "gptq"; }, "quantization_config must be an object"},
      {[](auto& j) { j["quantization_config"]["bits"] = "four"; }, "'bits' is missing or not an integer"},
      {[](auto& j) { j["quantization_config"]["bits"] = 2; }, "should have shape"},  // tensors hold 4-bit words
      {[](auto& j) {
         j["quantization_config"]["quant_method"] = "auto-round";
         j["quantization_config"]["packing_format"] = "auto_round:auto_awq";
       }, "packing_format 'auto_round:auto_awq' is not supported"},
      {[](auto& j) {
         j["quantization_config"]["dynamic"] = {{"+:.*q_proj.*", {{"bits", 4}, {"group_size", 128}, {"sym", true}}}};
         j["quantization_config"]["dynamic"]["-:.*down_proj.*"] = nlohmann::json::object();
       }, "is stored quantized but"},
  };
  for (const Bad& b : cases) {
    const std::string d = copy("gq");
    edit_config(d, b.edit);
    const std::string e = open_error(d);
    EXPECT_NE(e.find(b.expect), std::string::npos) << b.expect << " | " << e;
    EXPECT_NE(e.find("config.json"), std::string::npos) << e;
  }
  // A fake (plain) folder claiming to be GPTQ.
  const std::string d = copy("fake");
  edit_config(d, [](auto& j) { j["quantization_config"] = {{"quant_method", "gptq"}, {"bits", 4}, {"group_size", 128}}; });
  const std::string e = open_error(d);
  EXPECT_NE(e.find("stores a plain " + kQ + ".weight"), std::string::npos) << e;
}

TEST_F(CorruptFolder, NanScaleCodes) {
  {  // E8M0 0xff is NaN.
    const std::string d = copy("mx4");
    patch_byte(d, kQ + ".weight_scale", 5, 0xff);
    const std::string e = open_error(d, true);
    EXPECT_NE(e.find("NaN"), std::string::npos) << e;
    EXPECT_NE(e.find(kQ), std::string::npos) << e;
  }
  {  // A plain copy still opens (the harness itself is sound).
    EXPECT_EQ(open_error(copy("mx4"), true), "");
    EXPECT_EQ(open_error(copy("gq"), true), "");
  }
}

}  // namespace
}  // namespace sr
