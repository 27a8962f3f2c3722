#include "cli/model_flags.h"

#include <filesystem>

#include "common/error.h"

namespace sr::cli {

std::unique_ptr<Model> open_model(const Args& a, const std::string& path, bool needs_tokenizer) {
  OpenOptions oo;
  oo.tokenizer_path = a.str("tokenizer");
  SR_CHECK(oo.tokenizer_path.empty() || std::filesystem::exists(oo.tokenizer_path), "--tokenizer ",
           oo.tokenizer_path, " does not exist");
  auto model = Model::open(path, oo);
  SR_CHECK(!needs_tokenizer || model->has_tokenizer(), "[model] ", model->path(), ": ", model->tokenizer_error(),
           "; pass a tokenizer with --tokenizer");
  return model;
}

}  // namespace sr::cli
