"""Prompt templates for the three generation phases, in one place so users can override them.

``direct`` is the one-step alternative to generate-diversify-expand (``strategy="direct"``).
``system`` opens the JSON requests (summaries), ``system_plain`` the plain-text ones (examples).
``complete`` is the ``direct`` request for a base model (one without a chat template, such as the
packaged Gemma 3 270M): the text it continues, its example being what it writes up to the end of the
line or the quote the text opens; ``{listed}`` holds up to three of the user's examples, numbered and
quoted, and ``{next}`` the number after them.
Fields: ``{class_name}``, ``{description}``, ``{n}``, ``{examples}`` (a bulleted block, may be
empty), ``{summaries}`` (bulleted), ``{summary}``. Pass ``templates={"expand": "..."}`` to
``PromptClassifier`` to replace any of them.
"""

from __future__ import annotations

from collections.abc import Mapping

DEFAULT_TEMPLATES: dict[str, str] = {
    "system": "You write realistic, varied training data for a text classifier. You answer in JSON.",
    # for the example texts themselves, which are asked for as one line of plain text
    "system_plain": "You write realistic, varied training data for a text classifier. You answer with the text only.",
    "generate": (
        "Category: {class_name}\n"
        "Description: {description}\n"
        "{examples}"
        "Write {n} different short summaries (at most 10 words each) of texts that belong to this "
        "category. Each summary must be about something different."
    ),
    "diversify": (
        "Category: {class_name}\n"
        "Description: {description}\n"
        "Summaries so far:\n{summaries}\n"
        "Write {n} new summaries (at most 10 words each) of texts in this category that are similar "
        "in kind but substantially different in subject from the ones above."
    ),
    "direct": (
        "{description}\n"
        "{examples}"
        "Write one realistic example of such a text, one or two sentences. Only the text itself."
    ),
    # a base model does not follow instructions but continues text: a list of examples to go on with
    "complete": '{description}\n\nExamples:\n{listed}{next}. "',
    "expand": (
        "Category: {class_name}\n"
        "Description: {description}\n"
        "{examples}"
        "Summary: {summary}\n"
        "Write one complete, realistic text that fits the summary and clearly belongs to the "
        "category. Write only the text itself, one or two sentences, not a list."
    ),
}
# Placed where a template says {examples}; empty when the class has no examples yet.
EXAMPLES_BLOCK = "Examples of this category:\n{items}\n"


def resolve_templates(overrides: Mapping[str, str] | None) -> dict[str, str]:
    from ..errors import ConfigurationError

    out = dict(DEFAULT_TEMPLATES)
    for k, v in (overrides or {}).items():
        if k not in DEFAULT_TEMPLATES:
            raise ConfigurationError(f"unknown template {k!r}; known: {sorted(DEFAULT_TEMPLATES)}")
        if not isinstance(v, str) or not v.strip():
            raise ConfigurationError(f"template {k!r} must be a non-empty string")
        out[k] = v
    return out


def bullets(items: list[str]) -> str:
    return "\n".join(f"- {t}" for t in items)
