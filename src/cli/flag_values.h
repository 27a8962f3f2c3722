// Parsers of flag spellings: the text a user passes to --options, --allocator, --bit_cost,
// --fuse_groups, --measure_encoder and --protocol, turned into the library's typed values.
// They live here, not in the library, because the spellings are the CLI's; their errors name
// the flag. (Value syntaxes the library itself reads, such as a scheme string, stay there:
// parse_scheme in quant/formats/scheme.h.)
#pragma once
#include <string>
#include <vector>

#include "alloc/allocation.h"
#include "alloc/kld_probe.h"
#include "eval/perplexity.h"

namespace sr::cli {

// Splits --options on the commas that are not inside {...} (a JSON scheme may contain commas)
// and parses each entry with parse_scheme (a preset name, JSON, or key=value fields joined by
// ';' instead of ','). GGUF types ("gguf:q4_k") go through parse_scheme too. Equal schemes are
// removed (the first spelling kept, as auto-round does). Throws sr::Error naming the entry.
std::vector<AllocOption> parse_alloc_options(const std::string& text);

FusePolicy parse_fuse_policy(const std::string& s);        // --fuse_groups: "auto" | "on" | "off"
BitCost parse_bit_cost(const std::string& s);              // --bit_cost: "auto" | "spec" | "file"
// --allocator: "deltaloss" | "uniform" | "head8" | "tail8" | "random" (also "head", "tail").
AllocatorKind parse_allocator(const std::string& s);
ProbeEncoder parse_probe_encoder(const std::string& s);    // --measure_encoder: "rtn" | "opt_rtn" (or "opt-rtn")
Protocol parse_protocol(const std::string& s);             // --protocol: "llamacpp" (or "llama.cpp") | "windows"

}  // namespace sr::cli
