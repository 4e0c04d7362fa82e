"""The micro-batcher alone, on a real event loop with a deterministic predict function."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from promptclf.serving.batcher import MicroBatcher


def lengths(texts: list[str]) -> tuple[np.ndarray, str]:
    return np.array([[len(t)] for t in texts], dtype=float), "model"


async def one_request(arriving) -> tuple[float, np.ndarray]:
    batcher = MicroBatcher(lengths, max_batch=8, max_wait_ms=400, arriving=arriving)
    batcher.start()
    t = time.perf_counter()
    rows, _ = await batcher.submit(["abc"])
    elapsed = time.perf_counter() - t
    await batcher.stop()
    return elapsed, rows


def test_a_lone_request_does_not_wait_for_company():
    elapsed, rows = asyncio.run(one_request(lambda: 0))  # nobody else is on the way
    assert rows.tolist() == [[3.0]] and elapsed < 0.2


def test_a_batch_waits_while_requests_are_arriving():
    elapsed, rows = asyncio.run(one_request(lambda: 1))  # one more is received, not yet submitted
    assert rows.tolist() == [[3.0]] and elapsed >= 0.39
    elapsed, _ = asyncio.run(one_request(None))  # without the hint: the full wait, as before
    assert elapsed >= 0.39


def test_queued_requests_join_one_batch():
    async def main() -> list[int]:
        sizes: list[int] = []
        batcher = MicroBatcher(lengths, max_batch=8, max_wait_ms=50, on_batch=sizes.append, arriving=lambda: 0)
        batcher.start()
        answers = await asyncio.gather(*(batcher.submit(["x" * (i + 1)]) for i in range(20)))
        await batcher.stop()
        assert [int(r[0, 0]) for r, _ in answers] == [i + 1 for i in range(20)]
        return sizes

    assert asyncio.run(main()) == [8, 8, 4]  # queued before the batch ran: taken at once, up to max_batch
