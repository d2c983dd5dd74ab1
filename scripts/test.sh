#!/usr/bin/env bash
# Runs every test: the C++ engine's Catch2 tests (CTest), then the Python tests (pytest,
# which start their own redis-server and PostgreSQL). Both always run; the exit code is
# non-zero when either failed. Arguments go to pytest, e.g. scripts/test.sh -k memory -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

cpp_tests() {
  cmake -S . -B build/cpp -G Ninja --log-level=WARNING -DHERDCACHE_BUILD_PYTHON=OFF -DHERDCACHE_BUILD_TESTS=ON &&
    cmake --build build/cpp &&
    ctest --test-dir build/cpp --output-on-failure --no-tests=error
}

echo "=== C++ tests (CTest)"
cpp_status=0
cpp_tests || cpp_status=$?

echo "=== Python tests (pytest)"
py_status=0
.venv/bin/python -m pytest "$@" || py_status=$?

if ((cpp_status || py_status)); then
  echo "test.sh: FAILED: C++ tests exit $cpp_status, Python tests exit $py_status" >&2
  exit 1
fi
