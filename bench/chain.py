"""Escalation chains (issue 12) on the dev sets: the classifier, then local LLMs, then a simulated
strong LLM; routing fit on labeled data; verification; feedback.

    .venv/bin/python bench/chain.py [--no-write] [--test N] [--routing N] [--no-server]

The classifier is the one a user gets from the prompt plus 5,000 unlabeled train texts (cached generated
examples from bench/accuracy.py, frozen MiniLM). Each real LLM labels every routing and test text once
(timed, with its calls and tokens); the chains below replay those answers, so every share on the curve
costs what the table says without asking the LLM again. Routing is fit on ``--routing`` labeled train
rows that are neither in the unlabeled pool nor in the test sample.

The strong hosted LLM cannot run here; it is *simulated* as the Chain Ensembles paper simulates chains
from pre-labeled data: a labeler right with probability p on each text (independently, seeded by the
text), whose probability for its label is informative: drawn from U(0.6, 1.0) when right and U(0.34,
0.8) when wrong, the rest spread evenly over the other classes.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import time

import numpy as np
from common import OUT, SEED, machine, prompts, publish, read_rows, scores, table, test_sample

import promptclf.classifier as pc
from promptclf import Chain, PromptClassifier
from promptclf.embedders import EmbeddingCache, get_embedder
from promptclf.escalation import Link, LinkAnswers, LLMLink
from promptclf.escalation.links import verify_messages
from promptclf.llms import get_llm

log = logging.getLogger("bench")
LLMS = {"SmolLM2-135M": "llama-cpp:smollm2", "Gemma3-270M": "llama-cpp:gemma3-270m"}
DATASETS = ("sst2", "ag_news", "trec6")
DEFAULT_WEIGHT = pc.LLM_WEIGHT
FEEDBACK_WEIGHTS = (1.0, 3.0, 10.0)


class Replay(Link):
    """A real link's answers, computed once per text, replayed."""

    def __init__(self, name: str, rows: dict[str, np.ndarray], verified: dict[str, float] | None = None) -> None:
        super().__init__()
        self.name, self.rows, self.ver = name, rows, verified

    def answer(self, texts, classes):
        proba = np.stack([self.rows[t] for t in texts])
        ver = None if self.ver is None else np.array([self.ver.get(t, np.nan) for t in texts])
        return LinkAnswers(proba, [proba], ver)


class Simulated(Link):
    """SIMULATION of a strong LLM: right with probability ``p``, informative confidence (module doc)."""

    def __init__(self, p: float, truth: dict[str, str], classes: list[str]) -> None:
        super().__init__()
        self.p, self.truth, self.classes = p, truth, classes
        self.name = f"simulated p={p}"

    def answer(self, texts, classes):
        out = np.zeros((len(texts), len(classes)))
        for j, t in enumerate(texts):
            rng = np.random.default_rng(int.from_bytes(hashlib.sha256(f"{self.p}{t}".encode()).digest()[:8], "little"))
            y = classes.index(self.truth[t])
            right = rng.random() < self.p
            label = y if right else rng.choice([c for c in range(len(classes)) if c != y])
            top = rng.uniform(0.6, 1.0) if right else rng.uniform(0.34, 0.8)
            top = max(top, 1.0 / len(classes) + 1e-3)
            out[j] = (1 - top) / (len(classes) - 1)
            out[j, label] = top
        return LinkAnswers(out, [out])


def classifier(name: str, descs: dict[str, str], pool: list[str], emb, cache) -> PromptClassifier:
    clf = PromptClassifier(embedder=emb, finetune=False, progress=False).use_embedding_cache(cache)
    clf.load_examples(OUT / f"{name}-direct-n32.jsonl", include_pseudo=False)
    clf.prompt_train(descs, generate=False, unlabeled=pool)
    return clf


