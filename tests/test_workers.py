"""Memory-only with several worker processes: the processes find each other and warn.

Each test uses a namespace of its own, so the suite's other managers (this process holds
their locks for its life) never meet these.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
import time
import uuid
import warnings
from pathlib import Path

import pytest

from herdcache import CacheManager, SharedNamespaceWarning

from servers import free_port

ROOT = Path(__file__).resolve().parent.parent
DEADLINE_S = 60.0

# A second process: starts a manager, reports whether it warned, then holds it until its
# stdin closes.
HOLDER = """
import json, sys, warnings
from herdcache import CacheManager
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    cache = CacheManager(redis_url=sys.argv[2] or None, namespace=sys.argv[1])
    cache.sync.start()
print(json.dumps([str(w.message) for w in caught]), flush=True)
sys.stdin.read()
cache.sync.close()
"""


def namespace() -> str:
    return f"w{uuid.uuid4().hex[:12]}"


class Holder:
    """Another process with a started manager of `ns` (memory-only unless redis_url)."""

    def __init__(self, ns: str, redis_url: str = "") -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, ns, redis_url], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def started(self) -> list[str]:
        """Waits for its manager to have started; the warnings it gave."""
        line = self.proc.stdout.readline()  # written once its manager started
        assert line, "the holder exited before starting its manager"
        return json.loads(line)

    def stop(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=DEADLINE_S)
        self.proc.stdout.close()


def test_a_second_process_sharing_a_memory_only_namespace_warns():
    ns = namespace()
    first = Holder(ns)
    try:
        assert first.started() == []  # alone
        cache = CacheManager(namespace=ns)
        with pytest.warns(SharedNamespaceWarning, match=f"namespace '{ns}'.*redis_url"):
            cache.sync.start()
        cache.sync.close()
        second = Holder(ns)  # a third process: warned too
        try:
            assert any("memory-only" in w for w in second.started())
        finally:
            second.stop()
    finally:
        first.stop()


def test_a_process_started_first_does_not_warn_and_the_next_one_does():
    ns = namespace()
    cache = CacheManager(namespace=ns)
    cache.sync.start()  # alone: filterwarnings=error would fail the test on a warning
    try:
        other = Holder(ns)
        try:
            warned = other.started()
        finally:
            other.stop()
        assert len(warned) == 1 and ns in warned[0]
    finally:
        cache.sync.close()


def test_managers_of_one_process_or_of_other_namespaces_do_not_warn():
    ns = namespace()
    holder = Holder(namespace())
    try:
        holder.started()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            a, b = CacheManager(namespace=ns), CacheManager(namespace=ns)
            a.sync.start()
            b.sync.start()
            a.sync.close()
            b.sync.close()
    finally:
        holder.stop()


def test_managers_with_redis_do_not_announce(redis_url):
    ns = namespace()
    holder = Holder(ns, redis_url)
    try:
        assert holder.started() == []
        other = Holder(ns, redis_url)
        try:
            assert other.started() == []  # invalidations reach every instance through Redis
        finally:
            other.stop()
    finally:
        holder.stop()


def test_uvicorn_with_two_workers_on_the_memory_tier_warns(tmp_path):
    port = free_port()
    # A temporary directory of its own: no other process of the suite holds its locks.
    env = {**os.environ, "PYTHONWARNINGS": "default", "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.timetable.app:create_app", "--factory", "--workers", "2",
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seen = []
        deadline = time.monotonic() + DEADLINE_S
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stderr, selectors.EVENT_READ)
            while not any("SharedNamespaceWarning" in line for line in seen):
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    break  # out of time
                line = proc.stderr.readline()
                if not line:
                    break  # uvicorn exited
                seen.append(line)
        warned = [line for line in seen if "SharedNamespaceWarning" in line]
        assert len(warned) == 1 and "'timetable'" in warned[0], "".join(seen)
    finally:
        proc.terminate()
        proc.wait(timeout=DEADLINE_S)
        proc.stderr.close()
