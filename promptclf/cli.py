"""The ``promptclf`` command line: train, predict, eval, add, review, retrain, info, serve.

Library errors become a one-line message and exit status 1, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from .errors import PromptClfError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train a text classifier from a prompt.")
Model = Annotated[Path, typer.Argument(help="a .clf model file")]


def _fail(msg: str) -> None:
    typer.echo(f"promptclf: error: {msg}", err=True)
    raise typer.Exit(1)


Encoding = Annotated[str, typer.Option(help="text encoding of the input file(s)")]


def _pool(path: str | None, column: str | None, field: str | None, encoding: str = "utf-8"):
    if path is None:
        return None
    from .textio import iter_texts

    return iter_texts(path, column=column, field=field, encoding=encoding)


def _read_prompts(path: Path, encoding: str) -> dict:
    from .safejson import UnsafeJSON, loads

    try:
        desc = loads(path.read_text(encoding=encoding))
    except (OSError, UnicodeDecodeError, LookupError, UnsafeJSON) as e:
        _fail(f"cannot read prompts from {path}: {e}")
    if not isinstance(desc, dict):
        _fail(f"{path}: expected a JSON object of class name -> description")
    return desc


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="log progress")] = False) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")


@app.command()
def train(
    prompts: Annotated[Path, typer.Argument(help="JSON file mapping class name to description")],
    output: Annotated[Path, typer.Option("-o", "--output", help="where to write the .clf")],
    examples: Annotated[Path | None, typer.Option(help="your examples, Lamini JSONL")] = None,
    llm: Annotated[str | None, typer.Option(help="LLM spec, e.g. llama-cpp:smollm2, openai:gpt-4o-mini")] = None,
    embedder: Annotated[str | None, typer.Option(help="embedder spec")] = None,
    examples_per_class: Annotated[
        str,
        typer.Option(
            help="synthetic examples kept per class: a number, or auto (2 classes 96, 3 64, by each of 2 LLMs; else 32)"
        ),
    ] = "auto",
    store: Annotated[Path | None, typer.Option(help="JSONL file backing generation, for resuming")] = None,
    unlabeled: Annotated[str | None, typer.Option(help="your unlabeled texts: lines, CSV or JSONL")] = None,
    column: Annotated[str | None, typer.Option(help="CSV column of --unlabeled")] = None,
    field: Annotated[str | None, typer.Option(help="JSONL field of --unlabeled")] = None,
    encoding: Encoding = "utf-8",
    quick_first: Annotated[
        bool,
        typer.Option(help="write a first model from the descriptions (and unlabeled texts) before generating"),
    ] = True,
    multi_label: Annotated[
        bool, typer.Option("--multi-label", help="a text may belong to several classes (or none)")
    ] = False,
    finetune: Annotated[
        str,
        typer.Option(
            help="fine-tune the encoder: auto (16+ examples per class or 500+ unlabeled texts; needs PyTorch), on, off"
        ),
    ] = "auto",
    finetune_budget: Annotated[float, typer.Option(help="most seconds fine-tuning may take")] = 300.0,
    llm_label_budget: Annotated[
        str,
        typer.Option(
            help="with --unlabeled: the LLM labels this many of the texts the model is least sure of"
            " (answers are kept and reused); auto: none from a local LLM, 500 from a hosted one"
            " that agrees with the model's surest labels well beyond chance",
        ),
    ] = "auto",
    fast: Annotated[
        bool | None,
        typer.Option(
            "--fast/--no-fast",
            help="the static fast path: a static-embedding head answers what it is sure of"
            " (default: added where there are 100+ real texts to bound it on)",
        ),
    ] = None,
    distill: Annotated[
        bool,
        typer.Option(
            "--distill", help="distil the encoder into half its layers (faster prediction; 1,000+ texts, PyTorch)"
        ),
    ] = False,
) -> None:
    """Generate examples from class descriptions (and learn from unlabeled texts), then train a model.

    By default a first model, trained in seconds from the descriptions (and your unlabeled texts),
    is written to the output before the LLM starts; the finished model replaces it atomically.
    """
    import time

    from .classifier import PromptClassifier

    modes = {"auto": "auto", "on": True, "off": False}
    if finetune not in modes:
        raise typer.BadParameter(f"one of {list(modes)}, got {finetune!r}", param_hint="--finetune")
    per_class = _whole_or_auto(examples_per_class, "--examples-per-class")
    budget = _whole_or_auto(llm_label_budget, "--llm-label-budget")
    desc = _read_prompts(prompts, encoding)
    clf = PromptClassifier(
        llm=llm,
        embedder=embedder,
        examples_per_class=per_class,
        saved_examples_path=store,
        multi_label=multi_label,
        finetune=modes[finetune],
        finetune_budget_s=finetune_budget,
        llm_label_budget=budget,
        fast="auto" if fast is None else fast,
        distill=distill,
    )
    if examples is not None:
        clf.load_examples(examples)
    pool = list(_pool(unlabeled, column, field, encoding)) if unlabeled is not None else None  # read once, used twice
    start = time.perf_counter()
    if quick_first:  # seconds, so without fine-tuning, distilling or the LLM's labels (the finished model has them)
        clf.set_params(finetune=False, distill=False, llm_label_budget=0)
        clf.prompt_train(desc, unlabeled=pool, generate=False)
        clf.set_params(finetune=modes[finetune], distill=distill, llm_label_budget=budget)
        clf.save(output)
        typer.echo(
            f"wrote a first model to {output} in {time.perf_counter() - start:.0f} s (from the descriptions"
            f"{' and unlabeled texts' if pool else ''}); generating examples to improve it",
            err=True,
        )
    before = clf.__dict__.get("encoder_")
    clf.prompt_train(desc, unlabeled=pool)
    clf.save(output)
    s = clf.training_summary_
    tuned = clf.__dict__.get("encoder_")
    notes = ""
    if tuned is not None and tuned is not before and tuned["report"].get("stopped_by_budget"):
        # a slower CPU gets fewer steps in the same budget: say so rather than let it pass unseen
        notes = (
            f"; fine-tuning stopped at its {finetune_budget:g} s budget after {tuned['report']['steps']} steps"
            " (--finetune-budget raises it)"
        )
    choice = s.get("pool_tuning") or {}
    why = None  # why a pool of texts did not tune the encoder (a user may expect it to have)
    if choice.get("chosen_by") == "agreement" and not choice["tuned"]:
        why = (
            f"the pool's labels agree with the examples' on {choice['agreement_with_anchors']:.0%} of it "
            f"(tuning on it pays under {choice['max_agreement']:.0%})"
        )
    elif choice.get("chosen_by") == "guard":
        why = f"self-training found the pool's labels harmful ({clf.self_training_report_['guard']['reason']})"
    if why:
        notes += f"; the encoder tuned on the prompt was kept: {why}"
    llm = (getattr(clf, "self_training_report_", None) or {}).get("llm") or {}
    if check := llm.get("check"):  # llm_label_budget="auto" asked the LLM whether to trust it with the pool
        said = f"it agreed with the model's surest labels on {check['agreement']:.0%} of {check['texts']}"
        said += f", kappa {check['kappa']:.2f}"
        if check["trusted"]:
            notes += f"; the LLM labelled {llm.get('answered', 0)} of the texts the model was least sure of ({said})"
        else:
            notes += f"; the LLM labelled none of the pool ({said}; {check['min_kappa']} needed)"
    typer.echo(
        f"wrote {output}: {len(clf.classes_)} classes, {s['n_examples']} examples "
        f"({time.perf_counter() - start:.0f} s){notes}",
        err=True,
    )


def _whole_or_auto(value: str, param: str) -> int | str:
    """``"auto"``, or the whole number ``value`` spells; a ``BadParameter`` naming ``param`` otherwise."""
    if value == "auto":
        return value
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise typer.BadParameter(f"a whole number or auto, got {value!r}", param_hint=param)
    return n


@app.command()
def predict(
    model: Model,
    input: Annotated[str, typer.Argument(help="input file, or - for stdin")] = "-",
    column: Annotated[str | None, typer.Option(help="CSV column holding the text")] = None,
    field: Annotated[str | None, typer.Option(help="JSONL field holding the text")] = None,
    abstain: Annotated[bool, typer.Option(help="null label under the class threshold")] = False,
    batch_size: Annotated[int, typer.Option(help="texts per batch")] = 256,
    embedder: Annotated[
        str | None,
        typer.Option(help="serve with this embedder, e.g. onnx:all-MiniLM-L6-v2 (fp32; int8 is the default)"),
    ] = None,
    encoding: Encoding = "utf-8",
    escalate: Annotated[
        list[str] | None,
        typer.Option(
            help="send what the model is least sure of to this LLM (repeat for a chain), e.g. "
            "llama-cpp:gemma3-270m, or openai:MODEL with OPENAI_API_KEY and OPENAI_BASE_URL"
        ),
    ] = None,
    escalate_share: Annotated[
        float, typer.Option(help="share of each batch's texts a link forwards to the next (the least confident)")
    ] = 0.2,
    verify: Annotated[bool, typer.Option(help="LLM links verify their own answers and route on that")] = False,
    engine: Annotated[
        str, typer.Option(help="local, or ray: a Ray Dataset over parquet, CSV or JSONL input")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (auto, or ray://host:port); default RAY_ADDRESS, else a local Ray"),
    ] = None,
    output: Annotated[Path | None, typer.Option(help="with --engine ray: folder to write the results to")] = None,
    output_format: Annotated[str, typer.Option(help="with --engine ray: parquet, csv or jsonl")] = "parquet",
    workers: Annotated[int, typer.Option(help="with --engine ray: model copies (actors)")] = 1,
    no_fast: Annotated[
        bool, typer.Option("--no-fast", help="predict without the model's static fast path (every text through MiniLM)")
    ] = False,
) -> None:
    """Write one JSON line per input text: text, label, prob (with --escalate also decided_by, flags).

    With --engine ray, the input is read as a Ray Dataset and the same columns are written to --output."""
    from .classifier import PromptClassifier
    from .textio import batched, iter_texts

    if batch_size < 1:
        _fail(f"--batch-size must be at least 1, got {batch_size}")
    if engine not in ("local", "ray"):
        _fail(f"--engine must be local or ray, got {engine!r}")
    if engine == "ray":
        if escalate or abstain or no_fast:
            _fail("--engine ray does not take --escalate, --abstain or --no-fast")
        if output is None:
            _fail("--engine ray needs --output DIR (the results are written there, one file per block)")
        from .integrations.ray_cli import predict_with_ray

        predict_with_ray(
            model,
            input,
            output,
            text_column=field or column or "text",
            output_format=output_format,
            batch_size=batch_size,
            workers=workers,
            address=address,
            embedder=embedder,
        )
        return
    if not 0.0 <= escalate_share <= 1.0:
        _fail(f"--escalate-share must be between 0 and 1, got {escalate_share}")
    clf = PromptClassifier.load(model, embedder=embedder)
    clf.progress = False
    if no_fast:
        clf.fast = False
    chain = None
    if escalate:
        from .escalation import Chain

        if abstain:
            _fail("--abstain and --escalate do not go together: escalation decides the unsure texts instead")
        chain = Chain(clf, escalate, shares=escalate_share, verify=verify)
    out = sys.stdout
    for batch in batched(iter_texts(input, column=column, field=field, encoding=encoding), batch_size):
        if chain is not None:
            res = chain.predict(batch)
            for text, row in zip(batch, res.rows()):
                row["prob"] = row.pop("confidence")
                out.write(json.dumps({"text": text, **row}) + "\n")
            continue
        proba = clf.predict_proba(batch)
        labels = clf.predict_from_proba(proba, abstain=abstain)
        for text, label, row in zip(batch, labels, proba):
            out.write(json.dumps({"text": text, "label": label, "prob": round(float(row.max()), 6)}) + "\n")
    out.flush()


@app.command("eval")
def evaluate(
    model: Model,
    data: Annotated[Path, typer.Argument(help="labelled CSV")],
    text_column: Annotated[str, typer.Option(help="column with the text")] = "text",
    label_column: Annotated[
        str | None, typer.Option(help="column with the label (default: label; labels for a multi-label model)")
    ] = None,
    delimiter: Annotated[str, typer.Option(help="multi-label: what separates the labels in one cell")] = "|",
    plot: Annotated[Path | None, typer.Option(help="write precision-recall curves on this data to a PNG")] = None,
    report: Annotated[
        Path | None,
        typer.Option(help="write a report to this folder: tables, confusion matrix, PR curves, reliability"),
    ] = None,
    encoding: Encoding = "utf-8",
) -> None:
    """Accuracy, macro-F1, per-class precision and recall, confusion matrix, and what the abstention
    thresholds deliver here (precision and coverage with 95% intervals).

    For a multi-label model: micro- and macro-F1, exact-match ratio and per-class figures; each cell of
    the label column holds the text's labels joined by --delimiter (empty: no label)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    from .classifier import PromptClassifier
    from .textio import read_csv_columns

    if plot is not None and not plot.resolve().parent.is_dir():
        _fail(f"cannot write {plot}: folder {plot.resolve().parent} does not exist")

    clf = PromptClassifier.load(model)
    clf.progress = False
    label_column = label_column or ("labels" if clf.multi_label else "label")
    rows = read_csv_columns(data, [text_column, label_column], encoding=encoding)
    if not rows:
        _fail(f"{data}: no rows")
    texts = [t for t, _ in rows]
    proba = clf.predict_proba(texts)  # once: every figure below is made from it
    classes = [str(c) for c in clf.classes_]
    if clf.multi_label:
        if not delimiter:
            _fail("--delimiter must not be empty")
        truth = [[x for x in lab.split(delimiter) if x] for _, lab in rows]
        known_sets = [[c for c in row if c in classes] for row in truth]
        _eval_multi_label(clf, proba, truth, known_sets, plot)
        _abstention_lines(clf, texts, proba, known_sets, report)
        return
    labels = [lab for _, lab in rows]
    pred = clf.predict_from_proba(proba)
    p, r, f1, support = precision_recall_fscore_support(labels, pred, labels=classes, zero_division=0)
    typer.echo(f"rows      {len(rows)}")
    typer.echo(f"accuracy  {accuracy_score(labels, pred):.4f}")
    typer.echo(f"macro-F1  {f1_score(labels, pred, labels=classes, average='macro', zero_division=0):.4f}")
    w = _per_class_table(classes, p, r, f1, support)
    cm = confusion_matrix(labels, pred, labels=classes)
    typer.echo(
        f"\nconfusion matrix (rows: true, columns: predicted)\n{'':{w}}  " + " ".join(f"{c[:8]:>8}" for c in classes)
    )
    for c, row in zip(classes, cm):
        typer.echo(f"{c:{w}}  " + " ".join(f"{v:8d}" for v in row))
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        typer.echo(f"\nnote: labels not in the model: {unknown}", err=True)
    known = [i for i, lab in enumerate(labels) if lab in classes]
    known_labels = [labels[i] for i in known]
    if plot is not None:
        _plot(clf, proba[known], known_labels, plot)
    _abstention_lines(clf, [texts[i] for i in known], proba[known], known_labels, report)


