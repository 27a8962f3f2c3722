// GGUF out and in for every family (model/gguf_arch.h): for a tiny random model of each, the file
// we write holds the metadata keys llama.cpp's convert_hf_to_gguf.py writes for the same HF
// folder and the tensors llama.cpp's loader expects; read back by our reader it computes the HF
// folder's logits (F32) or the HF model with every weight through the type's codec (Q8_0); and
// llama.cpp c392e50's llama-perplexity, where it knows the architecture, loads it and measures
// the perplexity `signround eval` measures.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <vector>

#include "eval/perplexity.h"
#include "export/gguf_from_model.h"
#include "io/gguf_reader.h"
#include "gguf_compare.h"
#include "io/safetensors.h"
#include "io/text.h"
#include "model/gguf_arch.h"
#include "model/model.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {
namespace fs = std::filesystem;

struct Family {
  const char* label;    // test name
  const char* hf_arch;  // config.json architectures[0]
  const char* gguf;     // general.architecture llama.cpp's converter writes for it
  bool tied = false;
  int64_t experts = 0;
  const char* extra_config = "";  // RandomModelSpec::extra_config_json
  double scale = 0;               // RandomModelSpec::scale when > 0
};

const Family kFamilies[] = {
    {"llama", "LlamaForCausalLM", "llama"},
    {"llama_tied", "LlamaForCausalLM", "llama", true},
    {"llama_bias", "LlamaForCausalLM", "llama", false, 0, R"({"attention_bias": true})"},
    {"mistral", "MistralForCausalLM", "llama"},
    {"qwen2_tied", "Qwen2ForCausalLM", "qwen2", true},
    {"qwen2", "Qwen2ForCausalLM", "qwen2"},
    {"qwen3", "Qwen3ForCausalLM", "qwen3", true, 0, R"({"head_dim": 16})"},  // named, as Qwen3's configs do
    {"mixtral", "MixtralForCausalLM", "llama", false, 4},
    {"qwen2moe", "Qwen2MoeForCausalLM", "qwen2moe", false, 4},
    {"qwen3moe", "Qwen3MoeForCausalLM", "qwen3moe", false, 4},
    // YaRN with an original context short enough that the 16-wide heads' pairs 0..2 blend and
    // the rest are interpolated (model/llama.cpp), and the attention factor is 1.139. Weights
    // large enough that attention, and so the rotation, moves the perplexity.
    {"qwen2_yarn", "Qwen2ForCausalLM", "qwen2", false, 0,
     R"({"rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}})", 0.3},
};

// The HF intermediate_size of the Qwen MoE models, distinct from the experts' width (64) so that
// feed_forward_length and expert_feed_forward_length cannot be confused.
constexpr int64_t kQwenMoeDenseWidth = 160;

test::RandomModelSpec spec_of(const Family& f, int64_t vocab = 96) {
  test::RandomModelSpec s;
  s.vocab = vocab;
  s.arch = f.hf_arch;
  s.tied = f.tied;
  s.experts = f.experts;
  s.extra_config_json = f.extra_config;
  if (f.scale > 0) s.scale = f.scale;
  if (f.experts > 0) {
    // Routing as llama.cpp runs the architecture: qwen2moe never renormalises the top k.
    s.norm_topk_prob = std::string(f.gguf) != "qwen2moe";
    s.intermediate = 64;  // whole Q8_0 blocks
    s.shared_intermediate = 96;
  }
  return s;
}

std::string write_family(const std::string& dir, const Family& f, int64_t vocab = 96) {
  const std::string src = test::write_random_hf_model(dir, spec_of(f, vocab));
  if (f.experts > 0 && std::string(f.hf_arch).rfind("Qwen", 0) == 0) {
    nlohmann::json cfg;
    std::ifstream(src + "/config.json") >> cfg;
    cfg["intermediate_size"] = kQwenMoeDenseWidth;
    std::ofstream(src + "/config.json") << cfg.dump(2);
  }
  return src;
}

