// Shared declarations of the pybind11 module. Only this folder includes pybind11; it
// translates between Python objects and the engine and holds no cache logic.
#pragma once
#include <Python.h>
#include <pybind11/pybind11.h>

#include "herdcache/engine.hpp"
#include "herdcache/keys.hpp"
#include "herdcache/memory.hpp"

namespace herdcache::py_bindings {

namespace py = pybind11;

void register_errors(py::module_& m);
void register_codes(py::module_& m);  // codes.hpp as module attributes
void register_clock(py::module_& m);
void register_policy(py::module_& m);
void register_keys(py::module_& m);
void register_engine(py::module_& m);
void register_callsite(py::module_& m);
void register_bridge(py::module_& m);  // Bridge, SlowRead, FillWaiter (bridge.hpp)
void register_redis(py::module_& m);   // after register_engine: adds Engine methods
void register_protocol(py::module_& m);
void register_get(py::module_& m);     // after register_bridge: uses its SlowRead
void register_postgres(py::module_& m);

struct EngineHandle;
// get()'s Redis read (no lease, no write to follow): the value, None, or a SlowRead for
// Python to finish; with a bridge (the running loop's), a future of that. register_redis.
py::object l2_fetch(EngineHandle& e, py::object key_object, const Key& key, py::object bridge);

// Set by a decorated function's fast path when XFetch picked the read for an early refresh;
// consumed by the slow path's Engine.get on the same thread.
inline thread_local bool early_refresh_chosen = false;

// Exception types created by register_errors.
extern PyObject* CacheError;
extern PyObject* SerializationError;

// Sets the Python error for the C++ exception being handled (inside a catch block);
// for entry points that bypass pybind11's own translation (the raw fast-call functions).
void set_python_error_from_current_exception() noexcept;

// Appends one Python value to a key. Throws KeyTypeError for unsupported types and
// py::error_already_set when Python itself raised (e.g. a str with lone surrogates).
void encode_value(KeyBuilder& builder, PyObject* value, int depth = 0);

// Wraps a Python object as an engine handle; the reference is dropped when the engine
// lets go of the handle. The engine only releases handles on threads that hold the GIL
// (every engine entry point is called from Python with the GIL held).
Handle make_handle(PyObject* object);
// Releases handles that were dropped on threads without the GIL. Call with the GIL held.
void release_parked_handles() noexcept;

// Whether a load runs in the current context whose entry records what it reads
// (herdcache._ops.BUILDING is set): fresh hits then take the Python path (register_callsite.cpp).
bool building();
inline PyObject* handle_object(const Handle& handle) noexcept {
  return static_cast<PyObject*>(handle.get());
}

// A memory-tier visitor that takes a reference to the value and copies its metadata.
struct Pinned {
  PyObject* value = nullptr;  // a new reference when the lookup found the entry
  EntryMeta meta{};
};

inline void pin_entry(void* ctx, const Handle& value, const EntryMeta& meta) {
  auto* pinned = static_cast<Pinned*>(ctx);
  pinned->value = handle_object(value);
  Py_INCREF(pinned->value);
  pinned->meta = meta;
}

// Looks `key` up in the memory tier for a call from Python: the engine must be open, and
// handles other threads dropped are released first. Counted as a read (hit or miss) with
// `count`; on a hit `pinned` holds a new reference to the value and its metadata.
inline Lookup memory_lookup(Engine& engine, const Key& key, Resource& res, Pinned& pinned, bool count = true) {
  engine.check_open();
  release_parked_handles();
  if (count) return engine.lookup(key.str, key.hash, res, pin_entry, &pinned);
  return res.policy.memory ? engine.memory().get(key.str, key.hash, pin_entry, &pinned) : Lookup::Miss;
}

}  // namespace herdcache::py_bindings
