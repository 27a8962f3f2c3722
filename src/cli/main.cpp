// signround CLI entry point: dispatches subcommands and is the only place that
// catches errors, prints them and turns them into a non-zero exit code.
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>

#include "cli/commands.h"
#include "common/error.h"
#include "common/sysinfo.h"

namespace {

struct Command {
  const char* name;
  int (*run)(int, char**);
  const char* summary;
};

constexpr Command kCommands[] = {
    {"inspect", sr::cli::cmd_inspect, "architecture, tensors, dtypes, parameter count and size of a model"},
    {"quantize", sr::cli::cmd_quantize, "RTN, optimized RTN or SignRound (v1/V2) quantization, then export"},
    {"autoscheme", sr::cli::cmd_autoscheme, "DeltaLoss scores and mixed-precision allocation for an average-bits budget"},
    {"eval", sr::cli::cmd_eval, "perplexity (llama.cpp protocol or windows) and KL divergence to a base model"},
};

void print_usage() {
  std::fprintf(stderr, "usage: signround <command> [flags]   (signround <command> --help)\n\ncommands:\n");
  for (const Command& c : kCommands) std::fprintf(stderr, "  %-10s %s\n", c.name, c.summary);
}

}  // namespace

int main(int argc, char** argv) {
  sr::configure_process(argv);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  for (const Command& c : kCommands) {
    if (std::strcmp(argv[1], c.name) != 0) continue;
    try {
      return c.run(argc, argv);
    } catch (const sr::Error& e) {
      std::fprintf(stderr, "signround %s: error: %s\n", c.name, e.what());
      return 1;
    } catch (const std::filesystem::filesystem_error& e) {
      // A file-system failure (permissions, disk full, a path that vanished) is the
      // user's environment, not a bug: say which path, as an ordinary error.
      std::fprintf(stderr, "signround %s: error: %s%s%s%s%s\n", c.name, e.code().message().c_str(),
                   e.path1().empty() ? "" : ": ", e.path1().c_str(), e.path2().empty() ? "" : " -> ",
                   e.path2().c_str());
      return 1;
    } catch (const std::exception& e) {
      // libtorch (c10::Error) and the standard library land here.
      std::fprintf(stderr, "signround %s: internal error: %s\n", c.name, e.what());
      return 3;
    }
  }
  std::fprintf(stderr, "signround: unknown command '%s'\n", argv[1]);
  print_usage();
  return 2;
}
