"""Escalation: what the classifier can't decide goes on to LLMs (chain ensembles, self-verification,
fusion), and what they answer can feed back into training."""

from .chain import Chain, ChainResult, RoutingReport
from .links import ClassifierLink, Link, LinkAnswers, LLMLink, label_texts

__all__ = ["Chain", "ChainResult", "ClassifierLink", "LLMLink", "Link", "LinkAnswers", "RoutingReport", "label_texts"]
