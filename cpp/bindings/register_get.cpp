// cache.get(key) without Python frames.
//
// A Redis-tier get cost three Python frames (CacheManager.get, _ops.get and the mode's
// fetch) and two native calls around one Redis read, a sixth of the event loop's time
// per read. CacheManager binds `get` on each instance to the function getter() returns
// (manager.py). Called with a Key, it returns a GetCall: an awaitable that behaves as the
// coroutine CacheManager.get would, and runs in C++:
//
// - It is lazy like a coroutine: nothing happens until it is first sent to (awaited), so
//   it may be made outside the loop that runs it (asyncio.run(cache.get(key))).
// - It is registered as a collections.abc.Coroutine (manager.py), so create_task,
//   ensure_future and asyncio.run take it.
// - Its first send does what herdcache._ops.get does. A memory hit returns at once (a
//   stale one counted as served stale); a miss without Redis is counted and returns None;
//   otherwise the read goes to Redis through the running loop's bridge, and the GetCall
//   yields the bridge's future exactly as `await future` does. The next send returns the
//   future's answer. A read the bridge leaves to Python (a SlowRead: a signed payload, a
//   payload that did not decode) is finished by herdcache._ops.finish_read.
// - throw() and close() act as on a coroutine suspended in `await future`: the exception
//   is raised from it, and the future is left to the bridge, which skips cancelled ones.
//
// Anything else (a key that is not a Key, unexpected arguments) goes to CacheManager.get
// itself, which checks it and raises as it always did; so does a get made inside a loader
// (bindings.hpp building()), whose read the entry being loaded will depend on.
#include <pthread.h>

#include <atomic>

#include "bindings.hpp"
#include "engine_handle.hpp"
#include "herdcache/read_protocol.hpp"

