#include "common/json_parse.h"

#include "common/error.h"
#include "common/input_file.h"
#include "common/limits.h"

namespace sr {

void check_json_depth(std::string_view t, const std::string& source, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < t.size(); ++i) {
    const char c = t[i];
    if (in_string) {
      if (c == '\\') ++i;  // skip the escaped character (\" does not end the string)
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') {
      SR_CHECK(++depth <= max_depth, source, ": JSON nested deeper than ", max_depth, " levels (at byte ", i,
               "); refusing to parse it");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
}

namespace {

template <typename Json>
Json parse_text(std::string_view text, const std::string& source) {
  check_json_depth(text, source, limits::kMaxJsonDepth);
  try {
    return Json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& ex) {
    fail(source, ": not valid JSON: ", ex.what());
  }
}

}  // namespace

nlohmann::json parse_json_text(std::string_view text, const std::string& source) {
  return parse_text<nlohmann::json>(text, source);
}

nlohmann::ordered_json parse_ordered_json_text(std::string_view text, const std::string& source) {
  return parse_text<nlohmann::ordered_json>(text, source);
}

nlohmann::json read_json_file(const std::string& path) {
  return parse_json_text(read_input_file(path, limits::kMaxJsonFileBytes), path);
}

nlohmann::ordered_json read_ordered_json_file(const std::string& path) {
  return parse_ordered_json_text(read_input_file(path, limits::kMaxJsonFileBytes), path);
}

}  // namespace sr
