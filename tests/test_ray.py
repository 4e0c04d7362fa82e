"""Batch prediction on a real local Ray (``ray.init(num_cpus=2)``), with the packaged MiniLM: results
identical to single-process predict, from the API and from ``promptclf predict --engine ray``."""

from __future__ import annotations

import json

import numpy as np
import pytest

from promptclf import PromptClassifier
from promptclf.cli import app

ray = pytest.importorskip("ray")
pd = pytest.importorskip("pandas")
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def minilm_model(tmp_path_factory):
    clf = PromptClassifier(progress=False)
    clf.add_data_to_class("sports", ["the team won the match", "a late goal in the final", "the runner set a record"])
    clf.add_data_to_class("business", ["the company beat profit forecasts", "stocks fell", "the bank raised rates"])
    path = tmp_path_factory.mktemp("ray") / "m.clf"
    clf.train().save(path)
    return path


def rows(n: int) -> list[str]:
    words = ["match", "stocks", "goal", "profits", "league", "merger", "coach", "market"]
    return [f"report {i}: {words[i % 8]} and {words[(i * 3) % 8]} news" for i in range(n)]


def read_folder(path, fmt: str):
    files = sorted(p for p in path.iterdir() if not p.name.startswith("."))
    if fmt == "parquet":
        return pd.concat([pd.read_parquet(p) for p in files])
    if fmt == "csv":
        return pd.concat([pd.read_csv(p) for p in files])
    return pd.concat([pd.read_json(p, lines=True) for p in files])


def test_predict_dataset_matches_single_process(local_ray, minilm_model):
    from promptclf.integrations.ray import predict_dataset

    texts = rows(300)
    ds = ray.data.from_items([{"body": t, "id": i} for i, t in enumerate(texts)])
    out = predict_dataset(ds, minilm_model, text_column="body", batch_size=64, workers=2).to_pandas()
    out = out.sort_values("id")
    clf = PromptClassifier.load(minilm_model)
    proba = clf.predict_proba(texts)
    assert out["label"].tolist() == clf.predict(texts)
    assert np.allclose(out["prob"].to_numpy(), proba.max(1), atol=1e-6)
    assert out["body"].tolist() == texts  # input columns are kept


@pytest.mark.parametrize(("fmt", "workers"), [("parquet", 1), ("csv", 1), ("jsonl", 2)])
def test_cli_engine_ray(local_ray, minilm_model, tmp_path, fmt, workers, monkeypatch, capsys):
    texts = rows(120)
    frame = pd.DataFrame({"text": texts, "n": range(len(texts))})
    src = tmp_path / f"in.{fmt}"
    if fmt == "parquet":
        frame.to_parquet(src)
    elif fmt == "csv":
        frame.to_csv(src, index=False)
    else:
        src.write_text("".join(json.dumps(r) + "\n" for r in frame.to_dict("records")))
    out = tmp_path / "out"
    args = ["predict", str(minilm_model), str(src), "--engine", "ray", "--output", str(out), "--output-format", fmt]
    args += ["--workers", str(workers)]  # 2: two model copies (actors) share the blocks
    with pytest.raises(SystemExit) as e:
        app(args)
    assert e.value.code in (0, None)
    got = read_folder(out, fmt)
    assert list(got.columns) == ["text", "label", "prob"]
    want = dict(zip(texts, PromptClassifier.load(minilm_model).predict(texts)))
    assert len(got) == len(texts) and all(want[t] == lab for t, lab in zip(got["text"], got["label"]))


def test_cli_engine_ray_names_a_missing_column(local_ray, minilm_model, tmp_path, capsys):
    from promptclf.cli import main

    src = tmp_path / "in.csv"
    src.write_text("body\nhello\n")
    import sys

    argv = sys.argv
    sys.argv = ["promptclf", "predict", str(minilm_model), str(src), "--engine", "ray", "--output", str(tmp_path / "o")]
    try:
        with pytest.raises(SystemExit) as e:
            main()
    finally:
        sys.argv = argv
    err = capsys.readouterr().err
    assert e.value.code == 1 and "no column 'text'" in err and "--column" in err


@pytest.mark.parametrize(
    ("workers", "cpus", "share"),
    [(1, 2, 1.0), (2, 2, 0.5), (4, 2, 0.25), (1, 1, 0.5), (2, 16, 1.0), (15, 16, 1.0), (30, 16, 0.5)],
)
def test_worker_cpus_leave_a_cpu_for_reads(workers, cpus, share):
    from promptclf.integrations.ray import worker_cpus

    assert worker_cpus(workers, cpus) == pytest.approx(share)
    assert workers * worker_cpus(workers, cpus) <= cpus - min(1, cpus / 2)  # Ray Data's tasks get the rest


def test_multi_label_and_long_documents_take_the_same_path_on_ray(local_ray, tmp_path):
    """Ray workers give a multi-label model's label sets (joined by "|") and chunk a long document the same
    way a single process does (the document vector is its chunks' mean, never a truncated text)."""
    from promptclf.integrations.ray import MULTI_LABEL_DELIMITER, predict_dataset

    clf = PromptClassifier(multi_label=True, min_labels=1, progress=False)
    clf.add_data_to_class("sports", ["the team won the match", "a late goal in the final", "the coach resigned"])
    clf.add_data_to_class("business", ["the company beat profit forecasts", "stocks fell", "the bank raised rates"])
    clf.add_data_to_class("sports", "the club's shares rose after the cup win")
    clf.add_data_to_class("business", "the club's shares rose after the cup win")
    path = tmp_path / "ml.clf"
    clf.train().save(path)
    long_doc = " ".join(["The markets were calm all morning."] * 150 + ["Then the striker scored twice."] * 150)
    texts = [*rows(40), long_doc]
    out = predict_dataset(ray.data.from_items([{"text": t} for t in texts]), path, batch_size=16).to_pandas()
    loaded = PromptClassifier.load(path)
    want = {t: MULTI_LABEL_DELIMITER.join(labels) for t, labels in zip(texts, loaded.predict(texts))}
    assert len(out) == len(texts) and all(want[t] == lab for t, lab in zip(out["text"], out["label"]))
    assert loaded._emb.count_long([long_doc]) == 1  # the document is over the window: it took the chunked path
    got = float(out.loc[out["text"] == long_doc, "prob"].iloc[0])
    assert np.isclose(got, loaded.predict_proba([long_doc]).max(), atol=1e-6)
