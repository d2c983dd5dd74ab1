"""Stampedes: herdcache against cashews and aiocache, processes x tasks on a cold key and a
zipf workload over many keys, all against one redis-server in one run.

    .venv/bin/python benchmarks/bench_stampede.py               # about 30 s
    .venv/bin/python benchmarks/bench_stampede.py --processes 4 --tasks 250 --rounds 5 --check

The script starts its own redis-server (the Debian binary, on a free 127.0.0.1 port, no
persistence) and stops it at the end. Each library runs in worker processes
(_stampede_worker.py) that decorate the same async fetch(key) with the library's own
stampede protection and a Redis backend:

  floor      no cache library and no Redis: one asyncio future per key in each process,
             the first caller runs the loader and the others await the future. It loads
             once per process, not once in all; it is here to show what running the
             loader and waking the callers costs on this machine, the floor under the
             extra latency of every library. Not a peer: the targets ignore it.
  herdcache  CacheManager(redis_url=...), @cache.cached("rows") with Policy(ttl, jitter=0):
             in-process flights, a lease in Redis, followers woken by a "filled" notice.
  cashews    cache.setup("redis://..."), @cache(ttl=..., lock=True) (its defaults otherwise:
             protected=True shares one call per key within a process; lock=True takes a
             Redis lock around the cached call, waiters retry SET NX until it is free).
  aiocache   @cached_stampede(cache=Cache.REDIS, lease=2 (its default), ...): RedLock, a
             SET NX lease; waiters in the lease holder's process wait on an asyncio.Event,
             waiters elsewhere find no event and go ahead. pool_max_size=<tasks>: aiocache's
             pool (redis-py 8) raises "Too many connections" past 100 concurrent commands.

The loader sleeps 100 ms (asyncio.sleep, the stand-in for a slow query) and counts its runs
per key in each process; the parent adds the processes up.

Stampede: <processes> (4) processes x <tasks> (250) concurrent fetch(K) of a cold key K.
Each worker process is started and warmed up (its own key, so connections and scripts
are ready) before the rounds; every round the parent sends all of a library's processes
the same start time (wall clock, ~0.2 s ahead) and a new key. Reported per library: the
loader runs of each round, and the callers' extra latency beyond the loader, each
caller's (wait - 100 ms), p50/p99 over every caller of every process (the one who ran the
loader included: 1 of 1000), median over the rounds; "start skew" is how far apart the
processes' first calls were.

Zipf: one process, <zipf-tasks> (1000) concurrent tasks, each fetching <reads> (5) keys in
turn, drawn with P(rank k) ~ 1/k^s (s = 1.1) over <keys> (200) cold keys, the same draws for
every library (seeded). Reported: total time (from the start until every task is done)
and loader runs against the number of distinct keys read; median over the rounds.

Targets (issue 4): exactly one load per key per expiry; follower p99 extra <= 5 ms; the
zipf workload at least 2x faster than the best peer. --check makes the exit code say
whether all three were met.
"""

from __future__ import annotations

import argparse
import json
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

from _harness import percentile, print_rows, print_setup, redis_binary, redis_server, redis_server_version, require

SCRIPT = "bench_stampede"
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_stampede_worker.py")
LIBS = ["floor", "herdcache", "cashews", "aiocache"]
NEEDS = {"herdcache": "herdcache", "cashews": "cashews", "aiocache": "aiocache", "redis.asyncio": "aiocache"}
LOAD_S = 0.1
TTL_S = 600  # nothing expires during the run: every load is the one load of its key
START_AHEAD_S = 0.2  # how far ahead the start time is set when a round is sent
READY_TIMEOUT_S = 60.0  # a worker's start-up and warm-up
ROUND_TIMEOUT_S = 60.0  # one round (herdcache's lock_timeout is 10 s; aiocache's lease 2 s)
TARGET_EXTRA_P99_MS = 5.0
TARGET_ZIPF_X = 2.0


