"""Synthetic training data from class descriptions: prompt templates, filters and the three-phase pipeline."""

from .pipeline import GenerationContext, examples_per_class_for, generate_for_classes
from .templates import DEFAULT_TEMPLATES

__all__ = ["DEFAULT_TEMPLATES", "GenerationContext", "examples_per_class_for", "generate_for_classes"]
