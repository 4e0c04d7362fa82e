"""An escalation chain: the classifier answers, and what it can't decide goes on to LLMs.

The forward pass follows LLM Chain Ensembles (Farr et al., 2024, arXiv 2410.13006): each link labels
the texts that reached it and keeps those it is surest of; the least sure go on to the next, more
expensive link (a share of what reached it, or those under a threshold ``fit_routing`` set). A
link's confidence is the margin between its two most likely classes, or, for a link that verifies
its answers (AutoMix, arXiv 2310.12963), the probability its verifier said "Yes".

The backward pass is the paper's rank-based ensemble: each link's confidences are turned into
percentile ranks (against the texts it saw while routing was fitted, or in this run), and a text
takes the label of the link whose confidence ranks highest among the links that saw it. Whether
that beats "the last link that answered decides" is measured by ``fit_routing``, which keeps the
better one (``combine``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_texts
from ..errors import ConfigurationError, InvalidInputError
from .links import ClassifierLink, Link, LinkAnswers, LLMLink, rank_fuse

log = logging.getLogger("promptclf")

COMBINE = ("rank", "last")
# shares of what reaches a link that fit_routing tries forwarding to the next one
SHARE_GRID = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)
# one-sided z for "escalating is better than the classifier alone" on the labeled sample (McNemar)
SIGNIFICANCE_Z = 1.645


def margin(proba: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 probability per row (NaN rows stay NaN)."""
    if proba.shape[1] < 2:
        return proba[:, 0].copy()
    s = np.sort(proba, axis=1)
    return s[:, -1] - s[:, -2]


def routing_score(ans: LinkAnswers, mask: np.ndarray) -> np.ndarray:
    """A link's confidence for the texts ``mask`` selects: P("Yes") from its verifier where it
    verifies (unverified counts as 0: escalate), else the margin of its probabilities."""
    if ans.verified is None:
        return margin(ans.proba[mask])
    return np.nan_to_num(ans.verified[mask], nan=0.0)


@dataclass
class ChainResult:
    """Per text: the label, its confidence, the link that decided, and flags; per link: cost.

    Attributes
    ----------
    labels : list of str
    confidence : ndarray
        The deciding link's probability of its label.
    decided_by : list of str
        Name of the link whose label stands.
    flags : list of list of str
        ``"failed:<link>"`` where a link that should have answered could not (its server failed
        after retries, or its answer was unusable); the text keeps the previous link's answer.
    answers : dict of str to list
        Every link's label per text (``None`` where the text did not reach it or it gave none).
    verified : dict of str to ndarray
        For verifying links, the probability that their label fits (NaN where not asked).
    costs : dict of str to dict
        Per link: texts, calls, prompt and completion tokens, seconds, in this run.
    """

    labels: list[str]
    confidence: np.ndarray
    decided_by: list[str]
    flags: list[list[str]]
    answers: dict[str, list[str | None]]
    verified: dict[str, np.ndarray] = field(default_factory=dict)
    costs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def escalated_share(self) -> float:
        """Share of texts decided by a link other than the first."""
        first = next(iter(self.answers))
        return float(np.mean([d != first for d in self.decided_by])) if self.labels else 0.0

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"label": lab, "confidence": round(float(c), 6), "decided_by": d, "flags": f}
            for lab, c, d, f in zip(self.labels, self.confidence, self.decided_by, self.flags)
        ]


@dataclass
class _Pass:
    """The outcome of a forward and backward pass, in link indices."""

    label: np.ndarray  # class index per text
    conf: np.ndarray  # deciding link's probability of the label
    decided: np.ndarray  # link index per text
    failed: list[list[int]]  # per text, links that failed on it
    labels_by_link: np.ndarray  # (links, n) class index or -1
    reached: np.ndarray  # (links, n) bool


