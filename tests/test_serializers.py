"""Serializers and the payload header."""

import pickle

import pytest

from herdcache import CacheManager, Codec, SerializationError


class Evil:
    def __reduce__(self):
        return (exec, ("raise SystemExit('code ran on load')",))


@pytest.mark.parametrize("name", ["json", "msgpack", "pickle"])
def test_round_trip(name):
    codec = Codec(name)
    value = {"a": [1, 2.5, "x", None, True], "b": {"c": "é"}}
    assert codec.decode(codec.encode(value)) == value


def test_json_is_default_and_cannot_run_code():
    codec = Codec()
    with pytest.raises(SerializationError):
        codec.encode(Evil())
    # a pickle payload smuggled in as JSON is just garbage
    smuggled = b"HC\x00" + pickle.dumps(Evil())
    with pytest.raises(SerializationError):
        codec.decode(smuggled)


def test_pickle_is_opt_in_only():
    assert type(CacheManager()._codec.serializer).__name__ == "JsonSerializer"
    assert type(CacheManager(serializer="pickle")._codec.serializer).__name__ == "PickleSerializer"


def test_custom_serializer_object():
    class Upper:
        def dumps(self, v):
            return v.upper().encode()

        def loads(self, b):
            return b.decode().lower()

    codec = Codec(Upper())
    assert codec.encode("abc") == b"HC\x00ABC"
    assert codec.decode(b"HC\x00ABC") == "abc"
    with pytest.raises(TypeError):
        Codec(object())


def test_the_codec_loads_only_unsigned_payloads():
    # Signed entries are verified and opened by the engine (test_protocol.py); a payload
    # that still carries a signature never reached it that way and is not loaded.
    forged = b"HC\x01" + b"\x00" * 32 + pickle.dumps(Evil())
    with pytest.raises(SerializationError, match="not a herdcache payload"):
        Codec("pickle").decode(forged)


def test_a_short_signing_key_is_refused():
    for bad in (b"short", "a str key of 32 characters......"):
        with pytest.raises(ValueError, match="signing_key must be bytes of at least 16 bytes"):
            CacheManager(signing_key=bad)


def test_not_a_payload():
    with pytest.raises(SerializationError):
        Codec().decode(b"garbage")
