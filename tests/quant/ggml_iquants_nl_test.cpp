// IQ4_NL and IQ4_XS (quant/formats/ggml_iquants_nl.h) against llama.cpp c392e50 itself:
//   - llama-quantize's IQ4_NL / IQ4_XS files of the 4m model's F32 GGUF, with llama-imatrix's
//     importance matrix and without: our encoders (quantize_row_weighted with the file's
//     per-column importance, quantize_row_ref where llama-quantize has none) give every
//     i-quant tensor byte for byte;
//   - llama-quantize --allow-requantize of those files to F32 is ggml's dequantize_row_*:
//     our decoders give every tensor of every file bit for bit (the Q6_K output too);
//   - export_gguf of the HF model with the iq4_nl / iq4_xs mixes is llama-quantize's file;
//   - the worked values of the table rule (nearest level, ties to the upper one), the
//     block layouts and the scale codes on hand-made blocks.
// The reference files are made once per run of this binary (about 10 s, most of it the
// imatrix-weighted files).
#include "quant/formats/ggml_iquants_nl.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <algorithm>

#include "common/error.h"
#include "common/half.h"
#include "common/strings.h"
#include "common/torch.h"
#include "export/gguf_from_model.h"
#include "gguf_compare.h"
#include "io/gguf_reader.h"
#include "model/model.h"
#include "io/imatrix_file.h"
#include "quant/formats/ggml_frozen.h"
#include "quant/formats/ggml_types.h"
#include "tensor_asserts.h"
#include "testutil.h"

