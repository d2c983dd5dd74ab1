// The asyncio bridge and the shared tier's entry points.
//
// Async: each event loop gets a Bridge. An operation registers a future under a fresh id
// and hands the engine a callback that, on the Redis I/O thread, only pushes
// {id, result} onto the bridge's WakeQueue (the eventfd is written on empty -> non-empty
// only). The loop's add_reader callback, drain(), takes the whole batch with the GIL and
// resolves the futures: one wakeup and one GIL acquisition per batch, not per reply. A
// future that was cancelled meanwhile is skipped; ids are never reused, so a late reply
// cannot resolve someone else's future.
//
// Sync: the caller blocks on a OneShot with the GIL released.
#include <poll.h>

#include <deque>
#include <mutex>

#include <fmt/format.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "engine_handle.hpp"
#include "herdcache/completions.hpp"
#include "herdcache/errors.hpp"
#include "herdcache/redis_url.hpp"
#include "herdcache/slot_map.hpp"

namespace herdcache::py_bindings {

namespace {

struct Completion {
  std::uint64_t id;
  TierResult result;
};

struct BridgeCore {
  WakeQueue<Completion> queue;
};

// What a future resolves to: the result tuple, or, for get() (a Fetch), the answer itself.
struct Fetch {
  py::object key_object;  // keeps `key` alive (no copy of it per read)
  const Key* key;
  Resource* res;          // resources live as long as their engine
  EngineHandle* engine;   // alive: the caller waits for it, or the bridge holds it
  WriteFence::Seq since;  // the memory tier's write sequence when the read was sent
};

// Returned by l2_fetch when Python must finish the read (a payload the fast path does not
// decode, a Hit that failed to decode, an unusual status): `result` is the tuple.
struct SlowRead {
  py::tuple result;
  WriteFence::Seq since = WriteFence::kUnfenced;  // when the read was sent: its fill's fence
};

// Counts a read's outcome on the I/O thread as the reply arrives (the counters are atomic).
void count_read(Resource* res, const TierResult& r) {
  if (res == nullptr) return;
  if (r.status == TierResult::Status::Hit) res->counters.add(Counter::RedisHits);
  if (r.status == TierResult::Status::Miss) res->counters.add(Counter::RedisMisses);
  if (r.forged) res->counters.add(Counter::Errors);  // a miss the reader did not cause
}

class Bridge {
 public:
  Bridge(py::object loop, py::object engine)
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

  int fd() const { return core_->queue.fd(); }
  std::size_t pending() const { return futures_.size(); }

  // A future for one operation, and the I/O-thread callback that completes it (counting
  // a read's outcome for `counted`, if given). With a fetch, the future resolves to get()'s
  // answer (see finish_fetch).
  std::pair<py::object, RedisTier::Callback> expect(std::optional<Fetch> fetch = std::nullopt,
                                                    Resource* counted = nullptr) {
    py::object future = new_future();
    const std::uint64_t id = futures_.add(Pending{future, std::move(fetch)});
    std::weak_ptr<BridgeCore> core = core_;
    return {future, [core, id, counted](TierResult result) {
              count_read(counted, result);
              if (auto c = core.lock()) c->queue.push(Completion{id, std::move(result)});
            }};
  }

  // Requests are queued under RedisClient::DeferWakeups; the I/O thread is woken once,
  // by a callback that runs after the tasks woken in this loop iteration made theirs.
  void flush_soon(py::handle self) {
    if (flush_scheduled_) return;
    loop_.attr("call_soon")(self.attr("flush"));
    flush_scheduled_ = true;
  }

  void flush() {
    flush_scheduled_ = false;
    if (RedisTier* t = engine().engine.redis()) t->wake();
  }

