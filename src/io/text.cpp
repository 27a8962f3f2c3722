#include "io/text.h"

#include <nlohmann/json.hpp>
#include <sstream>

#include "common/error.h"
#include "common/input_file.h"
#include "common/json_parse.h"
#include "common/limits.h"
#include "common/strings.h"

namespace sr {

void check_utf8(std::string_view t, const std::string& source) {
  size_t i = 0;
  while (i < t.size()) {
    const unsigned char c = static_cast<unsigned char>(t[i]);
    size_t n = utf8_len(c);
    bool ok = !(c >= 0x80 && n == 1) && i + n <= t.size();
    for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(t[i + k]) & 0xC0) == 0x80;
    // Unicode's table of well-formed sequences: no overlong forms (C0 C1, E0 80..9F,
    // F0 80..8F), no surrogates (ED A0..BF), nothing beyond U+10FFFF (F4 90.., F5..F7).
    const unsigned char c1 = ok && n > 1 ? static_cast<unsigned char>(t[i + 1]) : 0x80;
    if (ok && n == 2) ok = c >= 0xC2;
    if (ok && n == 3 && c == 0xE0) ok = c1 >= 0xA0;
    if (ok && n == 3 && c == 0xED) ok = c1 < 0xA0;
    if (ok && n == 4) ok = c <= 0xF4 && (c != 0xF0 || c1 >= 0x90) && (c != 0xF4 || c1 < 0x90);
    SR_CHECK(ok, "[text] ", source, ": not valid UTF-8 at byte offset ", i);
    i += n;
  }
}

std::string read_text_file(const std::string& path) {
  std::string s = read_input_file(path, limits::kMaxTextFileBytes, "[text]");
  SR_CHECK(!s.empty(), "[text] ", path, " is empty");
  check_utf8(s, path);
  return s;
}

std::vector<std::string> read_documents(const std::string& path) {
  const std::string text = read_text_file(path);
  std::vector<std::string> docs;
  std::istringstream in(text);
  std::string line;
  if (ends_with(path, ".jsonl") || ends_with(path, ".json")) {
    int lineno = 0;
    while (std::getline(in, line)) {
      ++lineno;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j;
      try {
        j = parse_json_text(line, path + ":" + std::to_string(lineno));
      } catch (const Error& ex) {
        fail("[dataset] ", path, ":", lineno, ": not a JSON object: ", ex.what());
      }
      SR_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(), "[dataset] ", path, ":", lineno,
               ": expected an object with a string field \"text\"");
      docs.push_back(j["text"].get<std::string>());
    }
  } else {
    std::string doc;
    while (std::getline(in, line)) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) {
        if (!doc.empty()) docs.push_back(doc);
        doc.clear();
        continue;
      }
      doc += (doc.empty() ? "" : "\n") + line;
    }
    if (!doc.empty()) docs.push_back(doc);
  }
  SR_CHECK(!docs.empty(), "[dataset] ", path, ": no documents");
  return docs;
}

}  // namespace sr
