// Opening GGUF files: llama.* metadata -> ModelConfig, tokenizer.ggml.* -> Vocabulary.
#include "common/error.h"
#include "model/model.h"

namespace sr {

void Model::init_gguf(const std::string& path) {
  fail("[model] ", path, ": GGUF reading is not built in yet");
}

}  // namespace sr
