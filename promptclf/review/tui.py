"""``promptclf review``: the interactive screen over a ``ReviewSession``, drawn with rich.

One text at a time with the model's guess (and an LLM's, when one is given) and the classes as
numbered keys. Enter accepts the guess, a number picks a class (several numbers for a multi-label
model), ``s`` skips, ``u`` undoes, ``q`` trains, saves and quits. Ctrl-C does the same as ``q``;
a second Ctrl-C leaves at once, and the answers wait in the journal for the next run.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import InvalidInputError
from .session import ReviewSession, journal_path

HELP = "[b]enter[/b] accept  [b]1-{k}[/b] pick{multi}  [b]s[/b] skip  [b]u[/b] undo  [b]q[/b] save and quit"


def parse(reply: str, n_classes: int, multi_label: bool) -> tuple[str, list[int]]:
    """A reply as (command, class numbers): ``("accept", [])``, ``("pick", [i, ...])`` (0-based),
    ``("skip"|"undo"|"quit", [])`` or ``("bad", [])``."""
    r = reply.strip().lower()
    if r == "":
        return "accept", []
    if r in ("s", "u", "q"):
        return {"s": "skip", "u": "undo", "q": "quit"}[r], []
    parts = r.replace(",", " ").split()
    if not all(p.isdigit() for p in parts) or (len(parts) > 1 and not multi_label):
        return "bad", []
    picks = [int(p) - 1 for p in parts]
    if any(not 0 <= i < n_classes for i in picks):
        return "bad", []
    return "pick", list(dict.fromkeys(picks))


def _guess_text(guess: Any) -> str:
    if isinstance(guess, list):
        return ", ".join(guess) if guess else "(no class)"
    return str(guess)


def run_review(
    model_path: str | os.PathLike[str],
    session: ReviewSession,
    *,
    unlabeled: list[str] | None = None,
    console: Any = None,
) -> int:
    """Drive ``session`` in the terminal until the pool is done or the reviewer quits; save the model.

    Returns the number of answers saved.
    """
    from rich.console import Console
    from rich.panel import Panel
    from rich.prompt import Prompt
    from rich.text import Text

    console = console or Console(highlight=False)
    k = len(session.classes)
    keys = "   ".join(f"[b]{i + 1}[/b] {c}" for i, c in enumerate(session.classes))
    help_line = HELP.format(k=k, multi=" (several: 1 3)" if session.multi_label else "")
    resumed = session.resume()
    if resumed:
        console.print(f"resumed {resumed} answer(s) from {journal_path(model_path)}")
    message = ""
    try:
        while True:
            s = session.current()
            if s is None:
                console.print("[b]nothing left to review[/b] in these texts")
                break
            llm = session.llm_answer(s, wait=True) if session.llm_link is not None else None
            for nxt in list(session.queue)[1:3]:  # ask ahead while the reviewer reads
                session.llm_answer(nxt)
            busy = session._thread is not None and session._thread.is_alive()
            status = f"{len(session.answers)} answered · {session.retrains} retraining(s)" + (
                " · retraining…" if busy else ""
            )
            console.rule(f"review {status}")
            console.print(Panel(Text(s.text), expand=True))
            line = f"model: [b]{_guess_text(s.guess)}[/b] ({s.confidence:.2f})"
            line += "  [dim](a random pick: it calibrates the thresholds)[/dim]" if s.pick == "random" else ""
            if session.llm_link is not None:
                line += f"    LLM: [b]{llm if llm is not None else '(no answer)'}[/b]"
            console.print(line)
            console.print(keys)
            console.print(help_line)
            if message:
                console.print(message)
                message = ""
            reply = Prompt.ask("answer", console=console, default="", show_default=False)
            cmd, picks = parse(reply, k, session.multi_label)
            if cmd == "quit":
                break
            if cmd == "bad":
                message = f"[red]not a choice: {reply!r}[/red]"
            elif cmd == "accept":
                if isinstance(s.guess, list) and not s.guess:
                    message = "[red]the model gave no class: pick one or more numbers[/red]"
                else:
                    session.answer()
            elif cmd == "pick":
                session.answer([session.classes[i] for i in picks])
            elif cmd == "skip":
                session.skip()
            elif cmd == "undo":
                last = session.undo()
                message = "nothing to undo" if last is None else f"undone: {last.text[:60]!r}"
    except (KeyboardInterrupt, EOFError):
        console.print("\ninterrupted: saving the answers (Ctrl-C again leaves them in the journal)")
    n = len(session.answers)
    with console.status(f"training on {n} answer(s) and saving {model_path}…"):
        session.finish(model_path, unlabeled=unlabeled)
    console.print(f"saved {model_path}: {n} reviewed answer(s)")
    return n


def check_terminal() -> None:
    import sys

    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InvalidInputError(
            "review is interactive and needs a terminal; for a team, use --export suggestions.csv and "
            "`promptclf add MODEL --from labels.csv`",
            argument="stdin",
        )
