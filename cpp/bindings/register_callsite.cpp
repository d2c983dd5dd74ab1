// The memory-hit fast path of decorated functions.
//
// A decorated function's signature is turned into a CallSite once, at decoration time.
// Each call then makes one native call, lookup(args, kwargs), that binds the arguments the
// way inspect.Signature.bind would (defaults applied, keywords matched to their
// parameters), encodes them into a thread-local KeyBuilder, and looks the key up in the
// memory tier: a fresh hit returns the cached object itself; anything else returns MISS
// and the Python slow path takes over. No Python object is allocated on a hit for calls
// without *args/**kwargs parameters.
//
// lookup and key are plain METH_FASTCALL functions whose `self` is a capsule holding the
// CallSite: cheaper to call than a pybind11 method, whose dispatcher costs more than the
// whole lookup.
#include <fmt/format.h>

#include <vector>

#include "bindings.hpp"
#include "engine_handle.hpp"
#include "herdcache/errors.hpp"

namespace herdcache::py_bindings {

namespace {
// The ContextVar holding the dependencies of the load running in this context, or None
// (herdcache._ops.BUILDING, set around each loader and handed over by track_building). A
// fresh hit made while it is set takes the slow path, which records the dependency.
PyObject* BUILDING = nullptr;

}  // namespace

bool building() {
  if (BUILDING == nullptr) return false;
  PyObject* value = nullptr;
  if (PyContextVar_Get(BUILDING, nullptr, &value) < 0) {
    PyErr_Clear();
    return false;
  }
  const bool set = value != nullptr && value != Py_None;
  Py_XDECREF(value);
  return set;
}

namespace {

// inspect.Parameter kinds.
enum Kind : int { kPositionalOnly = 0, kPositionalOrKeyword = 1, kVarPositional = 2,
                  kKeywordOnly = 3, kVarKeyword = 4 };

struct Param {
  py::str name;
  Kind kind;
  py::object default_value;  // null when the parameter has no default
  bool in_key;               // false for parameters left out of the key (self, ignored)
};

struct CallSite {
  std::shared_ptr<EngineHandle> owner;
  Resource* resource;
  std::string resource_name;
  std::string prefix;  // "<namespace>:<resource>", validated once
  std::vector<Param> params;
};

constexpr const char* kCapsuleName = "herdcache.CallSite";
PyObject* MISS = nullptr;

// A key argument the key cannot hold (a database session, say): the error names the
// cached function's resource and the parameter, and the fix.
[[noreturn]] void key_argument_error(const CallSite& site, const Param& p, const KeyTypeError& error) {
  const std::string name = p.name.cast<std::string>();
  throw KeyTypeError(fmt::format(
      "cached function '{0}', parameter '{1}': {2}. A parameter that does not decide what the function "
      "returns (a session, a client) can be left out of the key: @cache.cached(\"{0}\", ignore=(\"{1}\",))",
      site.resource_name, name, error.what()));
}

// Encodes the values of the key's parameters, in signature order (`values[i]` is the i-th
// parameter that is in the key).
void encode_key_values(const CallSite& site, KeyBuilder& builder, PyObject* const* values, std::size_t count) {
  std::size_t i = 0;
  try {
    for (; i < count; ++i) encode_value(builder, values[i]);
  } catch (const KeyTypeError& error) {
    std::size_t seen = 0;
    for (const Param& p : site.params) {
      if (p.in_key && seen++ == i) key_argument_error(site, p, error);
    }
    throw;
  }
}

// Binds (args, kwargs) to the parameters and encodes them into `builder`.
// `owned` keeps the *args tuple and **kwargs dict alive while encoding.
void bind_and_encode(const CallSite& site, PyObject* args, PyObject* kwargs, KeyBuilder& builder) {
  constexpr std::size_t kInline = 16;
  PyObject* inline_slots[kInline] = {};
  std::vector<PyObject*> heap_slots;
  PyObject** slots = inline_slots;
  const std::size_t n = site.params.size();
  if (n > kInline) {
    heap_slots.assign(n, nullptr);
    slots = heap_slots.data();
  }
  py::object rest_args, rest_kwargs;

  const Py_ssize_t nargs = PyTuple_GET_SIZE(args);
  Py_ssize_t next = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const Param& p = site.params[i];
    if (p.kind == kPositionalOnly || p.kind == kPositionalOrKeyword) {
      if (next < nargs) slots[i] = PyTuple_GET_ITEM(args, next++);
    } else if (p.kind == kVarPositional) {
      rest_args = py::reinterpret_steal<py::object>(PyTuple_GetSlice(args, next, nargs));
      if (!rest_args) throw py::error_already_set();
      slots[i] = rest_args.ptr();
      next = nargs;
    }
  }
  if (next < nargs) {
    throw KeyTypeError(fmt::format("{}() takes {} positional arguments but {} were given",
                                   site.resource_name, next, nargs));
  }
  if (kwargs != nullptr && PyDict_GET_SIZE(kwargs) != 0) {
    Py_ssize_t pos = 0;
    PyObject *name, *value;
    while (PyDict_Next(kwargs, &pos, &name, &value)) {
      std::size_t match = n;
      for (std::size_t i = 0; i < n; ++i) {
        const Param& p = site.params[i];
        if ((p.kind == kPositionalOrKeyword || p.kind == kKeywordOnly) &&
            (p.name.ptr() == name || PyUnicode_Compare(p.name.ptr(), name) == 0)) {
          match = i;
          break;
        }
      }
      if (match < n) {
        if (slots[match] != nullptr) {
          throw KeyTypeError(fmt::format("{}() got multiple values for argument '{}'",
                                         site.resource_name, py::str(name).cast<std::string>()));
        }
        slots[match] = value;
        continue;
      }
      std::size_t var_kw = n;
      for (std::size_t i = 0; i < n; ++i) {
        if (site.params[i].kind == kVarKeyword) var_kw = i;
      }
      if (var_kw == n) {
        throw KeyTypeError(fmt::format("{}() got an unexpected keyword argument '{}'",
                                       site.resource_name, py::str(name).cast<std::string>()));
      }
      if (!rest_kwargs) rest_kwargs = py::dict();
      if (PyDict_SetItem(rest_kwargs.ptr(), name, value) != 0) throw py::error_already_set();
      slots[var_kw] = rest_kwargs.ptr();
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    const Param& p = site.params[i];
    if (slots[i] == nullptr) {
      if (p.kind == kVarPositional) {
        rest_args = py::tuple();
        slots[i] = rest_args.ptr();
      } else if (p.kind == kVarKeyword) {
        rest_kwargs = py::dict();
        slots[i] = rest_kwargs.ptr();
      } else if (p.default_value) {
        slots[i] = p.default_value.ptr();
      } else {
        throw KeyTypeError(fmt::format("{}() missing required argument '{}'", site.resource_name,
                                       p.name.cast<std::string>()));
      }
    }
    if (p.in_key) {
      try {
        encode_value(builder, slots[i]);
      } catch (const KeyTypeError& error) {
        key_argument_error(site, p, error);
      }
    }
  }
}

CallSite* site_of(PyObject* capsule) {
  return static_cast<CallSite*>(PyCapsule_GetPointer(capsule, kCapsuleName));
}

bool unpack(PyObject* const* argv, Py_ssize_t nargs, PyObject** args, PyObject** kwargs) {
  if (nargs != 2 || !PyTuple_Check(argv[0]) || !(argv[1] == Py_None || PyDict_Check(argv[1]))) {
    PyErr_SetString(PyExc_TypeError, "expected (args: tuple, kwargs: dict | None)");
    return false;
  }
  *args = argv[0];
  *kwargs = argv[1] == Py_None ? nullptr : argv[1];
  return true;
}


// The memory lookup of a key just built: the value on a fresh hit, else MISS.
PyObject* lookup_built(CallSite* site, Engine& engine, KeyBuilder& builder) {
  KeyBuilder::View key = builder.finish_view();
  Pinned pinned;
  Lookup found = engine.lookup(key.str, key.hash, *site->resource, pin_entry, &pinned);
  if (found == Lookup::Fresh) {
    const Policy& policy = site->resource->policy;
    const bool early = policy.early_refresh > 0 &&
                       engine.should_refresh_early(policy, pinned.meta, engine.clock().monotonic_ns());
    if (!early && !building()) return pinned.value;
    // XFetch chose this read to refresh early, or a load is running here whose entry will
    // depend on this one: the slow path serves the value (it counted as a hit here, and
    // is not counted again) and starts the refresh or records the dependency. It runs
    // next on this thread, before any other lookup can.
    early_refresh_chosen = early;
  }
  Py_XDECREF(pinned.value);
  Py_INCREF(MISS);
  return MISS;
}

// lookup(args, kwargs) -> the cached object on a fresh memory hit, else MISS.
PyObject* site_lookup(PyObject* capsule, PyObject* const* argv, Py_ssize_t nargs) {
  PyObject *args, *kwargs;
  if (!unpack(argv, nargs, &args, &kwargs)) return nullptr;
  CallSite* site = site_of(capsule);
  try {
    Engine& engine = site->owner->engine;
    engine.check_open();
    release_parked_handles();
    thread_local KeyBuilder builder;
    builder.restart(site->prefix);
    bind_and_encode(*site, args, kwargs, builder);
    return lookup_built(site, engine, builder);
  } catch (...) {
    set_python_error_from_current_exception();
    return nullptr;
  }
}

// lookup_values(v1, v2, ...) -> the cached object on a fresh memory hit, else MISS. For
// wrappers generated with the function's own signature: CPython has bound the arguments
// already, and passes the key's values in signature order, without a tuple or a dict.
PyObject* site_lookup_values(PyObject* capsule, PyObject* const* argv, Py_ssize_t nargs) {
  CallSite* site = site_of(capsule);
  try {
    Engine& engine = site->owner->engine;
    engine.check_open();
    release_parked_handles();
    thread_local KeyBuilder builder;
    builder.restart(site->prefix);
    encode_key_values(*site, builder, argv, static_cast<std::size_t>(nargs));
    return lookup_built(site, engine, builder);
  } catch (...) {
    set_python_error_from_current_exception();
    return nullptr;
  }
}

// key_values(v1, v2, ...) -> Key, as lookup_values builds it.
PyObject* site_key_values(PyObject* capsule, PyObject* const* argv, Py_ssize_t nargs) {
  CallSite* site = site_of(capsule);
  try {
    KeyBuilder builder;
    builder.restart(site->prefix);
    encode_key_values(*site, builder, argv, static_cast<std::size_t>(nargs));
    return py::cast(builder.finish()).release().ptr();
  } catch (...) {
    set_python_error_from_current_exception();
    return nullptr;
  }
}

// key(args, kwargs) -> Key, bound exactly as lookup binds.
PyObject* site_key(PyObject* capsule, PyObject* const* argv, Py_ssize_t nargs) {
  PyObject *args, *kwargs;
  if (!unpack(argv, nargs, &args, &kwargs)) return nullptr;
  CallSite* site = site_of(capsule);
  try {
    KeyBuilder builder;
    site->owner->engine.begin_key(builder, site->resource_name);
    bind_and_encode(*site, args, kwargs, builder);
    return py::cast(builder.finish()).release().ptr();
  } catch (...) {
    set_python_error_from_current_exception();
    return nullptr;
  }
}

PyMethodDef kLookupDef = {"lookup", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(site_lookup)),
                          METH_FASTCALL, "lookup(args, kwargs) -> cached value or MISS"};
PyMethodDef kLookupValuesDef = {
    "lookup_values", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(site_lookup_values)),
    METH_FASTCALL, "lookup_values(*key_values) -> cached value or MISS"};
