// Shared helpers for the test suite: where the shared data lives, skipping when
// it is absent, temporary folders, and running the CLI.
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace sr::test {

// The Llama block has seven linears (model/block_desc.h, llama::Q … llama::Down); tests of
// that family name them through these.
constexpr int kLlamaLinears = 7;
// "model.layers.<block>.<module>" of Llama linear `linear` (e.g. "model.layers.0.mlp.down_proj").
std::string layer_name(int64_t block, int linear);

// Path under ../shared (SIGNROUND_SHARED_DIR), e.g. shared("models/stories260K/tok512.bin").
std::string shared(const std::string& rel);
// Path under the repository root.
std::string repo(const std::string& rel);
// Path of the built CLI binary.
std::string cli();

// True if ../shared/<rel> exists; otherwise records why the test is skipped.
bool have_shared(const std::string& rel);

// The message of the sr::Error that f throws, or "" when it throws none.
std::string error_of(const std::function<void()>& f);

// A fresh empty folder under the system temp dir, removed when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs a shell command line, capturing stdout and stderr.
CommandResult run_command(const std::string& cmdline);

// llama-imatrix (../shared/tools/llama.cpp/bin) on the 4m model's F32 GGUF (../shared/reference)
// over the first `text_bytes` of calib_stories.txt, written to <dir>/calib.txt: -c 128, `chunks`
// chunks, 2 threads, into `out`. False, with llama-imatrix's stderr printed, when it fails.
// Callers check that the shared files exist first.
bool run_llama_imatrix_4m(const std::string& dir, size_t text_bytes, int chunks, const std::string& out);

// llama-perplexity (../shared/tools/llama.cpp/bin) on `gguf` over the text file `text`, with the
// further arguments `args` (e.g. "-c 128 --chunks 4 -t 2"): its final PPL estimate. A test
// failure, and 0, when it exits non-zero or prints no estimate.
double llama_cpp_ppl(const std::string& gguf, const std::string& text, const std::string& args);

// Writes the first `bytes` of the shared file `rel` (fewer if it is shorter) to `out`: a short
// text for the llama.cpp tools, which tokenize the whole file they are given.
void write_shared_prefix(const std::string& rel, size_t bytes, const std::string& out);

// The whole file as a string ("" when it cannot be read).
std::string read_text(const std::string& path);

// Spearman rank correlation of two samples of equal length (ranks without tie correction).
double spearman(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace sr::test

// Skips the current test with a clear message when ../shared/<rel> is missing.
#define SR_REQUIRE_SHARED(rel)                                                    \
  do {                                                                            \
    if (!::sr::test::have_shared(rel))                                            \
      GTEST_SKIP() << "needs " << ::sr::test::shared(rel)                         \
                   << " (set -DSIGNROUND_SHARED_DIR=... to the project's shared data)"; \
  } while (0)
