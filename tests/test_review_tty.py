"""``promptclf review`` driven through a real pseudo-terminal (pexpect), with the packaged MiniLM:
accept, pick, skip, undo, quit; Ctrl-C midway; a killed session resumed. The saved model must hold
every answer given."""

from __future__ import annotations

import os
import re
import signal
import sys

import pytest

from promptclf import PromptClassifier
from promptclf.review.session import Journal, journal_path

pexpect = pytest.importorskip("pexpect")
pytestmark = pytest.mark.integration

TOPICS = {
    "business": ["the company beat profit forecasts", "stocks fell sharply", "the bank raised rates"],
    "sports": ["the team won the match", "a late goal in the final", "the runner set a record"],
}
POOL = [
    "shares rallied after the merger news",
    "the coach was sacked after the defeat",
    "the striker signed a new contract worth millions",
    "quarterly revenue missed expectations",
    "the olympic champion retired",
    "a sponsorship deal for the stadium",
    "the club's owners sold their stake to investors",
    "inflation hit a ten year high",
    "the tennis final went to five sets",
    "the startup raised a new funding round",
    "ticket prices for the cup final doubled",
    "the goalkeeper saved a penalty",
]
PROMPT = "answer: "


@pytest.fixture
def model(tmp_path):
    clf = PromptClassifier(progress=False)
    for c, xs in TOPICS.items():
        clf.add_data_to_class(c, xs)
    path = tmp_path / "m.clf"
    clf.train().save(path)
    (tmp_path / "pool.txt").write_text("\n".join(POOL) + "\n")
    return path


def _as_from_a_shell() -> None:
    # A shell starts a foreground command with Ctrl-C's signal at its default. pytest itself may run
    # with SIGINT ignored (a background job of a non-interactive shell: `make test &`, nohup, some CI
    # runners), and an ignored signal stays ignored across exec, where Python then installs no
    # KeyboardInterrupt handler: the Ctrl-C test would time out for a reason no user meets.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(model, *extra):
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120", "LINES": "40"}
    return pexpect.spawn(
        sys.executable,
        ["-m", "promptclf", "review", str(model), str(model.parent / "pool.txt"), *extra],
        env=env,
        encoding="utf-8",
        timeout=120,
        dimensions=(40, 120),
        preexec_fn=_as_from_a_shell,
    )


def reviewed(model) -> set[tuple[str, str]]:
    return {(e.text, e.class_name) for e in PromptClassifier.load(model)._store if e.meta.get("via") == "review"}


def standing(model) -> set[tuple[str, str]]:
    return {(a.text, c) for a in Journal(journal_path(model)).replay() if a.classes for c in a.classes}


def test_accept_pick_skip_undo_quit(model):
    child = spawn(model, "--retrain-every", "2", "--batch", "4")
    child.expect(PROMPT)
    screen = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", child.before)  # without colours
    assert "model:" in screen and "1 business" in screen and "2 sports" in screen
    child.sendline("")  # accept the guess
    child.expect(PROMPT)
    child.sendline("2")  # pick sports
    child.expect(PROMPT)
    child.sendline("s")  # skip
    child.expect(PROMPT)
    child.sendline("u")  # undo the skip: the same text again
    child.expect("undone")
    child.expect(PROMPT)
    child.sendline("9")  # not a class
    child.expect("not a choice")
    child.expect(PROMPT)
    child.sendline("1")  # pick business
    child.expect(PROMPT)
    answers = standing(model)  # on disk already, before any save
    assert len(answers) == 3 and sum(c == "sports" for _, c in answers) >= 1
    child.sendline("q")
    child.expect("saved")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert not journal_path(model).exists()
    assert reviewed(model) == answers


def test_ctrl_c_midway_keeps_every_answer(model):
    child = spawn(model, "--retrain-every", "1")
    for reply in ("1", "2"):
        child.expect(PROMPT)
        child.sendline(reply)
    child.expect(PROMPT)
    answers = standing(model)
    assert len(answers) == 2
    child.sendintr()
    child.expect("interrupted")
    child.expect("saved")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert reviewed(model) == answers


def test_a_killed_review_resumes_from_its_journal(model):
    before = model.read_bytes()
    child = spawn(model)
    child.expect(PROMPT)
    child.sendline("2")
    child.expect(PROMPT)
    answers = standing(model)
    child.kill(signal.SIGKILL)
    child.close()
    assert model.read_bytes() == before and len(answers) == 1  # nothing saved, the journal has it
    child = spawn(model)
    child.expect("resumed 1 answer")
    child.expect(PROMPT)
    child.sendline("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0 and reviewed(model) == answers
