"""OpenTelemetry, when the `otel` extra is installed: a span for each load (the loader's
run, its Redis reads and write included) and for each Redis round trip made from Python,
and the stats() counters as OTel metrics. Everything goes through the OTel API's global
providers, so it records nothing until the application configures an SDK. Without the
extra nothing is imported (one find_spec at import) and tracing() is False; with it, but
no SDK configured (the API's proxy or no-op provider), tracing() stays False too, so an
unconfigured install costs a miss one provider check, not spans. No hook is on a hit
path (the memory tier's, or the engine's native get).
"""

from __future__ import annotations

import importlib.util
import time
import weakref
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from .manager import CacheManager

TRACER: Any = None


def tracing() -> bool:
    """Whether spans are recorded: the extra is installed and an SDK configured."""
    return False

_managers: weakref.WeakSet[CacheManager] = weakref.WeakSet()
_FAULT = 4  # STATUS_FAULT (herdcache._native); restated to keep this module import-light

# The stats() counters exported, per manager and resource: OTel name -> stats key.
COUNTERS = {"herdcache.hits": "hits", "herdcache.misses": "misses", "herdcache.stale_served": "stale_served",
            "herdcache.loads": "loads", "herdcache.load_errors": "load_errors", "herdcache.coalesced": "coalesced",
            "herdcache.errors": "errors"}

if importlib.util.find_spec("opentelemetry") is not None and importlib.util.find_spec("opentelemetry.trace"):
    from opentelemetry import metrics, trace

    TRACER = trace.get_tracer("herdcache")
    _meter = metrics.get_meter("herdcache")
    _unconfigured = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    _configured = False
    _next_check = 0.0  # monotonic s: get_tracer_provider() costs ~1-2 us, so at most once a second

    def tracing() -> bool:  # noqa: F811 - the extra's own
        # A global provider is set once and never unset: once configured, always. Until
        # then an SDK configured after start is noticed within a second.
        global _configured, _next_check
        if _configured:
            return True
        now = time.monotonic()
        if now >= _next_check:
            _next_check = now + 1.0
            _configured = not isinstance(trace.get_tracer_provider(), _unconfigured)
        return _configured

    def _observe(stat: str) -> Any:
        def callback(options: Any) -> Iterator[Any]:
            for m in list(_managers):
                if m.closed:
                    continue
                for resource, counts in m.stats()["resources"].items():
                    yield metrics.Observation(counts[stat], {"herdcache.namespace": m.namespace,
                                                             "herdcache.resource": resource})
        return callback

    for _name, _stat in COUNTERS.items():
        _meter.create_observable_counter(_name, callbacks=[_observe(_stat)], unit="1",
                                         description=f"stats()['resources'][...]['{_stat}']")

    def _memory_bytes(options: Any) -> Iterator[Any]:
        for m in list(_managers):
            if not m.closed:
                yield metrics.Observation(m.stats()["memory_bytes"], {"herdcache.namespace": m.namespace})

    _meter.create_observable_gauge("herdcache.memory.bytes", callbacks=[_memory_bytes], unit="By",
                                   description="bytes the memory tier holds")


def register(m: CacheManager) -> None:
    """Makes a manager's counters part of the metrics (while it lives and is open)."""
    if TRACER is not None:
        _managers.add(m)


def load_span(m: CacheManager, key: Any) -> Any:
    """The current span of one load: a context manager (records the loader's exception)."""
    return TRACER.start_as_current_span("herdcache.load", attributes={
        "herdcache.namespace": m.namespace, "herdcache.resource": key.resource, "herdcache.key": str(key)})


def _round_trip(method: str) -> Any:
    return TRACER.start_span(f"herdcache.redis.{method.removeprefix('l2_')}", kind=trace.SpanKind.CLIENT,
                             attributes={"db.system": "redis"})


def _finish(span: Any, result: Any) -> None:
    if getattr(result, "status", None) == _FAULT:
        span.set_status(trace.Status(trace.StatusCode.ERROR, str(getattr(result, "error", ""))))
    span.end()


def traced_future(method: str, future: Any) -> Any:
    """An asyncio future of a Redis round trip, its span ended when it is done."""
    span = _round_trip(method)

    def done(f: Any) -> None:
        _finish(span, None if f.cancelled() or f.exception() is not None else f.result())

    future.add_done_callback(done)
    return future


def traced_call(method: str, call: Any, *args: Any) -> Any:
    """A blocking Redis round trip in its span."""
    span = _round_trip(method)
    try:
        result = call(*args)
    except BaseException:
        span.end()
        raise
    _finish(span, result)
    return result
