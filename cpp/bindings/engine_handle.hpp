// The Python-owned engine. Call sites keep a shared_ptr to it, so a decorated function
// outliving its manager still points at a live (closed) engine rather than freed memory.
#pragma once
#include <pybind11/pybind11.h>

#include "herdcache/engine.hpp"

namespace herdcache::py_bindings {

struct EngineHandle {
  EngineHandle(EngineOptions options, std::shared_ptr<const Clock> clock)
      : engine(std::move(options), std::move(clock)) {}
  Engine engine;
  // The serializer's loads when payloads are unsigned, else None (see l2_fetch).
  pybind11::object plain_loads;
};

}  // namespace herdcache::py_bindings
