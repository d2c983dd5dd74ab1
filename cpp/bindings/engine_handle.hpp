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

  // Whether herds happen here, for Bridge::settle_in_herd: flights finished in a row with
  // fewer than kHerdFollowers followers (loop thread only: the bindings' finish_load).
  static constexpr std::uint64_t kHerdFollowers = 8;
  std::uint64_t flights_without_herd = 0;
  void flight_finished(std::uint64_t followers) {
    flights_without_herd = followers >= kHerdFollowers ? 0 : flights_without_herd + 1;
  }
};

}  // namespace herdcache::py_bindings
