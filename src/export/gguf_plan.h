// Which ggml type each tensor of a Llama model gets in a GGUF file: llama.cpp's
// per-tensor rules for its quantization mixes ("Q4_K_M" and friends), ported from
// llama-quantize (llama.cpp c392e50, src/llama-quant.cpp: llama_tensor_get_type,
// use_more_bits and the fallback for rows that are not a whole number of blocks) for
// the architectures of model/gguf_arch.h (the rules match tensor names, whatever the
// architecture), plus per-tensor overrides (mixed-precision search).
//
// The rules, for a model of n layers (i = layer index, n_gqa = heads / kv heads); a
// mix's base type applies where no rule says otherwise (table in docs/gguf.md):
//   output.weight (token_embd.weight if tied)  Q6_K (Q8_0 for q8_0; Q8_0 if the row is
//                                              not a multiple of the base block size)
//   attn_v   q2_k: Q4_K if n_gqa >= 4 else Q3_K;  q2_k_s: Q4_K if n_gqa >= 4;
//            q3_k_m: Q5_K for i < 2 else Q4_K;  q3_k_l: Q5_K;  q4_k_s: Q5_K for i < 4;
//            q4_k_m, q5_k_m: Q6_K where use_more_bits(i, n);
//            70B-shaped models (80 layers with GQA): Q3_K/Q4_K become Q5_K
//   ffn_down (also ffn_down_exps, ffn_down_shexp: llama.cpp matches "ffn_down")
//            q2_k: Q3_K;  q2_k_s: Q4_K for i < n/8;  q3_k_m: Q5_K for i < n/16 else
//            Q4_K;  q3_k_l: Q5_K;  q4_k_s: Q5_K for i < n/8;  q4_k_m, q5_k_m: Q6_K
//            where use_more_bits;  q4_0/q5_0 with an imatrix: Q4_1/Q5_1 for i < n/8
//   attn_output  q2_k: Q3_K;  q3_k_m: Q4_K;  q3_k_l: Q5_K
//   use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2
//   1-D tensors (norms, rope_freqs) stay F32; f16/bf16/f32 mixes apply no rules.
// User controls (llama-quantize's --tensor-type, --output-tensor-type, --token-embedding-type,
// --pure; GgufTypeControls), for the 2-D tensors llama-quantize quantizes (not the router):
//   token_embd.weight   the token_embd type if given; else (tied) the output type if given
//   output.weight       the output type if given
//   any other           the first tensor-type rule whose pattern is found in the GGUF name
//                       (in the order given), else the base type with `pure`, else the mix rule
// and then the fallback below, whatever decided (reported in `why`). A rule whose pattern finds
// no such tensor is an error naming the pattern.
// The i-quant mixes (base type in parentheses; "low" marks IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS,
// IQ2_S, IQ2_M, which llama.cpp handles in a branch of their own):
//   iq1_s (IQ1_S), iq1_m (IQ1_M), iq2_xxs (IQ2_XXS), iq2_xs (IQ2_XS), iq2_s (IQ2_XS),
//   iq2_m (IQ2_S), iq3_xxs (IQ3_XXS), iq3_xs (IQ3_S), iq3_s (IQ3_S), iq3_m (IQ3_S),
//   iq4_nl (IQ4_NL), iq4_xs (IQ4_XS)
//   output.weight  Q5_K for the low mixes and iq3_xxs, else Q6_K (Q8_0 if the row does not fit)
//   token_embd     Q2_K: iq2_xxs, iq2_xs, iq1_s, iq1_m;  IQ3_S: iq2_s, iq2_m, iq3_xxs
//   low mixes: attn_v Q4_K if n_gqa >= 4 or >= 4 experts, else IQ3_S (iq2_s, iq2_m) or Q2_K;
//            attn_k Q4_K with 8 experts; ffn_down IQ3_S (iq2_s, iq2_m) or Q2_K for i < n/8;
//            attn_output Q5_K with 8 experts, else IQ2_XXS (iq1_s, iq1_m), IQ3_S (iq2_s, iq2_m);
//            no 70B bump and no 8-expert Q8_0 for attn_k/attn_v
//   attn_v   iq3_xxs: Q4_K if n_gqa >= 4, else IQ3_S without an imatrix;  iq3_xs, iq3_s: Q4_K
//            if n_gqa >= 4;  iq3_m: Q4_K;  iq4_nl, iq4_xs: Q5_K if n_gqa >= 4
//   attn_k, attn_q  iq3_xs: IQ3_XXS;  iq3_xxs: IQ2_S
//   ffn_down iq3_xxs without an imatrix: Q4_K for i < n/8 else Q3_K;  iq3_m: Q4_K for i < n/8
//            (and where use_more_bits with 8 experts);  iq4_nl, iq4_xs without an imatrix:
//            Q5_K for i < n/8 (llama.cpp counts ffn_down tensors, not layers; the same for
//            dense models and stacked experts)
//   attn_output iq3_xxs: IQ3_S;  iq3_m: Q4_K;  with 8 experts Q5_K for every i-quant mix
//   ffn_gate, ffn_up (and their _exps/_shexp)  iq3_xs: IQ3_XXS for n/8 <= i < 7n/8
// Importance matrix: like llama-quantize, planning refuses the mixes iq1_s, iq1_m, iq2_s,
// iq2_xxs and iq2_xs without one, and any tensor typed IQ2_XXS, IQ2_XS, IQ2_S, IQ1_S or IQ1_M
// (IQ1_M: not token_embd or output) when there is none for it (token_embd never has one):
// llama.cpp's "the result will be garbage". (q2_k_s without one is only noted, as before.)
// Fallback (row length not a multiple of the chosen block size), logged on stderr:
//   Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, Q2_K/Q3_K -> Q4_0 (llama.cpp: IQ4_NL; Q4_0, the
//   same 4.5 bits per weight, predates our IQ4_NL and is kept so that the files of k-quant runs
//   do not change), the i-quants IQ1_S, IQ1_M,
//   IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_XS -> IQ4_NL (llama.cpp's), then F16
//   if the row is still not a multiple; a legacy type (Q4_0..Q8_0) or IQ4_NL has no fallback:
//   like llama.cpp, planning throws (use an override or a float mix for such models).
// Mixture of experts (Mixtral, Qwen2-MoE, Qwen3-MoE): the experts of one projection
// are one tensor [E, out, in] (ffn_{gate,up,down}_exps) typed as the dense projection would
// be (ffn_down_exps by the ffn_down rules, the layer read from its name as llama.cpp does);
// the router ffn_gate_inp [E, D] stays F32 (llama-quantize never quantizes it). For exactly 8
// experts llama.cpp adds: attn_k and attn_v Q8_0 in every mix; attn_output Q5_K in q2_k,
// q3_k_s, q3_k_m, q4_k_s and q4_k_m, the base type in the others (no dense attn_output rule).
// The Falcon branches do not apply.
//
// Thread-safety: pure functions.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/safe_regex.h"
#include "model/config.h"
#include "quant/formats/ggml_types.h"

