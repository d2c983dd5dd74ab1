"""bench_redis.py's batch section: get_many of KEYS keys, each a Redis read, against
redis-py's MGET and a redis-py pipeline of GETs, on the same server in the same run.

  herdcache get_many   CacheManager(redis_url=...) with Policy(memory=False): every key is
                       a Redis read (one HMGET each, all sent in one batch: one round trip),
                       each decoded to the rows.
  redis-py MGET        one MGET of the KEYS plain JSON values, raw bytes (no decode): the
                       least work any client can do for a batch.
  redis-py MGET+json   the same plus json.loads of each value: what get_many hands back.
  redis-py pipeline    a non-transactional pipeline of KEYS GETs, raw bytes.
  redis-py pipeline+json  the same plus json.loads of each value.

<tasks> tasks (10) each loop one batch call for <seconds>; keys/s = keys returned over the
wall time, median of the rounds, rounds interleaved; "loop us per key" is the event loop
thread's CPU time (/proc schedstat) over the keys returned. Latency: one task, sequential calls.
Target (issue 16): herdcache get_many >= 3x the redis-py pipeline's keys/s (the raw one:
the harder comparison); the ratio of sequential calls' p50 latency is printed beside it.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import statistics

KEYS = 100
TARGET_X_PIPELINE = 3.0


class BatchCase:
    def __init__(self, name: str, call, check, note: str) -> None:
        self.name, self.call, self.check, self.note = name, call, check, note
        self.keys_s: list[float] = []
        self.p50_us: list[float] = []
        self.loop_us: list[float] = []  # the event loop thread's CPU per key returned


async def cases(stack: contextlib.AsyncExitStack, url: str, rows, payload: bytes, ttl_s: int) -> list[BatchCase]:
    import redis.asyncio

    from herdcache import CacheManager, Policy

    cache = CacheManager(redis_url=url, namespace="bench_many", policies={"courses": Policy(ttl=ttl_s, memory=False)})
    await stack.enter_async_context(cache)
    keys = [cache.key("courses", f"o{i}") for i in range(KEYS)]
    await cache.set_many({k: rows for k in keys})
    client = redis.asyncio.Redis.from_url(url, max_connections=100)
    stack.push_async_callback(client.aclose)
    names = [f"many:o{i}" for i in range(KEYS)]
    await client.mset({n: payload for n in names})

    async def mget_json():
        return [json.loads(v) for v in await client.mget(names)]

    async def pipeline():
        pipe = client.pipeline(transaction=False)
        for n in names:
            pipe.get(n)
        return await pipe.execute()

    async def pipeline_json():
        return [json.loads(v) for v in await pipeline()]

    every = [rows] * KEYS
    raw = [payload] * KEYS
    return [BatchCase("herdcache get_many", functools.partial(cache.get_many, keys), every,
                      "Policy(memory=False): a Redis read per key, one round trip, decoded"),
            BatchCase("redis-py MGET", functools.partial(client.mget, names), raw, "raw bytes"),
            BatchCase("redis-py MGET+json", mget_json, every, "MGET + json.loads of each"),
            BatchCase("redis-py pipeline", pipeline, raw, f"pipeline(transaction=False) of {KEYS} GETs, raw bytes"),
            BatchCase("redis-py pipeline+json", pipeline_json, every, "the same + json.loads of each")]


async def measure(url: str, rows, payload: bytes, ttl_s: int, opts, throughput_round, latency_round, percentile,
                  thread_cpu_seconds):
    async with contextlib.AsyncExitStack() as stack:
        batch = await cases(stack, url, rows, payload, ttl_s)
        for case in batch:
            got = await case.call()
            if got != case.check:
                raise SystemExit(f"bench_redis: {case.name} returned {got!r:.200}")
            await throughput_round(case.call, opts.batch_tasks, 0.2)
        for r in range(opts.rounds):
            for case in batch[r % len(batch):] + batch[: r % len(batch)]:
                gc.collect()
                loop_before = thread_cpu_seconds()[0]
                calls, elapsed = await throughput_round(case.call, opts.batch_tasks, opts.seconds)
                case.loop_us.append((thread_cpu_seconds()[0] - loop_before) / (calls * KEYS) * 1e6)
                case.keys_s.append(calls * KEYS / elapsed)
                times = await latency_round(case.call, max(opts.calls // 20, 50))
                case.p50_us.append(percentile(times, 50))
    return batch


def report(batch: list[BatchCase], opts, print_rows, spread) -> bool:
    by_name = {c.name: c for c in batch}
    base = statistics.median(by_name["redis-py pipeline"].keys_s)
    print(f"get_many of {KEYS} keys ({opts.batch_tasks} concurrent tasks; keys/s = values returned per second)")
    print_rows(["case", "keys/s", "min..max of rounds", "x pipeline", "p50 us per call", "loop us per key", "note"],
               [[c.name, f"{statistics.median(c.keys_s):,.0f}", spread(c.keys_s),
                 f"{statistics.median(c.keys_s) / base:.2f}", f"{statistics.median(c.p50_us):.0f}",
                 f"{statistics.median(c.loop_us):.2f}", c.note]
                for c in batch], "<>>>>><")
    ours = by_name["herdcache get_many"]
    x = statistics.median(ours.keys_s) / base
    ok = x >= TARGET_X_PIPELINE
    print(f"herdcache get_many vs a redis-py pipeline of GETs: {x:.2f}x keys/s (target >= {TARGET_X_PIPELINE:g}x): "
          f"{'met' if ok else 'MISSED'}")
    pipe = by_name["redis-py pipeline"]
    print(f"  sequential calls (1 task): {statistics.median(pipe.p50_us) / statistics.median(ours.p50_us):.2f}x "
          f"faster p50; vs the pipeline with json.loads: "
          f"{statistics.median(ours.keys_s) / statistics.median(by_name['redis-py pipeline+json'].keys_s):.2f}x "
          f"keys/s")
    loop_x = statistics.median(pipe.loop_us) / statistics.median(ours.loop_us)
    print(f"  per CPU second of the event loop thread (where both spend most of theirs): {loop_x:.2f}x keys\n")
    return ok
