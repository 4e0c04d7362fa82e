"""Dynamic micro-batching: concurrent requests are embedded together.

Each request's texts join a queue; one worker takes what is queued, up to ``max_batch`` texts, waiting
at most ``max_wait_ms`` after the first arrives for more, and predicts the lot in one call on a
thread (ONNX Runtime releases the GIL). Up to ``concurrency`` batches run at once: with a
single-threaded session per batch, one batch embeds while the next is gathered and the last one's
answers are written, instead of every core waiting on the event loop between batches (measured in
bench/serve.py). A request is answered when its last text is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class _Job:
    texts: list[str]
    future: asyncio.Future
    parts: dict[int, np.ndarray] = field(default_factory=dict)  # by first text: batches may finish out of order
    done: int = 0  # texts whose batch has finished
    tag: Any = None


class ModelChanged(RuntimeError):
    """A request spanning two batches met two models (a reload in between); it is safe to retry."""


class MicroBatcher:
    """Gathers texts from concurrent callers into batches for ``predict(texts) -> proba``.

    Parameters
    ----------
    predict : callable
        Texts in, ``(rows, tag)`` out: an array with one row per text, and what made them (the
        model; a request split over two batches must get both from the same one). Run on a thread.
    max_batch : int
        Most texts per call of ``predict`` (a request larger than this is split).
    max_wait_ms : float
        How long the first text of a batch waits for others to join.
    on_batch : callable, optional
        Called with each batch's size (for metrics).
    arriving : callable, optional
        How many requests might still join (received, not yet submitted). When it says none, a
        batch runs at once instead of waiting ``max_wait_ms`` for company that cannot come: a lone
        request is not delayed.
    concurrency : int, default 1
        Most batches predicted at once (each on its own thread). A new batch is gathered only
        when one may run, so texts that arrive while every slot is busy join the next batch.
    """

    def __init__(
        self,
        predict: Callable[[list[str]], tuple[np.ndarray, Any]],
        *,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int], Any] | None = None,
        arriving: Callable[[], int] | None = None,
        concurrency: int = 1,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.predict = predict
        self.concurrency = concurrency
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.arriving = arriving
        self._queue: asyncio.Queue[_Job] | None = None
        self._task: asyncio.Task | None = None
        self.in_flight = 0

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        if self._task is None or self._queue is None:
            return
        await self._queue.join()
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def submit(self, texts: list[str]) -> tuple[np.ndarray, Any]:
        """``(rows, tag)`` for ``texts`` once their batch(es) ran; an exception from ``predict`` is raised here."""
        if self._queue is None:
            raise RuntimeError("the batcher is not running")
        if not texts:
            raise ValueError("no texts")
        job = _Job(list(texts), asyncio.get_running_loop().create_future())
        self.in_flight += 1
        try:
            await self._queue.put(job)
            return await job.future
        finally:
            self.in_flight -= 1

    async def _run(self) -> None:
        assert self._queue is not None
        slots = asyncio.Semaphore(self.concurrency)
        running: set[asyncio.Task] = set()  # strong references: the loop keeps only weak ones
        carry: tuple[_Job, int] | None = None  # a job whose texts did not all fit in the last batch
        while True:
            await slots.acquire()  # gather only when the batch can run: later arrivals join it meanwhile
            pending: list[tuple[_Job, int, int]] = []  # job, start, end (texts of this batch)
            size = 0
            if carry is None:
                try:
                    job = await self._queue.get()
                except asyncio.CancelledError:
                    slots.release()
                    raise
                carry = (job, 0)
            deadline = time.perf_counter() + self.max_wait
            while True:
                job, start = carry
                take = min(len(job.texts) - start, self.max_batch - size)
                pending.append((job, start, start + take))
                size += take
                carry = (job, start + take) if start + take < len(job.texts) else None
                if carry is not None or size >= self.max_batch:
                    break
                try:  # what is queued already joins at once (no timer task per request)
                    nxt = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    timeout = deadline - time.perf_counter()
                    if timeout <= 0 or (self.arriving is not None and self.arriving() <= 0):
                        break
                    try:
                        nxt = await asyncio.wait_for(self._queue.get(), timeout)
                    except asyncio.TimeoutError:
                        break
                carry = (nxt, 0)
            task = asyncio.get_running_loop().create_task(self._batch(pending, slots))
            running.add(task)
            task.add_done_callback(running.discard)

    async def _batch(self, pending: list[tuple[_Job, int, int]], slots: asyncio.Semaphore) -> None:
        """Predict one batch on a thread and hand each request its rows (or the error)."""
        assert self._queue is not None
        texts = [t for job, a, b in pending for t in job.texts[a:b]]
        try:
            proba, tag = await asyncio.to_thread(self.predict, texts)
            error = None
        except Exception as e:  # handed to each waiting request
            proba, tag, error = None, None, e
        finally:
            slots.release()
        if self.on_batch is not None:
            self.on_batch(len(texts))
        offset = 0
        for job, a, b in pending:
            if job.future.done():  # the caller went away, or another part of it failed
                pass
            elif error is not None:
                job.future.set_exception(error)
            elif job.parts and tag is not job.tag:
                job.future.set_exception(ModelChanged("the model was reloaded while this request was split"))
            else:
                job.parts[a] = proba[offset : offset + (b - a)]
                job.tag = tag
            offset += b - a
            job.done += b - a
            if job.done == len(job.texts):
                if not job.future.done():
                    job.future.set_result((np.vstack([job.parts[k] for k in sorted(job.parts)]), job.tag))
                self._queue.task_done()
