// What the process and machine look like right now: memory (Linux /proc) and cores.
// Used for progress reports, benchmarks and for refusing runs that cannot fit.
#pragma once
#include <cstdint>

namespace sr {

int64_t current_rss_bytes();     // VmRSS of this process, 0 if unknown
int64_t peak_rss_bytes();        // VmHWM (high-water mark of the resident set), 0 if unknown
void reset_peak_rss();           // best effort: writes 5 to /proc/self/clear_refs (resets VmHWM)
int64_t available_memory_bytes();  // MemAvailable from /proc/meminfo, 0 if unknown
int physical_cores();            // hardware threads available to this process (>= 1)

// Sets the intra-op thread count of libtorch (and OpenBLAS through it).
// n <= 0 means one thread per available core.
void set_threads(int n);
int threads();

double now_seconds();            // monotonic clock

// Call first thing in main() of every executable. Two process-wide settings that
// libtorch on this stack needs and cannot set itself (measurements in
// docs/decisions.md, "Process settings"):
//  - OpenMP wait policy: libtorch runs elementwise ops on OpenMP threads, OpenBLAS
//    runs GEMMs on its own pthreads; idle OpenMP threads spinning after every
//    parallel region steal the GEMM threads' cores (SignRound tuning 2.5-4x slower).
//    libgomp reads OMP_WAIT_POLICY only when it loads, before main(), so when the
//    variable is unset this sets OMP_WAIT_POLICY=PASSIVE and re-executes the program
//    (/proc/self/exe, same arguments). A value the user set is respected.
//  - glibc malloc: large tensors are mmap'd and unmapped on every allocation by
//    default, so each training step pays page faults on fresh zeroed pages; serving
//    every allocation from the heap and never trimming it makes steps ~30% faster
//    at the price of keeping the peak working set resident (map_large_blocks below
//    undoes the first part for runs at real shapes). glibc's own variables
//    (MALLOC_MMAP_MAX_, MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_, MALLOC_TOP_PAD_)
//    override these when set.
void configure_process(char** argv);

// For a run whose tensors are large: when one calibration sample's attention scores or MLP
// activation take `sample_bytes` >= 32 MiB (glibc's largest mmap threshold), blocks of 32 MiB
// and more are mapped again and returned when freed. Kept in the heap, such blocks of many sizes
// and lifetimes fragment it: a checkpointed tuning step of 8 x 2048 tokens at the Llama-3.2-1B
// shape held 21.7 GB instead of 5.8 GB (docs/results-scale.md). Below, the heap serves
// everything (the demo model's steps, ~7 % faster). Returns whether it mapped; no effect (false)
// where the user set MALLOC_MMAP_MAX_ or MALLOC_MMAP_THRESHOLD_.
bool map_large_blocks(int64_t sample_bytes);

// The bytes map_large_blocks weighs: fp32 attention scores (heads x T x T) or MLP activation
// (T x intermediate) of one sample of T tokens, whichever is larger.
int64_t sample_activation_bytes(int64_t heads, int64_t intermediate, int64_t tokens);

}  // namespace sr
