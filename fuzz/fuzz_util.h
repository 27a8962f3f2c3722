// Helpers shared by the libFuzzer targets (see docs/robustness.md, "Fuzzing").
//
// Every target feeds its input to the library function the program uses and treats
// sr::Error as the expected outcome for a bad input. Anything else is a finding: a crash,
// a sanitizer report, a hang (-timeout), or any other exception, which escapes the target
// and makes libFuzzer report it as a crash ("uncaught exception").
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "common/error.h"

namespace sr::fuzz {

// A private folder for this process's temporary files (readers that take a path).
inline const std::string& scratch_dir() {
  static const std::string dir = [] {
    const char* tmp = std::getenv("TMPDIR");
    std::filesystem::path p = std::filesystem::path(tmp && *tmp ? tmp : "/tmp") /
                              ("signround-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(p);
    static const std::string remove_me = p.string();
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(remove_me, ec);
    });
    return p.string();
  }();
  return dir;
}

// Writes `bytes` to scratch_dir()/name and returns the path.
inline std::string write_file(const std::string& name, std::string_view bytes) {
  const std::string path = scratch_dir() + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
  return path;
}

inline std::string_view as_view(const uint8_t* data, size_t size) {
  return std::string_view(reinterpret_cast<const char*>(data), size);
}

// SIGNROUND_FUZZ_VERBOSE=1 prints each refusal (to see what the seeds reach).
inline void note_refusal(const sr::Error& e) {
  static const bool verbose = std::getenv("SIGNROUND_FUZZ_VERBOSE") != nullptr;
  if (verbose) std::fprintf(stderr, "refused: %s\n", e.what());
}

// Runs f; an sr::Error is the expected refusal of a bad input and is swallowed.
template <typename F>
void expect_ok_or_error(F&& f) {
  try {
    f();
  } catch (const sr::Error& e) {
    note_refusal(e);
  }
}

}  // namespace sr::fuzz
