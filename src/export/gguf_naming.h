// The general.* naming of a GGUF file as llama.cpp's convert_hf_to_gguf.py derives it (gguf-py's
// metadata.py Metadata heuristics and utility.py size_label), so that a file we write from a
// Hugging Face folder names the model as the converter's file of that folder does.
//
// A model id ("Mistral/Mixtral-8x7B-Instruct-v0.1", a config's _name_or_path or a folder name)
// splits at '-' into parts, each annotated (gguf_model_id_parts):
//   version     (v|iter)?<digits>(.<digits>)*                        "v0.1", "3", "Iter3"
//   type        i?q<digit>(_\w)* | b?fp?(16|32)  (upper-cased)       "Q4_K", "bf16"
//   size label  not first: ((A|<digits>x)?<digits>([._]<digits>)?[KMBT]<digit>? | small | mini |
//               medium | large | x?xl), normalized ("7b1" -> "7.1B", "1_6b" -> "1.6B"); with a known
//               parameter count, a number label far from it (off by more than 7/8 of the count, and
//               not followed by a matching "A<n>" active-parameter label) is a finetune instead
//               (a context length: "4k" in Phi-3-mini-4k), lower-cased
//   finetune    not first: chat | instruct | vision | lora
// (all case-insensitive). Word labels ("mini") are dropped when a number label is present. The
// leading run of unannotated parts starting with a letter, and versions among them, is the
// basename (a trailing version leaves it again); later unannotated parts are finetune. Each field
// is its parts joined with '-' (size labels deduplicated); with no size label, finetune or
// version the basename is dropped too ("Mixtral" alone is too ambiguous).
// Characters are compared as ASCII (the converter's Python also treats other letters as letters).
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace sr {

struct GgufModelIdParts {
  std::string full_name;                  // the id without its organization ("Mixtral-8x7B-Instruct-v0.1")
  std::optional<std::string> organization;  // before the first '/' ("Mistral"; none when it starts with '.')
  std::optional<std::string> basename, finetune, version, size_label;
};

// Metadata.get_model_id_components(id, total_params): an id with a space is only a name; total
// params 0: unknown (no size label is reclassified), negative: a LoRA adapter.
GgufModelIdParts gguf_model_id_parts(const std::string& id, int64_t total_params = 0);

// Metadata.id_to_title: '-' to ' ', and each all-lower-case word capitalized as Python's
// str.title does ("hermes-2-pro-llama-3-8b-DPO" -> "Hermes 2 Pro Llama 3 8b DPO"), except
// versions ("v0.1") and words starting with a digit.
std::string gguf_id_to_title(const std::string& id);

// utility.py size_label: "<n><K|M|B|T>" with at least two significant digits before the point
// ("3.7M", "494M", "1.5B"), or "<experts>x<per-expert size>" for a MoE model (expert_count > 0,
// the size of the shared parameters plus one expert's).
std::string gguf_size_label(int64_t total_params, int64_t shared_params, int64_t expert_params, int64_t expert_count);

}  // namespace sr
