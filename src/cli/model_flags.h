// Opening the model a command reads, with --tokenizer.
#pragma once
#include <memory>
#include <string>

#include "cli/args.h"
#include "model/model.h"

namespace sr::cli {

// Opens `path` with the tokenizer of --tokenizer (which must exist). `needs_tokenizer`: the
// command will tokenize text, so a model without a usable tokenizer is an error now, saying
// why and naming --tokenizer.
std::unique_ptr<Model> open_model(const Args& a, const std::string& path, bool needs_tokenizer);

}  // namespace sr::cli
