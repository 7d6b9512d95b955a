"""Walking compiled MongoDB filters (what the index tests check the shape of)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["elem_matches"]


def elem_matches(obj: Any) -> Iterator[dict]:
    """Every ``$elemMatch`` body in a filter (the bodies themselves are not searched further)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "$elemMatch":
                yield v
            else:
                yield from elem_matches(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from elem_matches(v)