namespace herdcache::py_bindings {

namespace {

// What every GetCall of one manager shares.
struct Getter {
  PyObject_HEAD
  PyObject* manager;      // the CacheManager
  PyObject* engine;       // its _native.Engine (keeps `handle` alive)
  EngineHandle* handle;
  PyObject* fallback;     // CacheManager.get bound to the manager: the Python path
  PyObject* finish;       // herdcache._ops.finish_read(manager, key, slow_read)
  PyObject* bridges;      // manager._bridges: {loop: Bridge}
  PyObject* make_bridge;  // manager._bridge(): the running loop's bridge, made on first use
  PyObject* started;      // the value manager._state has once started (manager.py's _STARTED)
  // A weak reference to the last running loop a read found, and the process then (see
  // running_bridge). Weak: the loop and its bridge belong to the manager, which lets go of
  // them when it closes.
  PyObject* loop_ref;
  unsigned forks;
};

enum class Stage : int { kNew, kWaiting, kDone };

struct GetCall {
  PyObject_HEAD
  Getter* getter;
  PyObject* key;
  PyObject* waiting;  // while kWaiting: the bridge's future's own await iterator
  Stage stage;
};

PyTypeObject* GetterType = nullptr;
PyTypeObject* GetCallType = nullptr;
PyObject* KeyType = nullptr;
PyObject* SlowReadType = nullptr;
PyObject* get_running_loop = nullptr;  // asyncio.get_running_loop: raises without a loop
PyObject* str_state = nullptr;         // "_state"

PyObject* str_start = nullptr;         // "_start"
PyObject* str_thread_id = nullptr;     // "_thread_id": the thread an asyncio loop runs in
std::atomic<unsigned> forks{0};        // fork()s so far, counted in each child

// --- GetCall ---------------------------------------------------------------------------

// Starts or raises like CacheManager._start when the manager is not started.
bool ensure_started(Getter* g) {
  PyObject* state = PyObject_GetAttr(g->manager, str_state);
  if (state == nullptr) return false;
  const int started = PyObject_RichCompareBool(state, g->started, Py_EQ);  // identity first: cheap
  Py_DECREF(state);
  if (started < 0) return false;
  if (started == 1) return true;
  PyObject* done = PyObject_CallMethodNoArgs(g->manager, str_start);
  Py_XDECREF(done);
  return done != nullptr;
}

// Whether `loop` is an asyncio loop running in this thread: BaseEventLoop keeps the
// thread's ident in _thread_id from run_forever's start to its end. Other loops (uvloop)
// have no such attribute and are never trusted this way.
bool runs_here(PyObject* loop) {
  PyObject* owner = PyObject_GetAttr(loop, str_thread_id);
  if (owner == nullptr) {
    PyErr_Clear();
    return false;
  }
  const bool here = PyLong_CheckExact(owner) && PyLong_AsUnsignedLong(owner) == PyThread_get_thread_ident();
  Py_DECREF(owner);
  PyErr_Clear();  // an ident that does not fit: not this thread's
  return here;
}

// The running loop's bridge: a new reference, or null with an error set. The last loop
// found is remembered: while it still runs in this thread (and no fork() came between)
// it is the running loop, and asking asyncio (get_running_loop, which makes a getpid()
// system call each time) is skipped.
PyObject* running_bridge(Getter* g) {
  if (g->loop_ref != nullptr && g->forks == forks.load(std::memory_order_relaxed)) {
    PyObject* loop = PyWeakref_GetObject(g->loop_ref);  // borrowed; None once it is gone
    if (loop != Py_None && runs_here(loop)) {
      PyObject* bridge = PyDict_GetItemWithError(g->bridges, loop);
      if (bridge != nullptr) return Py_NewRef(bridge);
      if (PyErr_Occurred()) return nullptr;
    }
  }
  PyObject* loop = PyObject_CallNoArgs(get_running_loop);
  if (loop == nullptr) return nullptr;
  PyObject* bridge = PyDict_GetItemWithError(g->bridges, loop);
  if (bridge != nullptr) {
    Py_INCREF(bridge);
  } else if (!PyErr_Occurred()) {
    bridge = PyObject_CallNoArgs(g->make_bridge);
  }
  if (bridge != nullptr) {
    PyObject* ref = PyWeakref_NewRef(loop, nullptr);
    if (ref == nullptr) PyErr_Clear();  // a loop without weak references is simply not remembered
    Py_XSETREF(g->loop_ref, ref);
    g->forks = forks.load(std::memory_order_relaxed);
  }
  Py_DECREF(loop);
  return bridge;
}

// The first send: what herdcache._ops.get does, up to the Redis read.
PySendResult start(GetCall* call, PyObject** result) {
  Getter* g = call->getter;
  call->stage = Stage::kDone;  // unless the read below is sent
  if (!ensure_started(g)) return PYGEN_ERROR;
  try {
    Engine& engine = g->handle->engine;
    const Key& key = py::handle(call->key).cast<const Key&>();
    Resource& res = engine.resource(key.resource);
    Pinned pinned;
    const Lookup found = memory_lookup(engine, key, res, pinned);
    early_refresh_chosen = false;  // consumed, as Engine.get does
    const auto next = ReadProtocol::on_lookup(ReadProtocol::Op::Get, found, false, engine.redis() != nullptr,
                                              res.counters);
    if (next != ReadProtocol::Next::Fetch) {  // Serve, or Miss
      *result = found == Lookup::Miss ? Py_NewRef(Py_None) : pinned.value;
      return PYGEN_RETURN;
    }
    auto bridge = py::reinterpret_steal<py::object>(running_bridge(g));
    if (!bridge) return PYGEN_ERROR;
    py::object future = l2_fetch(*g->handle, py::reinterpret_borrow<py::object>(call->key), key, std::move(bridge));
    // `await future`, delegated to the future's own iterator: it yields the future to the
    // task, marked as blocking, and returns its result (or raises) when resumed.
    PyObject* waiting = PyObject_GetIter(future.ptr());
    if (waiting == nullptr) return PYGEN_ERROR;
    call->waiting = waiting;
    call->stage = Stage::kWaiting;
    return PyIter_Send(waiting, Py_None, result);
  } catch (...) {
    set_python_error_from_current_exception();
    return PYGEN_ERROR;
  }
}

// A send while waiting: to the future's iterator; its answer, finished in Python if need be.
PySendResult resume(GetCall* call, PyObject* arg, PyObject** result) {
  const PySendResult sent = PyIter_Send(call->waiting, arg, result);
  if (sent == PYGEN_NEXT) return sent;  // not done yet (a spurious wakeup): still waiting
  Py_CLEAR(call->waiting);
  call->stage = Stage::kDone;
  if (sent == PYGEN_RETURN && Py_TYPE(*result) == reinterpret_cast<PyTypeObject*>(SlowReadType)) {
    Getter* g = call->getter;
    PyObject* args[] = {g->manager, call->key, *result};
    PyObject* finished = PyObject_Vectorcall(g->finish, args, 3, nullptr);
    Py_DECREF(*result);
    *result = finished;
    return finished == nullptr ? PYGEN_ERROR : PYGEN_RETURN;
  }
  return sent;
}

PySendResult getcall_am_send(PyObject* self, PyObject* arg, PyObject** result) {
  auto* call = reinterpret_cast<GetCall*>(self);
  *result = nullptr;
  switch (call->stage) {
    case Stage::kNew:
      if (arg != Py_None) {
        PyErr_SetString(PyExc_TypeError, "can't send non-None value to a just-started coroutine");
        return PYGEN_ERROR;
      }
      return start(call, result);
    case Stage::kWaiting:
      return resume(call, arg, result);
    case Stage::kDone:
      break;
  }
  PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited coroutine");
  return PYGEN_ERROR;
}

// send() and __next__ for callers that do not use am_send: a return is StopIteration.
PyObject* send_as_iterator(PyObject* self, PyObject* arg) {
  PyObject* result = nullptr;
  switch (getcall_am_send(self, arg, &result)) {
    case PYGEN_NEXT:
      return result;
    case PYGEN_RETURN:
      if (result != Py_None) {
        PyObject* stop = PyObject_CallOneArg(PyExc_StopIteration, result);
        if (stop != nullptr) {
          PyErr_SetObject(PyExc_StopIteration, stop);
          Py_DECREF(stop);
        }
      } else {
        PyErr_SetNone(PyExc_StopIteration);
      }
      Py_DECREF(result);
      return nullptr;
    case PYGEN_ERROR:
      break;
  }
  return nullptr;
}

PyObject* getcall_iternext(PyObject* self) { return send_as_iterator(self, Py_None); }

PyObject* getcall_send(PyObject* self, PyObject* arg) { return send_as_iterator(self, arg); }

// throw(exc) / throw(type[, value[, traceback]]): raised from the await, as a coroutine would.
PyObject* getcall_throw(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
  auto* call = reinterpret_cast<GetCall*>(self);
  if (nargs < 1 || nargs > 3) {
    PyErr_SetString(PyExc_TypeError, "throw expected 1 to 3 arguments");
    return nullptr;
  }
  Py_CLEAR(call->waiting);
  call->stage = Stage::kDone;
  PyObject* type = args[0];
  PyObject* value = nargs > 1 ? args[1] : Py_None;
  PyObject* traceback = nargs > 2 && PyTraceBack_Check(args[2]) ? Py_NewRef(args[2]) : nullptr;
  if (PyExceptionInstance_Check(type)) {
    PyErr_Restore(Py_NewRef(reinterpret_cast<PyObject*>(Py_TYPE(type))), Py_NewRef(type), traceback);
  } else if (PyExceptionClass_Check(type)) {
    PyErr_Restore(Py_NewRef(type), Py_NewRef(value), traceback);
  } else {
    Py_XDECREF(traceback);
    PyErr_SetString(PyExc_TypeError, "exceptions must be classes or instances deriving from BaseException");
  }
  return nullptr;
}

PyObject* getcall_close(PyObject* self, PyObject*) {
  auto* call = reinterpret_cast<GetCall*>(self);
  Py_CLEAR(call->waiting);
  call->stage = Stage::kDone;
  Py_RETURN_NONE;
}

PyObject* getcall_await(PyObject* self) { return Py_NewRef(self); }

int getcall_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* call = reinterpret_cast<GetCall*>(self);
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(reinterpret_cast<PyObject*>(call->getter));
  Py_VISIT(call->key);
  Py_VISIT(call->waiting);
  return 0;
}

int getcall_clear(PyObject* self) {
  auto* call = reinterpret_cast<GetCall*>(self);
  Py_CLEAR(call->getter);
  Py_CLEAR(call->key);
  Py_CLEAR(call->waiting);
  return 0;
}

void getcall_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  getcall_clear(self);
  type->tp_free(self);
  Py_DECREF(type);
}