def forward(
    n: int,
    ask: Any,
    routing: Sequence[dict[str, Any]],
    combine: str,
    reference: Sequence[np.ndarray | None] | None = None,
) -> _Pass:
    """Run the chain over ``n`` texts.

    ``ask(i, idx)`` returns link ``i``'s ``LinkAnswers`` for the texts ``idx``; ``routing[i]`` is
    ``{"skip": bool, "share": float | None, "threshold": float | None}`` for each link (the last
    link's share is ignored). ``reference[i]``, if given, holds sorted routing scores of link ``i``
    to rank this run's scores against (else ranks are taken within this run).
    """
    m = len(routing)
    label = np.full(n, -1)
    conf = np.zeros(n)
    decided = np.zeros(n, dtype=int)
    failed: list[list[int]] = [[] for _ in range(n)]
    labels_by_link = np.full((m, n), -1)
    score = np.full((m, n), np.nan)
    top = np.full((m, n), np.nan)
    reached = np.zeros((m, n), dtype=bool)
    active = [i for i in range(m) if i == 0 or not routing[i].get("skip")]
    reach = np.arange(n)
    for pos, i in enumerate(active):
        if len(reach) == 0:
            break
        reached[i, reach] = True
        ans: LinkAnswers = ask(i, reach)
        ok = ans.answered
        got, miss = reach[ok], reach[~ok]
        if i == 0 and len(miss):
            raise RuntimeError("the first link must answer every text")
        rows = ans.proba[ok]
        labels_by_link[i, got] = rows.argmax(1)
        top[i, got] = rows.max(1)
        s = routing_score(ans, ok)
        score[i, got] = s
        label[got], conf[got], decided[got] = rows.argmax(1), rows.max(1), i
        for j in miss:
            failed[j].append(i)
        if pos == len(active) - 1:
            break
        r = routing[i]
        if r.get("threshold") is not None:
            fwd = got[s < r["threshold"]]
        else:
            k = min(len(got), math.ceil((r.get("share") or 0.0) * len(reach) - 1e-9))
            fwd = got[np.argsort(s, kind="stable")[:k]]
        reach = np.sort(np.concatenate([fwd, miss]))  # what a link failed on still deserves an answer
    if combine == "rank":
        pct = np.full((m, n), -np.inf)
        for i in active:
            have = ~np.isnan(score[i])
            if not have.any():
                continue
            ref = reference[i] if reference is not None and reference[i] is not None and len(reference[i]) else None
            ref = np.sort(score[i, have]) if ref is None else ref
            pct[i, have] = np.searchsorted(ref, score[i, have], side="right") / len(ref)
        # among the links that answered a text, the highest percentile decides; ties go to the later link
        order = np.arange(m)[:, None] * 1e-9
        best = np.argmax(np.where(np.isfinite(pct), pct + order, -np.inf), axis=0)
        multi = (labels_by_link >= 0).sum(0) > 1
        label[multi] = labels_by_link[best[multi], np.flatnonzero(multi)]
        conf[multi] = top[best[multi], np.flatnonzero(multi)]
        decided[multi] = best[multi]
    return _Pass(label, conf, decided, failed, labels_by_link, reached)