def _plot(clf, proba, truth: list, path: Path) -> None:
    clf.plot_precision_recall(path, labels=truth, proba=proba)
    typer.echo(f"wrote {path}", err=True)


def _abstention_lines(clf, texts: list[str], proba, truth: list, report: Path | None) -> None:
    """What predict(abstain=True) delivers on these rows, beside what the model promised; then the report."""
    from .report import abstention, write_report

    if not texts:
        return
    cal = clf.calibration_
    ab = abstention(clf, proba, clf._label_array(truth, len(texts)))

    def iv(v, lo_hi) -> str:
        return "n/a" if v is None else f"{v:.4f} [{lo_hi[0]:.4f}, {lo_hi[1]:.4f}]"

    typer.echo(f"\nabstaining at the thresholds (target precision {cal.get('target_precision', 0.9):g}, 95% intervals)")
    typer.echo(f"precision here    {iv(ab['precision'], ab['precision_interval'])}")
    typer.echo(f"coverage here     {iv(ab['coverage'], ab['coverage_interval'])}")
    est = cal.get("estimate")
    if cal.get("calibrated") and est:
        typer.echo(f"model's estimate  precision {iv(est['precision'], est['precision_interval'])}, "
                   f"coverage {iv(est['coverage'], est['coverage_interval'])} ({est.get('method', '')})")  # fmt: skip
    else:
        typer.echo("model's estimate  none: thresholds uncalibrated (set on synthetic/pseudo-labelled data)")
    if report is not None:
        index = write_report(clf, texts, truth, report, proba=proba)
        typer.echo(f"wrote {index}", err=True)


