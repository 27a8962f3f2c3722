// Parsing untrusted JSON (config.json, tokenizer.json, quantization_config, layer
// configs, resume state, safetensors headers): nesting deeper than
// limits::kMaxJsonDepth is refused before nlohmann parses it, so tens of thousands of
// '[' give an error naming the file instead of overflowing the stack (nlohmann's
// dump and destruction of such values recurse). Syntax errors name the file too.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace sr {

// Throws sr::Error naming `source` and the byte offset where the nesting of
// '[' / '{' (outside strings) exceeds `max_depth`.
void check_json_depth(std::string_view text, const std::string& source, int max_depth);

// check_json_depth with limits::kMaxJsonDepth, then nlohmann::json::parse; a syntax
// error becomes sr::Error "<source>: not valid JSON: ...".
nlohmann::json parse_json_text(std::string_view text, const std::string& source);
nlohmann::ordered_json parse_ordered_json_text(std::string_view text, const std::string& source);

// read_input_file (regular files only, limits::kMaxJsonFileBytes) + parse_json_text.
nlohmann::json read_json_file(const std::string& path);
nlohmann::ordered_json read_ordered_json_file(const std::string& path);

}  // namespace sr
