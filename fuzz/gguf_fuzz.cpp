// A .gguf file as `signround eval/inspect --model x.gguf` reads it: io/gguf_reader.h
// GgufReader (header, metadata of every value type, tensor infos, alignment, data bounds),
// then each tensor's decode to f32 (the ggml block codecs), then the tokenizer stored in the
// metadata (tokenizer/gguf_vocab.h read_gguf_tokenizer) and a short encode/decode with it.
// (The model config from GGUF metadata, model/model_gguf.cpp, is a torch translation unit
// and is not fuzzed here.)
#include <cmath>

#include "fuzz_util.h"
#include "io/gguf_reader.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::unique_ptr<sr::GgufReader> r;
  try {
    r = std::make_unique<sr::GgufReader>(sr::fuzz::write_file("model.gguf", sr::fuzz::as_view(data, size)));
  } catch (const sr::Error& e) {
    sr::fuzz::note_refusal(e);
    return 0;
  }
  for (const auto& [key, value] : r->metadata()) (void)r->has(key);
  for (const sr::GgufTensorInfo& t : r->tensors()) {
    if (t.nbytes > r->file_size() || r->data_offset() + t.offset + t.nbytes > r->file_size()) std::abort();
    if (t.n_elements() > (1 << 20)) continue;  // keep an iteration fast; the bounds are checked above
    sr::fuzz::expect_ok_or_error([&] { (void)r->decode_f32(t); });
  }
  sr::fuzz::expect_ok_or_error([&] {
    std::string why_not;
    std::unique_ptr<sr::Tokenizer> tok = sr::read_gguf_tokenizer(*r, why_not);
    if (!tok) return;
    std::vector<int32_t> ids = tok->encode_with_bos("Once upon a time, a cat\n\xC3\xA9t\xC3\xA9 42!");
    (void)tok->decode(ids);
  });
  return 0;
}