def _per_class_table(classes, p, r, f1, support, *, thresholds=None) -> int:
    """Print eval's per-class rows (with each class's threshold, for a multi-label model); returns the name width."""
    w = max(len(c) for c in classes)
    typer.echo(
        f"\n{'class':{w}}  precision  recall  f1      support" + ("  threshold" if thresholds is not None else "")
    )
    for i, c in enumerate(classes):
        row = f"{c:{w}}  {p[i]:.4f}     {r[i]:.4f}  {f1[i]:.4f}  "
        row += f"{support[i]:<7d}  {thresholds[i]:.4f}" if thresholds is not None else f"{support[i]}"
        typer.echo(row)
    return w


def _eval_multi_label(clf, proba, truth: list[list[str]], known: list[list[str]], plot: Path | None) -> None:
    from sklearn.metrics import f1_score, precision_recall_fscore_support
    from sklearn.preprocessing import MultiLabelBinarizer

    classes = [str(c) for c in clf.classes_]
    unknown = sorted({c for row in truth for c in row} - set(classes))
    mlb = MultiLabelBinarizer(classes=classes)
    Yt, Yp = mlb.fit_transform(known), mlb.transform(clf.predict_from_proba(proba))
    p, r, f1, support = precision_recall_fscore_support(Yt, Yp, zero_division=0)
    typer.echo(f"rows         {len(proba)}")
    typer.echo(f"micro-F1     {f1_score(Yt, Yp, average='micro', zero_division=0):.4f}")
    typer.echo(f"macro-F1     {f1_score(Yt, Yp, average='macro', zero_division=0):.4f}")
    typer.echo(f"exact match  {(Yt == Yp).all(axis=1).mean():.4f}")
    typer.echo(f"labels/text  {Yp.sum(1).mean():.2f} predicted, {Yt.sum(1).mean():.2f} true")
    _per_class_table(classes, p, r, f1, support, thresholds=clf.thresholds_)
    if unknown:
        typer.echo(f"\nnote: labels not in the model (left out): {unknown}", err=True)
    if plot is not None:
        _plot(clf, proba, known, plot)


