// Command-line flags, plain argv parsing. Every subcommand declares its flags in
// a table; unknown flags, missing values and malformed numbers are errors that
// name the flag. `--group_size` and `--group-size` are the same flag (auto-round
// spells flags with underscores), and `--flag=value` equals `--flag value`.
#pragma once
#include <map>
#include <string>
#include <vector>

namespace sr::cli {

struct FlagSpec {
  std::string name;      // canonical, with dashes: "group-size"
  bool takes_value;      // false: a boolean switch
  std::string help;
  std::string fallback;  // default shown in help ("" = none)
};

class Args {
 public:
  // Parses argv[first..argc). Throws sr::Error on an unknown flag or a missing value.
  Args(const std::string& command, const std::vector<FlagSpec>& specs, int argc, char** argv, int first);

  bool has(const std::string& name) const;
  std::string str(const std::string& name, const std::string& fallback = "") const;
  std::string required(const std::string& name) const;  // throws "--name is required"
  int64_t integer(const std::string& name, int64_t fallback) const;
  double number(const std::string& name, double fallback) const;
  bool flag(const std::string& name) const { return has(name); }
  // Comma-separated list ("a,b,c"); empty if absent.
  std::vector<std::string> list(const std::string& name) const;

  static std::string usage(const std::string& command, const std::string& summary, const std::vector<FlagSpec>& specs);
  // With --help: prints usage(command, summary, specs) on stdout and returns true.
  bool help(const std::string& summary, const std::vector<FlagSpec>& specs) const;

 private:
  std::string command_;
  std::map<std::string, std::string> values_;
};

// Flags every subcommand takes.
std::vector<FlagSpec> common_flags();
// Applies --threads (default: one per core).
void apply_common(const Args& a);

}  // namespace sr::cli
