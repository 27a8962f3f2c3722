// A Hugging Face tokenizer.json (tokenizer/tokenizer.h read_hf_tokenizer_json: model vocab
// and merges, added tokens, pre-tokenizer and decoder options); an accepted vocabulary then
// builds a Tokenizer (byte-level BPE) and encodes/decodes a short text.
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sr::fuzz::expect_ok_or_error([&] {
    const std::string path = sr::fuzz::write_file("tokenizer.json", sr::fuzz::as_view(data, size));
    sr::Tokenizer tok(sr::read_hf_tokenizer_json(path));
    (void)tok.decode(tok.encode_with_bos("Once upon a time,  a cat\n\xC3\xA9t\xC3\xA9 42! I'm   ok"));
  });
  return 0;
}
