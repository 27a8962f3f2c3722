// The quantization dispatcher later stages use, keyed by a QuantScheme: tunable parameters of a
// weight, differentiable weight and activation qdq, encode/decode, the imatrix-weighted
// initial-scale searches of SignRoundV2 (§3.3) and whole-layer RTN / optimized RTN (§2.8).
// Shape letters as in quant/formats/group.h (O, I, G, L, N, C). Each function dispatches through
// the scheme's data type row (quant/data_types.h); there is no other switch on the data type.
//
// Typical tuning loop (stage tune/):
//   auto p = make_weight_params(W, scheme, TuneMode::V2, imatrix);  // search runs here (v2)
//   for each step: clamp_params_(p); auto r = qdq_weight(W, scheme, p); loss(r.w_hat).backward();
//                  sign-SGD on p.t.v / p.t.alpha / p.t.beta (whichever are defined)
//   at the end:    encode_weight(W, scheme, best) -> what export packs.
//
// GGUF block types (scheme.is_gguf(), quant/gguf_qdq.h) use frozen per-row parameters instead
// of scales computed in the qdq (§3.6): make_weight_params searches them once (V2: llama.cpp's
// imatrix encoder with the given importance, i.e. mean x² per channel; V1 or no importance:
// its ref encoder) and only v is tunable; rtn / opt_rtn give llama.cpp's own bytes (ref /
// imatrix encoder). Encoded.ggml holds the rows.
#pragma once
#include <memory>

#include "quant/formats/group.h"
#include "quant/formats/int_quant.h"
#include "quant/formats/mxfp.h"
#include "quant/formats/nvfp.h"
#include "quant/formats/fp8.h"
#include "quant/gguf_qdq.h"
#include "quant/formats/scheme.h"

