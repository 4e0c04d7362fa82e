"""Streaming text input for the CLI and for large unlabeled pools: lines, a CSV column or a JSONL field."""

from __future__ import annotations

import contextlib
import csv
import io
import sys
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def _reading(path: str | Path, encoding: str) -> Iterator[Any]:
    """Open ``path`` (or stdin for ``-``) and turn decoding and format errors into ``InvalidInputError``."""
    import jsonlines

    f = _open(path, encoding)
    try:
        yield f
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
    with _reading(path, encoding) as f:
        if column is not None or name.endswith(".csv"):
            yield from (row[0] for row in csv_columns(f, [column or "text"], path))
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


def csv_columns(f, columns: list[str], path: str | Path) -> Iterator[tuple[str, ...]]:
    """The values of ``columns`` per row of an open CSV file; a missing column or a short row is an
    ``InvalidInputError`` naming the file (and line)."""
    reader = csv.DictReader(f)
    for c in columns:
        if reader.fieldnames is None or c not in reader.fieldnames:
            raise InvalidInputError(f"{path}: no column {c!r} (columns: {reader.fieldnames})")
    for row in reader:
        values = tuple(row.get(c) for c in columns)
        if any(v is None for v in values):
            raise InvalidInputError(f"{path}, line {reader.line_num}: the row has fewer columns than the header")
        yield values  # type: ignore[misc]


def read_csv_header(path: str | Path, *, encoding: str = "utf-8") -> list[str]:
    """The column names of a CSV file (empty for an empty file)."""
    with _reading(path, encoding) as f:
        return list(csv.DictReader(f).fieldnames or [])


def read_csv_columns(path: str | Path, columns: list[str], *, encoding: str = "utf-8") -> list[tuple[str, ...]]:
    """All rows' values of ``columns`` of a CSV file, with ``iter_texts``'s errors."""
    with _reading(path, encoding) as f:
        return list(csv_columns(f, columns, path))


def batched(it: Iterator[str], n: int) -> Iterator[list[str]]:
    it = iter(it)
    while batch := list(islice(it, n)):
        yield batch
