// GGUF as a quantization target: `signround quantize --format gguf:<mix>` (docs/gguf.md,
// "Quantizing to GGUF").
//
//   planning  decided once, before tuning, in one GgufTarget: the mix's rules type every tensor
//             of the file (plan_gguf_target: gguf:q4_k, gguf:q6_k for q4_k_m's
//             use_more_bits layers, ...); the block linears take those types as their default
//             schemes (gguf_layer_defaults); the per-layer override file applies on top (it may
//             name "gguf:q4_k", "BF16", ...); the layer plan's final schemes then settle their
//             tensors' types in the target (settle_gguf_target). Nothing is re-planned later.
//   tuning    the layers are quantized by the dispatcher (quant/qdq.h, quant/gguf_qdq.h) into
//             ggml rows, saved in the resumable state (Encoded::ggml).
//   export    the target's tensors are the file's plan, written verbatim: the tuned rows go in
//             as they are (GgufModelWriter::write_encoded), block by block, each checked against
//             its planned type. Tensors outside the blocks follow the mix: token_embd with llama.cpp's ref
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
#include <set>
#include <string>
#include <vector>

#include "export/export_job.h"
#include "export/gguf_plan.h"
#include "quant/layer_plan.h"

namespace sr {

// True for "gguf:<anything>" (case-insensitive prefix).
bool is_gguf_format(const std::string& format);
// The quantized mixes a "gguf:<mix>" format may name (q2_k ... q8_0): tuned block by block.
std::vector<GgufMix> gguf_target_mixes();
// The unquantized mixes "gguf:f32", "gguf:f16", "gguf:bf16": the model converted as it is, no
// tuning (convert_hf_to_gguf.py --outtype; norms, biases and MoE routers stay F32).
std::vector<GgufMix> gguf_float_mixes();
bool is_gguf_float_mix(GgufMix mix);
// "gguf:q4_k_m" -> Q4_K_M. Throws sr::Error listing the target and float mixes otherwise.
GgufMix gguf_format_mix(const std::string& format);

// The scheme a mix defines when --scheme is not given: its base type (gguf:q4_k for q4_k_m).
QuantScheme gguf_mix_scheme(GgufMix mix);

// The GGUF file of a run, decided before tuning: every tensor with its ggml type.
struct GgufTarget {
  GgufMix mix = GgufMix::Q4_K_M;
  bool has_imatrix = false;             // the run collects an imatrix (every method but plain RTN)
  std::vector<GgufTensorPlan> tensors;  // the file's tensors in llama-quantize's order

  // The tensor of GGUF name `gguf_name`. Throws sr::Error if the file has none.
  GgufTensorPlan& tensor(const std::string& gguf_name);
  const GgufTensorPlan& tensor(const std::string& gguf_name) const;
};

// The mix's rules for `c` with the user's per-tensor controls (plan_gguf_types; has_imatrix only
// moves q4_0/q5_0's ffn_down rule).
// imatrix_tensors: the GGUF names a given imatrix file covers (GgufPlanOptions; null: all).
GgufTarget plan_gguf_target(const ModelConfig& c, GgufMix mix, bool has_imatrix, const GgufTypeControls& controls = {},
                            const std::set<std::string>* imatrix_tensors = nullptr);

// make_layer_plan defaults from the target: every block linear (and lm_head, used only with
// --quant_lm_head) -> the scheme of its tensor's type, source "gguf <mix>" or
// "gguf <mix>: <rule/fallback> <type>".
// Block linears are found through the blocks' descriptions (Model::block_descs()); a MoE router
// whose tensor stays F32 gets no default (its plan keeps it 16-bit; settle leaves it F32).
std::map<std::string, LayerDefault> gguf_layer_defaults(const GgufTarget& t, const BlockDescs& blocks);

// Gives every layer of `plan` (block linears, lm_head when it is a candidate) its scheme's ggml
// type in `t`, as an override of the mix's rule when they differ. Throws sr::Error naming the
// layer and `format` if a scheme has no GGUF type (INT/MX/NV/FP8, e.g. from an override file)
// or its rows are not whole blocks of it, and when the experts of one stacked tensor disagree.
// Called once, before tuning.
void settle_gguf_target(GgufTarget& t, const LayerPlan& plan, const std::string& format);

// The size in bytes of the file export_gguf_target writes for `t` with this recipe (the same
// metadata and tensors), computed without quantizing or writing anything.
uint64_t gguf_target_file_bytes(const Model& model, const GgufTarget& t, const TuningRecipe& recipe);

// The .gguf file written for output path `out` (see "output" above).
std::string gguf_output_file(const Model& model, GgufMix mix, const std::string& out);

// Writes job as the GGUF file job.gguf plans (its mix must be `mix`) at `out`; the quantized
// layers' rows go in verbatim. Throws sr::Error naming the layer when a quantized layer's scheme
// or bytes do not match the plan, or when the job carries no target of this mix; leaves no
// output behind on any error.
void export_gguf_target(const ExportJob& job, GgufMix mix, const std::string& out);

// Writes job.model unquantized as float mix `mix` at `out` (a .gguf file, or a folder receiving
// <model-name>-<MIX>.gguf and job.record as signround_run.json), the model's tokenizer as its
// vocabulary. Needs no plan or tuned layers. Leaves no output behind on any error.
void export_gguf_float(const ExportJob& job, GgufMix mix, const std::string& out);

}  // namespace sr
