// Hugging Face tokenizer.json (byte-level BPE) -> Vocabulary (contract in tokenizer.h,
// what is accepted in docs/tokenizers.md). Every malformed or unsupported input throws
// sr::Error naming the file and the JSON key.
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "common/error.h"
#include "common/input_file.h"
#include "common/json_parse.h"
#include "common/limits.h"
#include "tokenizer/tokenizer.h"

namespace sr {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Ids beyond this are a corrupt file, not a vocabulary (the largest are ~260k); the
// bound also caps what a corrupt id can make us allocate for holes (~100 MB).
constexpr int64_t kMaxTokenId = (int64_t(1) << 22) - 1;

json parse_file(const std::string& path) {
  return parse_json_text(read_input_file(path, limits::kMaxJsonFileBytes, "[tokenizer]"), "[tokenizer] " + path);
}

// Reads JSON members with messages naming the file and the key path ("model.vocab").
class Reader {
 public:
  explicit Reader(const std::string& path) : path_(path) {}
  const std::string& path() const { return path_; }

  // The member `key` of `obj` (named `where`), or nullptr when absent or null.
  const json* find(const json& obj, const std::string& where, const char* key) const {
    SR_CHECK(obj.is_object(), "[tokenizer] ", path_, ": ", where, " is not a JSON object");
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  const json& need(const json& obj, const std::string& where, const char* key) const {
    const json* j = find(obj, where, key);
    SR_CHECK(j, "[tokenizer] ", path_, ": missing ", join(where, key));
    return *j;
  }
  std::string string(const json& j, const std::string& key) const {
    SR_CHECK(j.is_string(), "[tokenizer] ", path_, ": ", key, " must be a string, found ", j.type_name());
    return j.get<std::string>();
  }
  bool boolean(const json& obj, const std::string& where, const char* key, bool fallback) const {
    const json* j = find(obj, where, key);
    if (!j) return fallback;
    SR_CHECK(j->is_boolean(), "[tokenizer] ", path_, ": ", join(where, key), " must be true or false, found ",
             j->type_name());
    return j->get<bool>();
  }
  int32_t id(const json& j, const std::string& key) const {
    SR_CHECK(j.is_number_integer() && j.get<int64_t>() >= 0 && j.get<int64_t>() <= kMaxTokenId, "[tokenizer] ",
             path_, ": ", key, " must be a token id in [0, ", kMaxTokenId, "], found ", j.dump());
    return int32_t(j.get<int64_t>());
  }
  std::string type(const json& obj, const std::string& where) const {
    return string(need(obj, where, "type"), join(where, "type"));
  }
  static std::string join(const std::string& where, const std::string& key) {
    return where.empty() ? key : where + "." + key;
  }

 private:
  const std::string& path_;
};

struct AddedToken {
  int32_t id;
  std::string content;
  bool special;
};

// SentencePiece-style tokenizer.json files (Llama 2, Mistral) are BPE models too, but
// over "▁"-spaced text with byte fallback: refuse them before any other check so the
// message says what to do instead.
void refuse_sentencepiece_style(const json& j, const Reader& r) {
  const json& model = r.need(j, "", "model");
  bool sp = r.boolean(model, "model", "byte_fallback", false);
  const std::string dump = (j.contains("decoder") ? j["decoder"].dump() : "") +
                           (j.contains("pre_tokenizer") ? j["pre_tokenizer"].dump() : "") +
                           (j.contains("normalizer") ? j["normalizer"].dump() : "");
  for (const char* marker : {"\"ByteFallback\"", "\"Metaspace\"", "\"Prepend\""})
    if (dump.find(marker) != std::string::npos) sp = true;
  SR_CHECK(!sp, "[tokenizer] ", r.path(), ": a SentencePiece-style BPE tokenizer.json (byte_fallback, "
           "Metaspace or a \"▁\" normalizer), not byte-level BPE; use the tokenizer.model next to it "
           "as the tokenizer file");
}

void check_model_options(const json& model, const Reader& r) {
  const std::string type = r.type(model, "model");
  SR_CHECK(type == "BPE", "[tokenizer] ", r.path(), ": model.type is '", type,
           "'; only byte-level BPE ('BPE') is supported (not Unigram, WordPiece or WordLevel)");
  if (const json* d = r.find(model, "model", "dropout"))
    SR_CHECK(d->is_number() && d->get<double>() == 0.0, "[tokenizer] ", r.path(), ": model.dropout ", d->dump(),
             " is not supported (BPE dropout randomizes encodings)");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (const json* s = r.find(model, "model", key))
      SR_CHECK(s->is_string() && s->get<std::string>().empty(), "[tokenizer] ", r.path(), ": model.", key, " ",
               s->dump(), " is not supported (byte-level BPE has none)");
}

// Makes room for token `id` in v: ids not yet taken by a token have piece "" and kind Unused.
void make_room(Vocabulary& v, int32_t id) {
  if (size_t(id) < v.pieces.size()) return;
  v.pieces.resize(size_t(id) + 1);
  v.kinds.resize(size_t(id) + 1, PieceKind::Unused);
}

// model.vocab: token -> id, into pieces indexed by id.
void read_vocab(const json& model, const Reader& r, Vocabulary& v) {
  const json& vocab = r.need(model, "model", "vocab");
  SR_CHECK(vocab.is_object() && !vocab.empty(), "[tokenizer] ", r.path(),
           ": model.vocab must be a non-empty object (token -> id)");
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const int32_t id = r.id(it.value(), "model.vocab[\"" + it.key() + "\"]");
    make_room(v, id);
    SR_CHECK(v.kinds[size_t(id)] == PieceKind::Unused, "[tokenizer] ", r.path(), ": model.vocab gives id ", id,
             " to both \"", v.pieces[size_t(id)], "\" and \"", it.key(), "\"");
    v.pieces[size_t(id)] = it.key();
    v.kinds[size_t(id)] = PieceKind::Normal;
  }
}

// model.merges: "a b" strings (tokenizers < 0.20) or ["a", "b"] pairs.
std::vector<std::pair<std::string, std::string>> read_merges(const json& model, const Reader& r) {
  const json& merges = r.need(model, "model", "merges");
  SR_CHECK(merges.is_array(), "[tokenizer] ", r.path(), ": model.merges must be an array");
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    const std::string key = "model.merges[" + std::to_string(i) + "]";
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      SR_CHECK(sp != std::string::npos && sp > 0 && sp + 1 < s.size() && s.find(' ', sp + 1) == std::string::npos,
               "[tokenizer] ", r.path(), ": ", key, " \"", s, "\" is not two tokens separated by one space");
      out.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else {
      SR_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), "[tokenizer] ", r.path(),
               ": ", key, " must be \"a b\" or [\"a\", \"b\"], found ", m.dump());
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    }
  }
  return out;
}

