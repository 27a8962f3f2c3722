// Which layers are quantized, and with which scheme (spec §0.1, §2.7).
//
// Candidates: every Linear inside the decoder blocks; lm_head only with
// quant_lm_head (refused for tied embeddings, as auto-round does). A MoE router (and the
// shared expert's gate) starts 16-bit (LinearDesc::keep_16bit); an override names it to change that. A per-layer
// override file maps layer names or regular expressions to schemes:
//   {"model.layers.0.mlp.down_proj": "W8A16",           <- exact name (wins)
//    "mlp\\.down_proj": {"bits": 4, "group_size": 64},   <- regex (std::regex_search), first match
//    "model.layers.3.self_attn.q_proj": "BF16"}          <- keep in 16 bit
// Patterns are searched anywhere in the name and must use the safe subset of
// common/safe_regex.h (literals, '.', escapes \. \d \w \s, classes [...], groups
// (a|b), quantifiers * + ?, anchors ^ $), matched in linear time; anything else
// ({m,n}, back-references, look-around) is refused naming the key.
// Values are anything QuantScheme::from_json accepts. This is the same file the
// mixed-precision search writes. Layers whose shape does not fit their scheme
// stay 16-bit with the reason recorded.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model/model.h"
#include "quant/formats/scheme.h"

namespace sr {

// Where a layer's scheme came from. Only Default layers are free for a mixed-precision
// allocation to choose; the others are fixed (alloc/allocation.h).
enum class SchemeOrigin {
  Default,       // PlanOptions::scheme
  LayerDefault,  // PlanOptions::layer_defaults (e.g. a GGUF mix's rule)
  Override,      // PlanOptions::layer_schemes or an override-file entry
  Kept,          // the scheme does not fit the layer's shape: kept in 16 bit (§0.1)
};

struct LayerChoice {
  std::string name;   // HF module name, e.g. "model.layers.2.mlp.up_proj" or "lm_head"
  int64_t block = -1;  // -1 for lm_head
  int linear = -1;     // index in the block description; -1 for lm_head
  int64_t out = 0, in = 0;
  QuantScheme scheme;  // what the layer gets (bits 16 = kept as is)
  std::string source;  // for people: "default", "override: <key>", "kept: <reason>", a default's text
  SchemeOrigin origin = SchemeOrigin::Default;
  bool quantized() const { return scheme.quantized(); }
};

struct LayerPlan {
  BlockDescs blocks;                // what each block holds (the model's block_descs())
  std::vector<LayerChoice> layers;  // block linears in order, then lm_head if candidate

  const LayerChoice* find(const std::string& name) const;
  const LayerChoice* find(int64_t block, int linear) const;
  // {"layers": {name: scheme JSON}, ...} — the record written next to quantized models,
  // readable back as an override file.
  nlohmann::ordered_json to_json() const;
  int64_t quantized_count() const;
  // Σ layer_bits / Σ weights over the quantized candidates (spec §4.3).
  double average_bits(bool ignore_scale_zp_bits = false) const;
};

// A per-layer default scheme and why (LayerChoice::source), e.g. a GGUF mix's rule.
struct LayerDefault {
  QuantScheme scheme;
  std::string source;
};

struct PlanOptions {
  QuantScheme scheme;            // the default for every candidate
  std::string override_file;     // optional JSON (see above)
  bool quant_lm_head = false;
  // Defaults replacing `scheme` for the layers they name (HF module names), e.g. the per-layer
  // types of a GGUF mix (export/gguf_target.h); override_file entries still apply on top.
  std::map<std::string, LayerDefault> layer_defaults;
  // Schemes for the layers they name exactly (HF module names), as exact override-file entries
  // would give them, before override_file: an allocation handed over in memory.
  std::map<std::string, QuantScheme> layer_schemes;
};

// Throws sr::Error naming the override file and key on malformed entries, and
// naming the key (or a layer_schemes name) when it matches no layer.
LayerPlan make_layer_plan(const Model& model, const PlanOptions& opt);

}  // namespace sr
