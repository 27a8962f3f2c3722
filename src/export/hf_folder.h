// Pieces of a Hugging Face model folder shared by the safetensors export formats:
// the config, the tokenizer files, and the HF-named tensors of a block.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/torch.h"
#include "io/safetensors_stream.h"
#include "model/model.h"

namespace sr {

// The storage dtype for unquantized tensors: the source's F32/F16/BF16, else F32.
at::ScalarType source_dtype(const Model& model);

// config.json: the source's own for HF folders, else generated from ModelConfig
// (LlamaForCausalLM), with `extra` merged at the top level (quantization_config).
nlohmann::json hf_config(const Model& model, const nlohmann::json& extra = nlohmann::json::object());

// Copies the tokenizer files found beside the source (tokenizer.model, tokenizer.json,
// tokenizer_config.json, special_tokens_map.json, generation_config.json, or a
// llama2.c tokenizer.bin / tok<V>.bin) into `dir`.
void copy_tokenizer_files(const Model& model, const std::string& dir);

// Adds `t` (cast to `dtype`, made contiguous) to the writer under `name`.
void add_tensor(SafetensorsStreamWriter& out, const std::string& name, const at::Tensor& t, at::ScalarType dtype);
void add_tensor(SafetensorsStreamWriter& out, const std::string& name, const at::Tensor& t);  // dtype kept

// "model.embed_tokens.weight" or "lm_head.weight" of `model` cast to `dtype`, a chunk of rows at a
// time (model/matrix_rows.h; chunk_rows 0: about 64 MiB of fp32 a chunk): the same bytes as
// add_tensor of the whole matrix, without holding it whole (151936 x 4096 is 2.5 GB in fp32).
void add_vocab_matrix(SafetensorsStreamWriter& out, const Model& model, const std::string& name, at::ScalarType dtype,
                      int64_t chunk_rows = 0);

// The tensors of block b as `d` describes them, HF-named, cast to `dtype`: the first norm (the
// block's input norm), the linears not listed in `skip` (weight, then bias), the biases of the
// skipped ones, then the other norms present, in the description's order.
void add_block_tensors(SafetensorsStreamWriter& out, const BlockDesc& d, int64_t b, const BlockWeights& w,
                       at::ScalarType dtype, const std::vector<int>& skip = {});

// Writes `json` to dir/name.
void write_json(const std::string& dir, const std::string& name, const nlohmann::json& json);

}  // namespace sr
