#include <fmt/format.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "bindings.hpp"
#include "herdcache/errors.hpp"
#include "herdcache/keys.hpp"

namespace herdcache::py_bindings {

namespace {
constexpr int kMaxDepth = 32;

void encode_big_int(KeyBuilder& builder, PyObject* value) {
  py::object text = py::reinterpret_steal<py::object>(PyNumber_ToBase(value, 10));
  if (!text) throw py::error_already_set();
  Py_ssize_t size = 0;
  const char* digits = PyUnicode_AsUTF8AndSize(text.ptr(), &size);
  if (!digits) throw py::error_already_set();
  builder.add_int_decimal({digits, static_cast<std::size_t>(size)});
}
}  // namespace

void encode_value(KeyBuilder& builder, PyObject* value, int depth) {
  if (depth > kMaxDepth) throw KeyTypeError("cache key arguments are nested deeper than 32 levels");
  if (value == Py_None) {
    builder.add_none();
  } else if (value == Py_True || value == Py_False) {
    builder.add_bool(value == Py_True);
  } else if (PyUnicode_Check(value)) {
    Py_ssize_t size = 0;
    const char* text = PyUnicode_AsUTF8AndSize(value, &size);
    if (!text) throw py::error_already_set();
    builder.add_str({text, static_cast<std::size_t>(size)});
  } else if (PyLong_Check(value)) {
    int overflow = 0;
    long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow != 0) {
      encode_big_int(builder, value);
    } else {
      if (number == -1 && PyErr_Occurred()) throw py::error_already_set();
      builder.add_int(number);
    }
  } else if (PyFloat_Check(value)) {
    builder.add_float(PyFloat_AS_DOUBLE(value));
  } else if (PyBytes_Check(value)) {
    builder.add_bytes({PyBytes_AS_STRING(value), static_cast<std::size_t>(PyBytes_GET_SIZE(value))});
  } else if (PyTuple_Check(value) || PyList_Check(value)) {
    builder.begin_list();
    // PySequence_Fast_ITEMS would be unsafe for a list mutated during encoding; index each.
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(value); ++i) {
      encode_value(builder, PySequence_Fast_GET_ITEM(value, i), depth + 1);
    }
    builder.end_list();
  } else if (PyDict_Check(value)) {
    builder.begin_dict();
    Py_ssize_t pos = 0;
    PyObject* item_key = nullptr;
    PyObject* item_value = nullptr;
    while (PyDict_Next(value, &pos, &item_key, &item_value)) {
      encode_value(builder, item_key, depth + 1);
      builder.dict_value();
      encode_value(builder, item_value, depth + 1);
    }
    builder.end_dict();
  } else {
    throw KeyTypeError(fmt::format(
        "cannot build a cache key from a value of type {} (use None, bool, int, float, str, "
        "bytes, or lists, tuples and dicts of them)",
        Py_TYPE(value)->tp_name));
  }
}

namespace {
// Handles released on a thread without the GIL (the Redis subscriber applying another
// instance's invalidation to the memory tier) are parked here and released by the next
// Python-side call: a C++ thread never touches a Python object.
std::mutex graveyard_mutex;
std::vector<PyObject*> graveyard;
std::atomic<bool> graveyard_full{false};

// Counted by the object's own reference count: copies happen only with the GIL held
// (bindings.hpp), releases anywhere.
void retain_object(void* p) noexcept { Py_INCREF(static_cast<PyObject*>(p)); }

void release_object(void* p) noexcept {
  if (PyGILState_Check()) {
    Py_DECREF(static_cast<PyObject*>(p));
    return;
  }
  std::lock_guard lock(graveyard_mutex);
  graveyard.push_back(static_cast<PyObject*>(p));
  graveyard_full.store(true, std::memory_order_release);
}

constexpr Handle::Ops kObjectOps{retain_object, release_object};
}  // namespace

Handle make_handle(PyObject* object) {
  Py_INCREF(object);
  return Handle(object, &kObjectOps);
}

void release_parked_handles() noexcept {
  if (!graveyard_full.load(std::memory_order_acquire)) return;
  std::vector<PyObject*> dead;
  {
    std::lock_guard lock(graveyard_mutex);
    dead.swap(graveyard);
    graveyard_full.store(false, std::memory_order_release);
  }
  for (PyObject* p : dead) Py_DECREF(p);  // with the GIL: every caller holds it
}

void register_keys(py::module_& m) {
  py::class_<Key>(m, "Key", "A canonical cache key; str(key) is the key as stored.")
      .def("__str__", [](const Key& k) { return k.str; })
      .def("__repr__", [](const Key& k) { return fmt::format("Key({:?})", k.str); })
      .def("__eq__", [](const Key& a, const py::object& b) {
        return py::isinstance<Key>(b) && a.str == b.cast<const Key&>().str;
      })
      .def("__hash__", [](const Key& k) { return static_cast<Py_ssize_t>(k.hash >> 1); })
      .def_property_readonly("resource", [](const Key& k) { return k.resource; })
      .def_property_readonly("canonical", [](const Key& k) { return std::string(k.canonical()); })
      .def_property_readonly("hashed", [](const Key& k) { return !k.full.empty(); });
}

}  // namespace herdcache::py_bindings
