// Streaming writer of GGUF model files that llama.cpp loads, for the architectures of
// model/gguf_arch.h.
//
// What it writes (details in docs/gguf.md): GGUF v3, 32-byte alignment; the metadata
// of export/gguf_metadata.h; the tensors of a plan (export/gguf_plan.h: llama.cpp's
// names, llama-quantize's order, one ggml type each). Weights are given in the Hugging
// Face layout; for "llama" the q and k projections' rows (and biases) are permuted into the
// interleaved RoPE order exactly as convert_hf_to_gguf.py does (model/rope_layout.h), so
// llama.cpp computes the same model; the Qwen architectures keep the HF order (NEOX RoPE).
// 1-D tensors (norms, biases) are stored F32.
//
// Use:
//   auto plan = plan_gguf_types(config, GgufMix::Q4_K_M);
//   GgufModelWriter w(path, config, vocab, GgufMix::Q4_K_M, plan);
//   w.write_float("model.embed_tokens.weight", emb);         // quantized with the plan's type
//   w.write_float("model.layers.0.mlp.down_proj.weight", W, imatrix);   // imatrix-weighted
//   w.write_encoded("model.layers.0.self_attn.q_proj.weight", bytes, n); // SignRound's blocks
//   ... every tensor once, any order ...
//   w.finish();
// Each tensor may be given once, by HF or GGUF name, in any order. Data reach the file
// in the plan's order: a tensor given before its turn is held (encoded) in memory until
// the tensors before it arrive, so giving the top-level tensors (output, output_norm,
// token_embd) first and then the blocks in order keeps memory at one tensor.
// rope_freqs.weight (Llama-3 scaling) is computed and written by the writer itself.
// A stacked expert tensor [E, out, in] is given expert by expert (`expert` = 0 .. E-1, each
// [out, in], any order, types as planned for the whole tensor); it is written once all arrived.
//
// Output goes to a temporary file renamed into place by finish() (io/gguf_writer.h);
// a writer destroyed before finish() leaves nothing behind. Not thread-safe; the rows
// of one tensor are encoded in parallel (deterministically).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/torch.h"
#include "export/gguf_metadata.h"
#include "export/gguf_plan.h"
#include "io/gguf_writer.h"
#include "model/config.h"
#include "tokenizer/tokenizer.h"

namespace sr {

struct GgufExportOptions {
  // general.name when the source names none (a Hugging Face folder and a GGUF file name the model:
  // export/gguf_metadata.h); empty: the output file name without extension.
  std::string model_name;
  uint32_t alignment = kGgufDefaultAlignment;
  // Entries appended after the model metadata (e.g. general.quantized_by and the run's
  // settings); a key the model metadata already has is replaced in place.
  std::vector<std::pair<std::string, GgufValue>> extra_metadata;
  // What the model's source adds (export/gguf_metadata.h: gguf_source_of); the default writes
  // key_length and the vocabulary's own special ids.
  GgufSource source;
};

// The size in bytes of the file a GgufModelWriter with these arguments writes (same metadata,
// same plan), computed without writing anything (a dry run's total).
uint64_t gguf_model_file_size(const std::string& path, const ModelConfig& c, const Vocabulary& vocab, GgufMix mix,
                              const std::vector<GgufTensorPlan>& plan, const GgufExportOptions& opt = {});

class GgufModelWriter {
 public:
  // Declares the metadata and every tensor of `plan`, which must list exactly the
  // tensors of gguf_tensor_list(c) (names and shapes; throws otherwise). `mix` sets
  // general.file_type. Throws naming `path` on any problem.
  GgufModelWriter(const std::string& path, const ModelConfig& c, const Vocabulary& vocab, GgufMix mix,
                  std::vector<GgufTensorPlan> plan, const GgufExportOptions& opt = {});
  GgufModelWriter(const GgufModelWriter&) = delete;
  GgufModelWriter& operator=(const GgufModelWriter&) = delete;

  const std::vector<GgufTensorPlan>& plan() const { return plan_; }
  // The plan entry of a tensor given by HF or GGUF name; throws if there is none.
  const GgufTensorPlan& planned(const std::string& name) const;

  // Encodes w (fp32 or any float dtype; the plan's shape, HF layout) with the plan's
  // type: llama.cpp's ref encoder, or its imatrix encoder when imatrix [in] is given
  // (weight matrices only). Throws on a shape mismatch, a tensor given twice, or a
  // non-finite value where the type stores it.
  // expert >= 0: expert `expert`'s slice [out, in] of the stacked tensor `name`.
  void write_float(const std::string& name, const at::Tensor& w, const at::Tensor& imatrix = {}, int64_t expert = -1);

  // Ready ggml bytes of the plan's type (e.g. SignRound's frozen-parameter blocks):
  // nbytes = rows * ggml_row_bytes(type, in), rows in the HF order (q/k rows are
  // permuted here like fp32 rows). Throws on a size mismatch or a tensor given twice.
  void write_encoded(const std::string& name, const void* data, uint64_t nbytes, int64_t expert = -1);

  // Throws naming the first tensor not given; otherwise completes and renames the file.
  void finish();

 private:
  size_t index_of(const std::string& name) const;
  std::vector<uint8_t> to_gguf_rows(size_t index, std::vector<uint8_t> bytes) const;
  void submit(size_t index, std::vector<uint8_t> bytes);
  // Records tensor i's bytes (all of it, or expert e's slice); submits it once complete.
  void give(size_t index, int64_t expert, std::vector<uint8_t> bytes);

  ModelConfig config_;
  std::vector<GgufTensorPlan> plan_;
  std::unordered_map<std::string, size_t> index_;  // GGUF name -> position in plan_
  std::vector<bool> given_;
  std::map<size_t, std::vector<uint8_t>> pending_;  // given before their turn
  std::map<size_t, std::vector<std::vector<uint8_t>>> experts_;  // stacked tensors being given, per expert
  size_t next_ = 0;                                 // next plan_ position to write
  std::unique_ptr<GgufWriter> out_;
};

}  // namespace sr