PyMethodDef kKeyValuesDef = {
    "key_values", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(site_key_values)),
    METH_FASTCALL, "key_values(*key_values) -> Key"};
PyMethodDef kKeyDef = {"key", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(site_key)),
                       METH_FASTCALL, "key(args, kwargs) -> Key"};

// params: [(name, kind, has_default, default, in_key), ...] from inspect.signature.
py::tuple make_callsite(std::shared_ptr<EngineHandle> owner, const std::string& resource,
                        py::list params) {
  auto site = std::make_unique<CallSite>();
  site->resource = &owner->engine.resource(resource);  // validates the name
  site->resource_name = resource;
  {
    KeyBuilder probe;
    owner->engine.begin_key(probe, resource);  // validates namespace and resource
    site->prefix = std::string(probe.canonical());
  }
  site->owner = std::move(owner);
  for (auto item : params) {
    auto t = item.cast<py::tuple>();
    Param p{t[0].cast<py::str>(), static_cast<Kind>(t[1].cast<int>()), py::object(),
            t[4].cast<bool>()};
    if (p.kind < kPositionalOnly || p.kind > kVarKeyword) throw InvalidArgument("bad parameter kind");
    if (t[2].cast<bool>()) p.default_value = t[3];
    PyObject* interned = p.name.release().ptr();
    PyUnicode_InternInPlace(&interned);
    p.name = py::reinterpret_steal<py::str>(interned);
    site->params.push_back(std::move(p));
  }
  py::capsule capsule(site.release(), kCapsuleName, [](PyObject* c) {
    delete static_cast<CallSite*>(PyCapsule_GetPointer(c, kCapsuleName));
  });
  py::object lookup = py::reinterpret_steal<py::object>(PyCFunction_New(&kLookupDef, capsule.ptr()));
  py::object key = py::reinterpret_steal<py::object>(PyCFunction_New(&kKeyDef, capsule.ptr()));
  py::object lookup_values =
      py::reinterpret_steal<py::object>(PyCFunction_New(&kLookupValuesDef, capsule.ptr()));
  py::object key_values = py::reinterpret_steal<py::object>(PyCFunction_New(&kKeyValuesDef, capsule.ptr()));
  if (!lookup || !key || !lookup_values || !key_values) throw py::error_already_set();
  return py::make_tuple(lookup, key, lookup_values, key_values);
}

}  // namespace

void register_callsite(py::module_& m) {
  MISS = py::module_::import("builtins").attr("object")().release().ptr();
  m.attr("MISS") = py::handle(MISS);
  m.def(
      "track_building",
      [](py::object var) {
        if (!PyContextVar_CheckExact(var.ptr())) throw py::type_error("track_building takes a contextvars.ContextVar");
        Py_XDECREF(BUILDING);
        BUILDING = var.release().ptr();
      },
      py::arg("var"), "The ContextVar whose value, while not None, sends fresh hits to the slow path.");
  m.def("callsite", &make_callsite, py::arg("engine"), py::arg("resource"), py::arg("params"),
        "Compiles a decorated function's signature into (lookup, key) fast-call functions.");
}

}  // namespace herdcache::py_bindings
