"""What every herdcache benchmark shares: timing rounds, the setup printout, the table.

A case is a callable timed by calling it with the same arguments many times in a row
from inside a coroutine (awaiting it when it is async); the times include that loop. A
round is `max_calls` calls, or fewer for a slow case, enough to last about `round_s`
(sized from a warm-up), so slow peers do not stretch the run to minutes. The rounds of
all cases are interleaved (case order rotated each round) so that drift in the machine's
speed hits every case alike; each case reports the median of its rounds. The garbage
collector is off while a round runs, as in timeit.

The benchmarks against Redis (bench_redis, bench_stampede) share the rest: a redis-server
of their own (tests/servers.py's RedisServer, on a free 127.0.0.1 port, stopped at the
end whatever happens), nearest-rank percentiles, a check that the packages import, and a
plain table printer.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Callable


@dataclass
class Case:
    name: str
    fn: Callable[..., Any]
    note: str = ""
    awaited: bool = True  # timed as `await fn(*args)`, else as `fn(*args)`
    calls: int = 0  # per round
    rounds_ns: list[float] = field(default_factory=list)  # ns per call, one per round

    @property
    def median_ns(self) -> float:
        return statistics.median(self.rounds_ns)


async def _time_async(fn, args, calls: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(calls):
        await fn(*args)
    return time.perf_counter_ns() - start


async def _time_sync(fn, args, calls: int) -> int:
    start = time.perf_counter_ns()
    for _ in range(calls):
        fn(*args)
    return time.perf_counter_ns() - start


WARMUP_CALLS = 2000


async def run_rounds(cases: list[Case], args: tuple, max_calls: int, rounds: int, round_s: float = 0.3) -> None:
    """Warm every case up and size its rounds, then time `rounds` interleaved rounds."""
    timers = {id(c): _time_async if c.awaited else _time_sync for c in cases}
    for case in cases:
        await timers[id(case)](case.fn, args, WARMUP_CALLS)  # first calls can be slow
        ns_per_call = await timers[id(case)](case.fn, args, WARMUP_CALLS) / WARMUP_CALLS
        case.calls = max(min(max_calls, WARMUP_CALLS), min(max_calls, int(round_s * 1e9 / ns_per_call)))
    for r in range(rounds):
        for case in cases[r % len(cases):] + cases[: r % len(cases)]:
            gc.collect()
            gc.disable()
            try:
                elapsed = await timers[id(case)](case.fn, args, case.calls)
            finally:
                gc.enable()
            case.rounds_ns.append(elapsed / case.calls)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def version_of(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:  # importable from a source tree, say
        try:
            return f"{getattr(__import__(dist), '__version__', '?')} (not an installed distribution)"
        except ImportError:
            return "not installed"


def print_setup(title: str, packages: list[str], **settings: Any) -> None:
    print(title)
    print(f"  python     {platform.python_implementation()} {platform.python_version()} ({sys.executable})")
    print(f"  machine    {platform.platform()}, {os.cpu_count()} CPUs: {cpu_model()}")
    try:  # other work on the machine shows up in every number: say how busy it was
        print("  load avg   {:.2f} {:.2f} {:.2f} (1, 5, 15 min) at the start".format(*os.getloadavg()))
    except OSError:
        pass
    print("  packages   " + ", ".join(f"{p} {version_of(p)}" for p in packages))
    for key, value in settings.items():
        print(f"  {key:<10} {value}")
    print(f"  command    {' '.join([os.path.basename(sys.executable)] + sys.argv)}")
    print(f"  date       {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    print()


def print_table(cases: list[Case], floor: Case) -> None:
    width = max(len(c.name) for c in cases)
    print(f"{'case':<{width}}  {'ns/call':>9}  {'x floor':>8}  {'min..max of rounds':>18}  {'calls':>7}  note")
    for c in cases:
        spread = f"{min(c.rounds_ns):.0f}..{max(c.rounds_ns):.0f}"
        print(f"{c.name:<{width}}  {c.median_ns:>9.0f}  {c.median_ns / floor.median_ns:>8.2f}  {spread:>18}  "
              f"{c.calls:>7}  {c.note}")
    print()


# --- shared by the benchmarks that need a real redis-server ------------------------------

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) of `values`, nearest rank: a value that occurred."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def require(script: str, modules: dict[str, str]) -> None:
    """Exit with one clear message naming every module (name → what needs it) that does
    not import, and how to install them."""
    problems = []
    for module, who in modules.items():
        try:
            importlib.import_module(module)
        except ImportError as e:
            problems.append(f"  {who}: cannot import {module}: {e}")
    if problems:
        sys.exit(f"{script}: cannot run:\n" + "\n".join(problems) + "\n"
                 "herdcache and the peers (the `bench` extra) are installed into .venv by scripts/setup.sh;\n"
                 "or: pip install cashews aiocache 'redis[hiredis]'")


def redis_binary(script: str, name: str = "redis-server") -> str:
    """The Debian binary `name` (redis-server, redis-benchmark), or exit saying how to get it."""
    path = shutil.which(name) or next((p for p in (f"/usr/bin/{name}", f"/usr/local/bin/{name}")
                                       if os.access(p, os.X_OK)), None)
    if path is None:
        sys.exit(f"{script}: {name} not found; on Debian: apt-get install redis-server "
                 "(scripts/setup.sh installs it)")
    return path


def redis_server_version(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    return next((w[2:] for w in out.split() if w.startswith("v=")), out.strip() or "unknown")


@contextlib.contextmanager
def redis_server(script: str, tls: bool = False):
    """A redis-server of our own on a free 127.0.0.1 port (tests/servers.py's RedisServer:
    no persistence, its own temporary directory), stopped when the block ends, whatever
    happens in it. With `tls` it also listens with TLS (server.tls_url(): rediss://localhost
    verified against a throwaway CA made in that directory)."""
    binary = redis_binary(script)
    sys.path.insert(0, os.path.join(REPO, "tests"))
    try:
        from servers import RedisServer, TlsFiles
    finally:
        sys.path.pop(0)
    with tempfile.TemporaryDirectory(prefix="herdcache-bench-") as directory:
        files = TlsFiles(Path(directory) / "tls") if tls else None
        server = RedisServer(binary, Path(directory), tls=files)
        try:
            server.start()
            yield server
        finally:
            server.stop()


def print_rows(headers: list[str], rows: list[list[Any]], align: str = "") -> None:
    """A plain table: the first column left-aligned, the others right-aligned unless
    `align` gives a per-column "<" or ">"."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    align = align or "<" + ">" * (len(headers) - 1)
    for r in cells:
        print("  ".join(f"{c:{a}{w}}" for c, a, w in zip(r, align, widths)).rstrip())
    print()


def thread_cpu_seconds() -> tuple[float, float]:
    """CPU seconds so far of this process's main thread (the event loop) and of all its
    other threads (herdcache's I/O threads), from /proc: schedstat's nanoseconds on the
    CPU where the kernel has it, else stat's clock ticks."""
    hz = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for tid in os.listdir("/proc/self/task"):
        try:
            try:
                with open(f"/proc/self/task/{tid}/schedstat") as f:
                    used = int(f.read().split()[0]) / 1e9
            except (FileNotFoundError, PermissionError, ValueError, IndexError):
                with open(f"/proc/self/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                used = (int(fields[11]) + int(fields[12])) / hz  # utime + stime
        except FileNotFoundError:  # a thread that just ended
            continue
        if int(tid) == os.getpid():
            main += used
        else:
            other += used
    return main, other
