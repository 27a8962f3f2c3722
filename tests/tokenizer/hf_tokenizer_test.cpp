// Byte-level BPE (tokenizer.json): the three pre-tokenizer regexes against Python's
// `regex` module (tests/data/pretokenize_vectors.json, from
// tests/data/gen_pretokenize_vectors.py), the Unicode tables, BPE merging on a hand-made
// vocabulary (byte_level_fixture.h) with ids worked out by hand, decode(encode(x)) == x
// for arbitrary bytes, and an sr::Error naming the file for each malformed input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "byte_level_fixture.h"
#include "common/error.h"
#include "testutil.h"
#include "tokenizer/byte_level_bpe.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode_classes.h"

namespace sr {
namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

using test::error_of;

// The tokenizer of `spec`, written as dir/tokenizer.json (plus an optional config).
Tokenizer load(const test::TempDir& dir, const test::ByteLevelSpec& spec = {}, const json& config = nullptr) {
  if (!config.is_null()) test::write_json(dir / "tokenizer_config.json", config);
  return Tokenizer(read_hf_tokenizer_json(test::write_json(dir / "tokenizer.json", test::byte_level_tokenizer_json(spec))));
}

TEST(PreTokenize, MatchesPythonRegexVectors) {
  std::ifstream in(test::repo("tests/data/pretokenize_vectors.json"));
  ASSERT_TRUE(in) << "missing tests/data/pretokenize_vectors.json";
  const json data = json::parse(in);
  const std::map<std::string, PreTokenizer> kinds = {
      {"gpt2", PreTokenizer::Gpt2}, {"llama3", PreTokenizer::Llama3}, {"qwen2", PreTokenizer::Qwen2}};
  size_t checked = 0;
  for (const json& v : data["vectors"]) {
    const std::string text = v["text"];
    std::vector<std::string> got;
    for (std::string_view p : pretokenize(text, kinds.at(v["pattern"]))) got.emplace_back(p);
    EXPECT_EQ(got, v["pieces"].get<std::vector<std::string>>()) << v["pattern"] << ": " << json(text).dump();
    ++checked;
  }
  EXPECT_GE(checked, 900u);
}

// A few splits spelled out, so the vectors' key cases are visible here too.
TEST(PreTokenize, KeyCasesSpelledOut) {
  using V = std::vector<std::string_view>;
  EXPECT_EQ(pretokenize("12345", PreTokenizer::Llama3), (V{"123", "45"}));
  EXPECT_EQ(pretokenize("12345", PreTokenizer::Qwen2), (V{"1", "2", "3", "4", "5"}));
  EXPECT_EQ(pretokenize("12345", PreTokenizer::Gpt2), (V{"12345"}));
  EXPECT_EQ(pretokenize("it'S", PreTokenizer::Llama3), (V{"it", "'S"}));  // (?i)
  EXPECT_EQ(pretokenize("it'S", PreTokenizer::Gpt2), (V{"it", "'", "S"}));
  EXPECT_EQ(pretokenize("a   b", PreTokenizer::Gpt2), (V{"a", "  ", " b"}));  // \s+(?!\S)
  EXPECT_EQ(pretokenize("a \n  b", PreTokenizer::Llama3), (V{"a", " \n", " ", " b"}));  // \s*[\r\n]+
  EXPECT_EQ(pretokenize("x  ", PreTokenizer::Gpt2), (V{"x", "  "}));
  EXPECT_EQ(pretokenize("?!\n\nx", PreTokenizer::Llama3), (V{"?!\n\n", "x"}));
}

TEST(PreTokenize, InvalidUtf8IsOneOtherCharacterPerByte) {
  using V = std::vector<std::string_view>;
  const std::string bad = "ab\xff\xfe cd\xc3";  // stray bytes and a truncated 2-byte sequence
  EXPECT_EQ(pretokenize(bad, PreTokenizer::Gpt2), (V{"ab", "\xff\xfe", " cd", "\xc3"}));
  for (PreTokenizer k : {PreTokenizer::Gpt2, PreTokenizer::Llama3, PreTokenizer::Qwen2}) {
    std::string joined;
    for (std::string_view p : pretokenize(bad, k)) joined += p;
    EXPECT_EQ(joined, bad);
  }
}

TEST(UnicodeClasses, SpotChecks) {
  EXPECT_EQ(char_class('A'), CharClass::Letter);
  EXPECT_EQ(char_class(0xDF), CharClass::Letter);    // ß
  EXPECT_EQ(char_class(0x65E5), CharClass::Letter);  // 日
  EXPECT_EQ(char_class(0x02B0), CharClass::Letter);  // ʰ (Lm)
  EXPECT_EQ(char_class(0x01C5), CharClass::Letter);  // ǅ (Lt)
  EXPECT_EQ(char_class('7'), CharClass::Number);
  EXPECT_EQ(char_class(0x0663), CharClass::Number);  // ٣ (Nd)
  EXPECT_EQ(char_class(0x216B), CharClass::Number);  // Ⅻ (Nl)
  EXPECT_EQ(char_class(0xBD), CharClass::Number);    // ½ (No)
  EXPECT_EQ(char_class(0xA0), CharClass::Space);
  EXPECT_EQ(char_class(0x85), CharClass::Space);
  EXPECT_EQ(char_class(0x3000), CharClass::Space);
  EXPECT_EQ(char_class(0x0B), CharClass::Space);
  EXPECT_EQ(char_class(0x1C), CharClass::Other);     // Python's str.isspace() says yes; White_Space no
  EXPECT_EQ(char_class(0x200B), CharClass::Other);   // zero width space (Cf)
  EXPECT_EQ(char_class(0x1F600), CharClass::Other);  // 😀
  EXPECT_EQ(char_class('_'), CharClass::Other);
  EXPECT_EQ(char_class(0x0301), CharClass::Other);   // combining acute (Mn)
  EXPECT_EQ(char_class(kInvalidCodePoint), CharClass::Other);
  EXPECT_EQ(char_class(0x10FFFF), CharClass::Other);
  EXPECT_EQ(decode_utf8("\xc3\xa9", 0).cp, 0xE9u);
  EXPECT_EQ(decode_utf8("\xf0\x9f\x98\x80", 0).cp, 0x1F600u);
  for (const char* bad : {"\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80", "\xe6\x97"}) {
    EXPECT_EQ(decode_utf8(bad, 0).cp, kInvalidCodePoint) << int(static_cast<unsigned char>(bad[0]));
    EXPECT_EQ(decode_utf8(bad, 0).len, 1u);
  }
}

TEST(ByteLevel, BytesToUnicodeTable) {
  EXPECT_EQ(byte_to_unicode(' '), "\xC4\xA0");   // Ġ U+0120
  EXPECT_EQ(byte_to_unicode('\n'), "\xC4\x8A");  // Ċ U+010A
  EXPECT_EQ(byte_to_unicode(0), "\xC4\x80");     // U+0100
  EXPECT_EQ(byte_to_unicode(0x7F), "\xC4\xA1");  // U+0121: first byte after the printable ASCII
  EXPECT_EQ(byte_to_unicode(0xAD), "\xC5\x83");  // U+0143: the 68th and last remapped byte
  EXPECT_EQ(byte_to_unicode('a'), "a");
  EXPECT_EQ(byte_to_unicode(0xA1), "\xC2\xA1");  // ¡ maps to itself
  EXPECT_EQ(byte_to_unicode(0xFF), "\xC3\xBF");
}

TEST(ByteLevelBpe, MergesByRankThenLeftmost) {
  test::TempDir dir;
  const Tokenizer t = load(dir);
  EXPECT_EQ(t.vocab_size(), 273);
  EXPECT_EQ(t.encode("the"), (Ids{116, 257}));  // "h e" merges; "t he" is no merge
  EXPECT_EQ(t.encode(" the"), (Ids{258}));      // "Ġ t" (rank 0), "h e" (1), "Ġt he" (2)
  EXPECT_EQ(t.encode("aaa"), (Ids{259, 97}));   // tie between equal pairs: leftmost first
  EXPECT_EQ(t.encode("aaaa"), (Ids{259, 259}));
  EXPECT_EQ(t.encode("lower"), (Ids{263}));
  EXPECT_EQ(t.encode("lowe"), (Ids{261, 101}));  // "lo w" (rank 5) beats "w e" (rank 8)
  EXPECT_EQ(t.encode("ewe"), (Ids{101, 264}));
  EXPECT_EQ(t.encode("the the"), (Ids{116, 257, 258}));
  EXPECT_EQ(t.encode("xyz"), (Ids{120, 121, 122}));  // in the vocabulary, but no merge builds it
  EXPECT_EQ(t.encode("\n"), (Ids{10}));
  EXPECT_EQ(t.encode("\xc3\xa9"), (Ids{0xC3, 0xA9}));  // é: its two bytes
  EXPECT_EQ(t.encode(""), Ids{});
  EXPECT_EQ(t.decode({116, 257, 258}), "the the");
  EXPECT_EQ(t.bos_id(), -1);
  EXPECT_FALSE(t.add_bos());
  EXPECT_EQ(t.eos_id(), -1);
  EXPECT_EQ(t.encode_with_bos("the"), (Ids{116, 257}));
  EXPECT_EQ(t.piece(258), "\xC4\xA0the");
  EXPECT_EQ(t.piece(268), "[PAD268]");  // a hole in the id space
  EXPECT_EQ(t.vocabulary().kinds[268], PieceKind::Unused);
}

TEST(ByteLevelBpe, MergesAsPairsReadTheSame) {
  test::TempDir a, b;
  test::ByteLevelSpec pairs;
  pairs.merges_as_pairs = true;
  EXPECT_EQ(load(a).vocabulary().merges, load(b, pairs).vocabulary().merges);
  EXPECT_EQ(load(b, pairs).encode(" the lower"), (Ids{258, 32, 263}));
}

TEST(ByteLevelBpe, IgnoreMerges) {
  test::TempDir dir;
  test::ByteLevelSpec s;
  s.pattern = "llama3";
  s.ignore_merges = true;
  const Tokenizer t = load(dir, s);
  EXPECT_EQ(t.encode("xyz"), (Ids{266}));     // the pre-token is a token: emitted as is
  EXPECT_EQ(t.encode("lowe"), (Ids{261, 101}));
  s.ignore_merges = false;
  EXPECT_EQ(load(dir, s).encode("xyz"), (Ids{120, 121, 122}));
}

TEST(ByteLevelBpe, AddedTokensSplitTheTextFirst) {
  test::TempDir dir;
  const Tokenizer t = load(dir);
  EXPECT_EQ(t.encode("the<|endoftext|> the"), (Ids{116, 257, 265, 258}));
  EXPECT_EQ(t.encode("<tool>call<tool>cal"), (Ids{271, 270, 99, 97, 108}));  // longest match wins
  EXPECT_EQ(t.encode("<|endoftext|><|endoftext|>"), (Ids{265, 265}));
  EXPECT_EQ(t.encode("<|endoftext"), (Ids{60, 124, 101, 110, 100, 111, 102, 116, 101, 120, 116}));
  // Special tokens vanish from decoded text; non-special ones are text.
  EXPECT_EQ(t.decode({116, 257, 265, 258}), "the the");
  EXPECT_EQ(t.decode({270, 99}), "<tool>c");
  EXPECT_EQ(t.vocabulary().kinds[265], PieceKind::Control);
  EXPECT_EQ(t.vocabulary().kinds[270], PieceKind::UserDefined);
}

TEST(ByteLevelBpe, AddPrefixSpace) {
  test::TempDir dir;
  test::ByteLevelSpec s;
  s.add_prefix_space = true;
  const Tokenizer t = load(dir, s);
  EXPECT_EQ(t.encode("the"), (Ids{258}));
  EXPECT_EQ(t.encode(" the"), (Ids{258}));  // already starts with a space
  EXPECT_EQ(t.encode("a<|endoftext|>b"), (Ids{32, 97, 265, 32, 98}));  // each stretch
}

TEST(ByteLevelBpe, BosFromTemplateOrConfig) {
  test::TempDir dir;
  test::ByteLevelSpec s;
  s.pattern = "llama3";
  s.ignore_merges = true;
  s.template_bos = true;
  const Tokenizer t = load(dir, s, json{{"bos_token", "<|begin|>"}, {"eos_token", {{"content", "<|endoftext|>"}}}});
  EXPECT_EQ(t.bos_id(), 272);
  EXPECT_TRUE(t.add_bos());
  EXPECT_EQ(t.eos_id(), 265);
  EXPECT_EQ(t.encode_with_bos(" the"), (Ids{272, 258}));
  EXPECT_EQ(t.vocabulary().pre, PreTokenizer::Llama3);
  EXPECT_TRUE(t.vocabulary().ignore_merges);

  // Qwen2-like: no template, bos_token null: no BOS at all.
  test::TempDir q;
  test::ByteLevelSpec qs;
  qs.pattern = "qwen2";
  qs.nfc = true;
  const Tokenizer qt = load(q, qs, json{{"bos_token", nullptr}, {"eos_token", "<|endoftext|>"}, {"add_bos_token", true}});
  EXPECT_EQ(qt.bos_id(), -1);
  EXPECT_FALSE(qt.add_bos());
  EXPECT_EQ(qt.eos_id(), 265);
  EXPECT_EQ(qt.encode_with_bos("12"), (Ids{49, 50}));
  EXPECT_EQ(qt.vocabulary().pre, PreTokenizer::Qwen2);

  // BOS named by tokenizer_config.json: added only when add_bos_token says so.
  test::TempDir c;
  EXPECT_FALSE(load(c, {}, json{{"bos_token", "<|begin|>"}}).add_bos());
  const Tokenizer ct = load(c, {}, json{{"bos_token", "<|begin|>"}, {"add_bos_token", true}});
  EXPECT_EQ(ct.encode_with_bos("the"), (Ids{272, 116, 257}));
  // add_bos_token: false overrides the template.
  EXPECT_FALSE(load(c, s, json{{"add_bos_token", false}}).add_bos());
}

// Every byte string survives encode + decode, including invalid UTF-8 and bytes that
// no merge touches.
TEST(ByteLevelBpe, DecodeInvertsEncode) {
  test::TempDir dir;
  for (const char* pattern : {"gpt2", "llama3", "qwen2"}) {
    test::ByteLevelSpec s;
    s.pattern = pattern;
    s.ignore_merges = std::string(pattern) == "llama3";
    const Tokenizer t = load(dir, s);
    std::mt19937 rng(7);
    const std::string alphabet[] = {"a", "e", "h", "l", "o", "r", "t", "w", " ", "  ", "\n", "\r\n", "\t", "'s", "'LL",
                                    "123", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80", "\xff", "\x80", "\x01",
                                    "?!", "\xe2\x80\x83", "<tool>", "٣"};
    for (int n = 0; n < 300; ++n) {
      std::string x;
      const int len = int(rng() % 24);
      for (int i = 0; i < len; ++i) x += alphabet[rng() % (sizeof(alphabet) / sizeof(alphabet[0]))];
      EXPECT_EQ(t.decode(t.encode(x)), x) << pattern << " " << n;
    }
    std::string all;
    for (int b = 0; b < 256; ++b) all += char(b);
    EXPECT_EQ(t.decode(t.encode(all)), all) << pattern;
  }
}

// The copy of a Tokenizer is independent of the original (the encoder owns its data).
TEST(ByteLevelBpe, CopiesOutliveTheOriginal) {
  test::TempDir dir;
  auto t = std::make_unique<Tokenizer>(load(dir));
  const Tokenizer copy = *t;
  t.reset();
  EXPECT_EQ(copy.encode(" the<tool>"), (Ids{258, 270}));
}

struct BadFile {
  std::string what;
  std::function<void(json&)> edit;  // applied to the fixture's JSON; null: raw text below
  std::string raw;
  std::string expect;  // fragment of the message (which must also name the file)
};

TEST(HfTokenizerJson, MalformedInputsNameTheFileAndKey) {
  const std::vector<BadFile> cases = {
      {"not JSON", nullptr, "{\"model\": ", "not valid JSON"},
      {"not an object", nullptr, "[1, 2]", "not a JSON object"},
      {"no model", [](json& j) { j.erase("model"); }, "", "missing model"},
      {"unigram", [](json& j) { j["model"]["type"] = "Unigram"; }, "", "model.type is 'Unigram'"},
      {"wordpiece", [](json& j) { j["model"]["type"] = "WordPiece"; }, "", "model.type is 'WordPiece'"},
      {"no vocab", [](json& j) { j["model"].erase("vocab"); }, "", "missing model.vocab"},
      {"vocab not object", [](json& j) { j["model"]["vocab"] = json::array(); }, "", "model.vocab must be"},
      {"id is a string", [](json& j) { j["model"]["vocab"]["xyz"] = "7"; }, "", "model.vocab[\"xyz\"] must be a token id"},
      {"negative id", [](json& j) { j["model"]["vocab"]["xyz"] = -1; }, "", "must be a token id"},
      {"huge id", [](json& j) { j["model"]["vocab"]["xyz"] = 1LL << 40; }, "", "must be a token id"},
      {"id past the bound", [](json& j) { j["model"]["vocab"]["xyz"] = 1 << 22; }, "", "must be a token id in [0, 4194303]"},
      {"duplicate id", [](json& j) { j["model"]["vocab"]["xyz"] = 97; }, "", "gives id 97 to both"},
      {"no merges", [](json& j) { j["model"].erase("merges"); }, "", "missing model.merges"},
      {"merges not array", [](json& j) { j["model"]["merges"] = "a b"; }, "", "model.merges must be an array"},
      {"merge without space", [](json& j) { j["model"]["merges"][1] = "he"; }, "", "model.merges[1] \"he\""},
      {"merge of three", [](json& j) { j["model"]["merges"][1] = json::array({"h", "e", "x"}); }, "", "model.merges[1]"},
      {"merge part missing", [](json& j) { j["model"]["merges"].push_back("q\xc3\xa9 z"); }, "", "\"q\xc3\xa9\" is not in model.vocab"},
      {"merge result missing", [](json& j) { j["model"]["merges"].push_back("x y"); }, "", "the merged \"xy\" is not in model.vocab"},
      {"byte fallback", [](json& j) { j["model"]["byte_fallback"] = true; }, "", "use the tokenizer.model next to it"},
      {"metaspace", [](json& j) { j["pre_tokenizer"] = {{"type", "Metaspace"}}; }, "", "SentencePiece-style"},
      {"dropout", [](json& j) { j["model"]["dropout"] = 0.1; }, "", "model.dropout"},
      {"suffix", [](json& j) { j["model"]["end_of_word_suffix"] = "</w>"; }, "", "model.end_of_word_suffix"},
      {"unknown regex", [](json& j) { j["pre_tokenizer"] = test::byte_level_tokenizer_json({"\\s+|\\w+"})["pre_tokenizer"]; }, "",
       "\"\\s+|\\w+\" is not a known pre-tokenizer pattern; supported"},
      {"whitespace pre", [](json& j) { j["pre_tokenizer"] = {{"type", "Whitespace"}}; }, "", "pre_tokenizer type 'Whitespace'"},
      {"no pre", [](json& j) { j.erase("pre_tokenizer"); }, "", "missing pre_tokenizer"},
      {"bytelevel no regex", [](json& j) { j["pre_tokenizer"]["use_regex"] = false; }, "", "use_regex = false"},
      {"split merged", [](json& j) {
         j = test::byte_level_tokenizer_json({"qwen2"});
         j["pre_tokenizer"]["pretokenizers"][0]["behavior"] = "MergedWithPrevious";
       }, "", "only behavior 'Isolated'"},
      {"lowercase", [](json& j) { j["normalizer"] = {{"type", "Lowercase"}}; }, "", "normalizer 'Lowercase'"},
      {"nfkc", [](json& j) { j["normalizer"] = {{"type", "NFKC"}}; }, "", "normalizer 'NFKC'"},
      {"wordpiece decoder", [](json& j) { j["decoder"] = {{"type", "WordPiece"}}; }, "", "decoder 'WordPiece'"},
      {"roberta post", [](json& j) { j["post_processor"] = {{"type", "RobertaProcessing"}}; }, "", "RobertaProcessing"},
      {"added not array", [](json& j) { j["added_tokens"] = json::object(); }, "", "added_tokens must be an array"},
      {"added without id", [](json& j) { j["added_tokens"][0].erase("id"); }, "", "missing added_tokens[0].id"},
      {"added repeated", [](json& j) { j["added_tokens"][1]["id"] = 265; }, "", "added_tokens[1] repeats id 265"},
      {"added lstrip", [](json& j) { j["added_tokens"][2]["lstrip"] = true; }, "", "added_tokens[2].lstrip"},
      {"special not bool", [](json& j) { j["added_tokens"][0]["special"] = "yes"; }, "", "added_tokens[0].special must be true or false"},
      {"template unknown token", [](json& j) {
         j = test::byte_level_tokenizer_json({"llama3", false, true, false, true});
         j["post_processor"]["processors"][1].erase("special_tokens");
         j["post_processor"]["processors"][1]["single"][0]["SpecialToken"]["id"] = "<nope>";
       }, "", "\"<nope>\" is not a token"},
  };
  for (const BadFile& c : cases) {
    test::TempDir dir;
    const std::string path = dir / "tokenizer.json";
    if (c.edit) {
      json j = test::byte_level_tokenizer_json();
      c.edit(j);
      test::write_json(path, j);
    } else {
      std::ofstream(path) << c.raw;
    }
    const std::string msg = error_of([&] { Tokenizer t(read_hf_tokenizer_json(path)); });
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.what << ": got '" << msg << "'";
    EXPECT_NE(msg.find(path), std::string::npos) << c.what << ": the message does not name the file: " << msg;
  }
  EXPECT_NE(error_of([] { read_hf_tokenizer_json("/nonexistent/tokenizer.json"); }).find("/nonexistent/tokenizer.json"),
            std::string::npos);
}

TEST(HfTokenizerJson, BadTokenizerConfigNamesIt) {
  test::TempDir dir;
  const std::string path = test::write_json(dir / "tokenizer.json", test::byte_level_tokenizer_json());
  std::ofstream(dir / "tokenizer_config.json") << "{oops";
  std::string msg = error_of([&] { read_hf_tokenizer_json(path); });
  EXPECT_NE(msg.find(dir / "tokenizer_config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
  test::write_json(dir / "tokenizer_config.json", json{{"eos_token", "<|nope|>"}});
  msg = error_of([&] { read_hf_tokenizer_json(path); });
  EXPECT_NE(msg.find(dir / "tokenizer_config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("eos_token \"<|nope|>\" is not a token"), std::string::npos) << msg;
  test::write_json(dir / "tokenizer_config.json", json{{"add_bos_token", "yes"}});
  msg = error_of([&] { read_hf_tokenizer_json(path); });
  EXPECT_NE(msg.find("add_bos_token must be true or false"), std::string::npos) << msg;
}

}  // namespace
}  // namespace sr
