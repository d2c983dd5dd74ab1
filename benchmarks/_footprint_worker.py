"""One library's memory per entry, in a process of its own (run by bench_memory.py --bytes).

    python _footprint_worker.py LIBRARY ENTRIES

Builds the library's cache, reads VmRSS, inserts ENTRIES entries through the library's
public API and reads VmRSS again; prints one JSON line. Every library gets the same
entries: key "bench:items:<i>" (herdcache's canonical key for `cache.key("items", i)` in
namespace "bench"; the peers get that string as their key), a distinct int value, one tag
where the library has tags. The process holds nothing of its own per entry: the values and
key strings live only in the cache.
"""

from __future__ import annotations

import gc
import json
import sys
from datetime import timedelta

TTL_S = 3600
VALUE_BASE = 1_000_000  # values are VALUE_BASE + i: distinct ints, none of them interned


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def key_of(i: int) -> str:
    return f"bench:items:{i}"


def fill_herdcache(n: int):
    from herdcache import CacheManager

    cache = CacheManager(namespace="bench", memory_max_bytes=1 << 40)  # never evicts here
    cache.sync.start()

    def fill() -> None:
        for i in range(n):
            cache.sync.set(cache.key("items", i), VALUE_BASE + i, ttl=TTL_S, tags=["items"])
        stats = cache.sync.stats()["memory"]
        assert stats["entries"] == n, stats

    return cache, fill


def fill_cachetools(n: int):
    from cachetools import TTLCache

    cache = TTLCache(maxsize=n, ttl=TTL_S)

    def fill() -> None:
        for i in range(n):
            cache[key_of(i)] = VALUE_BASE + i
        assert len(cache) == n

    return cache, fill


def fill_theine(n: int):
    from theine import Cache

    cache = Cache(n)

    def fill() -> None:
        for i in range(n):
            cache.set(key_of(i), VALUE_BASE + i, timedelta(seconds=TTL_S))
        assert cache.get(key_of(n - 1)) == (VALUE_BASE + n - 1, True)  # (value, found)

    return cache, fill


FILLERS = {"herdcache": fill_herdcache, "cachetools": fill_cachetools, "theine": fill_theine}


def main() -> None:
    library, n = sys.argv[1], int(sys.argv[2])
    cache, fill = FILLERS[library](n)
    gc.collect()
    before = rss_bytes()
    fill()
    gc.collect()
    after = rss_bytes()
    print(json.dumps({
        "library": library,
        "entries": n,
        "rss_bytes": after - before,
        "key_bytes": sum(len(key_of(i)) for i in range(n)),
        # pymalloc hands out 16-byte blocks: what one int object really occupies
        "value_bytes": sum(-(-sys.getsizeof(VALUE_BASE + i) // 16) * 16 for i in range(n)),
    }))
    del cache


if __name__ == "__main__":
    main()
