"""Progress bars: one kind for every long step (generation, embedding, fine-tuning)."""

from __future__ import annotations

from typing import Any


def progress_bar(total: int, desc: str, unit: str, enabled: bool = True) -> Any:
    """A bar that clears itself when done, or ``None`` where progress is off (tqdm loads only then)."""
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False)
