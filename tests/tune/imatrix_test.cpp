// imatrix files both ways (tune/imatrix.h, `quantize --imatrix / --save_imatrix`):
//   - llama-imatrix's file (llama.cpp c392e50, legacy .dat) for the 4m model drives optimized
//     RTN (--iters 0) to llama-quantize --imatrix's tensors, byte for byte, for k-quant mixes;
//   - --save_imatrix then --imatrix gives the file the in-memory collection gives (GGUF format,
//     exact), for optimized RTN and for SignRoundV2, whose search takes a given file;
//     llama-quantize reads the saved .dat, and its tensors are ours from that file;
//   - the same for a random 8-expert Mixtral: llama-imatrix's per-expert importances of the
//     stacked tensors (one matrix per expert) and our saved per-expert counts;
//   - names map through the block description (stacked experts too), and a file of another
//     model names its first mismatch and the file.
#include "tune/imatrix.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/error.h"
#include "export/gguf_from_model.h"
#include "io/gguf_reader.h"
#include "model/model.h"
#include "random_model.h"
#include "testutil.h"

namespace sr {
namespace {
namespace fs = std::filesystem;

const std::string kRef = "reference/llamacpp/tinystories-llama-4m/";
const std::string kF32 = kRef + "tinystories-llama-4m-f32.gguf";
const std::string kModel = "models/tinystories-llama-4m";
const std::string kBin = "tools/llama.cpp/bin/";

test::CommandResult quantize(const std::string& args) {
  return test::run_command(test::cli() + " quantize --threads 2 --quiet --model " + test::shared(kModel) + " " + args);
}

std::string calib(int64_t nsamples, int64_t seqlen) {
  return " --dataset " + test::shared("data/calib_stories.txt") + " --nsamples " + std::to_string(nsamples) +
         " --seqlen " + std::to_string(seqlen);
}

// llama-quantize (c392e50) of the F32 GGUF to `type` with `imatrix`.
void llama_quantize(const std::string& imatrix, const std::string& out, const std::string& type) {
  auto r = test::run_command(test::shared(kBin + "llama-quantize") + " --imatrix " + imatrix + " " +
                             test::shared(kF32) + " " + out + " " + type + " 2");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
}

// The tensors whose bytes differ; names, types and sizes must agree.
std::vector<std::string> differing_tensors(const std::string& ours_path, const std::string& theirs_path) {
  GgufReader ours(ours_path), theirs(theirs_path);
  EXPECT_EQ(ours.tensors().size(), theirs.tensors().size());
  std::vector<std::string> differ;
  for (size_t i = 0; i < std::min(ours.tensors().size(), theirs.tensors().size()); ++i) {
    const GgufTensorInfo &a = ours.tensors()[i], &b = theirs.tensors()[i];
    EXPECT_EQ(a.name, b.name) << i;
    EXPECT_EQ(ggml_type_name(a.type), ggml_type_name(b.type)) << a.name;
    EXPECT_EQ(a.nbytes, b.nbytes) << a.name;
    if (a.nbytes != b.nbytes || std::memcmp(a.data, b.data, a.nbytes) != 0) differ.push_back(a.name);
  }
  return differ;
}

size_t n_differing(const std::string& ours, const std::string& theirs) {
  const std::vector<std::string> d = differing_tensors(ours, theirs);
  if (!d.empty()) std::printf("%zu tensors differ, the first: %s\n", d.size(), d[0].c_str());
  return d.size();
}

// llama-imatrix's file for the 4m model, made once per run of this binary (0.5 s).
class LlamaImatrix : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!test::have_shared(kBin + "llama-imatrix") || !test::have_shared(kF32) ||
        !test::have_shared("data/calib_stories.txt"))
      return;
    dir_ = new test::TempDir();
    test::run_llama_imatrix_4m(dir_->path(), 40000, 8, *dir_ / "llama.dat");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    SR_REQUIRE_SHARED(kBin + "llama-imatrix");
    SR_REQUIRE_SHARED(kF32);
    SR_REQUIRE_SHARED("data/calib_stories.txt");
    ASSERT_TRUE(fs::exists(*dir_ / "llama.dat"));
  }
  static std::string file() { return *dir_ / "llama.dat"; }
  static test::TempDir* dir_;
};
test::TempDir* LlamaImatrix::dir_ = nullptr;

