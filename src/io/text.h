// Reading text inputs (evaluation texts, calibration datasets).
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace sr {

// Throws naming `source` and the byte offset of the first invalid UTF-8 sequence.
void check_utf8(std::string_view text, const std::string& source);

// The whole file as UTF-8 text. Throws naming the file if it cannot be read, is
// empty, or is not valid UTF-8.
std::string read_text_file(const std::string& path);

// A calibration dataset as a list of documents:
//   *.jsonl / *.json lines: one JSON object per line with a string "text" field;
//   anything else: plain text, documents separated by blank lines.
// Throws naming the file and line on malformed input.
std::vector<std::string> read_documents(const std::string& path);

}  // namespace sr