std::string export_family(const Model& m, const std::string& path, GgufMix mix, const Vocabulary* real = nullptr) {
  const Vocabulary vocab = real ? *real : test::synthetic_vocabulary(m.config().vocab);
  GgufModelExportOptions o;
  o.vocabulary = &vocab;
  o.progress = false;
  o.plan.log = false;
  export_gguf(m, path, mix, o);
  return path;
}

// The <arch>.* keys convert_hf_to_gguf.py (llama.cpp c392e50 and later) writes for these configs,
// written out by hand from its LlamaModel / Qwen2Model / Qwen2MoeModel classes.
std::set<std::string> expected_arch_keys(const Family& f) {
  std::set<std::string> keys = {"block_count", "context_length", "embedding_length", "feed_forward_length",
                                "attention.head_count", "attention.head_count_kv", "rope.freq_base",
                                "attention.layer_norm_rms_epsilon"};
  const std::string g = f.gguf;
  // Only where config.json names head_dim (TextModel.set_gguf_parameters).
  if (std::string(f.extra_config).find("head_dim") != std::string::npos)
    keys.insert({"attention.key_length", "attention.value_length"});
  if (g == "llama") keys.insert({"vocab_size", "rope.dimension_count"});
  if (f.experts > 0) keys.insert({"expert_count", "expert_used_count"});
  if (g == "qwen2moe" || g == "qwen3moe") keys.insert("expert_feed_forward_length");
  if (g == "qwen2moe") keys.insert("expert_shared_feed_forward_length");
  if (std::string(f.extra_config).find("yarn") != std::string::npos)
    keys.insert({"rope.scaling.type", "rope.scaling.factor", "rope.scaling.original_context_length"});
  std::set<std::string> out;
  for (const std::string& k : keys) out.insert(g + "." + k);
  // general.*: gguf-py's Metadata of the folder "hf": a name, no basename (too ambiguous), the size
  // label of the parameter count. tokenizer.ggml.*: the synthetic vocabulary stands for the
  // folder's tokenizer, so its own ids and flags (a folder's SentencePiece keys, exactly the
  // converter's, are gguf_special_vocab_test's).
  for (const char* k : {"general.architecture", "general.type", "general.name", "general.size_label", "general.file_type",
                        "general.quantization_version", "tokenizer.ggml.model", "tokenizer.ggml.pre",
                        "tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type",
                        "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_bos_token",
                        "tokenizer.ggml.add_eos_token", "tokenizer.ggml.add_space_prefix"})
    out.insert(k);
  return out;
}

// Per-block tensors llama.cpp's loader (llama-model.cpp) creates for the architecture.
std::set<std::string> expected_block_tensors(const Family& f) {
  const std::string g = f.gguf;
  std::set<std::string> t = {"attn_norm.weight", "attn_q.weight", "attn_k.weight", "attn_v.weight",
                             "attn_output.weight", "ffn_norm.weight"};
  if (f.experts == 0) t.insert({"ffn_gate.weight", "ffn_up.weight", "ffn_down.weight"});
  else t.insert({"ffn_gate_inp.weight", "ffn_gate_exps.weight", "ffn_up_exps.weight", "ffn_down_exps.weight"});
  if (g == "qwen2" || g == "qwen2moe" || std::string(f.extra_config).find("attention_bias") != std::string::npos)
    t.insert({"attn_q.bias", "attn_k.bias", "attn_v.bias"});
  if (g == "qwen3" || g == "qwen3moe") t.insert({"attn_q_norm.weight", "attn_k_norm.weight"});
  if (g == "qwen2moe")
    t.insert({"ffn_gate_shexp.weight", "ffn_up_shexp.weight", "ffn_down_shexp.weight", "ffn_gate_inp_shexp.weight"});
  return t;
}

class GgufArchRoundTrip : public ::testing::TestWithParam<Family> {};

