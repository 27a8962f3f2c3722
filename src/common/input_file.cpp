#include "common/input_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace sr {
namespace {

// "[text] cannot read X" (what = "[text]") or "cannot read X".
std::string label(const std::string& path, const std::string& what) {
  return (what.empty() ? "" : what + " ") + "cannot read " + path;
}

struct FdCloser {
  int fd;
  ~FdCloser() { ::close(fd); }
};

const char* kind_of(mode_t m) {
  if (S_ISDIR(m)) return "a folder";
  if (S_ISFIFO(m)) return "a FIFO (named pipe)";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

}  // namespace

void check_regular_file(const std::string& path, const std::string& what) {
  struct stat st{};
  SR_CHECK(::stat(path.c_str(), &st) == 0, label(path, what), ": ", std::strerror(errno));
  SR_CHECK(S_ISREG(st.st_mode), label(path, what), ": it is ", kind_of(st.st_mode),
           "; only regular files are read as inputs");
}

std::string read_input_file(const std::string& path, uint64_t max_bytes, const std::string& what) {
  check_regular_file(path, what);
  // O_NONBLOCK: should the path have been swapped for a FIFO since the check, open()
  // still returns at once and fstat() below refuses it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  SR_CHECK(fd >= 0, label(path, what), ": ", std::strerror(errno));
  const FdCloser closer{fd};  // closes it on every return and throw below
  struct stat st{};
  SR_CHECK(::fstat(fd, &st) == 0 && S_ISREG(st.st_mode), label(path, what), ": not a regular file");
  const uint64_t size = uint64_t(st.st_size);
  SR_CHECK(size <= max_bytes, label(path, what), ": ", size, " bytes is over the limit of ", max_bytes,
           " bytes for this kind of input");
  std::string out(size_t(size), '\0');
  size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, &out[got], out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    SR_CHECK(n >= 0, label(path, what), ": ", std::strerror(errno));
    if (n == 0) break;  // the file shrank while we read it
    got += size_t(n);
  }
  out.resize(got);
  return out;
}

}  // namespace sr
