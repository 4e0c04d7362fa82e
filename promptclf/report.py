"""``promptclf eval --report DIR``: an evaluation a person can look at.

Writes a per-class table, the confusion matrix, each class's precision-recall curve with its
threshold marked, and a reliability diagram (does a 0.8 mean right 80% of the time?) as PNGs, tied
together by ``index.md`` and ``index.html``. Needs matplotlib (``promptclf[plot]``).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import numpy as np

from .calibration import abstain_outcome, summarize_outcome, summarize_sets
from .errors import ConfigurationError, InvalidInputError

RELIABILITY_BINS = 10


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigurationError("--report needs matplotlib: pip install 'promptclf[plot]'") from None
    return plt


def abstention(clf: Any, proba: np.ndarray, truth: Any) -> dict[str, Any]:
    """Precision and coverage of ``predict(abstain=True)`` on labelled rows, with 95% intervals.

    Single-label: answered rows and how many were right. Multi-label: precision over the labels
    given, coverage the share of texts given at least one.
    """
    if clf.multi_label:
        given = clf._over_threshold(proba)
        out = summarize_sets(given, truth, clf.classes_)
        out["answered"] = int(given.any(axis=1).sum())
        return out
    answered, correct = abstain_outcome(proba, truth, clf.thresholds_)
    out = summarize_outcome(answered, correct, proba.argmax(axis=1), clf.classes_)
    out["answered"] = int(answered.sum())
    return out


def _confusion_png(plt, y_true: np.ndarray, y_pred: np.ndarray, classes: list[str], path: Path) -> None:
    from sklearn.metrics import ConfusionMatrixDisplay

    size = max(4.5, 0.6 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ConfusionMatrixDisplay.from_predictions(
        y_true, y_pred, labels=list(range(len(classes))), display_labels=classes, ax=ax, colorbar=False,
        xticks_rotation=45, cmap="Blues",
    )  # fmt: skip
    ax.set_title("confusion matrix (rows: true)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _reliability_png(plt, confidence: np.ndarray, correct: np.ndarray, title: str, path: Path) -> dict[str, Any]:
    """Reliability diagram and the expected calibration error (ECE) over equal-width bins."""
    edges = np.linspace(0, 1, RELIABILITY_BINS + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, RELIABILITY_BINS - 1)
    counts = np.bincount(which, minlength=RELIABILITY_BINS)
    acc = np.bincount(which, weights=correct.astype(float), minlength=RELIABILITY_BINS) / np.maximum(counts, 1)
    conf = np.bincount(which, weights=confidence, minlength=RELIABILITY_BINS) / np.maximum(counts, 1)
    ece = round(float((counts / max(len(confidence), 1) * np.abs(acc - conf)).sum()), 3)
    fig, (ax, hx) = plt.subplots(2, 1, figsize=(5.5, 6), height_ratios=[3, 1], sharex=True)
    centres = (edges[:-1] + edges[1:]) / 2
    full = counts > 0
    ax.bar(centres[full], acc[full], width=1 / RELIABILITY_BINS, edgecolor="black", alpha=0.7, label="observed")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    ax.set(ylabel="fraction right", ylim=(0, 1), title=f"{title} (ECE {ece:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    hx.bar(centres, counts, width=1 / RELIABILITY_BINS, edgecolor="black", color="grey")
    hx.set(xlabel="predicted probability", ylabel="texts", xlim=(0, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return {"ece": ece, "bins": RELIABILITY_BINS}


def _fmt(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _interval(v: Any, iv: list[float]) -> str:
    return "–" if v is None else f"{v:.3f} [{iv[0]:.3f}, {iv[1]:.3f}]"


def write_report(
    clf: Any, texts: list[str], truth: Any, folder: str | os.PathLike[str], *, proba: np.ndarray | None = None
) -> Path:
    """Write the report for labelled ``texts`` to ``folder`` (made if missing); returns ``index.html``.

    ``truth``: per text its class (single-label; classes the model does not know must be left out
    by the caller), or its list of classes (multi-label). ``proba``: ``clf.predict_proba(texts)``
    if the caller has it already.
    """
    from sklearn.metrics import precision_recall_fscore_support

    from .calibration import plot_precision_recall

    plt = _pyplot()
    out = Path(folder)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvalidInputError(f"cannot make report folder {out}: {e}", argument="report") from None
    classes = [str(c) for c in clf.classes_]
    if proba is None:
        proba = clf.predict_proba(texts)
    y = clf._label_array(truth, len(texts))
    thresholds = clf.thresholds_
    figures: list[tuple[str, str]] = []
    if clf.multi_label:
        pred = clf._over_threshold(proba).astype(int)
        p, r, f1, support = precision_recall_fscore_support(y, pred, zero_division=0)
        confidence, correct = proba.ravel(), (y == 1).ravel()
        rel_title = "reliability, every class of every text"
    else:
        top = proba.argmax(axis=1)
        p, r, f1, support = precision_recall_fscore_support(y, top, labels=list(range(len(classes))), zero_division=0)
        _confusion_png(plt, y, top, classes, out / "confusion.png")
        figures.append(("Confusion matrix", "confusion.png"))
        confidence, correct = proba.max(axis=1), top == y
        rel_title = "reliability of the top class"
    curves = clf._curves(proba, y)
    target = float(clf.calibration_.get("target_precision", clf.target_precision))
    plot_precision_recall(curves, clf.classes_, thresholds, target, str(out / "precision_recall.png"))
    figures.append(("Precision-recall per class (dot: the model's threshold; dashed: target precision)",
                    "precision_recall.png"))  # fmt: skip
    rel = _reliability_png(plt, confidence, correct, rel_title, out / "reliability.png")
    figures.append((f"Reliability diagram (expected calibration error {rel['ece']:.3f})", "reliability.png"))
    ab = abstention(clf, proba, y)
    cal = clf.calibration_
    est = cal.get("estimate") or {}

    pc = ab["per_class"]
    rows = [
        [c, _fmt(float(p[j])), _fmt(float(r[j])), _fmt(float(f1[j])), str(int(support[j])), f"{thresholds[j]:.3f}",
         _interval(pc[c]["precision"], pc[c]["interval"]), str(pc[c]["answered"])]
        for j, c in enumerate(classes)
    ]  # fmt: skip
    header = ["class", "precision", "recall", "F1", "support", "threshold", "precision over threshold", "answered"]
    summary = [
        ["rows", str(len(texts))],
        ["macro-F1", _fmt(float(np.mean(f1)))],
        ["target precision", f"{target:.2f}"],
        ["thresholds calibrated", "yes (real labels)" if cal.get("calibrated") else "no (synthetic/pseudo labels)"],
        ["precision over threshold, here", _interval(ab["precision"], ab["precision_interval"])],
        ["coverage, here", _interval(ab["coverage"], ab["coverage_interval"])],
        ["model's own estimate: precision", _interval(est.get("precision"), est.get("precision_interval", [0, 1]))
         if est else "none (uncalibrated)"],
        ["model's own estimate: coverage", _interval(est.get("coverage"), est.get("coverage_interval", [0, 1]))
         if est else "none (uncalibrated)"],
        ["expected calibration error", f"{rel['ece']:.3f}"],
    ]  # fmt: skip

    def md_table(head: list[str], body: list[list[str]]) -> str:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])

    md = [f"# Evaluation of {len(classes)} classes on {len(texts)} labelled texts", "",
          md_table(["measure", "value"], summary), "", "## Per class", "", md_table(header, rows), ""]  # fmt: skip
    for title, name in figures:
        md += [f"## {title}", "", f"![{title}]({name})", ""]
    (out / "index.md").write_text("\n".join(md), encoding="utf-8")

    def html_table(head: list[str], body: list[list[str]]) -> str:
        th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        trs = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>" for row in body)
        return f"<table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table>"

    parts = [
        "<!doctype html><meta charset='utf-8'><title>promptclf evaluation</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}td,th{padding:.2em .6em;"
        "border-bottom:1px solid #ddd;text-align:left}img{max-width:100%}</style>",
        f"<h1>Evaluation of {len(classes)} classes on {len(texts)} labelled texts</h1>",
        html_table(["measure", "value"], summary),
        "<h2>Per class</h2>",
        html_table(header, rows),
    ]
    for title, name in figures:
        parts.append(f"<h2>{html.escape(title)}</h2><img src='{name}' alt='{html.escape(title)}'>")
    index = out / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    return index