PyMethodDef kGetCallMethods[] = {
    {"send", getcall_send, METH_O, "send(value): resumes the get; StopIteration carries its answer"},
    {"throw", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(getcall_throw)), METH_FASTCALL,
     "throw(exc): raises exc from the get"},
    {"close", getcall_close, METH_NOARGS, "close(): abandons the get"},
    {nullptr, nullptr, 0, nullptr}};

PyType_Slot kGetCallSlots[] = {
    {Py_am_await, reinterpret_cast<void*>(getcall_await)},
    {Py_am_send, reinterpret_cast<void*>(getcall_am_send)},
    {Py_tp_iter, reinterpret_cast<void*>(PyObject_SelfIter)},
    {Py_tp_iternext, reinterpret_cast<void*>(getcall_iternext)},
    {Py_tp_methods, kGetCallMethods},
    {Py_tp_traverse, reinterpret_cast<void*>(getcall_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(getcall_clear)},
    {Py_tp_dealloc, reinterpret_cast<void*>(getcall_dealloc)},
    {Py_tp_doc, const_cast<char*>("An awaiting cache.get(key): see herdcache._native.getter.")},
    {0, nullptr}};

PyType_Spec kGetCallSpec = {"herdcache._native.GetCall", sizeof(GetCall), 0,
                            Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, kGetCallSlots};

// --- Getter ----------------------------------------------------------------------------

// get(key): a GetCall for a Key, CacheManager.get's coroutine for anything else.
PyObject* getter_get(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  auto* g = reinterpret_cast<Getter*>(self);
  const Py_ssize_t nkw = kwnames == nullptr ? 0 : PyTuple_GET_SIZE(kwnames);
  if (nargs + nkw != 1 || Py_TYPE(args[0]) != reinterpret_cast<PyTypeObject*>(KeyType) ||
      (nkw == 1 && PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "key") != 0) ||
      building()) {  // inside a loader: the Python path records the read as a dependency
    return PyObject_Vectorcall(g->fallback, args, nargs, kwnames);
  }
  GetCall* call = PyObject_GC_New(GetCall, GetCallType);
  if (call == nullptr) return nullptr;
  call->getter = reinterpret_cast<Getter*>(Py_NewRef(self));
  call->key = Py_NewRef(args[0]);
  call->waiting = nullptr;
  call->stage = Stage::kNew;
  PyObject_GC_Track(reinterpret_cast<PyObject*>(call));
  return reinterpret_cast<PyObject*>(call);
}