class Chain:
    """The classifier first, then LLM links for what it can't decide.

    Parameters
    ----------
    classifier : PromptClassifier
        A trained classifier: the first link. Its classes and descriptions are the chain's.
    links : sequence of LLM, spec string or Link
        The next links, cheapest first. A spec or LLM becomes an ``LLMLink`` with the classifier's
        class descriptions; a list of them becomes one fused link.
    shares : float or sequence of float, optional
        Per link but the last, the share of the texts reaching it that go on to the next (the least
        confident ones). One number applies to every link. Default 0: nothing is escalated until
        you set a share or call ``fit_routing`` on labeled data.
    combine : {"rank", "last"}, default "rank"
        The backward pass: the link whose confidence ranks highest decides ("rank", as in LLM Chain
        Ensembles), or the last link that answered ("last"). ``fit_routing`` picks the better.
    verify : bool, default False
        LLM links verify their own answers and route on the probability of "Yes" (AutoMix).

    Attributes
    ----------
    routing_ : dict
        Set by ``fit_routing``: per link a threshold (or skipped, and why), the backward pass
        chosen, the reference scores for ranking, and the report.
    """

    def __init__(
        self,
        classifier: Any,
        links: Sequence[Any] = (),
        *,
        shares: float | Sequence[float] | None = None,
        combine: str = "rank",
        verify: bool = False,
    ) -> None:
        self.classifier = classifier
        self.links = list(links)
        self.shares = shares
        self.combine = combine
        self.verify = verify

    # ------------------------------------------------------------------ setup
    @property
    def classes(self) -> list[str]:
        self.classifier._check_fitted()
        return [str(c) for c in self.classifier.classes_]

    def _links(self) -> list[Link]:
        if "_built" not in self.__dict__:
            if getattr(self.classifier, "multi_label", False):  # links pick one class; label sets need more
                raise ConfigurationError(
                    "escalation chains pick one class per text; multi-label models are not supported yet",
                    setting="multi_label",
                )
            descriptions = dict(getattr(self.classifier, "prompts_", {}) or {})
            built: list[Link] = [ClassifierLink(self.classifier)]
            for x in self.links:
                built.append(x if isinstance(x, Link) else LLMLink(x, descriptions, verify=self.verify))
            names = [b.name for b in built]
            if len(set(names)) != len(names):
                for k, b in enumerate(built):
                    b.name = f"{k}:{b.name}"
            self._built = built
        return self._built

    def _routing(self) -> list[dict[str, Any]]:
        if self.combine not in COMBINE:
            raise ConfigurationError(f"combine must be one of {COMBINE}, got {self.combine!r}", setting="combine")
        links = self._links()
        fitted = self.__dict__.get("routing_")
        if fitted is not None:
            return [dict(r) for r in fitted["links"]]
        shares = self.shares
        if shares is None:
            shares = [0.0] * len(links)
        elif isinstance(shares, (int, float)):
            shares = [float(shares)] * len(links)
        else:
            shares = [float(s) for s in shares] + [0.0]
            if len(shares) < len(links):
                raise ConfigurationError(
                    f"shares: {len(shares) - 1} given for {len(links) - 1} escalation links", setting="shares"
                )
        for s in shares:
            if not 0.0 <= s <= 1.0 or math.isnan(s):
                raise ConfigurationError(f"shares must be between 0 and 1, got {s}", setting="shares")
        return [{"share": s, "threshold": None, "skip": False} for s in shares[: len(links)]]

    # ------------------------------------------------------------------ prediction
    def predict(self, texts: Any) -> ChainResult:
        """Label ``texts``: the classifier first, then each link for what the one before forwarded."""
        texts = check_texts(texts)
        links = self._links()
        classes = self.classes
        routing = self._routing()
        combine = self.__dict__.get("routing_", {}).get("combine", self.combine)
        reference = self.__dict__.get("routing_", {}).get("reference")
        before = [link.cost.as_dict() for link in links]
        answers: dict[int, tuple[np.ndarray, LinkAnswers]] = {}

        def ask(i: int, idx: np.ndarray) -> LinkAnswers:
            ans = links[i]([texts[j] for j in idx], classes)
            answers[i] = (idx, ans)
            if ans.error:
                log.warning("%s failed on %d text(s): %s", links[i].name, int((~ans.answered).sum()), ans.error)
            return ans

        p = forward(
            len(texts),
            ask,
            routing,
            combine,
            [None if r is None else np.asarray(r) for r in reference] if reference else None,
        )
        return self._result(p, links, classes, answers, before)

    def _result(self, p: _Pass, links: list[Link], classes: list[str], answers, before) -> ChainResult:
        n = len(p.label)
        verified = {}
        for i, (idx, ans) in answers.items():
            if ans.verified is not None:
                v = np.full(n, np.nan)
                v[idx] = ans.verified
                verified[links[i].name] = v
        costs = {}
        for link, b in zip(links, before):
            a = link.cost.as_dict()
            costs[link.name] = {k: round(a[k] - b[k], 3) if k == "seconds" else a[k] - b[k] for k in a}
        return ChainResult(
            labels=[classes[k] for k in p.label],
            confidence=p.conf,
            decided_by=[links[d].name for d in p.decided],
            flags=[[f"failed:{links[i].name}" for i in f] for f in p.failed],
            answers={
                link.name: [classes[k] if k >= 0 else None for k in p.labels_by_link[i]] for i, link in enumerate(links)
            },
            verified=verified,
            costs=costs,
        )

    def feedback(self, texts: Any, result: ChainResult, *, min_confidence: float = 0.0) -> int:
        """Add what links after the classifier decided to the classifier's examples.

        Each answer is stored with provenance ``llm`` and, in its meta, the link, its confidence and
        its verification, so the next ``train()`` learns from it and fewer texts need escalating.
        Texts a link failed on, and answers under ``min_confidence``, are left out.

        Returns
        -------
        int
            How many examples were added.
        """
        texts = check_texts(texts)
        if len(texts) != len(result.labels):
            raise InvalidInputError(f"{len(texts)} texts for a result of {len(result.labels)}", argument="texts")
        first = self._links()[0].name
        added = 0
        for j, (text, label, who) in enumerate(zip(texts, result.labels, result.decided_by)):
            if who == first or result.flags[j] or result.confidence[j] < min_confidence:
                continue
            meta: dict[str, Any] = {"model": who, "confidence": round(float(result.confidence[j]), 4)}
            if who in result.verified and not math.isnan(result.verified[who][j]):
                meta["verified"] = round(float(result.verified[who][j]), 4)
            self.classifier.add_data_to_class(label, text, source="llm", meta=meta)
            added += 1
        return added

    # ------------------------------------------------------------------ routing from labeled data
    def fit_routing(
        self,
        texts: Any,
        labels: Sequence[str],
        *,
        target_accuracy: float | None = None,
        max_share: float | None = None,
    ) -> RoutingReport:
        """Choose which links to use, how much to forward and how to combine, from labeled texts.

        Every link labels every text once (a few hundred rows are enough); then every combination
        of shares on a grid, with both backward passes, is replayed on those answers. A link no
        more accurate than the link before it on any share of the texts that link is least sure of
        is skipped (and reported); several LLMs in one link get fusion weights from their accuracies.
        The choice: the cheapest routing that reaches
        ``target_accuracy``; else the most accurate one that sends at most ``max_share`` of the
        texts past the classifier; and escalation at all only where it beats the classifier alone
        by more than chance on this sample (a one-sided McNemar test), so that routing fitted here
        does not end below the classifier alone. The shares become per-link confidence thresholds,
        so a text's route does not depend on the batch it comes in.

        Returns
        -------
        RoutingReport
            Per link accuracy and cost, what was skipped and why, the accuracy/cost curve, the choice.
        """
        texts = check_texts(texts)
        labels = [str(x) for x in labels]
        if len(labels) != len(texts):
            raise InvalidInputError(f"{len(texts)} texts but {len(labels)} labels", argument="labels")
        classes = self.classes
        unknown = sorted(set(labels) - set(classes))
        if unknown:
            raise InvalidInputError(f"labels not among the classes {classes}: {unknown[:5]}", argument="labels")
        if max_share is not None and not 0.0 <= max_share <= 1.0:
            raise ConfigurationError(f"max_share must be between 0 and 1, got {max_share}", setting="max_share")
        links = self._links()
        y = np.array([classes.index(c) for c in labels])
        n = len(texts)
        full: list[LinkAnswers] = []
        per_text_seconds = []
        for link in links:
            before = link.cost.as_dict()
            full.append(link(list(texts), classes))
            after = link.cost.as_dict()
            per_text_seconds.append((after["seconds"] - before["seconds"]) / max(n, 1))
        report = RoutingReport(classes=classes, n=n)
        for i, (link, ans) in enumerate(zip(links, full)):
            acc = _accuracy(ans.proba, y)
            row = {
                "link": link.name,
                "accuracy": acc,
                "answered": float(ans.answered.mean()),
                "seconds_per_text": per_text_seconds[i],
            }
            if isinstance(link, LLMLink) and len(link.llms) > 1:
                link.weights = [_vote_weight(_accuracy(mb, y), len(classes)) for mb in ans.members]
                ans.proba = rank_fuse(ans.members, link.weights)
                row["member_accuracy"] = {x.id: _accuracy(mb, y) for x, mb in zip(link.llms, ans.members)}
                row["weights"] = list(link.weights)
                row["accuracy"] = _accuracy(ans.proba, y)
            if ans.verified is not None:
                ok = ans.answered
                right = ans.proba[ok].argmax(1) == y[ok]
                yes = ans.verified[ok] >= 0.5
                row["verifier_agreement"] = float(np.mean(yes == right)) if ok.any() else None
            report.links.append(row)
        # A link is worth trying only if it beats the link before it somewhere it would be asked: on
        # the texts that link is least sure of, at some share. (Worse on the whole sample is no
        # reason: a cheaper LLM than the classifier overall may still be right where it is unsure.)
        skip = [False] * len(links)
        last_kept = 0
        for i in range(1, len(links)):
            gains = _gains_on_hard_texts(full[last_kept], full[i], y)
            report.links[i]["best_gain_on_forwarded"] = max(gains.values()) if gains else None
            if not gains or max(gains.values()) <= 0:
                skip[i] = True
                report.links[i]["skipped"] = (
                    f"no more accurate than {links[last_kept].name} on any share of the texts it is least sure of"
                )
            else:
                last_kept = i
        kept = [i for i in range(1, len(links)) if not skip[i]]

        def ask(i: int, idx: np.ndarray) -> LinkAnswers:
            return full[i].take(idx)

        base = forward(n, ask, [{"share": 0.0, "threshold": None, "skip": True}] * len(links), "last")
        base_right = base.label == y
        candidates = []
        grids = [SHARE_GRID] * len(kept)
        for combo in _product(grids):
            if kept and combo and combo[0] == 0.0 and any(c > 0 for c in combo[1:]):
                continue  # nothing reaches the later links anyway
            routing = [{"share": 0.0, "threshold": None, "skip": s} for s in skip]
            # link i forwards to the next kept link: the share belongs to the link before each kept one
            prev = [0, *kept[:-1]]
            for share, i in zip(combo, prev):
                routing[i]["share"] = share
            for combine in COMBINE if any(combo) else ("last",):
                p = forward(n, ask, routing, combine)
                right = p.label == y
                reach_share = [float(p.reached[i].mean()) for i in range(len(links))]
                candidates.append(
                    {
                        "shares": {links[i].name: s for s, i in zip(combo, prev)},
                        "combine": combine,
                        "accuracy": float(right.mean()),
                        "macro_f1": _macro_f1(y, p.label, len(classes)),
                        "escalated": reach_share[kept[0]] if kept else 0.0,
                        "seconds_per_text": float(sum(r * t for r, t in zip(reach_share, per_text_seconds))),
                        "gain": int(np.sum(right & ~base_right)) - int(np.sum(~right & base_right)),
                        "discordant": int(np.sum(right != base_right)),
                        "_routing": routing,
                        "_pass": p,
                    }
                )
        baseline = next(c for c in candidates if c["escalated"] == 0.0)
        chosen, why = _choose(candidates, baseline, target_accuracy, max_share)
        report.chosen = {k: v for k, v in chosen.items() if not k.startswith("_")}
        report.reason = why
        report.curve = _frontier(candidates)
        routing = [dict(r) for r in chosen["_routing"]]
        reference: list[list[float] | None] = []
        p = chosen["_pass"]
        for i, ans in enumerate(full):
            got = p.reached[i] & ans.answered
            s = routing_score(ans, got)
            s = np.sort(s)
            reference.append(s.tolist() if len(s) else None)
            share = routing[i].get("share") or 0.0
            if i < len(links) - 1 and not routing[i]["skip"]:
                k = math.ceil(share * int(p.reached[i].sum()) - 1e-9)
                if k <= 0 or not len(s):
                    routing[i]["threshold"] = -np.inf
                elif k >= len(s):
                    routing[i]["threshold"] = np.inf
                else:  # halfway between the last score forwarded and the first kept
                    routing[i]["threshold"] = float((s[k - 1] + s[k]) / 2)
        for i in range(len(links)):
            if skip[i]:
                routing[i]["skip"] = True
        self.routing_ = {"links": routing, "combine": chosen["combine"], "reference": reference, "report": report}
        return report


