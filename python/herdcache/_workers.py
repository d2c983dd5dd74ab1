"""Whether another process on this host runs a memory-only cache of the same namespace.

A memory-only cache is one process's own: an invalidation made in one worker of a
uvicorn/gunicorn `--workers N` service never reaches the others, which keep serving what
it replaced. Nothing in the servers says reliably how many workers there are (uvicorn
spawns, gunicorn forks, either may preload the app), so the processes tell each other:
each memory-only manager holds a shared lock on a per-user, per-namespace file in the
temporary directory while it runs, and one that starts while another process holds it
warns. Locks die with their process, so a crashed worker leaves nothing behind.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import threading
import warnings


class SharedNamespaceWarning(UserWarning):
    """Several processes on this host share a memory-only namespace."""


_lock = threading.Lock()
_held: dict[str, tuple[int, int]] = {}  # namespace -> (pid, fd): one lock per process and namespace


def _path(namespace: str) -> str:
    digest = hashlib.sha256(namespace.encode()).hexdigest()[:24]
    return os.path.join(tempfile.gettempdir(), f"herdcache-{os.getuid()}-{digest}.lock")


def announce_memory_only(namespace: str) -> bool:
    """Joins the namespace's lock; warns (and returns True) when another process holds it."""
    with _lock:
        held = _held.get(namespace)
        if held is not None and held[0] == os.getpid():
            return False  # this process already announced it (another manager, same namespace)
        try:
            fd = os.open(_path(namespace), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return False  # no temporary directory to share: nothing to tell
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shared = False
        except BlockingIOError:
            shared = True  # another process holds it (a forked child's new descriptor conflicts too)
        fcntl.flock(fd, fcntl.LOCK_SH)  # held for the life of the process
        _held[namespace] = (os.getpid(), fd)
    if shared:
        warnings.warn(
            f"another process on this host runs a memory-only herdcache with namespace {namespace!r} "
            "(several workers?): an invalidation made in one process does not reach the others' memory "
            "tiers, which keep serving what it replaced. Give every worker the same redis_url.",
            SharedNamespaceWarning,
            stacklevel=3,
        )
    return shared
