// A Hugging Face config.json as Model::open reads it (model/model.cpp): parse_hf_config
// (fields, architectures, rope_scaling, limits and validate_config), describe_block, then
// parse_quant_config on the same text (quantization_config: auto-round / GPTQ, block names,
// extra_config keys as safe patterns) and the per-layer spec of each linear of the first
// blocks and lm_head, as the packed-weight reader asks for them.
#include "fuzz_util.h"
#include "common/json_parse.h"
#include "model/block_desc.h"
#include "model/config.h"
#include "model/quant_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(sr::fuzz::as_view(data, size));
  const std::string path = "fuzz/config.json";
  sr::fuzz::expect_ok_or_error([&] {
    const sr::ModelConfig c = sr::parse_hf_config(text, path);
    const sr::BlockDesc desc = sr::describe_block(c);
    std::optional<sr::QuantConfig> qc = sr::parse_quant_config(sr::parse_json_text(text, path), path);
    if (!qc) return;
    std::vector<std::string> names{"lm_head"};
    for (int64_t b = 0; b < std::min<int64_t>(c.n_layers, 2); ++b)
      for (int i = 0; i < int(desc.linears.size()); ++i) names.push_back(sr::linear_name(desc, b, i));
    for (const std::string& n : names) (void)qc->layer(n);
  });
  return 0;
}
