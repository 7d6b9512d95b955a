"""Stored bodies read back exactly: the fast reader (orjson) is used only where it reads every value
as written; integers past 64 bits, NaN and infinities go through json.loads."""
from __future__ import annotations

import math

from ednaquery.store.bodies import pack_body, unpack_body

ZDICT = b'{"_id":"x","kind":"config"}'


def test_values_read_back_as_written() -> None:
    for marked in (True, False):  # a store whose every body has the mark, and an older one
        _check(lambda value, m=marked: unpack_body(pack_body({"_id": "x", "v": value}, ZDICT), ZDICT, marked=m)["v"])


def test_an_unmarked_body_with_a_long_integer_is_read_exactly() -> None:
    import json
    import zlib

    c = zlib.compressobj(6, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, ZDICT)
    blob = c.compress(json.dumps({"_id": "x", "v": 2**70}).encode()) + c.flush()  # written before the mark
    assert unpack_body(blob, ZDICT)["v"] == 2**70


def _check(_round_trip) -> None:
    for value in (2**64, -(2**63) - 1, 10**19, 12345678901234567890123, [1, 2**70, 3], {"n": -(10**25)},
                  2**63 - 1, 3.2258064516129006e-05, 0.1 + 0.2, 1e300, -0.0, "12345678901234567890123", 7):
        got = _round_trip(value)
        assert got == value and type(got) is type(value), value
        if isinstance(value, list):
            assert [type(x) for x in got] == [type(x) for x in value]
    assert math.isnan(_round_trip(float("nan"))) and _round_trip(float("-inf")) == float("-inf")
    assert math.copysign(1, _round_trip(-0.0)) == -1
