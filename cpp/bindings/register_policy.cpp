#include <fmt/format.h>

#include "bindings.hpp"
#include "herdcache/policy.hpp"

namespace herdcache::py_bindings {

void register_policy(py::module_& m) {
  py::class_<Policy>(m, "Policy",
                     "Freshness policy of a resource. Durations in seconds; validated here.")
      .def(py::init(&Policy::make), py::arg("ttl"), py::arg("stale") = 0.0,
           py::arg("jitter") = 0.1, py::arg("early_refresh") = 0.0, py::arg("memory") = true)
      .def_readonly("ttl", &Policy::ttl_s)
      .def_readonly("stale", &Policy::stale_s)
      .def_readonly("jitter", &Policy::jitter)
      .def_readonly("early_refresh", &Policy::early_refresh)
      .def_readonly("memory", &Policy::memory)
      .def("__eq__", [](const Policy& a, const py::object& b) {
        return py::isinstance<Policy>(b) && a == b.cast<const Policy&>();
      })
      .def("__hash__", [](const Policy& p) {
        return py::hash(py::make_tuple(p.ttl_s, p.stale_s, p.jitter, p.early_refresh, p.memory));
      })
      .def("__repr__", [](const Policy& p) {
        return fmt::format("Policy(ttl={}, stale={}, jitter={}, early_refresh={}, memory={})",
                           p.ttl_s, p.stale_s, p.jitter, p.early_refresh,
                           p.memory ? "True" : "False");
      });
}

}  // namespace herdcache::py_bindings
