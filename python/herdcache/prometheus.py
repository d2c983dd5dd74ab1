"""Prometheus metrics for a CacheManager: a custom collector over ``cache.stats()``.

    from prometheus_client import CollectorRegistry
    from herdcache.prometheus import HerdcacheCollector

    registry.register(HerdcacheCollector(cache))   # the app's own registry, or REGISTRY

Nothing is counted twice: every scrape reads the engine's counters, so the collector
keeps no state and can join any registry. Families (seconds and bytes, per Prometheus
conventions):

    herdcache_hits_total{resource,tier}      tier = memory | redis
    herdcache_misses_total{resource,tier}
    herdcache_stale_served_total{resource}   herdcache_loads_total{resource}
    herdcache_load_errors_total{resource}    herdcache_coalesced_total{resource}
    herdcache_errors_total{resource}
    herdcache_load_seconds{resource,le}      histogram: loader (database) time
    herdcache_miss_seconds{resource,le}      histogram: what a miss cost its caller
    herdcache_memory_bytes / _entries / _max_bytes (gauges),
    herdcache_memory_evictions_total / _expirations_total / _rejected_total
    herdcache_redis_up, herdcache_redis_configured, herdcache_redis_latency_seconds,
    herdcache_redis_circuit{state}, herdcache_redis_errors_total, and the engine's other
    Redis counters and gauges (reconnects, timeouts, journal_pending, ...) when reported
    herdcache_redis_error_replies_total{kind}   error replies by kind (READONLY, OOM, ...)
    herdcache_redis_writes_failing           1 while writes are failing (the engine's rule)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from .manager import CacheManager

TIERS = ("memory", "redis")
RESOURCE_COUNTERS = {
    "stale_served": "Values served stale while one refresh ran.",
    "loads": "Loader runs (database fetches).",
    "load_errors": "Loader runs that raised.",
    "coalesced": "Callers that waited on another caller's load instead of loading.",
    "errors": "Cache faults (e.g. Redis unreachable) absorbed without failing the caller.",
}
MEMORY_GAUGES = {"bytes": "Bytes held by the memory tier.", "entries": "Entries in the memory tier.",
                 "max_bytes": "The memory tier's bound in bytes."}
MEMORY_COUNTERS = {"evictions": "Entries evicted to stay under max_bytes.",
                   "expirations": "Entries dropped because they expired.",
                   "rejected": "Values too large for the memory tier.",
                   "fenced": "Loads not kept because an invalidation covered them while they ran."}
CIRCUIT_STATES = ("closed", "open", "half_open", "disabled")
# Further fields of stats()["redis"], exported when the engine reports them.
REDIS_COUNTERS = {
    "timeouts": "Redis calls that timed out.",
    "rejected": "Redis calls refused while the circuit was open.",
    "reconnects": "Reconnections to Redis.",
    "invalidations_received": "Invalidations heard from other instances.",
    "invalidations_malformed": "Invalidation messages that could not be read.",
    "memory_flushes": "Memory tier flushes after the invalidation channel was lost.",
    "memory_suspensions": "Times the memory tier stopped serving: invalidation channel lost, Redis up.",
    "writes_refused": "Writes refused because an invalidation revoked their lease.",
    "journal_overflows": "Invalidations that did not fit the outage journal.",
    "reads_plain": "Redis reads answered by one HMGET, checked against known dependency versions.",
    "reads_scripted": "Redis reads answered by the read script (misses, leases, unknown versions).",
    "scripts_reloaded": "Scripts Redis had forgotten (NOSCRIPT): re-run by source and reloaded.",
    "writes_failing_episodes": "Times Redis writes began failing (error replies to every write).",
}
REDIS_GAUGES = {
    "pending": "Redis requests queued or in flight.",
    "consecutive_failures": "Redis failures in a row.",
    "subscriber_connected": "1 while the invalidation subscriber is connected.",
    "memory_suspended": "1 while the memory tier is not served (invalidation channel lost).",
    "journal_pending": "Invalidations journaled during an outage, not yet replayed.",
    "versions_known": "Dependency versions this instance knows (for plain reads).",
    "writes_failing": "1 while Redis answers writes with errors and none has succeeded since (READONLY, OOM, ...).",
    "write_errors_in_a_row": "Redis writes answered with an error since the last one that succeeded.",
}


class HerdcacheCollector(Collector):
    def __init__(self, cache: CacheManager, prefix: str = "herdcache") -> None:
        self.cache = cache
        self.prefix = prefix

    def collect(self) -> Iterator[Metric]:
        return iter(self._families(self.cache.stats()))

    def describe(self) -> Iterator[Metric]:
        # The same families without samples: lets a registry detect duplicate names.
        return iter(self._families({}))

    def _families(self, stats: dict[str, Any]) -> list[Metric]:
        p = self.prefix
        resources: dict[str, Any] = stats.get("resources", {})
        hits = CounterMetricFamily(f"{p}_hits", "Lookups answered by a tier.", labels=["resource", "tier"])
        misses = CounterMetricFamily(f"{p}_misses", "Lookups a tier could not answer.", labels=["resource", "tier"])
        per_resource = {
            name: CounterMetricFamily(f"{p}_{name}", doc, labels=["resource"]) for name, doc in RESOURCE_COUNTERS.items()
        }
        load = HistogramMetricFamily(f"{p}_load_seconds", "Loader (database) latency per resource.", labels=["resource"])
        miss = HistogramMetricFamily(f"{p}_miss_seconds", "Latency of a miss as its caller saw it, per resource.",
                                     labels=["resource"])
        for resource, r in sorted(resources.items()):
            for tier in TIERS:
                tier_stats = r.get(tier, {})
                hits.add_metric([resource, tier], tier_stats.get(f"{tier}_hits", 0))
                misses.add_metric([resource, tier], tier_stats.get(f"{tier}_misses", 0))
            for name, family in per_resource.items():
                family.add_metric([resource], r.get(name, 0))
            _observe(load, resource, r.get("load_ms", {}))
            _observe(miss, resource, r.get("miss_ms", {}))
        families: list[Metric] = [hits, misses, *per_resource.values(), load, miss]
        families += self._memory(stats.get("memory"))
        families += self._redis(stats.get("redis"))
        return families

    def _memory(self, memory: dict[str, Any] | None) -> list[Metric]:
        p = self.prefix
        gauges = [GaugeMetricFamily(f"{p}_memory_{n}", doc) for n, doc in MEMORY_GAUGES.items()]
        counters = [CounterMetricFamily(f"{p}_memory_{n}", doc) for n, doc in MEMORY_COUNTERS.items()]
        families: list[GaugeMetricFamily | CounterMetricFamily] = [*gauges, *counters]
        if memory is not None:
            for family, name in zip(families, [*MEMORY_GAUGES, *MEMORY_COUNTERS]):
                family.add_metric([], memory.get(name, 0))
        return [*families]

    def _redis(self, redis: dict[str, Any] | None) -> list[Metric]:
        p = self.prefix
        up = GaugeMetricFamily(f"{p}_redis_up", "1 while the Redis tier is connected.")
        configured = GaugeMetricFamily(f"{p}_redis_configured", "1 when a redis_url is configured.")
        latency = GaugeMetricFamily(f"{p}_redis_latency_seconds", "Latest measured Redis round trip.")
        circuit = GaugeMetricFamily(f"{p}_redis_circuit", "The circuit breaker's state (1 = current).", labels=["state"])
        errors = CounterMetricFamily(f"{p}_redis_errors", "Redis faults absorbed by the cache.")
        replies = CounterMetricFamily(f"{p}_redis_error_replies", "Redis error replies by kind (their first word).",
                                      labels=["kind"])
        extra: list[GaugeMetricFamily | CounterMetricFamily] = [CounterMetricFamily(f"{p}_redis_{n}", doc) for n, doc in REDIS_COUNTERS.items()]
        extra += [GaugeMetricFamily(f"{p}_redis_{n}", doc) for n, doc in REDIS_GAUGES.items()]
        if redis is not None:
            for family, name in zip(extra, [*REDIS_COUNTERS, *REDIS_GAUGES]):
                if redis.get(name) is not None:
                    family.add_metric([], float(redis[name]))
            up.add_metric([], 1 if redis.get("connected") else 0)
            configured.add_metric([], 1 if redis.get("configured") else 0)
            if redis.get("latency_ms") is not None:
                latency.add_metric([], redis["latency_ms"] / 1000.0)
            current = str(redis.get("circuit", "disabled"))
            for state in dict.fromkeys((*CIRCUIT_STATES, current)):
                circuit.add_metric([state], 1 if state == current else 0)
            errors.add_metric([], redis.get("errors", 0))
            for kind, n in sorted(redis.get("error_replies", {}).items()):
                replies.add_metric([kind], n)
        return [up, configured, latency, circuit, errors, replies, *extra]


def _observe(histogram: HistogramMetricFamily, resource: str, ms: dict[str, Any]) -> None:
    """The engine's cumulative buckets (upper bound in milliseconds, count), in seconds, plus +Inf."""
    buckets = [(_bound(le / 1000.0), count) for le, count in ms.get("buckets", ())]
    buckets.append(("+Inf", ms.get("count", 0)))
    histogram.add_metric([resource], buckets, sum_value=ms.get("sum", 0.0) / 1000.0)


def _bound(seconds: float) -> str:
    return repr(float(seconds))