@app.command()
def add(
    model: Model,
    class_name: Annotated[str | None, typer.Argument(help="the class the texts belong to")] = None,
    texts: Annotated[list[str] | None, typer.Argument(help="one or more texts")] = None,
    from_csv: Annotated[
        Path | None, typer.Option("--from", help="a CSV of text,label rows (e.g. a filled-in review --export)")
    ] = None,
    text_column: Annotated[str, typer.Option(help="--from: column with the text")] = "text",
    label_column: Annotated[str, typer.Option(help="--from: column with the label (empty: skipped)")] = "label",
    delimiter: Annotated[str, typer.Option(help="--from, multi-label: what separates labels in one cell")] = "|",
    encoding: Encoding = "utf-8",
) -> None:
    """Add examples inside the model file: texts of one class, or labelled rows of a CSV (then `retrain`)."""
    from .classifier import PromptClassifier

    if (from_csv is None) == (class_name is None):
        _fail("give a class and texts, or --from labels.csv (not both)")
    clf = PromptClassifier.load(model)
    if from_csv is None:
        if not texts:
            _fail(f"no texts given for class {class_name!r}")
        clf.add_data_to_class(class_name, texts)
        typer.echo(f"added {len(texts)} example(s) to {class_name!r}; run `promptclf retrain {model}`", err=True)
    else:
        from .review.session import REVIEW_META
        from .textio import read_csv_columns, read_csv_header

        # a `pick` column (review --export writes one) says which texts were random picks: those calibrate
        has_pick = "pick" in read_csv_header(from_csv, encoding=encoding)
        cols = [text_column, label_column] + (["pick"] if has_pick else [])
        cells = [(*row, "") if not has_pick else row for row in read_csv_columns(from_csv, cols, encoding=encoding)]
        rows = [(t, lab.strip(), pick.strip()) for t, lab, pick in cells]
        labelled = [
            (t, [c for c in lab.split(delimiter) if c] if clf.multi_label else [lab], pick)
            for t, lab, pick in rows
            if lab
        ]
        unknown = sorted({c for _, cs, _ in labelled for c in cs} - set(map(str, clf.classes_)))
        if unknown:  # a typo must not become a new class
            _fail(f"{from_csv}: labels {unknown} are not classes of {model} ({list(map(str, clf.classes_))})")
        for t, cs, pick in labelled:
            meta = {**REVIEW_META, "pick": pick} if pick in ("random", "uncertain") else {"via": "csv"}
            for c in cs:
                clf.add_data_to_class(c, t, meta=meta)
        typer.echo(
            f"added {len(labelled)} labelled row(s) from {from_csv} ({len(rows) - len(labelled)} without a label "
            f"skipped); run `promptclf retrain {model}`",
            err=True,
        )
    clf.save(model)


