// SpecialVocab of a Hugging Face folder and of a GGUF file (contract in gguf_vocab.h). The steps
// follow gguf-py's vocab.py in its order, since the order decides which source wins.
#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/input_file.h"
#include "common/json_parse.h"
#include "common/limits.h"
#include "tokenizer/gguf_vocab.h"

namespace sr {
namespace {
namespace fs = std::filesystem;
using json = nlohmann::json;

const char* const kTypes[] = {"bos", "eos", "unk", "sep", "pad", "cls", "mask"};

// The GGUF key of a special token type's id (gguf-py constants: "seperator" is llama.cpp's spelling).
std::string id_key(const std::string& type) {
  if (type == "unk") return "tokenizer.ggml.unknown_token_id";
  if (type == "sep") return "tokenizer.ggml.seperator_token_id";
  if (type == "pad") return "tokenizer.ggml.padding_token_id";
  return "tokenizer.ggml." + type + "_token_id";
}

// Python truthiness of a JSON value, as SpecialVocab tests tokenizer_config's entries.
bool truthy(const json* j) {
  if (!j || j->is_null()) return false;
  if (j->is_string() || j->is_object() || j->is_array()) return !j->empty();
  if (j->is_boolean()) return j->get<bool>();
  return !(j->is_number() && j->get<double>() == 0);
}

const json* member(const json& obj, const std::string& key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

// TemplateProcessing's entry {"SpecialToken": {"id": "<s>"}}: its id, or null.
json special_id(const json& entry) {
  const json* s = member(entry, "SpecialToken");
  const json* id = s ? member(*s, "id") : nullptr;
  return id ? *id : json();
}

json sequence_id(const json& entry) {
  const json* s = member(entry, "Sequence");
  const json* id = s ? member(*s, "id") : nullptr;
  return id ? *id : json();
}

struct Resolver {
  GgufSpecialVocab out;
  std::vector<std::string> types{std::begin(kTypes), std::end(kTypes)};
  int64_t n_vocab = -1;

  void set_add(const std::string& type, bool value) {
    for (auto& [t, v] : out.add)
      if (t == type) {
        v = value;
        return;
      }
    out.add.emplace_back(type, value);
  }
  void set_id(const std::string& type, const json& tid, const std::string& where) {
    if (!tid.is_number_integer() && !tid.is_number_unsigned()) return;  // Python's isinstance(tid, int)
    SR_CHECK(!tid.is_number_integer() || tid.get<int64_t>() >= 0, "[tokenizer] ", where,
             ": invalid id for special token type ", type, ": ", tid.dump());
    const uint64_t id = tid.get<uint64_t>();
    if (n_vocab >= 0 && id >= uint64_t(n_vocab)) return;  // the converter skips it with a warning
    if (out.id(type) >= 0 || id > UINT32_MAX) return;
    out.ids.emplace_back(type, uint32_t(id));
  }
};

// The post-processor's single/pair templates (vocab.py's "crude parsing").
void read_template(const json& proc, json* cfg, json& bos, json& cls, json& eos, json& sep, Resolver& r) {
  const json single = member(proc, "single") ? proc["single"] : json::array();
  json pair = member(proc, "pair") ? proc["pair"] : json::array();
  const bool has_cfg = truthy(cfg);
  json first, last;
  if (single.is_array() && single.size() > 1) {
    first = special_id(single.front());
    if (truthy(&first)) {
      if (!has_cfg) bos = first;
      r.set_add("bos", first == bos || first == cls);
    }
    last = special_id(single.back());
    if (truthy(&last)) {
      if (!has_cfg) {
        eos = last;
      } else if (last != eos) {
        const bool eot = std::find(r.types.begin(), r.types.end(), "eot") == r.types.end();
        const bool eom = !eot && std::find(r.types.begin(), r.types.end(), "eom") == r.types.end();
        if (eot || eom) {
          r.types.push_back(eot ? "eot" : "eom");
          (*cfg)[eot ? "eot_token" : "eom_token"] = eos;
        }
        (*cfg)["eos_token"] = eos = last;
      }
      r.set_add("eos", last == eos);
    }
  }
  if (!pair.is_array() || pair.empty()) return;
  const size_t start = truthy(&first) && special_id(pair.front()) == first ? 1 : 0;
  size_t stop = pair.size();
  if (truthy(&last) && special_id(pair.back()) == last) --stop;
  if (start >= stop) return;
  pair = json(std::vector<json>(pair.begin() + long(start), pair.begin() + long(stop)));
  if (sequence_id(pair.front()) != "A" || sequence_id(pair.back()) != "B" || pair.size() <= 2) return;
  const json middle(std::vector<json>(pair.begin() + 1, pair.end() - 1));  // A [sep] [eos] B
  bool add_sep = false;
  const json e0 = special_id(middle[0]);
  if (truthy(&e0) && (e0 == sep || e0 == eos) && !truthy(&last)) add_sep = true;
  if (middle.size() == 2) {
    const json e1 = special_id(middle[1]);
    if (truthy(&e1) && (e1 == sep || e1 == eos)) add_sep = true;
  }
  r.set_add("sep", add_sep);
  if (add_sep && !truthy(&sep) && has_cfg) (*cfg)["sep_token"] = eos;
}

void read_post_processor(const json& pp, json* cfg, Resolver& r) {
  auto cfg_entry = [&](const char* key) { return cfg && member(*cfg, key) ? (*cfg)[key] : json(); };
  json bos = cfg_entry("bos_token"), cls = cfg_entry("cls_token"), eos = cfg_entry("eos_token"),
       sep = cfg_entry("sep_token");
  const bool has_cfg = truthy(cfg);
  if (!truthy(&bos) && truthy(&cls) && has_cfg) (*cfg)["bos_token"] = bos = cls;
  if (!truthy(&eos) && truthy(&sep) && has_cfg) (*cfg)["eos_token"] = eos = sep;
  const json procs = member(pp, "processors") ? pp["processors"] : json::array({pp});
  if (!procs.is_array()) return;
  for (const json& proc : procs) {
    const json* type = member(proc, "type");
    if (type && *type == "RobertaProcessing") {
      for (const char* t : {"bos", "eos", "sep"}) r.set_add(t, true);
      if (!truthy(&cls) && has_cfg) {
        const json* c = member(proc, "cls");
        (*cfg)["cls_token"] = cls = c && c->is_array() && !c->empty() ? (*c)[0] : bos;
      }
      if (!truthy(&sep) && has_cfg) {
        const json* s = member(proc, "sep");
        (*cfg)["sep_token"] = sep = s && s->is_array() && !s->empty() ? (*s)[0] : eos;
      }
    } else if (type && *type == "TemplateProcessing") {
      read_template(proc, cfg, bos, cls, eos, sep, r);
    }
  }
}

std::optional<std::string> chat_template(const fs::path& dir, const json& cfg) {
  if (const json* t = member(cfg, "chat_template")) {
    if (t->is_string()) return t->get<std::string>();
    if (t->is_array())  // named templates: the converter stores "default" as tokenizer.chat_template
      for (const json& c : *t)
        if (member(c, "name") && c["name"] == "default" && member(c, "template") && c["template"].is_string())
          return c["template"].get<std::string>();
    return std::nullopt;
  }
  const fs::path jinja = dir / "chat_template.jinja", js = dir / "chat_template.json";
  if (fs::is_regular_file(jinja)) return read_input_file(jinja.string(), limits::kMaxJsonFileBytes);
  if (fs::is_regular_file(js)) {
    const json j = read_json_file(js.string());
    if (const json* t = member(j, "chat_template"); t && t->is_string()) return t->get<std::string>();
  }
  return std::nullopt;
}

// TextModel.does_token_look_special: texts some models leave unmarked though they are control tokens.
bool looks_special(const std::string& t) {
  auto wrapped = [&](const std::string& open, const std::string& close) {
    return t.size() >= open.size() && t.size() >= close.size() && t.compare(0, open.size(), open) == 0 &&
           t.compare(t.size() - close.size(), close.size(), close) == 0;  // may overlap, as in Python
  };
  return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" || wrapped("<|", "|>") ||
         wrapped("<\xef\xbd\x9c", "\xef\xbd\x9c>") || wrapped("<unused", ">");
}

// An added token's id: a JSON integer (added_tokens.json) or a decimal key (added_tokens_decoder).
int64_t added_id(const json& id, const std::string& where) {
  int64_t v = -1;
  const std::string text = id.is_string() ? id.get<std::string>() : "";
  if (id.is_number_integer()) v = id.get<int64_t>();
  else if (!text.empty() && text.size() < 19 && std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    v = std::stoll(text);
  SR_CHECK(v >= 0, "[tokenizer] ", where, ": added token id ", id.dump(), " is not a non-negative integer");
  return v;
}

// _create_vocab_sentencepiece's re-typing: added_tokens.json, then tokenizer_config.json's
// added_tokens_decoder.
void read_added_tokens(const fs::path& dir, const json& cfg, int64_t n_vocab, std::vector<GgufAddedToken>& out) {
  const fs::path added = dir / "added_tokens.json";
  if (fs::is_regular_file(added)) {
    const json j = read_json_file(added.string());
    SR_CHECK(j.is_object(), "[tokenizer] ", added.string(), ": expected an object {\"text\": id}");
    for (const auto& [text, id] : j.items()) {
      const int64_t v = added_id(id, added.string());
      if (v < n_vocab) out.push_back({v, text, PieceKind::UserDefined});
    }
  }
  const json* dec = member(cfg, "added_tokens_decoder");
  if (!dec || dec->is_null()) return;
  const std::string where = (dir / "tokenizer_config.json").string();
  SR_CHECK(dec->is_object(), "[tokenizer] ", where, ": added_tokens_decoder is not an object");
  for (const auto& [key, data] : dec->items()) {
    const int64_t v = added_id(json(key), where);
    const json* content = member(data, "content");
    SR_CHECK(content && content->is_string(), "[tokenizer] ", where, ": added_tokens_decoder[\"", key,
             "\"] has no \"content\" text");
    if (v >= n_vocab) continue;
    std::string text = content->get<std::string>();
    const bool control = truthy(member(data, "special")) || looks_special(text);
    if (!control)  // user-defined spaces pre-normalized: "\u2581" as " "
      for (size_t p = text.find("\xe2\x96\x81"); p != std::string::npos; p = text.find("\xe2\x96\x81", p + 1))
        text.replace(p, 3, " ");
    out.push_back({v, text, control ? PieceKind::Control : PieceKind::UserDefined});
  }
}

}  // namespace

int64_t GgufSpecialVocab::id(const std::string& type) const {
  for (const auto& [t, v] : ids)
    if (t == type) return v;
  return -1;
}

GgufSpecialVocab read_hf_special_vocab(const std::string& dir_name, int64_t n_vocab) {
  const fs::path dir(dir_name);
  Resolver r;
  r.out.known = true;
  r.n_vocab = n_vocab;
  const fs::path tok = dir / "tokenizer.json", cfg_path = dir / "tokenizer_config.json";
  json tokenizer, cfg;
  json added = json::array();
  if (fs::is_regular_file(tok)) {
    tokenizer = read_json_file(tok.string());
    if (const json* a = member(tokenizer, "added_tokens"); a && a->is_array()) added = *a;
  }
  const bool has_cfg_file = fs::is_regular_file(cfg_path);
  if (has_cfg_file) cfg = read_json_file(cfg_path.string());
  if (!tokenizer.is_null())
    if (const json* pp = member(tokenizer, "post_processor"); pp && truthy(pp))
      read_post_processor(*pp, has_cfg_file ? &cfg : nullptr, r);
  if (has_cfg_file && truthy(&cfg)) {
    r.out.chat_template = chat_template(dir, cfg);
    for (const std::string& type : r.types) {
      if (const json* a = member(cfg, "add_" + type + "_token"); a && a->is_boolean()) r.set_add(type, a->get<bool>());
      const json* e = member(cfg, type + "_token");
      if (e && e->is_object()) e = member(*e, "content");
      if (!e || !e->is_string()) continue;
      for (const json& t : added)  // the first added token with that text
        if (member(t, "content") && t["content"] == *e) {
          if (const json* id = member(t, "id")) r.set_id(type, *id, tok.string());
          break;
        }
    }
  }
  const fs::path config = dir / "config.json";
  if (fs::is_regular_file(config)) {
    const json c = read_json_file(config.string());
    for (const std::string& type : r.types) {
      const json* id = member(c, type + "_token_id");
      if (!id || id->is_null())
        if (const json* text = member(c, "text_config")) id = member(*text, type + "_token_id");
      if (id) r.set_id(type, *id, config.string());
    }
  }
  if (has_cfg_file)
    if (const json* p = member(cfg, "add_prefix_space"); p && p->is_boolean()) r.out.add_space_prefix = p->get<bool>();
  if (n_vocab >= 0) read_added_tokens(dir, cfg, n_vocab, r.out.added_tokens);
  // Only bos, eos and sep have an add_<type>_token key (gguf-py's GGUFWriter handlers).
  std::vector<std::pair<std::string, bool>> add;
  for (const auto& kv : r.out.add)
    if (kv.first == "bos" || kv.first == "eos" || kv.first == "sep") add.push_back(kv);
  r.out.add = add;
  return r.out;
}

GgufSpecialVocab read_gguf_special_vocab(const GgufReader& g) {
  GgufSpecialVocab s;
  s.known = true;
  for (const char* type : {"bos", "eos", "unk", "sep", "pad", "cls", "mask", "eot", "eom"})
    if (g.has(id_key(type))) s.ids.emplace_back(type, g.get<uint32_t>(id_key(type)));
  for (const char* type : {"bos", "eos", "sep"}) {
    const std::string key = std::string("tokenizer.ggml.add_") + type + "_token";
    if (g.has(key)) s.add.emplace_back(type, g.get<bool>(key));
  }
  if (g.has("tokenizer.chat_template")) s.chat_template = g.get<std::string>("tokenizer.chat_template");
  if (g.has("tokenizer.ggml.add_space_prefix")) s.add_space_prefix = g.get<bool>("tokenizer.ggml.add_space_prefix");
  return s;
}

std::string gguf_special_token_key(const std::string& type) { return id_key(type); }

}  // namespace sr