namespace sr {
namespace {
namespace fs = std::filesystem;

const std::string kF32 = "reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-f32.gguf";
const std::string kBin = "tools/llama.cpp/bin/";

// ---- worked values ----------------------------------------------------------------------

TEST(Iq4Nl, NearestIndexIsBestIndexInt8) {
  // The ends saturate; between two levels the nearer wins, a tie goes to the upper one.
  EXPECT_EQ(iq4nl_nearest_index(-1000.f), 0);
  EXPECT_EQ(iq4nl_nearest_index(-127.f), 0);
  EXPECT_EQ(iq4nl_nearest_index(113.f), 15);
  EXPECT_EQ(iq4nl_nearest_index(1e9f), 15);
  EXPECT_EQ(iq4nl_nearest_index(0.f), 8);       // 1 is nearer than -10
  EXPECT_EQ(iq4nl_nearest_index(-4.5f), 8);     // midpoint of -10 and 1: upper
  EXPECT_EQ(iq4nl_nearest_index(-4.51f), 7);
  EXPECT_EQ(iq4nl_nearest_index(-115.5f), 1);   // midpoint of -127 and -104
  EXPECT_EQ(iq4nl_nearest_index(101.f), 15);    // midpoint of 89 and 113
  EXPECT_EQ(iq4nl_nearest_index(100.99f), 14);
  for (int i = 0; i < 16; ++i) EXPECT_EQ(iq4nl_nearest_index(float(kIq4nlValues[i])), i);
}

TEST(Iq4Nl, BlockLayoutAndDecoding) {
  // IQ4_NL: d = 0.5, element j in the low nibble of qs[j], element 16 + j in its high nibble.
  BlockIQ4_NL b{};
  b.d = f32_to_f16(0.5f);
  for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
  float y[32];
  dequantize_row_iq4_nl(&b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * kIq4nlValues[j]) << j;
    EXPECT_EQ(y[16 + j], 0.5f * kIq4nlValues[15 - j]) << j;
  }
  // IQ4_XS: sub-block g's 6-bit scale code ls_g (value ls_g - 32): low nibble in scales_l[g/2],
  // top two bits at 2g of scales_h. Codes 0, 1, 17, 31, 32, 33, 48, 63 -> -32 .. 31.
  BlockIQ4_XS x{};
  x.d = f32_to_f16(0.25f);
  const int ls[8] = {0, 1, 17, 31, 32, 33, 48, 63};
  for (int g = 0; g < 8; ++g) {
    x.scales_l[g / 2] |= uint8_t((ls[g] & 15) << 4 * (g % 2));
    x.scales_h |= uint16_t((ls[g] >> 4) << 2 * g);
  }
  for (int i = 0; i < 128; ++i) x.qs[i] = uint8_t((i % 16) | ((i / 16) << 4));
  float z[256];
  dequantize_row_iq4_xs(&x, z, 256);
  for (int g = 0; g < 8; ++g)
    for (int j = 0; j < 16; ++j) {
      const float dl = 0.25f * float(ls[g] - 32);
      EXPECT_EQ(z[32 * g + j], dl * kIq4nlValues[j]) << g << " " << j;
      EXPECT_EQ(z[32 * g + 16 + j], dl * kIq4nlValues[g]) << g << " " << j;
    }
  float s[8];
  iq4_row_scales(true, &x, 256, s);
  for (int g = 0; g < 8; ++g) EXPECT_EQ(s[g], 0.25f * float(ls[g] - 32));
  uint8_t c[256];
  iq4_unpack_row(true, &x, 256, c);
  BlockIQ4_XS back = x;
  std::memset(back.qs, 0, sizeof(back.qs));
  iq4_pack_row(true, c, &back, 256);
  EXPECT_EQ(std::memcmp(&back, &x, sizeof(x)), 0);
}

TEST(Iq4Nl, ZeroSuperBlockStoresNegativeZeroScale) {
  // ggml's d = -max_scale / 32 is -0.0f for an all-zero IQ4_XS super-block (fp16 0x8000), every
  // scale code is 32 (value 0), every index 8; IQ4_NL stores +0 with index 8.
  const std::vector<float> x(256, 0.0f);
  BlockIQ4_XS b;
  quantize_row_iq4_xs_ref(x.data(), &b, 256);
  EXPECT_EQ(b.d, 0x8000);
  EXPECT_EQ(b.scales_h, 0xaaaa);
  for (uint8_t l : b.scales_l) EXPECT_EQ(l, 0);
  for (uint8_t q : b.qs) EXPECT_EQ(q, 0x88);
  BlockIQ4_NL n;
  quantize_row_iq4_nl_ref(x.data(), &n, 32);
  EXPECT_EQ(n.d, 0);
  for (uint8_t q : n.qs) EXPECT_EQ(q, 0x88);
}

// ---- frozen scales, tunable rounding -------------------------------------------------------

TEST(Iq4Frozen, IndexCoordinateRoundsLikeTheNearestLevel) {
  for (int i = 0; i < 16; ++i) EXPECT_EQ(iq4nl_index_coord(kIq4nlValues[i]), float(i)) << i;
  for (int i = 0; i < 15; ++i) {  // a midpoint is i + 1/2 and rounds up, as best_index_int8
    const float mid = 0.5f * float(kIq4nlValues[i] + kIq4nlValues[i + 1]);
    EXPECT_EQ(iq4nl_index_coord(mid), float(i) + 0.5f) << i;
    EXPECT_EQ(iq4nl_nearest_index(mid), i + 1) << i;
  }
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-140.f, 130.f);
  for (int k = 0; k < 100000; ++k) {
    const float x = u(rng);
    const float c = std::min(15.f, std::max(0.f, std::floor(iq4nl_index_coord(x) + 0.5f)));
    ASSERT_EQ(int(c), iq4nl_nearest_index(x)) << x;
  }
}