namespace sr {

enum class GgufMix : uint8_t {
  Q2_K, Q2_K_S, Q3_K_S, Q3_K_M, Q3_K_L, Q4_0, Q4_1, Q4_K_S, Q4_K_M,
  Q5_0, Q5_1, Q5_K_S, Q5_K_M, Q6_K, Q8_0, F16, BF16, F32,
  // The i-quant mixes (llama.cpp's IQ* ftypes).
  IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ2_M, IQ3_XXS, IQ3_XS, IQ3_S, IQ3_M, IQ4_NL, IQ4_XS,
};

struct GgufMixInfo {
  GgufMix mix;
  const char* name;    // "q4_k_m"
  uint32_t file_type;  // llama_ftype, stored as general.file_type (15 for q4_k_m)
  GgmlType base;       // type of the weight matrices no rule changes
};

const std::vector<GgufMixInfo>& gguf_mixes();  // every mix, in enum order
const GgufMixInfo& gguf_mix_info(GgufMix mix);
// Case-insensitive ("Q4_K_M", "q4_k_m"). Throws sr::Error listing the mixes.
GgufMix parse_gguf_mix(const std::string& name);

// One tensor of the file, in llama-quantize's order.
struct GgufTensorPlan {
  std::string name;            // GGUF name ("blk.3.ffn_down.weight")
  std::vector<int64_t> shape;  // row-major, outermost first: [out, in] for weights, [E, out, in] for experts
  GgmlType type = GgmlType::F32;
  bool weight_matrix = false;  // 2-D: the mix applies (false: norms, rope_freqs stay F32)
  std::string why;             // "" if the mix's base type, else the rule, fallback or override
};

// One llama-quantize --tensor-type rule: tensors whose GGUF name contains a match of `pattern`
// (common/safe_regex.h syntax) get `type`.
struct GgufTensorTypeRule {
  SafeRegex pattern;
  GgmlType type = GgmlType::Q8_0;
};

// llama-quantize's per-tensor controls (rules in the header comment). Types must have a codec;
// a block linear's type must also be a quantization scheme (gguf_scheme: the block types, F16,
// BF16); otherwise planning throws naming the type and listing the valid ones.
// The types a weight matrix may take under the controls: F16, BF16 and the block types.
std::vector<GgmlType> gguf_matrix_types();

struct GgufTypeControls {
  std::vector<GgufTensorTypeRule> tensor_types;  // first match wins
  std::optional<GgmlType> output_type;           // output.weight (token_embd.weight if tied)
  std::optional<GgmlType> token_embd_type;       // token_embd.weight
  bool pure = false;                             // no mix rules: every matrix the base type
  bool any() const { return !tensor_types.empty() || output_type || token_embd_type || pure; }
};

struct GgufPlanOptions {
  bool has_imatrix = false;  // llama.cpp's q4_0/q5_0 ffn_down rule depends on it
  // Tensor name (GGUF "blk.0.attn_q.weight" or HF "model.layers.0.self_attn.q_proj.weight")
  // -> type, replacing the rule's choice; the row length must be a multiple of its
  // block size (throws otherwise), no fallback applies.
  std::map<std::string, GgmlType> overrides;
  bool log = true;  // report fallbacks and overrides on stderr
  GgufTypeControls controls;  // llama-quantize's per-tensor controls (the header comment)
  // The GGUF names a given imatrix file has entries for; unset: every weight matrix but
  // token_embd (the run's own calibration observes every linear and the output). llama-quantize
  // refuses a very-low-bit type for a tensor the file does not cover.
  std::optional<std::set<std::string>> imatrix_tensors;
};

// The tensors a GGUF of c's architecture (model/gguf_arch.h) holds for `c` (names and shapes;
// types F32), in llama-quantize's order: tensors outside the blocks first (output,
// output_norm, rope_freqs if c has freq factors or llama3 scaling, token_embd: by name), then
// block by block, each block's tensors by name (attn_k, attn_norm, attn_output, attn_q,
// attn_v, ffn_down, ffn_gate, ffn_norm, ffn_up; q/k/v biases attn_{q,k,v}.bias; Qwen3's
// attn_{q,k}_norm; a MoE block ffn_down_exps, ffn_gate_exps, ffn_gate_inp, ffn_up_exps and
// Qwen2-MoE's ffn_{gate,up,down}_shexp, ffn_gate_inp_shexp in their place). No output.weight
// if tied. A tensor is a weight matrix (the mix applies) when ggml sees 2 or more dimensions:
// the [1, D] shared-expert gate is 1-D to llama-quantize and stays F32.
// Throws for configurations the architecture cannot hold (Qwen3 with q/k/v biases, ...).
std::vector<GgufTensorPlan> gguf_tensor_list(const ModelConfig& c);

// gguf_tensor_list with each tensor's type chosen for `mix` (rules above). Throws
// sr::Error naming the tensor for an override naming no tensor, a type without a
// codec, or a row length no type of the fallback chain fits.
std::vector<GgufTensorPlan> plan_gguf_types(const ModelConfig& c, GgufMix mix, const GgufPlanOptions& opt = {});

// llama.cpp's use_more_bits(i_layer, n_layers) (exposed for tests).
bool gguf_use_more_bits(int64_t i_layer, int64_t n_layers);

}  // namespace sr
