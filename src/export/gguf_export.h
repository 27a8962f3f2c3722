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
#include <functional>
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
  // Progress lines on stderr (common/progress.h) while write_float_rows encodes a tensor.
  bool progress = false;
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

  // Rows [r0, r0 + n) of a matrix, [n, in], fp32 or any float dtype (e.g. decoded from a mapped
  // file chunk by chunk: model/matrix_rows.h).
  using RowSource = std::function<at::Tensor(int64_t r0, int64_t n)>;
  // write_float of a whole 2-D tensor [rows, in] given `chunk_rows` rows at a time (0: about 64 MiB
  // of fp32 a chunk), for matrices too large to hold in fp32 (a 151936 x 4096 embedding is 2.5 GB):
  // the same bytes as write_float (each row is encoded on its own), holding one chunk's fp32 rows.
  // When the tensor is the next the file takes (the top-level tensors, given first), each chunk's
  // encoding goes straight to the file; otherwise it is held, encoded, until its turn, as
  // write_float holds it. Throws as write_float does, and if `rows` returns another shape.
  void write_float_rows(const std::string& name, const RowSource& rows, const at::Tensor& imatrix = {},
                        int64_t chunk_rows = 0);

  // Tensor data written so far and the file's declared tensor data, and the tensors written: for
  // progress lines.
  uint64_t data_written() const { return out_->data_written(); }
  uint64_t data_bytes() const { return out_->data_bytes(); }
  size_t tensors_written() const { return next_; }

  // Ready ggml bytes of the plan's type (e.g. SignRound's frozen-parameter blocks):
  // nbytes = rows * ggml_row_bytes(type, in), rows in the HF order (q/k rows are
  // permuted here like fp32 rows). Throws on a size mismatch or a tensor given twice.
  void write_encoded(const std::string& name, const void* data, uint64_t nbytes, int64_t expert = -1);

  // Throws naming the first tensor not given; otherwise completes and renames the file.
  void finish();

 private:
  size_t index_of(const std::string& name) const;
  // The checks write_float makes before encoding (a tensor of `shape` given; its imatrix); returns
  // the imatrix as contiguous fp32, or an undefined tensor.
  at::Tensor check_float(size_t index, const std::vector<int64_t>& shape, const at::IntArrayRef given,
                         const at::Tensor& imatrix) const;
  std::vector<uint8_t> to_gguf_rows(size_t index, std::vector<uint8_t> bytes) const;
  void submit(size_t index, std::vector<uint8_t> bytes);
  void submit_pending();  // writes the held tensors whose turn has come
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
  bool progress_ = false;
};

}  // namespace sr