std::vector<AddedToken> read_added_tokens(const json& j, const Reader& r) {
  std::vector<AddedToken> out;
  const json* added = r.find(j, "", "added_tokens");
  if (!added) return out;
  SR_CHECK(added->is_array(), "[tokenizer] ", r.path(), ": added_tokens must be an array");
  for (size_t i = 0; i < added->size(); ++i) {
    const json& t = (*added)[i];
    const std::string where = "added_tokens[" + std::to_string(i) + "]";
    AddedToken a{r.id(r.need(t, where, "id"), where + ".id"), r.string(r.need(t, where, "content"), where + ".content"),
                 r.boolean(t, where, "special", false)};
    SR_CHECK(!a.content.empty(), "[tokenizer] ", r.path(), ": ", where, ".content is empty");
    // lstrip/rstrip/single_word change how the token is found in text; the byte-level
    // models we target never set them, so refuse rather than mis-encode.
    for (const char* flag : {"lstrip", "rstrip", "single_word"})
      SR_CHECK(!r.boolean(t, where, flag, false), "[tokenizer] ", r.path(), ": ", where, ".", flag,
               " = true (token \"", a.content, "\") is not supported");
    for (const AddedToken& b : out)
      SR_CHECK(b.id != a.id, "[tokenizer] ", r.path(), ": ", where, " repeats id ", a.id, " (\"", b.content,
               "\" and \"", a.content, "\")");
    out.push_back(std::move(a));
  }
  return out;
}

