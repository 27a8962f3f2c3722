// Parsing untrusted JSON (config.json, tokenizer.json, quantization_config, layer
// configs, resume state, safetensors headers): nesting deeper than
// limits::kMaxJsonDepth is refused before nlohmann parses it, so tens of thousands of
// '[' give an error naming the file instead of overflowing the stack (nlohmann's
// dump and destruction of such values recurse). Syntax errors name the file too.
#pragma once
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

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

// The integer in `j` as T (a signed integer type), or false when `j` is not a number, is a
// float with a fraction (4.5) or holds a value outside T's range (1e30, 2^40 for int).
// A float with an integral value (256.0) is accepted. nlohmann's get<int>() casts a float,
// which truncates 4.5 silently and is undefined behaviour for 1e30 (found by
// fuzz/hf_config_fuzz under UBSan); every integer field of a config reads through this.
template <typename T>
bool json_integer(const nlohmann::json& j, T& out) {
  static_assert(std::is_integral_v<T> && std::is_signed_v<T> && !std::is_same_v<T, bool>);
  constexpr int64_t lo = std::numeric_limits<T>::min(), hi = std::numeric_limits<T>::max();
  if (j.is_number_unsigned()) {
    const uint64_t v = j.get<uint64_t>();
    if (v > uint64_t(hi)) return false;
    out = T(v);
    return true;
  }
  if (j.is_number_integer()) {
    const int64_t v = j.get<int64_t>();
    if (v < lo || v > hi) return false;
    out = T(v);
    return true;
  }
  if (j.is_number_float()) {
    const double v = j.get<double>();
    // [lo, hi] as doubles: -2^63 is exact, hi + 1 = 2^63 is too.
    if (!(v >= double(lo) && v < double(hi) + 1.0) || v != std::trunc(v)) return false;
    out = T(v);
    return true;
  }
  return false;
}

}  // namespace sr
