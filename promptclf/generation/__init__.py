"""Synthetic training data from class descriptions: prompt templates, filters and the three-phase pipeline."""

from .pipeline import GenerationContext, generate_for_classes
from .templates import DEFAULT_TEMPLATES

__all__ = ["DEFAULT_TEMPLATES", "GenerationContext", "generate_for_classes"]
