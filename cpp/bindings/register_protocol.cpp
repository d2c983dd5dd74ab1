// LeaseProtocol for Python: herdcache._ops runs a flight leader's round trips and loaders,
// and asks this what to do after each reply. Steps are plain ints (class attributes), the
// cheapest thing to compare on the miss path.
#include "bindings.hpp"
#include "engine_handle.hpp"
#include "herdcache/lease_protocol.hpp"

namespace herdcache::py_bindings {

namespace {

// Keeps the engine (and so the resource's counters) alive as long as the protocol.
struct PyLeaseProtocol {
  py::object engine;
  LeaseProtocol protocol;
};

Nanos real_now() { return system_clock()->monotonic_ns(); }  // lease waits are real waits

}  // namespace

void register_protocol(py::module_& m) {
  using Next = LeaseProtocol::Next;
  auto cls = py::class_<PyLeaseProtocol>(m, "LeaseProtocol", "One flight leader's shared-tier protocol (lease_protocol.hpp).");
  cls.def(py::init([](py::object engine, const Key& key, bool refreshing, double lock_timeout_seconds) {
            Resource& res = engine.cast<EngineHandle&>().engine.resource(key.resource);
            return new PyLeaseProtocol{engine, LeaseProtocol(refreshing, seconds_to_nanos(lock_timeout_seconds),
                                                             res.counters)};
          }),
          py::arg("engine"), py::arg("key"), py::arg("refreshing"), py::arg("lock_timeout_seconds"))
      .def("on_reply",
           [](PyLeaseProtocol& p, int status, int lease, const std::string& holder, bool usable) {
             return static_cast<int>(p.protocol.on_reply(static_cast<TierResult::Status>(status),
                                                         static_cast<TierResult::Lease>(lease), holder, usable,
                                                         real_now()));
           },
           py::arg("status"), py::arg("lease"), py::arg("holder"), py::arg("usable"))
      .def("fill_waited", [](PyLeaseProtocol& p) { return static_cast<int>(p.protocol.fill_waited(real_now())); })
      .def_property_readonly("wait_seconds", [](const PyLeaseProtocol& p) { return p.protocol.wait_ns() / 1e9; });
  for (auto [name, next] : {std::pair{"SERVE", Next::Serve}, {"SERVE_AND_REFRESH", Next::ServeAndRefresh},
                            {"LOAD_LEASED", Next::LoadLeased}, {"LOAD_UNLEASED", Next::LoadUnleased},
                            {"WATCH", Next::Watch}, {"WAIT_FILL", Next::WaitFill}, {"READ", Next::Read}}) {
    cls.attr(name) = static_cast<int>(next);
  }
}

}  // namespace herdcache::py_bindings
