#include <cmath>
#include <optional>

#include <fmt/format.h>
#include <pybind11/stl.h>

#include "bindings.hpp"
#include "engine_handle.hpp"
#include "herdcache/errors.hpp"
#include "herdcache/read_protocol.hpp"

namespace herdcache::py_bindings {

namespace {


double ttl_arg(const std::optional<double>& ttl) {
  if (!ttl) return -1.0;
  if (!std::isfinite(*ttl) || *ttl < 0) {
    throw InvalidArgument(fmt::format("ttl must be a finite number >= 0, got {}", *ttl));
  }
  return *ttl;
}

// Upper bounds (milliseconds, like every other figure of a histogram's stats) of the
// Prometheus-style buckets reported with each histogram.
constexpr double kBucketBoundsMs[] = {0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000};

py::dict histogram_dict(const Histogram& h) {
  auto s = h.snapshot();
  // Cumulative counts at fixed bounds, from the engine's finer log-linear buckets: a value
  // is counted under a bound once its whole fine bucket is (so within 12.5% of the bound).
  py::list buckets;
  std::size_t fine = 0;
  std::uint64_t below = 0;
  for (double bound_ms : kBucketBoundsMs) {
    const double bound = bound_ms / 1000.0;  // the engine's buckets are in seconds
    while (fine < s.cumulative.size() && s.cumulative[fine].first <= bound) below = s.cumulative[fine++].second;
    buckets.append(py::make_tuple(bound_ms, below));
  }
  py::dict d;
  d["buckets"] = buckets;
  d["count"] = s.count;
  d["p50"] = s.p50_ms;
  d["p95"] = s.p95_ms;
  d["p99"] = s.p99_ms;
  d["max"] = s.max_ms;
  d["sum"] = s.sum_ms;
  return d;
}

py::dict counters_dict(const Counters& c, std::initializer_list<Counter> which) {
  py::dict d;
  for (Counter counter : which) d[py::str(std::string(counter_name(counter)))] = c.get(counter);
  return d;
}

constexpr std::initializer_list<Counter> kTotals = {
    Counter::Hits,     Counter::Misses,     Counter::StaleServed, Counter::Loads,
    Counter::LoadErrors, Counter::Coalesced, Counter::Errors, Counter::LeaseWaits,
    Counter::LeaseTimeouts};

// The share of reads answered without a load of their own: a hit, or a wait for another
// caller's load (coalesced), over those and the misses (each of which ran or led a load).
double hit_rate(std::uint64_t hits, std::uint64_t coalesced, std::uint64_t misses) {
  const std::uint64_t reads = hits + coalesced + misses;
  return reads == 0 ? 0.0 : static_cast<double>(hits + coalesced) / static_cast<double>(reads);
}

py::dict policy_dict(const Policy& p) {
  py::dict d;
  d["ttl"] = p.ttl_s;
  d["stale"] = p.stale_s;
  d["jitter"] = p.jitter;
  d["early_refresh"] = p.early_refresh;
  d["memory"] = p.memory;
  d["compress_min_bytes"] = p.compress_min_bytes == Policy::kNeverCompress ? py::object(py::none())
                                                                            : py::int_(p.compress_min_bytes);
  return d;
}

py::dict stats(Engine& engine) {
  py::dict out, per_resource;
  std::array<std::uint64_t, static_cast<std::size_t>(Counter::kCount)> totals{};
  for (Resource* res : engine.resources()) {
    for (std::size_t i = 0; i < totals.size(); ++i) totals[i] += res->counters.get(Counter(i));
    py::dict d = counters_dict(res->counters, kTotals);
    d["hit_rate"] = hit_rate(res->counters.get(Counter::Hits), res->counters.get(Counter::Coalesced),
                             res->counters.get(Counter::Misses));
    d["memory"] = counters_dict(res->counters, {Counter::MemoryHits, Counter::MemoryMisses});
    d["redis"] = counters_dict(res->counters, {Counter::RedisHits, Counter::RedisMisses});
    d["load_ms"] = histogram_dict(res->load_latency);
    d["miss_ms"] = histogram_dict(res->miss_latency);
    d["policy"] = policy_dict(res->policy);
    per_resource[py::str(res->name)] = d;
  }
  auto total = [&](Counter c) { return totals[static_cast<std::size_t>(c)]; };
  out["namespace"] = engine.ns();
  for (Counter c : kTotals) out[py::str(std::string(counter_name(c)))] = total(c);
  out["hit_rate"] = hit_rate(total(Counter::Hits), total(Counter::Coalesced), total(Counter::Misses));
  MemoryStats mem = engine.memory().stats();
  py::dict memory;
  memory["hits"] = total(Counter::MemoryHits);
  memory["misses"] = total(Counter::MemoryMisses);
  memory["bytes"] = mem.bytes;
  memory["entries"] = mem.entries;
  memory["max_bytes"] = mem.max_bytes;
  memory["evictions"] = mem.evictions;
  memory["expirations"] = mem.expirations;
  memory["rejected"] = mem.rejected;
  memory["fenced"] = mem.fenced;  // loads not kept: invalidated while they ran
  out["memory"] = memory;
  out["memory_bytes"] = mem.bytes;
  out["memory_entries"] = mem.entries;
  out["resources"] = per_resource;
  return out;
}

// get()'s memory lookup and the ReadProtocol step after it.
struct Looked {
  int next;
  py::object value;  // None on a miss
  Nanos fresh_until_wall;
};

Looked look_up(EngineHandle& e, const Key& key, bool count, int op) {
  Resource& res = e.engine.resource(key.resource);
  Pinned pinned;
  const Lookup found = memory_lookup(e.engine, key, res, pinned, count);
  const bool chosen = std::exchange(early_refresh_chosen, false);
  const bool early = found == Lookup::Fresh &&
                     (chosen || e.engine.should_refresh_early(res.policy, pinned.meta, e.engine.clock().monotonic_ns()));
  const auto next = static_cast<int>(ReadProtocol::on_lookup(static_cast<ReadProtocol::Op>(op), found, early,
                                                             e.engine.redis() != nullptr, res.counters));
  if (found == Lookup::Miss) return {next, py::none(), 0};
  return {next, py::reinterpret_steal<py::object>(pinned.value), e.engine.to_wall(pinned.meta.life).fresh_until};
}

}  // namespace

void register_engine(py::module_& m) {
  py::class_<EngineHandle, std::shared_ptr<EngineHandle>>(m, "Engine")
      .def(py::init([](const std::string& ns, std::size_t memory_max_bytes, const Policy& policy,
                       std::optional<std::shared_ptr<ManualClock>> clock) {
             EngineOptions options;
             options.ns = ns;
             options.memory_max_bytes = memory_max_bytes;
             options.default_policy = policy;
             std::shared_ptr<const Clock> c = clock ? *clock : nullptr;
             return std::make_shared<EngineHandle>(options, c ? c : system_clock());
           }),
           py::arg("namespace"), py::arg("memory_max_bytes"), py::arg("default_policy"),
           py::arg("clock") = std::nullopt)
      .def_property_readonly("namespace", [](EngineHandle& e) { return e.engine.ns(); })
      .def("set_policy",
           [](EngineHandle& e, const std::string& res, const Policy& p) { e.engine.set_policy(res, p); })
      .def("policy", [](EngineHandle& e, const std::string& res) { return e.engine.resource(res).policy; })
      .def("key",
           [](EngineHandle& e, const std::string& res, py::tuple args, py::object kwargs) {
             e.engine.check_open();
             KeyBuilder builder;
             e.engine.begin_key(builder, res);
             for (auto item : args) encode_value(builder, item.ptr());
             if (!kwargs.is_none()) {
               for (auto [name, value] : kwargs.cast<py::dict>()) {
                 builder.begin_param(name.cast<std::string>());
                 encode_value(builder, value.ptr());
               }
             }
             return builder.finish();
           },
           py::arg("resource"), py::arg("args"), py::arg("kwargs") = py::none())
      .def("get",
           // (next, value, fresh_until_wall): the ReadProtocol step after the memory lookup
           // (read_protocol.hpp), the cached value (None on a miss) and how fresh it is.
           [](EngineHandle& e, const Key& key, bool count, int op) -> py::tuple {
             Looked looked = look_up(e, key, count, op);
             return py::make_tuple(looked.next, std::move(looked.value), looked.fresh_until_wall);
           },
           py::arg("key"), py::arg("count") = true, py::arg("op") = static_cast<int>(ReadProtocol::Op::GetOrLoad))
      .def("get_many",
           // get_many()'s memory pass, get(key, True, op) of each key in one call:
           // (values, fetch) where values holds what memory answered (None elsewhere) and
           // fetch the positions whose step is Fetch (to read from the shared tier).
           [](EngineHandle& e, const std::vector<py::object>& keys, int op) -> py::tuple {
             py::list values(keys.size());
             py::list fetch;
             for (std::size_t i = 0; i < keys.size(); ++i) {
               Looked looked = look_up(e, keys[i].cast<const Key&>(), true, op);
               if (looked.next == static_cast<int>(ReadProtocol::Next::Fetch)) {
                 fetch.append(i);
                 looked.value = py::none();
               }
               PyList_SET_ITEM(values.ptr(), static_cast<Py_ssize_t>(i), looked.value.release().ptr());
             }
             return py::make_tuple(std::move(values), std::move(fetch));
           },
           py::arg("keys"), py::arg("op"))
      .def("peek",
           // (cached, value, fresh_until_wall, stale_until_wall): what memory holds, fresh or
           // stale, counting nothing (for writes decided on this instance's memory).
           [](EngineHandle& e, const Key& key) -> py::tuple {
             Resource& res = e.engine.resource(key.resource);
             Pinned pinned;
             if (memory_lookup(e.engine, key, res, pinned, false) == Lookup::Miss) {
               return py::make_tuple(false, py::none(), 0, 0);
             }
             const Lifetime wall = e.engine.to_wall(pinned.meta.life);
             return py::make_tuple(true, py::reinterpret_steal<py::object>(pinned.value), wall.fresh_until,
                                   wall.stale_until);
           },
           py::arg("key"))
      .def("store",
           // (fresh_until_wall, stale_until_wall) for the shared tier, or None when an
           // invalidation covering the key happened after `since` (write_sequence() when
           // the load began): the value is out of date and is written nowhere.
           [](EngineHandle& e, const Key& key, py::object value, std::size_t value_bytes,
              std::vector<std::string> tags, std::optional<double> ttl, double load_seconds,
              WriteFence::Seq since) -> py::object {
             e.engine.check_open();
             double ttl_s = ttl_arg(ttl);
             Resource& res = e.engine.resource(key.resource);
             std::optional<Lifetime> life = e.engine.store(key, res, make_handle(value.ptr()), value_bytes,
                                                           std::move(tags), ttl_s, seconds_to_nanos(load_seconds),
                                                           since);
             if (!life) return py::none();
             Lifetime wall = e.engine.to_wall(*life);
             return py::make_tuple(wall.fresh_until, wall.stale_until);
           },
           py::arg("key"), py::arg("value"), py::arg("value_bytes"), py::arg("tags"),
           py::arg("ttl") = py::none(), py::arg("load_seconds") = 0.0,
           py::arg("since") = WriteFence::kUnfenced)
      .def("write_sequence", [](EngineHandle& e) { return e.engine.write_sequence(); })
      .def("lifetime",
           // The wall-clock lifetime a value stored now would get (for conditional writes,
           // which go to Redis before the memory tier).
           [](EngineHandle& e, const Key& key, std::optional<double> ttl) {
             e.engine.check_open();
             Resource& res = e.engine.resource(key.resource);
             Lifetime life = lifetime_for(res.policy, e.engine.clock().monotonic_ns(), ttl_arg(ttl),
                                          e.engine.random_unit());
             Lifetime wall = e.engine.to_wall(life);
             return py::make_tuple(wall.fresh_until, wall.stale_until);
           },
           py::arg("key"), py::arg("ttl") = py::none())
      .def("begin_load",
           [](EngineHandle& e, const Key& key, py::object make_handle_fn, bool refresh) {
             e.engine.check_open();
             Resource& res = e.engine.resource(key.resource);
             auto joined = e.engine.flights().join(
                 key.str, [&] { return make_handle(make_handle_fn().ptr()); });
             // Leaders count what their load turns out to be (a shared hit, a miss);
             // followers only that they waited.
             if (!joined.leader && !refresh) res.counters.add(Counter::Coalesced);
             return py::make_tuple(joined.leader,
                                   py::reinterpret_borrow<py::object>(handle_object(joined.handle)),
                                   joined.id);
           },
           py::arg("key"), py::arg("make_handle"), py::arg("refresh") = false)
      .def("finish_load",
           [](EngineHandle& e, const Key& key, std::uint64_t id, bool ok, double seconds) -> py::object {
             Resource& res = e.engine.resource(key.resource);
             if (seconds >= 0) res.load_latency.record(seconds_to_nanos(seconds));  // < 0: no load ran
             if (!ok) res.counters.add(Counter::LoadErrors);
             auto done = e.engine.flights().finish(key.str, id);
             if (!done) return py::none();
             e.flight_finished(done->second);
             return py::make_tuple(py::reinterpret_borrow<py::object>(handle_object(done->first)),
                                   done->second);
           })
      .def("abandon_load",
           // A leader cancelled mid-load: true when callers follow its flight (it stays, and
           // the load starts over for them); else the flight is gone.
           [](EngineHandle& e, const Key& key, std::uint64_t id) { return e.engine.flights().abandon(key.str, id); })
      .def("record_miss", [](EngineHandle& e, const std::string& res, double seconds) {
        e.engine.resource(res).miss_latency.record(seconds_to_nanos(seconds));
      })
      .def("count_miss", [](EngineHandle& e, const std::string& res) {
        e.engine.resource(res).counters.add(Counter::Misses);
      })
      .def("in_flight", [](EngineHandle& e, const Key& key) { return e.engine.flights().in_flight(key.str); })
      .def("invalidate_key", [](EngineHandle& e, const Key& key) {
        e.engine.check_open();
        return e.engine.invalidate_key(key);
      })
      .def("dependencies_of",
           [](EngineHandle& e, const Key& key) {
             // What an entry built from `key` depends on: its dependency tags, and every
             // tag its entry in memory carries (transitivity, invalidation.hpp).
             std::vector<std::string> tags = dependency_tags(key.str, key.canonical());
             for (auto& tag : e.engine.memory().tags_of(key.str, key.hash)) tags.push_back(std::move(tag));
             return tags;
           })
      .def("invalidate",
           [](EngineHandle& e, const std::string& res, py::tuple prefix) {
             e.engine.check_open();
             KeyBuilder builder;
             e.engine.begin_key(builder, res);
             for (auto item : prefix) encode_value(builder, item.ptr());
             return e.engine.invalidate_prefix(res, builder.canonical());
           })
      .def("canonical_prefix",
           [](EngineHandle& e, const std::string& res, py::tuple prefix) {
             KeyBuilder builder;
             e.engine.begin_key(builder, res);
             for (auto item : prefix) encode_value(builder, item.ptr());
             return std::string(builder.canonical());
           })
      .def("invalidate_tags", [](EngineHandle& e, const std::vector<std::string>& tags) {
        e.engine.check_open();
        return e.engine.invalidate_tags(tags);
      })
      .def("invalidate_pattern", [](EngineHandle& e, const std::string& pattern) {
        e.engine.check_open();
        return e.engine.invalidate_pattern(pattern);
      })
      .def("clear", [](EngineHandle& e) {
        e.engine.check_open();
        return e.engine.clear();
      })
      .def("now", [](EngineHandle& e) { return e.engine.clock().monotonic_ns() / 1e9; })
      .def("stats", [](EngineHandle& e) {
        release_parked_handles();
        return stats(e.engine);
      })
      .def("close", [](EngineHandle& e) {
        {
          py::gil_scoped_release release;  // joins the Redis I/O threads, which never need it
          e.engine.close();
        }
        e.engine.clear();  // drops every cached Python object now, not at garbage collection
        release_parked_handles();
      })
      .def_property_readonly("closed", [](EngineHandle& e) { return e.engine.closed(); });
}

}  // namespace herdcache::py_bindings
