// Opening GGUF files of the architectures in model/gguf_arch.h (llama, qwen2, qwen3, qwen2moe,
// qwen3moe): <arch>.* metadata -> ModelConfig, tokenizer.ggml.* -> Tokenizer, tensors -> the
// TensorStore (left in the map).
//
// Metadata read (llama.cpp c392e50, llama-model.cpp / llama-hparams; "<arch>." prefix):
//   block_count, embedding_length, feed_forward_length, attention.head_count   required
//   attention.head_count_kv (= head_count), attention.key_length (= D / H),
//   attention.value_length (= key_length), rope.dimension_count (= key_length),
//   context_length (2048), rope.freq_base (10000), attention.layer_norm_rms_epsilon
//   (required), vocab_size (checked against token_embd), rope.scaling.type +
//   rope.scaling.factor (or the older rope.scale_linear; "yarn" with
//   rope.scaling.original_context_length), expert_count (0: dense; else
//   expert_used_count is required). The experts' width: "llama" (Mixtral) feed_forward_length;
//   qwen2moe / qwen3moe expert_feed_forward_length (absent: feed_forward_length /
//   expert_used_count, as llama.cpp), the shared expert's expert_shared_feed_forward_length
//   (absent: feed_forward_length).
// Tensors: llama.cpp names (model/gguf_names.h; experts stacked per projection, [E, out, in]);
// "llama" q/k rows (and biases) in the interleaved RoPE order (model/rope_layout.h), un-permuted
// when a block is loaded, the Qwen architectures' in the HF order; q/k/v biases as the
// architecture has them ("llama": if blk.0.attn_q.bias exists); rope_freqs.weight, if present,
// becomes RopeScaling::freq_factors.
#include <algorithm>
#include <memory>

#include "common/error.h"
#include "common/limits.h"
#include "common/strings.h"
#include "io/gguf_reader.h"
#include "model/gguf_arch.h"
#include "model/model.h"
#include "tokenizer/gguf_vocab.h"