const char* const kSupportedPreTokenizers =
    "supported: ByteLevel{use_regex: true} (GPT-2), or Sequence[Split{pattern: {Regex: P}, behavior: Isolated}, "
    "ByteLevel{use_regex: false}] with P the GPT-2, Llama 3 or Qwen2 pattern (docs/tokenizers.md)";

// pre_tokenizer -> pattern and add_prefix_space.
void read_pre_tokenizer(const json& j, const Reader& r, Vocabulary& v) {
  const json& pre = r.need(j, "", "pre_tokenizer");
  const std::string type = r.type(pre, "pre_tokenizer");
  if (type == "ByteLevel") {
    SR_CHECK(r.boolean(pre, "pre_tokenizer", "use_regex", true), "[tokenizer] ", r.path(),
             ": pre_tokenizer ByteLevel with use_regex = false (no splitting) is not supported; ",
             kSupportedPreTokenizers);
    v.pre = PreTokenizer::Gpt2;
    v.add_dummy_prefix = r.boolean(pre, "pre_tokenizer", "add_prefix_space", false);
    return;
  }
  SR_CHECK(type == "Sequence", "[tokenizer] ", r.path(), ": pre_tokenizer type '", type, "' is not supported; ",
           kSupportedPreTokenizers);
  const json& seq = r.need(pre, "pre_tokenizer", "pretokenizers");
  SR_CHECK(seq.is_array() && seq.size() == 2 && seq[0].is_object() && seq[1].is_object() &&
               r.type(seq[0], "pre_tokenizer.pretokenizers[0]") == "Split" &&
               r.type(seq[1], "pre_tokenizer.pretokenizers[1]") == "ByteLevel",
           "[tokenizer] ", r.path(), ": pre_tokenizer Sequence ", seq.dump().substr(0, 200), " is not supported; ",
           kSupportedPreTokenizers);
  const json& split = seq[0];
  const std::string where = "pre_tokenizer.pretokenizers[0]";
  const json* pattern = r.find(r.need(split, where, "pattern"), where + ".pattern", "Regex");
  SR_CHECK(pattern, "[tokenizer] ", r.path(), ": ", where, ".pattern must be {\"Regex\": ...}; ",
           kSupportedPreTokenizers);
  const std::string regex = r.string(*pattern, where + ".pattern.Regex");
  const auto kind = pretokenizer_from_regex(regex);
  SR_CHECK(kind, "[tokenizer] ", r.path(), ": ", where, ".pattern.Regex \"", regex,
           "\" is not a known pre-tokenizer pattern; supported: the GPT-2 (", pretokenizer_regex(PreTokenizer::Gpt2),
           "), Llama 3 (", pretokenizer_regex(PreTokenizer::Llama3), ") and Qwen2 (",
           pretokenizer_regex(PreTokenizer::Qwen2), ") patterns");
  const std::string behavior = r.string(r.need(split, where, "behavior"), where + ".behavior");
  SR_CHECK(behavior == "Isolated" && !r.boolean(split, where, "invert", false), "[tokenizer] ", r.path(), ": ",
           where, ": only behavior 'Isolated' without invert is supported, found '", behavior, "'");
  const std::string bl = "pre_tokenizer.pretokenizers[1]";
  SR_CHECK(!r.boolean(seq[1], bl, "use_regex", true) && !r.boolean(seq[1], bl, "add_prefix_space", false),
           "[tokenizer] ", r.path(), ": ", bl, " must be ByteLevel with use_regex and add_prefix_space false "
           "(the Split already cut the text)");
  v.pre = *kind;
  v.add_dummy_prefix = false;
}

