"""Argument checks of the public API, shared by the async and blocking methods.

Each raises before anything runs or changes, with an error that names the argument:
TypeError for a wrong type, ValueError for a wrong value of the right type.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ._native import Key


def check_key(key: Any) -> Key:
    if not isinstance(key, Key):
        raise TypeError(f"key must be a Key from cache.key(...), got {type(key).__name__}")
    return key


def check_keys(keys: Any) -> list[Key]:
    """A batch's keys, every one checked before anything runs."""
    if isinstance(keys, (str, bytes, Key)) or not isinstance(keys, Iterable):
        raise TypeError(f"keys must be an iterable of Key, got {type(keys).__name__}")
    return [check_key(key) for key in keys]


def check_items(items: Any) -> list[tuple[Key, Any]]:
    if not isinstance(items, Mapping):
        raise TypeError(f"items must be a mapping of Key to value, got {type(items).__name__}")
    return [(check_key(key), value) for key, value in items.items()]


MAX_COUNTER = 2**53 - 1  # what a counter holds exactly on every tier (a Lua number in Redis)


def check_delta(delta: Any) -> int:
    if type(delta) is not int:
        raise TypeError(f"delta must be an int, got {type(delta).__name__} {delta!r}")
    if abs(delta) > MAX_COUNTER:
        raise ValueError(f"delta must be within +-(2**53 - 1), got {delta}")
    return delta


def check_resource(resource: Any) -> str:
    if not isinstance(resource, str):
        raise TypeError(f"resource must be a str, got {type(resource).__name__} {resource!r}")
    return resource


def check_loader(loader: Any) -> None:
    if not callable(loader):
        raise TypeError(f"loader must be a zero-argument callable, got {type(loader).__name__}")


def check_ttl(ttl: Any) -> float | None:
    """None (the resource's policy) or seconds: a finite number >= 0."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise TypeError(f"ttl must be a number of seconds or None, got {type(ttl).__name__} {ttl!r}")
    if not math.isfinite(ttl) or ttl < 0:
        raise ValueError(f"ttl must be a finite number of seconds >= 0, got {ttl!r}")
    return float(ttl)


def check_pattern(pattern: Any) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"pattern must be a non-empty str, got {pattern!r}")
    return pattern


def tag_list(tags: Any) -> list[str]:
    if isinstance(tags, str):
        tags = (tags,)
    out = list(tags)
    for tag in out:
        if not isinstance(tag, str) or not tag:
            raise ValueError(f"tags must be non-empty str, got {tag!r}")
    return out