class Worker:
    """One _stampede_worker.py process: JSON lines in, JSON lines out, stderr to a file."""

    def __init__(self, config: dict) -> None:
        self.config = config
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, WORKER, json.dumps(config)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, bufsize=1)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.last_stats: dict = {}

    def send(self, command: dict) -> None:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def receive(self, timeout_s: float) -> dict:
        if not self.selector.select(timeout_s):
            self.fail(f"no answer within {timeout_s:g} s")
        line = self.proc.stdout.readline()  # the worker writes whole lines, flushed
        if not line:
            self.proc.wait(5)
            self.fail(f"exited with {self.proc.returncode}")
        return json.loads(line)

    def fail(self, what: str):
        self.log.seek(0)
        tail = "\n".join(self.log.read().splitlines()[-30:])
        raise SystemExit(f"{SCRIPT}: {self.config['lib']} worker {self.proc.pid} {what}:\n{tail}")

    def stop(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.selector.close()
        self.log.close()

    def stats_delta(self, stats: dict) -> dict:
        delta = {k: v - self.last_stats.get(k, 0) for k, v in stats.items()}
        self.last_stats = stats
        return delta


def start_workers(configs: list[dict]) -> list[Worker]:
    workers = []
    try:
        for config in configs:
            workers.append(Worker(config))
        deadline = time.monotonic() + READY_TIMEOUT_S
        for w in workers:
            w.last_stats = w.receive(max(0.1, deadline - time.monotonic()))["stats"]  # after the warm-up
    except BaseException:
        stop_workers(workers)
        raise
    return workers


def stop_workers(workers: list[Worker]) -> None:
    for w in workers:
        w.stop()


def run_all(workers: list[Worker], command: dict) -> list[dict]:
    """Sends `command` with one start time to every worker; their answers."""
    command = dict(command, start_at=time.time() + START_AHEAD_S)
    for w in workers:
        w.send(command)
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    return [w.receive(max(0.1, deadline - time.monotonic())) for w in workers]


def lib_options(lib: str, tasks: int) -> dict:
    return {"aiocache": {"pool_max_size": tasks}}.get(lib, {})


# --- the two workloads -------------------------------------------------------------------

def stampede(url: str, libs: list[str], opts, run_id: str) -> dict[str, list[dict]]:
    rounds: dict[str, list[dict]] = {lib: [] for lib in libs}
    groups = {}
    try:
        for lib in libs:
            config = {"lib": lib, "url": url, "namespace": f"st-{run_id}", "tasks": opts.tasks, "load_s": LOAD_S,
                      "ttl": TTL_S, "options": lib_options(lib, opts.tasks)}
            groups[lib] = start_workers([config] * opts.processes)
        for r in range(opts.rounds):
            for lib in libs[r % len(libs):] + libs[: r % len(libs)]:
                answers = run_all(groups[lib], {"op": "stampede", "key": f"cold-{r}"})
                waits = [w for a in answers for w in a["waits"]]
                extra_ms = [(w - LOAD_S) * 1000 for w in waits]
                starts = [a["started_at"] for a in answers]
                stats: dict = {}
                for worker, a in zip(groups[lib], answers):
                    for k, v in worker.stats_delta(a["stats"]).items():
                        stats[k] = stats.get(k, 0) + v
                rounds[lib].append({
                    "loads": sum(a["loads"] for a in answers),
                    "values": len({v for a in answers for v in a["values"]}),
                    "callers": len(waits),
                    "p50": percentile(extra_ms, 50), "p99": percentile(extra_ms, 99), "max": max(extra_ms),
                    "skew_ms": (max(starts) - min(starts)) * 1000, "stats": stats,
                })
    finally:
        for workers in groups.values():
            stop_workers(workers)
    return rounds


def zipf(url: str, libs: list[str], opts, run_id: str) -> dict[str, list[dict]]:
    rounds: dict[str, list[dict]] = {lib: [] for lib in libs}
    groups = {}
    try:
        for lib in libs:
            config = {"lib": lib, "url": url, "namespace": f"zf-{run_id}", "tasks": opts.zipf_tasks,
                      "load_s": LOAD_S, "ttl": TTL_S, "options": lib_options(lib, opts.zipf_tasks)}
            groups[lib] = start_workers([config])
        for r in range(opts.zipf_rounds):
            for lib in libs[r % len(libs):] + libs[: r % len(libs)]:
                [answer] = run_all(groups[lib], {"op": "zipf", "seed": r, "prefix": f"z{r}", "keys": opts.keys,
                                                 "s": opts.zipf_s, "reads": opts.reads})
                answer["stats"] = groups[lib][0].stats_delta(answer["stats"])
                rounds[lib].append(answer)
    finally:
        for workers in groups.values():
            stop_workers(workers)
    return rounds


# --- report ------------------------------------------------------------------------------

def med(rounds: list[dict], field: str) -> float:
    return statistics.median(r[field] for r in rounds)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=4, help="stampede: worker processes (default 4)")
    parser.add_argument("--tasks", type=int, default=250, help="stampede: concurrent callers per process (default 250)")
    parser.add_argument("--rounds", type=int, default=5, help="stampede rounds per library (default 5)")
    parser.add_argument("--zipf-tasks", type=int, default=1000, help="zipf: concurrent tasks (default 1000)")
    parser.add_argument("--reads", type=int, default=5, help="zipf: keys each task reads in turn (default 5)")
    parser.add_argument("--keys", type=int, default=200, help="zipf: distinct keys (default 200)")
    parser.add_argument("--zipf-s", type=float, default=1.1, help="zipf: exponent s (default 1.1)")
    parser.add_argument("--zipf-rounds", type=int, default=3, help="zipf rounds per library (default 3)")
    parser.add_argument("--only", help=f"comma-separated libraries out of {','.join(LIBS)} (default all)")
    parser.add_argument("--check", action="store_true", help="exit 1 when herdcache misses a target")
    opts = parser.parse_args()
    libs = opts.only.split(",") if opts.only else LIBS
    if set(libs) - set(LIBS):
        parser.error(f"unknown librar(y/ies): {', '.join(sorted(set(libs) - set(LIBS)))}")
    libs = [lib for lib in LIBS if lib in libs]
    require(SCRIPT, {m: who for m, who in NEEDS.items() if who in libs})

    print_setup("bench_stampede: cold-key stampedes across processes and a zipf workload, one redis-server",
                ["herdcache", "cashews", "aiocache", "redis", "hiredis"],
                redis=f"redis-server {redis_server_version(redis_binary(SCRIPT))} on 127.0.0.1 (own instance, "
                      "no persistence), same machine as every worker process",
                loader=f"asyncio.sleep({LOAD_S}) returning 10 dicts, runs counted per key in each process",
                stampede=f"{opts.processes} processes x {opts.tasks} tasks, cold key, common start time, "
                         f"{opts.rounds} rounds (new key each), libraries interleaved",
                zipf=f"1 process, {opts.zipf_tasks} tasks x {opts.reads} sequential reads, {opts.keys} keys, "
                     f"s={opts.zipf_s:g}, {opts.zipf_rounds} rounds (new keys, seed = round)",
                options="herdcache Policy(ttl=600, jitter=0), lock_timeout 10 s; cashews @cache(ttl=600, lock=True), "
                        "pool defaults (10, blocking); aiocache @cached_stampede(ttl=600, lease=2, "
                        "pool_max_size=<tasks>)",
                loop="asyncio default event loop in every process")

    run_id = uuid.uuid4().hex[:8]
    with redis_server(SCRIPT) as server:
        started = time.monotonic()
        st = stampede(server.url, libs, opts, run_id)
        zf = zipf(server.url, libs, opts, run_id)
        elapsed = time.monotonic() - started

    callers = opts.processes * opts.tasks
    print(f"stampede: {opts.processes} processes x {opts.tasks} tasks on a cold key, {LOAD_S * 1000:.0f} ms loader")
    rows = []
    for lib in libs:
        rounds = st[lib]
        rows.append([lib, ",".join(str(r["loads"]) for r in rounds), f"{med(rounds, 'p50'):.1f}",
                     f"{med(rounds, 'p99'):.1f}", f"{max(r['p99'] for r in rounds):.1f}",
                     f"{max(r['max'] for r in rounds):.1f}", f"{med(rounds, 'skew_ms'):.1f}",
                     ",".join(str(r["values"]) for r in rounds)])
    print_rows(["library", "loads per round", "extra p50 ms", "extra p99 ms", "worst p99", "worst max",
                "start skew ms", "distinct values"], rows)
    print(f"extra = a caller's wait - {LOAD_S * 1000:.0f} ms, over all {callers} callers of a round; p50/p99 "
          "median of rounds, worst = the round with the highest; distinct values = how many different loads' "
          "results the callers got")
    if "herdcache" in st:
        totals: dict = {}
        for r in st["herdcache"]:
            for k, v in r["stats"].items():
                totals[k] = totals.get(k, 0) + v
        print("herdcache stats over the rounds, all processes: " + ", ".join(f"{k} {v}" for k, v in totals.items()))
    print()

    print(f"zipf: 1 process, {opts.zipf_tasks} tasks x {opts.reads} reads over {opts.keys} keys (s={opts.zipf_s:g}), "
          f"{LOAD_S * 1000:.0f} ms loader")
    rows = []
    for lib in libs:
        rounds = zf[lib]
        rows.append([lib, f"{med(rounds, 'elapsed'):.3f}", ",".join(f"{r['elapsed']:.2f}" for r in rounds),
                     ",".join(f"{r['loads']}/{r['keys']}" for r in rounds),
                     ",".join(str(r["max_loads_per_key"]) for r in rounds)])
    print_rows(["library", "total s", "rounds s", "loads/keys read", "max loads of a key"], rows)
    print("total = from the common start until the last of the tasks is done")
    print(f"measured in {elapsed:.0f} s\n")

    if "herdcache" not in libs:
        return 0
    ours = st["herdcache"]
    one_load = all(r["loads"] == 1 for r in ours) and all(r["loads"] == r["keys"] for r in zf["herdcache"])
    print(f"herdcache, one load per key per expiry: {'met' if one_load else 'MISSED'} "
          f"(stampede loads per round {','.join(str(r['loads']) for r in ours)}; zipf loads/keys "
          f"{','.join(str(r['loads']) + '/' + str(r['keys']) for r in zf['herdcache'])})")
    p99 = med(ours, "p99")
    tail_ok = p99 <= TARGET_EXTRA_P99_MS
    print(f"herdcache, follower p99 extra: {p99:.1f} ms (target <= {TARGET_EXTRA_P99_MS:g} ms): "
          f"{'met' if tail_ok else 'MISSED'}")
    met = one_load and tail_ok
    peers = [lib for lib in libs if lib not in ("floor", "herdcache")]
    if peers:
        best = min(peers, key=lambda lib: med(zf[lib], "elapsed"))
        x = med(zf[best], "elapsed") / med(zf["herdcache"], "elapsed")
        zipf_ok = x >= TARGET_ZIPF_X
        met = met and zipf_ok
        print(f"herdcache, zipf: {x:.2f}x faster than the best peer ({best}, {med(zf[best], 'elapsed'):.3f} s) "
              f"(target >= {TARGET_ZIPF_X:g}x): {'met' if zipf_ok else 'MISSED'}")
    return 1 if opts.check and not met else 0


if __name__ == "__main__":
    sys.exit(main())