// normalizer: none or NFC (text is assumed to be NFC already: we do not normalize).
void check_normalizer_and_decoder(const json& j, const Reader& r) {
  if (const json* n = r.find(j, "", "normalizer")) {
    const std::string type = r.type(*n, "normalizer");
    const bool empty_seq = type == "Sequence" && n->contains("normalizers") && (*n)["normalizers"].is_array() &&
                           (*n)["normalizers"].empty();
    SR_CHECK(type == "NFC" || empty_seq, "[tokenizer] ", r.path(), ": normalizer '", type,
             "' is not supported (only none, or NFC, which is assumed already applied to the text)");
  }
  if (const json* d = r.find(j, "", "decoder")) {
    const std::string type = r.type(*d, "decoder");
    SR_CHECK(type == "ByteLevel", "[tokenizer] ", r.path(), ": decoder '", type,
             "' is not supported (only ByteLevel)");
  }
}

// Token text -> id over the final pieces (added tokens included).
int32_t lookup(const Vocabulary& v, const std::string& content) {
  for (size_t i = 0; i < v.pieces.size(); ++i)
    if (v.kinds[i] != PieceKind::Unused && v.pieces[i] == content) return int32_t(i);
  return -1;
}

// The BOS a TemplateProcessing post-processor puts first ("single": [{"SpecialToken":
// ...}, {"Sequence": ...}]), searching inside a Sequence of processors; -1 if none.
int32_t template_bos(const json& pp, const std::string& where, const Reader& r, const Vocabulary& v) {
  const std::string type = r.type(pp, where);
  if (type == "Sequence") {
    const json& procs = r.need(pp, where, "processors");
    SR_CHECK(procs.is_array(), "[tokenizer] ", r.path(), ": ", where, ".processors must be an array");
    int32_t bos = -1;
    for (size_t i = 0; i < procs.size(); ++i) {
      const int32_t b = template_bos(procs[i], where + ".processors[" + std::to_string(i) + "]", r, v);
      if (b >= 0) bos = b;
    }
    return bos;
  }
  if (type == "ByteLevel") return -1;  // offsets only
  SR_CHECK(type == "TemplateProcessing", "[tokenizer] ", r.path(), ": ", where, " type '", type,
           "' is not supported (only TemplateProcessing, ByteLevel or a Sequence of them)");
  const json& single = r.need(pp, where, "single");
  SR_CHECK(single.is_array(), "[tokenizer] ", r.path(), ": ", where, ".single must be an array");
  if (single.empty() || !single[0].is_object() || !single[0].contains("SpecialToken")) return -1;
  const std::string key = where + ".single[0].SpecialToken";
  const std::string name = r.string(r.need(single[0]["SpecialToken"], key, "id"), key + ".id");
  // special_tokens maps the name to its ids; without it the name is the token's text.
  if (const json* st = r.find(pp, where, "special_tokens"))
    if (const json* entry = r.find(*st, where + ".special_tokens", name.c_str()))
      if (const json* ids = r.find(*entry, where + ".special_tokens." + name, "ids"))
        if (ids->is_array() && ids->size() == 1) {
          const int32_t id = r.id((*ids)[0], where + ".special_tokens." + name + ".ids[0]");
          SR_CHECK(size_t(id) < v.pieces.size(), "[tokenizer] ", r.path(), ": ", where, ".special_tokens.", name,
                   " id ", id, " is outside the vocabulary of ", v.pieces.size());
          return id;
        }
  const int32_t id = lookup(v, name);
  SR_CHECK(id >= 0, "[tokenizer] ", r.path(), ": ", key, ".id \"", name, "\" is not a token");
  return id;
}

// tokenizer_config.json's bos_token / eos_token: "text", {"content": "text"} or null.
int32_t config_token(const json& cfg, const char* key, const Reader& r, const Vocabulary& v) {
  const json* t = r.find(cfg, "", key);
  if (!t) return -1;
  const std::string content = t->is_object() ? r.string(r.need(*t, key, "content"), std::string(key) + ".content")
                                             : r.string(*t, key);
  const int32_t id = lookup(v, content);
  SR_CHECK(id >= 0, "[tokenizer] ", r.path(), ": ", key, " \"", content, "\" is not a token of the vocabulary");
  return id;
}

