// GPTQ int32 bit streams and E2M1 byte pairs (see packing.h for the layouts).
#include "quant/formats/packing.h"

#include <algorithm>

#include "common/error.h"

namespace sr::packing {
namespace {

void check_bits(int bits, const char* what) {
  SR_CHECK(bits >= 1 && bits <= 8, "[", what, "] bits must be in 1..8, got ", bits);
}

// Rows of `t` with `dim` moved last, contiguous: the packing loops walk lines of it.
at::Tensor lines_of(const at::Tensor& t, int64_t dim, const char* what) {
  SR_CHECK(t.dim() == 2, "[", what, "] expected a 2-D tensor, got shape ", t.sizes());
  SR_CHECK(dim == 0 || dim == 1, "[", what, "] dim must be 0 or 1, got ", dim);
  return (dim == 1 ? t : t.t()).contiguous();
}

at::Tensor back_from_lines(const at::Tensor& lines, int64_t dim) {
  return dim == 1 ? lines : lines.t().contiguous();
}

}  // namespace

int64_t gptq_words(int64_t n, int bits) { return (n * bits + 31) / 32; }

at::Tensor pack_gptq(const at::Tensor& values, int bits, int64_t dim, const char* what) {
  check_bits(bits, what);
  SR_CHECK(!c10::isFloatingType(values.scalar_type()) && values.scalar_type() != at::kBool,
           "[", what, "] expected integer codes, got ", values.scalar_type());
  at::Tensor v = lines_of(values.to(at::kInt), dim, what);
  if (v.numel() > 0) {
    const int64_t lo = v.min().item<int64_t>(), hi = v.max().item<int64_t>();
    SR_CHECK(lo >= 0 && hi < (int64_t(1) << bits), "[", what, "] codes must lie in [0, ", (1 << bits),
             ") for ", bits, "-bit packing, found [", lo, ", ", hi, "]");
  }
  const int64_t rows = v.size(0), n = v.size(1), words = gptq_words(n, bits);
  at::Tensor out = at::zeros({rows, words}, at::kInt);
  const int32_t* src = v.data_ptr<int32_t>();
  uint32_t* dst = reinterpret_cast<uint32_t*>(out.data_ptr<int32_t>());
  at::parallel_for(0, rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int32_t* in = src + r * n;
      uint32_t* w = dst + r * words;
      for (int64_t k = 0; k < n; ++k) {
        const uint64_t pos = uint64_t(k) * uint64_t(bits);
        const uint32_t val = uint32_t(in[k]), off = uint32_t(pos & 31);
        w[pos >> 5] |= val << off;
        if (off + uint32_t(bits) > 32) w[(pos >> 5) + 1] |= val >> (32 - off);
      }
    }
  });
  return back_from_lines(out, dim);
}

at::Tensor unpack_gptq(const at::Tensor& words, int bits, int64_t n, int64_t dim, const char* what) {
  check_bits(bits, what);
  SR_CHECK(words.scalar_type() == at::kInt, "[", what, "] expected int32 words, got ", words.scalar_type());
  at::Tensor w = lines_of(words, dim, what);
  SR_CHECK(n >= 0 && w.size(1) == gptq_words(n, bits), "[", what, "] ", w.size(1), " words along dim ", dim,
           " cannot hold exactly ", n, " values of ", bits, " bits (expected ", gptq_words(n, bits), ")");
  const int64_t rows = w.size(0), nw = w.size(1);
  at::Tensor out = at::empty({rows, n}, at::kByte);
  const uint32_t* src = reinterpret_cast<const uint32_t*>(w.data_ptr<int32_t>());
  uint8_t* dst = out.data_ptr<uint8_t>();
  const uint32_t mask = (uint32_t(1) << bits) - 1;
  at::parallel_for(0, rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint32_t* in = src + r * nw;
      for (int64_t k = 0; k < n; ++k) {
        const uint64_t pos = uint64_t(k) * uint64_t(bits);
        const uint32_t off = uint32_t(pos & 31);
        uint32_t val = in[pos >> 5] >> off;
        if (off + uint32_t(bits) > 32) val |= in[(pos >> 5) + 1] << (32 - off);
        dst[r * n + k] = uint8_t(val & mask);
      }
    }
  });
  return back_from_lines(out, dim);
}

at::Tensor pack_fp4_pairs(const at::Tensor& codes, const char* what) {
  SR_CHECK(codes.scalar_type() == at::kByte && codes.dim() == 2, "[", what,
           "] expected 2-D uint8 codes, got ", codes.scalar_type(), " ", codes.sizes());
  SR_CHECK(codes.numel() == 0 || codes.max().item<int>() < 16, "[", what,
           "] E2M1 codes must be < 16, found ", codes.max().item<int>());
  const int64_t n = codes.size(1);
  at::Tensor c = n % 2 ? at::constant_pad_nd(codes, {0, 1}, 0) : codes.contiguous();
  at::Tensor pairs = c.view({codes.size(0), -1, 2});
  return at::bitwise_or(pairs.select(2, 0), at::bitwise_left_shift(pairs.select(2, 1), 4)).contiguous();
}

at::Tensor unpack_fp4_pairs(const at::Tensor& bytes, int64_t n, const char* what) {
  SR_CHECK(bytes.scalar_type() == at::kByte && bytes.dim() == 2, "[", what,
           "] expected 2-D uint8 bytes, got ", bytes.scalar_type(), " ", bytes.sizes());
  SR_CHECK(bytes.size(1) == (n + 1) / 2, "[", what, "] ", bytes.size(1), " bytes per row cannot hold ", n,
           " E2M1 codes (expected ", (n + 1) / 2, ")");
  at::Tensor lo = at::bitwise_and(bytes, 15), hi = at::bitwise_right_shift(bytes, 4);
  return at::stack({lo, hi}, 2).reshape({bytes.size(0), -1}).narrow(1, 0, n).contiguous();
}

}  // namespace sr::packing
