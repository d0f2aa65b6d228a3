from __future__ import annotations

from alerting import jsonutil


def test_output_is_compact_utf8_even_when_orjson_cannot_encode() -> None:
    # orjson refuses integers beyond 64 bits; the fallback must keep the same shape.
    assert (
        jsonutil.dumps({"big": 2**70, "name": "é"}) == '{"big":1180591620717411303424,"name":"é"}'
    )
    assert jsonutil.dumps({"name": "é", "n": 1}) == '{"name":"é","n":1}'


def test_round_trip() -> None:
    value = {"a": [1, 2.5, None, True], "b": {"c": "ü"}}
    assert jsonutil.loads(jsonutil.dumps(value)) == value
    assert jsonutil.loads(jsonutil.dumps(value).encode()) == value