TEST_P(GgufArchRoundTrip, MetadataTensorsAndLogits) {
  const Family& f = GetParam();
  test::TempDir dir;
  auto hf = Model::open(write_family(dir / "hf", f));
  const std::string path = export_family(*hf, dir / "f32.gguf", GgufMix::F32);
  GgufReader r(path);
  EXPECT_EQ(r.get<std::string>("general.architecture"), f.gguf);
  std::set<std::string> keys;
  for (const auto& kv : r.metadata()) keys.insert(kv.first);
  EXPECT_EQ(keys, expected_arch_keys(f));
  const std::string g = f.gguf;
  EXPECT_EQ(r.get<uint32_t>(g + ".feed_forward_length"),
            uint32_t(f.experts > 0 && g != "llama" ? kQwenMoeDenseWidth : spec_of(f).intermediate));
  if (f.experts > 0) {
    EXPECT_EQ(r.get<uint32_t>(g + ".expert_count"), uint32_t(f.experts));
    EXPECT_EQ(r.get<uint32_t>(g + ".expert_used_count"), 2u);
  }
  if (g == "qwen2moe" || g == "qwen3moe") EXPECT_EQ(r.get<uint32_t>(g + ".expert_feed_forward_length"), 64u);
  if (g == "qwen2moe") EXPECT_EQ(r.get<uint32_t>(g + ".expert_shared_feed_forward_length"), 96u);
  if (r.has(g + ".rope.scaling.type")) {
    EXPECT_EQ(r.get<std::string>(g + ".rope.scaling.type"), "yarn");
    EXPECT_EQ(r.get<float>(g + ".rope.scaling.factor"), 4.0f);
    EXPECT_EQ(r.get<uint32_t>(g + ".rope.scaling.original_context_length"), 64u);
  }

  std::set<std::string> blk0;
  bool has_output = false;
  for (const GgufTensorInfo& t : r.tensors()) {
    if (t.name.rfind("blk.0.", 0) == 0) blk0.insert(t.name.substr(6));
    has_output = has_output || t.name == "output.weight";
  }
  EXPECT_EQ(blk0, expected_block_tensors(f));
  EXPECT_EQ(has_output, !f.tied);

  auto gg = Model::open(path);
  const ModelConfig &a = hf->config(), &b = gg->config();
  EXPECT_EQ(b.arch, g == "llama" && f.experts == 0 ? Arch::Llama : a.arch);
  EXPECT_EQ(b.qkv_bias, a.qkv_bias);
  EXPECT_EQ(b.qk_norm, a.qk_norm);
  EXPECT_EQ(b.tie_embeddings, a.tie_embeddings);
  EXPECT_EQ(b.moe.n_experts, a.moe.n_experts);
  EXPECT_EQ(b.moe.expert_intermediate, a.moe.expert_intermediate);
  EXPECT_EQ(b.moe.shared_intermediate, a.moe.shared_intermediate);
  EXPECT_EQ(b.moe.norm_topk_prob, a.moe.norm_topk_prob);
  const at::Tensor tokens = at::randint(3, 96, {2, 24}, at::kLong);
  const at::Tensor want = hf->forward(tokens), got = gg->forward(tokens);
  EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-5)) << (got - want).abs().max().item<float>();
}

