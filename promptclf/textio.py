"""Streaming text input for the CLI and for large unlabeled pools: lines, a CSV column or a JSONL field."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

from .errors import InvalidInputError


def _open(path: str | Path, encoding: str):
    import codecs

    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InvalidInputError(f"unknown encoding {encoding!r}", argument="encoding") from None
    if str(path) == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding=encoding, newline="")
    try:
        return open(path, encoding=encoding, newline="")
    except FileNotFoundError:
        raise InvalidInputError(f"input file not found: {path}") from None
    except OSError as e:
        raise InvalidInputError(f"cannot read {path}: {e}") from None


def iter_texts(
    path: str | Path, *, column: str | None = None, field: str | None = None, encoding: str = "utf-8"
) -> Iterator[str]:
    """Yield texts one at a time: memory stays flat however long the input.

    A ``.csv`` file (or ``column``) reads a CSV column (default ``text``); a ``.jsonl`` file (or
    ``field``) reads a JSON field (default ``text``); anything else is one text per line. Text that
    is not in ``encoding`` is an ``InvalidInputError`` naming the file, never a guess.
    """
    import jsonlines

    name = str(path).lower()
    f = _open(path, encoding)
    try:
        if column is not None or name.endswith(".csv"):
            col = column or "text"
            reader = csv.DictReader(f)
            if reader.fieldnames is None or col not in reader.fieldnames:
                raise InvalidInputError(f"{path}: no column {col!r} (columns: {reader.fieldnames})")
            for row in reader:
                value = row.get(col)
                if value is None:
                    raise InvalidInputError(f"{path}, line {reader.line_num}: the row has no {col!r} value")
                yield value
        elif field is not None or name.endswith((".jsonl", ".ndjson")):
            key = field or "text"
            for i, obj in enumerate(jsonlines.Reader(f), 1):
                if not isinstance(obj, dict) or not isinstance(obj.get(key), str):
                    raise InvalidInputError(f"{path}, line {i}: no string field {key!r}")
                yield obj[key]
        else:
            for line in f:
                line = line.rstrip("\r\n")
                if line.strip():
                    yield line
    except UnicodeDecodeError as e:
        raise InvalidInputError(
            f"{path}: not {encoding} text (byte 0x{e.object[e.start]:02x} at offset {e.start} of a block); "
            "pass --encoding (e.g. --encoding latin-1)",
            argument="encoding",
        ) from None
    except jsonlines.InvalidLineError as e:
        raise InvalidInputError(f"{path}: not valid JSON Lines ({e})") from None
    except csv.Error as e:
        raise InvalidInputError(f"{path}: not valid CSV ({e})") from None
    finally:
        if str(path) == "-":
            f.detach()  # leave the caller's stdin open
        else:
            f.close()


def batched(it: Iterator[str], n: int) -> Iterator[list[str]]:
    it = iter(it)
    while batch := list(islice(it, n)):
        yield batch
