"""A worker process for the stampede tests: one CacheManager, many concurrent callers.

    python stampede_worker.py REDIS_URL MODE KEY TASKS [options as JSON]

Loads are counted in Redis (INCR loads:<key>), so the test sees every process's loads.
Prints one JSON line: what each caller got and how long it waited.
"""

import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import resp_command  # noqa: E402

from herdcache import CacheManager, ManualClock, Policy  # noqa: E402


async def main() -> None:
    url, mode, key, tasks = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    options = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    address = ("127.0.0.1", port)
    load_seconds = options.get("load_seconds", 0.3)
    clock = ManualClock() if "advance" in options else None
    if clock is not None:
        clock.advance(options["advance"])
    cache = CacheManager(
        redis_url=url,
        namespace="st",
        policies={"r": Policy(ttl=options.get("ttl", 60), stale=options.get("stale", 0), jitter=0)},
        lock_timeout=options.get("lock_timeout", 10.0),
        clock=clock,
    )

    async def loader():
        n = resp_command(address, "INCR", f"loads:{key}")
        if options.get("announce"):
            resp_command(address, "SET", f"loading:{key}", str(n))
        await asyncio.sleep(load_seconds)
        return {"key": key, "load": n}

    async def call():
        started = time.monotonic()
        value = await cache.get_or_load(cache.key("r", key), loader)
        return value, time.monotonic() - started

    async with cache:
        if options.get("start_at"):
            await asyncio.sleep(max(0.0, options["start_at"] - time.time()))
        results = await asyncio.gather(*(call() for _ in range(tasks)))
        if options.get("wait_refresh"):
            while cache.stats()["background_tasks"]:
                await asyncio.sleep(0.01)
        stats = cache.stats()
    print(json.dumps({
        "values": [v for v, _ in results],
        "waits": [w for _, w in results],
        "stats": {k: stats[k] for k in ("loads", "lease_waits", "lease_timeouts", "stale_served", "coalesced")},
    }))


if __name__ == "__main__":
    asyncio.run(main())
