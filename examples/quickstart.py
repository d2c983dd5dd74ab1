"""herdcache in one minute, on its embedded default (memory tier, no Redis needed).

Shows request coalescing (200 concurrent requests, one database query) and
stale-while-revalidate (an expired value is served at once while one refresh runs),
then prints the cache's statistics.
"""

import asyncio
import time

from herdcache import CacheManager, Policy

cache = CacheManager(namespace="quickstart", policies={"courses": Policy(ttl=1.0, stale=30, jitter=0)})
queries = 0


@cache.cached("courses", tags=lambda org_id, semester=1: [f"org:{org_id}"])
async def fetch_courses(org_id: str, semester: int = 1) -> list[dict]:
    """Stands in for a slow join against the database."""
    global queries
    queries += 1
    await asyncio.sleep(0.2)
    return [{"org": org_id, "semester": semester, "code": f"CS{100 + i}", "version": queries} for i in range(3)]


async def timed(label: str, coro) -> object:
    start = time.perf_counter()
    result = await coro
    print(f"  {label}: {(time.perf_counter() - start) * 1000:.1f} ms")
    return result


async def main() -> None:
    async with cache:
        print("1. 200 concurrent requests for a cold key")
        results = await timed("all answered", asyncio.gather(*(fetch_courses("org-42") for _ in range(200))))
        print(f"  database queries: {queries} (coalesced: {cache.stats()['coalesced']})")

        print("2. a hit from the memory tier")
        await timed("hit", fetch_courses("org-42", semester=1))

        print("3. after the TTL: stale-while-revalidate")
        await asyncio.sleep(1.1)
        stale = await timed("stale value served", fetch_courses("org-42"))
        print(f"  served version {stale[0]['version']}; refreshing in the background...")
        while cache.stats()["background_tasks"]:
            await asyncio.sleep(0.01)
        fresh = await fetch_courses("org-42")
        print(f"  now serving version {fresh[0]['version']} (database queries: {queries})")

        print("4. invalidation by tag")
        removed = await cache.invalidate_tags("org:org-42")
        print(f"  removed {removed} entr{'y' if removed == 1 else 'ies'}")

        stats = cache.stats()
        print("stats:", {k: stats[k] for k in ("hits", "misses", "stale_served", "loads", "coalesced", "hit_rate")})
        latency = stats["resources"]["courses"]["load_ms"]
        print("load latency (ms):", {k: round(latency[k], 1) for k in ("p50", "p95", "p99")})
        assert results[0] is results[-1] and queries == 2


if __name__ == "__main__":
    asyncio.run(main())
