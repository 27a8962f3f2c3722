// SignRound on the grid i-quants (IQ3_XXS, IQ3_S, IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S, IQ1_M; the
// frozen path of quant/formats/ggml_iquants_grid.h behind ggml_frozen.h):
//   - zero offsets give back the search's own blocks (llama.cpp's imatrix encoding) byte for
//     byte, and any offsets encode to blocks that ggml's dequantize_row_* decodes to qdq's x_hat
//     bit for bit;
//   - sign-SGD on the offsets lowers one linear layer's output loss against that encoding, for
//     every type (with ms per iteration beside Q4_K and IQ4_XS: the docs/iquants.md table);
//   - `signround quantize --format gguf:<iq mix>` with --iters 0 and llama-imatrix's imatrix is
//     llama-quantize's file tensor for tensor, and --iters 8 writes a file whose block tensors
//     moved and that llama.cpp c392e50's llama-perplexity loads.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/strings.h"
#include "common/torch.h"
#include "gguf_compare.h"
#include "io/gguf_reader.h"
#include "io/imatrix_file.h"
#include "quant/formats/ggml_frozen.h"
#include "quant/formats/ggml_iquants_grid.h"
#include "quant/formats/ggml_types.h"
#include "tensor_asserts.h"
#include "testutil.h"

