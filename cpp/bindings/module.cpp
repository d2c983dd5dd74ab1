// The herdcache._native module: one register_<concept> call per engine concept.
#include "bindings.hpp"

PYBIND11_MODULE(_native, m) {
  using namespace herdcache::py_bindings;
  m.doc() = "herdcache's C++ engine (internal: use the herdcache package)";
  register_errors(m);
  register_codes(m);
  register_clock(m);
  register_policy(m);
  register_keys(m);
  register_engine(m);
  register_callsite(m);
  register_bridge(m);
  register_redis(m);
  register_protocol(m);
  register_get(m);
  register_postgres(m);
}
