#include "model/model.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/input_file.h"
#include "common/json_parse.h"
#include "common/limits.h"
#include "io/llama2c.h"
#include "io/safetensors.h"
#include "model/gguf_names.h"
#include "model/packed_weights.h"
#include "model/rope_layout.h"
#include "model/tensor_convert.h"

namespace sr {
namespace fs = std::filesystem;

namespace {

std::string slurp(const std::string& path) { return read_input_file(path, limits::kMaxJsonFileBytes); }

bool starts_with_gguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char m[4] = {};
  in.read(m, 4);
  return in.gcount() == 4 && std::memcmp(m, "GGUF", 4) == 0;
}

// The tokenizer beside the model: tokenizer.model first (the SentencePiece original,
// which Llama 2 / Mistral folders ship next to a SentencePiece-style tokenizer.json we do
// not read), then llama2.c's files, then a byte-level BPE tokenizer.json.
std::unique_ptr<Tokenizer> find_tokenizer(const std::string& override_path, const std::string& model_dir,
                                          int64_t vocab, std::string& why_not) {
  auto from_file = [&](const std::string& p) -> std::unique_ptr<Tokenizer> {
    const fs::path ext = fs::path(p).extension();
    if (ext == ".json") return std::make_unique<Tokenizer>(read_hf_tokenizer_json(p));
    if (ext == ".bin") return std::make_unique<Tokenizer>(read_llama2c_vocabulary(p, int32_t(vocab)));
    return std::make_unique<Tokenizer>(read_sentencepiece_model(p));
  };
  if (!override_path.empty()) {
    SR_CHECK(fs::exists(override_path), "[tokenizer] tokenizer_path ", override_path, " does not exist");
    return from_file(override_path);
  }
  for (const std::string& cand : {std::string("tokenizer.model"), std::string("tokenizer.bin"),
                                  "tok" + std::to_string(vocab) + ".bin", std::string("tokenizer.json")}) {
    const fs::path p = fs::path(model_dir) / cand;
    if (!fs::exists(p)) continue;
    if (cand != "tokenizer.json") return from_file(p.string());
    // A tokenizer.json we cannot read (Unigram, SentencePiece-style, ...) must not stop
    // work that needs no tokenizer: the error shows when one is needed.
    try {
      return from_file(p.string());
    } catch (const Error& e) {
      why_not = e.what();
      return nullptr;
    }
  }
  why_not = "no tokenizer.model, tokenizer.json, tokenizer.bin or tok" + std::to_string(vocab) +
            ".bin next to the model in " + model_dir;
  return nullptr;
}

// tokenizer_config.json may switch BOS off (add_bos_token: false).
void apply_tokenizer_config(const std::string& dir, Vocabulary& v) {
  const fs::path p = fs::path(dir) / "tokenizer_config.json";
  if (!fs::exists(p)) return;
  try {
    auto j = parse_json_text(slurp(p.string()), "[tokenizer] " + p.string());
    if (j.contains("add_bos_token") && j["add_bos_token"].is_boolean()) v.add_bos = j["add_bos_token"].get<bool>();
  } catch (const nlohmann::json::exception& ex) {
    fail("[tokenizer] ", p.string(), ": not valid JSON: ", ex.what());
  }
}

// What load_tensor checks of a tensor decoded later (Model::embedding/lm_head): its shape, and that
// every value is finite, row chunk by row chunk, so that a corrupt file still fails at open without
// the whole matrix being held in fp32 (entry_to_float then throws naming the first bad value).
void check_plain_entry(const TensorStore& store, const std::string& name, const std::vector<int64_t>& shape,
                       const std::string& path) {
  const TensorEntry* e = store.find(name);
  SR_CHECK(e, "[model] ", path, ": tensor '", name, "' is missing");
  SR_CHECK(e->shape == shape, "[model] ", path, ": tensor ", e->describe(), " should have shape ", at::IntArrayRef(shape));
  const at::Tensor t = at::from_blob(const_cast<uint8_t*>(e->data), at::IntArrayRef(e->shape), scalar_type_of(e->dtype));
  const int64_t step = std::max<int64_t>(1, (16LL << 20) / std::max<int64_t>(1, shape[1]));
  for (int64_t r = 0; r < shape[0]; r += step)
    if (!at::isfinite(t.narrow(0, r, std::min(step, shape[0] - r))).all().item<bool>()) entry_to_float(*e);
  store.release(*e);
}

}  // namespace

