// signround's GGUF files read by a current llama.cpp: node-llama-cpp 3.21.1's prebuilt CPU
// binaries (scripts/llama_node, installed by scripts/setup.sh) compute llama-perplexity's
// PPL of each file, which must equal `signround eval`'s (its evaluate_text, in process) on
// the same text and chunks: within 0.1 % for F32 files, 0.5 % for quantized ones (llama.cpp
// quantizes the activations of a quantized matmul to Q8_K / Q8_0; we multiply dequantized
// weights in fp32).
//
// kRows is the table: one row per (model, GGUF type, how the file is made); a new family
// is a new Source and its rows. Both tools' KL divergences to the source's F32 file agree
// within 10 % + 2e-4. Skips when node or the package is absent.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "byte_level_fixture.h"
#include "eval/perplexity.h"
#include "export/gguf_from_model.h"
#include "export/gguf_plan.h"
#include "io/text.h"
#include "model/model.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {

// A model the rows turn into GGUF files, and the text both tools score.
struct Source {
  std::string name;
  std::function<std::string(const test::TempDir&)> folder;  // the HF folder (may be written into tmp)
  std::string text;   // scored text (repo-relative)
  std::string calib;  // SignRoundV2 calibration text (repo-relative)
  int ctx = 256, chunks = 4;
};

// A random Llama whose only tokenizer is a byte-level BPE tokenizer.json (Llama 3's
// pre-tokenizer; GGUF "gpt2" vocabulary): llama.cpp must tokenize the text as we do.
std::string random_bpe_llama(const test::TempDir& tmp) {
  test::RandomModelSpec spec;
  spec.hidden = 256;  // k-quant rows need rows of 256
  spec.intermediate = 512;
  spec.vocab = 288;  // > the tokenizer's 273 ids: the GGUF pads the rest
  const std::string hf = test::write_random_hf_model(tmp / "llama-bpe", spec);
  test::ByteLevelSpec tok;
  tok.pattern = "llama3";
  test::write_json(hf + "/tokenizer.json", test::byte_level_tokenizer_json(tok));
  // Said, not left to the default: a converted file without add_bos_token gets llama.cpp's
  // llama-bpe default (add BOS), and config.json names a bos_token_id.
  test::write_json(hf + "/tokenizer_config.json", {{"add_bos_token", false}});
  return hf;
}

// Random models of the other families, with a byte-level BPE tokenizer.json of Qwen2's
// pre-tokenizer (GGUF "qwen2": no BOS). Weights of std 0.1 give logits of std about 1.6, so
// predictions are far from uniform and a quantized file's PPL and KLD move measurably.
// Experts (and Qwen2-MoE's shared expert) are 256 wide: their down projections are k-quants too.
std::string random_bpe_family(const test::TempDir& tmp, const std::string& arch, int64_t experts) {
  test::RandomModelSpec spec;
  spec.arch = arch;
  spec.hidden = 256;
  spec.intermediate = 512;
  spec.vocab = 288;
  spec.scale = 0.05;
  spec.seed = 7;
  spec.experts = experts;
  if (experts > 0) {
    spec.intermediate = 256;
    spec.shared_intermediate = 256;
    spec.norm_topk_prob = arch != "Qwen2MoeForCausalLM";  // llama.cpp's qwen2moe never renormalises
  }
  const std::string hf = test::write_random_hf_model(tmp / arch, spec);
  test::ByteLevelSpec tok;
  tok.pattern = "qwen2";
  test::write_json(hf + "/tokenizer.json", test::byte_level_tokenizer_json(tok));
  test::write_json(hf + "/tokenizer_config.json", {{"bos_token", nullptr}, {"eos_token", "<|endoftext|>"}});
  return hf;
}

Source family_source(const std::string& name, const std::string& arch, int64_t experts = 0) {
  return {name, [arch, experts](const test::TempDir& tmp) { return random_bpe_family(tmp, arch, experts); },
          "demo/stories.txt", "demo/calib.txt", 128, 4};
}

const std::vector<Source>& sources() {
  static const std::vector<Source> all = {
      {"llama-4m", [](const test::TempDir&) { return test::repo("demo/tinystories-llama-4m"); },
       "demo/stories.txt", "demo/calib.txt"},
      {"llama-bpe", random_bpe_llama, "demo/stories.txt", "demo/calib.txt", 128, 4},
      family_source("qwen2", "Qwen2ForCausalLM"),
      family_source("qwen3", "Qwen3ForCausalLM"),
      family_source("qwen2moe", "Qwen2MoeForCausalLM", 4),
      family_source("qwen3moe", "Qwen3MoeForCausalLM", 4),
      family_source("mixtral", "MixtralForCausalLM", 4),
  };
  return all;
}

