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


def test_parallel_batches_run_at_once_and_a_split_request_is_reassembled_in_order():
    import threading

    running, most = [0], [0]
    lock = threading.Lock()
    first = threading.Event()

    def slow(texts: list[str]) -> tuple[np.ndarray, str]:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        if texts[0] == "a0":  # the first part of the split request finishes last
            first.wait(5)
        else:
            time.sleep(0.05)
            first.set()
        with lock:
            running[0] -= 1
        return np.array([[int(t[1:])] for t in texts], dtype=float), "model"

    async def main() -> tuple[np.ndarray, list[int]]:
        sizes: list[int] = []
        batcher = MicroBatcher(slow, max_batch=4, max_wait_ms=1, on_batch=sizes.append, concurrency=2)
        batcher.start()
        rows, _ = await batcher.submit([f"a{i}" for i in range(6)])  # two batches: 4 texts, then 2
        await batcher.stop()
        return rows, sizes

    rows, sizes = asyncio.run(main())
    assert rows[:, 0].tolist() == list(range(6))  # in the request's order though the second part came back first
    assert sizes == [2, 4]  # the order the batches finished in
    assert most[0] == 2


def test_one_batch_at_a_time_unless_asked():
    running, most = [0], [0]

    def slow(texts: list[str]) -> tuple[np.ndarray, str]:
        running[0] += 1
        most[0] = max(most[0], running[0])
        time.sleep(0.02)
        running[0] -= 1
        return lengths(texts)

    async def main() -> None:
        batcher = MicroBatcher(slow, max_batch=2, max_wait_ms=1)
        batcher.start()
        await asyncio.gather(*(batcher.submit(["xy"] * 3) for _ in range(4)))
        await batcher.stop()

    asyncio.run(main())
    assert most[0] == 1
