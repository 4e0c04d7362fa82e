"""Run a benchmark as on an AVX2-only x86 CPU: AVX-512, VNNI and AMX masked out of CPUID. A SIMULATION.

    .venv/bin/python bench/as_avx2.py bench/speed.py --section speed-avx2-simulated

ONNX Runtime, PyTorch (ATen, oneDNN, MKL) and numpy choose their kernels by CPUID when they load, so on a
CPU with AVX-512 VNNI nothing runs the AVX2 int8 kernels that issue 16's AVX2-only machines serve with,
and ONNX Runtime has no switch to choose them. Linux can make CPUID trap where the CPU or hypervisor
offers it (``cpuid_fault`` in /proc/cpuinfo); ``cpuid_avx2.c``, compiled here once and preloaded, answers
each trap with this CPU's own answer less those bits. What it simulates is the kernels chosen; the
cores stay this CPU's (clock, caches, how it runs 256-bit instructions), and glibc's own string
functions, chosen before any preloaded code runs, keep their AVX-512 forms. Tables made this way say so
in their heading (``common.cpu_flags``), and one was checked against a real AVX2 EPYC (BENCHMARKS.md).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE / "cpuid_avx2.c"
MASKED = ("avx512", "avx_vnni", "amx")  # the /proc/cpuinfo flags (by prefix) whose CPUID bits cpuid_avx2.c clears
PROBE = f"import sys; sys.path.insert(0, {str(HERE)!r}); import as_avx2; print(as_avx2.masked_here())"


def listed_flags() -> set[str]:
    """The flags /proc/cpuinfo lists for this CPU (``Features`` on ARM): the CPU's, whatever the mask."""
    try:
        with open("/proc/cpuinfo") as f:
            return set(next(line.split(":", 1)[1].split() for line in f if line.startswith(("flags", "Features"))))
    except (OSError, StopIteration):
        return set()


def masked_here() -> bool:
    """Whether this process runs under the mask: numpy reads CPUID in the process it loads in, so it sees
    what the libraries beside it saw, AVX2 and no AVX-512 on a CPU that lists AVX-512."""
    import numpy as np

    seen = np._core._multiarray_umath.__cpu_features__
    return "avx512f" in listed_flags() and seen["AVX2"] and not seen["AVX512F"]


def library() -> Path:
    """The compiled preload library, built once per version of its source."""
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    cache = Path(os.environ.get("PROMPTCLF_CACHE", Path.home() / ".cache" / "promptclf")) / "bench"
    out = cache / f"cpuid_avx2-{digest}.so"
    if not out.exists():
        cc = shutil.which(os.environ.get("CC", "cc"))
        if cc is None:
            sys.exit("as_avx2: no C compiler (cc) to build bench/cpuid_avx2.c")
        cache.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", str(tmp), str(SOURCE), "-ldl"], check=True)
        tmp.replace(out)
    return out


def masked_env() -> dict[str, str]:
    """The environment that runs a process with the mask, checked: a process under it must see it."""
    flags = listed_flags()
    if "avx2" not in flags:
        sys.exit("as_avx2: this CPU has no AVX2 to simulate an AVX2-only CPU with")
    if "cpuid_fault" not in flags:
        sys.exit("as_avx2: this CPU cannot make CPUID trap (no cpuid_fault in /proc/cpuinfo); nothing to mask with")
    env = {**os.environ, "LD_PRELOAD": " ".join(filter(None, [str(library()), os.environ.get("LD_PRELOAD")]))}
    seen = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    if seen.returncode or seen.stdout.strip() != "True":
        sys.exit(f"as_avx2: the mask did not take (a process under it still saw AVX-512)\n{seen.stderr}")
    return env


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit(__doc__)
    env = masked_env()
    # a script or python's own options run in this interpreter; anything else is a program
    command = [sys.executable, *argv] if argv[0].endswith(".py") or argv[0].startswith("-") else argv
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main(sys.argv[1:])
