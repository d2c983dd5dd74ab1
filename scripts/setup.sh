#!/usr/bin/env bash
# Installs what herdcache needs to build, test and run on Debian 12, and nothing that is
# already there: the Debian packages (apt-get, only when some are missing), then .venv with
# herdcache and its dev + bench extras. Idempotent; silent when there is nothing to do but
# for the build's progress lines; on a failure it prints the failed step's whole output.
# test.sh, test-pythons.sh and run-example.sh call it.
#   HERDCACHE_PYTHON=python3.12 HERDCACHE_VENV=.venv-3.12 scripts/setup.sh
# sets up another interpreter's environment beside .venv (default: python3 into .venv).
# To start the Python side over: rm -rf .venv build
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${HERDCACHE_PYTHON:-python3}
VENV=${HERDCACHE_VENV:-.venv}
command -v "$PYTHON" >/dev/null || { echo "setup.sh: $PYTHON not found (HERDCACHE_PYTHON)" >&2; exit 1; }

# redis-server and postgresql: the tests start their own servers from these binaries
# (tests/servers.py); the instances the Debian packages set up are never used. ccache:
# the development build and the wheel builds share one compiler cache (scripts/build-env.sh).
# clang, libclang-rt-14-dev (libFuzzer and clang's sanitizer runtimes) and llvm
# (llvm-symbolizer for readable sanitizer reports): scripts/fuzz.sh and test.sh --sanitize.
# wrk: the HTTP load generator of benchmarks/bench_http.py.
# openssl (the CLI): the TLS tests make a throwaway CA with it (tests/servers.py).
APT_PACKAGES=(build-essential cmake ninja-build pkg-config ccache libhiredis-dev libpq-dev libssl-dev
              libfmt-dev catch2 libxxhash-dev redis-server postgresql openssl
              clang libclang-rt-14-dev llvm wrk
              libzstd-dev)  # Policy(compress_min_bytes=...): zstd in the engine
# Debian's own python3 needs python3-venv for `python3 -m venv` and python3-dev for the
# headers the native module compiles against (pyenv's Pythons have both).
"$PYTHON" -c 'import ensurepip' 2>/dev/null || APT_PACKAGES+=(python3-venv)
"$PYTHON" -c 'import os, sysconfig, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' ||
  APT_PACKAGES+=(python3-dev)
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

# step_build DESCRIPTION COMMAND...: like step, and shows the build's progress as it goes
# (Ninja's "[12/41] Building CXX object ..." lines, as "[12/41] cpp/src/memory.cpp"; the
# last one, the module's link, is where the link-time optimization runs: ~20 s).
step_build() {
  local what=$1; shift
  if ! "$@" 2>&1 | tee "$LOG" | awk '/^ *\[[0-9]+\/[0-9]+\] (Building|Linking CXX shared)/ {
        src = $NF; sub(/^.*\.dir\//, "", src); sub(/\.o$/, "", src)
        print "setup.sh:   " $1 " " src; fflush() }' >&2; then
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

# --- the virtual environment with herdcache ---------------------------------------------
# How herdcache goes into .venv, measured on a 2-core machine:
# - editable (-e): tests and examples import python/herdcache straight from the work tree,
#   so a Python change needs no reinstall;
# - --no-build-isolation: the CMake build dir keeps stable paths to Python and pybind11, so
#   ninja rebuilds only what changed. With build isolation each pip run gets a new
#   temporary environment and CMake recompiles everything (15-30 s per run even with no
#   change);
# - the build dir is build/dev/<wheel tag> (build/dev-venv-3.N/<wheel tag> for another
#   venv), this script's alone: `pip wheel .` and
#   `pip install .` build in a temporary directory (pyproject sets no build-dir), and
#   scripts/build-wheel.sh in build/wheel/<wheel tag>, so neither touches it;
# - pip runs only when pyproject.toml or CMakeLists.txt changed (stamp in the venv).
#   Otherwise the native module is rebuilt in that build dir and installed over the
#   editable install's copy: a fraction of a second when nothing changed, against ~5 s
#   for pip.
# Not chosen: scikit-build-core's editable.rebuild, which rebuilds on every import in every
# process (~1 s each, and build output in every program's stdout).
source scripts/build-env.sh
[[ -x $VENV/bin/python ]] || step "create $VENV" "$PYTHON" -m venv "$VENV"
PY=$VENV/bin/python
STAMP=$VENV/herdcache-install.stamp
wheel_tag=$($PY -c 'import sys, sysconfig; v = "cp%d%d" % sys.version_info[:2]; print(f"{v}-{v}-" + sysconfig.get_platform().replace("-", "_").replace(".", "_"))')
# One build dir per venv (another venv of the same Python must not reconfigure it).
venv_name=$(basename "$VENV")
if [[ $venv_name == .venv ]]; then build_dir=build/dev/$wheel_tag; else build_dir=build/dev-${venv_name#.}/$wheel_tag; fi
want_stamp="$(pwd) $EXTRAS $build_dir $CCACHE_LAUNCHER $(cat pyproject.toml CMakeLists.txt | sha256sum | cut -d' ' -f1)"

quick=""
if [[ -f $STAMP && "$(cat "$STAMP")" == "$want_stamp" && -f $build_dir/CMakeCache.txt ]]; then
  # Use the cmake that configured the build dir (pip may have found another one), as long
  # as it is still there and the build dir belongs to this tree.
  cmake_bin=$(sed -n 's/^CMAKE_COMMAND:INTERNAL=//p' "$build_dir/CMakeCache.txt")
  home=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$build_dir/CMakeCache.txt")
  if [[ ! -x $cmake_bin ]]; then
    echo "setup.sh: $build_dir was configured by $cmake_bin, which is gone: configuring it again" >&2
  elif [[ $home != "$(pwd)" ]]; then
    echo "setup.sh: $build_dir was configured for $home, not this tree: configuring it again" >&2
  else
    quick=yes
  fi
fi

if [[ -n $quick ]]; then
  site=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
  step_build "build the native module" "$cmake_bin" --build "$build_dir"
  step "install the native module" "$cmake_bin" --install "$build_dir" --prefix "$site"
else
  echo "setup.sh: installing herdcache[$EXTRAS] into $VENV (builds the C++ engine in $build_dir)" >&2
  rm -f "$STAMP"
  rm -rf "$build_dir"
  step "upgrade pip" $PY -m pip install --upgrade pip
  # Without build isolation the build requirements must be in the venv: take pyproject's list.
  requires=$($PY -c 'import sys
if sys.version_info >= (3, 11):
    import tomllib
else:
    from pip._vendor import tomli as tomllib
print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], sep="\n")')
  mapfile -t build_requires <<<"$requires"
  step "install the build requirements" $PY -m pip install "${build_requires[@]}"
  step_build "pip install -e .[$EXTRAS]" $PY -m pip install -v --no-build-isolation \
    -Cbuild-dir="$build_dir" ${CCACHE_LAUNCHER:+-Ccmake.define.CMAKE_CXX_COMPILER_LAUNCHER="$CCACHE_LAUNCHER"} \
    -e ".[$EXTRAS]"
  echo "$want_stamp" > "$STAMP"
fi