// Every weight matrix of a Q8_0 file decodes, in the HF layout, to the HF weight through the
// Q8_0 codec (so rows are where the HF model has them: RoPE rows permuted back for "llama",
// left alone for the Qwen architectures), and biases and norms are the HF ones.
TEST_P(GgufArchRoundTrip, QuantizedWeightsAreTheHfWeightsThroughTheCodec) {
  const Family& f = GetParam();
  test::TempDir dir;
  auto hf = Model::open(write_family(dir / "hf", f));
  auto gg = Model::open(export_family(*hf, dir / "q8_0.gguf", GgufMix::Q8_0));
  const GgmlTypeTraits& q8 = ggml_codec(GgmlType::Q8_0);
  auto qdq = [&](const at::Tensor& w) {
    at::Tensor x = w.contiguous(), out = at::empty_like(x);
    const int64_t n = x.size(-1), rows = x.numel() / n;
    std::vector<uint8_t> row(ggml_row_bytes(GgmlType::Q8_0, n));
    for (int64_t i = 0; i < rows; ++i) {
      q8.quantize_row_ref(x.data_ptr<float>() + i * n, row.data(), n);
      q8.dequantize_row(row.data(), out.data_ptr<float>() + i * n, n);
    }
    return out;
  };
  const BlockDesc& d = hf->block_desc(0);
  for (int64_t i = 0; i < hf->config().n_layers; ++i) {
    const BlockWeights x = hf->load_block(i), y = gg->load_block(i);
    for (size_t j = 0; j < d.linears.size(); ++j) {
      const LinearDesc& l = d.linears[j];
      // 1-D in ggml's eyes (the [1, D] shared-expert gate) and the router stay F32, as llama-quantize keeps them.
      const bool f32 = l.out == 1 || l.gguf == "ffn_gate_inp";
      EXPECT_TRUE(at::equal(y.w[j], f32 ? x.w[j] : qdq(x.w[j]))) << "block " << i << " " << l.label;
      if (l.bias) EXPECT_TRUE(at::equal(y.b[j], x.b[j])) << "block " << i << " bias " << l.label;
    }
    for (size_t j = 0; j < d.norms.size(); ++j)
      if (d.norms[j].present) EXPECT_TRUE(at::equal(y.norm[j], x.norm[j])) << "block " << i << " norm " << j;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, GgufArchRoundTrip, ::testing::ValuesIn(kFamilies),
                         [](const auto& info) { return std::string(info.param.label); });

// A family the GGUF architecture cannot hold is refused naming what is missing.
TEST(GgufArch, BlocksTheArchitectureCannotHoldAreRefused) {
  nlohmann::json cfg = {{"architectures", {"Qwen3ForCausalLM"}}, {"hidden_size", 64}, {"intermediate_size", 128},
                        {"num_hidden_layers", 2}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                        {"vocab_size", 96}, {"attention_bias", true}};  // llama.cpp's qwen3 has no q/k/v biases
  EXPECT_NE(test::error_of([&] { gguf_tensor_list(parse_hf_config(cfg.dump(), "config.json")); })
                .find("with q/k/v biases (attention_bias) cannot be written: llama.cpp's 'qwen3' has no attn_q.bias"),
            std::string::npos);
  cfg["architectures"] = {"LlamaForCausalLM"};  // "llama" takes optional biases
  EXPECT_EQ(test::error_of([&] { gguf_tensor_list(parse_hf_config(cfg.dump(), "config.json")); }), "");
}

// The reader names an architecture it does not read and lists those it does.
TEST(GgufArch, UnsupportedArchitectureListsTheSupportedOnes) {
  EXPECT_EQ(gguf_arch_names(), "llama, qwen2, qwen3, qwen2moe, qwen3moe");
  EXPECT_EQ(find_gguf_arch("gemma2", false), nullptr);
  EXPECT_EQ(find_gguf_arch("qwen2", true), nullptr);
  EXPECT_EQ(find_gguf_arch("llama", true)->family, Arch::Mixtral);
  EXPECT_EQ(find_gguf_arch("llama", false)->family, Arch::Llama);
  EXPECT_STREQ(gguf_arch_of(Arch::Mistral).name, "llama");
  // Experts where the architecture has none, or none where it needs them, are named.
  test::TempDir dir;
  for (const auto& [family, key, value, message] :
       {std::tuple(kFamilies[8], "qwen2moe.expert_count", 0u, "'qwen2moe' without experts (qwen2moe.expert_count)"),
        std::tuple(kFamilies[5], "qwen2.expert_count", 4u, "'qwen2' with experts (qwen2.expert_count)")}) {
    auto hf = Model::open(write_family(dir / family.label, family));
    const Vocabulary vocab = test::synthetic_vocabulary(hf->config().vocab);
    GgufModelExportOptions o;
    o.vocabulary = &vocab;
    o.progress = false;
    o.plan.log = false;
    o.file.extra_metadata = {{key, GgufValue::scalar<uint32_t>(value)}};
    const std::string path = dir / (std::string(family.label) + ".gguf");
    export_gguf(*hf, path, GgufMix::F32, o);
    const std::string e = test::error_of([&] { Model::open(path); });
    EXPECT_NE(e.find(message), std::string::npos) << e;
  }
}

// A Qwen2 with a real vocabulary: the trained 4m Llama with seeded q/k/v biases added (a second
// shard beside its own), written as our qwen2 GGUF (F32 and Q4_K_M). llama.cpp c392e50 runs it
// and measures the perplexity signround eval measures on TinyStories at llama.cpp's protocol.
std::string write_qwen2_from_4m(const std::string& dir) {
  const std::string src = test::shared("models/tinystories-llama-4m");
  fs::create_directories(dir);
  for (const char* f : {"model.safetensors", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json"})
    fs::copy_file(src + "/" + f, dir + "/" + f);
  nlohmann::json cfg;
  std::ifstream(src + "/config.json") >> cfg;
  cfg["architectures"] = {"Qwen2ForCausalLM"};
  cfg["model_type"] = "qwen2";
  std::ofstream(dir + "/config.json") << cfg.dump(2);
  auto m = Model::open(src);
  const ModelConfig& c = m->config();
  at::manual_seed(7);
  SafetensorsWriter w;
  std::vector<std::pair<std::string, at::Tensor>> biases;
  for (int64_t i = 0; i < c.n_layers; ++i)
    for (const auto& [proj, rows] : {std::pair("q", c.q_dim()), std::pair("k", c.kv_dim()), std::pair("v", c.kv_dim())})
      biases.emplace_back(block_prefix(i) + "self_attn." + proj + "_proj.bias", 0.2 * at::randn({rows}));
  for (const auto& [name, t] : biases) w.declare(name, "F32", {t.size(0)});
  w.begin(dir + "/biases.safetensors");
  for (const auto& [name, t] : biases) w.write(name, t.data_ptr<float>(), uint64_t(t.numel()) * 4);
  w.finish();
  nlohmann::json index = {{"metadata", nlohmann::json::object()}, {"weight_map", nlohmann::json::object()}};
  for (const std::string& n : m->tensors().names()) index["weight_map"][n] = "model.safetensors";
  for (const auto& [name, t] : biases) index["weight_map"][name] = "biases.safetensors";
  std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2);
  return dir;
}

// llama.cpp c392e50's llama-perplexity loads our F32 file of each architecture it knows and
// measures the perplexity signround eval measures on the same file (llama.cpp's protocol). The
// random models get the 4m model's SentencePiece vocabulary (1024 pieces with byte fallback:
// llama.cpp's tokenizer needs byte tokens) and TinyStories text.
class GgufArchLlamaCpp : public ::testing::TestWithParam<Family> {};

TEST_P(GgufArchLlamaCpp, PerplexityAgrees) {
  const Family& f = GetParam();
  SR_REQUIRE_SHARED("tools/llama.cpp/bin/llama-perplexity");
  SR_REQUIRE_SHARED("models/tinystories-llama-4m");
  SR_REQUIRE_SHARED("data/tinystories_val.txt");
  test::TempDir dir;
  const Vocabulary vocab = Model::open(test::shared("models/tinystories-llama-4m"))->tokenizer().vocabulary();
  auto hf = Model::open(write_family(dir / "hf", f, int64_t(vocab.pieces.size())));
  const std::string path = export_family(*hf, dir / "f32.gguf", GgufMix::F32, &vocab);
  const std::string text = test::shared("data/tinystories_val.txt");
  const double theirs = test::llama_cpp_ppl(path, text, "-c 128 --chunks 12 -t 2");
  EvalOptions o;
  o.ctx = 128;
  o.chunks = 12;
  o.progress = false;
  const EvalResult ours = evaluate_text(*Model::open(path), read_text_file(text), o);
  std::printf("%s: llama.cpp PPL %.4f, signround eval %.4f (%lld tokens), rel. diff %+.5f%%\n", f.label, theirs,
              ours.ppl, (long long)ours.tokens, 100 * (ours.ppl / theirs - 1));
  EXPECT_LT(std::abs(ours.ppl / theirs - 1), 1e-3);
}

TEST(GgufArchLlamaCppQwen2, From4mAgreesOnTinyStories) {
  SR_REQUIRE_SHARED("tools/llama.cpp/bin/llama-perplexity");
  SR_REQUIRE_SHARED("models/tinystories-llama-4m");
  SR_REQUIRE_SHARED("data/tinystories_val.txt");
  test::TempDir dir;
  auto hf = Model::open(write_qwen2_from_4m(dir / "qwen2-4m"));
  ASSERT_EQ(hf->config().arch, Arch::Qwen2);
  const std::string text = test::shared("data/tinystories_val.txt");
  EvalOptions o;
  o.ctx = 256;
  o.chunks = 12;
  o.progress = false;
  const EvalResult hf_r = evaluate_text(*hf, read_text_file(text), o);
  // F32 within 0.1 %; Q4_K_M within 0.5 % (llama.cpp multiplies with activations in Q8_K).
  for (const auto& [mix, tol] : {std::pair(GgufMix::F32, 1e-3), std::pair(GgufMix::Q4_K_M, 5e-3)}) {
    const std::string path = dir / (std::string(gguf_mix_info(mix).name) + ".gguf");
    GgufModelExportOptions eo;
    eo.progress = false;
    eo.plan.log = false;
    export_gguf(*hf, path, mix, eo);
    EXPECT_EQ(GgufReader(path).get<std::string>("general.architecture"), "qwen2");
    const double theirs = test::llama_cpp_ppl(path, text, "-c 256 --chunks 12 -t 2");
    const EvalResult ours = evaluate_text(*Model::open(path), read_text_file(text), o);
    std::printf("qwen2 from 4m %s: HF folder PPL %.4f, our GGUF in signround eval %.4f, in llama.cpp %.4f "
                "(rel. diff %+.4f%%)\n", gguf_mix_info(mix).name, hf_r.ppl, ours.ppl, theirs,
                100 * (ours.ppl / theirs - 1));
    EXPECT_LT(std::abs(ours.ppl / theirs - 1), tol) << gguf_mix_info(mix).name;
    if (mix == GgufMix::F32) EXPECT_LT(std::abs(ours.ppl / hf_r.ppl - 1), 1e-5);
  }
}

// The families whose architecture the table says c392e50 loads (Mistral: the same file kind as Llama).
std::vector<Family> llama_cpp_families() {
  std::vector<Family> out;
  for (const Family& f : kFamilies)
    if (find_gguf_arch(f.gguf, f.experts > 0)->c392e50_loads && std::string(f.label) != "mistral") out.push_back(f);
  return out;
}
INSTANTIATE_TEST_SUITE_P(C392e50, GgufArchLlamaCpp, ::testing::ValuesIn(llama_cpp_families()),
                         [](const auto& info) { return std::string(info.param.label); });

}  // namespace
}  // namespace sr