// One random row of IQ4_XS / IQ4_NL blocks from llama.cpp's encoder, then the frozen path.
TEST(Iq4Frozen, ZeroOffsetsReRoundAgainstTheStoredScalesAndEncodeDecodesToQdq) {
  for (bool xs : {false, true}) {
    SCOPED_TRACE(xs ? "iq4_xs" : "iq4_nl");
    const GgmlType type = xs ? GgmlType::IQ4_XS : GgmlType::IQ4_NL;
    const int64_t n = 1024;
    std::mt19937 rng(5);
    std::normal_distribution<float> g(0.f, 0.02f);
    std::vector<float> x(n), v(n), y(n), dv(n), dec(n);
    for (float& e : x) e = g(rng);
    for (float& e : v) e = std::uniform_real_distribution<float>(-0.5f, 0.5f)(rng);
    std::vector<uint8_t> blocks(ggml_row_bytes(type, n));
    ggml_codec(type).quantize_row_ref(x.data(), blocks.data(), n);
    // v = 0: the llama.cpp codes wherever the fp16 scale rounds them as the fp32 one did.
    ggml_codec(type).dequantize_row(blocks.data(), dec.data(), n);
    iq4_qdq_row_frozen(xs, blocks.data(), x.data(), nullptr, n, y.data(), nullptr);
    int same = 0;
    for (int64_t e = 0; e < n; ++e) same += y[e] == dec[e];
    EXPECT_GE(same, n * 99 / 100);
    // Offsets: encode, decode, and qdq agree bit for bit; |v| <= 1/2 moves a code one level at most.
    iq4_qdq_row_frozen(xs, blocks.data(), x.data(), v.data(), n, y.data(), dv.data());
    std::vector<uint8_t> tuned = blocks;
    iq4_encode_row_frozen(xs, tuned.data(), x.data(), v.data(), n);
    ggml_codec(type).dequantize_row(tuned.data(), dec.data(), n);
    EXPECT_EQ(std::memcmp(dec.data(), y.data(), n * 4), 0);
    std::vector<uint8_t> c0(n), c1(n);
    std::vector<float> scale(n / 32);
    iq4_row_scales(xs, blocks.data(), n, scale.data());
    iq4_unpack_row(xs, blocks.data(), n, c0.data());
    iq4_unpack_row(xs, tuned.data(), n, c1.data());
    int moved = 0;
    for (int64_t e = 0; e < n; ++e) {
      EXPECT_LE(std::abs(int(c1[e]) - int(c0[e])), 2) << e;  // one level from the re-rounded code
      moved += c1[e] != c0[e];
      // The derivative has the scale's sign and a level spacing (10..24) as magnitude.
      const float sc = scale[size_t(e / 32)];
      if (dv[e] != 0) EXPECT_TRUE(dv[e] / sc >= 10.f && dv[e] / sc <= 24.f) << e << " " << dv[e] / sc;
    }
    EXPECT_GT(moved, n / 10);
  }
}

// An x or v that sets a code must be finite, through the frozen hooks of ggml_frozen.h (which
// check only the sizes and leave the values to the type's rounding); a sub-block whose stored
// scale is 0 keeps its codes, and its values are not looked at.
TEST(Iq4Frozen, NonFiniteValuesThatSetACodeAreRefused) {
  const int64_t n = 512;
  std::vector<float> x(n);
  for (int64_t e = 0; e < n; ++e) x[size_t(e)] = 0.01f * float((e * 37) % 19 - 9);
  for (bool xs : {false, true}) {
    SCOPED_TRACE(xs ? "iq4_xs" : "iq4_nl");
    const GgmlType type = xs ? GgmlType::IQ4_XS : GgmlType::IQ4_NL;
    const GgmlRowParams p = ggml_search_row_ref(type, x.data(), n);
    std::vector<uint8_t> out(p.blocks.size());
    std::vector<float> v(n, 0.f), y(n);
    v[40] = std::nanf("");
    std::string err = test::error_of([&] { ggml_encode_row_frozen(p, x.data(), v.data(), out.data()); });
    EXPECT_NE(err.find("rounding offset v[40]"), std::string::npos) << err;
    EXPECT_THROW(ggml_qdq_row_frozen(p, x.data(), v.data(), y.data()), Error);
    std::vector<float> bad = x;
    bad[50] = INFINITY;
    err = test::error_of([&] { ggml_qdq_row_frozen(p, bad.data(), nullptr, y.data()); });
    EXPECT_NE(err.find("element 50"), std::string::npos) << err;
  }
  // IQ4_NL block 0 all zero: scale 0, codes kept, its values never read.
  std::vector<float> z = x;
  for (int i = 0; i < 32; ++i) z[size_t(i)] = 0.f;
  const GgmlRowParams p = ggml_search_row_ref(GgmlType::IQ4_NL, z.data(), n);
  ASSERT_EQ(p.scale[0], 0.f);
  z[3] = std::nanf("");
  std::vector<uint8_t> out(p.blocks.size());
  EXPECT_NO_THROW(ggml_encode_row_frozen(p, z.data(), nullptr, out.data()));
  EXPECT_EQ(std::memcmp(out.data(), p.blocks.data(), sizeof(BlockIQ4_NL)), 0);  // block 0 as stored
}