def label_all(spec: str, descs: dict[str, str], classes: list[str], texts: list[str], verify: bool) -> dict:
    """Every text through one real LLM link (and its self-verification): rows, cost, verification."""
    llm = get_llm(spec)
    link = LLMLink(llm, descs)
    t = time.perf_counter()
    ans = link(texts, classes)
    seconds = time.perf_counter() - t
    cost = link.cost.as_dict()
    ver: dict[str, float] = {}
    vseconds = 0.0
    if verify:
        t = time.perf_counter()
        for text, row in zip(texts, ans.proba):
            if np.isnan(row).any():
                continue
            label = classes[int(row.argmax())]
            try:
                c = llm.choose(verify_messages(text, label, descs.get(label)), ["Yes", "No"])
                ver[text] = float(c.proba[0])
            except Exception:
                continue
        vseconds = time.perf_counter() - t
    rows = {text: row for text, row in zip(texts, ans.proba)}
    return {
        "rows": rows,
        "per_text_s": seconds / len(texts),
        "cost": cost,
        "ver": ver,
        "ver_per_text_s": vseconds / len(texts),
    }


def f1(labels, pred) -> float:
    return scores(labels, pred)["macro_f1"]


def run(name: str, descs: dict[str, str], emb, cache, n_test: int, n_routing: int, server: bool) -> dict:
    test_texts, test_labels = test_sample(name)
    test_texts, test_labels = test_texts[:n_test], test_labels[:n_test]
    train = read_rows(name, "train")
    perm = np.random.default_rng(SEED).permutation(len(train))
    pool_rows = [train[i] for i in perm[:5000]]
    rest = [train[i] for i in perm[5000:] if train[i]["text"] not in set(test_texts)]
    routing_rows, stream_rows = rest[:n_routing], rest[n_routing : n_routing * 2]
    pool = [r["text"] for r in pool_rows]
    r_texts, r_labels = [r["text"] for r in routing_rows], [r["label"] for r in routing_rows]
    s_texts, s_labels = [r["text"] for r in stream_rows], [r["label"] for r in stream_rows]
    truth = dict(zip(test_texts, test_labels)) | dict(zip(r_texts, r_labels)) | dict(zip(s_texts, s_labels))

    t = time.perf_counter()
    clf = classifier(name, descs, pool, emb, cache)
    log.info("%s: classifier in %.0f s", name, time.perf_counter() - t)
    classes = [str(c) for c in clf.classes_]
    base_pred = clf.predict(test_texts)
    out: dict = {"classifier": f1(test_labels, base_pred), "llms": {}, "sim": {}, "n_test": len(test_texts)}

    # real local LLMs: every routing and test text once
    both = r_texts + test_texts
    real = {}
    for short, spec in LLMS.items():
        t = time.perf_counter()
        real[short] = label_all(spec, descs, classes, both, verify=True)
        log.info("%s %s: %.0f s", name, short, time.perf_counter() - t)
    for short, r in real.items():
        pred = [classes[int(r["rows"][x].argmax())] if not np.isnan(r["rows"][x]).any() else None for x in test_texts]
        right = {
            x: r["rows"][x].argmax() == classes.index(truth[x]) for x in r_texts if not np.isnan(r["rows"][x]).any()
        }
        ver = [(r["ver"][x] >= 0.5) == right[x] for x in right if x in r["ver"]]
        from sklearn.metrics import roc_auc_score

        vy = [right[x] for x in right if x in r["ver"]]
        vs = [r["ver"][x] for x in right if x in r["ver"]]
        auc = roc_auc_score(vy, vs) if len(set(vy)) == 2 else float("nan")
        conf = [float(np.sort(r["rows"][x])[-1] - np.sort(r["rows"][x])[-2]) for x in right]
        cauc = roc_auc_score(list(right.values()), conf) if len(set(right.values())) == 2 else float("nan")
        out["llms"][short] = {
            "alone": f1(test_labels, pred),
            "s_per_text": r["per_text_s"],
            "tokens_per_text": (r["cost"]["prompt_tokens"] + r["cost"]["completion_tokens"]) / len(both),
            "verify_agree": float(np.mean(ver)) if ver else float("nan"),
            "verify_auc": auc,
            "conf_auc": cauc,
            "yes_rate": float(np.mean([v >= 0.5 for v in vs])) if vs else float("nan"),
        }

    # shares on the test sample (one LLM link, replayed), and the fitted chain of both
    curve = []
    for short, r in real.items():
        for share in (0.1, 0.2, 0.3, 0.5):
            for combine in ("last", "rank"):
                chain = Chain(clf, [Replay(short, r["rows"])], shares=share, combine=combine)
                res = chain.predict(test_texts)
                curve.append([short, share, combine, f1(test_labels, res.labels), share * r["per_text_s"]])
    out["curve"] = curve
    fitted = Chain(clf, [Replay(s, real[s]["rows"]) for s in LLMS])
    rep = fitted.fit_routing(r_texts, r_labels)
    res = fitted.predict(test_texts)
    out["fitted"] = {
        "f1": f1(test_labels, res.labels),
        "escalated": res.escalated_share(),
        "skipped": [row["link"] for row in rep.links if "skipped" in row],
        "reason": rep.reason,
        "routing_accuracy": rep.chosen["accuracy"],
    }
    # verification as the routing signal (each LLM verifying itself), fitted the same way
    vfit = Chain(clf, [Replay(s, real[s]["rows"], real[s]["ver"]) for s in LLMS])
    vfit.fit_routing(r_texts, r_labels)
    out["fitted_verify"] = f1(test_labels, vfit.predict(test_texts).labels)

    # SIMULATION of a strong hosted LLM
    for p in (0.7, 0.8, 0.9):
        sim = Simulated(p, truth, classes)
        row = {}
        for combine in ("last", "rank"):
            res = Chain(clf, [sim], shares=0.2, combine=combine).predict(test_texts)
            row[combine] = f1(test_labels, res.labels)
        ch = Chain(clf, [sim])
        rep = ch.fit_routing(r_texts, r_labels)
        res = ch.predict(test_texts)
        row["fitted"] = f1(test_labels, res.labels)
        row["fitted_escalated"] = res.escalated_share()
        row["alone"] = f1(test_labels, [classes[int(k)] for k in sim.answer(test_texts, classes).proba.argmax(1)])
        out["sim"][p] = row

    # feedback: the same stream before and after one round (simulated p=0.9 link, routing fitted on the
    # routing sample), for each weight of the LLM-labelled examples in the head
    out["feedback"] = {}
    for weight in FEEDBACK_WEIGHTS:
        pc.LLM_WEIGHT = weight
        try:
            if weight != FEEDBACK_WEIGHTS[0]:
                clf = classifier(name, descs, pool, emb, cache)
            sim = Simulated(0.9, truth, classes)
            ch = Chain(clf, [sim])
            ch.fit_routing(r_texts, r_labels)
            first = ch.predict(s_texts)
            chain_before = f1(test_labels, ch.predict(test_texts).labels)
            clf_before = f1(test_labels, clf.predict(test_texts))
            added = ch.feedback(s_texts, first)
            clf.train(unlabeled=pool)
            second = ch.predict(s_texts)
            out["feedback"][weight] = {
                "before": first.escalated_share(),
                "after": second.escalated_share(),
                "added": added,
                "clf_before": clf_before,
                "clf_after": f1(test_labels, clf.predict(test_texts)),
                "chain_before": chain_before,
                "chain_after": f1(test_labels, ch.predict(test_texts).labels),
            }
        finally:
            pc.LLM_WEIGHT = DEFAULT_WEIGHT
        log.info("%s feedback, weight %s: %s", name, weight, out["feedback"][weight])

    if server:
        out["server"] = hosted_link(descs, classes, test_texts[:40], real["SmolLM2-135M"]["rows"])
    return out


