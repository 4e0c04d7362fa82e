"""Atomic file replacement: a crash at any moment leaves either the old file or the new one.

Write to a temporary file in the same folder, fsync, give it the mode the target had (or the
umask's default for a new file), then rename over the target. The temporary's name carries the
writer's pid, so the next save can remove what a killed writer left behind without touching a
save that another live process has under way.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
import time
from pathlib import Path

STALE_AFTER_S = 24 * 3600  # a temporary this old is stale even if its pid now belongs to someone else


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _remove_stale(path: Path) -> None:
    prefix = f".{path.name}."
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    now = time.time()
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_part = name[len(prefix) :].split(".", 1)[0]
        try:
            pid = int(pid_part)
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_AFTER_S
        except (ValueError, OSError):
            continue
        if pid != os.getpid() and (old or not _alive(pid)):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically, keeping its permissions."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = _default_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
