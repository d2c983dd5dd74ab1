// The asyncio bridge (bridge.hpp): draining completions onto futures, the herd wait,
// get()'s answer, and the sync caller's wait.
#include "bridge.hpp"

#include <poll.h>

#include <string_view>

#include <pybind11/stl.h>

namespace herdcache::py_bindings {

Bridge::Bridge(py::object loop, py::object engine)
    : core_(std::make_shared<BridgeCore>()),
      loop_(std::move(loop)),
      create_future_(loop_.attr("create_future")),
      engine_(std::move(engine)) {
  engine_.cast<EngineHandle&>();  // a TypeError now rather than at the first flush
  // asyncio's own loops make futures in Python (BaseEventLoop.create_future); calling
  // the future type directly is the same future without that frame. Other loops
  // (uvloop) keep their own create_future.
  auto asyncio = py::module_::import("asyncio");
  if (py::getattr(py::type::handle_of(loop_), "create_future").is(asyncio.attr("BaseEventLoop").attr("create_future"))) {
    future_type_ = asyncio.attr("Future");
  }
}

void Bridge::flush() {
  flush_scheduled_ = false;
  if (RedisTier* t = engine().engine.redis()) t->wake();
}

bool Bridge::settle_in_herd(PyObject* future) {
  static PyObject* const ready_name = PyUnicode_InternFromString("_ready");
  if (draining_) return false;  // made from inside drain() (a serializer's loads, say): no waiting there
  PyObject* ready = PyObject_GetAttr(loop_.ptr(), ready_name);  // BaseEventLoop's deque; others: no herd known
  const Py_ssize_t waiting = ready == nullptr ? -1 : PyObject_Length(ready);
  Py_XDECREF(ready);
  if (waiting < kHerd) {
    PyErr_Clear();
    return false;
  }
  const auto clock = system_clock();  // a real wait, whatever clock the engine was given
  const Nanos deadline = clock->monotonic_ns() + kHerdWaitNs;
  for (Nanos left = kHerdWaitNs; left > 0; left = deadline - clock->monotonic_ns()) {
    {
      py::gil_scoped_release release;  // the I/O thread needs no GIL to complete it
      pollfd fd{core_->queue.fd(), POLLIN, 0};
      const timespec timeout{static_cast<time_t>(left / 1'000'000'000), static_cast<long>(left % 1'000'000'000)};
      ::ppoll(&fd, 1, &timeout, nullptr);
    }
    drain();
    if (is_done(future)) return true;
  }
  return false;
}

void Bridge::drain() {
  static PyObject* const set_result_name = PyUnicode_InternFromString("set_result");
  if (draining_) return;
  draining_ = true;
  struct Done {
    bool& flag;
    ~Done() { flag = false; }
  } done_draining{draining_};
  core_->queue.drain(batch_);
  for (auto& completion : batch_) {
    std::optional<Pending> taken = futures_.take(completion.id);
    if (!taken) continue;
    Pending& pending = *taken;
    PyObject* future = pending.future.ptr();
    try {
      if (is_done(future)) continue;  // cancelled: nobody waits for it
      py::object value = pending.many    ? py::cast(std::move(pending.many))
                         : pending.fetch ? finish_fetch(*pending.fetch, completion.result)
                                         : to_python(completion.result);
      auto set = py::reinterpret_steal<py::object>(PyObject_CallMethodOneArg(future, set_result_name, value.ptr()));
      if (!set) throw py::error_already_set();
    } catch (py::error_already_set& error) {
      // One broken completion must not strand the rest of the batch.
      pending.future.attr("set_exception")(error.value());
    }
  }
  batch_.clear();
  release_parked_handles();
}

py::object Bridge::to_python(TierResult& r) { return py::cast(std::move(r)); }

bool Bridge::is_done(PyObject* future) {
  static PyObject* const done_name = PyUnicode_InternFromString("done");
  auto done = py::reinterpret_steal<py::object>(PyObject_CallMethodNoArgs(future, done_name));
  if (!done) throw py::error_already_set();
  return PyObject_IsTrue(done.ptr()) == 1;
}

bool fill_shared(EngineHandle& e, const Key& key, Resource& res, PyObject* value, std::size_t value_bytes,
                 std::vector<std::string> tags, Nanos fresh_until_wall, Nanos stale_until_wall, Nanos load_ns,
                 bool served, WriteFence::Seq since) {
  if (res.policy.memory) {
    e.engine.store_shared(key, res, make_handle(value), value_bytes, std::move(tags), fresh_until_wall,
                          stale_until_wall, load_ns, since);
  }
  bool stale = e.engine.clock().wall_ns() >= fresh_until_wall;
  if (served) {
    res.counters.add(Counter::Hits);
    if (stale) res.counters.add(Counter::StaleServed);
  }
  return stale;
}

py::object Bridge::finish_fetch(const Fetch& fetch, TierResult& r) {
  using Status = TierResult::Status;
  EngineHandle& e = *fetch.engine;
  if (r.status == Status::Miss || r.status == Status::Fault) {
    if (r.status == Status::Fault) fetch.res->counters.add(Counter::Errors);
    fetch.res->counters.add(Counter::Misses);
    return py::none();
  }
  constexpr std::size_t header = kPayloadHeader.size();
  // The resource's own decoder (a cached function's return annotation), else the serializer's.
  PyObject* loads = fetch.res->decoder ? handle_object(fetch.res->decoder) : e.plain_loads.ptr();
  if (r.status == Status::Hit && loads != nullptr && std::string_view(r.payload).starts_with(kPayloadHeader)) {
    auto body = py::reinterpret_steal<py::object>(
        PyBytes_FromStringAndSize(r.payload.data() + header, static_cast<Py_ssize_t>(r.payload.size() - header)));
    if (!body) throw py::error_already_set();
    auto value = py::reinterpret_steal<py::object>(PyObject_CallOneArg(loads, body.ptr()));
    if (value) {
      fill_shared(e, *fetch.key, *fetch.res, value.ptr(), r.payload.size(), std::move(r.tags), r.fresh_until_wall,
                  r.stale_until_wall, r.load_ns, true, fetch.since);
      return value;
    }
    PyErr_Clear();  // Python decodes it again, and logs and counts why it cannot
  }
  return py::cast(SlowRead{to_python(r), fetch.since});
}

py::object Bridge::finish_many(Many& many) {
  py::list out(many.fetches.size());
  for (std::size_t i = 0; i < many.fetches.size(); ++i) {
    PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), finish_fetch(many.fetches[i], many.batch->results[i]).release().ptr());
  }
  return out;
}

