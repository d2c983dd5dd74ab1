"""A Redis-tier get: herdcache against redis-py asyncio, valkey-glide, coredis, cashews and
the redis-benchmark ceiling, all against one redis-server in one run.

    .venv/bin/python benchmarks/bench_redis.py                 # 5 rounds, about 45 s
    .venv/bin/python benchmarks/bench_redis.py --rounds 3 --seconds 0.5 --check

The script starts its own redis-server (the Debian binary, on a free 127.0.0.1 port, no
persistence) and stops it at the end. Every case reads one key holding the same value,
the ten course rows of bench_memory (a list of 10 dicts, about 400 bytes of JSON):

  herdcache      CacheManager(redis_url=...) with Policy(memory=False) for the resource,
                 so every `await cache.get(key)` is a Redis read (one HMGET checked against
                 the dependency versions the instance knows, auto-pipelined on the
                 manager's one connection) and returns the decoded rows.
  redis-py       redis.asyncio.Redis(...) with the hiredis parser, `await r.get(k)`: GET of
                 the plain JSON bytes, not decoded (the least work any client can do).
  herdcache-tls  the same as herdcache over rediss://localhost (TLS 1.3, the certificate
                 verified against a throwaway CA): what encryption costs a get.
  herdcache-typed  the same rows from a cached function annotated -> list[Course] (a pydantic
                 model): each get decodes 10 models (pydantic's TypeAdapter).
  redis-py+json  the same plus json.loads: what herdcache's get hands back, a Python object.
  valkey-glide   GlideClient (valkey-glide: a Rust core behind the asyncio API) with its
                 defaults, one multiplexed connection; `await client.get(k)`, raw bytes.
  coredis        coredis.Redis.from_url(url) with its defaults; `await r.get(k)`, raw bytes.
  cashews        cache.setup("redis://..."), `await cache.get(k)` (its defaults: a
                 BlockingConnectionPool of 10 connections, pickled values).
  cashews-pool   the same with max_connections=<tasks>: one connection per task, as
                 redis-py has; each peer's faster configuration counts for the targets.
  floor          no Redis: each get awaits a future that one callback per loop iteration
                 resolves, as herdcache's bridge does; what asyncio alone costs per awaited
                 reply. floor+orjson adds orjson.loads of the value (herdcache's decoder).

Throughput: <tasks> (100) asyncio tasks in this one process each loop `await get()` for
<seconds>; ops/s is every get completed over the wall time, median of <rounds> rounds
interleaved across the cases (order rotated each round). Latency: one task doing
<calls> sequential gets per round, each timed; p50/p99 are medians over the rounds.
Ceiling: `redis-benchmark -c 1 -P <tasks> HMGET <entry> v f s d t x` on the same server:
one connection sending herdcache's own read (the HMGET of the very entry it reads) with as
many commands in flight as herdcache's batches can hold (one per task), so it bounds what
one connection of this server gives that read. Also `redis-benchmark -c 1 -P 16 GET` of a
key holding the JSON bytes, the ceiling earlier records used: with 16 in flight it is
bounded by the round trip (16 replies per wakeup of each process), not by the server, so
it moves with the machine's scheduling and herdcache (up to 100 in flight) could beat it.
Both run once after each round of throughput rounds; medians.

CPU per get: over the throughput rounds, the CPU time of this process's main thread (the
event loop), of its other threads (herdcache's I/O threads) and of redis-server, divided
by the gets done: what bounds each client on this 2-core machine.

Batches (_redis_batch.py): get_many of 100 keys against redis-py's MGET and a pipeline of
GETs, <batch-tasks> (10) tasks, keys/s; skipped with --only unless "batch" is named.

Targets (issue 3): herdcache >= 8x redis-py's throughput and >= 0.5x the ceiling. The
redis-py used for the ratio is the plain GET (no decode), the harder comparison.
Issue 11: herdcache-tls >= 0.7x herdcache's (plaintext) throughput, same run; herdcache
>= 3x valkey-glide's throughput (its plain GET, no decode).
Issue 16: get_many >= 3x a redis-py pipeline's keys/s.
--check makes the exit code say whether all were met.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import functools
import gc
import io
import json
import statistics
import subprocess
import sys
import time

import _redis_batch
from _harness import (percentile, print_rows, print_setup, redis_binary, redis_server, redis_server_version,
                      require, thread_cpu_seconds)

ROWS = [{"id": i, "name": f"course {i}", "room": f"R{i:03}"} for i in range(10)]
PAYLOAD = json.dumps(ROWS).encode()
TTL_S = 3600  # far beyond the run
TARGET_X_REDIS_PY = 8.0
TARGET_X_CEILING = 0.5
TARGET_TLS_X_PLAIN = 0.7
TARGET_X_GLIDE = 3.0
BENCHMARK_KEY = "ceiling:o1"
HMGET_FIELDS = ["v", "f", "s", "d", "t", "x"]  # what herdcache's plain read asks for (redis_tier.cpp)
SCRIPT = "bench_redis"


class Case:
    def __init__(self, name: str, get, expected, note: str) -> None:
        self.name, self.get, self.expected, self.note = name, get, expected, note
        self.ops_s: list[float] = []  # one per throughput round
        self.p50_us: list[float] = []  # one per latency round
        self.p99_us: list[float] = []
        self.ops = 0  # gets done in the throughput rounds
        self.keyspace_hits = 0  # Redis' keyspace_hits during those rounds
        self.cpu = [0.0, 0.0, 0.0]  # CPU s in those rounds: loop thread, other threads, redis-server
        self.wall = 0.0  # and their wall time
        self.entry: str | None = None  # the Redis key of the entry herdcache reads


# --- the cases ---------------------------------------------------------------------------

async def herdcache_case(stack: contextlib.AsyncExitStack, url: str, tasks: int) -> list[Case]:
    from herdcache import CacheManager, Policy

    cache = CacheManager(redis_url=url, namespace="bench", policies={"courses": Policy(ttl=TTL_S, memory=False)})
    await stack.enter_async_context(cache)
    key = cache.key("courses", "o1")
    await cache.set(key, ROWS)
    cases = [Case("herdcache", functools.partial(cache.get, key), ROWS,
                  "Policy(memory=False): every get reads Redis; returns the decoded rows")]
    cases[0].entry = str(key)  # the ceiling reads the same entry the same way

    # The same rows as pydantic models: a cached function's return annotation decodes them.
    import pydantic

    class Course(pydantic.BaseModel):
        id: int
        name: str
        room: str

    typed = CacheManager(redis_url=url, namespace="bench_typed",
                         policies={"courses": Policy(ttl=TTL_S, memory=False)})
    await stack.enter_async_context(typed)

    @typed.cached("courses")
    async def courses(org_id: str) -> list[Course]:
        return [Course(**row) for row in ROWS]

    expected = await courses("o1")
    if typed._writes:  # its write is answered in the background
        await asyncio.wait(list(typed._writes), timeout=5)
    cases.append(Case("herdcache-typed", functools.partial(typed.get, courses.key("o1")), expected,
                      "the same, -> list[Course] (pydantic): returns 10 models"))
    return cases


async def herdcache_tls_case(stack: contextlib.AsyncExitStack, url: str, tasks: int) -> list[Case]:
    from herdcache import CacheManager, Policy

    cache = CacheManager(redis_url=url, namespace="bench_tls", policies={"courses": Policy(ttl=TTL_S, memory=False)})
    await stack.enter_async_context(cache)
    key = cache.key("courses", "o1")
    await cache.set(key, ROWS)
    return [Case("herdcache-tls", functools.partial(cache.get, key), ROWS,
                 "the same over rediss:// (TLS, verified)")]


async def redis_py_case(stack: contextlib.AsyncExitStack, url: str, tasks: int) -> list[Case]:
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(url, max_connections=max(tasks, 100))
    stack.push_async_callback(client.aclose)
    await client.set("plain:o1", PAYLOAD)
    get = functools.partial(client.get, "plain:o1")

    async def get_json():
        return json.loads(await client.get("plain:o1"))

    pool = f"pool of up to {max(tasks, 100)} connections"
    return [Case("redis-py", get, PAYLOAD, f"GET, raw bytes; {pool}"),
            Case("redis-py+json", get_json, ROWS, f"GET + json.loads; {pool}")]


async def glide_case(stack: contextlib.AsyncExitStack, url: str, tasks: int) -> list[Case]:
    from glide import GlideClient, GlideClientConfiguration, NodeAddress

    host, port = url.split("//")[1].split("/")[0].rsplit(":", 1)
    client = await GlideClient.create(GlideClientConfiguration([NodeAddress(host, int(port))]))
    stack.push_async_callback(client.close)
    await client.set("glide:o1", PAYLOAD)
    return [Case("valkey-glide", functools.partial(client.get, "glide:o1"), PAYLOAD,
                 "GlideClient (Rust core), its one multiplexed connection; GET, raw bytes")]


async def coredis_case(stack: contextlib.AsyncExitStack, url: str, tasks: int) -> list[Case]:
    import coredis

    client = coredis.Redis.from_url(url)
    await stack.enter_async_context(client)  # coredis 5+: the pool runs inside this scope
    await client.set("coredis:o1", PAYLOAD)
    pool = client.connection_pool
    return [Case("coredis", functools.partial(client.get, "coredis:o1"), PAYLOAD,
                 f"coredis.Redis defaults ({type(pool).__name__}, max_connections={pool.max_connections}); "
                 "GET, raw bytes")]


async def cashews_case(stack: contextlib.AsyncExitStack, url: str, tasks: int) -> list[Case]:
    from cashews import Cache

    cases = []
    for name, options, note in (("cashews", {}, "defaults: BlockingConnectionPool of 10"),
                                ("cashews-pool", {"max_connections": tasks}, f"max_connections={tasks}")):
        cache = Cache()
        cache.setup(url, **options)
        stack.push_async_callback(cache.close)
        await cache.set("cashews:o1", ROWS, expire=TTL_S)
        cases.append(Case(name, functools.partial(cache.get, "cashews:o1"), ROWS, f"cache.get; {note}"))
    return cases


async def floor_case(stack: contextlib.AsyncExitStack, url: str, tasks: int) -> list[Case]:
    import orjson

    loop = asyncio.get_running_loop()
    pending: list[tuple[asyncio.Future, bool]] = []
    scheduled = False

    def resolve() -> None:
        nonlocal pending, scheduled
        batch, pending, scheduled = pending, [], False
        for future, decode in batch:
            if not future.done():
                future.set_result(orjson.loads(PAYLOAD) if decode else PAYLOAD)

    def make(decode: bool):
        async def get():
            nonlocal scheduled
            future = loop.create_future()
            pending.append((future, decode))
            if not scheduled:
                scheduled = True
                loop.call_soon(resolve)
            return await future
        return get

    note = "no I/O: a future per get, resolved in batches once per loop iteration"
    return [Case("floor", make(False), PAYLOAD, note),
            Case("floor+orjson", make(True), ROWS, f"{note}, plus orjson.loads of the value")]


BUILDERS = {"herdcache": herdcache_case, "herdcache-tls": herdcache_tls_case, "redis-py": redis_py_case,
            "valkey-glide": glide_case, "coredis": coredis_case, "cashews": cashews_case, "floor": floor_case}
TLS_BUILDERS = {"herdcache-tls"}  # given the server's rediss:// url
NEEDS = {"herdcache": "herdcache", "redis.asyncio": "redis-py", "glide": "valkey-glide", "coredis": "coredis",
         "cashews": "cashews"}


# --- measuring ---------------------------------------------------------------------------

def keyspace_hits(server) -> int:
    info = server.command("INFO", "stats").decode()
    return int(next(line.split(":")[1] for line in info.splitlines() if line.startswith("keyspace_hits:")))


def cpu_seconds(server) -> list[float]:
    """CPU seconds so far: this process's main thread (the event loop), its other threads
    (herdcache's I/O threads), and redis-server (its INFO cpu)."""
    loop, other = thread_cpu_seconds()
    info = dict(line.split(":", 1) for line in server.command("INFO", "cpu").decode().splitlines() if ":" in line)
    return [loop, other, float(info["used_cpu_user"]) + float(info["used_cpu_sys"])]


async def throughput_round(get, tasks: int, seconds: float) -> tuple[int, float]:
    """`tasks` tasks loop `await get()` until `seconds` have passed; (gets done, elapsed s)."""
    running = True
    counts = [0] * tasks

    async def worker(i: int) -> None:
        n = 0
        while running:
            await get()
            n += 1
        counts[i] = n

    started = time.perf_counter()
    workers = [asyncio.create_task(worker(i)) for i in range(tasks)]
    await asyncio.sleep(seconds)
    running = False
    await asyncio.gather(*workers)
    return sum(counts), time.perf_counter() - started


async def latency_round(get, calls: int) -> list[float]:
    """`calls` sequential gets from one task; each one's time in µs."""
    times = []
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        await get()
        times.append((clock() - start) / 1000)
    return times


async def measure(server, names: list[str], opts) -> tuple[list[Case], list[Ceiling]]:
    async with contextlib.AsyncExitStack() as stack:
        cases: list[Case] = []
        for name in names:
            url = server.tls_url() if name in TLS_BUILDERS else server.url
            cases += await BUILDERS[name](stack, url, opts.tasks)
        for case in cases:  # check the value, warm connections and code paths up
            value = await case.get()
            if value != case.expected:
                sys.exit(f"{SCRIPT}: {case.name} returned {value!r:.200}")
            await throughput_round(case.get, opts.tasks, 0.2)
            await latency_round(case.get, 200)
        tops = ceilings(server, cases, opts)
        for r in range(opts.rounds):
            for case in cases[r % len(cases):] + cases[: r % len(cases)]:
                gc.collect()
                hits_before = keyspace_hits(server)
                cpu_before = cpu_seconds(server)
                ops, elapsed = await throughput_round(case.get, opts.tasks, opts.seconds)
                case.cpu = [total + after - before for total, after, before in
                            zip(case.cpu, cpu_seconds(server), cpu_before)]
                case.wall += elapsed
                case.keyspace_hits += keyspace_hits(server) - hits_before
                case.ops += ops
                case.ops_s.append(ops / elapsed)
            for ceiling in tops:  # in every round too, so that the machine's drift hits them alike
                ceiling.run()
        for r in range(opts.rounds):
            for case in cases[r % len(cases):] + cases[: r % len(cases)]:
                gc.collect()
                times = await latency_round(case.get, opts.calls)
                case.p50_us.append(percentile(times, 50))
                case.p99_us.append(percentile(times, 99))
    return cases, tops


class Ceiling:
    """redis-benchmark -c 1 (one connection, `depth` commands in flight) running `command`
    on the server, -n requests per run."""

    def __init__(self, server, requests: int, depth: int, command: list[str], label: str) -> None:
        self.server, self.requests, self.label = server, requests, label
        self.argv = [redis_binary(SCRIPT, "redis-benchmark"), "-h", "127.0.0.1", "-p", str(server.port),
                     "-P", str(depth), "-c", "1", "-n", str(requests), "--csv", *command]
        self.rps: list[float] = []  # one per run
        self.keyspace_hits = 0

    def run(self) -> None:
        hits_before = keyspace_hits(self.server)
        done = subprocess.run(self.argv, capture_output=True, text=True, timeout=120)
        rows = [row for row in csv.reader(io.StringIO(done.stdout)) if len(row) > 1 and row[0] != "test"]
        if done.returncode != 0 or not rows:
            sys.exit(f"{SCRIPT}: redis-benchmark failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        self.rps.append(float(rows[0][1]))
        self.keyspace_hits += keyspace_hits(self.server) - hits_before

    @property
    def hits_per_get(self) -> float:
        return self.keyspace_hits / (self.requests * len(self.rps))


def ceilings(server, cases: list[Case], opts) -> list[Ceiling]:
    """The ceiling (last): herdcache's own read, the HMGET of its entry's fields, pipelined as
    deep as herdcache's batches can be (one per task), so it bounds what one connection of
    this server gives that read. Before it, for comparison with earlier records, the
    ceiling those used: GET of a key holding PAYLOAD, 16 in flight."""
    server.command("SET", BENCHMARK_KEY, PAYLOAD)
    out = [Ceiling(server, opts.requests, 16, ["GET", BENCHMARK_KEY], "GET -P 16: earlier records' ceiling")]
    entry = next((c.entry for c in cases if c.entry), None)
    if entry is not None:
        out.append(Ceiling(server, opts.requests, opts.tasks, ["HMGET", entry, *HMGET_FIELDS],
                           f"HMGET -P {opts.tasks}: herdcache's read, as deep: the ceiling"))
    return out


# --- report ------------------------------------------------------------------------------

def spread(values: list[float], fmt: str = ",.0f") -> str:
    return f"{min(values):{fmt}}..{max(values):{fmt}}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per case; medians are reported (default 5)")
    parser.add_argument("--seconds", type=float, default=1.0, help="length of a throughput round (default 1.0)")
    parser.add_argument("--tasks", type=int, default=100, help="concurrent tasks for throughput (default 100)")
    parser.add_argument("--calls", type=int, default=2000, help="sequential gets per latency round (default 2000)")
    parser.add_argument("--requests", type=int, default=500_000,
                        help="redis-benchmark -n, per round (default 500000)")
    parser.add_argument("--batch-tasks", type=int, default=10, help="concurrent tasks for get_many (default 10)")
    parser.add_argument("--only", help=f"comma-separated cases out of {','.join(BUILDERS)},batch (default all)")
    parser.add_argument("--check", action="store_true", help="exit 1 when herdcache misses a target")
    opts = parser.parse_args()
    wanted = opts.only.split(",") if opts.only else [*BUILDERS, "batch"]
    if set(wanted) - set(BUILDERS) - {"batch"}:
        parser.error(f"unknown case(s): {', '.join(sorted(set(wanted) - set(BUILDERS) - {'batch'}))}")
    names = [n for n in BUILDERS if n in wanted]
    require(SCRIPT, {m: who for m, who in NEEDS.items() if who in names or ("batch" in wanted and who != "cashews")})
    redis_binary(SCRIPT, "redis-benchmark")

    from redis.asyncio.connection import DefaultParser
    from redis.utils import HIREDIS_AVAILABLE

    print_setup("bench_redis: a Redis-tier get, one process, one redis-server",
                ["herdcache", "redis", "hiredis", "valkey-glide", "coredis", "cashews"],
                redis=f"redis-server {redis_server_version(redis_binary(SCRIPT))} on 127.0.0.1 (own instance, "
                      "no persistence), same machine: server, clients and redis-benchmark share the CPUs",
                hiredis=f"redis.utils.HIREDIS_AVAILABLE={HIREDIS_AVAILABLE}, redis-py parser {DefaultParser.__name__}",
                value=f"{len(ROWS)} dicts, {len(PAYLOAD)} bytes of JSON (cashews stores it pickled)",
                throughput=f"{opts.tasks} tasks x {opts.seconds:g} s per round, median of {opts.rounds} interleaved "
                           "rounds, gc on",
                latency=f"1 task, {opts.calls} sequential gets per round, p50/p99 median of {opts.rounds} rounds",
                ceiling=f"redis-benchmark -c 1 -n {opts.requests} --csv: -P {opts.tasks} HMGET of herdcache's "
                        f"entry (the ceiling) and -P 16 GET (earlier records'), median of {opts.rounds} runs each, "
                        "one after each throughput round",
                loop="asyncio default event loop")
    if not HIREDIS_AVAILABLE and "redis-py" in names:
        print("WARNING: hiredis is not importable: redis-py runs its pure-Python parser\n")

    with redis_server(SCRIPT, tls=bool(TLS_BUILDERS & set(names))) as server:
        started = time.monotonic()
        cases, tops = asyncio.run(measure(server, names, opts)) if names else ([], [])
        elapsed = time.monotonic() - started
        batch = None
        if "batch" in wanted:
            batch = asyncio.run(_redis_batch.measure(server.url, ROWS, PAYLOAD, TTL_S, opts, throughput_round,
                                                     latency_round, percentile, thread_cpu_seconds))

    met = _redis_batch.report(batch, opts, print_rows, spread) if batch else True
    if not cases:
        return 1 if opts.check and not met else 0

    by_name = {c.name: c for c in cases}

    def client_cpu_us(c: Case) -> float:  # this process's CPU per get, every thread
        return (c.cpu[0] + c.cpu[1]) / c.ops * 1e6
    base = by_name.get("redis-py")
    ceiling = tops[-1]
    top = statistics.median(ceiling.rps)
    print(f"throughput ({opts.tasks} concurrent tasks)")
    base_ops = statistics.median(base.ops_s) if base else None

    def vs_base(ops: float) -> str:
        return f"{ops / base_ops:.2f}" if base_ops else "-"

    rows = []
    for c in cases:
        ops = statistics.median(c.ops_s)
        rows.append([c.name, f"{ops:,.0f}", spread(c.ops_s), vs_base(ops), f"{ops / top:.3f}",
                     f"{c.keyspace_hits / c.ops:.2f}", c.note])
    for c in tops:
        ops = statistics.median(c.rps)
        rows.append(["redis-benchmark", f"{ops:,.0f}", spread(c.rps), vs_base(ops), f"{ops / top:.3f}",
                     f"{c.hits_per_get:.2f}", f"-c 1 {c.label}"])
    print_rows(["case", "ops/s", "min..max of rounds", "x redis-py", "x ceiling", "hits/get", "note"], rows,
               "<>>>>><")
    print("hits/get: Redis' keyspace_hits per get (1 = one key read in Redis per get, so no get was served "
          "from process memory)\n")

    print("CPU per get in the throughput rounds (/proc schedstat where the kernel has it, else 10 ms clock ticks)")
    print_rows(["case", "loop thread us", "loop busy", "other threads us", "redis-server us"],
               [[c.name, f"{c.cpu[0] / c.ops * 1e6:.2f}", f"{c.cpu[0] / c.wall:.0%}", f"{c.cpu[1] / c.ops * 1e6:.2f}",
                 f"{c.cpu[2] / c.ops * 1e6:.2f}"] for c in cases], "<>>>>")
    print("loop thread: this process's main thread, which runs the event loop; other threads: herdcache's I/O "
          "threads, valkey-glide's Rust runtime (idle ones add nothing)\n")

    print("latency (1 task, sequential gets)")
    print_rows(["case", "p50 us", "p99 us", "p50 min..max", "p99 min..max"],
               [[c.name, f"{statistics.median(c.p50_us):.1f}", f"{statistics.median(c.p99_us):.1f}",
                 spread(c.p50_us, ".1f"), spread(c.p99_us, ".1f")] for c in cases])
    print(f"measured in {elapsed:.0f} s\n")

    ours = by_name.get("herdcache")
    if ours is None:
        return 1 if opts.check and not met else 0
    ours_ops = statistics.median(ours.ops_s)
    if base_ops:
        x = ours_ops / base_ops
        ok = x >= TARGET_X_REDIS_PY
        met &= ok
        print(f"herdcache vs redis-py asyncio throughput: {x:.2f}x (target >= {TARGET_X_REDIS_PY:g}x): "
              f"{'met' if ok else 'MISSED'}")
    typed = by_name.get("herdcache-typed")
    if typed is not None and base_ops:
        print(f"herdcache typed (-> list[Course]) vs redis-py asyncio throughput: "
              f"{statistics.median(typed.ops_s) / base_ops:.2f}x (reported beside the plain case)")
    tls = by_name.get("herdcache-tls")
    if tls is not None:
        x = statistics.median(tls.ops_s) / ours_ops
        ok = x >= TARGET_TLS_X_PLAIN
        met &= ok
        print(f"herdcache over rediss:// vs plaintext throughput: {x:.2f}x (target >= {TARGET_TLS_X_PLAIN:g}x): "
              f"{'met' if ok else 'MISSED'}; per CPU second of this process: "
              f"{client_cpu_us(ours) / client_cpu_us(tls):.2f}x")
    x = ours_ops / top
    ok = x >= TARGET_X_CEILING
    met &= ok
    print(f"herdcache vs the redis-benchmark ceiling ({ceiling.label.split(':')[0]} -c 1): {x:.3f}x "
          f"(target >= {TARGET_X_CEILING:g}x): {'met' if ok else 'MISSED'}")
    if len(tops) > 1:
        print(f"  (vs earlier records' ceiling, GET -P 16 -c 1: {ours_ops / statistics.median(tops[0].rps):.3f}x)")
    glide = by_name.get("valkey-glide")
    if glide is not None:
        x = ours_ops / statistics.median(glide.ops_s)
        ok = x >= TARGET_X_GLIDE
        met &= ok
        print(f"herdcache vs valkey-glide throughput: {x:.2f}x (target >= {TARGET_X_GLIDE:g}x): "
              f"{'met' if ok else 'MISSED'}; per CPU second of this process (glide's Rust threads included): "
              f"{client_cpu_us(glide) / client_cpu_us(ours):.2f}x")
    core = by_name.get("coredis")
    if core is not None:
        print(f"herdcache vs coredis throughput: {ours_ops / statistics.median(core.ops_s):.2f}x")
    peers = [c for c in cases if c.name.split("-")[0] in ("cashews",)]
    if peers:
        best = max(peers, key=lambda c: statistics.median(c.ops_s))
        print(f"fastest cashews configuration: {best.name}, herdcache does "
              f"{ours_ops / statistics.median(best.ops_s):.2f}x its throughput")
    return 1 if opts.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
