#!/usr/bin/env bash
# Runs every libFuzzer target in fuzz/ for SECONDS each, from its seed corpus, and prints
# per target: executions, coverage (cov: edges, ft: features, from libFuzzer's final
# stats) and whether it found anything (a crash, a sanitizer report, a timeout, an OOM).
#
#   bench/fuzz.sh SECONDS [TARGET...]      e.g. bench/fuzz.sh 60;  bench/fuzz.sh 600 gguf json
#
# Builds build-fuzz/ (clang, SIGNROUND_FUZZ=ON) if needed. resume_state_fuzz also links
# libsignround.a of the normal build in build/ (built here if missing; override with
# SIGNROUND_FUZZ_LIBSIGNROUND=/path/libsignround.a). The seeds in fuzz/corpus/<t>/ are never
# modified: each run grows a working copy in build-fuzz/corpus/<t>/. Findings are written
# to build-fuzz/findings/<t>/ (crash-*, timeout-*, oom-*) and the log to build-fuzz/logs/.
# Exit status: 0 when nothing was found. JOBS=n runs n targets at once (default 1).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:?usage: bench/fuzz.sh SECONDS [TARGET...]}
shift
root=$PWD
bf=$root/build-fuzz
lib=${SIGNROUND_FUZZ_LIBSIGNROUND:-$root/build/src/libsignround.a}

if [[ ! -f $lib ]]; then
  echo "fuzz.sh: building $lib (normal build, for resume_state_fuzz)" >&2
  [[ -f build/CMakeCache.txt ]] || cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build build -j"${JOBS_BUILD:-2}" --target signround >/dev/null
fi
if [[ ! -f $bf/CMakeCache.txt ]]; then
  cmake -S . -B "$bf" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER=clang++ -DSIGNROUND_FUZZ=ON \
    -DSIGNROUND_BUILD_TESTS=OFF -DSIGNROUND_FUZZ_LIBSIGNROUND="$lib" >/dev/null
fi
cmake --build "$bf" -j"${JOBS_BUILD:-2}" --target fuzz_all >/dev/null

targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for f in fuzz/*_fuzz.cpp; do targets+=("$(basename "$f" _fuzz.cpp)"); done
fi
mkdir -p "$bf/logs" "$bf/findings" "$bf/corpus"

run_one() {
  local t=$1 exe=$bf/fuzz/$1_fuzz
  local work=$bf/corpus/$t findings=$bf/findings/$t log=$bf/logs/$t.log
  if [[ ! -x $exe ]]; then echo "$t: not built" >"$log"; return; fi
  mkdir -p "$work" "$findings"
  # -max_len: the seeds are up to ~25 KB; let mutations grow a little beyond them.
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 UBSAN_OPTIONS=print_stacktrace=1 \
    "$exe" "$work" "fuzz/corpus/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -max_len=32768 -print_final_stats=1 -artifact_prefix="$findings/" >"$log" 2>&1 || true
}

# The targets write each input to a scratch file (the readers take paths): keep that in memory.
if [[ -z ${TMPDIR:-} && -d /dev/shm && -w /dev/shm ]]; then export TMPDIR=/dev/shm; fi
export -f run_one
export bf secs
printf '%s\n' "${targets[@]}" | xargs -P "${JOBS:-1}" -I{} bash -c 'run_one {}'

status=0
printf '%-20s %12s %9s %7s %7s %6s  %s\n' target execs exec/s cov ft corpus found
for t in "${targets[@]}"; do
  log=$bf/logs/$t.log
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -1 || true)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.*corp: \([0-9]*\).*/\1/p' <<<"$last")
  found=none
  if ls "$bf/findings/$t"/{crash,timeout,oom,leak,slow-unit}-* >/dev/null 2>&1 || \
     grep -qE 'ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error:|deadly signal' "$log"; then
    found="YES: $(ls "$bf/findings/$t" 2>/dev/null | head -3 | tr '\n' ' ')(see $log)"
    status=1
  fi
  printf '%-20s %12s %9s %7s %7s %6s  %s\n' "$t" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$found"
done
exit $status
