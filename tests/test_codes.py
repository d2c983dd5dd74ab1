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
    P = _native.ReadProtocol
    steps = [P.SERVE, P.SERVE_AND_REFRESH, P.LEAD, P.FETCH, P.MISS, P.LOAD_LEASED, P.LOAD_UNLEASED, P.WATCH,
             P.WAIT_FILL, P.READ, P.WRITE, P.RELEASE, P.RESTART, P.DONE]
    assert len(set(steps)) == len(steps)
    assert len({P.STORED, P.REFUSED, P.DECIDE_LOCALLY}) == 3
    assert P.GET != P.GET_OR_LOAD
    assert _ops.UNFENCED == 2**64 - 1
