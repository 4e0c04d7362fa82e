"""JSON from files other people made: bounded nesting, bounded numbers, no NaN or infinities.

``json.loads`` turns a 100,000-deep array into a ``RecursionError``, a 5,000-digit integer into a
``ValueError`` from ``int``, ``1e400`` into ``inf`` and ``NaN`` into a float that poisons every sum.
Here each of those is one ``UnsafeJSON`` (a ``ValueError``) that says what was wrong.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64
MAX_INT_DIGITS = 30


class UnsafeJSON(ValueError):
    """The text is not JSON, or is JSON outside the bounds above."""


def _int(s: str) -> int:
    if len(s.lstrip("-")) > MAX_INT_DIGITS:
        raise UnsafeJSON(f"integer with {len(s)} digits (at most {MAX_INT_DIGITS})")
    return int(s)


def _float(s: str) -> float:
    x = float(s)
    if not math.isfinite(x):
        raise UnsafeJSON(f"number {s[:40]} is out of range")
    return x


def _constant(s: str) -> Any:
    raise UnsafeJSON(f"{s} is not a JSON number")


def loads(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``data`` (UTF-8 if bytes) within the bounds; raise ``UnsafeJSON`` otherwise."""
    try:
        text = data.decode("utf-8") if isinstance(data, (bytes, bytearray)) else data
        obj = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except UnsafeJSON:
        raise
    except RecursionError:
        raise UnsafeJSON(f"nested more than {max_depth} levels deep") from None
    except UnicodeDecodeError:
        raise UnsafeJSON("not UTF-8") from None
    except (json.JSONDecodeError, ValueError) as e:
        raise UnsafeJSON(f"not valid JSON ({e})") from None
    if depth(obj) > max_depth:
        raise UnsafeJSON(f"nested more than {max_depth} levels deep")
    return obj


def depth(obj: Any) -> int:
    """Nesting depth of lists and dicts, without recursion (a scalar is 0)."""
    deepest, stack = 0, [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, dict):
            o = o.values()
        elif not isinstance(o, list):
            continue
        deepest = max(deepest, d)
        stack.extend((v, d + 1) for v in o if isinstance(v, (dict, list)))
    return deepest
