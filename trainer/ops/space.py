"""A search sweep's axes -> Optuna distributions, with one-line errors for bad ones.

An axis of a ``random`` or ``bayes`` sweep file is one of::

    optimizer.lr: loguniform(1e-5, 1e-2)      # log-uniform float in [low, high]
    optimizer.weight_decay: uniform(0, 0.1)   # uniform float
    train.epochs: int(2, 8)                   # integer in [low, high]; int(16, 64, 16) steps by 16
    model.name: choice([resnet18, convnext_atto])   # or simply a list: [resnet18, convnext_atto]
    data.img_size: {int: [16, 64, 16]}        # the same as a mapping: {loguniform: [1e-5, 1e-2]}
    train.seed: 0                             # one fixed value

``logint(a, b)`` is a log-scaled integer. A grid sweep takes lists only (see
:mod:`trainer.ops.sweep`).
"""
from __future__ import annotations

import re
from typing import Any

import yaml

from ednaquery.documents import parse_number
from ednaquery.errors import UsageError

__all__ = ["DIST_NAMES", "config_key", "is_distribution", "parse_axis", "parse_space"]

DIST_NAMES = ("loguniform", "uniform", "int", "logint", "choice")
_CALL = re.compile(r"^\s*(loguniform|uniform|int|logint|choice)\s*\((.*)\)\s*$", re.DOTALL)


def _number(v: Any, key: str) -> float:
    if isinstance(v, bool):
        raise UsageError(f"axis {key!r}: {v!r} is not a number")
    if isinstance(v, (int, float)):
        return v
    n = parse_number(v) if isinstance(v, str) else None
    if n is None:
        raise UsageError(f"axis {key!r}: {v!r} is not a number")
    return n


def _plain(v: Any) -> Any:
    """YAML 1.1 reads 1e-3 as a string: take it as the number (the one number rule)."""
    n = parse_number(v) if isinstance(v, str) else None
    return v if n is None else n


def _build(name: str, args: list[Any], key: str) -> Any:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    if name == "choice":
        choices = args[0] if len(args) == 1 and isinstance(args[0], list) else args
        if not choices:
            raise UsageError(f"axis {key!r}: choice() needs at least one value")
        choices = [_plain(c) for c in choices]
        if any(isinstance(c, (dict, list)) for c in choices):
            raise UsageError(f"axis {key!r}: choice() takes plain values (numbers, strings, booleans, null)")
        return CategoricalDistribution(choices)
    if len(args) not in (2, 3) or (len(args) == 3 and name in ("loguniform", "logint")):
        shape = f"{name}(low, high)" if name in ("loguniform", "logint") else f"{name}(low, high[, step])"
        raise UsageError(f"axis {key!r}: write {shape}")
    low, high = _number(args[0], key), _number(args[1], key)
    step = _number(args[2], key) if len(args) == 3 else None
    if low > high:
        raise UsageError(f"axis {key!r}: low {low:g} is above high {high:g}")
    if name.startswith("log") and low <= 0:
        raise UsageError(f"axis {key!r}: {name} needs low > 0")
    if step is not None and step <= 0:
        raise UsageError(f"axis {key!r}: the step must be positive")
    if name in ("int", "logint"):
        if any(float(x) != int(x) for x in (low, high, step or 1)):
            raise UsageError(f"axis {key!r}: {name}() takes whole numbers")
        return IntDistribution(int(low), int(high), log=name == "logint", step=int(step or 1))
    return FloatDistribution(float(low), float(high), log=name == "loguniform", step=step)


def config_key(key: str) -> str:
    """The full dotted key an axis names: ``lr`` -> ``optimizer.lr``, ``model`` -> ``model.name``
    (the ``trainer launch`` shorthands), so one search has one spelling and one sweep id."""
    from trainer.engine.config import NAMED_SECTIONS, resolve_key

    return resolve_key(f"{key}.name" if key in NAMED_SECTIONS else key)


def is_distribution(value: Any) -> bool:
    """Whether an axis value is written as a distribution (``loguniform(..)`` or ``{int: [..]}``)."""
    if isinstance(value, str):
        return bool(_CALL.match(value))
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DIST_NAMES


def parse_axis(key: str, value: Any) -> Any:
    """One axis -> an Optuna distribution (a list is a choice, a plain value a one-value choice)."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(value, str) and (m := _CALL.match(value)):
        name, inner = m.group(1), m.group(2)
        try:
            args = yaml.safe_load(f"[{inner}]")
        except yaml.YAMLError:
            raise UsageError(f"axis {key!r}: cannot read the arguments of {value.strip()!r}") from None
        return _build(name, list(args or []), key)
    if isinstance(value, dict):
        if len(value) != 1 or next(iter(value)) not in DIST_NAMES:
            raise UsageError(f"axis {key!r}: a mapping names one distribution ({', '.join(DIST_NAMES)}), "
                             "e.g. {loguniform: [1e-5, 1e-2]}")
        name, args = next(iter(value.items()))
        return _build(name, args if isinstance(args, list) else [args], key)
    if isinstance(value, list):
        return _build("choice", [value], key)
    if isinstance(value, str) and re.match(r"^\s*\w+\s*\(.*\)\s*$", value):
        raise UsageError(f"axis {key!r}: unknown distribution {value.strip()!r} (use {', '.join(DIST_NAMES)})")
    return CategoricalDistribution([_plain(value)])


def parse_space(axes: Any, where: str) -> dict[str, Any]:
    """A sweep file's ``axes:`` mapping -> ``{key: distribution}`` in the order written."""
    if not isinstance(axes, dict) or not axes:
        raise UsageError(f"{where}: `axes:` must map config keys to distributions or lists of values, "
                         "e.g. optimizer.lr: loguniform(1e-5, 1e-2)")
    try:
        space = {config_key(str(k)): parse_axis(str(k), v) for k, v in axes.items()}
    except UsageError as exc:
        raise UsageError(f"{where}: {exc}") from None
    if len(space) < len(axes):
        raise UsageError(f"{where}: two axes name the same config key (e.g. lr and optimizer.lr)")
    return space
