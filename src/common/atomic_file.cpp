#include "common/atomic_file.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <system_error>

#include "common/error.h"

namespace sr {
namespace fs = std::filesystem;

namespace {
std::mutex g_allowed_mutex;
std::set<std::string>& allowed() {
  static std::set<std::string> s;
  return s;
}
std::string key_of(const std::string& p) {
  std::error_code ec;
  fs::path k = fs::weakly_canonical(fs::absolute(p), ec);
  return ec ? p : k.string();
}
bool replacing_allowed(const std::string& p) {
  std::lock_guard<std::mutex> lock(g_allowed_mutex);
  return allowed().count(key_of(p)) > 0;
}
}  // namespace

bool is_signround_output(const std::string& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) &&
         (fs::exists(fs::path(dir) / kOutputMarker, ec) || fs::exists(fs::path(dir) / "signround_run.json", ec));
}

void AtomicPath::allow_replacing(const std::string& path) {
  std::lock_guard<std::mutex> lock(g_allowed_mutex);
  allowed().insert(key_of(path));
}

AtomicPath::AtomicPath(std::string final_path)
    : final_(std::move(final_path)), temp_(final_ + ".tmp-" + std::to_string(getpid())) {
  std::error_code ec;
  fs::remove_all(temp_, ec);
}

AtomicPath::~AtomicPath() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(temp_, ec);
  }
}

void AtomicPath::commit() {
  std::error_code ec;
  const bool folder = fs::is_directory(temp_);
  if (folder) {
    std::ofstream(fs::path(temp_) / kOutputMarker) << "written by signround; a later run may replace this folder\n";
  }
  std::string old;  // the folder that was at final_, moved aside until the output is in place
  if (folder && fs::exists(fs::symlink_status(final_))) {
    SR_CHECK(fs::is_directory(fs::symlink_status(final_)), "[output] ", final_,
             " exists and is not a folder; signround never replaces it with an output folder");
    SR_CHECK(fs::is_empty(final_, ec) || is_signround_output(final_) || replacing_allowed(final_), "[output] ", final_,
             " is a folder signround did not write (no ", kOutputMarker, "); refusing to replace it");
    // rename(2) cannot replace a non-empty folder: move the old one aside first.
    old = final_ + ".old-" + std::to_string(getpid());
    fs::remove_all(old, ec);
    fs::rename(final_, old, ec);
    SR_CHECK(!ec, "[output] cannot replace ", final_, ": ", ec.message());
  }
  fs::rename(temp_, final_, ec);
  SR_CHECK(!ec, "[output] cannot rename ", temp_, " to ", final_, ": ", ec.message());
  if (!old.empty()) fs::remove_all(old, ec);
  committed_ = true;
}

void write_file_atomically(const std::string& path, const std::string& text, const std::string& what) {
  AtomicPath out(path);
  {
    std::ofstream o(out.temp());
    o << text;
    SR_CHECK(o.good(), what, " cannot write ", out.temp());
  }
  out.commit();
}

}  // namespace sr
