"""Stored bodies read back exactly: the fast reader (orjson) is used only where it reads every value
as written; integers past 64 bits, NaN and infinities go through json.loads."""
from __future__ import annotations

import math

from ednaquery.store.bodies import pack_body, unpack_body

ZDICT = b'{"_id":"x","kind":"config"}'


def _round_trip(value: object) -> object:
    return unpack_body(pack_body({"_id": "x", "v": value}, ZDICT), ZDICT)["v"]


def test_values_read_back_as_written() -> None:
    for value in (2**64, -(2**63) - 1, 10**19, 12345678901234567890123, [1, 2**70, 3], {"n": -(10**25)},
                  2**63 - 1, 3.2258064516129006e-05, 0.1 + 0.2, 1e300, -0.0, "12345678901234567890123", 7):
        got = _round_trip(value)
        assert got == value and type(got) is type(value), value
        if isinstance(value, list):
            assert [type(x) for x in got] == [type(x) for x in value]
    assert math.isnan(_round_trip(float("nan"))) and _round_trip(float("-inf")) == float("-inf")
    assert math.copysign(1, _round_trip(-0.0)) == -1
