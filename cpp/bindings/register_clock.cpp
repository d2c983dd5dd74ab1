#include "bindings.hpp"
#include "herdcache/clock.hpp"

namespace herdcache::py_bindings {

void register_clock(py::module_& m) {
  py::class_<ManualClock, std::shared_ptr<ManualClock>>(
      m, "ManualClock", "A clock that moves only when told: for tests of TTL and expiry.")
      // Starts at the real wall time, so values it stamps for Redis expire sensibly there.
      .def(py::init([] { return std::make_shared<ManualClock>(kNanosPerSecond, SystemClock().wall_ns()); }))
      .def("advance", &ManualClock::advance_seconds, py::arg("seconds"),
           "Moves monotonic and wall time forward by `seconds`.")
      .def("monotonic", [](const ManualClock& c) { return c.monotonic_ns() / 1e9; })
      .def("time", [](const ManualClock& c) { return c.wall_ns() / 1e9; });
}

}  // namespace herdcache::py_bindings
