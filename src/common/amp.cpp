#include "common/amp.h"

#include <ATen/autocast_mode.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace sr {
namespace {

// The CPU feature words of /proc/cpuinfo's first "flags" (x86) or "Features" (aarch64) line.
bool cpu_has_bf16() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("flags", 0) != 0 && line.rfind("Features", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string w; words >> w;)
      if (w == "avx512_bf16" || w == "amx_bf16" || w == "bf16") return true;
    return false;
  }
  return false;
}

bool autocast_on(at::DeviceType t) { return t == at::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled(); }

}  // namespace

bool bf16_compute_supported(const at::Device& device) {
  const char* off = std::getenv("SIGNROUND_NO_BF16");
  if (off && *off && std::string(off) != "0") return false;
  if (!device.is_cpu()) return true;
  static const bool cpu = cpu_has_bf16();
  return cpu;
}

AmpScope::AmpScope(const at::Device& device, bool on) : type_(device.type()) {
  SR_CHECK(type_ == at::kCPU || type_ == at::kCUDA, "[amp] autocast needs a CPU or CUDA device, got ", device);
  was_on_ = autocast_on(type_);
  was_caching_ = at::autocast::is_autocast_cache_enabled();
  at::autocast::set_autocast_cache_enabled(false);
  if (type_ == at::kCUDA) {
    was_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
    at::autocast::set_enabled(on);
  } else {
    was_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
    at::autocast::set_cpu_enabled(on);
  }
  at::autocast::increment_nesting();
}

AmpScope::~AmpScope() {
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_cache_enabled(was_caching_);
  if (type_ == at::kCUDA) {
    at::autocast::set_enabled(was_on_);
    at::autocast::set_autocast_gpu_dtype(was_dtype_);
  } else {
    at::autocast::set_cpu_enabled(was_on_);
    at::autocast::set_autocast_cpu_dtype(was_dtype_);
  }
}

}  // namespace sr
