"""One worker process of bench_stampede.py: one library's cache, many concurrent callers.

    python _stampede_worker.py '{"lib": "herdcache", "url": "redis://127.0.0.1:PORT/0", ...}'

The worker builds `fetch(key)`, the library's stampede-protected cached function (or the
floor's shared future, no library) around a loader that sleeps `load_s` and counts its
runs (per key, in this process; the parent adds the processes up), warms it up on a key
of its own, prints {"ready": pid, "stats": ...}, then answers commands read one JSON
line at a time from stdin, each with one JSON line on stdout:

  {"op": "stampede", "key": K, "start_at": T}   `tasks` concurrent fetch(K), started at
                                                 wall time T; each caller's wait
  {"op": "zipf", "seed": S, "prefix": P, "start_at": T, ...}
                                                 `tasks` tasks each fetching `reads`
                                                 zipf-drawn keys in turn; the total time

It exits at EOF on stdin. Nothing else may write to stdout.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections import Counter

ROWS = [{"id": i, "name": f"course {i}", "room": f"R{i:03}"} for i in range(10)]


def build(config: dict, loader):
    """(fetch, close, stats) for the library named in config["lib"]."""
    lib, url, ttl = config["lib"], config["url"], config["ttl"]
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    if lib == "herdcache":
        from herdcache import CacheManager, Policy

        cache = CacheManager(redis_url=url, namespace=config["namespace"],
                             policies={"rows": Policy(ttl=ttl, jitter=0)})

        @cache.cached("rows")
        async def fetch(key: str):
            return await loader(key)

        def stats() -> dict:
            s = cache.stats()
            return {k: s[k] for k in ("loads", "coalesced", "lease_waits", "lease_timeouts")}

        return fetch, cache.close, stats
    if lib == "cashews":
        from cashews import Cache

        cache = Cache()
        cache.setup(url, **config.get("options", {}))

        @cache(ttl=ttl, lock=True, prefix=config["namespace"])
        async def fetch(key: str):
            return await loader(key)

        return fetch, cache.close, dict
    if lib == "aiocache":
        from aiocache import Cache, cached_stampede

        decorator = cached_stampede(ttl=ttl, cache=Cache.REDIS, endpoint="127.0.0.1", port=port,
                                    namespace=config["namespace"], **config.get("options", {}))

        @decorator
        async def fetch(key: str):
            return await loader(key)

        return fetch, decorator.cache.close, dict
    if lib == "floor":
        # No cache library: one shared future per key in this process, no Redis. What
        # waking the callers of one process costs here, the floor under every library.
        futures: dict = {}

        async def fetch(key: str):
            future = futures.get(key)
            if future is not None:
                return await future
            future = futures[key] = asyncio.get_running_loop().create_future()
            future.set_result(await loader(key))
            return future.result()

        async def close() -> None:
            pass

        return fetch, close, dict
    raise SystemExit(f"unknown lib {lib!r}")


async def sleep_until(wall: float) -> None:
    await asyncio.sleep(max(0.0, wall - time.time()))


async def main() -> None:
    config = json.loads(sys.argv[1])
    tasks, load_s = config["tasks"], config["load_s"]
    loads: Counter[str] = Counter()

    async def loader(key: str) -> dict:
        loads[key] += 1
        n = loads[key]
        await asyncio.sleep(load_s)
        return {"key": key, "by": f"{os.getpid()}/{n}", "rows": ROWS}

    fetch, close, stats = build(config, loader)

    async def timed(key: str) -> tuple[float, str]:
        started = time.perf_counter()
        value = await fetch(key)
        return time.perf_counter() - started, value["by"]

    async def stampede(cmd: dict) -> dict:
        await sleep_until(cmd["start_at"])
        started_at = time.time()
        results = await asyncio.gather(*(timed(cmd["key"]) for _ in range(tasks)))
        return {"started_at": started_at, "waits": [w for w, _ in results], "done_at": time.time(),
                "values": sorted({v for _, v in results}), "loads": loads[cmd["key"]]}

    async def zipf(cmd: dict) -> dict:
        rng = random.Random(cmd["seed"])
        weights = [1 / (rank + 1) ** cmd["s"] for rank in range(cmd["keys"])]
        draws = rng.choices(range(cmd["keys"]), weights, k=tasks * cmd["reads"])
        keys = [f"{cmd['prefix']}-{i}" for i in draws]

        async def reader(mine: list[str]) -> None:
            for key in mine:
                value = await fetch(key)
                assert value["key"] == key, (value["key"], key)

        await sleep_until(cmd["start_at"])
        started = time.perf_counter()
        await asyncio.gather(*(reader(keys[t::tasks]) for t in range(tasks)))
        elapsed = time.perf_counter() - started
        ours = {k: loads[k] for k in set(keys)}
        return {"elapsed": elapsed, "reads": len(keys), "keys": len(ours), "loads": sum(ours.values()),
                "max_loads_per_key": max(ours.values())}

    # Warm-up on a key of this process only: connections opened, scripts loaded.
    warm = f"warm-{os.getpid()}"
    await asyncio.gather(*(fetch(warm) for _ in range(tasks)))
    loop = asyncio.get_running_loop()
    print(json.dumps({"ready": os.getpid(), "stats": stats()}), flush=True)
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            cmd = json.loads(line)
            result = await (stampede(cmd) if cmd["op"] == "stampede" else zipf(cmd))
            result["stats"] = stats()
            print(json.dumps(result), flush=True)
    finally:
        await close()


if __name__ == "__main__":
    asyncio.run(main())
