"""The HTTP server for a ``.clf``: FastAPI on uvicorn, Prometheus metrics, micro-batching, reload.

Endpoints: ``POST /v1/predict``, ``POST /v1/classify`` (Lamini's shape), ``GET /v1/model``,
``POST /v1/reload`` (when enabled), ``GET /healthz``, ``GET /readyz``, ``GET /metrics``, and the
OpenAPI docs at ``/docs``. A bad request is a 4xx whose JSON body names the problem; nothing the
client sends produces a 500 or a traceback.
"""

import asyncio
import logging
import os
import signal
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._cpu import available_cpus
from .._version import __version__
from ..errors import PromptClfError
from .batcher import MicroBatcher, ModelChanged

log = logging.getLogger("promptclf")


class TextTooLong(ValueError):
    """A text over ``--max-text-chars``: answered with HTTP 413."""


@dataclass
class ServerSettings:
    """What ``promptclf serve`` takes; every limit is a flag there."""

    model: str
    embedder: str | None = None
    max_batch: int = 64
    max_wait_ms: float = 5.0
    max_texts: int = 256
    max_text_chars: int = 20_000
    allow_reload: bool = False
    # batches predicted at once (see MicroBatcher). None: one, on sessions that use every core; serve()
    # turns it into one per CPU of the worker, each on a one-thread session, since it sets the threads
    parallel_batches: int | None = None


@dataclass
class LoadedModel:
    classifier: Any
    path: str
    sha256: str
    loaded_at: float = field(default_factory=time.time)

    def info(self) -> dict[str, Any]:
        clf = self.classifier
        s = clf.training_summary_
        return {
            "path": self.path,
            "sha256": self.sha256,
            "classes": [str(c) for c in clf.classes_],
            "multi_label": bool(clf.multi_label),
            "embedder": dict(clf.embedder_spec_),
            "serving_embedder": clf._emb.to_spec(),
            "promptclf_version": __version__,
            "trained_at": s.get("trained_at"),
            "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.loaded_at)),
            "calibration": {k: v for k, v in clf.calibration_.items() if k != "precision"},
        }


def load_model(path: str, embedder: str | None, max_batch: int = 1) -> LoadedModel:
    """Load and check a ``.clf``: it must predict before it serves anything.

    With a local embedder the check is the largest call a request can cause (as many texts as fill
    the window as one embedder call takes, at most ``max_batch``), so the model's buffers reach their
    full size now and memory stays flat while serving instead of stepping up the first time long
    texts come (a 10-minute soak otherwise read +6% RSS, all of it one step). A hosted embedder gets
    one short text.
    """
    from ..classifier import PromptClassifier

    clf = PromptClassifier.load(path, embedder=embedder)
    clf.progress = False
    rows = min(max_batch, getattr(clf._emb, "batch_size", max_batch))
    clf.predict_proba(warm_up_texts(clf._emb.window(), rows))  # a broken model fails here
    return LoadedModel(clf, str(path), clf.model_sha256_)  # the whole file's, hashed as it was read


def release_memory() -> None:
    """Collect the replaced model and hand freed heap back to the OS (glibc's ``malloc_trim``).

    A reload loads the new model on a worker thread, whose allocations land in a malloc arena of
    that thread; freed, that memory stays with the process unless trimmed, and a server's RSS then
    steps up with every reload although nothing is leaked. Elsewhere than glibc this only collects.
    """
    import ctypes
    import ctypes.util
    import gc

    gc.collect()
    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS, Windows): nothing to trim
        pass


def release_when_freed(model: weakref.ref, timeout_s: float = 120.0, poll_s: float = 0.05) -> None:
    """``release_memory`` once the replaced model is collected (on a thread of its own).

    Under load a batch in flight still holds the old model when a reload drops it, so the trim the
    reload makes comes before the model's memory is freed (in one process: 40-54 MiB of a fine-tuned
    model kept per reload until a later trim).
    """

    def wait() -> None:
        end = time.monotonic() + timeout_s
        while model() is not None and time.monotonic() < end:
            time.sleep(poll_s)
        release_memory()

    threading.Thread(target=wait, name="promptclf-release", daemon=True).start()


def warm_up_texts(window: Any, n: int) -> list[str]:
    """``n`` distinct texts that fill ``window`` (one short text without a known window)."""
    if window is None:
        return ["promptclf readiness check"]
    filler = " ".join(["a"] * (window.max_tokens - 1))
    return [f"{filler} {i}" for i in range(n)]


