// A llama2.c tokenizer.bin (tokenizer/tokenizer.h read_llama2c_vocabulary, as
// `--tokenizer tok.bin` and llama2.c models read it): the first two input bytes choose the
// vocabulary size the model would pass (1..65536), the rest is the file. An accepted
// vocabulary then builds a Tokenizer and encodes/decodes a short text.
#include "fuzz_util.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const int32_t vocab_size = int32_t(data[0] | (data[1] << 8)) + 1;
  sr::fuzz::expect_ok_or_error([&] {
    const std::string path = sr::fuzz::write_file("tokenizer.bin", sr::fuzz::as_view(data + 2, size - 2));
    sr::Tokenizer tok(sr::read_llama2c_vocabulary(path, vocab_size));
    (void)tok.decode(tok.encode_with_bos("Once upon a time, a cat\n\xC3\xA9t\xC3\xA9 42!"));
  });
  return 0;
}