@dataclass
class RoutingReport:
    """What ``fit_routing`` measured and chose."""

    classes: list[str]
    n: int
    links: list[dict[str, Any]] = field(default_factory=list)
    curve: list[dict[str, Any]] = field(default_factory=list)
    chosen: dict[str, Any] = field(default_factory=dict)
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "links": self.links, "curve": self.curve, "chosen": self.chosen, "reason": self.reason}


def _accuracy(proba: np.ndarray, y: np.ndarray) -> float:
    ok = ~np.isnan(proba).any(axis=1)
    pred = np.where(ok, np.nan_to_num(proba, nan=-1).argmax(1), -1)
    return float(np.mean(pred == y))


def _macro_f1(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    f1 = []
    for c in range(k):
        tp = np.sum((pred == c) & (y == c))
        fp, fn = np.sum((pred == c) & (y != c)), np.sum((pred != c) & (y == c))
        if tp + fp + fn:
            f1.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1)) if f1 else 0.0


def _gains_on_hard_texts(prev: LinkAnswers, nxt: LinkAnswers, y: np.ndarray) -> dict[float, int]:
    """Per share on the grid: how many more of the ``prev`` link's least confident texts ``nxt`` gets
    right than ``prev`` does."""
    conf = np.where(prev.answered, margin(np.nan_to_num(prev.proba, nan=0.0)), -np.inf)
    order = np.argsort(conf, kind="stable")
    right_prev = np.where(prev.answered, np.nan_to_num(prev.proba, nan=-1).argmax(1) == y, False)
    right_next = np.where(nxt.answered, np.nan_to_num(nxt.proba, nan=-1).argmax(1) == y, False)
    out = {}
    for share in SHARE_GRID[1:]:
        hard = order[: math.ceil(share * len(y) - 1e-9)]
        out[share] = int(right_next[hard].sum()) - int(right_prev[hard].sum())
    return out


