#include "cli/args.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "common/error.h"
#include "common/sysinfo.h"

namespace sr::cli {
namespace {

std::string canonical(std::string s) {
  std::replace(s.begin(), s.end(), '_', '-');
  return s;
}

const FlagSpec* find_spec(const std::vector<FlagSpec>& specs, const std::string& name) {
  for (const FlagSpec& s : specs) if (s.name == name) return &s;
  return nullptr;
}

// v as parse (a strto* function) reads it, which must be the whole of v; otherwise an error
// naming the flag and `what` it expects.
template <class Parse>
auto parse_whole(const std::string& command, const std::string& name, const std::string& v, Parse parse,
                 const char* what) {
  char* end = nullptr;
  errno = 0;
  const auto x = parse(v.c_str(), &end);
  SR_CHECK(!v.empty() && end && *end == '\0' && errno == 0, "signround ", command, ": --", name, " expects ", what,
           ", got '", v, "'");
  return x;
}

}  // namespace

Args::Args(const std::string& command, const std::vector<FlagSpec>& own, int argc, char** argv)
    : command_(command), specs_(common_flags()) {
  specs_.insert(specs_.end(), own.begin(), own.end());
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    SR_CHECK(arg.size() > 2 && arg.compare(0, 2, "--") == 0, "signround ", command, ": unexpected argument '", arg,
             "' (flags start with --; see signround ", command, " --help)");
    std::string name = arg.substr(2), value;
    bool has_inline = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_inline = true;
    }
    name = canonical(name);
    const FlagSpec* spec = find_spec(specs_, name);
    SR_CHECK(spec, "signround ", command, ": unknown flag --", name, " (see signround ", command, " --help)");
    if (spec->takes_value && !has_inline) {
      SR_CHECK(i + 1 < argc, "signround ", command, ": --", name, " needs a value");
      value = argv[++i];
    }
    SR_CHECK(spec->takes_value || !has_inline || value == "true" || value == "1", "signround ", command, ": --",
             name, " is a switch and takes no value");
    values_[name] = value;
    repeated_[name].push_back(value);
  }
}

bool Args::has(const std::string& name) const { return values_.count(name) > 0; }

std::string Args::str(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

std::string Args::required(const std::string& name) const {
  SR_CHECK(has(name) && !str(name).empty(), "signround ", command_, ": --", name, " is required");
  return str(name);
}

int64_t Args::integer(const std::string& name, int64_t fallback) const {
  if (!has(name)) return fallback;
  return parse_whole(command_, name, str(name), [](const char* s, char** e) { return std::strtoll(s, e, 10); },
                     "an integer");
}

double Args::number(const std::string& name, double fallback) const {
  if (!has(name)) return fallback;
  return parse_whole(command_, name, str(name), [](const char* s, char** e) { return std::strtod(s, e); }, "a number");
}

std::vector<std::string> Args::list(const std::string& name) const {
  std::vector<std::string> out;
  std::stringstream ss(str(name));
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<std::string> Args::all(const std::string& name) const {
  auto it = repeated_.find(name);
  return it == repeated_.end() ? std::vector<std::string>() : it->second;
}

bool Args::help(const std::string& summary) const {
  if (!flag("help")) return false;
  std::cout << "usage: signround " << command_ << " [flags]\n  " << summary << "\n\nflags:\n";
  for (const FlagSpec& s : specs_) {
    std::string left = "  --" + s.name + (s.takes_value ? " VALUE" : "");
    std::cout << left << std::string(left.size() < 28 ? 28 - left.size() : 1, ' ') << s.help;
    if (!s.fallback.empty()) std::cout << " (default: " << s.fallback << ")";
    std::cout << "\n";
  }
  return true;
}

std::vector<FlagSpec> common_flags() {
  return {
      {"threads", true, "compute threads", "one per core"},
      {"tokenizer", true, "tokenizer file overriding the one found beside the model", ""},
      {"help", false, "show this help", ""},
  };
}

void apply_common(const Args& a) {
  const int64_t t = a.integer("threads", 0);
  SR_CHECK(t >= 0 && t <= 1024, "--threads must be between 1 and 1024, got ", t);
  set_threads(int(t));
}

std::unique_ptr<Model> open_model(const Args& a, const std::string& path, bool needs_tokenizer) {
  OpenOptions oo;
  oo.tokenizer_path = a.str("tokenizer");
  SR_CHECK(oo.tokenizer_path.empty() || std::filesystem::exists(oo.tokenizer_path), "--tokenizer ",
           oo.tokenizer_path, " does not exist");
  auto model = Model::open(path, oo);
  SR_CHECK(!needs_tokenizer || model->has_tokenizer(), "[model] ", model->path(), ": ", model->tokenizer_error(),
           "; pass a tokenizer with --tokenizer");
  return model;
}

}  // namespace sr::cli
