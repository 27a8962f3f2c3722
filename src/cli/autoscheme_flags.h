// The AutoScheme flags shared by `signround autoscheme` and `signround quantize --avg_bits`.
#pragma once
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "alloc/autoscheme.h"
#include "tune/imatrix.h"
#include "cli/args.h"

namespace sr::cli {

// --avg_bits, --options, --allocator, --ignore_scale_zp_bits, --fuse_groups, --score_cache.
std::vector<FlagSpec> autoscheme_common_flags();

// The flag holding the average-bits target: "avg-bits", or "bits" (auto-round's newer AutoScheme
// spelling) when given with --options or --schemes and without --avg_bits; "" when neither.
std::string avg_bits_flag(const Args& a);

// Whether tuning (quantize) and DeltaLoss (autoscheme, quantize --avg_bits) run under bf16 amp
// (common/amp.h): --enable_amp, else not --disable_amp and the CPU multiplies bf16 natively.
bool amp_from_flags(const Args& a);

// AutoSchemeOptions from the flags. `prefix` names the calibration flags: "" in autoscheme
// (--nsamples, --seqlen, --batch_size), "autoscheme-" in quantize, whose own --nsamples etc.
// are the tuning's. `file_targets`, when not empty, replaces the flags' targets and counts file
// bits (--target_bpw / --target_size). Throws naming the flag on malformed values.
AutoSchemeOptions autoscheme_options_from_flags(const Args& a, const std::string& prefix,
                                                const std::vector<double>& file_targets = {});

// quantize --avg_bits B --options ...: runs the search (one target, one allocator) and returns
// the chosen allocation's scheme of every layer by name (PlanOptions::layer_schemes); `record`
// gets the allocation summary. REQUIRES: avg_bits_flag(a) is not empty, or file_target > 0: the
// average file bits per searched weight (--target_bpw / --target_size converted by the caller).
// `imatrix` (--imatrix, may be null): the opt-RTN measurements' importances instead of the
// search's own (--measure_encoder opt_rtn; RTN and DeltaLoss use none).
// `comm` (may be null): a data-parallel run's group; DeltaLoss scoring shares its batches among
// the ranks (AutoSchemeOptions::comm), every rank gets the same allocation.
std::map<std::string, QuantScheme> autoscheme_layer_schemes(const Model& model, const Args& a, nlohmann::json& record,
                                                             double file_target = 0,
                                                             const Importances* imatrix = nullptr,
                                                             const Comm* comm = nullptr);

}  // namespace sr::cli
