#!/usr/bin/env bash
# Prints one interpreter per CPython version herdcache supports (pyproject.toml's
# "Programming Language :: Python :: 3.N" classifiers), the newest patch release found of
# each: pyenv's versions first, then python3.N on PATH, /usr/local/bin, /usr/bin. A
# version with no interpreter here is named on stderr. Exit 1 when none is found.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t versions < <(sed -n 's/^ *"Programming Language :: Python :: \(3\.[0-9][0-9]*\)",*$/\1/p' pyproject.toml)
((${#versions[@]})) || { echo "find-pythons.sh: no 'Programming Language :: Python :: 3.N' classifier in pyproject.toml" >&2; exit 1; }
pyenv_root=$(pyenv root 2>/dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")

found=0
for version in "${versions[@]}"; do
  candidates=()
  mapfile -t -O 0 candidates < <(ls -d "$pyenv_root/versions/$version".*/bin/python"$version" 2>/dev/null | sort -V -r)
  on_path=$(command -v "python$version" 2>/dev/null || true)
  [[ $on_path == */shims/* ]] && on_path=""  # a pyenv shim runs only the selected version
  candidates+=($on_path /usr/local/bin/python"$version" /usr/bin/python"$version")
  python=""
  for candidate in "${candidates[@]}"; do
    if [[ -x $candidate ]] && "$candidate" -c "import sys; sys.exit(sys.implementation.name != 'cpython' or '%d.%d' % sys.version_info[:2] != '$version')" 2>/dev/null; then
      python=$candidate
      break
    fi
  done
  if [[ -n $python ]]; then
    echo "$python"
    found=$((found + 1))
  else
    echo "find-pythons.sh: no CPython $version found" >&2
  fi
done
((found))