enum class Method { Convert, Rtn, OptRtn, SignRoundV2 };
const char* method_name(Method m) {
  switch (m) {
    case Method::Convert: return "convert";
    case Method::Rtn: return "rtn";
    case Method::OptRtn: return "opt_rtn";
    case Method::SignRoundV2: return "signround_v2";
  }
  return "?";
}

struct Row {
  std::string source;
  std::string type;  // a GGUF mix: f32 (Convert), q4_0, q4_k_m, ...
  Method method;
};

// Every source needs its "f32" Convert row first: the base of the KL divergences. A family is
// a Source (family_source) and its rows here: F32 and RTN Q4_K_M each, SignRoundV2 for Qwen3.
const std::vector<Row> kRows = {
    {"llama-4m", "f32", Method::Convert},
    {"llama-4m", "q4_0", Method::Rtn},
    {"llama-4m", "q4_k_m", Method::Rtn},
    {"llama-4m", "q2_k_s", Method::Rtn},
    {"llama-4m", "q3_k_m", Method::OptRtn},
    {"llama-4m", "q4_0", Method::SignRoundV2},
    {"llama-4m", "q4_k_m", Method::SignRoundV2},
    {"llama-4m", "q2_k_s", Method::SignRoundV2},
    {"llama-bpe", "f32", Method::Convert},
    {"llama-bpe", "q4_k_m", Method::Rtn},
    {"qwen2", "f32", Method::Convert},
    {"qwen2", "q4_k_m", Method::Rtn},
    {"qwen3", "f32", Method::Convert},
    {"qwen3", "q4_k_m", Method::Rtn},
    {"qwen3", "q4_k_m", Method::SignRoundV2},
    {"qwen2moe", "f32", Method::Convert},
    {"qwen2moe", "q4_k_m", Method::Rtn},
    {"qwen3moe", "f32", Method::Convert},
    {"qwen3moe", "q4_k_m", Method::Rtn},
    {"mixtral", "f32", Method::Convert},
    {"mixtral", "q4_k_m", Method::Rtn},
};

double tolerance(const Row& r) { return r.type == "f32" ? 1e-3 : 5e-3; }

const Source& source_of(const std::string& name) {
  for (const Source& s : sources())
    if (s.name == name) return s;
  throw std::runtime_error("no source " + name);
}

std::string harness() { return test::repo("scripts/llama_node/perplexity.mjs"); }

// Why the harness cannot run here, or "".
std::string harness_missing() {
  if (test::run_command("node --version").exit_code != 0) return "node is not on PATH";
  const std::string pkg = test::repo("scripts/llama_node/node_modules/node-llama-cpp/package.json");
  if (test::read_text(pkg).empty()) return pkg + " is missing (scripts/setup.sh installs it with npm ci)";
  return "";
}

// Writes the row's file; returns its path.
std::string make_file(const Row& row, const std::string& folder, const Source& src, const test::TempDir& tmp) {
  const std::string path = tmp / (row.source + "-" + row.type + "-" + method_name(row.method) + ".gguf");
  if (row.method == Method::Convert) {
    GgufModelExportOptions quiet;
    quiet.progress = false;
    quiet.plan.log = false;
    export_gguf(*Model::open(folder), path, parse_gguf_mix(row.type), quiet);
    return path;
  }
  std::string cmd = test::cli() + " quantize --threads 2 --quiet --model " + folder + " --format gguf:" + row.type +
                    " --output_dir " + path;
  if (row.method == Method::Rtn)
    cmd += " --iters 0 --disable_opt_rtn";
  else if (row.method == Method::OptRtn)
    cmd += " --iters 0 --nsamples 4 --seqlen 64 --dataset " + test::repo(src.calib);
  else  // a few iterations: the tuned rounding, not its quality, is what the file must carry
    cmd += " --iters 8 --nsamples 4 --seqlen 64 --batch_size 4 --dataset " + test::repo(src.calib);
  const auto r = test::run_command(cmd);
  EXPECT_EQ(r.exit_code, 0) << cmd << "\n" << r.err;
  return path;
}

