"""``promptclf predict --engine ray``: read a file with Ray Data, predict on actors, write a folder."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConfigurationError, InvalidInputError

READERS = {".parquet": "read_parquet", ".csv": "read_csv", ".jsonl": "read_json", ".json": "read_json"}
WRITERS = {"parquet": "write_parquet", "csv": "write_csv", "jsonl": "write_json"}


def predict_with_ray(
    model: Path,
    input: str,
    output: Path,
    *,
    text_column: str = "text",
    output_format: str = "parquet",
    batch_size: int = 256,
    workers: int = 1,
    address: str | None = None,
    embedder: str | None = None,
) -> None:
    """Label every row of ``input`` (parquet, CSV or JSONL, a file or a folder of them); write
    ``text``, ``label`` and ``prob`` to the folder ``output``, one file per block, as the rows stream
    through (nothing is collected on this machine)."""
    try:
        import ray
    except ImportError:
        raise ConfigurationError("--engine ray needs Ray Data: pip install 'promptclf[ray]'") from None
    from .ray import predict_dataset

    path = Path(input)
    if not path.exists():
        raise InvalidInputError(f"{input}: no such file or folder", argument="input")
    suffix = path.suffix.lower() if path.is_file() else _folder_suffix(path)
    if suffix not in READERS:
        raise InvalidInputError(
            f"{input}: --engine ray reads {', '.join(READERS)} files, got {suffix!r}", argument="input"
        )
    if output_format not in WRITERS:
        raise ConfigurationError(f"--output-format must be one of {', '.join(WRITERS)}, got {output_format!r}")
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS")
        kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        ray.init(address=address, **kwargs) if address else ray.init(**kwargs)
    ds = getattr(ray.data, READERS[suffix])(str(path))
    if text_column not in ds.columns():
        raise InvalidInputError(
            f"{input}: no column {text_column!r} (columns: {', '.join(ds.columns())}); name it with --column",
            argument="column",
        )
    out = predict_dataset(ds, model, text_column=text_column, batch_size=batch_size, workers=workers, embedder=embedder)
    out = out.select_columns([text_column, "label", "prob"])
    if text_column != "text":
        out = out.rename_columns({text_column: "text"})
    getattr(out, WRITERS[output_format])(str(output))


def _folder_suffix(path: Path) -> str:
    suffixes = {p.suffix.lower() for p in path.iterdir() if p.is_file() and not p.name.startswith(".")}
    return suffixes.pop() if len(suffixes) == 1 else ""
