// GPTQ int32 words and E2M1 byte pairs (quant/formats/packing.h) against hand-packed words
// and against a line-by-line transcription of auto-round's own packer and unpacker:
//   pack:   auto_round_extension/torch/qlinear_torch_zp.py, QuantLinear.pack_248_bits and
//           QuantLinear.pack_3bits (the same code is in qlinear_torch.py);
//   unpack: the same files, QuantLinear.forward (the `wf` shift table, the fix-ups of values
//           10 and 21 that straddle words, and the torch.cat of the three word slices).
#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "common/error.h"
#include "quant/formats/packing.h"

namespace sr {
namespace {

using packing::gptq_words;
using packing::pack_fp4_pairs;
using packing::pack_gptq;
using packing::unpack_fp4_pairs;
using packing::unpack_gptq;

// One column [n, 1] of codes, to pack along dim 0 (qweight's direction).
at::Tensor column(const std::vector<int>& v) {
  return at::tensor(std::vector<int32_t>(v.begin(), v.end()), at::kInt).view({int64_t(v.size()), 1});
}
uint32_t word(const at::Tensor& packed, int64_t i) { return uint32_t(packed[i][0].item<int32_t>()); }

TEST(GptqPacking, HandPackedWords) {
  // 4-bit: value j of a word sits at bit 4j (qweight of a column holding codes 1..8).
  EXPECT_EQ(word(pack_gptq(column({1, 2, 3, 4, 5, 6, 7, 8}), 4, 0), 0), 0x87654321u);
  // 2-bit: 16 values per word, 3 2 1 0 repeated -> 0b00011011 per byte, value 0 lowest.
  std::vector<int> v2;
  for (int i = 0; i < 16; ++i) v2.push_back(3 - i % 4);
  EXPECT_EQ(word(pack_gptq(column(v2), 2, 0), 0), 0x1b1b1b1bu);
  // 8-bit: little-endian bytes.
  EXPECT_EQ(word(pack_gptq(column({0x11, 0x22, 0x33, 0x44, 0xaa, 0xbb, 0xcc, 0xdd}), 8, 0), 1), 0xddccbbaau);
  // GPTQ sym 4-bit zeros (zp - 1 = 7 everywhere) are the familiar 0x77777777, an int32 of
  // 2004318071; a 15 in the top nibble makes the int32 negative.
  auto z = pack_gptq(at::full({1, 8}, 7, at::kInt), 4, 1);
  EXPECT_EQ(z[0][0].item<int32_t>(), 0x77777777);
  EXPECT_LT(pack_gptq(column({0, 0, 0, 0, 0, 0, 0, 15}), 4, 0)[0][0].item<int32_t>(), 0);
  // 3-bit: 32 values in 3 words. Values v_k = k mod 8 (0..7 repeated): worked out by hand
  // from pack_3bits:
  //   w0 = v0..v9 at 3j | (v10 = 2) << 30                          = 0x88fac688
  //   w1 = (v10 >> 2) & 1 = 0 | v11..v20 at 3j+1 | (v21 = 5) << 31    = 0xc688fac6
  //   w2 = (v21 >> 1) & 3 = 2 | v22..v31 at 3j+2                      = 0xfac688fa
  // (the same three words as the 96-bit little-endian stream Σ v_k << 3k).
  std::vector<int> v3;
  for (int k = 0; k < 32; ++k) v3.push_back(k % 8);
  auto p3 = pack_gptq(column(v3), 3, 0);
  ASSERT_EQ(p3.size(0), 3);
  uint32_t w0 = 0, w1 = 0, w2 = 0;
  for (int j = 0; j < 10; ++j) w0 |= uint32_t(v3[j]) << (3 * j);
  w0 |= uint32_t(v3[10]) << 30;
  w1 |= (uint32_t(v3[10]) >> 2) & 1;
  for (int j = 0; j < 10; ++j) w1 |= uint32_t(v3[11 + j]) << (3 * j + 1);
  w1 |= uint32_t(v3[21]) << 31;
  w2 |= (uint32_t(v3[21]) >> 1) & 3;
  for (int j = 0; j < 10; ++j) w2 |= uint32_t(v3[22 + j]) << (3 * j + 2);
  EXPECT_EQ(word(p3, 0), w0);
  EXPECT_EQ(word(p3, 1), w1);
  EXPECT_EQ(word(p3, 2), w2);
  EXPECT_EQ(w0 >> 30, 2u);          // low two bits of v10 = 2 (010b)
  EXPECT_EQ(w1 & 1, 0u);            // bit 2 of v10
  EXPECT_EQ(w1 >> 31, 1u);          // low bit of v21 = 5 (101b)
  EXPECT_EQ(w2 & 3, 2u);            // bits 1-2 of v21
  EXPECT_EQ(word(p3, 0), 0x88fac688u);
  EXPECT_EQ(word(p3, 1), 0xc688fac6u);
  EXPECT_EQ(word(p3, 2), 0xfac688fau);
}

// auto-round pack_248_bits: intweight.reshape(-1, in // 32 * b, 32 // b) << arange(32/b)·b,
// summed, transposed. For one column: word w = Σ_j v[w·(32/b) + j] << (j·b).
std::vector<uint32_t> ref_pack_248(const std::vector<int>& v, int b) {
  const int per = 32 / b;
  std::vector<uint32_t> out(v.size() / per, 0);
  for (size_t w = 0; w < out.size(); ++w)
    for (int j = 0; j < per; ++j) out[w] += uint32_t(v[w * per + j]) << (j * b);
  return out;
}

// auto-round pack_3bits for one column: blocks of 32 values -> 3 words.
std::vector<uint32_t> ref_pack_3(const std::vector<int>& v) {
  std::vector<uint32_t> q(v.size() / 32 * 3, 0);
  size_t i = 0, row = 0;
  while (row < q.size()) {
    for (int j = 0; j < 10; ++j) q[row] |= uint32_t(v[i + j]) << (j * 3);
    i += 10;
    q[row] |= uint32_t(v[i]) << 30;
    row += 1;
    q[row] |= (uint32_t(v[i]) >> 2) & 1;
    i += 1;
    for (int j = 0; j < 10; ++j) q[row] |= uint32_t(v[i + j]) << (j * 3 + 1);
    i += 10;
    q[row] |= uint32_t(v[i]) << 31;
    row += 1;
    q[row] |= (uint32_t(v[i]) >> 1) & 0x3;
    i += 1;
    for (int j = 0; j < 10; ++j) q[row] |= uint32_t(v[i + j]) << (j * 3 + 2);
    i += 10;
    row += 1;
  }
  return q;
}

// auto-round QuantLinear.forward, bits == 3, for one column of int32 words: shifts by the
// wf table (arithmetic >> on int32, as torch does), & 0x7, the two fix-ups, then
// cat(w[0, :11], w[1, 1:12], w[2, 1:11]).
std::vector<int> ref_unpack_3(const std::vector<int32_t>& q) {
  static const int wf[3][12] = {{0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 0},
                                {0, 1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31},
                                {0, 2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 0}};
  std::vector<int> out;
  for (size_t blk = 0; blk < q.size() / 3; ++blk) {
    int w[3][12];
    for (int r = 0; r < 3; ++r)
      for (int c = 0; c < 12; ++c) w[r][c] = (q[blk * 3 + r] >> wf[r][c]) & 0x7;
    w[0][10] = (w[0][10] & 0x3) | ((w[1][0] << 2) & 0x4);
    w[1][11] = (w[1][11] & 0x1) | ((w[2][0] << 1) & 0x6);
    for (int c = 0; c < 11; ++c) out.push_back(w[0][c] & 0x7);
    for (int c = 1; c < 12; ++c) out.push_back(w[1][c] & 0x7);
    for (int c = 1; c < 11; ++c) out.push_back(w[2][c] & 0x7);
  }
  return out;
}

// auto-round QuantLinear.forward, bits 2/4/8: (word >> j·b) & maxq for j < 32/b.
std::vector<int> ref_unpack_248(const std::vector<int32_t>& q, int b) {
  std::vector<int> out;
  for (int32_t w : q)
    for (int j = 0; j < 32 / b; ++j) out.push_back((w >> (j * b)) & ((1 << b) - 1));
  return out;
}

TEST(GptqPacking, MatchesAutoRoundPackAndUnpack) {
  at::manual_seed(3);
  for (int b : {2, 3, 4, 8}) {
    const int64_t n = 128;
    at::Tensor vals = at::randint(0, 1 << b, {n, 1}, at::kInt);
    std::vector<int> v(vals.data_ptr<int32_t>(), vals.data_ptr<int32_t>() + n);
    at::Tensor ours = pack_gptq(vals, b, 0);
    std::vector<uint32_t> ref = b == 3 ? ref_pack_3(v) : ref_pack_248(v, b);
    ASSERT_EQ(ours.size(0), int64_t(ref.size())) << b;
    std::vector<int32_t> words;
    for (size_t i = 0; i < ref.size(); ++i) {
      EXPECT_EQ(word(ours, int64_t(i)), ref[i]) << "bits " << b << " word " << i;
      words.push_back(ours[int64_t(i)][0].item<int32_t>());
    }
    EXPECT_EQ(b == 3 ? ref_unpack_3(words) : ref_unpack_248(words, b), v) << b;
    at::Tensor back = unpack_gptq(ours, b, n, 0);
    EXPECT_TRUE(at::equal(back.to(at::kInt), vals)) << b;
  }
}

TEST(GptqPacking, RoundTripAnyWidthAndOddSizes) {
  at::manual_seed(5);
  // Every width 1..8 (5/6/7 use the same bit stream: auto_round/utils/bit_packing.py), along
  // both dims, including sizes that are not multiples of 32 (the last word is zero-padded).
  for (int b = 1; b <= 8; ++b) {
    for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{{5, 3}, {40, 7}, {96, 24}, {33, 1}}) {
      at::Tensor vals = at::randint(0, 1 << b, {rows, cols}, at::kByte);
      at::Tensor p0 = pack_gptq(vals, b, 0), p1 = pack_gptq(vals, b, 1);
      EXPECT_EQ(p0.sizes(), (std::vector<int64_t>{gptq_words(rows, b), cols}));
      EXPECT_EQ(p1.sizes(), (std::vector<int64_t>{rows, gptq_words(cols, b)}));
      EXPECT_TRUE(at::equal(unpack_gptq(p0, b, rows, 0), vals)) << b << " " << rows;
      EXPECT_TRUE(at::equal(unpack_gptq(p1, b, cols, 1), vals)) << b << " " << cols;
    }
  }
  EXPECT_EQ(gptq_words(5, 4), 1);   // 20 bits
  EXPECT_EQ(gptq_words(40, 3), 4);  // 120 bits
  EXPECT_EQ(gptq_words(24, 4), 3);  // qzeros of out = 24 at 4 bits
  // 5 values of 4 bits along dim 0: one word, unused high bits zero.
  EXPECT_EQ(word(pack_gptq(column({1, 2, 3, 4, 5}), 4, 0), 0), 0x54321u);
}

TEST(GptqPacking, RejectsBadInput) {
  EXPECT_THROW(pack_gptq(column({0, 16}), 4, 0), Error);                   // code out of range
  EXPECT_THROW(pack_gptq(column({-1}), 4, 0), Error);
  EXPECT_THROW(pack_gptq(at::zeros({4, 4}), 4, 0), Error);                 // float input
  EXPECT_THROW(pack_gptq(at::zeros({4}, at::kInt), 4, 0), Error);          // rank 1
  EXPECT_THROW(pack_gptq(column({1}), 9, 0), Error);                       // bits
  try {
    unpack_gptq(at::zeros({3, 2}, at::kInt), 4, 32, 0, "layer.qweight");  // 32 values need 4 words
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer.qweight"), std::string::npos) << e.what();
  }
}

TEST(Fp4Pairs, HandPackedBytes) {
  // Low nibble = even index (compressed-tensors pack_fp4_to_uint8: indices[:, 0] | indices[:, 1] << 4).
  auto codes = at::tensor(std::vector<uint8_t>{1, 2, 15, 8}, at::kByte).view({1, 4});
  auto bytes = pack_fp4_pairs(codes);
  EXPECT_EQ(bytes[0][0].item<int>(), 0x21);
  EXPECT_EQ(bytes[0][1].item<int>(), 0x8f);
  // Odd width: the last high nibble is 0.
  auto odd = pack_fp4_pairs(at::tensor(std::vector<uint8_t>{1, 2, 3}, at::kByte).view({1, 3}));
  EXPECT_EQ(odd.size(1), 2);
  EXPECT_EQ(odd[0][1].item<int>(), 0x03);
  EXPECT_TRUE(at::equal(unpack_fp4_pairs(odd, 3), at::tensor(std::vector<uint8_t>{1, 2, 3}, at::kByte).view({1, 3})));
  at::manual_seed(1);
  auto r = at::randint(0, 16, {7, 10}, at::kByte);
  EXPECT_TRUE(at::equal(unpack_fp4_pairs(pack_fp4_pairs(r), 10), r));
  EXPECT_THROW(pack_fp4_pairs(at::full({1, 2}, 16, at::kByte)), Error);
  EXPECT_THROW(unpack_fp4_pairs(at::zeros({1, 3}, at::kByte), 4), Error);
}

}  // namespace
}  // namespace sr
