#include "testutil.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <regex>
#include <sstream>

#include "common/error.h"
#include "model/block_desc.h"

namespace sr::test {
namespace fs = std::filesystem;

std::string shared(const std::string& rel) { return std::string(SIGNROUND_SHARED_DIR) + "/" + rel; }
std::string repo(const std::string& rel) { return std::string(SIGNROUND_SOURCE_DIR) + "/" + rel; }
std::string cli() { return SIGNROUND_CLI; }
std::string layer_name(int64_t block, int linear) {
  return linear_name(describe_block(ModelConfig{}, block), block, linear);
}
bool have_shared(const std::string& rel) { return fs::exists(shared(rel)); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

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
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return {code, read_text(tmp / "out"), read_text(tmp / "err")};
}

void write_shared_prefix(const std::string& rel, size_t bytes, const std::string& out) {
  std::ifstream in(shared(rel), std::ios::binary);
  std::string text(bytes, '\0');
  in.read(text.data(), std::streamsize(text.size()));
  std::ofstream(out, std::ios::binary) << text.substr(0, size_t(in.gcount()));
}

double llama_cpp_ppl(const std::string& gguf, const std::string& text, const std::string& args) {
  const CommandResult r =
      run_command(shared("tools/llama.cpp/bin/llama-perplexity") + " -m " + gguf + " -f " + text + " " + args);
  const std::string all = r.out + r.err;
  const std::string tail = all.substr(all.size() > 3000 ? all.size() - 3000 : 0);
  EXPECT_EQ(r.exit_code, 0) << tail;
  std::smatch m;
  if (!std::regex_search(all, m, std::regex(R"(Final estimate: PPL = ([0-9.]+))"))) {
    ADD_FAILURE() << "llama-perplexity printed no final estimate:\n" << tail;
    return 0;
  }
  return std::stod(m[1]);
}

bool run_llama_imatrix_4m(const std::string& dir, size_t text_bytes, int chunks, const std::string& out) {
  const std::string calib = (std::filesystem::path(dir) / "calib.txt").string();
  write_shared_prefix("data/calib_stories.txt", text_bytes, calib);
  const CommandResult r =
      run_command(shared("tools/llama.cpp/bin/llama-imatrix") + " -m " +
                  shared("reference/llamacpp/tinystories-llama-4m/tinystories-llama-4m-f32.gguf") + " -f " + calib +
                  " -c 128 --chunks " + std::to_string(chunks) + " -t 2 -o " + out);
  if (r.exit_code != 0) std::printf("llama-imatrix failed:\n%s\n", r.err.c_str());
  return r.exit_code == 0;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

double spearman(const std::vector<double>& a, const std::vector<double>& b) {
  auto ranks = [](const std::vector<double>& v) {
    std::vector<size_t> idx(v.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](size_t i, size_t j) { return v[i] < v[j]; });
    std::vector<double> r(v.size());
    for (size_t k = 0; k < idx.size(); ++k) r[idx[k]] = double(k);
    return r;
  };
  const auto ra = ranks(a), rb = ranks(b);
  const double n = double(a.size());
  double d2 = 0;
  for (size_t i = 0; i < ra.size(); ++i) d2 += (ra[i] - rb[i]) * (ra[i] - rb[i]);
  return 1 - 6 * d2 / (n * (n * n - 1));
}

}  // namespace sr::test