TEST_F(LlamaImatrix, DrivesOptimizedRtnToLlamaQuantizesBytes) {
  const ImatrixFile f = read_imatrix_file(file());
  EXPECT_TRUE(f.legacy);
  EXPECT_EQ(f.entries.size(), 28u) << "7 linears x 4 blocks; no output.weight without --process-output";
  EXPECT_EQ(f.chunk_count, 8u);
  test::TempDir dir;
  for (std::string type : {"Q4_K_M", "Q2_K_S"}) {
    SCOPED_TRACE(type);
    const std::string theirs = dir / (type + "-llama.gguf"), ours = dir / (type + ".gguf");
    llama_quantize(file(), theirs, type);
    auto r = quantize("--iters 0 --imatrix " + file() + " --format gguf:" + type + " --output_dir " + ours);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(n_differing(ours, theirs), 0u);
  }
  // The imatrix matters: llama-quantize's Q4_K_M without it differs from the file above.
  const size_t n = differing_tensors(dir / "Q4_K_M.gguf", test::shared(kRef + "tinystories-llama-4m-Q4_K_M.gguf")).size();
  std::printf("Q4_K_M with and without the imatrix: %zu tensors differ\n", n);
  EXPECT_GE(n, 20u);
}

TEST_F(LlamaImatrix, SavedImatrixIsTheCollectedOneAndLlamaQuantizeReadsIt) {
  test::TempDir dir;
  const std::string common = "--format gguf:q4_k_m" + calib(4, 64);
  auto a = quantize("--iters 0 " + common + " --output_dir " + (dir / "a.gguf") + " --save_imatrix " + (dir / "im.gguf"));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto a2 = quantize("--iters 0 " + common + " --output_dir " + (dir / "a2.gguf") + " --save_imatrix " + (dir / "im.dat"));
  ASSERT_EQ(a2.exit_code, 0) << a2.err;
  EXPECT_EQ(n_differing(dir / "a2.gguf", dir / "a.gguf"), 0u) << "saving changes nothing";
  const ImatrixFile saved = read_imatrix_file(dir / "im.gguf");
  EXPECT_EQ(saved.entries.size(), 29u) << "28 block linears and output.weight";
  EXPECT_EQ(saved.entries.at("blk.3.ffn_down.weight").counts, std::vector<double>{256});
  EXPECT_EQ(saved.chunk_size, 64u);
  // Round trip: the saved GGUF imatrix, without calibration data, gives the same file.
  auto b = quantize("--iters 0 --format gguf:q4_k_m --imatrix " + (dir / "im.gguf") + " --output_dir " + (dir / "b.gguf"));
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(n_differing(dir / "b.gguf", dir / "a.gguf"), 0u);
  // llama-quantize (c392e50 reads the legacy format) accepts the saved .dat; ours from it is its.
  llama_quantize(dir / "im.dat", dir / "l.gguf", "Q4_K_M");
  auto c = quantize("--iters 0 --format gguf:q4_k_m --imatrix " + (dir / "im.dat") + " --output_dir " + (dir / "c.gguf"));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(n_differing(dir / "c.gguf", dir / "l.gguf"), 0u);
}

TEST_F(LlamaImatrix, SignRoundV2SearchTakesTheGivenImatrix) {
  test::TempDir dir;
  const std::string common = "--iters 1 --batch_size 2 --format gguf:q4_k_m" + calib(2, 64);
  auto a = quantize(common + " --output_dir " + (dir / "a.gguf") + " --save_imatrix " + (dir / "im.gguf"));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  auto b = quantize(common + " --output_dir " + (dir / "b.gguf") + " --imatrix " + (dir / "im.gguf"));
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(n_differing(dir / "b.gguf", dir / "a.gguf"), 0u);
  auto c = quantize(common + " --output_dir " + (dir / "c.gguf") + " --imatrix " + file());
  ASSERT_EQ(c.exit_code, 0) << c.err;
  // llama-imatrix's file has no output.weight: the block tensors differ by the search.
  const std::vector<std::string> d = differing_tensors(dir / "c.gguf", dir / "a.gguf");
  const auto blocks = std::count_if(d.begin(), d.end(), [](const std::string& n) { return n.rfind("blk.", 0) == 0; });
  std::printf("with llama-imatrix's file: %zu tensors differ, %zu of them in blocks\n", d.size(), size_t(blocks));
  EXPECT_GE(blocks, 20);
}

