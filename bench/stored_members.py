"""Cold start of a `.clf` with its float arrays stored vs deflated (issue 16), as medians of one run.

    .venv/bin/python bench/stored_members.py model.clf [more.clf ...] [--repeat 7]

Each file is rewritten twice, member by member: every member deflated (as files were written before
`modelfile.STORED`), and as `save` writes them now (the encoder graph and cached embeddings stored).
Then, alternating between the copies, a fresh process loads each and predicts one text.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from common import FRESH_ENV, ROOT, compile_package
from speed import PY

from promptclf.modelfile import STORED


def rewrite(src: Path, dst: Path, stored: bool) -> None:
    with zipfile.ZipFile(src) as a, zipfile.ZipFile(dst, "w", compression=zipfile.ZIP_DEFLATED) as b:
        for info in a.infolist():
            keep = stored and info.filename in STORED
            b.writestr(info.filename, a.read(info), compress_type=zipfile.ZIP_STORED if keep else None)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    copies = []
    for m in args.models:
        for stored in (False, True):
            dst = tmp / f"{m.stem}-{'stored' if stored else 'deflated'}.clf"
            rewrite(m, dst, stored)
            copies.append(dst)
    times: dict[Path, list[float]] = {c: [] for c in copies}
    compile_package()
    for _ in range(args.repeat):
        for c in copies:
            t = time.perf_counter()
            code = f"import promptclf; promptclf.load({str(c)!r}).predict(['a fine film'])"
            subprocess.run([PY, "-c", code], check=True, capture_output=True, env=FRESH_ENV, cwd=ROOT)
            times[c].append(time.perf_counter() - t)
    print("| file | MB | cold start (median) |\n|---|---|---|")
    for c in copies:
        print(f"| {c.stem} | {c.stat().st_size / 2**20:.1f} | {statistics.median(times[c]):.2f} s |")


if __name__ == "__main__":
    sys.exit(main())
