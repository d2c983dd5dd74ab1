#!/usr/bin/env bash
# Runs the Python test suite on every supported CPython found (scripts/find-pythons.sh:
# the versions pyproject.toml lists), each in its own virtual environment .venv-3.N that
# scripts/setup.sh makes and keeps up to date like .venv. Arguments go to pytest. Prints a
# line per version and exits non-zero when any version failed or none was found.
# The C++ tests do not depend on Python: scripts/test.sh runs them. CI runs test.sh, on
# .venv's Python alone.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t pythons < <(scripts/find-pythons.sh)
((${#pythons[@]})) || { echo "test-pythons.sh: no supported CPython found" >&2; exit 1; }

results=()
status=0
for python in "${pythons[@]}"; do
  version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  venv=.venv-$version
  echo "=== CPython $version: $python, in $venv"
  export HERDCACHE_PYTHON=$python HERDCACHE_VENV=$venv  # setup.sh, and the wheel test's build-wheel.sh
  if scripts/setup.sh && "$venv/bin/python" -m pytest "$@"; then
    results+=("CPython $version: passed")
  else
    results+=("CPython $version: FAILED")
    status=1
  fi
done
printf 'test-pythons.sh: %s\n' "${results[@]}"
exit $status