namespace sr {
namespace {

const GgmlType kGridTypes[] = {GgmlType::IQ3_XXS, GgmlType::IQ3_S, GgmlType::IQ2_XXS, GgmlType::IQ2_XS,
                               GgmlType::IQ2_S,   GgmlType::IQ1_S, GgmlType::IQ1_M};

std::vector<float> random_row(int64_t n, uint32_t seed, float sd) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> g(0.f, sd);
  std::vector<float> x(static_cast<size_t>(n));
  for (float& e : x) e = g(rng);
  return x;
}

std::vector<float> decode(GgmlType t, const std::vector<uint8_t>& blocks, int64_t n) {
  std::vector<float> y(static_cast<size_t>(n));
  ggml_codec(t).dequantize_row(blocks.data(), y.data(), n);
  return y;
}

TEST(IqGridFrozen, ZeroOffsetsKeepTheSearchedCodesAndEncodeDecodesToQdq) {
  const int64_t n = 1024;
  const std::vector<float> x = random_row(n, 3, 0.02f);
  std::vector<float> imp = random_row(n, 4, 1.f);
  for (float& e : imp) e = std::exp(e);
  const std::vector<float> v = [&] {
    std::vector<float> r = random_row(n, 5, 1.f);
    for (float& e : r) e = std::max(-0.5f, std::min(0.5f, e * 0.3f));
    return r;
  }();
  for (GgmlType t : kGridTypes) {
    SCOPED_TRACE(ggml_type_name(t));
    ASSERT_TRUE(ggml_has_block_params(t));
    for (bool weighted : {true, false}) {
      if (!weighted && ggml_type_traits(t).requires_importance) {
        EXPECT_THROW(ggml_search_row_ref(t, x.data(), n), Error) << "llama.cpp refuses it without an imatrix";
        continue;
      }
      const GgmlRowParams p = weighted ? ggml_search_row_weighted(t, x.data(), n, imp.data())
                                       : ggml_search_row_ref(t, x.data(), n);
      std::vector<uint8_t> llama(p.blocks.size());
      if (weighted) ggml_codec(t).quantize_row_weighted(x.data(), llama.data(), n, imp.data());
      else ggml_codec(t).quantize_row_ref(x.data(), llama.data(), n);
      ASSERT_EQ(p.blocks, llama);
      // v = 0: the searched blocks themselves, and their decoding.
      std::vector<uint8_t> out(p.blocks.size());
      ggml_encode_row_frozen(p, x.data(), nullptr, out.data());
      EXPECT_EQ(out, llama) << (weighted ? "weighted" : "ref");
      std::vector<float> y(static_cast<size_t>(n)), dv(static_cast<size_t>(n));
      ggml_qdq_row_frozen_grad(p, x.data(), nullptr, y.data(), dv.data());
      EXPECT_EQ(y, decode(t, llama, n));
      // Offsets: encode -> ggml's decode == qdq, bit for bit; codes moved; dv > 0.
      ggml_encode_row_frozen(p, x.data(), v.data(), out.data());
      ggml_qdq_row_frozen_grad(p, x.data(), v.data(), y.data(), dv.data());
      const std::vector<float> dec = decode(t, out, n), before = decode(t, llama, n);
      EXPECT_EQ(std::memcmp(dec.data(), y.data(), size_t(n) * 4), 0);
      int moved = 0;
      for (int64_t e = 0; e < n; ++e) {
        moved += dec[size_t(e)] != before[size_t(e)];
        ASSERT_GT(dv[size_t(e)], 0.f) << e;
      }
      EXPECT_GT(moved, n / 20);
      // The plain nearest rounding on the stored scales (not the tuning start): how far it is
      // from llama.cpp's codes, for the record.
      std::vector<float> nearest(static_cast<size_t>(n));
      iq_grid_frozen_row(t, p.blocks.data(), x.data(), p.weights.data(), nullptr, n, nullptr, nearest.data(),
                         nullptr, IqGridRounding::kNearest);
      double e_llama = 0, e_nearest = 0;
      int differ = 0;
      for (int64_t e = 0; e < n; ++e) {
        const double w = p.weights[size_t(e)];
        e_llama += w * std::pow(before[size_t(e)] - x[size_t(e)], 2);
        e_nearest += w * std::pow(nearest[size_t(e)] - x[size_t(e)], 2);
        differ += nearest[size_t(e)] != before[size_t(e)];
      }
      std::printf("  %s %s: nearest on the stored scales differs from the search in %.1f%% of elements, weighted "
                  "error %.4g vs %.4g (%.3fx)\n",
                  ggml_type_name(t).c_str(), weighted ? "weighted" : "ref", 100.0 * differ / double(n), e_nearest,
                  e_llama, e_nearest / e_llama);
    }
  }
}

TEST(IqGridFrozen, ZeroSuperBlockAndBadInput) {
  const int64_t n = 512;
  std::vector<float> x = random_row(n, 7, 0.01f), imp(static_cast<size_t>(n), 1.f);
  for (int i = 0; i < 256; ++i) x[size_t(i)] = 0;  // super-block 0 all zero: kept, no gradient
  for (GgmlType t : kGridTypes) {
    SCOPED_TRACE(ggml_type_name(t));
    const GgmlRowParams p = ggml_search_row_weighted(t, x.data(), n, imp.data());
    std::vector<float> v(static_cast<size_t>(n), 0.4f), y(static_cast<size_t>(n)), dv(static_cast<size_t>(n));
    ggml_qdq_row_frozen_grad(p, x.data(), v.data(), y.data(), dv.data());
    for (int i = 0; i < 256; ++i) ASSERT_EQ(dv[size_t(i)], 0.f) << i;
    std::vector<uint8_t> out(p.blocks.size());
    ggml_encode_row_frozen(p, x.data(), v.data(), out.data());
    EXPECT_EQ(std::memcmp(out.data(), p.blocks.data(), ggml_codec(t).type_size), 0);
    v[300] = std::nanf("");
    EXPECT_THROW(ggml_encode_row_frozen(p, x.data(), v.data(), out.data()), Error);
    GgmlRowParams broken = p;
    broken.weights.resize(3);
    EXPECT_THROW(ggml_qdq_row_frozen(broken, x.data(), nullptr, y.data()), Error);
  }
}

// SignRound's sign-SGD on v (lr 1/iters, linear decay, v in [-1/2, 1/2], the best iterate kept)
// against one linear layer's output with correlated inputs, from llama.cpp's imatrix encoding
// (the start, v = 0). Q4_K and IQ4_XS through their frozen paths in the same loop give the cost
// per iteration to compare with.
TEST(IqGridFrozen, SignSgdOnOffsetsLowersTheLayerOutputLoss) {
  const int64_t O = 64, I = 256, N = 256, iters = 100;
  const test::CorrelatedLayer layer = test::correlated_layer(O, I, N, 11);
  const at::Tensor &X = layer.X, &W = layer.W, &imp = layer.imp;
  const float* w = W.data_ptr<float>();
  auto loss = [&](const at::Tensor& w_hat) { return at::matmul(X, (w_hat - W).t()).pow(2).mean().item<double>(); };

  std::vector<GgmlType> types(std::begin(kGridTypes), std::end(kGridTypes));
  types.push_back(GgmlType::IQ4_XS);
  types.push_back(GgmlType::Q4_K);
  for (GgmlType type : types) {
    SCOPED_TRACE(ggml_type_name(type));
    const uint64_t rb = ggml_row_bytes(type, I);
    std::vector<GgmlRowParams> frozen;
    std::vector<uint8_t> llama(rb * O);
    for (int64_t r = 0; r < O; ++r) {
      frozen.push_back(ggml_search_row_weighted(type, w + r * I, I, imp.data_ptr<float>()));
      ggml_codec(type).quantize_row_weighted(w + r * I, llama.data() + r * rb, I, imp.data_ptr<float>());
    }
    auto encode = [&](const at::Tensor& v) {
      std::vector<uint8_t> out(rb * O);
      for (int64_t r = 0; r < O; ++r)
        ggml_encode_row_frozen(frozen[size_t(r)], w + r * I, v.data_ptr<float>() + r * I, out.data() + r * rb);
      at::Tensor dec = at::empty({O, I});
      ggml_codec(type).dequantize_row(out.data(), dec.data_ptr<float>(), O * I);
      return dec;
    };
    at::Tensor start = at::empty({O, I});
    ggml_codec(type).dequantize_row(llama.data(), start.data_ptr<float>(), O * I);
    const double searched = loss(start), v0 = loss(encode(at::zeros({O, I})));
    const test::SignSgdRun run = test::sign_sgd_on_layer(layer, iters, [&](int64_t r, const float* v, float* w_hat, float* dv) {
      ggml_qdq_row_frozen_grad(frozen[size_t(r)], w + r * I, v, w_hat, dv);
    });
    const at::Tensor& best_v = run.best_v;
    const double best = run.best_loss, sec = run.seconds_per_iter;
    const double after = loss(encode(best_v));
    std::printf("  | %s | %.4g | %.4g | %.3fx | %.2f |   (v = 0: %.4g)\n", ggml_type_name(type).c_str(), searched,
                after, after / searched, 1e3 * sec, v0);
    EXPECT_EQ(after, best) << "the encoded blocks decode to the best iterate";
    if (iq_grid_type(type)) {
      EXPECT_EQ(v0, searched) << "v = 0 is llama.cpp's encoding";
      EXPECT_LT(after, 0.9 * searched);
    }
  }
}

// ---- llama.cpp's files ----------------------------------------------------------------------

const std::string kF32 = "reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-f32.gguf";
const std::string kBin = "tools/llama.cpp/bin/";

// llama-perplexity (c392e50) on the first 20 kB of tinystories_val.txt, 4 chunks of 128: the
// file loads and runs. Returns its final PPL (a test failure and 0 if it does not).
double llama_ppl(const std::string& gguf, const std::string& dir) {
  test::write_shared_prefix("data/tinystories_val.txt", 20000, dir + "/text.txt");
  return test::llama_cpp_ppl(gguf, dir + "/text.txt", "-c 128 --chunks 4 -t 2");
}

class LlamaIqGridFiles : public ::testing::TestWithParam<std::string> {
 protected:
  static void SetUpTestSuite() {
    if (!test::have_shared(kBin + "llama-quantize") || !test::have_shared(kBin + "llama-imatrix") ||
        !test::have_shared(kF32) || !test::have_shared("data/calib_stories.txt"))
      return;
    dir_ = new test::TempDir();
    test::run_llama_imatrix_4m(dir_->path(), 40000, 8, imatrix());
    for (const char* mix : {"IQ3_S", "IQ3_XXS", "IQ2_XS"}) {
      auto r = test::run_command(test::shared(kBin + "llama-quantize") + " --imatrix " + imatrix() + " " +
                                 test::shared(kF32) + " " + path(mix) + " " + mix + " 2");
      if (r.exit_code != 0) std::printf("llama-quantize %s failed:\n%s\n", mix, r.err.c_str());
    }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    SR_REQUIRE_SHARED(kBin + "llama-quantize");
    SR_REQUIRE_SHARED(kBin + "llama-imatrix");
    SR_REQUIRE_SHARED(kBin + "llama-perplexity");
    SR_REQUIRE_SHARED(kF32);
    SR_REQUIRE_SHARED("data/calib_stories.txt");
    SR_REQUIRE_SHARED("models/tinystories-llama-4m");
    ASSERT_TRUE(std::filesystem::exists(path(GetParam()))) << "llama-quantize did not write " << path(GetParam());
  }
  static std::string imatrix() { return *dir_ / "llama.dat"; }
  static std::string path(const std::string& mix) { return *dir_ / ("im-" + mix + ".gguf"); }
  static test::TempDir* dir_;
};
test::TempDir* LlamaIqGridFiles::dir_ = nullptr;

// Optimized RTN with llama-imatrix's file (--iters 0 --imatrix) is llama-quantize's file tensor
// for tensor; SignRound from the same imatrix (--iters 8; the scales are that search's, v = 0 its
// codes) writes a file of the same types whose block tensors moved and which llama.cpp loads.
TEST_P(LlamaIqGridFiles, QuantizeRtnIsLlamaQuantizesFileAndSignRoundTunes) {
  const std::string mix = GetParam();
  test::TempDir tmp;
  auto quantize = [&](const std::string& args, const std::string& out) {
    return test::run_command(test::cli() + " quantize --threads 2 --quiet --model " +
                             test::shared("models/tinystories-llama-4m") + " --format gguf:" + ascii_lower(mix) +
                             " --imatrix " + imatrix() + " --output_dir " + out + " " + args);
  };
  auto r = quantize("--iters 0", tmp / "rtn.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  GgufReader theirs(path(mix));
  {
    GgufReader ours(tmp / "rtn.gguf");
    test::expect_same_gguf_tensors(ours, theirs);
  }
  if (mix != "IQ3_XXS") return;  // one SignRound run (iq2_s, iq3_s and iq3_xxs tensors) suffices
  // 8 iterations: with 4, lr 1/4 moves every offset a quarter level at once and the start stays
  // the best iterate (nothing moves).
  r = quantize("--iters 8 --nsamples 2 --seqlen 64 --batch_size 2 --dataset " + test::shared("data/calib_stories.txt"),
               tmp / "sr.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  GgufReader tuned(tmp / "sr.gguf");
  ASSERT_EQ(tuned.tensors().size(), theirs.tensors().size());
  std::map<std::string, int> moved;
  for (size_t i = 0; i < tuned.tensors().size(); ++i) {
    const GgufTensorInfo &a = tuned.tensors()[i], &b = theirs.tensors()[i];
    EXPECT_EQ(ggml_type_name(a.type), ggml_type_name(b.type)) << a.name;
    ASSERT_EQ(a.nbytes, b.nbytes) << a.name;
    if (a.name.rfind("blk.", 0) == 0 && std::memcmp(a.data, b.data, a.nbytes) != 0) ++moved[ggml_type_name(a.type)];
  }
  for (const char* t : {"iq2_s", "iq3_s", "iq3_xxs"}) EXPECT_GE(moved[t], 2) << t << " block tensors that moved";
  // llama.cpp c392e50 loads and runs the tuned file.
  std::printf("  llama-perplexity on the SignRound %s file: PPL %.4f\n", mix.c_str(), llama_ppl(tmp / "sr.gguf", tmp.path()));
}

// SignRound v1 (--disable_alg_ext) freezes with llama.cpp's ref search, which the very-low-bit
// types do not have: they take the run's collected imatrix instead (as V2 does), so v1 writes the
// iq2_xs mix (llama-quantize's types) and llama.cpp runs it.
TEST_P(LlamaIqGridFiles, SignRoundV1UsesTheCollectedImatrixWhereLlamaCppRequiresOne) {
  if (GetParam() != "IQ2_XS") GTEST_SKIP() << "one very-low-bit mix suffices";
  test::TempDir tmp;
  auto r = test::run_command(test::cli() + " quantize --threads 2 --quiet --model " +
                             test::shared("models/tinystories-llama-4m") + " --format gguf:iq2_xs --disable_alg_ext "
                             "--iters 4 --nsamples 2 --seqlen 64 --batch_size 2 --dataset " +
                             test::shared("data/calib_stories.txt") + " --output_dir " + (tmp / "v1.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  GgufReader ours(tmp / "v1.gguf"), theirs(path("IQ2_XS"));
  ASSERT_EQ(ours.tensors().size(), theirs.tensors().size());
  for (size_t i = 0; i < ours.tensors().size(); ++i)
    EXPECT_EQ(ggml_type_name(ours.tensors()[i].type), ggml_type_name(theirs.tensors()[i].type)) << ours.tensors()[i].name;
  std::printf("  llama-perplexity on the SignRound v1 IQ2_XS file: PPL %.4f\n", llama_ppl(tmp / "v1.gguf", tmp.path()));
}

// An imatrix file without an entry for a tensor planned very-low-bit is refused before any work,
// as llama-quantize refuses it ("Missing importance matrix for tensor output.weight"):
// llama-imatrix (c392e50) does not collect output.weight without --process-output.
TEST_P(LlamaIqGridFiles, ImatrixFileWithoutTheTensorIsRefusedUpFront) {
  if (GetParam() != "IQ2_XS") GTEST_SKIP() << "one mix suffices";
  ASSERT_EQ(read_imatrix_file(imatrix()).entries.count("output.weight"), 0u);
  test::TempDir tmp;
  const std::string base = test::cli() + " quantize --quiet --model " + test::shared("models/tinystories-llama-4m") +
                           " --format gguf:q4_k_m --iters 0 --imatrix " + imatrix() + " --output_dir " +
                           (tmp / "out.gguf");
  auto r = test::run_command(base + " --output_tensor_type iq2_xxs");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("tensor output.weight is planned as iq2_xxs, which needs an importance matrix for it and the "
                       "imatrix file has no entry for it"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "out.gguf"));
  EXPECT_FALSE(std::filesystem::exists(tmp / "out.gguf.partial"));
  // A block tensor the file covers is accepted with the same type.
  r = test::run_command(base + " --tensor_type blk.0.attn_v=iq2_xxs");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

INSTANTIATE_TEST_SUITE_P(TinyStories4m, LlamaIqGridFiles, ::testing::Values("IQ3_S", "IQ3_XXS", "IQ2_XS"));

}  // namespace
}  // namespace sr
