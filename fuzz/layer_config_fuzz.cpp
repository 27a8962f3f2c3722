// A --layer_config file as make_layer_plan reads it (quant/layer_config.h
// read_layer_config: JSON, the {"layers": …} record form, QuantScheme::from_json per entry,
// keys as exact layer names or safe patterns), then the lookup of every layer of a 2-block
// Llama model plus lm_head (find_layer_override: the safe-regex search).
#include "fuzz_util.h"
#include "quant/layer_config.h"

namespace {

const std::vector<std::string>& layer_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (int b = 0; b < 2; ++b)
      for (const char* m : {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                            "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"})
        n.push_back("model.layers." + std::to_string(b) + "." + m);
    n.push_back("lm_head");
    return n;
  }();
  return names;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sr::fuzz::expect_ok_or_error([&] {
    const std::string path = sr::fuzz::write_file("layer_config.json", sr::fuzz::as_view(data, size));
    std::vector<sr::LayerOverride> ovs = sr::read_layer_config(path, layer_names());
    for (const std::string& n : layer_names())
      if (sr::LayerOverride* o = sr::find_layer_override(ovs, n)) o->scheme.validate();
  });
  return 0;
}