namespace sr {
namespace {

// quantize --format gguf:f32 / f16 / bf16 converts without quantizing: every tensor equals
// llama.cpp's (convert_hf_to_gguf.py's F32 GGUF of the same folder, and llama-quantize's F16 /
// BF16 of that file), byte for byte.
TEST(GgufArchConvert, FloatFormatsEqualLlamaCpp) {
  SR_REQUIRE_SHARED("tools/llama.cpp/bin/llama-quantize");
  SR_REQUIRE_SHARED("reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-f32.gguf");
  test::TempDir dir;
  const std::string ref = test::shared("reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-f32.gguf");
  for (const std::string mix : {"f32", "f16", "bf16"}) {
    const std::string theirs = mix == "f32" ? ref : dir / ("theirs-" + mix + ".gguf");
    if (mix != "f32") {
      auto lq = test::run_command(test::shared("tools/llama.cpp/bin/llama-quantize") + " " + ref + " " + theirs + " " +
                                  (mix == "f16" ? "F16" : "BF16") + " 2");
      ASSERT_EQ(lq.exit_code, 0) << lq.err;
    }
    const std::string ours = dir / ("ours-" + mix + ".gguf");
    auto q = test::run_command(test::cli() + " quantize --quiet --model " + test::shared("models/tinystories-llama-4m") +
                               " --format gguf:" + mix + " --output-dir " + ours);
    ASSERT_EQ(q.exit_code, 0) << q.err;
    GgufReader a(ours), b(theirs);
    EXPECT_EQ(a.get<uint32_t>("general.file_type"), b.get<uint32_t>("general.file_type")) << mix;
    SCOPED_TRACE(mix);
    if (mix == "f32") {
      // The metadata too: every key convert_hf_to_gguf.py wrote, with its value (names from the
      // folder, the re-typed special tokens, no unknown id or space-prefix flag), and nothing
      // else: a conversion adds no run keys. (The order differs where the converters differ: this
      // 2025 one wrote general.quantization_version after the tokenizer, the current one before.)
      std::map<std::string, const GgufValue*> mine;
      for (const auto& kv : a.metadata()) mine[kv.first] = &kv.second;
      for (const auto& [key, value] : b.metadata()) {
        auto it = mine.find(key);
        if (it == mine.end()) {
          ADD_FAILURE() << "missing " << key;
          continue;
        }
        EXPECT_TRUE(*it->second == value) << key;
        mine.erase(it);
      }
      std::set<std::string> extra;
      for (const auto& kv : mine) extra.insert(kv.first);
      EXPECT_EQ(extra, std::set<std::string>{});
    }
    test::expect_same_gguf_tensors(a, b, /*by_name=*/true);  // convert_hf_to_gguf.py's order is not llama-quantize's
  }
  auto both = test::run_command(test::cli() + " quantize --quiet --model " + test::shared("models/tinystories-llama-4m") +
                                " --format gguf:f16,fake --output-dir " + (dir / "both"));
  EXPECT_NE(both.exit_code, 0);
  EXPECT_NE(both.err.find("converts the model without quantizing"), std::string::npos) << both.err;
}

}  // namespace
}  // namespace sr

