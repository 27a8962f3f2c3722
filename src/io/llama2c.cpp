#include "io/llama2c.h"

#include <cstring>
#include <fstream>
#include <memory>

#include "common/error.h"

namespace sr {
namespace {

int32_t read_i32(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Walks the checkpoint's tensors in file order, handing each (name, shape) to `emit`.
template <typename Emit>
void for_each_tensor(const Llama2cHeader& h, Emit emit) {
  const int64_t D = h.dim, F = h.hidden_dim, L = h.n_layers, V = h.vocab_size;
  const int64_t KV = int64_t(h.dim) * h.n_kv_heads / h.n_heads;
  const int64_t half_head = D / h.n_heads / 2;
  auto per_layer = [&](const char* fmt, std::vector<int64_t> shape) {
    for (int64_t l = 0; l < L; ++l) {
      char name[128];
      std::snprintf(name, sizeof name, fmt, int(l));
      emit(std::string(name), shape);
    }
  };
  emit("model.embed_tokens.weight", {V, D});
  per_layer("model.layers.%d.input_layernorm.weight", {D});
  per_layer("model.layers.%d.self_attn.q_proj.weight", {D, D});
  per_layer("model.layers.%d.self_attn.k_proj.weight", {KV, D});
  per_layer("model.layers.%d.self_attn.v_proj.weight", {KV, D});
  per_layer("model.layers.%d.self_attn.o_proj.weight", {D, D});
  per_layer("model.layers.%d.post_attention_layernorm.weight", {D});
  per_layer("model.layers.%d.mlp.gate_proj.weight", {F, D});
  per_layer("model.layers.%d.mlp.down_proj.weight", {D, F});
  per_layer("model.layers.%d.mlp.up_proj.weight", {F, D});
  emit("model.norm.weight", {D});
  emit("", {int64_t(h.seq_len), half_head});  // freq_cis_real (skipped)
  emit("", {int64_t(h.seq_len), half_head});  // freq_cis_imag (skipped)
  if (!h.shared_classifier) emit("lm_head.weight", {V, D});
}

}  // namespace

bool is_llama2c_versioned(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  // export.py writes struct.pack('I', 0x616b3432): the bytes "24ka" ("ak42" read as a
  // big-endian word). Checking "42ka" missed every real versioned file, which then failed
  // as an "implausible header" (found by fuzz/llama2c_fuzz's seed corpus).
  return in.gcount() == 4 && std::memcmp(magic, "24ka", 4) == 0;
}

Llama2cHeader read_llama2c(const std::string& path, TensorStore& store) {
  const MappedFile* f = store.own(std::make_shared<MappedFile>(path));
  const std::string where = "[llama2.c] " + path;
  SR_CHECK(!is_llama2c_versioned(path), where,
           ": versioned llama2.c export (magic 'ak42') is not supported; re-export with llama2.c's export.py --version 0");
  SR_CHECK(f->size() >= 28, where, ": too short for the 28-byte header (", f->size(), " bytes)");
  Llama2cHeader h{};
  int32_t* fields[] = {&h.dim, &h.hidden_dim, &h.n_layers, &h.n_heads, &h.n_kv_heads, &h.vocab_size, &h.seq_len};
  for (int i = 0; i < 7; ++i) *fields[i] = read_i32(f->data() + 4 * i);
  h.shared_classifier = h.vocab_size > 0;
  // (-INT32_MIN overflows: read it as 0, which the check below refuses)
  h.vocab_size = h.vocab_size == INT32_MIN ? 0 : h.vocab_size < 0 ? -h.vocab_size : h.vocab_size;
  const bool sane = h.dim > 0 && h.dim <= 65536 && h.hidden_dim > 0 && h.hidden_dim <= 1 << 20 &&
                    h.n_layers > 0 && h.n_layers <= 1024 && h.n_heads > 0 && h.n_kv_heads > 0 &&
                    h.vocab_size > 0 && h.vocab_size <= 1 << 22 && h.seq_len > 0 && h.seq_len <= 1 << 22;
  SR_CHECK(sane, where, ": implausible header (dim ", h.dim, ", hidden ", h.hidden_dim, ", layers ",
           h.n_layers, ", heads ", h.n_heads, "/", h.n_kv_heads, ", vocab ", h.vocab_size, ", seq ",
           h.seq_len, "); not a llama2.c checkpoint?");
  SR_CHECK(h.dim % h.n_heads == 0 && h.n_heads % h.n_kv_heads == 0 && (h.dim / h.n_heads) % 2 == 0,
           where, ": dim ", h.dim, " must split into ", h.n_heads, " even-sized heads and n_heads must be"
           " a multiple of n_kv_heads (", h.n_kv_heads, ")");
  uint64_t offset = 28;
  std::vector<std::pair<TensorEntry, uint64_t>> found;  // the named tensors and their file offsets
  for_each_tensor(h, [&](const std::string& name, const std::vector<int64_t>& shape) {
    uint64_t n = 4;
    for (int64_t d : shape) n *= uint64_t(d);
    if (!name.empty()) found.push_back({TensorEntry{name, shape, "F32", nullptr, n, f}, offset});
    offset += n;
  });
  SR_CHECK(offset == f->size(), where, ": file has ", f->size(), " bytes but its header implies ",
           offset, (offset > f->size() ? " (truncated?)" : " (trailing data; wrong format?)"));
  for (auto& [e, at] : found) {
    e.data = f->data() + at;
    store.add(std::move(e));
  }
  return h;
}

Llama2cVocab read_llama2c_tokenizer(const std::string& path, int32_t vocab_size) {
  MappedFile f(path);
  const std::string where = "[llama2.c tokenizer] " + path;
  SR_CHECK(f.size() >= 4, where, ": file too short");
  Llama2cVocab v;
  v.max_token_length = read_i32(f.data());
  SR_CHECK(v.max_token_length > 0 && v.max_token_length < 4096, where, ": implausible max_token_length ",
           v.max_token_length);
  uint64_t off = 4;
  for (int32_t i = 0; i < vocab_size; ++i) {
    SR_CHECK(f.contains(off, 8), where, ": truncated at token ", i, " of ", vocab_size);
    float score;
    std::memcpy(&score, f.data() + off, 4);
    const int32_t len = read_i32(f.data() + off + 4);
    off += 8;
    SR_CHECK(len >= 0 && len <= v.max_token_length && f.contains(off, uint64_t(len)), where,
             ": token ", i, " has length ", len, " (max ", v.max_token_length, ", or past end of file)");
    v.pieces.emplace_back(reinterpret_cast<const char*>(f.data() + off), size_t(len));
    v.scores.push_back(score);
    off += uint64_t(len);
  }
  return v;
}

}  // namespace sr
