#include "common/atomic_file.h"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <system_error>

#include "common/error.h"

namespace sr {
namespace fs = std::filesystem;

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
  if (fs::is_directory(temp_) && fs::exists(final_)) {
    // rename(2) cannot replace a non-empty folder: move the old one aside first.
    std::string old = final_ + ".old-" + std::to_string(getpid());
    fs::remove_all(old, ec);
    fs::rename(final_, old, ec);
    SR_CHECK(!ec, "[output] cannot replace ", final_, ": ", ec.message());
    fs::rename(temp_, final_, ec);
    SR_CHECK(!ec, "[output] cannot rename ", temp_, " to ", final_, ": ", ec.message());
    fs::remove_all(old, ec);
  } else {
    fs::rename(temp_, final_, ec);
    SR_CHECK(!ec, "[output] cannot rename ", temp_, " to ", final_, ": ", ec.message());
  }
  committed_ = true;
}

}  // namespace sr