PyMethodDef kGetDef = {"get", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(getter_get)),
                       METH_FASTCALL | METH_KEYWORDS, "get(key) -> awaitable: the value or None"};

int getter_traverse(PyObject* self, visitproc visit, void* arg) {
  auto* g = reinterpret_cast<Getter*>(self);
  Py_VISIT(Py_TYPE(self));
  Py_VISIT(g->manager);
  Py_VISIT(g->engine);
  Py_VISIT(g->fallback);
  Py_VISIT(g->finish);
  Py_VISIT(g->bridges);
  Py_VISIT(g->make_bridge);
  Py_VISIT(g->started);
  Py_VISIT(g->loop_ref);
  return 0;
}

int getter_clear(PyObject* self) {
  auto* g = reinterpret_cast<Getter*>(self);
  Py_CLEAR(g->manager);
  Py_CLEAR(g->fallback);
  Py_CLEAR(g->finish);
  Py_CLEAR(g->bridges);
  Py_CLEAR(g->make_bridge);
  Py_CLEAR(g->started);
  Py_CLEAR(g->loop_ref);
  // The engine goes last and only with the Getter: a GetCall in flight still uses handle.
  return 0;
}

void getter_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  getter_clear(self);
  Py_CLEAR(reinterpret_cast<Getter*>(self)->engine);
  type->tp_free(self);
  Py_DECREF(type);
}

