"""How many CPUs this process may really use: its affinity mask and its container's CPU quota.

``os.cpu_count()`` counts the machine's CPUs; a process pinned to two of them, or a container
limited to two, that starts one thread per machine CPU oversubscribes and slows down.
``physical_cores`` counts the cores under those CPUs (two hyperthreads of one core count once), the
count llama.cpp's own tools start threads for.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup (v2 ``cpu.max``, else v1 ``cfs_quota_us``); ``None`` if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def _affinity() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except (AttributeError, OSError):  # not on Linux
        return set(range(os.cpu_count() or 1))


def available_cpus(root: Path = Path("/sys/fs/cgroup")) -> int:
    """CPUs the process may run on: affinity mask, capped by the container's quota and by
    ``OMP_NUM_THREADS`` where set (Ray sets it to each worker's CPU share), at least 1."""
    return _capped(len(_affinity()), root)


def physical_cores(root: Path = Path("/sys/fs/cgroup"), sysfs: Path = Path("/sys/devices/system/cpu")) -> int:
    """Cores under the CPUs the process may run on (sibling hyperthreads count once), capped as
    ``available_cpus``; the CPUs themselves where the topology cannot be read."""
    cpus = _affinity()
    cores = set()
    for cpu in cpus:
        topology = sysfs / f"cpu{cpu}" / "topology"
        try:
            cores.add(tuple((topology / f).read_text().strip() for f in ("physical_package_id", "core_id")))
        except OSError:
            return _capped(len(cpus), root)
    return _capped(len(cores) or len(cpus), root)


def _capped(n: int, root: Path) -> int:
    quota = _cgroup_quota(root)
    if quota is not None:
        n = min(n, max(1, math.ceil(quota)))
    try:
        n = min(n, int(os.environ.get("OMP_NUM_THREADS", "")))
    except ValueError:
        pass
    return max(1, n)