// SignRound's sign-SGD on v (lr 1/iters, linear decay, v in [-1/2, 1/2], the best iterate kept)
// against one linear layer's output, from llama.cpp's imatrix encoding (opt-RTN): the
// straight-through rounding of the table lowers the output loss. Q4_K through the k-quants'
// frozen path (ggml_frozen.h) in the same loop gives the cost per iteration to compare with.
// A demonstration of the primitive: `quantize --format gguf:iq4_*` does not run it yet.
TEST(Iq4Frozen, SignSgdOnOffsetsLowersTheLayerOutputLoss) {
  const int64_t O = 64, I = 256, N = 256, iters = 200;
  const test::CorrelatedLayer layer = test::correlated_layer(O, I, N, 11);
  const at::Tensor &X = layer.X, &W = layer.W, &imp = layer.imp;
  const float* w = W.data_ptr<float>();
  auto loss = [&](const at::Tensor& w_hat) { return at::matmul(X, (w_hat - W).t()).pow(2).mean().item<double>(); };

  for (GgmlType type : {GgmlType::IQ4_NL, GgmlType::IQ4_XS, GgmlType::Q4_K}) {
    SCOPED_TRACE(ggml_type_name(type));
    const bool xs = type == GgmlType::IQ4_XS, iq = type != GgmlType::Q4_K;
    const uint64_t rb = ggml_row_bytes(type, I);
    std::vector<uint8_t> blocks(rb * O);
    std::vector<GgmlRowParams> frozen;  // Q4_K
    for (int64_t r = 0; r < O; ++r) {
      if (iq) ggml_codec(type).quantize_row_weighted(w + r * I, blocks.data() + r * rb, I, imp.data_ptr<float>());
      else frozen.push_back(ggml_search_row_weighted(type, w + r * I, I, imp.data_ptr<float>()));
    }
    // Row r's qdq and straight-through derivative for offsets v, and its encoding.
    auto qdq = [&](int64_t r, const float* v, float* w_hat, float* dv) {
      if (iq) iq4_qdq_row_frozen(xs, blocks.data() + r * rb, w + r * I, v, I, w_hat, dv);
      else ggml_qdq_row_frozen_grad(frozen[size_t(r)], w + r * I, v, w_hat, dv);
    };
    auto encode = [&](const at::Tensor& v) {
      std::vector<uint8_t> out = blocks;
      for (int64_t r = 0; r < O; ++r) {
        const float* vr = v.defined() ? v.data_ptr<float>() + r * I : nullptr;
        if (iq) iq4_encode_row_frozen(xs, out.data() + r * rb, w + r * I, vr, I);
        else ggml_encode_row_frozen(frozen[size_t(r)], w + r * I, vr, out.data() + r * rb);
      }
      at::Tensor dec = at::empty({O, I});
      ggml_codec(type).dequantize_row(out.data(), dec.data_ptr<float>(), O * I);
      return dec;
    };
    const double rtn = iq ? loss(encode({})) : 0;  // v = 0 re-rounds; the searched bytes:
    at::Tensor start = at::empty({O, I});
    if (iq) ggml_codec(type).dequantize_row(blocks.data(), start.data_ptr<float>(), O * I);
    const double searched = iq ? loss(start) : loss(encode(at::zeros({O, I})));
    const test::SignSgdRun run = test::sign_sgd_on_layer(layer, iters, qdq);
    const at::Tensor& best_v = run.best_v;
    const double best = run.best_loss, sec = run.seconds_per_iter;
    const double after = loss(encode(best_v));
    std::printf("  %s: output MSE llama.cpp imatrix encoding %.4g (re-rounded on the stored scales %.4g) -> "
                "SignRound %.4g (%.3fx), %.2f ms/iter\n",
                ggml_type_name(type).c_str(), searched, iq ? rtn : searched, after, after / searched, 1e3 * sec);
    EXPECT_EQ(after, best) << "the encoded blocks decode to the best iterate";
    if (iq) EXPECT_LT(after, 0.8 * searched);
  }
}

