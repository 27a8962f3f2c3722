// The AutoScheme flags shared by `signround autoscheme` and `signround quantize --avg_bits`.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "alloc/autoscheme.h"
#include "cli/args.h"

namespace sr::cli {

// --avg_bits, --options, --allocator, --ignore_scale_zp_bits, --fuse_groups, --score_cache.
std::vector<FlagSpec> autoscheme_common_flags();

// AutoSchemeOptions from the flags. `prefix` names the calibration flags: "" in autoscheme
// (--nsamples, --seqlen, --batch_size), "autoscheme-" in quantize, whose own --nsamples etc.
// are the tuning's. Throws naming the flag on malformed values.
AutoSchemeOptions autoscheme_options_from_flags(const Args& a, const std::string& prefix);

// quantize --avg_bits B --options ...: runs the search (one target, one allocator) and returns
// the chosen allocation's scheme of every layer by name (PlanOptions::layer_schemes); `record`
// gets the allocation summary. REQUIRES: a.has("avg-bits").
std::map<std::string, QuantScheme> autoscheme_layer_schemes(const Model& model, const Args& a, nlohmann::json& record);

}  // namespace sr::cli
