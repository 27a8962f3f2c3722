#include "byte_level_fixture.h"

#include <fstream>

#include "tokenizer/byte_level_bpe.h"

namespace sr::test {

std::string gpt2_regex() {
  return R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
}
std::string llama3_regex() {
  return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}
std::string qwen2_regex() {
  return R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
}

nlohmann::json byte_level_tokenizer_json(const ByteLevelSpec& spec) {
  using json = nlohmann::json;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_to_unicode(uint8_t(b))] = b;
  const std::pair<const char*, const char*> merges[] = {{"Ġ", "t"}, {"h", "e"}, {"Ġt", "he"},
                                                        {"a", "a"}, {"l", "o"}, {"lo", "w"},
                                                        {"e", "r"}, {"low", "er"}, {"w", "e"}};
  json jm = json::array();
  int id = 256;
  for (const auto& [a, b] : merges) {
    vocab[std::string(a) + b] = id++;
    if (spec.merges_as_pairs) jm.push_back({a, b});
    else jm.push_back(std::string(a) + " " + b);
  }
  vocab["<|endoftext|>"] = 265;
  vocab["xyz"] = 266;
  auto added = [](int i, const char* content, bool special) {
    return json{{"id", i}, {"content", content}, {"single_word", false}, {"lstrip", false},
                {"rstrip", false}, {"normalized", !special}, {"special", special}};
  };
  json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = {added(265, "<|endoftext|>", true), added(270, "<tool>", false),
                       added(271, "<tool>call", true), added(272, "<|begin|>", true)};
  j["normalizer"] = spec.nfc ? json{{"type", "NFC"}} : json(nullptr);
  const json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", spec.add_prefix_space},
                           {"trim_offsets", true}, {"use_regex", true}};
  if (spec.pattern == "gpt2" && !spec.split_gpt2) {
    j["pre_tokenizer"] = byte_level;
  } else {
    const std::string regex = spec.pattern == "llama3" ? llama3_regex()
                              : spec.pattern == "qwen2" ? qwen2_regex()
                              : spec.pattern == "gpt2"  ? gpt2_regex()
                                                        : spec.pattern;
    j["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"}, {"pattern", {{"Regex", regex}}}, {"behavior", "Isolated"}, {"invert", false}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}};
  }
  const json bl_post = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", false}, {"use_regex", true}};
  if (spec.template_bos) {
    json single = json::array({json{{"SpecialToken", {{"id", "<|begin|>"}, {"type_id", 0}}}},
                               json{{"Sequence", {{"id", "A"}, {"type_id", 0}}}}});
    json tmpl = {{"type", "TemplateProcessing"},
                 {"single", single},
                 {"pair", single},
                 {"special_tokens", {{"<|begin|>", {{"id", "<|begin|>"}, {"ids", {272}}, {"tokens", {"<|begin|>"}}}}}}};
    j["post_processor"] = {{"type", "Sequence"}, {"processors", {bl_post, tmpl}}};
  } else {
    j["post_processor"] = bl_post;
  }
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"},          {"dropout", nullptr},      {"unk_token", nullptr},
                {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},      {"byte_fallback", false},  {"ignore_merges", spec.ignore_merges},
                {"vocab", vocab},         {"merges", jm}};
  return j;
}

std::string write_json(const std::string& path, const nlohmann::json& j) {
  std::ofstream(path) << j.dump(1);
  return path;
}

}  // namespace sr::test
