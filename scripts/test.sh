#!/usr/bin/env bash
# Runs every test CI runs, in this order (all of them run; the exit code is non-zero when
# any failed):
#   1. the C++ engine's Catch2 tests (CTest, build/cpp);
#   2. the same tests built with ASan+UBSan (Debian clang, build/sanitize-address-undefined);
#   3. the tests of the concurrent parts built with TSan (build/sanitize-thread-concurrent):
#      TSAN_TESTS below;
#   4. each libFuzzer target for FUZZ_SECONDS (10) from its seed corpus (scripts/fuzz.sh,
#      which builds them in step 2's build dir);
#   5. the Python tests (pytest, which start their own redis-server and PostgreSQL).
# Arguments go to pytest, e.g. scripts/test.sh -k memory -x
#
#   scripts/test.sh --quick [PYTEST ARGS]   steps 1 and 5 only
#   scripts/test.sh --sanitize=LIST [PYTEST ARGS]
#       every C++ test built with -fsanitize=LIST (address,undefined / thread / ...) in
#       build/sanitize-<list>; with address in LIST, then the Python tests against a
#       _native built the same way with gcc (build/sanitize-<list>-python, in a venv of
#       its own on top of .venv's packages), the runtime LD_PRELOADed and leak checking
#       kept to the engine (scripts/lsan-python.supp). Not for thread: CPython is not
#       built with TSan, so whatever the interpreter shares between threads is reported.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=all sanitize=""
case "${1:-}" in
  --quick) mode=quick; shift ;;
  --sanitize=*) mode=sanitize; sanitize=${1#--sanitize=}; shift ;;
esac
scripts/setup.sh

FUZZ_SECONDS=${FUZZ_SECONDS:-10}
# The C++ tests of the parts with threads of their own: I/O threads and their Redis
# connections, the subscriber, the tier and its fill waiters and journal, the completion
# queue the asyncio bridge drains, flights, the memory tier's shards, the engine, the
# PostgreSQL listener.
TSAN_TESTS='test_(io_thread|redis|redis_subscriber|redis_tier|completions|flights|memory|engine|fill_waiters|journal|pg_listener|tls)[.]cpp$'

# Findings fail the test that made them: UBSan aborts (-fno-sanitize-recover), ASan and
# TSan exit non-zero; LSan checks for leaks at every test process' exit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}

# cpp_tests DIR [CMAKE OPTIONS...]
cpp_tests() {
  local dir=$1; shift
  cmake -S . -B "$dir" -G Ninja --log-level=WARNING -DHERDCACHE_BUILD_PYTHON=OFF -DHERDCACHE_BUILD_TESTS=ON "$@" &&
    cmake --build "$dir" -j2 &&
    ctest --test-dir "$dir" --output-on-failure --no-tests=error -j2
}

# A build dir configured with another compiler is started over: CMake cannot switch.
fresh_for_clang() {
  if [[ -f $1/CMakeCache.txt ]] && ! grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang++$' "$1/CMakeCache.txt"; then
    rm -rf "$1"
  fi
}

# sanitized_cpp_tests LIST DIR [CMAKE OPTIONS...]: with clang. The ASan+UBSan build dir
# is also the fuzz targets' (scripts/fuzz.sh configures it the same way), so the engine
# is compiled once for both.
sanitized_cpp_tests() {
  local list=$1 dir=$2; shift 2
  local fuzzers=OFF
  [[ $list == address,undefined ]] && fuzzers=ON
  fresh_for_clang "$dir"
  cpp_tests "$dir" -DCMAKE_CXX_COMPILER=clang++ -DHERDCACHE_SANITIZE="$list" -DHERDCACHE_BUILD_FUZZERS=$fuzzers "$@"
}

# The Python tests against a _native built with -fsanitize=LIST (address, maybe undefined).
sanitized_python_tests() {  # LIST [PYTEST ARGS...]
  local list=$1; shift
  local dir=build/sanitize-${list//,/-}-python
  local py=.venv/bin/python
  cmake -S . -B "$dir" -G Ninja --log-level=WARNING -DHERDCACHE_BUILD_PYTHON=ON -DHERDCACHE_BUILD_TESTS=OFF \
      -DHERDCACHE_SANITIZE="$list" -DPython_EXECUTABLE="$PWD/$py" -Dpybind11_DIR="$($py -m pybind11 --cmakedir)" &&
    cmake --build "$dir" -j2 --target _native || return
  # herdcache from the work tree with this _native, ahead of .venv's packages. .venv's
  # site-packages is put on the path as a plain directory, so its editable-install hook
  # (which would import .venv's own _native) does not run.
  rm -rf "$dir/site" && mkdir -p "$dir/site/herdcache"
  ln -s "$PWD"/python/herdcache/*.py "$dir/site/herdcache/"
  cp "$dir"/_native.*.so "$dir/site/herdcache/"
  [[ -x $dir/venv/bin/python ]] || $py -m venv --without-pip "$dir/venv" || return
  local site venv_site
  site=$($py -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  venv_site=$("$dir/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  printf '%s\n' "$PWD/$dir/site" "$site" > "$venv_site/herdcache-sanitized.pth"
  # libstdc++ is preloaded after the runtime: ASan resolves its __cxa_throw interceptor
  # when it starts, and a C++ exception thrown before libstdc++ was loaded (a subprocess's
  # first one, on an I/O thread) otherwise stops the process with "CHECK failed".
  local preload
  preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libstdc++.so)"
  # Leaks: only the engine's. CPython frees little at exit, by design; malloc_context_size
  # keeps the stacks short, so a suppression names the code that allocated, not whoever
  # called into it from far up the stack.
  LD_PRELOAD=$preload \
    ASAN_OPTIONS="$ASAN_OPTIONS:detect_stack_use_after_return=0" \
    LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-python.supp:print_suppressions=0:malloc_context_size=8" \
    HERDCACHE_SANITIZED="$list" "$dir/venv/bin/python" -m pytest -p no:cacheprovider "$@"
}

status=()
run() {  # NAME COMMAND...: runs a step, records its exit code
  local name=$1; shift
  echo "=== $name"
  local rc=0 started=$SECONDS
  "$@" || rc=$?
  echo "=== $name: exit $rc after $((SECONDS - started)) s"
  status+=("$name: exit $rc")
  ((rc == 0)) || failed=1
}
failed=0

case $mode in
  sanitize)
    run "C++ tests (-fsanitize=$sanitize)" sanitized_cpp_tests "$sanitize" "build/sanitize-${sanitize//,/-}"
    if [[ ,$sanitize, == *,address,* ]]; then
      run "Python tests (_native with -fsanitize=$sanitize)" sanitized_python_tests "$sanitize" "$@"
    fi
    ;;
  quick | all)
    run "C++ tests (CTest)" cpp_tests build/cpp
    if [[ $mode == all ]]; then
      run "C++ tests (ASan+UBSan)" sanitized_cpp_tests address,undefined build/sanitize-address-undefined
      run "C++ tests of the concurrent parts (TSan)" sanitized_cpp_tests thread build/sanitize-thread-concurrent \
        -DHERDCACHE_TEST_FILTER="$TSAN_TESTS"
      run "fuzz targets (${FUZZ_SECONDS} s each)" scripts/fuzz.sh "$FUZZ_SECONDS"
    fi
    run "Python tests (pytest)" .venv/bin/python -m pytest "$@"
    ;;
esac

if ((failed)); then
  printf 'test.sh: FAILED: %s\n' "$(IFS=,; echo "${status[*]}")" >&2
  exit 1
fi
