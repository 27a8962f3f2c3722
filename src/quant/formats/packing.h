// Sub-byte code packing used by the safetensors export formats (spec §5.1-§5.3) and their
// reader: INT codes in GPTQ's int32 words, and E2M1 codes two to a byte.
//
// GPTQ words (auto_round "qweight"/"qzeros", auto_gptq, GPTQModel; any b in 1..8):
//   A line of n b-bit unsigned values v[0..n) is one little-endian bit stream laid over
//   32-bit words: v[k] occupies stream bits [k·b, k·b + b), i.e. word (k·b)/32 at bit offset
//   (k·b) mod 32, spilling its top bits into the low bits of the next word when
//   offset + b > 32. Words: ceil(n·b/32); unused high bits of the last word are 0.
//   For b = 2, 4, 8 this is "32/b values per word, value j of a word at bit j·b".
//   For b = 3 it is GPTQ's 3-bit interleave: 32 values in 3 words as
//     w0 = v0..v9 at bits 0,3,..,27 | low 2 bits of v10 at 30-31
//     w1 = bit 2 of v10 at bit 0 | v11..v20 at bits 1,4,..,28 | low bit of v21 at 31
//     w2 = bits 1-2 of v21 at 0-1 | v22..v31 at bits 2,5,..,29
//   (auto_round_extension/torch/qlinear_torch.py pack_3bits; auto_round/utils/bit_packing.py
//   states the same equivalence). Words are stored as int32 (two's complement of the
//   uint32 bit pattern), as torch and safetensors "I32" hold them.
// E2M1 pairs (compressed-tensors / auto_round "weight_packed"):
//   byte j of a row = code[2j] | code[2j+1] << 4 (low nibble = even index); an odd last
//   code gets a 0 high nibble. Codes as in fp_codecs.h: sign<<3 | index into
//   {0, .5, 1, 1.5, 2, 3, 4, 6}.
#pragma once
#include <cstdint>

#include "common/torch.h"

namespace sr::packing {

// Words of a line of n values at `bits` bits: ceil(n·bits/32).
int64_t gptq_words(int64_t n, int bits);

// Packs the 2-D integer tensor `values` (any integer dtype, every value in [0, 2^bits))
// along `dim` (0 or 1). Returns a contiguous int32 tensor with that dim replaced by
// gptq_words(size(dim), bits). Throws sr::Error naming `what` on a value out of range,
// a non-integer dtype, a rank other than 2 or bits outside 1..8.
at::Tensor pack_gptq(const at::Tensor& values, int bits, int64_t dim, const char* what = "pack_gptq");
// Inverse: `words` 2-D int32 packed along `dim`; returns uint8 values with that dim = n.
// REQUIRES: words.size(dim) == gptq_words(n, bits) (else sr::Error naming `what`).
at::Tensor unpack_gptq(const at::Tensor& words, int bits, int64_t n, int64_t dim,
                       const char* what = "unpack_gptq");

// codes [R, C] uint8 < 16 -> [R, ceil(C/2)] uint8 (low nibble = even index).
// Throws sr::Error naming `what` on a code >= 16 or a wrong dtype/rank.
at::Tensor pack_fp4_pairs(const at::Tensor& codes, const char* what = "pack_fp4_pairs");
// bytes [R, ceil(n/2)] uint8 -> codes [R, n] uint8. REQUIRES: the width matches n.
at::Tensor unpack_fp4_pairs(const at::Tensor& bytes, int64_t n, const char* what = "unpack_fp4_pairs");

}  // namespace sr::packing