class Metrics:
    """Prometheus metrics in a registry of this app's own (several apps can live in one process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "promptclf_requests", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=self.registry
        )
        self.errors = Counter(
            "promptclf_errors", "Requests answered with an error, by kind", ["kind"], registry=self.registry
        )
        self.latency = Histogram(
            "promptclf_request_seconds",
            "Request latency",
            ["endpoint"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.batch = Histogram(
            "promptclf_batch_texts",
            "Texts per model call (micro-batch size)",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.texts = Counter("promptclf_texts", "Texts classified", registry=self.registry)
        self.reloads = Counter("promptclf_reloads", "Model reloads by result", ["result"], registry=self.registry)
        self.in_flight = Gauge("promptclf_in_flight_requests", "Requests being answered", registry=self.registry)
        self.model = Info("promptclf_model", "The model being served", registry=self.registry)

    def set_model(self, m: LoadedModel) -> None:
        self.model.info({"sha256": m.sha256, "path": m.path, "promptclf_version": __version__})


def create_app(settings: ServerSettings, model: LoadedModel | None = None):
    """The FastAPI app for ``settings``; the model is loaded (and checked) now unless given."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field
    from starlette.exceptions import HTTPException as StarletteHTTPException

    state: dict[str, Any] = {
        "model": model or load_model(settings.model, settings.embedder, settings.max_batch),
        "ready": False,
    }
    metrics = Metrics()
    metrics.set_model(state["model"])
    reload_lock = threading.Lock()

    def predict(texts: list[str]) -> tuple[np.ndarray, LoadedModel]:
        m = state["model"]  # one model per batch, even if a reload swaps it meanwhile
        return m.classifier.predict_proba(texts), m

    http_in_flight = [0]  # requests being answered (the Measure middleware counts them)
    batcher = MicroBatcher(
        predict,
        max_batch=settings.max_batch,
        max_wait_ms=settings.max_wait_ms,
        on_batch=metrics.batch.observe,
        # None: one batch at a time, as the sessions of this process use every core it may run on
        concurrency=1 if settings.parallel_batches is None else settings.parallel_batches,
        # received but not yet in the batcher: the only requests a waiting batch could still gain
        arriving=lambda: http_in_flight[0] - batcher.in_flight,
    )

    texts_field = Field(
        ...,
        min_length=1,
        max_length=settings.max_texts,
        description=f"1 to {settings.max_texts} texts, each at most {settings.max_text_chars} characters",
    )

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        texts: list[str] = texts_field
        abstain: bool = Field(False, description="null label where the probability is under the class threshold")

    class ClassifyRequest(BaseModel):
        model_config = ConfigDict(extra="forbid", strict=True)
        texts: list[str] = texts_field
        top_n: int | None = Field(None, ge=1, description="keep the n most likely classes")
        threshold: float | None = Field(None, ge=0.0, le=1.0, description="keep classes at least this likely")

    async def lifespan(app):
        batcher.start()
        state["ready"] = True
        loop = asyncio.get_running_loop()
        if settings.allow_reload and threading.current_thread() is threading.main_thread():
            try:
                loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(asyncio.to_thread(do_reload)))
            except (NotImplementedError, RuntimeError):  # pragma: no cover - not on this platform
                pass
        yield
        state["ready"] = False
        await batcher.stop()

    app = FastAPI(
        title="promptclf",
        version=__version__,
        description="A text classifier trained from a prompt, served from its .clf file.",
        lifespan=lifespan,
    )

    def error(status: int, kind: str, message: str, detail: Any = None) -> JSONResponse:
        metrics.errors.labels(kind).inc()
        body: dict[str, Any] = {"error": {"type": kind, "message": message}}
        if detail is not None:
            body["error"]["detail"] = detail
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        problems = []
        for e in exc.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            problems.append({"field": where, "problem": e.get("msg", "invalid")})
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return error(400, "invalid_json", "the body is not valid JSON", problems)
        message = "; ".join(f"{p['field']}: {p['problem']}" for p in problems[:5])
        return error(422, "invalid_request", message or "invalid request", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, "http", str(exc.detail))

    @app.exception_handler(TextTooLong)
    async def too_long(request: Request, exc: TextTooLong):
        return error(413, "text_too_long", str(exc))

    @app.exception_handler(ModelChanged)
    async def changed(request: Request, exc: ModelChanged):
        return error(503, "model_changed", str(exc) + "; retry")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):  # a bug of ours: logged, never a traceback out
        log.exception("unexpected error answering %s", request.url.path)
        return error(500, "internal", f"internal error ({type(exc).__name__}); see the server log")

    class Measure:
        """Request counts, latency and in-flight gauge. Plain ASGI: Starlette's ``BaseHTTPMiddleware``
        (``@app.middleware``) runs each request in a task group with memory streams, which cost the
        event loop about as much as the rest of a request under load."""

        def __init__(self, app) -> None:
            self.app = app

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] != "http":
                return await self.app(scope, receive, send)
            start = time.perf_counter()
            status = 500  # what the client gets if nothing was sent (uvicorn answers 500 then)

            async def sending(message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            metrics.in_flight.inc()
            http_in_flight[0] += 1
            try:
                await self.app(scope, receive, sending)
            finally:
                http_in_flight[0] -= 1
                metrics.in_flight.dec()
                route = scope.get("route")
                path = getattr(route, "path", "other")
                metrics.requests.labels(path, str(status)).inc()
                metrics.latency.labels(path).observe(time.perf_counter() - start)

    app.add_middleware(Measure)

    async def run(texts: list[str]) -> tuple[np.ndarray, LoadedModel]:
        for i, t in enumerate(texts):
            if len(t) > settings.max_text_chars:
                raise TextTooLong(
                    f"texts[{i}] has {len(t)} characters; the limit is {settings.max_text_chars} (--max-text-chars)"
                )
        proba, m = await batcher.submit(texts)
        metrics.texts.inc(len(texts))
        return proba, m

    @app.post("/v1/predict")
    async def predict_endpoint(body: PredictRequest):
        """A label and probabilities per text (``label`` is null under the threshold with ``abstain``)."""
        proba, m = await run(body.texts)
        clf = m.classifier
        labels = clf.predict_from_proba(proba, abstain=body.abstain)
        classes = [str(c) for c in clf.classes_]
        # built of str/float/None already: a JSONResponse skips FastAPI's jsonable_encoder walk
        return JSONResponse(
            {
                "model": m.sha256,
                "predictions": [
                    {"label": lab, "prob": float(row.max()), "probs": dict(zip(classes, map(float, row)))}
                    for lab, row in zip(labels, proba)
                ],
            }
        )

    @app.post("/v1/classify")
    async def classify_endpoint(body: ClassifyRequest):
        """Per text, classes with probabilities, most likely first (Lamini's shape)."""
        proba, m = await run(body.texts)
        return JSONResponse(
            {
                "model": m.sha256,
                "results": m.classifier.classify_from_proba(proba, top_n=body.top_n, threshold=body.threshold),
            }
        )

    @app.get("/v1/model")
    async def model_endpoint():
        """Classes, embedder, versions, the file's sha256, when it was trained and loaded."""
        return state["model"].info()

    def do_reload() -> dict[str, Any]:
        with reload_lock:
            try:
                new = load_model(settings.model, settings.embedder, settings.max_batch)
            except (PromptClfError, OSError, ValueError) as e:
                metrics.reloads.labels("failed").inc()
                log.error("reload of %s failed, still serving %s: %s", settings.model, state["model"].sha256[:12], e)
                return {"reloaded": False, "error": str(e), "serving": state["model"].sha256}
            old, state["model"] = state["model"], new
            metrics.set_model(new)
            metrics.reloads.labels("ok").inc()
            log.info("reloaded %s (%s)", settings.model, new.sha256[:12])
            replaced = weakref.ref(old.classifier)
            del old
            release_memory()
            if replaced() is not None:  # a batch in flight still holds it: trim again once it is freed
                release_when_freed(replaced)
            return {"reloaded": True, "serving": new.sha256}

    @app.post("/v1/reload")
    async def reload_endpoint():
        """Load the model file again; a file that does not load keeps the old model serving."""
        if not settings.allow_reload:
            return error(403, "reload_disabled", "reload is off; start the server with --allow-reload")
        result = await asyncio.to_thread(do_reload)
        if not result["reloaded"]:
            return error(409, "reload_failed", result["error"], {"serving": result["serving"]})
        return result

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        if not state["ready"]:
            return error(503, "not_ready", "starting or shutting down")
        return {"status": "ready", "model": state["model"].sha256}

    @app.get("/metrics")
    async def metrics_endpoint():
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.state.promptclf = state
    app.state.metrics = metrics
    return app


ENV = "PROMPTCLF_SERVE_SETTINGS"


_PRELOADED: dict[str, LoadedModel] = {}


def app_from_env():
    """The app factory uvicorn calls (in each worker with ``--workers N``): settings come in an
    environment variable; in the process that checked the model already, that copy is used."""
    import json

    raw = os.environ[ENV]
    return create_app(ServerSettings(**json.loads(raw)), _PRELOADED.pop(raw, None))


def serve(
    settings: ServerSettings, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, drain_s: float = 30.0
) -> None:
    """Run the server until SIGINT/SIGTERM; in-flight requests finish first (uvicorn's graceful
    shutdown), for at most ``drain_s`` seconds: a request still running then is cut off."""
    import json
    from dataclasses import asdict, replace

    import uvicorn

    # each worker process gets its share of the CPUs, split between the batches it runs at once: what
    # is left for one batch is how many of its own parts run side by side (OnnxEmbedder.embed_batch);
    # inherited by --workers
    share = max(1, available_cpus() // workers)
    if settings.parallel_batches is None:
        settings = replace(settings, parallel_batches=share)
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, share // max(1, settings.parallel_batches))))
    # fail before binding the port, with a clear message
    model = load_model(settings.model, settings.embedder, settings.max_batch)
    os.environ[ENV] = json.dumps(asdict(settings))
    if workers == 1:
        _PRELOADED[os.environ[ENV]] = model
    # not kept here: this frame lives as long as the server, so after a reload it would hold the first
    # model for good (a fine-tuned one: ~155 MiB of RSS, BENCHMARKS.md "Serving")
    del model
    uvicorn.run(
        "promptclf.serving.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        timeout_graceful_shutdown=drain_s,
    )