@app.command()
def review(
    model: Model,
    texts: Annotated[str, typer.Argument(help="your unlabelled texts: lines, CSV or JSONL")],
    column: Annotated[str | None, typer.Option(help="CSV column of the texts")] = None,
    field: Annotated[str | None, typer.Option(help="JSONL field of the texts")] = None,
    export: Annotated[
        Path | None, typer.Option(help="don't ask: write the suggestions to this CSV (fill in label, then add --from)")
    ] = None,
    n: Annotated[int, typer.Option("-n", help="--export: how many suggestions", min=1)] = 50,
    batch: Annotated[int, typer.Option(help="suggestions chosen at a time", min=1)] = 10,
    retrain_every: Annotated[int, typer.Option(help="answers between background retrainings", min=1)] = 5,
    llm: Annotated[str | None, typer.Option(help="also show this LLM's answer (e.g. llama-cpp:smollm2)")] = None,
    explore: Annotated[
        float, typer.Option(help="share of suggestions drawn at random (their labels calibrate)", min=0, max=1)
    ] = 0.5,
    self_train: Annotated[
        bool | None,
        typer.Option(help="self-train on the texts when saving (default: when the model was self-trained)"),
    ] = None,
    encoding: Encoding = "utf-8",
) -> None:
    """Label the texts the model most needs, one at a time; the model retrains as you go and is saved at the end.

    Answers are written to MODEL.review.jsonl as you give them: after Ctrl-C or a crash, run the
    same command again to carry on.
    """
    from .classifier import PromptClassifier

    clf = PromptClassifier.load(model)
    clf.progress = False
    pool = list(_pool(texts, column, field, encoding))
    if export is not None:
        _export_suggestions(clf, pool, export, n, explore)
        return
    from .escalation.links import LLMLink
    from .review.session import ReviewSession, journal_path
    from .review.tui import check_terminal, run_review

    check_terminal()
    link = LLMLink(llm, clf.prompts_) if llm else None
    session = ReviewSession(
        clf,
        pool,
        journal=journal_path(model),
        batch=batch,
        retrain_every=retrain_every,
        llm_link=link,
        explore=explore,
    )
    if self_train is None:
        self_train = getattr(clf, "self_training_report_", None) is not None
    run_review(model, session, unlabeled=pool if self_train else None)