PyType_Slot kGetterSlots[] = {
    {Py_tp_traverse, reinterpret_cast<void*>(getter_traverse)},
    {Py_tp_clear, reinterpret_cast<void*>(getter_clear)},
    {Py_tp_dealloc, reinterpret_cast<void*>(getter_dealloc)},
    {Py_tp_doc, const_cast<char*>("The state a manager's native get() shares.")},
    {0, nullptr}};

PyType_Spec kGetterSpec = {"herdcache._native.Getter", sizeof(Getter), 0,
                           Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC, kGetterSlots};

py::object make_getter(py::object manager, py::object engine, py::object fallback, py::object finish,
                       py::dict bridges, py::object make_bridge, py::object started) {
  EngineHandle& handle = engine.cast<EngineHandle&>();  // a TypeError now, not per call
  Getter* g = PyObject_GC_New(Getter, GetterType);
  if (g == nullptr) throw py::error_already_set();
  g->manager = manager.release().ptr();
  g->engine = engine.release().ptr();
  g->handle = &handle;
  g->fallback = fallback.release().ptr();
  g->finish = finish.release().ptr();
  g->bridges = bridges.release().ptr();
  g->make_bridge = make_bridge.release().ptr();
  g->started = started.release().ptr();
  g->loop_ref = nullptr;
  g->forks = 0;
  PyObject_GC_Track(reinterpret_cast<PyObject*>(g));
  auto state = py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(g));
  auto get = py::reinterpret_steal<py::object>(PyCFunction_New(&kGetDef, state.ptr()));
  if (!get) throw py::error_already_set();
  return get;
}

PyObject* interned(const char* text) {
  PyObject* s = PyUnicode_InternFromString(text);
  if (s == nullptr) throw py::error_already_set();
  return s;
}

}  // namespace

void register_get(py::module_& m) {
  GetterType = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&kGetterSpec));
  GetCallType = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&kGetCallSpec));
  if (GetterType == nullptr || GetCallType == nullptr) throw py::error_already_set();
  m.attr("GetCall") = py::handle(reinterpret_cast<PyObject*>(GetCallType));
  KeyType = py::type::of<Key>().release().ptr();
  SlowReadType = py::object(m.attr("SlowRead")).release().ptr();
  get_running_loop = py::object(py::module_::import("asyncio").attr("get_running_loop")).release().ptr();
  str_state = interned("_state");
  str_start = interned("_start");
  str_thread_id = interned("_thread_id");
  pthread_atfork(nullptr, nullptr, [] { forks.fetch_add(1, std::memory_order_relaxed); });
  m.def("getter", &make_getter, py::arg("manager"), py::arg("engine"), py::arg("fallback"), py::arg("finish"),
        py::arg("bridges"), py::arg("make_bridge"), py::arg("started"),
        "A manager's native get(key): an awaitable that runs CacheManager.get's logic in C++.");
}

}  // namespace herdcache::py_bindings
