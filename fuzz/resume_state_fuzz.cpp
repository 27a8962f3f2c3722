// A saved block state as `quantize --resume` reads it: load_block_state (safetensors, the
// 'layers' scheme JSON, the U8 and finiteness checks), then decode_saved_layer for each layer,
// planned as the scheme it claims and the shape of its codes (ggml rows: [rows, 256]). The
// decoders run before the shape check, so every format's decoder sees whatever codes, scales,
// zero points and rows the file holds.
#include "fuzz_util.h"
#include "quant/quantized_layer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sr::fuzz::expect_ok_or_error([&] {
    const std::string path = sr::fuzz::write_file("block_00000.safetensors", sr::fuzz::as_view(data, size));
    for (const sr::QuantizedLayer& l : sr::load_block_state(path)) {
      const at::Tensor& rows = l.encoded.codes.defined() ? l.encoded.codes : l.encoded.ggml;
      const int64_t out = rows.defined() && rows.dim() >= 1 ? rows.size(0) : 1;
      const int64_t in = l.encoded.codes.defined() && rows.dim() == 2 ? rows.size(1) : 256;
      sr::fuzz::expect_ok_or_error([&] { sr::decode_saved_layer(l, l.scheme, out, in, path); });
    }
  });
  return 0;
}