def hosted_link(descs, classes, texts, local_rows) -> dict:
    """SmolLM2 behind ``python -m llama_cpp.server`` on 127.0.0.1, as a hosted (OpenAI) link."""
    import sys

    sys.path.insert(0, str(OUT.parents[1]))
    from promptclf.llms.hosted import OpenAILLM
    from promptclf.llms.local import resolve_gguf
    from tests.servers.process import free_port, serve

    port = free_port()
    args = ["-m", "llama_cpp.server", "--model", str(resolve_gguf("smollm2")), "--host", "127.0.0.1"]
    args += ["--port", str(port), "--n_ctx", "2048"]
    with serve(args, port, "/v1/models"):
        llm = OpenAILLM("smollm2", base_url=f"http://127.0.0.1:{port}/v1", max_concurrency=1)
        link = LLMLink(llm, descs)
        t = time.perf_counter()
        ans = link(texts, classes)
        seconds = time.perf_counter() - t
    ok = ans.answered
    same = [
        classes[int(a.argmax())] == classes[int(local_rows[x].argmax())] for a, x, o in zip(ans.proba, texts, ok) if o
    ]
    return {
        "n": len(texts),
        "answered": float(ok.mean()),
        "agree_with_in_process": float(np.mean(same)) if same else float("nan"),
        "s_per_text": seconds / len(texts),
        "calls_per_text": link.cost.calls / len(texts),
        "method": "logprobs" if llm._logprobs else "samples",
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--test", type=int, default=400)
    ap.add_argument("--routing", type=int, default=300)
    ap.add_argument("--no-server", action="store_true")
    ap.add_argument("--datasets", nargs="*", default=list(DATASETS))
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("promptclf").setLevel(logging.ERROR)
    emb, cache = get_embedder(None), EmbeddingCache()
    results = {}
    all_prompts = prompts()
    for name in args.datasets:
        if not (OUT / f"{name}-direct-n32.jsonl").exists():
            log.warning("%s: no cached generated examples; run bench/accuracy.py first", name)
            continue
        results[name] = run(name, all_prompts[name], emb, cache, args.test, args.routing, not args.no_server)
    publish("chain", render(results, args), not args.no_write)


def render(results: dict, args) -> str:
    names = list(results)
    rows = [["classifier alone (prompt + 5k unlabeled)", *(results[n]["classifier"] for n in names)]]
    for short in LLMS:
        rows.append([f"{short} alone", *(results[n]["llms"][short]["alone"] for n in names)])
    rows.append(["chain, fit_routing (both LLMs)", *(results[n]["fitted"]["f1"] for n in names)])
    rows.append(["  share escalated on test", *(f"{results[n]['fitted']['escalated']:.0%}" for n in names)])
    rows.append(["chain, fit_routing, verification routing", *(results[n]["fitted_verify"] for n in names)])
    for p in (0.9, 0.8, 0.7):
        rows.append([f"SIMULATED p={p} alone", *(results[n]["sim"][p]["alone"] for n in names)])
        rows.append([f"SIMULATED p={p}, 20% escalated, last decides", *(results[n]["sim"][p]["last"] for n in names)])
        rows.append([f"SIMULATED p={p}, 20% escalated, rank ensemble", *(results[n]["sim"][p]["rank"] for n in names)])
        rows.append([f"SIMULATED p={p}, fit_routing", *(results[n]["sim"][p]["fitted"] for n in names)])
        rows.append(["  share escalated", *(f"{results[n]['sim'][p]['fitted_escalated']:.0%}" for n in names)])
    main_table = table(["macro-F1", *names], rows)

    cost_rows = []
    for n in names:
        for short, r in results[n]["llms"].items():
            cost_rows.append(
                [
                    n,
                    short,
                    f"{r['s_per_text']:.3f}",
                    f"{r['tokens_per_text']:.0f}",
                    r["conf_auc"],
                    r["verify_agree"],
                    r["verify_auc"],
                    f"{r['yes_rate']:.0%}",
                ]
            )
    cost_table = table(
        [
            "dataset",
            "LLM",
            "s/text",
            "tokens/text",
            "confidence AUROC",
            "verifier agrees",
            "verifier AUROC",
            "says yes",
        ],
        cost_rows,
    )

    curve_rows = [[n, *c[:3], c[3], f"{c[4]:.3f}"] for n in names for c in results[n]["curve"]]
    curve_table = table(["dataset", "LLM", "share", "backward pass", "macro-F1", "LLM s per text (avg)"], curve_rows)

    fb_rows = [
        [
            n,
            f"{w:g}" + (" (default)" if w == DEFAULT_WEIGHT else ""),
            r["added"],
            f"{r['before']:.1%}",
            f"{r['after']:.1%}",
            r["clf_before"],
            r["clf_after"],
            r["chain_before"],
            r["chain_after"],
        ]
        for n, res in results.items()
        for w, r in res["feedback"].items()
    ]
    fb_table = table(
        [
            "dataset",
            "weight",
            "LLM labels",
            "escalated before",
            "after",
            "classifier F1 before",
            "after",
            "chain F1 before",
            "after",
        ],
        fb_rows,
    )

    skipped = "; ".join(
        f"{n}: skipped {', '.join(r['fitted']['skipped']) or 'none'} ({r['fitted']['reason']})"
        for n, r in results.items()
    )
    server = ""
    if all("server" in r for r in results.values()):
        srv_rows = [
            [
                n,
                r["server"]["n"],
                f"{r['server']['answered']:.0%}",
                f"{r['server']['agree_with_in_process']:.0%}",
                f"{r['server']['s_per_text']:.3f}",
                r["server"]["calls_per_text"],
                r["server"]["method"],
            ]
            for n, r in results.items()
        ]
        server = (
            "\n\nThe same SmolLM2 served by `python -m llama_cpp.server` on 127.0.0.1 as a hosted (OpenAI-API)\n"
            "link, first 40 test texts: its confidence comes from the server's `top_logprobs` at the position where\n"
            "its (unconstrained) answer starts naming a class, or, where it never does, from 5 samples (the\n"
            "calls/text column); in process it comes from the logits at the answer's first token. The server's\n"
            "seconds include llama-cpp-python sorting the whole vocabulary in Python for each answer token's\n"
            "`top_logprobs`.\n\n"
            + table(
                ["dataset", "texts", "answered", "same label as in-process", "s/text", "calls/text", "confidence from"],
                srv_rows,
            )
        )
    n_test = results[names[0]]["n_test"] if names else 0
    return (
        "## Escalation chains (issue 12)\n\n"
        f"{time.strftime('%Y-%m-%d')}, {machine()}. Regenerate with `.venv/bin/python bench/chain.py` (after\n"
        f"bench/accuracy.py, whose cached generated examples it uses; about 30 minutes). macro-F1 on the first\n"
        f"{n_test} texts of the accuracy table's test samples; routing fit on {args.routing} labeled train rows\n"
        "outside the unlabeled pool. The classifier: prompt + 5,000 unlabeled train texts, frozen MiniLM. Real links:\n"
        "SmolLM2-135M and Gemma 3 270M in process (llama.cpp; each class scored by the model's probability of\n"
        "the token its name starts with, at the start of the answer, renormalised over the classes).\n"
        "**SIMULATED** rows: a stand-in for a strong hosted LLM, right with probability p per text, with an\n"
        "informative confidence (U(0.6, 1) when right, U(0.34, 0.8) when wrong); no such model runs here.\n\n"
        + main_table
        + f"\n\nfit_routing's choice with the real LLMs: {skipped}.\n\n"
        "Cost and confidence of the real LLMs (routing and test texts). *confidence AUROC*: how well the label's\n"
        "margin separates right from wrong answers; *verifier*: the same LLM asked whether its label fits (AutoMix),\n"
        "how often its yes/no agrees with correctness, and the AUROC of its P(yes).\n\n"
        + cost_table
        + "\n\nFixed shares, one real LLM link (answers replayed; the cost column is the LLM's seconds per text\n"
        "of the whole stream):\n\n"
        + curve_table
        + "\n\nFeedback (`Chain.feedback`, then `train`): 300 train texts (not in the pool, the routing sample\n"
        "or the test) through the classifier and the SIMULATED p=0.9 link with routing thresholds fit on the\n"
        "routing sample; the share of that same stream escalated before and after one round, and macro-F1 on\n"
        "the test texts. *weight*: how much each LLM-labelled example counts in the head (`LLM_WEIGHT`).\n\n"
        + fb_table
        + server
        + "\n"
    )


if __name__ == "__main__":
    main()
