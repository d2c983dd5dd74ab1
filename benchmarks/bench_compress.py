"""Compression of a large value: what Policy(compress_min_bytes=...) saves in Redis and
what it costs per operation, against the same manager without compression, in one run.

    .venv/bin/python benchmarks/bench_compress.py              # 7 rounds, about 30 s
    .venv/bin/python benchmarks/bench_compress.py --rows 2000 --rounds 3

The script starts its own redis-server (as bench_redis.py). The value is a timetable of
<rows> (8000) slot dicts, about 1 MB of JSON, written and read by managers that differ
only in the resource's policy:

  plain       Policy(ttl, memory=False): stored as it is
  zstd        Policy(ttl, memory=False, compress_min_bytes=1024): stored as one zstd frame
              (level 3), compressed on the calling thread (GIL released), decompressed on
              the Redis I/O thread as the reply is decoded

and in what they cache: "rows" is the list of dicts with the default JSON serializer
(what a user sees end to end: encoding and decoding 8000 dicts dominate), "bytes" is the
same JSON text as one bytes value with a pass-through serializer, so that what differs
between its plain and zstd rows is compression alone.

memory=False makes every get a Redis read. Per round and case: <ops> (20) sequential sets
and <ops> sequential gets from one task; per op: wall time (median over ops, then over
rounds) and the CPU time of this process's main thread (the event loop: serializing,
compressing) and of its other threads (herdcache's I/O threads: sending, receiving,
decompressing), from /proc. The cost of compression is the zstd row minus the plain one.
For reference, zlib (Python's, level 6) compresses and decompresses the same JSON bytes
in the same run: a ratio and a time anyone can reproduce without herdcache.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import statistics
import sys
import time
import zlib

from _harness import (print_rows, print_setup, redis_binary, redis_server, redis_server_version, require,
                      thread_cpu_seconds)

SCRIPT = "bench_compress"
TTL_S = 3600


def timetable(rows: int) -> list[dict]:
    days = ["mon", "tue", "wed", "thu", "fri"]
    return [{"id": i, "course": f"course {i % 300}", "teacher": f"teacher {i % 70}", "room": f"R{i % 120:03}",
             "day": days[i % 5], "start": f"{8 + i % 9:02}:{(i * 15) % 60:02}", "minutes": 45 + 45 * (i % 2),
             "group": f"G{i % 40}", "weeks": [w for w in range(1, 15) if (w + i) % 3]} for i in range(rows)]


class Passthrough:
    """A serializer for bytes values that are their own payload body."""

    name = "passthrough"

    @staticmethod
    def dumps(value: bytes) -> bytes:
        return value

    @staticmethod
    def loads(body: bytes) -> bytes:
        return body


class Case:
    def __init__(self, name: str, cache, key, value) -> None:
        self.name, self.cache, self.key, self.value = name, cache, key, value
        self.wall = {"set": [], "get": []}  # median µs per op, one per round
        self.cpu = {"set": [0.0, 0.0, 0], "get": [0.0, 0.0, 0]}  # main s, other s, ops
        self.stored_bytes = 0


async def timed(case: Case, what: str, ops: int) -> None:
    op = (lambda: case.cache.set(case.key, case.value)) if what == "set" else (lambda: case.cache.get(case.key))
    times = []
    before = thread_cpu_seconds()
    for _ in range(ops):
        start = time.perf_counter_ns()
        await op()
        times.append((time.perf_counter_ns() - start) / 1000)
    after = thread_cpu_seconds()
    total = case.cpu[what]
    total[0] += after[0] - before[0]
    total[1] += after[1] - before[1]
    total[2] += ops
    case.wall[what].append(statistics.median(times))


async def measure(url: str, rows, body: bytes, opts) -> list[Case]:
    import redis as redis_py

    from herdcache import CacheManager, Policy

    cases = []
    async with contextlib.AsyncExitStack() as stack:
        for kind, value, serializer in (("rows", rows, "json"), ("bytes", body, Passthrough())):
            for name, extra in (("plain", {}), ("zstd", {"compress_min_bytes": 1024})):
                cache = CacheManager(redis_url=url, namespace=f"bench_{kind}_{name}", serializer=serializer,
                                     policies={"timetable": Policy(ttl=TTL_S, memory=False, **extra)})
                await stack.enter_async_context(cache)
                case = Case(f"{kind} {name}", cache, cache.key("timetable", "org1"), value)
                await cache.set(case.key, value)
                if await cache.get(case.key) != value:
                    sys.exit(f"{SCRIPT}: {case.name} did not read back what it wrote")
                with redis_py.Redis.from_url(url) as r:
                    case.stored_bytes = len(r.hget(str(case.key), "v"))
                cases.append(case)
        for r in range(opts.rounds):
            for case in cases[r % len(cases):] + cases[: r % len(cases)]:
                gc.collect()
                await timed(case, "set", opts.ops)
                await timed(case, "get", opts.ops)
    return cases


def zlib_reference(body: bytes, rounds: int) -> tuple[float, float, float]:
    """(ratio, compress ms, decompress ms) of zlib level 6 on `body`, medians."""
    packed = zlib.compress(body, 6)
    c, d = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        zlib.compress(body, 6)
        c.append(time.perf_counter() - start)
        start = time.perf_counter()
        zlib.decompress(packed)
        d.append(time.perf_counter() - start)
    return len(body) / len(packed), statistics.median(c) * 1e3, statistics.median(d) * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=8000, help="slot dicts in the value (default 8000: ~1 MB)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds per case; medians reported (default 7)")
    parser.add_argument("--ops", type=int, default=20, help="sequential sets and gets per round (default 20)")
    opts = parser.parse_args()
    require(SCRIPT, {"herdcache": "herdcache", "redis": "the raw size read"})
    value = timetable(opts.rows)
    body = json.dumps(value, separators=(",", ":")).encode()
    print_setup("bench_compress: a ~1 MB JSON value in Redis, with and without compress_min_bytes",
                ["herdcache", "redis"],
                redis=f"redis-server {redis_server_version(redis_binary(SCRIPT))} on 127.0.0.1 (own instance)",
                value=f"{opts.rows} slot dicts, {len(body):,} bytes of JSON",
                rounds=f"{opts.rounds} rounds x {opts.ops} sequential sets then gets per case, interleaved")
    with redis_server(SCRIPT) as server:
        cases = asyncio.run(measure(server.url, value, body, opts))
    ratio, zc, zd = zlib_reference(body, opts.rounds * 3)

    print("stored in Redis (the entry's v field)")
    print_rows(["case", "bytes", "ratio"],
               [[c.name, f"{c.stored_bytes:,}", f"{cases[0].stored_bytes / c.stored_bytes:.2f}"] for c in cases]
               + [["zlib-6 (reference)", f"{len(body) / ratio:,.0f}", f"{ratio:.2f}"]])

    def per_op(c: Case, what: str) -> list[str]:
        main_s, other_s, ops = c.cpu[what]
        return [f"{statistics.median(c.wall[what]) / 1000:.2f}", f"{main_s / ops * 1e3:.2f}",
                f"{other_s / ops * 1e3:.2f}"]

    print("per operation (ms; CPU per thread from /proc schedstat)")
    rows = []
    for what in ("set", "get"):
        for plain, zstd in (cases[0:2], cases[2:4]):
            rows.append([f"{what} {plain.name}", *per_op(plain, what)])
            rows.append([f"{what} {zstd.name}", *per_op(zstd, what)])
            diff = [float(z) - float(p) for z, p in zip(per_op(zstd, what), per_op(plain, what))]
            rows.append([f"{what} {zstd.name.split()[0]}: zstd - plain", *[f"{d:+.2f}" for d in diff]])
    rows.append(["zlib-6 compress (reference)", f"{zc:.2f}", "", ""])
    rows.append(["zlib-6 decompress (reference)", f"{zd:.2f}", "", ""])
    print_rows(["operation", "wall p50", "loop thread CPU", "other threads CPU"], rows)
    print("set: serialize + compress on the loop thread, send on the I/O thread; get: receive and decompress on "
          "the I/O thread, decode on the loop thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