std::unique_ptr<Model> Model::open(const std::string& path, const OpenOptions& opt) {
  SR_CHECK(fs::exists(path), "[model] ", path, " does not exist");
  std::unique_ptr<Model> m(new Model());
  m->path_ = path;
  if (!fs::is_directory(path)) check_regular_file(path, "[model]");  // a FIFO or device would block
  std::string dir;
  if (fs::is_directory(path)) {
    const fs::path cfg = fs::path(path) / "config.json";
    SR_CHECK(fs::exists(cfg), "[model] ", path, " is a folder without config.json (expected a Hugging Face model folder)");
    const std::string config_text = slurp(cfg.string());
    m->config_ = parse_hf_config(config_text, cfg.string());
    m->block_descs_ = describe_blocks(m->config_);
    m->store_ = read_safetensors_folder(path);
    m->format_ = "safetensors";
    if (auto qc = parse_quant_config(parse_json_text(config_text, cfg.string()), cfg.string())) {
      std::vector<LinearShape> shapes;
      for (const LinearInfo& li : m->linears()) shapes.push_back({li.name, li.out, li.in});
      m->packed_ = std::make_shared<PackedWeights>(m->store_, std::move(*qc), shapes);
    }
    dir = path;
  } else if (fs::path(path).extension() == ".gguf" || starts_with_gguf(path)) {
    m->init_gguf(path);
    dir = fs::path(path).parent_path().string();
  } else {
    SR_CHECK(fs::path(path).extension() != ".safetensors", "[model] ", path,
             ": pass the Hugging Face folder (with config.json), not the .safetensors file");
    m->config_ = config_from_llama2c(read_llama2c(path, m->store_), path);
    m->format_ = "llama2c";
    m->qk_interleaved_ = true;
    dir = fs::path(path).parent_path().string();
  }
  if (dir.empty()) dir = ".";
  // A GGUF file carries its own tokenizer (or says why it cannot be used); only
  // --tokenizer replaces it. Other formats look beside the model.
  if (m->format_ != "gguf" || !opt.tokenizer_path.empty()) {
    m->tokenizer_ = find_tokenizer(opt.tokenizer_path, dir, m->config_.vocab, m->tokenizer_error_);
    if (m->tokenizer_ && m->format_ == "safetensors") {
      Vocabulary v = m->tokenizer_->vocabulary();
      apply_tokenizer_config(dir, v);
      m->tokenizer_ = std::make_unique<Tokenizer>(std::move(v));
    }
  }
  if (m->tokenizer_)
    SR_CHECK(m->tokenizer_->vocab_size() <= m->config_.vocab, "[model] ", path, ": tokenizer ",
             m->tokenizer_->vocabulary().source, " has ", m->tokenizer_->vocab_size(),
             " tokens but the model's vocabulary is ", m->config_.vocab);
  m->load_resident();
  return m;
}

const Tokenizer& Model::tokenizer() const {
  SR_CHECK(tokenizer_, "[model] ", path_, ": ", tokenizer_error_, "; pass a tokenizer file as tokenizer_path");
  return *tokenizer_;
}

std::string Model::stored_name(const std::string& hf) const {
  return format_ == "gguf" ? gguf_tensor_name(hf) : hf;
}

at::Tensor Model::load_tensor(const std::string& hf, const std::vector<int64_t>& shape) const {
  if (packed_ && packed_->packed(hf)) {
    at::Tensor t = packed_->dequantize(hf);
    SR_CHECK(t.sizes() == at::IntArrayRef(shape), "[model] ", path_, ": packed ", hf, " decodes to ", t.sizes(),
             ", expected ", at::IntArrayRef(shape));
    return t;
  }
  const std::string name = stored_name(hf);
  const TensorEntry* e = store_.find(name);
  SR_CHECK(e, "[model] ", path_, ": tensor '", name, "' is missing");
  SR_CHECK(e->shape == shape, "[model] ", path_, ": tensor ", e->describe(), " should have shape ",
           at::IntArrayRef(shape));
  at::Tensor t = entry_to_float(*e);
  store_.release(*e);
  return t;
}

std::pair<std::string, int64_t> Model::stored_linear(const LinearDesc& l, int64_t b) const {
  if (format_ != "gguf") return {block_prefix(b) + l.module + ".weight", -1};
  return {"blk." + std::to_string(b) + "." + l.gguf + ".weight", l.expert};
}

// A GGUF expert is a slice of its projection's stacked tensor, decoded once per block (`stacked`).
at::Tensor Model::load_linear(const LinearDesc& l, int64_t b, std::map<std::string, at::Tensor>& stacked) const {
  const auto [name, expert] = stored_linear(l, b);
  if (expert < 0) return load_tensor(name, {l.out, l.in});
  auto it = stacked.find(name);
  if (it == stacked.end()) it = stacked.emplace(name, load_tensor(name, {config_.moe.n_experts, l.out, l.in})).first;
  return it->second[expert].clone();
}