  // A request sent at once in a herd: when the loop has at least kHerd callbacks ready
  // (the first steps of the callers that arrived with this one, say), its reply would
  // wait behind all of them before anything could act on it. For a flight leader's lease
  // read that delays the load itself, and with it every caller. So the reply is waited
  // for here, with the GIL released, at most kHerdWaitNs (then the future is awaited as
  // usual): the loop stalls for about one round trip instead of the herd's whole first
  // pass. Only while herds happen: when the ready callbacks are other loads' steps (many
  // tasks missing distinct keys), stalling the loop for each of their reads would run
  // one task at a time. So after kQuietFlights flights in a row without a herd
  // (EngineHandle::flight_finished) only one lease read in kProbeEvery still waits, to
  // notice when herds start again. Returns whether `future` is done.
  static constexpr Py_ssize_t kHerd = 32;
  static constexpr std::uint64_t kQuietFlights = 64;
  static constexpr std::uint64_t kProbeEvery = 1024;
  static constexpr Nanos kHerdWaitNs = 2'000'000;
  // Whether a flight leader's lease read should go out at once and be waited for in a
  // herd (see settle_in_herd); else it is batched like any request.
  bool herds_happen() {
    return engine().flights_without_herd < kQuietFlights || ++quiet_reads_ % kProbeEvery == 0;
  }
  bool settle_in_herd(PyObject* future) {
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

  // Resolves every completion queued so far. Not re-entrant: a drain() reached from inside
  // one (user code it runs: a serializer's loads, a value's __del__ on eviction) returns at
  // once, and what it would have taken waits for the next one (its eventfd is still set).
  void drain() {
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
        py::object value = pending.fetch ? finish_fetch(*pending.fetch, completion.result)
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

  static py::tuple to_python(TierResult& r) {
    py::object payload = r.status == TierResult::Status::Hit
                             ? py::object(py::bytes(r.payload.data(), r.payload.size()))
                             : py::object(py::none());
    return py::make_tuple(static_cast<int>(r.status), payload, r.fresh_until_wall, r.stale_until_wall,
                          r.load_ns / 1e9, py::cast(r.tags), py::cast(r.versions), r.count, r.error,
                          static_cast<int>(r.lease), r.generation, r.lease_holder);
  }

  static py::object finish_fetch(const Fetch& fetch, TierResult& r);

 private:
  struct Pending {
    py::object future;
    std::optional<Fetch> fetch;
  };
  EngineHandle& engine() { return engine_.cast<EngineHandle&>(); }
  static bool is_done(PyObject* future) {
    static PyObject* const done_name = PyUnicode_InternFromString("done");
    auto done = py::reinterpret_steal<py::object>(PyObject_CallMethodNoArgs(future, done_name));
    if (!done) throw py::error_already_set();
    return PyObject_IsTrue(done.ptr()) == 1;
  }
  py::object new_future() {
    if (!future_type_) return create_future_();
    static PyObject* const kwnames = Py_BuildValue("(s)", "loop");
    PyObject* args[] = {nullptr, loop_.ptr()};
    auto future = py::reinterpret_steal<py::object>(
        PyObject_Vectorcall(future_type_.ptr(), args + 1, 0 | PY_VECTORCALL_ARGUMENTS_OFFSET, kwnames));
    if (!future) throw py::error_already_set();
    return future;
  }

  std::shared_ptr<BridgeCore> core_;
  py::object loop_;
  py::object create_future_;
  py::object future_type_;  // set when calling it is what create_future does
  py::object engine_;  // its Redis tier is what flush() wakes
  bool flush_scheduled_ = false;
  bool draining_ = false;
  std::uint64_t quiet_reads_ = 0;  // lease reads sent while no herds happen
  SlotMap<Pending> futures_;
  std::vector<Completion> batch_;
};

// Keeps a value read from Redis in memory for the rest of its lifetime there (if its
// resource keeps memory, and no invalidation covered it since `since`, when the read was
// sent). With served=True it also counts the hit (and a stale one). Returns whether the
// value is stale now.
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

// get()'s answer to a read, counted as herdcache._ops.get counts it: the value of a Hit
// decoded with the engine's plain loads (an unsigned payload), None for a Miss or a
// Fault (Redis trouble is never the caller's), SlowRead for anything else.
py::object Bridge::finish_fetch(const Fetch& fetch, TierResult& r) {
  using Status = TierResult::Status;
  EngineHandle& e = *fetch.engine;
  if (r.status == Status::Miss || r.status == Status::Fault) {
    if (r.status == Status::Fault) fetch.res->counters.add(Counter::Errors);
    fetch.res->counters.add(Counter::Misses);
    return py::none();
  }
  if (r.status == Status::Hit && e.plain_loads && r.payload.size() >= 3 &&
      std::string_view(r.payload).substr(0, 3) == std::string_view("HC\0", 3)) {
    auto body = py::reinterpret_steal<py::object>(
        PyBytes_FromStringAndSize(r.payload.data() + 3, static_cast<Py_ssize_t>(r.payload.size() - 3)));
    if (!body) throw py::error_already_set();
    auto value = py::reinterpret_steal<py::object>(PyObject_CallOneArg(e.plain_loads.ptr(), body.ptr()));
    if (value) {
      fill_shared(e, *fetch.key, *fetch.res, value.ptr(), r.payload.size(), std::move(r.tags), r.fresh_until_wall,
                  r.stale_until_wall, r.load_ns, true, fetch.since);
      return value;
    }
    PyErr_Clear();  // Python decodes it again, and logs and counts why it cannot
  }
  return py::cast(SlowRead{to_python(r), fetch.since});
}

// A blocking caller's wait for a tier result it did not block for: another process's
// fill of a key, or the answer to a write sent in the background.
struct FillWaiter {
  OneShot<TierResult> done;
  // The result tuple (a fill notice's Hit carries the entry), or None at the deadline.
  py::object wait(double timeout_seconds);
};

py::object FillWaiter::wait(double timeout_seconds) {
  std::optional<TierResult> result;
  {
    py::gil_scoped_release release;  // set by the subscriber thread, which needs no GIL
    result = done.wait_for(seconds_to_nanos(timeout_seconds));
  }
  if (!result) return py::none();
  return Bridge::to_python(*result);
}

// Log lines from the I/O threads, kept until Python drains them (bounded).
struct LogQueue {
  std::mutex mutex;
  std::deque<std::pair<int, std::string>> lines;
  std::size_t dropped = 0;
};

RedisTier& tier(EngineHandle& e) {
  e.engine.check_open();
  if (RedisTier* t = e.engine.redis()) return *t;
  throw InvalidArgument("redis is not configured");
}

// When an async request leaves for Redis. Batched: with the rest of this loop iteration's
// requests, from the bridge's flush (one wakeup of the I/O thread for them all). Now: at
// once, for a request whose latency others wait on: a flight leader's lease read, made
// while the hundreds of callers that joined its flight still have their first step to
// run in the same iteration (a few milliseconds in a herd); in a herd its reply is also
// waited for (Bridge::settle_in_herd). While no herds happen (Bridge::herds_happen) it is
// batched too: many loads of distinct keys gain more from one wakeup for them all.
enum class Send : std::uint8_t { Batched, Now };

// Runs `start(callback)` against the tier: async with a bridge, blocking without one. A
// read passes the resource whose Redis hits and misses it counts.
template <class Start>
py::object run(py::object bridge, Start&& start, std::optional<Fetch> fetch = std::nullopt,
               Resource* counted = nullptr, Send send = Send::Batched) {
  if (!bridge.is_none()) {
    Bridge& b = bridge.cast<Bridge&>();
    auto [future, callback] = b.expect(std::move(fetch), counted);
    if (send == Send::Now && b.herds_happen()) {
      start(std::move(callback));
      b.settle_in_herd(future.ptr());
      return future;
    }
    {
      RedisClient::DeferWakeups batch;  // sent by the bridge's flush, with the others
      start(std::move(callback));
    }
    b.flush_soon(bridge);
    return future;
  }
  auto done = std::make_shared<OneShot<TierResult>>();
  start([done, counted](TierResult r) {
    count_read(counted, r);
    done->set(std::move(r));
  });
  TierResult result;
  {
    py::gil_scoped_release release;  // the I/O thread completes `done` without the GIL
    result = done->wait();
  }
  release_parked_handles();
  return fetch ? Bridge::finish_fetch(*fetch, result) : Bridge::to_python(result);
}

}  // namespace

py::object l2_fetch(EngineHandle& e, py::object key_object, const Key& key, py::object bridge) {
  RedisTier& t = tier(e);
  Resource* res = &e.engine.resource(key.resource);
  static const std::vector<std::string> kNoTags;
  const WriteFence::Seq since = e.engine.write_sequence();
  return run(bridge, [&](RedisTier::Callback cb) {
    t.read(key, kNoTags, std::string(), 0, 0, e.engine.clock().wall_ns(), std::move(cb));
  }, Fetch{std::move(key_object), &key, res, &e, since}, res);
}

namespace {

Invalidation make_invalidation(RedisTier& t, const std::string& kind, const std::vector<std::string>& targets) {
  const std::string& origin = t.instance_id();
  if (kind == "key" && targets.size() == 1) return Invalidation::key(origin, targets[0]);
  if (kind == "prefix" && targets.size() == 2) return Invalidation::prefix(origin, targets[0], targets[1]);
  if (kind == "tags" && !targets.empty()) return Invalidation::tags(origin, targets);
  if (kind == "pattern" && targets.size() == 1) return Invalidation::pattern(origin, targets[0]);
  if (kind == "clear" && targets.empty()) return Invalidation::clear(origin);
  throw InvalidArgument(fmt::format("bad invalidation: {} with {} target(s)", kind, targets.size()));
}

}  // namespace

void register_redis(py::module_& m) {
  py::class_<Bridge>(m, "Bridge", "Completes asyncio futures from the Redis I/O thread.")
      .def(py::init<py::object, py::object>(), py::arg("loop"), py::arg("engine"))
      .def("flush", &Bridge::flush)
      .def_property_readonly("fd", &Bridge::fd)
      .def_property_readonly("pending", &Bridge::pending)
      .def("drain", &Bridge::drain);

  py::class_<SlowRead>(m, "SlowRead", "A read that l2_fetch leaves for Python to finish.")
      .def(py::init<py::tuple, WriteFence::Seq>(), py::arg("result"), py::arg("since") = WriteFence::kUnfenced)
      .def_readonly("result", &SlowRead::result)
      .def_readonly("since", &SlowRead::since);

  py::class_<FillWaiter, std::shared_ptr<FillWaiter>>(m, "FillWaiter")
      .def("wait", &FillWaiter::wait, py::arg("timeout_seconds"));

  auto logs = std::make_shared<LogQueue>();
  auto engine = py::reinterpret_borrow<py::class_<EngineHandle, std::shared_ptr<EngineHandle>>>(m.attr("Engine"));
  engine
      .def("connect_redis",
           [logs](EngineHandle& e, const std::string& url, const std::string& instance_id,
                  std::int64_t connect_timeout_ms, std::int64_t command_timeout_ms, py::bytes signing_key) {
             RedisUrl parsed = parse_redis_url(url);
             RedisOptions options;
             options.connect_timeout_ms = parsed.connect_timeout_ms ? parsed.connect_timeout_ms : connect_timeout_ms;
             options.command_timeout_ms = parsed.command_timeout_ms ? parsed.command_timeout_ms : command_timeout_ms;
             options.validate();
             e.engine.connect_redis(parsed, options, instance_id, signing_key, [logs](int level, const std::string& line) {
               std::lock_guard lock(logs->mutex);
               if (logs->lines.size() >= 1000) {
                 ++logs->dropped;
                 return;
               }
               logs->lines.emplace_back(level, line);
             });
           },
           py::arg("url"), py::arg("instance_id"), py::arg("connect_timeout_ms") = 2000,
           py::arg("command_timeout_ms") = 1000, py::arg("signing_key") = py::bytes())
      .def("drain_logs",
           [logs](EngineHandle&) {
             std::deque<std::pair<int, std::string>> lines;
             std::size_t dropped;
             {
               std::lock_guard lock(logs->mutex);
               lines.swap(logs->lines);
               dropped = std::exchange(logs->dropped, 0);
             }
             py::list out;
             for (auto& [level, line] : lines) out.append(py::make_tuple(level, line));
             if (dropped) out.append(py::make_tuple(30, fmt::format("{} log line(s) dropped", dropped)));
             return out;
           })
      .def("l2_read",
           [](EngineHandle& e, const Key& key, std::vector<std::string> tags, const std::string& lease_token,
              double lease_seconds, Nanos refresh_before_wall, py::object bridge) {
             RedisTier& t = tier(e);
             Resource* res = &e.engine.resource(key.resource);
             // A resource whose Redis reads mostly miss (cold keys, memory=False loads)
             // goes straight to the read script, which can grant the lease.
             const bool plain_first = res->counters.get(Counter::RedisHits) >= res->counters.get(Counter::RedisMisses);
             return run(bridge, [&](RedisTier::Callback cb) {
               t.read(key, tags, lease_token, seconds_to_nanos(lease_seconds), refresh_before_wall,
                      e.engine.clock().wall_ns(), std::move(cb), plain_first);
             }, std::nullopt, res, Send::Now);
           },
           py::arg("key"), py::arg("tags"), py::arg("lease_token"), py::arg("lease_seconds"),
           py::arg("refresh_before_wall"), py::arg("bridge"))
      .def("l2_fetch",
           // get()'s read (no lease, no write to follow): the value, None, or a SlowRead
           // for Python to finish (Bridge::finish_fetch); a future of that with a bridge.
           [](EngineHandle& e, py::object key, py::object bridge) {
             return l2_fetch(e, key, key.cast<const Key&>(), std::move(bridge));
           },
           py::arg("key"), py::arg("bridge"))
      .def("set_plain_loads",
           // The serializer's loads when payloads are unsigned (None otherwise): l2_fetch
           // decodes with it on the loop thread, skipping the Python codec.
           [](EngineHandle& e, py::object loads) { e.plain_loads = loads.is_none() ? py::object() : std::move(loads); },
           py::arg("loads"))
      .def("l2_write",
           [](EngineHandle& e, const Key& key, py::bytes payload, Nanos fresh_until_wall,
              Nanos stale_until_wall, double load_seconds, std::vector<std::string> tags,
              py::object guard, py::object bridge, bool defer) -> py::object {
             RedisTier& t = tier(e);
             RedisTier::WriteGuard g;
             if (!guard.is_none()) {
               // (lease token, generation, versions) from the read, or
               // ("absent",) / ("equals", payload) for a conditional write.
               auto parts = guard.cast<py::tuple>();
               std::string first = parts[0].cast<std::string>();
               if (parts.size() == 1 && first == "absent") {
                 g.condition = RedisTier::WriteGuard::Condition::Absent;
                 g.now_wall = e.engine.clock().wall_ns();
               } else if (parts.size() == 2 && first == "equals") {
                 g.condition = RedisTier::WriteGuard::Condition::Equals;
                 g.expected_payload = parts[1].cast<std::string>();
               } else {
                 g.lease_token = first;
                 g.generation = parts[1].cast<std::string>();
                 g.versions = parts[2].cast<std::vector<std::string>>();
               }
             }
             std::string bytes = payload;
             auto start = [&](RedisTier::Callback cb) {
               t.write(key, std::move(bytes), fresh_until_wall, stale_until_wall,
                       seconds_to_nanos(load_seconds), tags, g, std::move(cb));
             };
             if (bridge.is_none() && defer) {
               // Sent now, in order with this thread's later commands; answered to a waiter.
               auto answer = std::make_shared<FillWaiter>();
               start([answer](TierResult r) { answer->done.set(std::move(r)); });
               return py::cast(answer);
             }
             return run(bridge, start);
           },
           py::arg("key"), py::arg("payload"), py::arg("fresh_until_wall"), py::arg("stale_until_wall"),
           py::arg("load_seconds"), py::arg("tags"), py::arg("guard"), py::arg("bridge"),
           py::arg("defer") = false)
      .def("l2_wait_fill",
           // Registers now; the caller awaits the future (async) or calls wait() (sync).
           // Registering before the read that follows closes the race with the filler.
           [](EngineHandle& e, const Key& key, double timeout_seconds, py::object bridge) -> py::object {
             RedisTier& t = tier(e);
             Nanos timeout = seconds_to_nanos(timeout_seconds);
             if (!bridge.is_none()) {
               auto [future, callback] = bridge.cast<Bridge&>().expect();
               t.wait_fill(key, timeout, std::move(callback));
               return future;
             }
             auto waiter = std::make_shared<FillWaiter>();
             t.wait_fill(key, timeout, [waiter](TierResult r) { waiter->done.set(std::move(r)); });
             return py::cast(waiter);
           },
           py::arg("key"), py::arg("timeout_seconds"), py::arg("bridge"))
      .def("l2_release",
           [](EngineHandle& e, const Key& key, const std::string& token, py::object bridge) {
             RedisTier& t = tier(e);
             return run(bridge, [&](RedisTier::Callback cb) { t.release(key, token, std::move(cb)); });
           },
           py::arg("key"), py::arg("token"), py::arg("bridge"))
      .def("l2_invalidate",
           [](EngineHandle& e, const std::string& kind, std::vector<std::string> targets, py::object bridge) {
             RedisTier& t = tier(e);
             Invalidation inv = make_invalidation(t, kind, targets);
             return run(bridge, [&](RedisTier::Callback cb) { t.invalidate(inv, std::move(cb)); });
           },
           py::arg("kind"), py::arg("targets"), py::arg("bridge"))
      .def("l2_announce",
           [](EngineHandle& e, const std::string& kind, std::vector<std::string> targets, py::object bridge) {
             RedisTier& t = tier(e);
             Invalidation inv = make_invalidation(t, kind, targets);
             return run(bridge, [&](RedisTier::Callback cb) { t.announce(inv, std::move(cb)); });
           },
           py::arg("kind"), py::arg("targets"), py::arg("bridge"))
      .def("fill",
           // fill_shared: the value read from Redis kept in memory (and counted if served).
           [](EngineHandle& e, const Key& key, py::object value, std::size_t value_bytes,
              std::vector<std::string> tags, Nanos fresh_until_wall, Nanos stale_until_wall,
              double load_seconds, bool served, WriteFence::Seq since) {
             return fill_shared(e, key, e.engine.resource(key.resource), value.ptr(), value_bytes, std::move(tags),
                                fresh_until_wall, stale_until_wall, seconds_to_nanos(load_seconds), served, since);
           },
           py::arg("key"), py::arg("value"), py::arg("value_bytes"), py::arg("tags"),
           py::arg("fresh_until_wall"), py::arg("stale_until_wall"), py::arg("load_seconds"),
           py::arg("served") = false, py::arg("since") = WriteFence::kUnfenced)
      .def("wall_ns", [](EngineHandle& e) { return e.engine.clock().wall_ns(); })
      .def("count", [](EngineHandle& e, const std::string& res, const std::string& name) {
        Counters& c = e.engine.resource(res).counters;
        for (std::size_t i = 0; i < static_cast<std::size_t>(Counter::kCount); ++i) {
          if (counter_name(Counter(i)) == name) return c.add(Counter(i));
        }
        throw InvalidArgument(fmt::format("unknown counter {}", name));
      })
      .def("redis_stats", [](EngineHandle& e) -> py::object {
        RedisTier* t = e.engine.redis();
        if (!t) return py::none();
        RedisHealth h = t->health();
        TierStats s = t->stats();
        py::dict d;
        d["configured"] = true;
        d["connected"] = h.connected;
        d["latency_ms"] = h.latency_ms < 0 ? py::object(py::none()) : py::object(py::float_(h.latency_ms));
        d["circuit"] = h.circuit;
        d["consecutive_failures"] = h.consecutive_failures;
        d["errors"] = h.errors;
        d["timeouts"] = h.timeouts;
        d["rejected"] = h.rejected;
        d["reconnects"] = h.reconnects;
        d["pending"] = h.pending;
        d["last_error"] = h.last_error;
        d["subscriber_connected"] = s.subscriber_connected;
        d["memory_suspended"] = s.memory_suspended;  // the subscriber-loss rule holds L1 back
        d["memory_suspensions"] = s.memory_suspensions;
        d["invalidations_received"] = s.messages_received;
        d["invalidations_malformed"] = s.messages_malformed;
        d["memory_flushes"] = s.memory_flushes;
        d["writes_refused"] = s.writes_refused;
        d["journal_pending"] = s.journal_pending;
        d["journal_overflows"] = s.journal_overflows;
        d["reads_plain"] = s.reads_plain;
        d["reads_scripted"] = s.reads_scripted;
        d["entries_forged"] = s.entries_forged;
        d["versions_known"] = s.versions_known;
        return d;
      });
}

}  // namespace herdcache::py_bindings