def _export_suggestions(clf, pool: list[str], path: Path, n: int, explore: float) -> None:
    import csv
    import io

    from ._atomic import atomic_write

    if not path.resolve().parent.is_dir():
        _fail(f"cannot write {path}: folder {path.resolve().parent} does not exist")
    suggestions = clf.suggest(pool, n=n, explore=explore)
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["text", "guess", "confidence", "pick", "label"])
    for s in suggestions:
        guess = "|".join(s.guess) if isinstance(s.guess, list) else s.guess
        w.writerow([s.text, guess, f"{s.confidence:.4f}", s.pick, ""])
    atomic_write(path, buf.getvalue().encode("utf-8"))
    typer.echo(
        f"wrote {len(suggestions)} suggestion(s) to {path}: fill in the label column (the guess may be "
        f"copied), then `promptclf add MODEL --from {path}` and `promptclf retrain MODEL`",
        err=True,
    )


@app.command()
def retrain(
    model: Model,
    unlabeled: Annotated[str | None, typer.Option(help="your unlabeled texts: lines, CSV or JSONL")] = None,
    column: Annotated[str | None, typer.Option(help="CSV column of --unlabeled")] = None,
    field: Annotated[str | None, typer.Option(help="JSONL field of --unlabeled")] = None,
    encoding: Encoding = "utf-8",
) -> None:
    """Refit the model on everything stored in it (cached embeddings make this fast)."""
    from .classifier import PromptClassifier

    clf = PromptClassifier.load(model)
    clf.progress = False
    clf.train(unlabeled=_pool(unlabeled, column, field, encoding))
    clf.save(model)
    typer.echo(f"retrained {model}: {clf.training_summary_['n_examples']} examples", err=True)


