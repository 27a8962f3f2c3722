// A SentencePiece tokenizer.model (protobuf), as `--tokenizer tokenizer.model` and HF
// folders with one read it (tokenizer/tokenizer.h read_sentencepiece_model); an accepted
// vocabulary then builds a Tokenizer and encodes/decodes a short text.
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sr::fuzz::expect_ok_or_error([&] {
    const std::string path = sr::fuzz::write_file("tokenizer.model", sr::fuzz::as_view(data, size));
    sr::Tokenizer tok(sr::read_sentencepiece_model(path));
    (void)tok.decode(tok.encode_with_bos("Once upon a time,  a cat\n\xC3\xA9t\xC3\xA9 42!"));
  });
  return 0;
}
