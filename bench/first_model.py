"""Time to first model: what `make demo` costs a new user, measured as they would run it.

    .venv/bin/python bench/first_model.py [--no-write]

Fresh processes of the CLI with default settings on the demo's prompts (examples/demo/), without and
with the demo's 50 unlabeled messages; then how the model labels the demo's inbox (8 messages I wrote
and labelled: a smoke check, not an accuracy figure).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, publish, table

DEMO = ROOT / "examples" / "demo"
INBOX_LABELS = ["spam", "ham", "spam", "ham", "spam", "ham", "spam", "ham"]  # examples/demo/inbox.txt, in order
CLI = [sys.executable, "-m", "promptclf"]
HEADER = ["input", "first model after", "its inbox right", "finished after", "inbox right",
          "predict wall time (fresh process)"]  # fmt: skip


def train(out: Path, unlabeled: bool, first: Path) -> tuple[float, float]:
    """Seconds until the first model file appears (copied aside to score it) and until the run ends."""
    args = [*CLI, "train", str(DEMO / "prompts.json"), "-o", str(out)]
    if unlabeled:
        args += ["--unlabeled", str(DEMO / "unlabeled.txt")]
    t = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first_s = None
    while proc.poll() is None:
        if first_s is None and out.exists():
            first_s = time.perf_counter() - t
            first.write_bytes(out.read_bytes())  # saves are atomic: this is a whole file
        time.sleep(0.05)
    if proc.returncode != 0:
        raise SystemExit(f"train failed: {args}")
    return first_s if first_s is not None else float("nan"), time.perf_counter() - t


def inbox(model: Path) -> tuple[int, float]:
    t = time.perf_counter()
    res = subprocess.run(
        [*CLI, "predict", str(model), str(DEMO / "inbox.txt")], check=True, capture_output=True, text=True
    )
    took = time.perf_counter() - t
    labels = [json.loads(line)["label"] for line in res.stdout.splitlines()]
    return sum(a == b for a, b in zip(labels, INBOX_LABELS)), took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for unlabeled in (False, True):
            model, first = Path(d) / f"m{int(unlabeled)}.clf", Path(d) / f"first{int(unlabeled)}.clf"
            first_s, seconds = train(model, unlabeled, first)
            first_right, _ = inbox(first)
            right, predict_s = inbox(model)
            n = len(INBOX_LABELS)
            name = "prompts + 50 unlabeled" if unlabeled else "prompts only"
            rows.append([name, f"{first_s:.1f} s", f"{first_right} / {n}", f"{seconds:.0f} s", f"{right} / {n}",
                         f"{predict_s:.1f} s"])  # fmt: skip
    body = (
        "## Time to first model\n\n"
        f"{time.strftime('%Y-%m-%d')}, {machine()}. Regenerate with `.venv/bin/python bench/first_model.py`.\n"
        "`promptclf train examples/demo/prompts.json -o m.clf [--unlabeled examples/demo/unlabeled.txt]` in a\n"
        "fresh process with the default settings (SmolLM2-135M and Gemma 3 270M each write 96 examples per class\n"
        "for these two classes, MiniLM embeds and is fine-tuned on them),\n"
        "as `make demo` runs it; then `promptclf predict` of the demo's 8-message inbox in another fresh process.\n"
        "*first model*: the first `.clf` that `train` writes, from the descriptions (and the unlabeled texts)\n"
        "before the LLM starts (`--no-quick-first` turns it off); *finished*: the file once generation is done.\n"
        "The accuracy table supports the early model: with unlabeled texts, descriptions alone score as well\n"
        "as descriptions + generated examples on the dev sets.\n\n" + table(HEADER, rows) + "\n"
    )
    publish("first-model", body, not args.no_write)


if __name__ == "__main__":
    main()
