// Command-line flags, plain argv parsing. Every subcommand declares its flags in
// a table; unknown flags, missing values and malformed numbers are errors that
// name the flag. `--group_size` and `--group-size` are the same flag (auto-round
// spells flags with underscores), and `--flag=value` equals `--flag value`.
// Also here: what every subcommand does with the flags they all take (common_flags).
#pragma once
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"

namespace sr::cli {

struct FlagSpec {
  std::string name;      // canonical, with dashes: "group-size"
  bool takes_value;      // false: a boolean switch
  std::string help;
  std::string fallback;  // default shown in help ("" = none)
};

class Args {
 public:
  // Parses argv[2..argc) (argv[1] is the command) against common_flags() followed by `own`.
  // Throws sr::Error on an unknown flag or a missing value.
  Args(const std::string& command, const std::vector<FlagSpec>& own, int argc, char** argv);

  bool has(const std::string& name) const;
  std::string str(const std::string& name, const std::string& fallback = "") const;
  std::string required(const std::string& name) const;  // throws "--name is required"
  int64_t integer(const std::string& name, int64_t fallback) const;
  double number(const std::string& name, double fallback) const;
  bool flag(const std::string& name) const { return has(name); }
  // Comma-separated list ("a,b,c"); empty if absent.
  std::vector<std::string> list(const std::string& name) const;
  // Every value of a repeatable flag, in command-line order (str() is the last one).
  std::vector<std::string> all(const std::string& name) const;

  // With --help: prints the usage (command, summary, every flag with its help) on stdout and
  // returns true.
  bool help(const std::string& summary) const;

 private:
  std::string command_;
  std::vector<FlagSpec> specs_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> repeated_;
};

// Flags every subcommand takes.
std::vector<FlagSpec> common_flags();
// Applies --threads (default: one per core).
void apply_common(const Args& a);

// Opens `path` with the tokenizer of --tokenizer (which must exist). `needs_tokenizer`: the
// command will tokenize text, so a model without a usable tokenizer is an error now, saying
// why and naming --tokenizer.
std::unique_ptr<Model> open_model(const Args& a, const std::string& path, bool needs_tokenizer);

// --json: prints `j` indented on stdout and returns 0, the command's exit code.
template <typename Json>
int print_json(const Json& j) {
  std::cout << j.dump(2) << "\n";
  return 0;
}

}  // namespace sr::cli