// The harness's flags for the source's text and chunks.
std::string eval_flags(const Source& src) {
  return " --text " + test::repo(src.text) + " --ctx " + std::to_string(src.ctx) + " --chunks " +
         std::to_string(src.chunks);
}

// The harness on every file of a source (one node process: its start-up is about a
// second), KLD against `base`: one JSON object per file, in order.
std::vector<nlohmann::json> run_harness(const Source& src, const std::string& base,
                                        const std::vector<std::string>& files) {
  std::string cmd = "timeout 600 node " + harness() + eval_flags(src) + " --threads 1 --base " + base;
  for (const std::string& f : files) cmd += " --model " + f;
  const auto h = test::run_command(cmd);
  EXPECT_EQ(h.exit_code, 0) << cmd << "\n" << h.err;
  std::vector<nlohmann::json> out;
  std::istringstream lines(h.out);
  for (std::string line; std::getline(lines, line);) out.push_back(nlohmann::json::parse(line));
  EXPECT_EQ(out.size(), files.size()) << cmd << "\n" << h.out << h.err;
  return out;
}

// Compares the harness's figures for one row with signround's.
void expect_agreement(const Row& row, const nlohmann::json& llama, const EvalResult& ours) {
  const double rel = llama.at("ppl").get<double>() / ours.ppl - 1;
  std::printf("%-10s %-7s %-13s %4s %10.4f %10.4f %+7.3f%% %10.6f %10.6f\n", row.source.c_str(), row.type.c_str(),
              method_name(row.method), llama.at("add_bos").get<bool>() ? "yes" : "no", llama.at("ppl").get<double>(),
              ours.ppl, 100 * rel, llama.at("kld").get<double>(), ours.kld);
  const std::string what = row.source + " " + row.type + " " + method_name(row.method);
  // Same chunks and scored tokens: both tokenized the text alike.
  EXPECT_EQ(llama.at("chunks").get<int64_t>(), ours.chunks) << what;
  EXPECT_EQ(llama.at("tokens").get<int64_t>(), ours.tokens) << what;
  EXPECT_LT(std::abs(rel), tolerance(row)) << what;
  // The KL divergences to the F32 file agree more loosely: llama.cpp's Q8_0 / Q8_K
  // activations add their own divergence (on the 4m model about 1e-4 for the k-quants,
  // docs/gguf.md).
  EXPECT_NEAR(llama.at("kld").get<double>(), ours.kld, 0.1 * ours.kld + 2e-4) << what;
}

TEST(LlamaCppCurrent, PerplexityEqualsSignroundEval) {
  const std::string missing = harness_missing();
  if (!missing.empty()) GTEST_SKIP() << "needs node-llama-cpp: " << missing;

  test::TempDir tmp;
  std::map<std::string, std::vector<size_t>> rows_of;  // source -> its rows, F32 first
  std::vector<std::string> files(kRows.size());
  for (size_t i = 0; i < kRows.size(); ++i) {
    const Source& src = source_of(kRows[i].source);
    if (rows_of[src.name].empty())
      ASSERT_TRUE(kRows[i].type == "f32" && kRows[i].method == Method::Convert) << src.name << ": F32 row first";
    rows_of[src.name].push_back(i);
    files[i] = make_file(kRows[i], src.folder(tmp), src, tmp);
  }
  if (HasFailure()) return;

  std::printf("%-10s %-7s %-13s %4s %10s %10s %8s %10s %10s\n", "model", "type", "method", "BOS", "PPL llama",
              "PPL ours", "rel", "KLD llama", "KLD ours");
  for (const auto& [name, rows] : rows_of) {
    const Source& src = source_of(name);
    const std::string base = files[rows.front()];
    std::vector<std::string> source_files;
    for (size_t i : rows) source_files.push_back(files[i]);
    const std::vector<nlohmann::json> llama = run_harness(src, base, source_files);
    if (llama.size() != rows.size()) continue;  // reported by run_harness; the other sources still run

    // What `signround eval --model FILE --text ... --ctx ... --chunks ... --kld-base BASE` runs.
    const std::string text = read_text_file(test::repo(src.text));
    EvalOptions opt;
    opt.ctx = src.ctx;
    opt.chunks = src.chunks;
    opt.progress = false;
    const auto base_model = Model::open(base);
    for (size_t k = 0; k < rows.size(); ++k)
      expect_agreement(kRows[rows[k]], llama[k], evaluate_text(*Model::open(files[rows[k]]), text, opt, base_model.get()));
  }
}

}  // namespace
}  // namespace sr