// BOS: the post-processor's template, else tokenizer_config.json's bos_token (added
// only if add_bos_token says so). tokenizer_config.json's add_bos_token, when present,
// has the last word (as for SentencePiece models). EOS: tokenizer_config.json's eos_token.
void read_special_tokens(const json& j, const Reader& r, Vocabulary& v) {
  if (const json* pp = r.find(j, "", "post_processor")) v.bos_id = template_bos(*pp, "post_processor", r, v);
  v.add_bos = v.bos_id >= 0;
  const fs::path cfg_path = fs::path(r.path()).parent_path() / "tokenizer_config.json";
  if (!fs::exists(cfg_path)) return;
  const std::string cfg_name = cfg_path.string();
  const json cfg = parse_file(cfg_name);
  const Reader c(cfg_name);
  SR_CHECK(cfg.is_object(), "[tokenizer] ", cfg_name, ": not a JSON object");
  if (v.bos_id < 0) v.bos_id = config_token(cfg, "bos_token", c, v);
  v.eos_id = config_token(cfg, "eos_token", c, v);
  v.add_bos = c.boolean(cfg, "", "add_bos_token", v.add_bos) && v.bos_id >= 0;
}

// Every merge's parts and result must be tokens (Hugging Face refuses such files too).
void check_merges(const Vocabulary& v, const Reader& r) {
  std::unordered_map<std::string, int32_t> ids;
  for (size_t i = 0; i < v.pieces.size(); ++i)
    if (v.kinds[i] != PieceKind::Unused) ids.emplace(v.pieces[i], int32_t(i));
  for (size_t i = 0; i < v.merges.size(); ++i) {
    const auto& [a, b] = v.merges[i];
    for (const std::string* part : {&a, &b, static_cast<const std::string*>(nullptr)}) {
      const std::string t = part ? *part : a + b;
      SR_CHECK(ids.count(t), "[tokenizer] ", r.path(), ": model.merges[", i, "] (\"", a, "\", \"", b, "\"): ",
               part ? "" : "the merged ", "\"", t, "\" is not in model.vocab");
    }
  }
}

}  // namespace

Vocabulary read_hf_tokenizer_json(const std::string& path) {
  const json j = parse_file(path);
  const Reader r(path);
  SR_CHECK(j.is_object(), "[tokenizer] ", path, ": not a JSON object (expected a Hugging Face tokenizer.json)");
  refuse_sentencepiece_style(j, r);
  const json& model = r.need(j, "", "model");
  check_model_options(model, r);

  Vocabulary v;
  v.source = path;
  v.model = TokenizerModel::ByteLevelBpe;
  v.unk_id = v.bos_id = v.eos_id = -1;  // add_bos: read_special_tokens decides
  read_vocab(model, r, v);
  v.merges = read_merges(model, r);
  v.ignore_merges = r.boolean(model, "model", "ignore_merges", false);
  // Added tokens override the text of their id (Hugging Face looks them up first) and
  // may lie beyond model.vocab.
  for (AddedToken& a : read_added_tokens(j, r)) {
    make_room(v, a.id);
    v.pieces[size_t(a.id)] = std::move(a.content);
    v.kinds[size_t(a.id)] = a.special ? PieceKind::Control : PieceKind::UserDefined;
  }
  // Ids no token took are filled as llama.cpp's converter fills them.
  for (size_t i = 0; i < v.pieces.size(); ++i)
    if (v.kinds[i] == PieceKind::Unused) v.pieces[i] = "[PAD" + std::to_string(i) + "]";
  v.scores.assign(v.pieces.size(), 0.0f);
  check_merges(v, r);
  check_normalizer_and_decoder(j, r);
  read_pre_tokenizer(j, r, v);
  read_special_tokens(j, r, v);
  return v;
}

}  // namespace sr
