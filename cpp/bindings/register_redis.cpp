// The shared tier's entry points: Engine's l2_* methods (read, fetch, write, wait for a
// fill, release, invalidate, announce), the memory fill of a Redis read, the I/O threads'
// log lines, and redis_stats. Each request goes through run() (bridge.hpp): async with
// the running loop's Bridge, blocking (GIL released) without one.
#include <deque>
#include <mutex>

#include <fmt/format.h>
#include <pybind11/stl.h>

#include "bridge.hpp"
#include "herdcache/compression.hpp"
#include "herdcache/errors.hpp"
#include "herdcache/redis_url.hpp"

namespace herdcache::py_bindings {

namespace {

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

// The resource's compression (compression.hpp) applied to a write's payload, and to the
// payload a compare-and-set expects, which Redis compares as stored. On the calling
// thread, so the write keeps its place among this thread's requests (an invalidation sent
// after it must not overtake it); with the GIL released from kReleaseGilBytes on, so
// other Python threads run meanwhile. An event loop's thread still spends the time (about
// what serializing the value took), which bench_compress.py measures.
constexpr std::size_t kReleaseGilBytes = 64 * 1024;

void compress_for(const Policy& policy, std::string& payload, RedisTier::WriteGuard& guard) {
  const std::int64_t min_bytes = policy.compress_min_bytes;  // read with the GIL: set_policy may replace it
  if (min_bytes == Policy::kNeverCompress) return;
  auto compress = [&] {
    payload = compress_payload(std::move(payload), min_bytes);
    if (guard.condition == RedisTier::WriteGuard::Condition::Equals) {
      guard.expected_payload = compress_payload(std::move(guard.expected_payload), min_bytes);
    }
  };
  if (payload.size() + guard.expected_payload.size() < kReleaseGilBytes) return compress();
  py::gil_scoped_release release;  // only engine strings are touched: no Python object
  compress();
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

void register_redis(py::module_& m) {
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
             if (dropped) out.append(py::make_tuple(kLogWarning, fmt::format("{} log line(s) dropped", dropped)));
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
      .def("l2_fetch_many",
           // get_many()'s reads: every key's read sent in one batch (one round trip), each
           // answer as l2_fetch's. With a bridge, one future resolves to a FetchedMany once
           // the last answer is in (one completion for the batch, not one per key), and the
           // batch leaves at once (it is a batch already: waiting for the loop iteration's
           // other requests would only delay it); without one, the caller blocks for them all.
           [](EngineHandle& e, const std::vector<py::object>& keys, py::object bridge) -> py::object {
             RedisTier& t = tier(e);
             static const std::vector<std::string> kNoTags;
             const WriteFence::Seq since = e.engine.write_sequence();
             auto batch = std::make_shared<ReadBatch>(keys.size());
             std::vector<Fetch> fetches;
             fetches.reserve(keys.size());
             for (const py::object& key_object : keys) {
               const Key& key = key_object.cast<const Key&>();
               batch->counted[fetches.size()] = &e.engine.resource(key.resource);
               fetches.push_back(Fetch{key_object, &key, batch->counted[fetches.size()], &e, since});
             }
             py::object future;
             if (!bridge.is_none()) future = bridge.cast<Bridge&>().expect_many(fetches, batch);
             {
               RedisClient::DeferWakeups deferred;
               for (std::size_t i = 0; i < fetches.size(); ++i) {
                 t.read(*fetches[i].key, kNoTags, std::string(), 0, 0, e.engine.clock().wall_ns(),
                        ReadBatch::answer(batch, i));
               }
             }
             t.wake();
             if (!bridge.is_none()) return future;
             {
               py::gil_scoped_release release;  // the I/O thread answers without the GIL
               batch->wait();
             }
             py::list out;
             for (std::size_t i = 0; i < fetches.size(); ++i) out.append(Bridge::finish_fetch(fetches[i], batch->results[i]));
             return out;
           },
           py::arg("keys"), py::arg("bridge") = py::none())
      .def("set_decoder",
           // How `resource`'s payload bodies decode (bytes -> value), or None for the
           // serializer's loads; l2_fetch calls it directly.
           [](EngineHandle& e, const std::string& resource, py::object loads) {
             e.engine.resource(resource).decoder = loads.is_none() ? Handle() : make_handle(loads.ptr());
           },
           py::arg("resource"), py::arg("loads"))
      .def("set_plain_loads",
           // The serializer's loads when payloads are unsigned (None otherwise): l2_fetch
           // decodes with it on the loop thread, skipping the Python codec.
           [](EngineHandle& e, py::object loads) { e.plain_loads = loads.is_none() ? py::object() : std::move(loads); },
           py::arg("loads"))
      .def("l2_write",
           [](EngineHandle& e, const Key& key, py::bytes payload, Nanos fresh_until_wall,
              Nanos stale_until_wall, double load_seconds, std::vector<std::string> tags,
              py::object guard, bool announce, py::object bridge, bool defer) -> py::object {
             RedisTier& t = tier(e);
             // guard: None, a WriteGuard from the read (TierReply.guard), or ("absent",) /
             // ("equals", payload) for a conditional write.
             RedisTier::WriteGuard g;
             if (py::isinstance<RedisTier::WriteGuard>(guard)) {
               g = guard.cast<const RedisTier::WriteGuard&>();
             } else if (!guard.is_none()) {
               auto parts = guard.cast<py::tuple>();
               std::string first = parts[0].cast<std::string>();
               if (parts.size() == 1 && first == "absent") {
                 g.condition = RedisTier::WriteGuard::Condition::Absent;
                 g.now_wall = e.engine.clock().wall_ns();
               } else if (parts.size() == 2 && first == "equals") {
                 g.condition = RedisTier::WriteGuard::Condition::Equals;
                 g.expected_payload = parts[1].cast<std::string>();
               } else {
                 throw InvalidArgument("l2_write guard: a WriteGuard, None, ('absent',) or ('equals', payload)");
               }
             }
             g.announce = announce;
             std::string bytes = payload;
             compress_for(e.engine.resource(key.resource).policy, bytes, g);
             auto start = [&](RedisTier::Callback cb) {
               t.write(key, std::move(bytes), fresh_until_wall, stale_until_wall,
                       seconds_to_nanos(load_seconds), tags, g, std::move(cb));
             };
             return send(std::move(bridge), defer, start);
           },
           py::arg("key"), py::arg("payload"), py::arg("fresh_until_wall"), py::arg("stale_until_wall"),
           py::arg("load_seconds"), py::arg("tags"), py::arg("guard"), py::arg("announce"), py::arg("bridge"),
           py::arg("defer") = false)
      .def("l2_versions",
           // The version of each dependency tag now (RedisTier::versions): what an entry
           // built from an inner read must still find when it is written.
           [](EngineHandle& e, std::vector<std::string> tags, py::object bridge, bool defer) {
             RedisTier& t = tier(e);
             return send(std::move(bridge), defer, [&](RedisTier::Callback cb) { t.versions(tags, std::move(cb)); });
           },
           py::arg("tags"), py::arg("bridge"), py::arg("defer") = false)
      .def("l2_incr",
           [](EngineHandle& e, const Key& key, std::int64_t delta, Nanos fresh_until_wall, Nanos stale_until_wall,
              bool set_lifetime, std::vector<std::string> tags, py::object bridge) {
             RedisTier& t = tier(e);
             return run(bridge, [&](RedisTier::Callback cb) {
               t.incr(key, delta, fresh_until_wall, stale_until_wall, set_lifetime, tags, e.engine.clock().wall_ns(),
                      std::move(cb));
             });
           },
           py::arg("key"), py::arg("delta"), py::arg("fresh_until_wall"), py::arg("stale_until_wall"),
           py::arg("set_lifetime"), py::arg("tags"), py::arg("bridge"))
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
      .def("l2_claim",
           [](EngineHandle& e, const std::string& name, const std::string& token, double ttl_seconds,
              py::object bridge) {
             RedisTier& t = tier(e);
             const auto ms = static_cast<std::int64_t>(ttl_seconds * 1000);
             return run(bridge, [&](RedisTier::Callback cb) { t.claim(name, token, ms, std::move(cb)); });
           },
           py::arg("name"), py::arg("token"), py::arg("ttl_seconds"), py::arg("bridge"))
      .def("l2_invalidate",
           // Applies `inv` in Redis and broadcasts it, sent as this instance's.
           [](EngineHandle& e, Invalidation inv, py::object bridge, bool defer) {
             RedisTier& t = tier(e);
             inv.origin = t.instance_id();
             return send(std::move(bridge), defer, [&](RedisTier::Callback cb) { t.invalidate(inv, std::move(cb)); });
           },
           py::arg("invalidation"), py::arg("bridge"), py::arg("defer") = false)
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
        t->probe_writes();  // only while writes are failing, once a second at most
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
        py::dict replies;  // error replies by kind (reply_errors.hpp), those seen so far
        for (const auto& [kind, n] : h.error_replies) replies[py::str(kind)] = n;
        d["error_replies"] = replies;
        d["writes_failing"] = s.writes_failing;  // the rule in reply_errors.hpp
        d["write_errors_in_a_row"] = s.write_errors_in_a_row;
        d["writes_failing_episodes"] = s.writes_failing_episodes;
        d["last_write_error"] = s.last_write_error;
        d["scripts_reloaded"] = s.scripts_reloaded;
        if (const SentinelResolver* sentinel = t->sentinel()) {
          const SentinelStats ss = sentinel->stats();
          py::dict sd;
          sd["master"] = ss.master.empty() ? py::object(py::none()) : py::object(py::str(ss.master));
          sd["failovers"] = ss.failovers;
          sd["rounds"] = ss.rounds;
          sd["listening_on"] = ss.listening_on;
          sd["last_error"] = ss.last_error;
          d["sentinel"] = sd;
        }
        return d;
      });
}

}  // namespace herdcache::py_bindings
