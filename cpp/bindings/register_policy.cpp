#include <optional>

#include <fmt/format.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "herdcache/errors.hpp"
#include "herdcache/policy.hpp"

namespace herdcache::py_bindings {

namespace {
// Python's None is the engine's kNeverCompress; a negative count is a mistake, not "never".
std::int64_t compress_threshold(std::optional<std::int64_t> min_bytes) {
  if (!min_bytes) return Policy::kNeverCompress;
  if (*min_bytes < 0) {
    throw InvalidArgument(fmt::format("compress_min_bytes must be an integer >= 0 or None, got {}", *min_bytes));
  }
  return *min_bytes;
}

py::object compress_attr(const Policy& p) {
  return p.compress_min_bytes == Policy::kNeverCompress ? py::object(py::none()) : py::int_(p.compress_min_bytes);
}
}  // namespace

void register_policy(py::module_& m) {
  py::class_<Policy>(m, "Policy",
                     "Freshness policy of a resource. Durations in seconds; validated here.")
      .def(py::init([](double ttl, double stale, double jitter, double early_refresh, bool memory,
                       std::optional<std::int64_t> compress_min_bytes) {
             return Policy::make(ttl, stale, jitter, early_refresh, memory, compress_threshold(compress_min_bytes));
           }),
           py::arg("ttl"), py::arg("stale") = 0.0, py::arg("jitter") = 0.1, py::arg("early_refresh") = 0.0,
           py::arg("memory") = true, py::arg("compress_min_bytes") = py::none())
      .def_readonly("ttl", &Policy::ttl_s)
      .def_readonly("stale", &Policy::stale_s)
      .def_readonly("jitter", &Policy::jitter)
      .def_readonly("early_refresh", &Policy::early_refresh)
      .def_readonly("memory", &Policy::memory)
      .def_property_readonly("compress_min_bytes",
                             [](const Policy& p) -> std::optional<std::int64_t> {
                               if (p.compress_min_bytes == Policy::kNeverCompress) return std::nullopt;
                               return p.compress_min_bytes;
                             })
      .def("__eq__", [](const Policy& a, const py::object& b) {
        return py::isinstance<Policy>(b) && a == b.cast<const Policy&>();
      })
      .def("__hash__", [](const Policy& p) {
        return py::hash(py::make_tuple(p.ttl_s, p.stale_s, p.jitter, p.early_refresh, p.memory, p.compress_min_bytes));
      })
      .def("__repr__", [](const Policy& p) {
        return fmt::format("Policy(ttl={}, stale={}, jitter={}, early_refresh={}, memory={}, compress_min_bytes={})",
                           p.ttl_s, p.stale_s, p.jitter, p.early_refresh, p.memory ? "True" : "False",
                           py::repr(compress_attr(p)).cast<std::string>());
      });
}

}  // namespace herdcache::py_bindings