py::object FillWaiter::wait(double timeout_seconds) {
  std::optional<TierResult> result;
  {
    py::gil_scoped_release release;  // set by the subscriber thread, which needs no GIL
    result = done.wait_for(seconds_to_nanos(timeout_seconds));
  }
  if (!result) return py::none();
  return Bridge::to_python(*result);
}

void register_bridge(py::module_& m) {
  py::class_<Bridge>(m, "Bridge", "Completes asyncio futures from the Redis I/O thread.")
      .def(py::init<py::object, py::object>(), py::arg("loop"), py::arg("engine"))
      .def("flush", &Bridge::flush)
      .def_property_readonly("fd", &Bridge::fd)
      .def_property_readonly("pending", &Bridge::pending)
      .def("drain", &Bridge::drain);

  // Before TierReply, whose guard() returns one: a signature names only registered types.
  py::class_<RedisTier::WriteGuard>(m, "WriteGuard", "What a write must prove (RedisTier::WriteGuard).")
      .def_readonly("lease_token", &RedisTier::WriteGuard::lease_token)
      .def("with_versions",
           // The same guard proving `versions` too: those of the tags a load added to its
           // entry (what its loader read), in the order they follow the entry's own.
           [](const RedisTier::WriteGuard& g, const std::vector<std::string>& versions) {
             RedisTier::WriteGuard out = g;
             out.versions.insert(out.versions.end(), versions.begin(), versions.end());
             return out;
           },
           py::arg("versions"));

  // A tier's answer, as Python reads it: fields are converted when read, and a read's
  // guard goes back to l2_write as a WriteGuard without a trip through Python lists.
  using Status = TierResult::Status;
  py::class_<TierResult>(m, "TierReply", "A shared-tier answer (tier_result.hpp).")
      .def_static("fault", [](std::string error) { return TierResult::fault(std::move(error)); }, py::arg("error"))
      .def_property_readonly("status", [](const TierResult& r) { return static_cast<int>(r.status); })
      .def_property_readonly("payload", [](const TierResult& r) -> py::object {
        if (r.status != Status::Hit) return py::none();
        return py::bytes(r.payload.data(), r.payload.size());
      })
      .def_readonly("fresh_until", &TierResult::fresh_until_wall)
      .def_readonly("stale_until", &TierResult::stale_until_wall)
      .def_property_readonly("load_seconds", [](const TierResult& r) { return r.load_ns / 1e9; })
      .def_readonly("tags", &TierResult::tags)
      .def_readonly("versions", &TierResult::versions)
      .def_readonly("count", &TierResult::count)
      .def_readonly("error", &TierResult::error)
      .def_property_readonly("lease", [](const TierResult& r) { return static_cast<int>(r.lease); })
      .def_readonly("holder", &TierResult::lease_holder)
      .def_readonly("forged", &TierResult::forged)
      .def("guard", [](const TierResult& r, const std::string& lease_token) {
             // What a write after this read proves: the lease `lease_token` names ("" for
             // none: the token the read was granted its lease under), the generation and
             // the dependency versions the read saw.
             RedisTier::WriteGuard g;
             g.lease_token = lease_token;
             g.generation = r.generation;
             g.versions = r.versions;
             return g;
           }, py::arg("lease_token"));
  // What an invalidation names (invalidation.hpp), for l2_invalidate; its origin is set
  // there, to the sending instance.
  using Kind = Invalidation::Kind;
  py::class_<Invalidation>(m, "Invalidation", "An invalidation to apply in Redis and broadcast.")
      .def_static("key", [](std::string key) { return Invalidation::key({}, std::move(key)); }, py::arg("key"))
      .def_static("prefix", [](std::string resource, std::string canonical_prefix) {
                    return Invalidation::prefix({}, std::move(resource), std::move(canonical_prefix));
                  }, py::arg("resource"), py::arg("canonical_prefix"))
      .def_static("tags", [](std::vector<std::string> tags) { return Invalidation::tags({}, std::move(tags)); },
                  py::arg("tags"))
      .def_static("pattern", [](std::string pattern) { return Invalidation::pattern({}, std::move(pattern)); },
                  py::arg("pattern"))
      .def_static("clear", [] { return Invalidation::clear({}); })
      // Redis answers how many entries it removed (a key, a pattern, a clear), not how many
      // versions it bumped (a prefix, tags): only the former is a count of entries.
      .def_property_readonly("counts_entries", [](const Invalidation& inv) {
        return inv.kind == Kind::Key || inv.kind == Kind::Pattern || inv.kind == Kind::Clear;
      });
  py::class_<SlowRead>(m, "SlowRead", "A read that l2_fetch leaves for Python to finish.")
      .def(py::init<py::object, WriteFence::Seq>(), py::arg("result"), py::arg("since") = WriteFence::kUnfenced)
      .def_readonly("result", &SlowRead::result)
      .def_readonly("since", &SlowRead::since);

  py::class_<Bridge::Many, std::shared_ptr<Bridge::Many>>(m, "FetchedMany",
                                                        "get_many()'s reads, all answered, not yet decoded.")
      .def("values", &Bridge::finish_many, "Each read's answer, in order, as l2_fetch's.");

  py::class_<FillWaiter, std::shared_ptr<FillWaiter>>(m, "FillWaiter")
      .def("wait", &FillWaiter::wait, py::arg("timeout_seconds"));
}

}  // namespace herdcache::py_bindings