void Model::load_resident() {
  const ModelConfig& c = config_;
  block_descs_ = describe_blocks(c);
  // Every stored tensor must be one the model uses: extras mean a different architecture.
  std::vector<std::string> expected = {"model.embed_tokens.weight", "model.norm.weight"};
  if (!c.tie_embeddings) expected.push_back("lm_head.weight");
  for (int64_t i = 0; i < c.n_layers; ++i) {
    const std::string pre = block_prefix(i);
    const BlockDesc& d = block_descs_[i];
    for (const NormDesc& n : d.norms)
      if (n.present) expected.push_back(pre + n.module + ".weight");
    for (const LinearDesc& l : d.linears) {
      const auto [name, expert] = stored_linear(l, i);
      if (expert <= 0) expected.push_back(name);  // a stacked tensor once
      if (l.bias) expected.push_back(pre + l.module + ".bias");
    }
  }
  std::set<std::string> wanted;
  for (auto& n : expected)
    if (!packed_ || !packed_->packed(n)) wanted.insert(stored_name(n));
  if (packed_)
    for (const std::string& n : packed_->stored_tensors()) wanted.insert(n);
  for (const std::string& n : store_.names()) {
    if (wanted.count(n) || n.find("rotary_emb.inv_freq") != std::string::npos) continue;
    if (format_ == "gguf" && n == "rope_freqs.weight") continue;  // read into config_.rope_scaling
    if (c.tie_embeddings && n == stored_name("lm_head.weight")) continue;  // some exports keep a tied copy
    fail("[model] ", path_, ": unexpected tensor ", store_.get(n).describe(), " for a ", c.arch_name,
         " model (different architecture or a quantized export this reader does not know?)");
  }
  for (auto& n : wanted) SR_CHECK(store_.has(n), "[model] ", path_, ": tensor '", n, "' is missing");

  lazy_resident_ = format_ == "safetensors" && !packed_;
  for (const char* n : {"model.embed_tokens.weight", "lm_head.weight"}) {
    if (n == std::string("lm_head.weight") && c.tie_embeddings) continue;
    const TensorEntry& e = store_.get(stored_name(n));
    lazy_resident_ = lazy_resident_ && (e.dtype == "F32" || e.dtype == "F16" || e.dtype == "BF16");
  }
  if (lazy_resident_) {
    check_plain_entry(store_, stored_name("model.embed_tokens.weight"), {c.vocab, c.hidden}, path_);
    if (!c.tie_embeddings) check_plain_entry(store_, stored_name("lm_head.weight"), {c.vocab, c.hidden}, path_);
  } else {
    embedding_ = load_tensor("model.embed_tokens.weight", {c.vocab, c.hidden});
    lm_head_ = c.tie_embeddings ? embedding_ : load_tensor("lm_head.weight", {c.vocab, c.hidden});
  }
  final_norm_ = load_tensor("model.norm.weight", {c.hidden});
  if (store_.size() > 0) config_.dtype = store_.get(stored_name("model.norm.weight")).dtype;
  // Validate every block's shapes up front so errors surface at open, not mid-run.
  for (int64_t i = 0; i < c.n_layers; ++i) {
    for (const LinearDesc& l : block_descs_[i].linears) {
      const auto [name, expert] = stored_linear(l, i);
      if (packed_ && packed_->packed(name)) continue;  // checked by PackedWeights
      const auto& e = store_.get(stored_name(name));
      const std::vector<int64_t> shape =
          expert < 0 ? std::vector<int64_t>{l.out, l.in} : std::vector<int64_t>{config_.moe.n_experts, l.out, l.in};
      SR_CHECK(e.shape == shape, "[model] ", path_, ": tensor ", e.describe(), " should have shape ",
               at::IntArrayRef(shape));
    }
  }
}

BlockWeights Model::load_block(int64_t i, const std::vector<int>& skip) const {
  const ModelConfig& c = config_;
  SR_CHECK(i >= 0 && i < c.n_layers, "[model] block ", i, " out of range [0, ", c.n_layers, ")");
  const BlockDesc& d = block_descs_[i];
  const std::string pre = block_prefix(i);
  BlockWeights w;
  w.window = c.window_of(i);
  w.dense_mlp = c.is_moe() && !c.sparse_block(i);
  w.w.resize(d.linears.size());
  w.b.resize(d.linears.size());
  for (const NormDesc& n : d.norms)
    w.norm.push_back(n.present ? load_tensor(pre + n.module + ".weight", {n.size}) : at::Tensor());
  std::map<std::string, at::Tensor> stacked;
  for (size_t j = 0; j < d.linears.size(); ++j) {
    const LinearDesc& l = d.linears[j];
    if (std::find(skip.begin(), skip.end(), int(j)) == skip.end()) w.w[j] = load_linear(l, i, stacked);
    if (l.bias) w.b[j] = load_tensor(pre + l.module + ".bias", {l.out});
    if (!qk_interleaved_ || l.rope_heads == 0) continue;
    if (w.w[j].defined()) w.w[j] = uninterleave_qk_rows(w.w[j], l.rope_heads);
    if (w.b[j].defined()) w.b[j] = uninterleave_qk_rows(w.b[j], l.rope_heads);
  }
  return w;
}

