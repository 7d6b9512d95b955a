"""Merging nested configs the way detectron2 and OmegaConf do: mappings merge, the rest is replaced.

Used by every inheritance mechanism (``_BASE_`` files, Hydra defaults lists). The
functions never modify their inputs, so cached base files can be shared safely.
"""
from __future__ import annotations

from typing import Any


def copy_tree(value: Any) -> Any:
    """A copy of nested dicts and lists (scalars are immutable and shared)."""
    if isinstance(value, dict):
        return {k: copy_tree(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_tree(v) for v in value]
    return value


def deep_merge(base: Any, override: Any) -> Any:
    """``override`` on top of ``base``: mappings merge key by key, recursively; anything else
    (lists, scalars, None) in ``override`` replaces what ``base`` has."""
    if isinstance(base, dict) and isinstance(override, dict):
        out = {k: v for k, v in base.items()}
        for k, v in override.items():
            out[k] = deep_merge(out[k], v) if k in out else copy_tree(v)
        return out
    return copy_tree(override)


def merge_at(tree: dict, package: str, content: Any) -> dict:
    """Merge ``content`` into ``tree`` at a dotted ``package`` path (``""`` is the root)."""
    if not package:
        return deep_merge(tree, content) if isinstance(content, dict) else tree
    keys = package.split(".")
    sub = tree.get(keys[0])
    if len(keys) == 1:
        value = deep_merge(sub, content) if isinstance(sub, dict) else copy_tree(content)
    else:
        value = merge_at(sub if isinstance(sub, dict) else {}, ".".join(keys[1:]), content)
    out = dict(tree)
    out[keys[0]] = value
    return out


def get_at(tree: Any, package: str) -> Any:
    """The value at a dotted path, or None if it is not there (``""`` is the tree itself)."""
    if not package:
        return tree
    node = tree
    for k in package.split("."):
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node
