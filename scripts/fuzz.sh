#!/usr/bin/env bash
# Fuzzes every parser and decoder that sees outside bytes: builds the libFuzzer targets in
# cpp/fuzz (Debian clang, with ASan+UBSan) into build/sanitize-address-undefined (the build
# dir of test.sh's ASan+UBSan tests) and runs each for SECONDS (default 60), starting from
# its seed corpus cpp/fuzz/corpus/<target>.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      e.g. scripts/fuzz.sh 600 fuzz_resp
#
# New inputs that reach new code go to that dir's corpus/<target> (kept between runs, not
# in git: copy the few worth keeping into the seed corpus). An input that crashes, trips a
# sanitizer or breaks a target's FUZZ_CHECK is written to its crashes/ and the run fails;
# replay it with build/sanitize-address-undefined/<target> FILE, and make it a Catch2 test.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
[[ $seconds =~ ^[0-9]+$ ]] || { echo "fuzz.sh: SECONDS must be a whole number, got '$seconds'" >&2; exit 2; }

# The build dir of test.sh's ASan+UBSan tests, configured as it configures it: one build
# of the engine serves both.
dir=build/sanitize-address-undefined
if [[ -f $dir/CMakeCache.txt ]] && ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++$' "$dir/CMakeCache.txt"; then
  rm -rf "$dir"  # configured with another compiler: CMake cannot switch
fi
cmake -S . -B $dir -G Ninja --log-level=WARNING -DHERDCACHE_BUILD_PYTHON=OFF -DHERDCACHE_BUILD_TESTS=ON \
  -DCMAKE_CXX_COMPILER=clang++ -DHERDCACHE_SANITIZE=address,undefined -DHERDCACHE_BUILD_FUZZERS=ON
cmake --build $dir -j2 --target fuzzers

targets=("$@")
if ((${#targets[@]} == 0)); then
  for source in cpp/fuzz/fuzz_*.cpp; do targets+=("$(basename "$source" .cpp)"); done
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p $dir/crashes
failed=()
for target in "${targets[@]}"; do
  seeds=cpp/fuzz/corpus/$target
  [[ -d $seeds ]] || { echo "fuzz.sh: no seed corpus $seeds" >&2; failed+=("$target"); continue; }
  mkdir -p "$dir/corpus/$target"
  log=$dir/$target.log
  # -timeout: one input taking a second is a hang; -rss_limit_mb: a runaway allocation.
  if $dir/"$target" "$dir/corpus/$target" "$seeds" -max_total_time="$seconds" -max_len=4096 \
       -timeout=5 -rss_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$dir/crashes/$target-" \
       >"$log" 2>&1; then
    echo "fuzz.sh: $target: $(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$') runs in ${seconds} s, nothing found"
  else
    echo "fuzz.sh: $target FAILED (whole log: $log):" >&2
    grep -E -A25 'ERROR|runtime error|FUZZ_CHECK' "$log" | head -60 >&2 || tail -40 "$log" >&2
    failed+=("$target")
  fi
done
if ((${#failed[@]})); then
  echo "fuzz.sh: FAILED: ${failed[*]} (inputs in $dir/crashes/)" >&2
  exit 1
fi
