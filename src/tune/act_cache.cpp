#include "tune/act_cache.h"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/progress.h"

namespace sr {
namespace fs = std::filesystem;

struct ActivationCache::Impl {
  at::Tensor memory;                // in memory: the cache
  int fd = -1;                      // on disk: the (unlinked) file
  std::string file;                 // its name when created, for messages
  std::vector<int64_t> shape;       // [N, T, D]
  at::ScalarType dtype = at::kFloat;
  ~Impl() {
    if (fd >= 0) ::close(fd);
  }
  int64_t row_bytes() const { return shape[1] * shape[2] * int64_t(c10::elementSize(dtype)); }
};

namespace {

void read_exact(int fd, char* dst, int64_t n, int64_t off, const std::string& file) {
  while (n > 0) {
    const ssize_t got = ::pread(fd, dst, size_t(n), off);
    if (got < 0 && errno == EINTR) continue;
    SR_CHECK(got > 0, "[cache] ", file, ": read failed at byte ", off, ": ", got < 0 ? std::strerror(errno) : "end of file");
    dst += got, off += got, n -= got;
  }
}

void write_exact(int fd, const char* src, int64_t n, int64_t off, const std::string& file) {
  while (n > 0) {
    const ssize_t put = ::pwrite(fd, src, size_t(n), off);
    if (put < 0 && errno == EINTR) continue;
    SR_CHECK(put > 0, "[cache] ", file, ": write failed at byte ", off, ": ", put < 0 ? std::strerror(errno) : "no progress");
    src += put, off += put, n -= put;
  }
}

}  // namespace

ActivationCache ActivationCache::in_memory(at::Tensor x) {
  SR_CHECK(x.dim() == 3, "[cache] an activation cache is [N, T, D], got ", x.dim(), " dimensions");
  ActivationCache c;
  c.impl_ = std::make_shared<Impl>();
  c.impl_->shape = x.sizes().vec();
  c.impl_->dtype = x.scalar_type();
  c.impl_->memory = std::move(x);
  return c;
}

ActivationCache ActivationCache::on_disk(const std::string& dir, const std::vector<int64_t>& shape, at::ScalarType dtype) {
  SR_CHECK(shape.size() == 3, "[cache] an activation cache is [N, T, D]");
  std::error_code ec;
  SR_CHECK(fs::is_directory(dir, ec), "[cache] cache folder ", dir, " does not exist or is not a folder");
  auto impl = std::make_shared<Impl>();
  impl->shape = shape;
  impl->dtype = dtype;
  const int64_t bytes = shape[0] * impl->row_bytes();
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) == 0) {
    const double free_bytes = double(vfs.f_bavail) * double(vfs.f_frsize);
    SR_CHECK(free_bytes >= double(bytes), "[cache] cache folder ", dir, " has ", format_bytes(free_bytes),
             " free but the activation cache needs ", format_bytes(double(bytes)));
  }
  std::string name = (fs::path(dir) / "signround-cache-XXXXXX").string();
  impl->fd = ::mkstemp(name.data());
  SR_CHECK(impl->fd >= 0, "[cache] cannot create a file in cache folder ", dir, ": ", std::strerror(errno));
  impl->file = name;
  ::unlink(name.c_str());  // anonymous from now on: the space returns when the fd closes
  SR_CHECK(::ftruncate(impl->fd, off_t(bytes)) == 0, "[cache] ", name, ": cannot size to ", bytes, " bytes: ",
           std::strerror(errno));
  ActivationCache c;
  c.impl_ = std::move(impl);
  return c;
}

bool ActivationCache::on_disk() const { return impl_ && impl_->fd >= 0; }
int64_t ActivationCache::size(int64_t dim) const { return impl_->shape.at(size_t(dim)); }
at::ScalarType ActivationCache::dtype() const { return impl_->dtype; }
int64_t ActivationCache::bytes() const { return impl_->shape[0] * impl_->row_bytes(); }

at::Tensor ActivationCache::read(int64_t r, int64_t n) const {
  SR_CHECK(r >= 0 && n >= 0 && r + n <= size(0), "[cache] samples [", r, ", ", r + n, ") outside [0, ", size(0), ")");
  if (!on_disk()) return impl_->memory.narrow(0, r, n);
  at::Tensor out = at::empty({n, impl_->shape[1], impl_->shape[2]}, at::TensorOptions().dtype(impl_->dtype));
  read_exact(impl_->fd, static_cast<char*>(out.data_ptr()), n * impl_->row_bytes(), r * impl_->row_bytes(), impl_->file);
  return out;
}

at::Tensor ActivationCache::rows(const at::Tensor& rows) const {
  if (!on_disk()) return impl_->memory.index_select(0, rows);
  const at::Tensor idx = rows.to(at::kLong).contiguous();
  const int64_t n = idx.numel();
  at::Tensor out = at::empty({n, impl_->shape[1], impl_->shape[2]}, at::TensorOptions().dtype(impl_->dtype));
  const int64_t rb = impl_->row_bytes();
  const int64_t* p = idx.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    SR_CHECK(p[i] >= 0 && p[i] < size(0), "[cache] sample ", p[i], " outside [0, ", size(0), ")");
    read_exact(impl_->fd, static_cast<char*>(out.data_ptr()) + i * rb, rb, p[i] * rb, impl_->file);
  }
  return out;
}

void ActivationCache::write(int64_t r, const at::Tensor& x) {
  const int64_t n = x.size(0);
  SR_CHECK(r >= 0 && r + n <= size(0) && x.size(1) == size(1) && x.size(2) == size(2),
           "[cache] write of ", x.sizes(), " at sample ", r, " does not fit the cache [", size(0), ", ", size(1), ", ",
           size(2), "]");
  if (!on_disk()) {
    impl_->memory.narrow(0, r, n).copy_(x);
    return;
  }
  const at::Tensor c = x.to(impl_->dtype).contiguous();
  write_exact(impl_->fd, static_cast<const char*>(c.data_ptr()), n * impl_->row_bytes(), r * impl_->row_bytes(),
              impl_->file);
}

void ActivationCache::copy_from(const ActivationCache& from) {
  if (!on_disk() && !from.on_disk()) {
    impl_->memory.copy_(from.impl_->memory);
    return;
  }
  const int64_t step = std::max<int64_t>(1, (64LL << 20) / std::max<int64_t>(1, impl_->row_bytes()));
  for (int64_t r = 0; r < size(0); r += step) write(r, from.read(r, std::min(step, size(0) - r)));
}

}  // namespace sr
