#include "testutil.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sr::test {
namespace fs = std::filesystem;

std::string shared(const std::string& rel) { return std::string(SIGNROUND_SHARED_DIR) + "/" + rel; }
std::string repo(const std::string& rel) { return std::string(SIGNROUND_SOURCE_DIR) + "/" + rel; }
std::string cli() { return SIGNROUND_CLI; }
bool have_shared(const std::string& rel) { return fs::exists(shared(rel)); }

TempDir::TempDir() {
  std::string tmpl = (fs::temp_directory_path() / "signround-test-XXXXXX").string();
  char* p = mkdtemp(tmpl.data());
  if (!p) throw std::runtime_error("mkdtemp failed");
  path_ = p;
}
TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

CommandResult run_command(const std::string& cmdline) {
  TempDir tmp;
  std::string full = cmdline + " >" + tmp / "out" + " 2>" + tmp / "err";
  int status = std::system(full.c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return {code, slurp(tmp / "out"), slurp(tmp / "err")};
}

}  // namespace sr::test
