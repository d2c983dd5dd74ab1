// ReadProtocol for Python: herdcache._ops performs the steps (lookups, round trips,
// loaders, writes) and asks this what to do after each. Steps are plain ints (class
// attributes), the cheapest thing to compare on the miss path.
#include "bindings.hpp"
#include "engine_handle.hpp"
#include "herdcache/read_protocol.hpp"

namespace herdcache::py_bindings {

namespace {

// Keeps the engine (and so the resource's counters) alive as long as the protocol.
struct PyReadProtocol {
  py::object engine;
  ReadProtocol protocol;
};

Nanos real_now() { return system_clock()->monotonic_ns(); }  // lease waits are real waits

}  // namespace

void register_protocol(py::module_& m) {
  using Next = ReadProtocol::Next;
  auto cls = py::class_<PyReadProtocol>(m, "ReadProtocol", "One flight leader's protocol (read_protocol.hpp).");
  cls.def(py::init([](py::object engine, const Key& key, bool refreshing, bool leased, bool restarted,
                      double lock_timeout_seconds) {
            EngineHandle& handle = engine.cast<EngineHandle&>();
            Resource& res = handle.engine.resource(key.resource);
            bool shared = handle.engine.redis() != nullptr;
            return new PyReadProtocol{engine, ReadProtocol({shared, refreshing, leased, restarted},
                                                           seconds_to_nanos(lock_timeout_seconds), res.counters)};
          }),
          py::arg("engine"), py::arg("key"), py::arg("refreshing"), py::arg("leased"), py::arg("restarted"),
          py::arg("lock_timeout_seconds"))
      .def("begin", [](PyReadProtocol& p) { return static_cast<int>(p.protocol.begin()); })
      .def("on_reply",
           [](PyReadProtocol& p, int status, int lease, const std::string& holder, bool usable) {
             return static_cast<int>(p.protocol.on_reply(static_cast<TierResult::Status>(status),
                                                         static_cast<TierResult::Lease>(lease), holder, usable,
                                                         real_now()));
           },
           py::arg("status"), py::arg("lease"), py::arg("holder"), py::arg("usable"))
      .def("fill_waited", [](PyReadProtocol& p) { return static_cast<int>(p.protocol.fill_waited(real_now())); })
      .def("loaded", [](const PyReadProtocol& p, bool stored) { return static_cast<int>(p.protocol.loaded(stored)); },
           py::arg("stored"))
      .def("failed", [](const PyReadProtocol& p) { return static_cast<int>(p.protocol.failed()); })
      .def("cancelled",
           [](const PyReadProtocol& p, bool followed, bool open) {
             return static_cast<int>(p.protocol.cancelled(followed, open));
           },
           py::arg("followed"), py::arg("open"))
      .def_property_readonly("wait_seconds", [](const PyReadProtocol& p) { return p.protocol.wait_ns() / 1e9; })
      .def_static("on_conditional_reply",
                  [](int status) {
                    return static_cast<int>(ReadProtocol::on_conditional_reply(static_cast<TierResult::Status>(status)));
                  },
                  py::arg("status"))
      .def_static("holds_locally", &ReadProtocol::holds_locally, py::arg("expected"), py::arg("cached"),
                  py::arg("equal"));
  for (auto [name, next] : {std::pair{"SERVE", Next::Serve}, {"SERVE_AND_REFRESH", Next::ServeAndRefresh},
                            {"LEAD", Next::Lead}, {"FETCH", Next::Fetch}, {"MISS", Next::Miss},
                            {"LOAD_LEASED", Next::LoadLeased}, {"LOAD_UNLEASED", Next::LoadUnleased},
                            {"WATCH", Next::Watch}, {"WAIT_FILL", Next::WaitFill}, {"READ", Next::Read},
                            {"WRITE", Next::Write}, {"RELEASE", Next::Release}, {"RESTART", Next::Restart},
                            {"DONE", Next::Done}}) {
    cls.attr(name) = static_cast<int>(next);
  }
  using Conditional = ReadProtocol::Conditional;
  for (auto [name, outcome] : {std::pair{"STORED", Conditional::Stored}, {"REFUSED", Conditional::Refused},
                               {"DECIDE_LOCALLY", Conditional::DecideLocally}}) {
    cls.attr(name) = static_cast<int>(outcome);
  }
  cls.attr("GET") = static_cast<int>(ReadProtocol::Op::Get);
  cls.attr("GET_OR_LOAD") = static_cast<int>(ReadProtocol::Op::GetOrLoad);
}

}  // namespace herdcache::py_bindings
