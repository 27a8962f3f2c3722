// One .safetensors file as Model::open reads it (io/safetensors.h read_safetensors): the
// 8-byte header length, the JSON header (dtypes, shapes, offsets, __metadata__), and the
// data section's bounds. Every tensor it accepts is then touched at its first and last byte,
// so an entry pointing outside the mapping crashes here rather than in a later stage.
#include "fuzz_util.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sr::fuzz::expect_ok_or_error([&] {
    sr::TensorStore store;
    const std::string path = sr::fuzz::write_file("model.safetensors", sr::fuzz::as_view(data, size));
    std::map<std::string, std::string> meta = sr::read_safetensors(path, store);
    volatile uint8_t sink = 0;
    for (const std::string& name : store.names()) {
      const sr::TensorEntry& e = store.get(name);
      (void)e.describe();
      const int64_t n = e.numel();
      const int esize = sr::dtype_size(e.dtype);
      if (esize > 0 && uint64_t(n) * uint64_t(esize) != e.nbytes) std::abort();  // size disagrees with the shape
      if (e.nbytes > 0) sink = sink + e.data[0] + e.data[e.nbytes - 1];
    }
  });
  return 0;
}
