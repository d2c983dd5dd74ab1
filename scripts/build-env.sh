# Sourced by the scripts that build the native module (setup.sh, build-wheel.sh).
#
# At most two compile jobs (CMAKE_BUILD_PARALLEL_LEVEL, which `cmake --build` and so
# scikit-build-core follow; Ninja alone would run cores + 2), unless the caller set it.
#
# The development build and every wheel go through one compiler cache in build/ccache, so a
# wheel build compiles only what differs from the development build (another Python's
# bindings), not the whole engine again. Paths under the tree are hashed relative to the
# build dir (CCACHE_BASEDIR), which is why both build dirs sit at the same depth:
# build/dev/<wheel tag> and build/wheel/<wheel tag>.
# Sets CCACHE_LAUNCHER: a CMake list for CMAKE_CXX_COMPILER_LAUNCHER, empty without ccache.
CCACHE_LAUNCHER=""
if command -v ccache >/dev/null; then
  CCACHE_LAUNCHER="env;CCACHE_DIR=$(pwd)/build/ccache;CCACHE_BASEDIR=$(pwd);CCACHE_MAXSIZE=2G;ccache"
fi
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
