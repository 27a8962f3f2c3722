// A Llama-family model opened from disk: configuration, tokenizer and weights,
// with the weights left in their memory-mapped files and materialised one block
// at a time. Resident while walking the blocks: the final norm and whichever block the
// caller holds; the embedding and lm_head too when stored quantized, else only once
// embedding() / lm_head() / logits() are first called (embed() gathers its rows straight
// from the file), so that quantizing a model never holds its two largest matrices in fp32
// while it tunes.
//
// Formats (detected from the path):
//   folder with config.json       Hugging Face: model.safetensors or sharded + index; F32/F16/BF16
//   file starting with "GGUF"     GGUF v2/v3, the architectures of model/gguf_arch.h (llama, qwen*)
//   other file                    llama2.c legacy checkpoint (.bin)
// A folder whose config.json has a quantization_config (auto_round, GPTQ) has its packed
// linears dequantized to fp32 as blocks are loaded (model/packed_weights.h).
// Whatever the source, weights come out in the Hugging Face layout and names
// (q/k rows of llama2.c and GGUF files are un-permuted from the interleaved RoPE
// layout), as fp32 tensors.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/torch.h"
#include "io/tensor_store.h"
#include "model/config.h"
#include "model/llama.h"
#include "tokenizer/tokenizer.h"

namespace sr {

class PackedWeights;  // model/packed_weights.h

struct OpenOptions {
  std::string tokenizer_path;  // overrides the tokenizer found beside the model
};

// One weight matrix of the model as stored: for inspect and quantization planning.
struct LinearInfo {
  std::string name;   // HF module name, e.g. "model.layers.3.mlp.down_proj"
  int64_t block;      // -1 for lm_head / embeddings
  int linear;         // index in the block description; -1 outside the blocks
  int64_t out, in;
};

class Model {
 public:
  // Opens and validates `path` (see above). Throws sr::Error naming the file and
  // tensor on anything missing, mis-shaped or unsupported.
  static std::unique_ptr<Model> open(const std::string& path, const OpenOptions& opt = {});

  const ModelConfig& config() const { return config_; }
  const std::string& path() const { return path_; }
  const std::string& format() const { return format_; }  // "safetensors", "gguf", "llama2c"
  const TensorStore& tensors() const { return store_; }

  bool has_tokenizer() const { return tokenizer_ != nullptr; }
  // Throws explaining why no tokenizer was found (and how to pass one).
  const Tokenizer& tokenizer() const;
  // Why no tokenizer was found ("" when there is one), without the hint.
  const std::string& tokenizer_error() const { return tokenizer_error_; }

  // What block `block` holds (model/block_desc.h), sizes from config(); throws out of range.
  const BlockDesc& block_desc(int64_t block) const { return block_descs_[block]; }
  const BlockDescs& block_descs() const { return block_descs_; }

  // Block i's weights as fresh fp32 tensors (the caller may modify them). Linears in `skip`
  // (indices in block_desc(i)) are left undefined (their biases are still loaded): exporters that
  // replace them need not decode them.
  BlockWeights load_block(int64_t i, const std::vector<int>& skip = {}) const;
  const at::Tensor& embedding() const;  // [V, D], decoded on first use and kept
  const at::Tensor& lm_head() const;    // [V, D] (same storage if tied), decoded on first use and kept
  const at::Tensor& final_norm() const { return final_norm_; }  // [D]
  // RoPE tables covering at least n positions.
  const RopeTables& rope(int64_t n) const;

  at::Tensor embed(const at::Tensor& tokens) const;        // [B, T] int64 -> [B, T, D]
  at::Tensor logits(const at::Tensor& hidden) const;       // [.., D] -> [.., V] (final norm + lm_head)
  // The entry point: block i on `hidden` [B, T, D] at `positions` [T].
  at::Tensor block_forward(int64_t i, const at::Tensor& hidden, const at::Tensor& positions) const;
  // Block i with the given weights (e.g. from load_block), applying this model's
  // input hooks (activation quantization of a quantized model), if any.
  at::Tensor run_block(int64_t i, const BlockWeights& w, const at::Tensor& hidden, const at::Tensor& positions,
                       const RopeTables& rope) const;
  // Installs per-block input hooks (activation quantization recorded with a
  // quantized model); nullptr removes them.
  void set_input_hooks(std::function<InputHook(int64_t block)> hooks) { input_hooks_ = std::move(hooks); }

  // Whole model: tokens [B, T] -> logits [B, T, V], loading each block once.
  at::Tensor forward(const at::Tensor& tokens) const;

  std::vector<LinearInfo> linears() const;  // block linears in order, then lm_head
  int64_t parameter_count() const;          // all weights, counting a tied matrix once

  // Name under which a canonical (HF) weight is stored in this model's files.
  std::string stored_name(const std::string& hf_name) const;
  // The packed linears of a quantized folder (auto_round / GPTQ), or nullptr.
  const PackedWeights* packed_weights() const { return packed_.get(); }

 private:
  Model() = default;
  at::Tensor load_tensor(const std::string& hf_name, const std::vector<int64_t>& shape) const;
  // Where linear l of block b is stored: a tensor name, and for a GGUF expert its slice of the
  // stacked tensor (-1: the whole tensor).
  std::pair<std::string, int64_t> stored_linear(const LinearDesc& l, int64_t b) const;
  at::Tensor load_linear(const LinearDesc& l, int64_t b, std::map<std::string, at::Tensor>& stacked) const;
  void load_resident();
  void init_gguf(const std::string& path);  // model_gguf.cpp

  ModelConfig config_;
  BlockDescs block_descs_;
  std::string path_, format_;
  TensorStore store_;
  bool qk_interleaved_ = false;   // q/k rows stored in the adjacent-pairs RoPE layout
  std::unique_ptr<Tokenizer> tokenizer_;
  std::string tokenizer_error_;   // why tokenizer_ is null
  // Decoded on first use when `lazy_resident_` (a plain F32/F16/BF16 safetensors entry).
  mutable at::Tensor embedding_, lm_head_;
  at::Tensor final_norm_;
  bool lazy_resident_ = false;
  mutable RopeTables rope_;
  std::function<InputHook(int64_t)> input_hooks_;
  std::shared_ptr<const PackedWeights> packed_;  // quantized folders only
};

}  // namespace sr
