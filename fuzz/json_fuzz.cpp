// The JSON reader every JSON input goes through (common/json_parse.h): config.json,
// model.safetensors.index.json, tokenizer.json, --layer_config, and the resume record
// <out>.partial/run.json (tune/pipeline.cpp check_fingerprint reads it with read_json_file).
// What it accepts must be exactly what nlohmann accepts, at a bounded depth.
#include <cstdlib>

#include "common/json_parse.h"
#include "fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text = sr::fuzz::as_view(data, size);
  nlohmann::json j;
  try {
    j = sr::parse_json_text(text, "fuzz.json");
  } catch (const sr::Error& e) {
    sr::fuzz::note_refusal(e);
    return 0;
  }
  // Accepted: then nlohmann alone parses it to the same value, and it can be dumped
  // and destroyed (the recursion the depth limit protects) without trouble.
  if (nlohmann::json::parse(text, nullptr, false) != j) std::abort();
  (void)j.dump();
  sr::fuzz::expect_ok_or_error([&] { (void)sr::parse_ordered_json_text(text, "fuzz.json").dump(); });
  // The file path (run.json on --resume): same bytes through read_json_file.
  sr::fuzz::expect_ok_or_error([&] { (void)sr::read_json_file(sr::fuzz::write_file("run.json", text)); });
  return 0;
}
