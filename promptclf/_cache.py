"""Where files made on this machine from the packaged models are kept (ONNX exports, distilled and
requantised models, checked ``.clf`` members): ``$PROMPTCLF_CACHE``, else ``~/.cache/promptclf``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("PROMPTCLF_CACHE", Path.home() / ".cache" / "promptclf"))
