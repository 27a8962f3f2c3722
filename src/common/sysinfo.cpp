#include "common/sysinfo.h"

#include <malloc.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <string>

#include "common/torch.h"

namespace sr {
namespace {

// Reads "Key:   1234 kB" from a /proc file; returns bytes or 0.
int64_t read_proc_kb(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) == 0 && line.size() > key.size() && line[key.size()] == ':') {
      return std::stoll(line.substr(key.size() + 1)) * 1024;
    }
  }
  return 0;
}

}  // namespace

int64_t current_rss_bytes() { return read_proc_kb("/proc/self/status", "VmRSS"); }
int64_t peak_rss_bytes() { return read_proc_kb("/proc/self/status", "VmHWM"); }
int64_t available_memory_bytes() { return read_proc_kb("/proc/meminfo", "MemAvailable"); }

void reset_peak_rss() {
  std::ofstream out("/proc/self/clear_refs");
  if (out) out << "5";
}

int physical_cores() {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? int(n) : 1;
}

void set_threads(int n) {
  if (n <= 0) n = physical_cores();
  at::set_num_threads(n);
}

int threads() { return at::get_num_threads(); }

void configure_process(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") == nullptr) {
    setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
    execv("/proc/self/exe", argv);  // only returns on failure: carry on with the default policy
  }
  // glibc malloc (docs/decisions.md): freed memory stays in the heap for reuse. A setting the
  // user made through glibc's environment variables is kept (glibc read it before main()).
  auto unset = [](const char* name) { return std::getenv(name) == nullptr; };
  if (unset("MALLOC_MMAP_MAX_") && unset("MALLOC_MMAP_THRESHOLD_"))
    mallopt(M_MMAP_MAX, 0);                                                     // no per-allocation mmap/munmap
  if (unset("MALLOC_TRIM_THRESHOLD_")) mallopt(M_TRIM_THRESHOLD, 1 << 30);  // return heap memory only beyond 1 GiB free at the top
  if (unset("MALLOC_TOP_PAD_")) mallopt(M_TOP_PAD, 64 << 20);               // grow the heap in 64 MB steps
}

bool map_large_blocks(int64_t sample_bytes) {
  constexpr int kThreshold = 32 << 20;  // glibc's largest M_MMAP_THRESHOLD on 64-bit
  if (sample_bytes < kThreshold || std::getenv("MALLOC_MMAP_MAX_") || std::getenv("MALLOC_MMAP_THRESHOLD_"))
    return false;
  mallopt(M_MMAP_THRESHOLD, kThreshold);  // also stops glibc's dynamic threshold
  mallopt(M_MMAP_MAX, 1 << 16);           // glibc's default count
  return true;
}

int64_t sample_activation_bytes(int64_t heads, int64_t intermediate, int64_t tokens) {
  return 4 * tokens * std::max(heads * tokens, intermediate);
}

double now_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

}  // namespace sr
