#include <exception>

#include "bindings.hpp"
#include "herdcache/errors.hpp"

namespace herdcache::py_bindings {

PyObject* CacheError = nullptr;
PyObject* SerializationError = nullptr;

void set_python_error_from_current_exception() noexcept {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (const InvalidArgument& e) {
    PyErr_SetString(PyExc_ValueError, e.what());
  } catch (const KeyTypeError& e) {
    PyErr_SetString(PyExc_TypeError, e.what());
  } catch (const ClosedError& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what());
  } catch (const Error& e) {
    PyErr_SetString(CacheError, e.what());
  } catch (const std::bad_alloc&) {
    PyErr_NoMemory();
  } catch (const std::exception& e) {
    PyErr_SetString(CacheError, e.what());
  }
}

void register_errors(py::module_& m) {
  CacheError = PyErr_NewExceptionWithDoc("herdcache.CacheError",
                                         "Base class of herdcache's own errors.", PyExc_Exception,
                                         nullptr);
  py::object bases = py::make_tuple(py::handle(CacheError), py::handle(PyExc_TypeError));
  SerializationError = PyErr_NewExceptionWithDoc(
      "herdcache.SerializationError",
      "A value could not be serialized (or a payload deserialized); nothing was stored.",
      bases.ptr(), nullptr);
  m.attr("CacheError") = py::handle(CacheError);
  m.attr("SerializationError") = py::handle(SerializationError);
  py::register_exception_translator([](std::exception_ptr p) {
    if (!p) return;
    try {
      std::rethrow_exception(p);
    } catch (const Error&) {
      set_python_error_from_current_exception();
    }
  });
}

}  // namespace herdcache::py_bindings