TEST_F(LlamaImatrix, FilesOfAnotherModelNameTheFirstMismatch) {
  auto m = Model::open(test::shared(kModel));
  const ImatrixFile good = read_imatrix_file(file());
  const Importances im = importances_from_file(good, file(), m->config(), m->block_descs());
  EXPECT_EQ(im.size(), 28u);
  EXPECT_EQ(im.at("model.layers.2.mlp.down_proj").sum_sq.numel(), 768);
  EXPECT_EQ(im.at("model.layers.2.mlp.down_proj").tokens, 8) << "legacy: ncall";
  auto mismatch = [&](const std::string& name, ImatrixEntry e) {
    ImatrixFile f = good;
    f.entries[name] = std::move(e);
    return test::error_of([&] { importances_from_file(f, "x.dat", m->config(), m->block_descs()); });
  };
  for (const std::string name : {"blk.4.attn_q.weight", "blk.0.attn_qkv.weight", "token_embd.weight", "blk.x.ffn_up.weight"}) {
    const std::string err = mismatch(name, {std::vector<float>(256, 1.0f), {1}});
    EXPECT_NE(err.find("x.dat: entry " + name + " is not a linear of the model"), std::string::npos) << err;
  }
  std::string err = mismatch("blk.0.attn_q.weight", {std::vector<float>(128, 1.0f), {1}});
  EXPECT_NE(err.find("x.dat: entry blk.0.attn_q.weight has 128 values"), std::string::npos) << err;
  err = mismatch("output.weight", {std::vector<float>(255, 1.0f), {1}});
  EXPECT_NE(err.find("output.weight has 255 values"), std::string::npos) << err;
  // Through the CLI: a truncated file and a model file given as the imatrix.
  test::TempDir dir;
  const std::string bytes = test::read_text(file());
  std::ofstream(dir / "cut.dat", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  for (const std::string bad : {dir / "cut.dat", test::shared(kF32)}) {
    auto r = quantize("--iters 0 --format gguf:q4_k_m --imatrix " + bad + " --output_dir " + (dir / "o.gguf"));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(bad), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(dir / "o.gguf"));
  }
}

// A random Mixtral (8 experts, top 2) with the demo tokenizer, as tests/model/moe_test.cpp
// makes it: llama-imatrix's file of its F32 GGUF drives opt-RTN to llama-quantize's bytes for
// the stacked expert tensors, and our saved per-expert imatrix round-trips.
TEST_F(LlamaImatrix, ExpertsTooMatchLlamaQuantize) {
  test::TempDir dir;
  test::RandomModelSpec s;
  s.arch = "MixtralForCausalLM";
  s.experts = 8;
  s.vocab = 1024;
  s.hidden = 256;  // whole 256-blocks: no k-quant fallback
  s.intermediate = 256;
  s.layers = 2;
  const std::string src = test::write_random_hf_model(dir / "mx", s);
  fs::copy_file(test::repo("demo/tinystories-llama-4m/tokenizer.model"), src + "/tokenizer.model");
  GgufModelExportOptions o;
  o.progress = false;
  o.plan.log = false;
  export_gguf(*Model::open(src), dir / "f32.gguf", GgufMix::F32, o);
  auto im = test::run_command(test::shared(kBin + "llama-imatrix") + " -m " + (dir / "f32.gguf") + " -f " +
                              (*dir_ / "calib.txt") + " -c 128 --chunks 4 -t 2 -o " + (dir / "mx.dat"));
  ASSERT_EQ(im.exit_code, 0) << im.err;
  const ImatrixFile f = read_imatrix_file(dir / "mx.dat");
  ASSERT_EQ(f.entries.count("blk.1.ffn_down_exps.weight"), 1u) << "every expert saw tokens";
  EXPECT_EQ(f.entries.at("blk.1.ffn_down_exps.weight").sums.size(), 8u * 256);
  auto lq = test::run_command(test::shared(kBin + "llama-quantize") + " --imatrix " + (dir / "mx.dat") + " " +
                              (dir / "f32.gguf") + " " + (dir / "theirs.gguf") + " Q4_K_M 2");
  ASSERT_EQ(lq.exit_code, 0) << lq.err;
  const std::string q = test::cli() + " quantize --threads 2 --quiet --iters 0 --format gguf:q4_k_m --model " + src;
  auto c = test::run_command(q + " --imatrix " + (dir / "mx.dat") + " --output_dir " + (dir / "ours.gguf"));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(n_differing(dir / "ours.gguf", dir / "theirs.gguf"), 0u);
  auto a = test::run_command(q + calib(4, 64) + " --save_imatrix " + (dir / "mx.gguf") + " --output_dir " + (dir / "a.gguf"));
  ASSERT_EQ(a.exit_code, 0) << a.err;
  const ImatrixFile saved = read_imatrix_file(dir / "mx.gguf");
  const ImatrixEntry& up = saved.entries.at("blk.0.ffn_up_exps.weight");
  ASSERT_EQ(up.counts.size(), 8u);
  double routed = 0;
  for (double n : up.counts) routed += n;
  EXPECT_EQ(routed, 2 * 4 * 64) << "each token goes to 2 experts";
  auto b = test::run_command(q + " --imatrix " + (dir / "mx.gguf") + " --output_dir " + (dir / "b.gguf"));
  ASSERT_EQ(b.exit_code, 0) << b.err;
  EXPECT_EQ(n_differing(dir / "b.gguf", dir / "a.gguf"), 0u);
}

