"""Run by test_wheel.py with an installed wheel's interpreter (`python -I`), in a mount
namespace where the system's copies of the libraries herdcache links are empty files.
Imports herdcache, uses both tiers, and prints a JSON report on stdout:

    hidden_unreadable  the hidden paths that are really empty here (all, or hiding failed)
    module             the path herdcache._native was loaded from
    libraries          every shared object mapped into this process (/proc/self/maps)
    memory, redis      what a memory-only manager, and a second instance reading the first
                       one's entry from Redis, returned
    redis_loads        how many times the two instances' loader ran (1: the second did not)
    redis_connected    stats()["redis"]["connected"] of the second instance

    python -I wheel_smoke.py REDIS_URL HIDDEN_PATH...

Nothing here imports the test suite: only the standard library and the installed wheel.
"""

import asyncio
import json
import os
import sys


def mapped_libraries() -> list[str]:
    with open("/proc/self/maps") as maps:
        paths = {line.split(None, 5)[5].strip() for line in maps if len(line.split(None, 5)) == 6}
    return sorted(p for p in paths if ".so" in os.path.basename(p))


async def two_tiers(redis_url: str) -> dict:
    from herdcache import CacheManager

    loads = []

    async def load() -> dict:
        loads.append(1)
        return {"rooms": [1, 2, 3]}

    async with CacheManager() as memory_only:
        memory_value = await memory_only.get_or_load(memory_only.key("smoke", "memory"), lambda: ["memory"])
    async with CacheManager(redis_url=redis_url, namespace="wheel") as first, \
            CacheManager(redis_url=redis_url, namespace="wheel") as second:
        await first.get_or_load(first.key("smoke", "redis"), load)
        redis_value = await second.get_or_load(second.key("smoke", "redis"), load)
        connected = second.stats()["redis"]["connected"]
    return {"memory": memory_value, "redis": redis_value, "redis_loads": len(loads),
            "redis_connected": connected}


def main() -> None:
    redis_url, hidden = sys.argv[1], sys.argv[2:]
    report: dict = {"hidden_unreadable": sorted(p for p in hidden if os.path.getsize(p) == 0)}
    import herdcache._native

    report["module"] = herdcache._native.__file__
    report.update(asyncio.run(two_tiers(redis_url)))
    report["libraries"] = mapped_libraries()
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
