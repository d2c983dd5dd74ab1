"""herdcache: a two-tier cache for Python web backends, with a C++ engine.

    from herdcache import CacheManager, Policy

    cache = CacheManager(policies={"courses": Policy(ttl=1800, stale=300)})

    @cache.cached("courses", tags=lambda org_id, semester=1: [f"org:{org_id}"])
    async def fetch_courses(org_id: str, semester: int = 1) -> list[dict]: ...

Values returned from the memory tier are the cached objects themselves: treat them as
read-only.
"""

from ._native import CacheError, Key, ManualClock, Policy, SerializationError
from ._bulkhead import LoadTimeout
from .manager import CacheManager, UnknownResource
from ._workers import SharedNamespaceWarning
from .serializers import Codec

__all__ = [
    "CacheError",
    "CacheManager",
    "Codec",
    "Key",
    "LoadTimeout",
    "ManualClock",
    "Policy",
    "SerializationError",
    "SharedNamespaceWarning",
    "UnknownResource",
]
__version__ = "0.1.0"