@app.command()
def info(model: Model, as_json: Annotated[bool, typer.Option("--json", help="machine-readable")] = False) -> None:
    """Classes, example counts, embedders, thresholds, calibration and training metrics."""
    from .classifier import PromptClassifier

    data = PromptClassifier.load(model).summary()
    if as_json:
        typer.echo(json.dumps(data, indent=1))
        return
    w = max(map(len, data))
    for k, v in data.items():
        typer.echo(f"{k:{w}} {json.dumps(v) if isinstance(v, (dict, list)) else v}")


@app.command()
def serve(
    model: Model,
    host: Annotated[str, typer.Option(help="address to bind; 0.0.0.0 exposes the server to the network")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 8000,
    workers: Annotated[int, typer.Option(help="processes, each with its own copy of the model")] = 1,
    max_batch: Annotated[int, typer.Option(help="most texts embedded together (micro-batching)")] = 64,
    max_wait_ms: Annotated[float, typer.Option(help="how long a text waits for others to join its batch")] = 5.0,
    parallel_batches: Annotated[
        int | None,
        typer.Option(help="batches each worker predicts at once, one thread each [default: its share of the CPUs]"),
    ] = None,
    max_texts: Annotated[int, typer.Option(help="most texts in one request")] = 256,
    max_text_chars: Annotated[int, typer.Option(help="longest text accepted, in characters")] = 20_000,
    allow_reload: Annotated[bool, typer.Option(help="reload the file on SIGHUP or POST /v1/reload")] = False,
    embedder: Annotated[
        str | None,
        typer.Option(help="serve with this embedder, e.g. onnx:all-MiniLM-L6-v2 (fp32; int8 is the default)"),
    ] = None,
    drain_s: Annotated[
        float, typer.Option(help="on SIGTERM, how long requests in flight may take to finish before they are cut off")
    ] = 30.0,
) -> None:
    """Serve the model over HTTP: /v1/predict, /v1/classify, /v1/model, /healthz, /readyz, /metrics, /docs."""
    from .serving import ServerSettings
    from .serving import serve as run_server

    for name, value, low in (
        ("--port", port, 1),
        ("--workers", workers, 1),
        ("--max-batch", max_batch, 1),
        ("--parallel-batches", 1 if parallel_batches is None else parallel_batches, 1),
        ("--max-texts", max_texts, 1),
        ("--max-text-chars", max_text_chars, 1),
    ):
        if value < low:
            _fail(f"{name} must be at least {low}, got {value}")
    if port > 65535:
        _fail(f"--port must be at most 65535, got {port}")
    if not 0 <= max_wait_ms <= 1000:
        _fail(f"--max-wait-ms must be between 0 and 1000, got {max_wait_ms}")
    if not 0 <= drain_s <= 86_400:
        _fail(f"--drain-s must be between 0 and 86400 seconds, got {drain_s}")
    settings = ServerSettings(
        model=str(model),
        embedder=embedder,
        max_batch=max_batch,
        max_wait_ms=max_wait_ms,
        max_texts=max_texts,
        max_text_chars=max_text_chars,
        allow_reload=allow_reload,
        parallel_batches=parallel_batches,
    )
    typer.echo(f"serving {model} on http://{host}:{port} (docs at /docs)", err=True)
    run_server(settings, host=host, port=port, workers=workers, drain_s=drain_s)


def main() -> None:
    try:
        app()
    except PromptClfError as e:
        typer.echo(f"promptclf: error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.echo("promptclf: interrupted", err=True)
        sys.exit(130)