// Stacked experts: each expert is a matrix of blk.<b>.ffn_*_exps.weight, in expert order.
TEST(Imatrix, ExpertsAreTheMatricesOfTheStackedTensor) {
  test::TempDir dir;
  test::RandomModelSpec spec;
  spec.arch = "MixtralForCausalLM";
  spec.experts = 4;
  auto m = Model::open(test::write_random_hf_model(dir / "moe", spec));
  const ModelConfig& c = m->config();
  const BlockDesc& d = m->block_desc(0);
  Importances im;
  at::manual_seed(3);
  for (int64_t b = 0; b < c.n_layers; ++b)
    for (const LinearDesc& l : d.linears)
      if (l.expert != 2)  // expert 2 saw no token
        im[block_prefix(b) + l.module] = {at::rand({l.in}) * 10, 5 + l.expert};
  const ImatrixFile f = imatrix_file_of(im, c, m->block_descs());
  const ImatrixEntry& gate = f.entries.at("blk.1.ffn_gate_exps.weight");
  EXPECT_EQ(gate.counts, (std::vector<double>{5, 6, 0, 8}));
  ASSERT_EQ(int64_t(gate.sums.size()), 4 * c.hidden);
  const int e3 = d.find("exp3.gate");
  ASSERT_GE(e3, 0);
  EXPECT_EQ(gate.sums[size_t(3 * c.hidden)], im.at(block_prefix(1) + d.linears[size_t(e3)].module).sum_sq[0].item<float>());
  write_imatrix_file(dir / "im.gguf", f, false);
  const Importances back = importances_from_file(read_imatrix_file(dir / "im.gguf"), dir / "im.gguf", c, m->block_descs());
  ASSERT_EQ(back.size(), im.size() + size_t(c.n_layers) * 3);
  for (const auto& [name, l] : im) {
    EXPECT_TRUE(at::equal(back.at(name).sum_sq, l.sum_sq)) << name;
    EXPECT_EQ(back.at(name).tokens, l.tokens) << name;
  }
  // llama-quantize gives an expert without tokens 1s.
  const int e2 = d.find("exp2.gate");
  const LayerImportance& idle = back.at(block_prefix(0) + d.linears[size_t(e2)].module);
  EXPECT_TRUE(at::equal(importance_mean(idle), at::ones({c.hidden})));
  // A stacked tensor of the wrong expert count is another model's.
  ImatrixFile wrong = f;
  wrong.entries["blk.0.ffn_up_exps.weight"] = {std::vector<float>(size_t(3 * c.hidden), 1.0f), {1, 1, 1}};
  const std::string err = test::error_of([&] { importances_from_file(wrong, "w.gguf", c, m->block_descs()); });
  EXPECT_NE(err.find("w.gguf: entry blk.0.ffn_up_exps.weight has " + std::to_string(3 * c.hidden) +
                     " values in 3 matrices; the model's 4 experts have"), std::string::npos) << err;
}

}  // namespace
}  // namespace sr
