"""Serializers and signed payloads."""

import pickle

import pytest

from herdcache import CacheManager, Codec, SerializationError
from herdcache.serializers import BadSignature


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


def test_signed_payloads_verify_and_tampering_is_refused():
    key = b"k" * 32
    codec = Codec("json", signing_key=key)
    payload = codec.encode({"ok": 1})
    assert codec.decode(payload) == {"ok": 1}
    tampered = payload[:-2] + b"2}"
    with pytest.raises(BadSignature):
        codec.decode(tampered)
    with pytest.raises(BadSignature):
        codec.decode(Codec("json").encode({"ok": 1}))  # unsigned
    with pytest.raises(BadSignature):
        Codec("json", signing_key=b"x" * 32).decode(payload)  # another key
    with pytest.raises(ValueError, match="signing_key"):
        Codec("json", signing_key=b"short")


def test_signed_pickle_refuses_forged_payload_before_loading():
    codec = Codec("pickle", signing_key=b"s" * 32)
    forged = b"HC\x01" + b"\x00" * 32 + pickle.dumps(Evil())
    with pytest.raises(BadSignature):
        codec.decode(forged)


def test_not_a_payload():
    with pytest.raises(SerializationError):
        Codec().decode(b"garbage")