const RopeTables& Model::rope(int64_t n) const {
  if (!rope_.cos.defined() || rope_.cos.size(0) < n)
    rope_ = make_rope_tables(config_, std::max<int64_t>(n, config_.max_position));
  return rope_;
}

const at::Tensor& Model::embedding() const {
  if (!embedding_.defined()) embedding_ = load_tensor("model.embed_tokens.weight", {config_.vocab, config_.hidden});
  return embedding_;
}

const at::Tensor& Model::lm_head() const {
  if (config_.tie_embeddings) return embedding();
  if (!lm_head_.defined()) lm_head_ = load_tensor("lm_head.weight", {config_.vocab, config_.hidden});
  return lm_head_;
}

at::Tensor Model::embed(const at::Tensor& tokens) const {
  SR_CHECK(tokens.numel() == 0 || (tokens.min().item<int64_t>() >= 0 && tokens.max().item<int64_t>() < config_.vocab),
           "[model] token ids must lie in [0, ", config_.vocab, ")");
  if (embedding_.defined() || !lazy_resident_) return at::embedding(embedding(), tokens);
  // The rows the tokens use, gathered from the mapped file (the same values at::embedding takes
  // from the decoded matrix: the conversion to fp32 is exact); their pages leave the RSS after.
  const TensorEntry& e = store_.get(stored_name("model.embed_tokens.weight"));
  const at::Tensor stored = at::from_blob(const_cast<uint8_t*>(e.data), at::IntArrayRef(e.shape), scalar_type_of(e.dtype));
  at::Tensor rows = stored.index_select(0, tokens.reshape({-1}).to(at::kLong)).to(at::kFloat);
  store_.release(e);
  std::vector<int64_t> shape = tokens.sizes().vec();
  shape.push_back(config_.hidden);
  return rows.reshape(shape);
}

at::Tensor Model::logits(const at::Tensor& hidden) const {
  return at::linear(rms_norm(hidden, final_norm_, config_.rms_eps), lm_head());
}

at::Tensor Model::run_block(int64_t i, const BlockWeights& w, const at::Tensor& hidden,
                            const at::Tensor& positions, const RopeTables& rope) const {
  return sr::block_forward(config_, w, hidden, positions, rope, input_hooks_ ? input_hooks_(i) : InputHook());
}

at::Tensor Model::block_forward(int64_t i, const at::Tensor& hidden, const at::Tensor& positions) const {
  return run_block(i, load_block(i), hidden, positions, rope(hidden.size(1)));
}

at::Tensor Model::forward(const at::Tensor& tokens) const {
  const int64_t T = tokens.size(1);
  auto positions = at::arange(T, at::kLong);
  auto h = embed(tokens);
  for (int64_t i = 0; i < config_.n_layers; ++i) h = block_forward(i, h, positions);
  return logits(h);
}

std::vector<LinearInfo> Model::linears() const {
  const ModelConfig& c = config_;
  std::vector<LinearInfo> out;
  for (int64_t i = 0; i < c.n_layers; ++i)
    for (size_t j = 0; j < block_descs_[i].linears.size(); ++j) {
      const LinearDesc& l = block_descs_[i].linears[j];
      out.push_back({block_prefix(i) + l.module, i, int(j), l.out, l.in});
    }
  out.push_back({"lm_head", -1, -1, c.vocab, c.hidden});
  return out;
}

int64_t Model::parameter_count() const {
  int64_t n = 0;
  std::set<std::string> packed;  // a packed linear counts as its [out, in] weight
  if (packed_) {
    for (const std::string& t : packed_->stored_tensors()) packed.insert(t);
    for (const LinearInfo& l : linears())
      if (packed_->packed(l.name + ".weight")) n += l.out * l.in;
  }
  for (const std::string& name : store_.names()) {
    if (packed.count(name)) continue;
    if (name.find("rotary_emb") != std::string::npos || name == "rope_freqs.weight") continue;
    if (config_.tie_embeddings && name == stored_name("lm_head.weight")) continue;
    n += store_.get(name).numel();
  }
  return n;
}

}  // namespace sr
