// GGUF as a quantization target: `signround quantize --format gguf:<mix>` (docs/gguf.md,
// "Quantizing to GGUF").
//
//   planning  every block linear gets the scheme of the ggml type llama.cpp's mix gives its
//             tensor (plan_gguf_types: gguf:q4_k, gguf:q6_k for q4_k_m's use_more_bits
//             layers, ...); the per-layer override file applies on top (it may name
//             "gguf:q4_k", "BF16", ...).
//   tuning    the layers are quantized by the dispatcher (quant/qdq.h, quant/gguf_qdq.h) into
//             ggml rows, saved in the resumable state (Encoded::ggml).
//   export    the file's plan is the mix's with every planned layer's type as an override, so
//             the file stores exactly the tuned rows (GgufModelWriter::write_encoded), block by
//             block. Tensors outside the blocks follow the mix: token_embd with llama.cpp's ref
//             encoder (llama.cpp has no imatrix for it); output.weight with its imatrix encoder
//             and the calibration imatrix of lm_head's input when the run had data (as
//             llama-imatrix --process-output would collect), else the ref encoder; a tuned
//             lm_head (--quant_lm_head) is written as tuned.
//   output    `out` ending in ".gguf" is the file itself; anything else is a folder receiving
//             <model-name>-<MIX>.gguf (e.g. tinystories-llama-4m-Q4_K_M.gguf) and
//             signround_run.json (the run record).
//   metadata  llama.cpp's model metadata (gguf_metadata.h) plus general.quantized_by =
//             "signround" and signround.recipe = "<method> iters=.. nsamples=.. seqlen=..
//             seed=.. dataset=<file name>" (the fields the method uses; llama.cpp ignores
//             unknown keys).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "export/export_job.h"
#include "export/gguf_plan.h"
#include "quant/layer_plan.h"

namespace sr {

// True for "gguf:<anything>" (case-insensitive prefix).
bool is_gguf_format(const std::string& format);
// The mixes a "gguf:<mix>" format may name: the quantized ones (q2_k ... q8_0).
std::vector<GgufMix> gguf_target_mixes();
// "gguf:q4_k_m" -> Q4_K_M. Throws sr::Error listing gguf_target_mixes() otherwise.
GgufMix gguf_format_mix(const std::string& format);

// The scheme a mix defines when --scheme is not given: its base type (gguf:q4_k for q4_k_m).
QuantScheme gguf_mix_scheme(GgufMix mix);

// make_layer_plan defaults: every block linear of `c` -> the scheme of the type plan_gguf_types
// gives its tensor (has_imatrix: whether calibration data will give an imatrix; it only moves
// q4_0/q5_0's ffn_down rule), source "gguf <mix>" or "gguf <mix>: <rule/fallback>". lm_head
// gets the output rule's type too (used only with --quant_lm_head).
std::map<std::string, LayerDefault> gguf_mix_layer_defaults(const ModelConfig& c, GgufMix mix, bool has_imatrix);

// Throws sr::Error naming the layer and `format` if a planned layer's scheme has no GGUF type
// (INT/MX/NV/FP8 schemes, e.g. from an override file). Called before tuning.
void check_gguf_layer_plan(const LayerPlan& plan, const std::string& format);

// The file's tensor plan: plan_gguf_types(c, mix) with every layer of `plan` (block linears,
// lm_head when it is a candidate) overriding its tensor's type by ggml_type_of(its scheme).
std::vector<GgufTensorPlan> gguf_plan_for_layers(const ModelConfig& c, GgufMix mix, const LayerPlan& plan,
                                                 bool has_imatrix, bool log);

// The .gguf file written for output path `out` (see "output" above).
std::string gguf_output_file(const Model& model, GgufMix mix, const std::string& out);

// Writes job as a GGUF file of `mix` at `out`; the quantized layers' rows go in verbatim.
// Throws sr::Error naming the layer when a quantized layer's scheme or bytes do not match the
// file's plan, and leaves no output behind on any error.
void export_gguf_target(const ExportJob& job, GgufMix mix, const std::string& out);

}  // namespace sr