// ---- llama.cpp's files --------------------------------------------------------------------

// One llama-quantize output: the mix, whether it used the imatrix, and its file.
struct RefFile {
  std::string mix;
  bool imatrix;
  std::string path() const;
};

class LlamaIq4Files : public ::testing::TestWithParam<RefFile> {
 protected:
  static void SetUpTestSuite() {
    if (!test::have_shared(kBin + "llama-quantize") || !test::have_shared(kBin + "llama-imatrix") ||
        !test::have_shared(kF32) || !test::have_shared("data/calib_stories.txt"))
      return;
    dir_ = new test::TempDir();
    test::run_llama_imatrix_4m(dir_->path(), 40000, 8, imatrix());
    for (const char* mix : {"IQ4_NL", "IQ4_XS"})
      for (bool im : {false, true}) {
        const RefFile f{mix, im};
        run(test::shared(kBin + "llama-quantize") + (im ? " --imatrix " + imatrix() : "") + " " + test::shared(kF32) +
            " " + f.path() + " " + mix + " 2");
        run(test::shared(kBin + "llama-quantize") + " --allow-requantize " + f.path() + " " + f.path() + ".f32 F32 2");
      }
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  void SetUp() override {
    SR_REQUIRE_SHARED(kBin + "llama-quantize");
    SR_REQUIRE_SHARED(kBin + "llama-imatrix");
    SR_REQUIRE_SHARED(kF32);
    SR_REQUIRE_SHARED("data/calib_stories.txt");
    ASSERT_TRUE(fs::exists(GetParam().path())) << "llama-quantize did not write " << GetParam().path();
  }
  static void run(const std::string& cmd) {
    auto r = test::run_command(cmd);
    if (r.exit_code != 0) std::printf("failed: %s\n%s\n", cmd.c_str(), r.err.c_str());
  }

 public:
  static std::string imatrix() { return *dir_ / "llama.dat"; }
  static test::TempDir* dir_;
};
test::TempDir* LlamaIq4Files::dir_ = nullptr;

std::string RefFile::path() const {
  return *LlamaIq4Files::dir_ / ((imatrix ? "im-" : "no-") + mix + ".gguf");
}

// llama-quantize's importance for each tensor: the legacy file's stored values over ncall.
std::map<std::string, std::vector<float>> llama_importance(const std::string& path) {
  const ImatrixFile f = read_imatrix_file(path);
  EXPECT_TRUE(f.legacy);
  std::map<std::string, std::vector<float>> out;
  for (const auto& [name, e] : f.entries) {
    std::vector<float> v(e.sums);
    for (float& x : v) x /= float(e.counts.at(0));
    out[name] = v;
  }
  return out;
}

TEST_P(LlamaIq4Files, EncodersReproduceEveryIQuantTensor) {
  const RefFile& f = GetParam();
  GgufReader src(test::shared(kF32)), q(f.path());
  const auto importance = f.imatrix ? llama_importance(imatrix()) : std::map<std::string, std::vector<float>>{};
  std::map<std::string, int> compared;  // "iq4_xs weighted" -> tensors
  for (const GgufTensorInfo& t : q.tensors()) {
    if (t.type != GgmlType::IQ4_NL && t.type != GgmlType::IQ4_XS) continue;
    // Block 0 and the embedding here (the whole file: WholeModelExportIsLlamaQuantizesFile).
    if (t.name.rfind("blk.", 0) == 0 && t.name.rfind("blk.0.", 0) != 0) continue;
    const std::vector<float> x = src.decode_f32(src.tensor(t.name));
    const GgmlTypeTraits& tr = ggml_codec(t.type);
    const int64_t n = t.row_length();
    const uint64_t row_bytes = ggml_row_bytes(t.type, n);
    std::vector<uint8_t> ours(t.nbytes);
    auto im = importance.find(t.name);
    const bool weighted = im != importance.end();
    for (int64_t r = 0; r < t.n_rows(); ++r) {
      if (weighted) tr.quantize_row_weighted(x.data() + r * n, ours.data() + r * row_bytes, n, im->second.data());
      else tr.quantize_row_ref(x.data() + r * n, ours.data() + r * row_bytes, n);
    }
    uint64_t bad = 0, first = 0;
    for (uint64_t b = t.nbytes / tr.type_size; b-- > 0;)
      if (std::memcmp(ours.data() + b * tr.type_size, t.data + b * tr.type_size, tr.type_size) != 0) ++bad, first = b;
    EXPECT_EQ(bad, 0u) << f.path() << " " << t.name << ": " << bad << " of " << t.nbytes / tr.type_size
                       << " blocks differ, the first " << first;
    ++compared[std::string(tr.name) + (weighted ? " weighted" : " ref")];
  }
  for (const auto& [what, k] : compared) std::cout << "  " << f.mix << (f.imatrix ? " +imatrix" : "") << ": " << k << " " << what << " tensors byte-identical\n";
  // Without an imatrix every matrix is the ref path; with one, the block linears are weighted
  // (llama-imatrix has none for token_embd).
  EXPECT_EQ(compared[ascii_lower(f.mix) + " weighted"], f.imatrix ? 7 : 0);
  EXPECT_EQ(compared[ascii_lower(f.mix) + " ref"], f.imatrix ? 1 : 8);
  EXPECT_GE(compared.size(), 1u);
}

TEST_P(LlamaIq4Files, DecodersAreGgmlsDequantize) {
  const RefFile& f = GetParam();
  GgufReader q(f.path()), f32(f.path() + ".f32");
  int iq = 0;
  for (const GgufTensorInfo& t : q.tensors()) {
    const GgufTensorInfo& ref = f32.tensor(t.name);
    ASSERT_EQ(ref.type, GgmlType::F32) << t.name;
    std::vector<float> ours(size_t(t.n_elements()));
    ggml_codec(t.type).dequantize_row(t.data, ours.data(), t.n_elements());
    ASSERT_EQ(ref.nbytes, ours.size() * 4);
    EXPECT_EQ(std::memcmp(ours.data(), ref.data, ref.nbytes), 0) << t.name << " (" << ggml_type_name(t.type) << ")";
    iq += t.type == GgmlType::IQ4_NL || t.type == GgmlType::IQ4_XS;
  }
  EXPECT_EQ(iq, 29) << "28 block linears and token_embd";
}

// export_gguf (llama-quantize's job on the HF model: plan, q/k permutation, encoders) with the
// same importance gives llama-quantize's file tensor for tensor: the iq4_nl / iq4_xs mix rules
// (Q6_K output, the i-quant everywhere else for this model) and the encoders together.
TEST_P(LlamaIq4Files, WholeModelExportIsLlamaQuantizesFile) {
  SR_REQUIRE_SHARED("models/tinystories-llama-4m");
  const RefFile& f = GetParam();
  if (!f.imatrix) GTEST_SKIP() << "the ref encoders' files: QuantizeCommandRtnIsLlamaQuantizesFile";
  auto m = Model::open(test::shared("models/tinystories-llama-4m"));
  GgufModelExportOptions o;
  o.progress = false;
  o.plan.log = false;
  if (f.imatrix)
    for (const auto& [name, v] : llama_importance(imatrix()))
      o.imatrix[name] = at::from_blob(const_cast<float*>(v.data()), {int64_t(v.size())}, at::kFloat).clone();
  test::TempDir tmp;
  export_gguf(*m, tmp / "ours.gguf", parse_gguf_mix(ascii_lower(f.mix)), o);
  GgufReader ours(tmp / "ours.gguf"), theirs(f.path());
  test::expect_same_gguf_tensors(ours, theirs);
  EXPECT_EQ(ours.get<uint32_t>("general.file_type"), theirs.get<uint32_t>("general.file_type"));
}

// `signround quantize --format gguf:iq4_*`: optimized RTN with llama-imatrix's file (--iters 0
// --imatrix) and plain RTN (--disable_opt_rtn) are llama-quantize's files tensor for tensor;
// SignRound (a few iterations, IQ4_XS) writes a valid file of the same types whose block tensors
// moved.
TEST_P(LlamaIq4Files, QuantizeCommandRtnIsLlamaQuantizesFileAndSignRoundTunes) {
  SR_REQUIRE_SHARED("models/tinystories-llama-4m");
  const RefFile& f = GetParam();
  test::TempDir tmp;
  const std::string fmt = " --format gguf:" + ascii_lower(f.mix);
  auto quantize = [&](const std::string& args, const std::string& out) {
    return test::run_command(test::cli() + " quantize --threads 2 --quiet --model " +
                             test::shared("models/tinystories-llama-4m") + fmt + " --output_dir " + out + " " + args);
  };
  auto r = quantize(f.imatrix ? "--iters 0 --imatrix " + imatrix() : "--iters 0 --disable_opt_rtn", tmp / "rtn.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  GgufReader theirs(f.path());
  {
    GgufReader ours(tmp / "rtn.gguf");
    test::expect_same_gguf_tensors(ours, theirs);
  }
  if (!f.imatrix || f.mix != "IQ4_XS") return;  // one SignRound run (the slow part) suffices
  r = quantize("--iters 4 --nsamples 2 --seqlen 64 --batch_size 2 --dataset " + test::shared("data/calib_stories.txt"),
               tmp / "sr.gguf");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  GgufReader tuned(tmp / "sr.gguf");
  ASSERT_EQ(tuned.tensors().size(), theirs.tensors().size());
  int moved = 0;
  for (size_t i = 0; i < tuned.tensors().size(); ++i) {
    const GgufTensorInfo &a = tuned.tensors()[i], &b = theirs.tensors()[i];
    EXPECT_EQ(ggml_type_name(a.type), ggml_type_name(b.type)) << a.name;
    ASSERT_EQ(a.nbytes, b.nbytes) << a.name;
    if (a.name.rfind("blk.", 0) == 0 && a.type == b.type && std::memcmp(a.data, b.data, a.nbytes) != 0) ++moved;
    EXPECT_NO_THROW(tuned.decode_f32(a)) << a.name;
  }
  EXPECT_GE(moved, 20) << "of 28 block linears";
}

INSTANTIATE_TEST_SUITE_P(TinyStories4m, LlamaIq4Files,
                         ::testing::Values(RefFile{"IQ4_NL", false}, RefFile{"IQ4_NL", true},
                                           RefFile{"IQ4_XS", false}, RefFile{"IQ4_XS", true}),
                         [](const ::testing::TestParamInfo<RefFile>& i) {
                           return i.param.mix + (i.param.imatrix ? "_imatrix" : "_ref");
                         });

}  // namespace
}  // namespace sr
