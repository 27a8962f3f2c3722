// A model (HF folder, llama2.c) as a "llama" GGUF file with llama.cpp's ref encoders, what
// convert_hf_to_gguf.py (f32, f16) and llama-quantize without an imatrix produce: the file
// llama.cpp's tools measure when cross-checking signround's forward (docs/results-moe.md).
//   gguf_convert MODEL OUT.gguf [MIX=f32]
#include <cstdio>
#include <string>

#include "common/error.h"
#include "common/sysinfo.h"
#include "export/gguf_from_model.h"

int main(int argc, char** argv) {
  sr::configure_process(argv);
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL OUT.gguf [MIX=f32]\n", argv[0]);
    return 2;
  }
  try {
    auto model = sr::Model::open(argv[1]);
    sr::export_gguf(*model, argv[2], sr::parse_gguf_mix(argc > 3 ? argv[3] : "f32"));
  } catch (const sr::Error& e) {
    std::fprintf(stderr, "gguf_convert: %s\n", e.what());
    return 1;
  }
  return 0;
}