namespace sr {
namespace {

// An unsigned integer metadata value of any GGUF integer type (llama.cpp writes u32,
// other writers sometimes i32 or u64). Throws naming the key if negative.
int64_t int_value(const GgufReader& r, const std::string& key) {
  const GgufValue& v = r.value(key);
  SR_CHECK(!v.is_array(), "[model] ", r.path(), ": metadata ", key, " is ", v.type_name(), ", expected an integer");
  const std::string ctx = r.path() + ": " + key;
  int64_t out = 0;
  switch (v.elem_type()) {
    case GgufValueType::kUint8: out = v.as<uint8_t>(ctx); break;
    case GgufValueType::kInt8: out = v.as<int8_t>(ctx); break;
    case GgufValueType::kUint16: out = v.as<uint16_t>(ctx); break;
    case GgufValueType::kInt16: out = v.as<int16_t>(ctx); break;
    case GgufValueType::kUint32: out = v.as<uint32_t>(ctx); break;
    case GgufValueType::kInt32: out = v.as<int32_t>(ctx); break;
    case GgufValueType::kUint64: out = int64_t(std::min<uint64_t>(v.as<uint64_t>(ctx), uint64_t(INT64_MAX))); break;
    case GgufValueType::kInt64: out = v.as<int64_t>(ctx); break;
    default: fail("[model] ", r.path(), ": metadata ", key, " is ", v.type_name(), ", expected an integer");
  }
  SR_CHECK(out >= 0, "[model] ", r.path(), ": metadata ", key, " is negative (", out, ")");
  return out;
}

int64_t int_or(const GgufReader& r, const std::string& key, int64_t fallback) {
  return r.has(key) ? int_value(r, key) : fallback;
}

int64_t int_required(const GgufReader& r, const std::string& key) {
  SR_CHECK(r.has(key), "[model] ", r.path(), ": metadata ", key, " is missing");
  return int_value(r, key);
}

// f32 (what llama.cpp writes) or f64.
double float_or(const GgufReader& r, const std::string& key, double fallback) {
  if (!r.has(key)) return fallback;
  const GgufValue& v = r.value(key);
  if (!v.is_array() && v.elem_type() == GgufValueType::kFloat64) return v.as<double>(r.path() + ": " + key);
  return v.as<float>(r.path() + ": " + key);
}

// The architecture's row (model/gguf_arch.h); its name prefixes the hyper-parameter keys.
struct Keys {
  const GgufArch& arch;
  std::string operator()(const std::string& rest) const { return std::string(arch.name) + "." + rest; }
};

const GgufArch& check_architecture(const GgufReader& r) {
  SR_CHECK(r.has("general.architecture"), "[model] ", r.path(), ": metadata general.architecture is missing");
  const std::string name = r.get<std::string>("general.architecture");
  const std::string count_key = name + ".expert_count";
  const bool experts = r.has(count_key) && int_value(r, count_key) > 0;
  const GgufArch* arch = find_gguf_arch(name, experts);
  if (!arch && find_gguf_arch(name, !experts))
    fail("[model] ", r.path(), ": GGUF architecture '", name, "' ", experts ? "with" : "without", " experts (",
         count_key, ") is not supported");
  SR_CHECK(arch, "[model] ", r.path(), ": GGUF architecture '", name, "' is not supported (supported: ",
           gguf_arch_names(), ")");
  return *arch;
}

// Routing as llama.cpp runs the architecture (gguf_arch.h); the experts' widths as it reads them.
MoeConfig read_moe(const GgufReader& r, const Keys& key, int64_t feed_forward_length) {
  MoeConfig m;
  if (!key.arch.experts) return m;
  m.n_experts = int_required(r, key("expert_count"));
  m.n_used = int_required(r, key("expert_used_count"));
  m.norm_topk_prob = key.arch.norm_topk_prob;
  m.expert_intermediate = feed_forward_length;
  if (key.arch.expert_keys == GgufExpertKeys::Qwen && m.n_used > 0)
    m.expert_intermediate = int_or(r, key("expert_feed_forward_length"), feed_forward_length / m.n_used);
  if (key.arch.shared_expert) m.shared_intermediate = int_or(r, key("expert_shared_feed_forward_length"), feed_forward_length);
  return m;
}

bool has_qkv_bias(const GgufReader& r, GgufBias b) {
  if (b == GgufBias::Optional) return r.find_tensor("blk.0.attn_q.bias") != nullptr;
  return b == GgufBias::Required;
}

RopeScaling read_rope_scaling(const GgufReader& r, const Keys& key) {
  RopeScaling s;
  if (r.has(key("rope.scaling.type"))) s.type = r.get<std::string>(key("rope.scaling.type"));
  if (s.type == "linear") {
    s.factor = float_or(r, key("rope.scaling.factor"), 1.0);
  } else if (s.type == "none" && r.has(key("rope.scale_linear"))) {  // older files
    s.type = "linear";
    s.factor = float_or(r, key("rope.scale_linear"), 1.0);
  }
  if (s.type == "yarn") {  // llama.cpp's defaults for what the converter leaves out (model/llama.cpp)
    s.factor = float_or(r, key("rope.scaling.factor"), 1.0);
    const std::string orig = key("rope.scaling.original_context_length");
    SR_CHECK(r.has(orig), "[model] ", r.path(), ": yarn rope scaling without ", orig);
    s.original_max_position = int_or(r, orig, 0);
    SR_CHECK(s.factor >= 1 && s.original_max_position > 0 && s.original_max_position <= limits::kMaxContext, "[model] ",
             r.path(), ": yarn rope scaling needs factor >= 1 and 0 < ", orig, " <= ", limits::kMaxContext);
    for (const auto& [rest, value] : {std::pair("rope.scaling.yarn_beta_fast", 32.0),
                                      std::pair("rope.scaling.yarn_beta_slow", 1.0),
                                      std::pair("rope.scaling.yarn_ext_factor", 1.0),
                                      std::pair("rope.scaling.attn_factor", 1.0)})
      SR_CHECK(!r.has(key(rest)) || float_or(r, key(rest), value) == value, "[model] ", r.path(), ": ", key(rest),
               " other than ", value, " is not supported");
  }
  SR_CHECK(s.type == "none" || s.type == "linear" || s.type == "yarn", "[model] ", r.path(), ": ",
           key("rope.scaling.type"), " '", s.type,
           "' is not supported (none, linear, yarn; llama3 scaling comes as rope_freqs.weight)");
  SR_CHECK(s.factor > 0, "[model] ", r.path(), ": rope scaling factor must be positive, got ", s.factor);
  if (const GgufTensorInfo* f = r.find_tensor("rope_freqs.weight")) s.freq_factors = r.decode_f32(*f);
  return s;
}

ModelConfig read_config(const GgufReader& r, const GgufArch& arch) {
  const Keys key{arch};
  ModelConfig c;
  c.arch = arch.family;
  c.arch_name = arch.name;
  c.qkv_bias = has_qkv_bias(r, arch.qkv_bias);
  c.qk_norm = arch.qk_norm;
  c.n_layers = int_required(r, key("block_count"));
  c.hidden = int_required(r, key("embedding_length"));
  c.intermediate = int_required(r, key("feed_forward_length"));
  c.moe = read_moe(r, key, c.intermediate);
  SR_CHECK(!r.has(key("attention.head_count_kv")) || !r.value(key("attention.head_count_kv")).is_array(),
           "[model] ", r.path(), ": per-layer head counts (", key("attention.head_count_kv"),
           " is an array) are not supported");
  c.n_heads = int_required(r, key("attention.head_count"));
  c.n_kv_heads = int_or(r, key("attention.head_count_kv"), c.n_heads);
  c.head_dim = int_or(r, key("attention.key_length"), c.n_heads > 0 ? c.hidden / c.n_heads : 0);
  const int64_t value_dim = int_or(r, key("attention.value_length"), c.head_dim);
  const int64_t rope_dim = int_or(r, key("rope.dimension_count"), c.head_dim);
  SR_CHECK(value_dim == c.head_dim && rope_dim == c.head_dim, "[model] ", r.path(), ": key_length ", c.head_dim,
           ", value_length ", value_dim, " and rope.dimension_count ", rope_dim,
           " differ (partial RoPE or distinct value heads are not supported)");
  c.max_position = int_or(r, key("context_length"), 2048);
  c.rope_theta = float_or(r, key("rope.freq_base"), 10000.0);
  SR_CHECK(r.has(key("attention.layer_norm_rms_epsilon")), "[model] ", r.path(), ": metadata ",
           key("attention.layer_norm_rms_epsilon"), " is missing");
  c.rms_eps = float_or(r, key("attention.layer_norm_rms_epsilon"), 1e-5);
  c.rope_scaling = read_rope_scaling(r, key);
  const size_t n_factors = c.rope_scaling.freq_factors.size();
  SR_CHECK(n_factors == 0 || int64_t(n_factors) == c.head_dim / 2, "[model] ", r.path(), ": rope_freqs.weight has ",
           n_factors, " elements, expected head_dim / 2 = ", c.head_dim / 2);
  const GgufTensorInfo& embd = r.tensor("token_embd.weight");
  SR_CHECK(embd.shape.size() == 2, "[model] ", r.path(), ": token_embd.weight should have 2 dimensions, has ",
           embd.shape.size());
  c.vocab = embd.shape[0];
  SR_CHECK(int_or(r, key("vocab_size"), c.vocab) == c.vocab, "[model] ", r.path(), ": ", key("vocab_size"), " = ",
           int_value(r, key("vocab_size")), " but token_embd.weight has ", c.vocab, " rows");
  c.tie_embeddings = r.find_tensor("output.weight") == nullptr;
  validate_config(c, r.path());
  return c;
}

// Storage dtype name of a ggml type in TensorEntry's spelling ("F32", "Q4_K").
std::string entry_dtype(GgmlType t) { return ascii_upper(ggml_type_name(t)); }

// Every tensor into `store`, pointing into a map the store owns (the reader's own map
// is released with the reader).
void add_tensors(const GgufReader& r, TensorStore& store) {
  const MappedFile* f = store.own(std::make_shared<MappedFile>(r.path()));
  for (const GgufTensorInfo& t : r.tensors()) {
    SR_CHECK(ggml_type_traits(t.type).supported(), "[model] ", r.path(), ": tensor ", t.name, " has type ",
             ggml_type_name(t.type), ", which signround cannot decode (supported: ", ggml_supported_type_names(), ")");
    TensorEntry e;
    e.name = t.name;
    e.shape = t.shape;
    e.dtype = entry_dtype(t.type);
    e.data = f->data() + r.data_offset() + t.offset;
    e.nbytes = t.nbytes;
    e.file = f;
    store.add(std::move(e));
  }
}

}  // namespace

void Model::init_gguf(const std::string& path) {
  GgufReader r(path);
  const GgufArch& arch = check_architecture(r);
  config_ = read_config(r, arch);
  add_tensors(r, store_);
  tokenizer_ = read_gguf_tokenizer(r, tokenizer_error_);
  if (tokenizer_) {
    config_.bos_id = tokenizer_->bos_id();
    config_.eos_id = tokenizer_->eos_id();
  }
  format_ = "gguf";
  qk_interleaved_ = arch.interleaved_rope;
}

}  // namespace sr
