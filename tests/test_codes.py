"""The engine's codes as Python sees them (cpp/include/herdcache/codes.hpp).

Python imports them from herdcache._native; what it cannot import is pinned here: the log
levels the engine writes are Python logging's numbers, and the payload headers are bytes
already stored in Redis by earlier versions."""

import logging

from herdcache import _native, _ops


def test_engine_log_levels_are_pythons():
    assert _native.LOG_INFO == logging.INFO
    assert _native.LOG_WARNING == logging.WARNING


def test_payload_headers_are_the_stored_ones():
    assert _native.PAYLOAD_HEADER == b"HC\x00"
    assert _native.SIGNED_HEADER == b"HC\x01"


def test_codes_are_distinct_and_a_get_miss_is_false():
    statuses = [_ops.HIT, _ops.MISS, _ops.DONE, _ops.REFUSED, _ops.FAULT, _ops.CONFLICT]
    assert len(set(statuses)) == 6
    assert len({_native.LEASE_NONE, _native.LEASE_GRANTED, _native.LEASE_HELD}) == 3
    assert not _native.GET_MISS  # _ops tests engine.get's state for truth
    assert all((_ops.FRESH, _ops.STALE, _ops.EARLY))
    assert _ops.UNFENCED == 2**64 - 1
