"""A review session: suggested texts one at a time, answers kept as they are given, retraining behind.

No terminal code here (``tui.py`` draws it), so the session is driven the same way by the screen,
by tests and by the benchmark.

Nothing given is lost: every answer, skip and undo is appended to a journal (JSON lines, fsynced)
the moment it is made. A session that ends any way but ``finish`` (Ctrl-C, a crash, a closed
terminal) resumes from its journal next time; ``finish`` trains, saves the ``.clf`` atomically, and
only then removes the journal.

The model the user is shown is retrained every ``retrain_every`` answers in a background thread, on
a copy (the base model plus the answers so far), so the screen never waits for training; the next
suggestions come from the newest model that has finished.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import InvalidInputError
from .suggest import Suggestion, suggestion_for

log = logging.getLogger("promptclf")

REVIEW_META = {"via": "review"}  # kept with each reviewed example in the store


@dataclass
class Action:
    """One step of the session: an answer (the classes given) or a skip (``classes`` None)."""

    text: str
    classes: list[str] | None
    pick: str = "uncertain"
    suggestion: Suggestion | None = field(default=None, compare=False)


class Journal:
    """Append-only JSON lines of what the reviewer did; replayed to resume."""

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path is not None else None
        if self.path is not None:  # find out now, not at the first answer, that it cannot be written
            try:
                with open(self.path, "a", encoding="utf-8"):
                    pass
            except OSError as e:
                msg = f"cannot write the review journal {self.path}: {e}"
                raise InvalidInputError(msg, argument="journal") from None

    def append(self, record: dict[str, Any]) -> None:
        if self.path is None:
            return
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def replay(self) -> list[Action]:
        """The actions still standing (undos applied). A torn last line (a crash mid-write) is ignored."""
        if self.path is None or not self.path.exists():
            return []
        actions: list[Action] = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            op = rec.get("op") if isinstance(rec, dict) else None
            if op == "undo" and actions:
                actions.pop()
            elif op == "answer" and isinstance(rec.get("text"), str) and isinstance(rec.get("classes"), list):
                pick = "random" if rec.get("pick") == "random" else "uncertain"
                actions.append(Action(rec["text"], [str(c) for c in rec["classes"]], pick))
            elif op == "skip" and isinstance(rec.get("text"), str):
                actions.append(Action(rec["text"], None))
        return actions

    def remove(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)


def journal_path(model_path: str | os.PathLike[str]) -> Path:
    """Where a review of ``model_path`` keeps its answers until the model is saved."""
    p = Path(model_path)
    return p.with_name(p.name + ".review.jsonl")


def working_copy(base: Any, answers: list[Action]) -> Any:
    """A new classifier: ``base``'s settings, examples and descriptions plus the answers, sharing its
    backends and embedding cache (so training it embeds only the new texts, and ``base`` is untouched)."""
    from ..classifier import PromptClassifier
    from ..store import ExampleStore

    twin = PromptClassifier(**base.get_params())
    twin.progress = False
    twin._embedder = base._embedder
    twin.use_embedding_cache(base._cache)
    if "_llm" in base.__dict__:
        twin._llm = base._llm
    if "_tuned" in base.__dict__:  # keep the fine-tuned encoder: retraining the head must not re-tune it
        twin._tuned, twin.encoder_ = base._tuned, base.encoder_
        twin.finetune = False
    twin.distill = False  # nor distil it: the review loop retrains in seconds
    store = ExampleStore()
    for c in base._store.classes:
        store.add_class(c)
    store.extend(list(base._store), persist=False)
    twin._store = store
    twin.prompts_ = dict(getattr(base, "prompts_", {}))
    for a in answers:
        if a.classes:
            for c in a.classes:
                twin.add_data_to_class(c, a.text, meta={**REVIEW_META, "pick": a.pick})
    return twin


class ReviewSession:
    """Suggested texts from ``pool``, one at a time, for a person to label.

    Parameters
    ----------
    model : PromptClassifier
        A trained classifier (the base: it is not modified; ``finish`` returns the retrained copy).
    pool : list of str
        The texts to choose from.
    journal : str or path, optional
        Where answers are appended as they are made (``None``: kept in memory only).
    batch : int, default 10
        Suggestions asked for at a time.
    retrain_every : int, default 5
        Answers between background retrainings.
    explore : float, default 0.5
        Share of suggestions drawn at random (see ``PromptClassifier.suggest``).
    llm_link : Link, optional
        An escalation link (``LLMLink``) whose answer is shown beside the model's guess.
    """

    def __init__(
        self,
        model: Any,
        pool: list[str],
        *,
        journal: str | os.PathLike[str] | None = None,
        batch: int = 10,
        retrain_every: int = 5,
        llm_link: Any = None,
        explore: float = 0.5,
    ) -> None:
        model._check_fitted()
        if not pool:
            raise InvalidInputError("review needs texts to choose from, got none", argument="pool")
        self.base = model
        self.model = model
        self.pool = list(dict.fromkeys(pool))
        self.classes = [str(c) for c in model.classes_]
        self.multi_label = bool(model.multi_label)
        self.batch = batch
        self.retrain_every = retrain_every
        self.explore = explore
        self.llm_link = llm_link
        self.journal = Journal(journal)
        self.actions: list[Action] = []
        self.queue: deque[Suggestion] = deque()
        self.retrains = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._since_retrain = 0
        self._llm_answers: dict[str, str | None] = {}
        self.error: BaseException | None = None

    # -- state ------------------------------------------------------------------------------------
    @property
    def answers(self) -> list[Action]:
        return [a for a in self.actions if a.classes]

    @property
    def seen(self) -> set[str]:
        return {a.text for a in self.actions}

    def resume(self) -> int:
        """Replay the journal; returns how many answers it held."""
        self.actions = self.journal.replay()
        unknown = sorted({c for a in self.answers for c in a.classes} - set(self.classes))
        if unknown:
            raise InvalidInputError(
                f"{self.journal.path}: answers name classes not in the model: {unknown}", argument="journal"
            )
        if self.answers:
            self.model = self._trained(list(self.actions))
        return len(self.answers)

    def current(self) -> Suggestion | None:
        """The text to show now (``None``: the pool has nothing left to suggest)."""
        with self._lock:
            if not self.queue:
                self._refill()
            return self.queue[0] if self.queue else None

    def _refill(self) -> None:
        seen = self.seen
        rest = [t for t in self.pool if t not in seen]
        if rest:
            got = self.model.suggest(rest, n=self.batch, explore=self.explore)
            self.queue.extend(s for s in got if s.text not in seen)

    # -- what the reviewer does ---------------------------------------------------------------------
    def answer(self, classes: list[str] | str | None = None) -> Action:
        """Label the current text: ``None`` accepts the model's guess, else the class(es) given."""
        s = self._take()
        if classes is None:
            classes = s.guess
        chosen = [classes] if isinstance(classes, str) else list(classes)
        bad = sorted(set(chosen) - set(self.classes))
        if bad or not chosen or (not self.multi_label and len(chosen) != 1):
            self.queue.appendleft(s)
            raise InvalidInputError(
                f"answer {chosen}: expected {'one or more' if self.multi_label else 'one'} of {self.classes}",
                argument="classes",
            )
        record = {"op": "answer", "text": s.text, "classes": chosen, "pick": s.pick}
        return self._record(Action(s.text, chosen, s.pick, s), record)

    def skip(self) -> Action:
        s = self._take()
        return self._record(Action(s.text, None, s.pick, s), {"op": "skip", "text": s.text})

    def undo(self) -> Action | None:
        """Take back the last answer or skip; its text is shown again next."""
        with self._lock:
            if not self.actions:
                return None
            last = self.actions.pop()
            self.journal.append({"op": "undo"})
            if last.suggestion is not None:
                self.queue.appendleft(last.suggestion)
            else:  # from the journal of an earlier run: ask the current model again
                self.queue.appendleft(replace(suggestion_for(self.model, last.text), pick=last.pick))
            if last.classes:
                self._since_retrain = max(0, self._since_retrain - 1)
            return last

    def _take(self) -> Suggestion:
        s = self.current()
        if s is None:
            raise InvalidInputError("no text left to review", argument="pool")
        with self._lock:
            return self.queue.popleft()

    def _record(self, action: Action, record: dict[str, Any]) -> Action:
        self.journal.append(record)  # first: once on disk, a crash cannot lose it
        with self._lock:
            self.actions.append(action)
        if action.classes:
            self._since_retrain += 1
            if self._since_retrain >= self.retrain_every:
                self.retrain_in_background()
        return action

    # -- the LLM beside the model -------------------------------------------------------------------
    def llm_answer(self, s: Suggestion, *, wait: bool = False) -> str | None:
        """The escalation link's class for ``s`` (asked once; ``None`` while it is still thinking)."""
        if self.llm_link is None:
            return None
        if s.text not in self._llm_answers:
            self._llm_answers[s.text] = None
            t = threading.Thread(target=self._ask_llm, args=(s.text,), daemon=True)
            t.start()
            if wait:
                t.join()
        return self._llm_answers.get(s.text)

    def _ask_llm(self, text: str) -> None:
        from ..escalation.links import label_texts

        try:
            self._llm_answers[text] = label_texts(self.llm_link, [text], self.classes)[0]
        except Exception as e:  # an LLM failure must not end the review: show none
            log.warning("LLM suggestion failed: %s", e)

    # -- training -----------------------------------------------------------------------------------
    def _trained(self, actions: list[Action], **train_kwargs: Any) -> Any:
        return working_copy(self.base, [a for a in actions if a.classes]).train(**train_kwargs)

    def retrain_in_background(self) -> bool:
        """Start retraining on the answers so far unless a retraining is running; True if started."""
        if self._thread is not None and self._thread.is_alive():
            return False
        self._since_retrain = 0
        snapshot = list(self.actions)
        self._thread = threading.Thread(target=self._retrain, args=(snapshot,), daemon=True)
        self._thread.start()
        return True

    def _retrain(self, snapshot: list[Action]) -> None:
        try:
            model = self._trained(snapshot)
        except Exception as e:  # kept and reported: the reviewer keeps the old model
            self.error = e
            log.warning("background retraining failed: %s", e)
            return
        with self._lock:
            self.model = model
            self.retrains += 1
            # what is queued was ranked by the old model: keep the text on screen, re-rank the rest
            head = [self.queue.popleft()] if self.queue else []
            self.queue.clear()
            self.queue.extend(head)

    def wait(self) -> None:
        """Wait for a background retraining to finish."""
        if self._thread is not None:
            self._thread.join()

    def finish(self, path: str | os.PathLike[str] | None = None, *, unlabeled: list[str] | None = None) -> Any:
        """Train on every answer (self-training on ``unlabeled`` if given), save to ``path`` atomically,
        then drop the journal. Returns the trained classifier (the base model when nothing was answered)."""
        self.wait()
        if not self.answers and unlabeled is None:
            model = self.base
        else:
            model = self._trained(list(self.actions), **({"unlabeled": unlabeled} if unlabeled else {}))
            # the settings travel unchanged; the encoder was kept
            model.finetune, model.distill = self.base.finetune, self.base.distill
        if path is not None:
            model.save(path)
        self.journal.remove()
        return model
