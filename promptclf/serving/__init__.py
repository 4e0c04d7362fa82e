"""Serving a ``.clf`` over HTTP (``promptclf serve``): FastAPI on uvicorn with micro-batching and metrics."""

from .app import ServerSettings, create_app, serve

__all__ = ["ServerSettings", "create_app", "serve"]