namespace sr {

// Which SignRound wrapper's parameters and clamp ranges to use (§1.7, §3.1).
enum class TuneMode : int { V1 = 0, V2 = 1 };

// The inclusive clamp range of α and β, applied in place before every qdq (§1.7).
struct ScaleRange {
  float lo = 0.0f, hi = 1.0f;
};

// The parameters of one quantized weight.
struct WeightQuantParams {
  Tunables t;               // v [N, L] (0), alpha [N] (1; v1 INT only), beta [N] (1),
                            // init_scale [N] (v2 int-sym/MX/NV: from the §3.3 search)
  at::Tensor global_scale;  // NV only: fp32 [1], this layer's 2688/amax; the caller may replace
                            // it by nvfp::fuse_global_scales over q/k/v or gate/up (§1.4)
  ScaleRange range;         // v1 [0, 1]; v2 [0, 2] (only for the v2 wrapper's schemes)
  std::shared_ptr<const gguf_qdq::Frozen> ggml;  // GGUF types: the frozen row parameters
                                                 // (null: llama.cpp's ref search on the fly)
};

// Family formats of a scheme's weight side. REQUIRES: s.data_type matches the family.
int_quant::Format int_format(const QuantScheme& s);
mxfp::Format mx_format(const QuantScheme& s);
nvfp::Format nv_format(const QuantScheme& s);
fp8::Format fp8_format(const QuantScheme& s);

// §3.1: v2 uses init-scale tuning (SignRoundOptimizedWrapperLinear) for sym schemes whose
// data_type is int, mx or nv, and the frozen-parameter wrapper (SignRoundDQWrapperLinear,
// §3.6) for GGUF types; everything else keeps the v1 wrapper even in v2 runs.
bool uses_v2_wrapper(const QuantScheme& s);
// Whether §3.3 has a search for this scheme (quantized int sym, MX, NV).
bool has_init_scale_search(const QuantScheme& s);

// Creates the parameters for w [O, I]: v zeros shaped like the grouped weight, beta ones,
// alpha ones for INT in the v1 wrapper; v, alpha, beta require grad (fp32, on w's device).
// In TuneMode::V2 with uses_v2_wrapper(s): no alpha, init_scale = search_init_scale(w, s,
// imatrix) (no zero handling, §3.2), range [0, 2]. NV: global_scale from w.
// GGUF types: v only (no alpha/beta, §3.6) and p.ggml frozen from llama.cpp's imatrix encoder
// with `imatrix` in V2 (its ref encoder in V1 or without one; types that require an importance
// matrix, GgmlTypeTraits::requires_importance, use `imatrix` in V1 too, and without one stop
// with llama.cpp's refusal); the caller passes llama.cpp's imatrix semantics (mean x² per input
// channel).
// REQUIRES: s.quantized(); imatrix [I] or undefined.
WeightQuantParams make_weight_params(const at::Tensor& w, const QuantScheme& s, TuneMode mode,
                                     const at::Tensor& imatrix = {});
// Clamps alpha and beta into p.range in place (no gradient recorded).
void clamp_params_(WeightQuantParams& p);

// Differentiable weight qdq: ŵ [O, I] with gradients to p.t.v / alpha / beta (fused CPU path
// when possible). Unquantized schemes return w as fp32 with no scale.
QdqResult qdq_weight(const at::Tensor& w, const QuantScheme& s, const WeightQuantParams& p = {});
// Codes and scales of qdq_weight (no gradient); decode_weight(encode_weight(w)) equals
// qdq_weight(w).w_hat bit for bit. REQUIRES: s.quantized().
Encoded encode_weight(const at::Tensor& w, const QuantScheme& s, const WeightQuantParams& p = {});
at::Tensor decode_weight(const Encoded& e, const QuantScheme& s);

// Calibrated state of a layer's input activations (static schemes; §1.6).
struct ActQuantState {
  at::Tensor act_max;        // running max |x| over calibration (FP8_STATIC, NVFP4 gs); scalar
  at::Tensor act_max_scale;  // tuned multiplier in [0, 1] of act_max (FP8 static); scalar
};

// Activation qdq for the input x [.., I] of a quantized linear (W4A4 / W8A8 / MX / NV):
// v = 0, nothing tuned except act_max_scale; gradients flow to x (and act_max_scale) through
// the straight-through estimators, including the path through the per-token / per-block
// scale. Fused CPU kernels for fp32 CPU inputs, the composed reference otherwise. Returns x unchanged when !s.act_quantized(); otherwise the
// result has x's dtype. Dynamic schemes ignore `st`; static FP8 requires st.act_max.
at::Tensor qdq_act(const at::Tensor& x, const QuantScheme& s, const ActQuantState& st = {});

// §3.3.4 (auto-round _imatrix_handle_zero), only when the importance contains an exact zero:
// a group row with more than L/2 zeros is replaced by |w| (bits <= 3) or
// |w| + sqrt(Σ_row w²/32); a row with 1..L/2 zeros gets them replaced by the mean of its
// non-zero entries. imatrix_g, wg: [N, L]. Returns a new tensor (or imatrix_g itself).
at::Tensor imatrix_handle_zero(const at::Tensor& imatrix_g, const at::Tensor& wg, int bits);

// §3.3 initial scale of w [O, I] for s, weighted by the per-input-channel imatrix [I]
// (undefined: ones; padding weighted 1e-5), after imatrix_handle_zero when handle_zero
// (opt-RTN does, v2 does not). Returns [N] fp32: the signed scale (int sym) or the amax
// multiplier (MX, NV). REQUIRES: has_init_scale_search(s).
at::Tensor search_init_scale(const at::Tensor& w, const QuantScheme& s,
                             const at::Tensor& imatrix = {}, bool handle_zero = false);

// Whole-layer round-to-nearest (§2.8): plain qdq with v = 0, α = β = 1 (RTN), or the §3.3
// search followed by plain rounding with the found init scale (optimized RTN; falls back to
// RTN for schemes without a search). NV uses global_scale when given, else this layer's.
// Policy stays with the caller: auto-round forces plain RTN for 8-bit INT (W8A16/W8A8) and
// for MoE experts, and divides the opt-RTN imatrix by the number of batch rows — a uniform
// factor, which changes no per-group argmin here.
// GGUF types: RTN is llama.cpp's ref encoder (llama-quantize without --imatrix), optimized RTN
// its imatrix encoder with `imatrix` (llama-quantize --imatrix; ref when undefined): encoded
// holds their bytes verbatim and w_hat their decoding.
struct RtnResult {
  at::Tensor w_hat;         // [O, I] fp32 fake-quant weight
  Encoded encoded;          // what export packs
  WeightQuantParams params; // the (untuned) parameters that reproduce w_hat
};
RtnResult rtn(const at::Tensor& w, const QuantScheme& s, const at::Tensor& global_scale = {});
RtnResult opt_rtn(const at::Tensor& w, const QuantScheme& s, const at::Tensor& imatrix,
                  const at::Tensor& global_scale = {});

}  // namespace sr
