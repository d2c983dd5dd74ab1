// The asyncio bridge: how a shared-tier result reaches Python.
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
//
// run() sends one request through either; register_redis.cpp's l2_* methods are built on
// it. What a future resolves to is the TierResult itself (bound as TierReply), or for get()'s read (a
// Fetch) the answer itself (finish_fetch).
#pragma once
#include <atomic>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "engine_handle.hpp"
#include "herdcache/completions.hpp"
#include "herdcache/slot_map.hpp"

namespace herdcache::py_bindings {

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

// Counts a read's outcome on the I/O thread as the reply arrives (the counters are atomic).
inline void count_read(Resource* res, const TierResult& r) {
  if (res == nullptr) return;
  if (r.status == TierResult::Status::Hit) res->counters.add(Counter::RedisHits);
  if (r.status == TierResult::Status::Miss) res->counters.add(Counter::RedisMisses);
  if (r.forged) res->counters.add(Counter::Errors);  // a miss the reader did not cause
}

// get_many()'s reads, shared with the I/O thread (so it holds no Python object): each
// read's answer in its place; the last one to arrive queues the batch's one completion.
struct ReadBatch {
  explicit ReadBatch(std::size_t n) : results(n), counted(n, nullptr), remaining(n) {}
  std::vector<TierResult> results;
  std::vector<Resource*> counted;  // each read's resource, whose hits and misses it counts
  std::atomic<std::size_t> remaining;
  std::weak_ptr<BridgeCore> core;  // an async caller's bridge, which the last answer wakes
  std::uint64_t id = 0;
  OneShot<bool> all_in;  // what a blocking caller waits on

  void wait() { all_in.wait(); }

  // The callback that completes read `i` of `batch`.
  static TierCallback answer(std::shared_ptr<ReadBatch> batch, std::size_t i) {
    return [batch = std::move(batch), i](TierResult r) {
      count_read(batch->counted[i], r);
      batch->results[i] = std::move(r);
      if (batch->remaining.fetch_sub(1, std::memory_order_acq_rel) != 1) return;
      batch->all_in.set(true);
      if (auto core = batch->core.lock()) core->queue.push(Completion{batch->id, TierResult{}});
    };
  }
};

// Returned by l2_fetch when Python must finish the read (a payload the fast path does not
// decode, a Hit that failed to decode, an unusual status): `result` is the tuple.
struct SlowRead {
  py::object result;  // a TierReply
  WriteFence::Seq since = WriteFence::kUnfenced;  // when the read was sent: its fill's fence
};


// Keeps a value read from Redis in memory for the rest of its lifetime there (if its
// resource keeps memory, and no invalidation covered it since `since`, when the read was
// sent). With served=True it also counts the hit (and a stale one). Returns whether the
// value is stale now.
bool fill_shared(EngineHandle& e, const Key& key, Resource& res, PyObject* value, std::size_t value_bytes,
                 std::vector<std::string> tags, Nanos fresh_until_wall, Nanos stale_until_wall, Nanos load_ns,
                 bool served, WriteFence::Seq since);

class Bridge {
 public:
  // get_many()'s reads once all are answered: what their future resolves to (bound as
  // FetchedMany). The caller's task decodes them (finish_many), not drain(): a drain that
  // decoded every batch answered in it would hold the loop while Redis sits idle, then
  // send every task's next batch at once, and the two would take turns.
  struct Many {
    std::vector<Fetch> fetches;
    std::shared_ptr<ReadBatch> batch;
  };
  static py::object finish_many(Many& many);  // each answer as finish_fetch makes it

  Bridge(py::object loop, py::object engine);

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
  // One future for get_many()'s reads of `fetches`, resolved with their Many when the
  // last answer arrives; `batch` is theirs.
  py::object expect_many(std::vector<Fetch> fetches, const std::shared_ptr<ReadBatch>& batch) {
    py::object future = new_future();
    batch->core = core_;
    batch->id = futures_.add(Pending{future, std::nullopt, std::make_shared<Many>(Many{std::move(fetches), batch})});
    return future;
  }

  void flush_soon(py::handle self) {
    if (flush_scheduled_) return;
    loop_.attr("call_soon")(self.attr("flush"));
    flush_scheduled_ = true;
  }

  void flush();

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
  bool settle_in_herd(PyObject* future);

  // Resolves every completion queued so far. Not re-entrant: a drain() reached from inside
  // one (user code it runs: a serializer's loads, a value's __del__ on eviction) returns at
  // once, and what it would have taken waits for the next one (its eventfd is still set).
  void drain();

  static py::object to_python(TierResult& r);  // the result, moved into a TierReply
  // get()'s answer to a read, counted as herdcache._ops.get counts it: the value of a Hit
  // decoded with the engine's plain loads (an unsigned payload), None for a Miss or a
  // Fault (Redis trouble is never the caller's), SlowRead for anything else.
  static py::object finish_fetch(const Fetch& fetch, TierResult& r);

 private:
  struct Pending {
    py::object future;
    std::optional<Fetch> fetch;
    std::shared_ptr<Many> many;  // get_many()'s reads: the future resolves to their list
  };
  EngineHandle& engine() { return engine_.cast<EngineHandle&>(); }
  static bool is_done(PyObject* future);
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

// A blocking caller's wait for a tier result it did not block for: another process's
// fill of a key, or the answer to a write sent in the background.
struct FillWaiter {
  OneShot<TierResult> done;
  // The result tuple (a fill notice's Hit carries the entry), or None at the deadline.
  py::object wait(double timeout_seconds);
};

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

// run(), or for a blocking caller that `defer`s: sent now, in order with this thread's
// later commands, its answer left to a FillWaiter the caller waits on when it needs it.
template <class Start>
py::object send(py::object bridge, bool defer, Start&& start) {
  if (bridge.is_none() && defer) {
    auto answer = std::make_shared<FillWaiter>();
    start([answer](TierResult r) { answer->done.set(std::move(r)); });
    return py::cast(answer);
  }
  return run(std::move(bridge), std::forward<Start>(start));
}

}  // namespace herdcache::py_bindings
