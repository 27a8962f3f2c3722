#include "common/sysinfo.h"

#include <malloc.h>
#include <sched.h>
#include <unistd.h>

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
  mallopt(M_MMAP_MAX, 0);                    // no per-allocation mmap/munmap
  mallopt(M_TRIM_THRESHOLD, 1 << 30);        // return heap memory only beyond 1 GiB free at the top
  mallopt(M_TOP_PAD, 64 << 20);              // grow the heap in 64 MB steps
}

double now_seconds() {
  using clock = std::chrono::steady_clock;
  return std::chrono::duration<double>(clock::now().time_since_epoch()).count();
}

}  // namespace sr
