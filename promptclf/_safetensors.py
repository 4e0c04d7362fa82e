"""The header of a safetensors file, read without safetensors (which would read the tensors too)."""

from __future__ import annotations

import json
import os
import struct
from typing import Any

MAX_HEADER = 100 << 20  # safetensors' own bound on the header's JSON


def read_header(path: str | os.PathLike[str]) -> tuple[int, dict[str, Any]]:
    """``(offset of the tensor data, header)``: the 8-byte little-endian length, then that much JSON
    naming each tensor's dtype, shape and data offsets. ``ValueError`` if the file does not start so."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise ValueError(f"{path}: not a safetensors file (shorter than its header's length)")
        (n,) = struct.unpack("<Q", head)
        if not 0 < n <= MAX_HEADER:
            raise ValueError(f"{path}: not a safetensors file (header length {n})")
        header = json.loads(f.read(n))  # a JSONDecodeError or UnicodeDecodeError is a ValueError
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file (the header is not an object)")
    return 8 + n, header
