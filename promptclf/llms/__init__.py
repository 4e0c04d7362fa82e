"""LLM backends: a base class with one abstract method (``generate_json``) and a registry."""

from .base import DEFAULT_LLM, LLM, MalformedOutput, Request, Usage, get_llm, parse_json_object, register_llm

__all__ = ["DEFAULT_LLM", "LLM", "MalformedOutput", "Request", "Usage", "get_llm", "parse_json_object", "register_llm"]


def __getattr__(name: str):  # lazy: importing the package loads neither llama.cpp nor openai
    if name == "LlamaCppLLM":
        from .local import LlamaCppLLM

        return LlamaCppLLM
    if name == "OpenAILLM":
        from .hosted import OpenAILLM

        return OpenAILLM
    raise AttributeError(name)
