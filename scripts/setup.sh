#!/usr/bin/env bash
# Installs what herdcache needs to build, test and run on Debian 12, and nothing that is
# already there: the Debian packages (apt-get, only when some are missing), then .venv with
# herdcache and its dev + bench extras. Idempotent; silent when there is nothing to do; on
# a failure it prints the failed step's whole output. test.sh and run-example.sh call it.
# To start the Python side over: rm -rf .venv build
set -euo pipefail
cd "$(dirname "$0")/.."

# redis-server and postgresql: the tests start their own servers from these binaries
# (tests/servers.py); the instances the Debian packages set up are never used.
# clang, libclang-rt-14-dev (libFuzzer and clang's sanitizer runtimes) and llvm
# (llvm-symbolizer for readable sanitizer reports): scripts/fuzz.sh and test.sh --sanitize.
# wrk: the HTTP load generator of benchmarks/bench_http.py.
# openssl (the CLI): the TLS tests make a throwaway CA with it (tests/servers.py).
APT_PACKAGES=(build-essential cmake ninja-build pkg-config libhiredis-dev libpq-dev libssl-dev
              libfmt-dev catch2 libxxhash-dev redis-server postgresql openssl
              clang libclang-rt-14-dev llvm wrk)
# Debian's own python3 needs python3-venv for `python3 -m venv` (pyenv's Python does not).
python3 -c 'import ensurepip' 2>/dev/null || APT_PACKAGES+=(python3-venv)
EXTRAS="dev,bench"

LOG=$(mktemp)
cleanup() { rm -f "$LOG"; [[ -z ${POLICY_RC_D:-} ]] || ${SUDO:-} rm -f "$POLICY_RC_D"; }
trap cleanup EXIT

# step DESCRIPTION COMMAND...: runs quietly; on failure shows the output and stops.
step() {
  local what=$1; shift
  if ! "$@" >"$LOG" 2>&1; then
    { echo "setup.sh: FAILED: $what"; echo "\$ $*"; cat "$LOG"; } >&2
    exit 1
  fi
}

# --- Debian packages -------------------------------------------------------------------
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  SUDO=""
  if [[ $EUID -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup.sh: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
    SUDO="sudo"
  fi
  echo "setup.sh: installing Debian packages: ${missing[*]}" >&2
  # Keep the packages from starting their services (postgresql's "main" cluster on 5432,
  # redis on 6379): nothing here uses them, and without an init system starting them can
  # fail the install. Only when no policy is in place already (Docker images ship one).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    POLICY_RC_D=/usr/sbin/policy-rc.d
    step "deny service starts during the install" $SUDO sh -c "printf '#!/bin/sh\nexit 101\n' > $POLICY_RC_D && chmod +x $POLICY_RC_D"
  fi
  step "apt-get update" $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  step "apt-get install" $SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- .venv with herdcache ----------------------------------------------------------------
# How herdcache goes into .venv, measured on a 2-core machine:
# - editable (-e): tests and examples import python/herdcache straight from the work tree,
#   so a Python change needs no reinstall;
# - --no-build-isolation: the CMake build dir (pyproject's build-dir, build/<wheel tag>)
#   keeps stable paths to Python and pybind11, so ninja rebuilds only what changed. With
#   build isolation each pip run gets a new temporary environment and CMake recompiles
#   everything (15-30 s per run even with no change);
# - pip runs only when pyproject.toml or CMakeLists.txt changed (stamp in .venv). Otherwise
#   the native module is rebuilt in that build dir and installed over the editable
#   install's copy: a fraction of a second when nothing changed, against ~5 s for pip.
# Not chosen: scikit-build-core's editable.rebuild, which rebuilds on every import in every
# process (~1 s each, and build output in every program's stdout).
[[ -x .venv/bin/python ]] || step "create .venv" python3 -m venv .venv
PY=.venv/bin/python
STAMP=.venv/herdcache-install.stamp
want_stamp="$(pwd) $EXTRAS $(cat pyproject.toml CMakeLists.txt | sha256sum | cut -d' ' -f1)"
build_dirs=(build/cp"$($PY -c 'import sys; print("%d%d" % sys.version_info[:2])')"-*/)  # build/<wheel tag>/
build_dir=${build_dirs[0]}

if [[ -f $STAMP && "$(cat "$STAMP")" == "$want_stamp" && -f ${build_dir}CMakeCache.txt ]]; then
  # Use the cmake that configured the build dir (pip may have found another one).
  cmake_bin=$(sed -n 's/^CMAKE_COMMAND:INTERNAL=//p' "${build_dir}CMakeCache.txt")
  site=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
  step "build the native module" "$cmake_bin" --build "$build_dir"
  step "install the native module" "$cmake_bin" --install "$build_dir" --prefix "$site"
else
  echo "setup.sh: installing herdcache[$EXTRAS] into .venv (builds the C++ engine)" >&2
  rm -f "$STAMP"
  step "upgrade pip" $PY -m pip install --upgrade pip
  # Without build isolation the build requirements must be in .venv: take pyproject's list.
  requires=$($PY -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")')
  mapfile -t build_requires <<<"$requires"
  step "install the build requirements" $PY -m pip install "${build_requires[@]}"
  step "pip install -e .[$EXTRAS]" $PY -m pip install --no-build-isolation -e ".[$EXTRAS]"
  echo "$want_stamp" > "$STAMP"
fi
