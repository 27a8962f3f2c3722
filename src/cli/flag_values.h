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
#include "export/gguf_plan.h"

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

// llama-quantize's per-tensor controls. A --tensor_type entry is REGEX=TYPE (split at the last
// '='): the pattern in common/safe_regex.h's syntax, the type a ggml name (any case) that a weight
// matrix can take (the block types, f16, bf16). `source` names the flag or "<file>:<line>".
GgufTensorTypeRule parse_tensor_type(const std::string& text, const std::string& source);
// --tensor_type_file: one REGEX=TYPE per line; blank lines and lines starting with '#' skipped.
std::vector<GgufTensorTypeRule> read_tensor_type_file(const std::string& path);
// --output_tensor_type / --token_embedding_type: any type signround writes (ggml names, any case).
GgmlType parse_written_type(const std::string& flag, const std::string& name);
// --target_size: a byte count with an optional suffix K, M, G or T, also spelled KB/KiB ...
// (powers of 1024 all: "1.5G", "800M", "123456"). Throws naming the flag.
double parse_size(const std::string& flag, const std::string& text);

}  // namespace sr::cli