def _vote_weight(acc: float, k: int) -> float:
    """Weight of a voter of accuracy ``acc`` among ``k`` classes in an optimal weighted vote
    (Nitzan and Paroush): the log-odds of being right against one given wrong class; 0 at chance."""
    acc = min(max(acc, 1e-3), 1 - 1e-3)
    return max(0.0, math.log(acc * (k - 1) / (1 - acc)))


def _product(grids: list[Sequence[float]]) -> list[tuple[float, ...]]:
    out: list[tuple[float, ...]] = [()]
    for g in grids:
        out = [(*o, v) for o in out for v in g]
    return out


def _choose(candidates, baseline, target: float | None, max_share: float | None):
    def significant(c) -> bool:
        return c["gain"] > 0 and c["gain"] > SIGNIFICANCE_Z * math.sqrt(c["discordant"])

    pool = [c for c in candidates if max_share is None or c["escalated"] <= max_share + 1e-9]
    if target is not None:
        reaching = [c for c in pool if c["accuracy"] >= target and (c is baseline or significant(c))]
        if reaching:
            best = min(reaching, key=lambda c: (c["seconds_per_text"], -c["accuracy"]))
            return best, f"cheapest routing reaching accuracy {target:.3f} on the sample"
    better = [c for c in pool if c is not baseline and significant(c)]
    if not better:
        return baseline, "no routing beat the classifier alone by more than chance on this sample: nothing escalated"
    top = max(c["accuracy"] for c in better)
    # within half a standard error of the best, the cheapest
    tol = 0.5 * math.sqrt(top * (1 - top) / max(len(baseline["_pass"].label), 1))
    best = min((c for c in better if c["accuracy"] >= top - tol), key=lambda c: (c["seconds_per_text"], -c["accuracy"]))
    return best, "most accurate routing within the budget (cheapest within half a standard error)"


def _frontier(candidates) -> list[dict[str, Any]]:
    """The accuracy/cost curve: per escalated share, the most accurate routing."""
    best: dict[float, dict[str, Any]] = {}
    for c in candidates:
        key = round(c["escalated"], 3)
        if key not in best or c["accuracy"] > best[key]["accuracy"]:
            best[key] = c
    return [
        {k: v for k, v in best[s].items() if not k.startswith("_") and k not in ("gain", "discordant")}
        for s in sorted(best)
    ]
