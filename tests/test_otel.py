"""OpenTelemetry (the `otel` extra) with the SDK's in-memory exporter and reader: a load
is a span with its Redis round trips inside it, a loader's exception is recorded on it,
and stats() counters are OTel metrics. Without the extra nothing is imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import metrics, trace  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

from herdcache import _otel  # noqa: E402
from tiers import Tier  # noqa: E402

SPANS = InMemorySpanExporter()
READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def providers():
    # The global providers can be set once per process; herdcache's tracer and meter are
    # the API's proxies, which follow them from then on.
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(SPANS))
    trace.set_tracer_provider(provider)
    meters = MeterProvider(metric_readers=[READER])
    metrics.set_meter_provider(meters)
    _otel._next_check = 0.0  # herdcache notices a provider within a second; these tests at once
    yield
    # The tests after this module keep these providers (they cannot be unset): shut down,
    # they keep no span and collect nothing.
    provider.shutdown()
    meters.shutdown()


@pytest.fixture(autouse=True)
def fresh_spans():
    SPANS.clear()


async def test_a_load_is_a_span_with_its_redis_round_trips_inside(redis_url):
    async with Tier("redis", redis_url).open(namespace="otel") as cache:
        key = cache.key("rooms", 1)
        assert await cache.get_or_load(key, lambda: ["r1"]) == ["r1"]
        spans = SPANS.get_finished_spans()
        load = next(s for s in spans if s.name == "herdcache.load")
        assert load.attributes["herdcache.resource"] == "rooms"
        assert load.attributes["herdcache.key"] == str(key)
        inside = [s for s in spans if s.parent is not None and s.parent.span_id == load.context.span_id]
        assert "herdcache.redis.read" in [s.name for s in inside]  # the lease read
        assert all(s.kind == trace.SpanKind.CLIENT for s in inside)
        SPANS.clear()
        assert await cache.get_or_load(key, lambda: ["other"]) == ["r1"]  # a memory hit: no span
        assert SPANS.get_finished_spans() == ()


def test_a_blocking_load_and_a_failing_loader_are_recorded(redis_url):
    with Tier("redis", redis_url).open_sync(namespace="otel") as cache:
        def broken():
            raise LookupError("no such room")

        with pytest.raises(LookupError):
            cache.sync.get_or_load(cache.key("rooms", 2), broken)
        load = next(s for s in SPANS.get_finished_spans() if s.name == "herdcache.load")
        assert load.status.status_code == trace.StatusCode.ERROR
        assert any(e.name == "exception" for e in load.events)


async def test_stats_counters_are_otel_metrics(redis_url):
    async with Tier("redis", redis_url).open(namespace="otel_metrics") as cache:
        await cache.get_or_load(cache.key("rooms", 1), lambda: 1)
        await cache.get_or_load(cache.key("rooms", 1), lambda: 1)
        data = READER.get_metrics_data()
        points = {(m.name, dict(p.attributes).get("herdcache.resource")): p.value
                  for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                  for p in m.data.data_points if dict(p.attributes).get("herdcache.namespace") == "otel_metrics"}
        assert points[("herdcache.hits", "rooms")] == 1
        assert points[("herdcache.misses", "rooms")] == 1
        assert points[("herdcache.loads", "rooms")] == 1
        assert points[("herdcache.memory.bytes", None)] > 0


def test_without_the_extra_nothing_of_opentelemetry_is_imported(tmp_path):
    # opentelemetry hidden, as an install without the extra has it (find_spec: not found).
    hide = "import sys\nsys.modules['opentelemetry'] = None\n"
    code = hide + ("import herdcache, herdcache._otel as o\n"
                   "assert o.TRACER is None\n"
                   "assert not [m for m, v in sys.modules.items() if m.startswith('opentelemetry') and v]\n"
                   "c = herdcache.CacheManager()\n"
                   "k = c.key('rooms', 1)\n"
                   "assert c.sync.get_or_load(k, lambda: 5) == 5\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)
