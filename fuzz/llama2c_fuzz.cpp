// A llama2.c checkpoint as Model::open reads it (io/llama2c.h read_llama2c: legacy and
// versioned headers, then the tensor table over the file), followed by the same
// ModelConfig fill-in and validate_config the model loader does (model/model.cpp), and a
// touch of every tensor's first and last byte.
#include "fuzz_util.h"
#include "io/llama2c.h"
#include "model/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sr::fuzz::expect_ok_or_error([&] {
    sr::TensorStore store;
    const std::string path = sr::fuzz::write_file("model.bin", sr::fuzz::as_view(data, size));
    (void)sr::is_llama2c_versioned(path);
    const sr::Llama2cHeader h = sr::read_llama2c(path, store);
    volatile uint8_t sink = 0;
    for (const std::string& name : store.names()) {
      const sr::TensorEntry& e = store.get(name);
      if (e.nbytes > 0) sink = sink + e.data[0] + e.data[e.nbytes - 1];
    }
    (void)sr::config_from_llama2c(h, path);  // as Model::open does
  });
  return 0;
}