#include "byte_level_fixture.h"

namespace sr {
namespace {

// `signround quantize --iters 0 --disable_opt_rtn --format gguf:q4_k_m` of a Qwen2 and a
// Qwen2-MoE gives llama-quantize's file of our F32 GGUF tensor for tensor, byte for byte: the
// mix's rules (ffn_down_shexp counts as ffn_down, routers and the [1, D] shared-expert gate stay
// F32) and the encoders are llama.cpp's for these architectures too.
TEST(GgufArchLlamaCppQuantize, RtnEqualsLlamaQuantize) {
  SR_REQUIRE_SHARED("tools/llama.cpp/bin/llama-quantize");
  SR_REQUIRE_SHARED("models/tinystories-llama-4m");
  for (const Family& f : {kFamilies[5], kFamilies[8]}) {  // qwen2, qwen2moe
    test::TempDir dir;
    test::RandomModelSpec s = spec_of(f, 1024);
    s.hidden = 256;  // whole 256-blocks: the rules decide, not the fallbacks
    s.intermediate = 256;
    s.shared_intermediate = 256;
    s.layers = 4;
    const std::string src = test::write_random_hf_model(dir / "hf", s);
    fs::copy_file(test::shared("models/tinystories-llama-4m/tokenizer.model"), src + "/tokenizer.model");
    auto q = test::run_command(test::cli() + " quantize --threads 2 --quiet --iters 0 --disable-opt-rtn --model " + src +
                               " --format gguf:f32 --output-dir " + (dir / "f32.gguf"));
    ASSERT_EQ(q.exit_code, 0) << q.err;
    auto lq = test::run_command(test::shared("tools/llama.cpp/bin/llama-quantize") + " " + (dir / "f32.gguf") + " " +
                                (dir / "theirs.gguf") + " Q4_K_M 2");
    ASSERT_EQ(lq.exit_code, 0) << lq.err;
    q = test::run_command(test::cli() + " quantize --threads 2 --quiet --iters 0 --disable-opt-rtn --model " + src +
                          " --format gguf:q4_k_m --output-dir " + (dir / "ours.gguf"));
    ASSERT_EQ(q.exit_code, 0) << q.err;
    GgufReader ours(dir / "ours.gguf"), theirs(dir / "theirs.gguf");
    EXPECT_EQ(ours.get<std::string>("general.architecture"), f.gguf);
    SCOPED_TRACE(f.label);
    test::expect_same_gguf_tensors(ours, theirs);
  }
}

// Byte-level BPE vocabularies (tokenizer.json) as llama.cpp's converter stores them: a Qwen2 with
// pre-tokenizer "qwen2" (no BOS) and a Llama with "llama-bpe" (BOS from the template, ignore_merges).
// llama.cpp c392e50 knows the pre-tokenizer names we write, tokenizes the text as we do and
// measures our perplexity.
TEST(GgufArchLlamaCppQuantize, ByteLevelVocabulariesLoad) {
  SR_REQUIRE_SHARED("tools/llama.cpp/bin/llama-perplexity");
  struct Case { const Family& family; test::ByteLevelSpec spec; nlohmann::json config; const char* pre; };
  const Case cases[] = {
      {kFamilies[5], {"qwen2"}, {{"bos_token", nullptr}, {"eos_token", "<|endoftext|>"}}, "qwen2"},
      {kFamilies[0], {"llama3", false, true, false, true}, {{"bos_token", "<|begin|>"}, {"eos_token", "<|endoftext|>"}},
       "llama-bpe"},
  };
  std::string text;
  for (int i = 0; i < 60; ++i) text += "the lower we low, xyz aa " + std::to_string(i % 7) + " hello there\n";
  for (const Case& c : cases) {
    test::TempDir dir;
    const std::string src = test::write_random_hf_model(dir / "hf", spec_of(c.family, 288));  // > the 273 ids
    test::write_json(src + "/tokenizer.json", test::byte_level_tokenizer_json(c.spec));
    test::write_json(src + "/tokenizer_config.json", c.config);
    GgufModelExportOptions o;
    o.progress = false;
    o.plan.log = false;
    export_gguf(*Model::open(src), dir / "f32.gguf", GgufMix::F32, o);
    EXPECT_EQ(GgufReader(dir / "f32.gguf").get<std::string>("tokenizer.ggml.pre"), c.pre);
    std::ofstream(dir / "text.txt") << text;
    const double theirs = test::llama_cpp_ppl(dir / "f32.gguf", dir / "text.txt", "-c 32 -b 32 -t 2");
    EvalOptions e;
    e.ctx = 32;
    e.progress = false;
    const EvalResult ours = evaluate_text(*Model::open(dir / "f32.gguf"), text, e);
    std::printf("byte-level %s (%s): llama.cpp PPL %.4f, signround eval %.4f (%lld tokens)\n", c.family.label, c.pre,
                theirs, ours.ppl, (long long)ours.tokens);
    EXPECT_LT(std::abs(ours.ppl / theirs - 1), 1e-3) << c.pre;
  }
}

}  // namespace
}  // namespace sr
