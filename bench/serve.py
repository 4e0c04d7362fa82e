"""Serving and scale-out (issue 13): `promptclf serve` under load, a soak with a reload, Ray Data.

    .venv/bin/python bench/serve.py [--part http|ray|all] [--no-write] [--soak-s 600] [--rows 100000]

The model: sst2 from the prompt (cached generated examples, packaged MiniLM, served as `load` serves
it: ONNX int8).
The server runs as its own process on 127.0.0.1; the client (aiohttp, asyncio) runs in this one, on the
same 2 cores, so the figures include the client's share of the CPU (aiohttp rather than httpx: its C
HTTP parser leaves the server more of the cores; `--client httpx` measures with httpx). Texts are short sst2 test
sentences, one per request. Figures are ratios to in-process `predict_proba` on the same texts in the
same run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np
from common import OUT, ROOT, machine, prompts, publish, read_rows, table

from promptclf import PromptClassifier

sys.path.insert(0, str(ROOT))
from tests.servers.process import free_port, serve

log = logging.getLogger("bench")


def model_file(path: Path) -> Path:
    clf = PromptClassifier(progress=False)
    clf.load_examples(OUT / "sst2-direct-n32.jsonl", include_pseudo=False)
    clf.prompt_train(prompts()["sst2"], generate=False)
    clf.save(path)
    return path


def texts() -> list[str]:
    return [r["text"] for r in read_rows("sst2", "test")]


class Client:
    """The load generator's HTTP client: aiohttp by default, httpx to compare (``--client``)."""

    kind = "aiohttp"

    def __init__(self, connections: int) -> None:
        self.connections = connections

    async def __aenter__(self) -> Client:
        if self.kind == "httpx":
            import httpx2 as httpx

            limits = httpx.Limits(max_connections=self.connections, max_keepalive_connections=self.connections)
            self._s, self._failure = httpx.AsyncClient(limits=limits, timeout=30), httpx.HTTPError
        else:
            conn = aiohttp.TCPConnector(limit=self.connections)
            self._s = aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=30))
            self._failure = aiohttp.ClientError
        await self._s.__aenter__()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._s.__aexit__(*exc)

    async def post(self, url: str, body: dict | None = None) -> int:
        """The status of a POST (the body read to its end); raises ``OSError`` on a transport failure."""
        try:
            if self.kind == "httpx":
                return (await self._s.post(url, json=body)).status_code
            async with self._s.post(url, json=body) as r:
                await r.read()
                return r.status
        except self._failure as e:
            raise OSError(str(e)) from e


async def closed_loop(url: str, pool: list[str], concurrency: int, seconds: float) -> dict:
    """``concurrency`` clients, each sending its next request when the last is answered."""
    lat: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    async with Client(concurrency) as client:

        async def worker(k: int) -> None:
            nonlocal errors
            i = k
            while time.perf_counter() < stop:
                t = time.perf_counter()
                status = await client.post(f"{url}/v1/predict", {"texts": [pool[i % len(pool)]]})
                lat.append(time.perf_counter() - t)
                errors += status != 200
                i += concurrency

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - start
    return _summary(lat, errors, elapsed)


async def open_loop(url: str, pool: list[str], rate: float, seconds: float, during=None) -> dict:
    """Requests at a fixed rate whatever the answers do (latency under a given load)."""
    lat: list[float] = []
    errors = 0
    statuses: dict[int, int] = {}
    async with Client(512) as client:

        async def one(i: int) -> None:
            nonlocal errors
            t = time.perf_counter()
            try:
                status = await client.post(f"{url}/v1/predict", {"texts": [pool[i % len(pool)]]})
                statuses[status] = statuses.get(status, 0) + 1
                errors += status != 200
            except OSError:
                errors += 1
            lat.append(time.perf_counter() - t)

        tasks = []
        start = time.perf_counter()
        n = int(rate * seconds)
        hooks = dict(during or {})
        for i in range(n):
            due = start + i / rate
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            for at in [a for a in hooks if now - start >= a]:
                tasks.append(asyncio.create_task(hooks.pop(at)(client)))
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    out = _summary(lat, errors, elapsed)
    out["statuses"] = statuses
    return out


def _summary(lat: list[float], errors: int, elapsed: float) -> dict:
    a = np.array(lat) * 1000
    return {
        "requests": len(lat),
        "per_s": len(lat) / elapsed,
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "errors": errors,
    }


def rss_mib(pid: int) -> float:
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def with_cpu(pid: int, run) -> dict:
    """``run()``'s figures plus the cores the server process and this (client) process used meanwhile."""
    import psutil

    server = psutil.Process(pid)
    s0, c0, t0 = sum(server.cpu_times()[:2]), time.process_time(), time.perf_counter()
    out = run()
    wall = time.perf_counter() - t0
    return out | {
        "server_cpu": (sum(server.cpu_times()[:2]) - s0) / wall,
        "client_cpu": (time.process_time() - c0) / wall,
    }


def in_process(model: Path, pool: list[str]) -> dict:
    clf = PromptClassifier.load(model)
    clf.predict_proba(pool[:64])
    t = time.perf_counter()
    clf.predict_proba(pool)
    whole = len(pool) / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(0, len(pool), 64):
        clf.predict_proba(pool[i : i + 64])
    b64 = len(pool) / (time.perf_counter() - t)
    return {"whole": whole, "batch64": b64}


def http_bench(model: Path, pool: list[str], seconds: float, soak_s: float) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["-m", "promptclf", "serve", str(model), "--port", str(port), "--allow-reload"]
    out: dict = {}
    with serve(args, port, "/readyz") as proc:
        out.update(closed_loops(proc.pid, url, pool, seconds))
        best = max(r["per_s"] for r in out.values())
        out["half"] = with_cpu(proc.pid, lambda: asyncio.run(open_loop(url, pool, best / 2, seconds)))
        out["half"]["rate"] = best / 2
        log.info("half load: %s", out["half"])

        # soak at half load, with a reload (the same file rewritten) half way
        async def reload(client):
            Path(model).write_bytes(Path(model).read_bytes())
            out["reload_status"] = await client.post(f"{url}/v1/reload")

        trace: list[float] = []

        async def sample(client):  # the server's memory once a minute, to tell a step from a trend
            trace.append(rss_mib(proc.pid))

        asyncio.run(open_loop(url, pool, best / 2, 20))  # settle before the first reading
        rss0 = rss_mib(proc.pid)
        hooks = {float(t): sample for t in range(60, int(soak_s), 60)} | {soak_s / 2 + 0.5: reload}
        soak = asyncio.run(open_loop(url, pool, best / 2, soak_s, during=hooks))
        rss1 = rss_mib(proc.pid)
        out["soak"] = soak | {"rss0": rss0, "rss1": rss1, "trace": trace, "seconds": soak_s, "rate": best / 2}
        log.info("soak: %s", out["soak"])
    # the same loads with one batch at a time on a two-threaded session (before --parallel-batches)
    port = free_port()
    args = ["-m", "promptclf", "serve", str(model), "--port", str(port), "--parallel-batches", "1"]
    with serve(args, port, "/readyz") as proc:
        serial = closed_loops(proc.pid, f"http://127.0.0.1:{port}", pool, seconds)
    out.update({f"serial {c}": r for c, r in serial.items()})
    return out


def closed_loops(pid: int, url: str, pool: list[str], seconds: float) -> dict[int, dict]:
    """After a warm-up, each concurrency's closed-loop figures with the server's and client's CPU."""
    asyncio.run(closed_loop(url, pool, 8, 3))
    out = {}
    for c in (1, 8, 64):
        out[c] = with_cpu(pid, lambda c=c: asyncio.run(closed_loop(url, pool, c, seconds)))
        log.info("%s, concurrency %d: %s", url, c, out[c])
    return out


def ray_bench(model: Path, rows: int) -> dict:
    import pandas as pd
    import ray

    from promptclf.integrations.ray import predict_dataset

    base = texts()
    data = [base[i % len(base)] + f" ({i})" for i in range(rows)]
    tmp = Path(tempfile.mkdtemp())
    pd.DataFrame({"text": data}).to_parquet(tmp / "in.parquet")
    (tmp / "in.txt").write_text("\n".join(data) + "\n")
    out: dict = {}
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "promptclf", "predict", str(model), str(tmp / "in.txt")],
        stdout=subprocess.DEVNULL,
        check=True,
    )
    out["cli"] = rows / (time.perf_counter() - t)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        for workers in (1, 2):
            ds = ray.data.read_parquet(str(tmp / "in.parquet"))
            t = time.perf_counter()
            n = 0
            # the default share: 1 of the 2 CPUs for the actors, the other for the parquet read tasks
            for batch in predict_dataset(ds, model, workers=workers, batch_size=256).iter_batches(batch_size=4096):
                n += len(batch["label"])
            assert n == rows
            out[workers] = rows / (time.perf_counter() - t)
            log.info("ray, %d worker(s): %.0f rows/s", workers, out[workers])
    finally:
        ray.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--soak-s", type=float, default=600)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--part", choices=["http", "ray", "all"], default="all", help="each writes its own section")
    ap.add_argument("--client", choices=["aiohttp", "httpx"], default="aiohttp", help="the load generator's client")
    args = ap.parse_args()
    Client.kind = args.client
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for name in ("httpx", "httpx2", "httpcore"):  # a line per request would cost the client CPU
        logging.getLogger(name).setLevel(logging.WARNING)
    model = model_file(Path(tempfile.mkdtemp()) / "sst2.clf")
    if args.part in ("http", "all"):
        publish("serve", http_section(model, args), not args.no_write)
    if args.part in ("ray", "all"):
        publish("serve-ray", ray_section(model, args), not args.no_write)


def http_section(model: Path, args: argparse.Namespace) -> str:
    pool = texts()
    local = in_process(model, pool)
    log.info("in process: %s", local)
    http = http_bench(model, pool, args.seconds, args.soak_s)

    def http_row(name: str, r: dict) -> list[object]:
        return [
            name, f"{r['per_s']:.0f}", f"{r['per_s'] / local['whole']:.2f}", f"{r['p50_ms']:.1f}",
            f"{r['p99_ms']:.1f}", r["errors"], f"{r['server_cpu']:.2f}", f"{r['client_cpu']:.2f}",
        ]  # fmt: skip

    rows = [http_row(f"HTTP, concurrency {c}", http[c]) for c in (1, 8, 64)]
    rows.append(http_row(f"HTTP, open loop at {http['half']['rate']:.0f} req/s (half the best)", http["half"]))
    rows.append(["in process, predict_proba(all texts)", f"{local['whole']:.0f}", "1.00", "", "", "", "", ""])
    rows.append(
        ["in process, batches of 64", f"{local['batch64']:.0f}", f"{local['batch64'] / local['whole']:.2f}", *[""] * 5]
    )
    rows += [
        http_row(f"HTTP, concurrency {c}, one batch at a time (`--parallel-batches 1`)", http[f"serial {c}"])
        for c in (1, 8, 64)
    ]
    s = http["soak"]
    soak_line = (
        f"Soak: {s['seconds'] / 60:.0f} minutes open loop at {s['rate']:.0f} requests/s, {s['requests']} requests, "
        f"{s['errors']} errors (statuses {s['statuses']}), p99 {s['p99_ms']:.1f} ms; server RSS {s['rss0']:.0f} -> "
        f"{s['rss1']:.0f} MiB ({(s['rss1'] / s['rss0'] - 1) * 100:+.1f}%); a reload half way answered "
        f"HTTP {http.get('reload_status')}, and no request failed around it. RSS once a minute (MiB): "
        + ", ".join(f"{v:.0f}" for v in s["trace"])
        + "."
    )
    minutes = (args.soak_s + 9 * args.seconds) / 60 + 1
    return (
        "## Serving (issue 13)\n\n"
        f"{time.strftime('%Y-%m-%d')}, {machine()}. Regenerate with `.venv/bin/python bench/serve.py --part http "
        f"--seconds {args.seconds:g} --soak-s {args.soak_s:g}{'' if args.client == 'aiohttp' else ' --client httpx'}`\n"
        f"(about {minutes:.0f} minutes, most of it the soak). `promptclf serve`\n"
        "(one worker, uvloop + httptools, ONNX int8 without thread spinning; micro-batches of up to 64 texts\n"
        "that wait up to 5 ms for company only while other requests are on their way; by default two\n"
        "batches at once, one thread each; the last rows: one at a time on two threads) on 127.0.0.1; the\n"
        f"asyncio client ({args.client}) shares the 2 cores with it. One short sst2 sentence per request;\n"
        f"{args.seconds:.0f} s per row. *ratio*: texts/s over in-process `predict_proba` of all texts at once.\n"
        "*server / client CPU*: cores each process used during the row (the two together are what 2 cores allow).\n\n"
        + table(["load", "texts/s", "ratio", "p50 ms", "p99 ms", "errors", "server CPU", "client CPU"], rows)
        + "\n\n"
        + soak_line
        + "\n"
    )


def ray_section(model: Path, args: argparse.Namespace) -> str:
    ray_figs = ray_bench(model, args.rows)
    ray_rows = [
        ["`promptclf predict` (one process, text file)", f"{ray_figs['cli']:.0f}", "1.00"],
        ["Ray Data, 1 worker (1 CPU)", f"{ray_figs[1]:.0f}", f"{ray_figs[1] / ray_figs['cli']:.2f}"],
        ["Ray Data, 2 workers (0.5 CPU each)", f"{ray_figs[2]:.0f}", f"{ray_figs[2] / ray_figs['cli']:.2f}"],
    ]
    return (
        "## Batch prediction on Ray (issue 13)\n\n"
        f"{time.strftime('%Y-%m-%d')}, {machine()}. Regenerate with `.venv/bin/python bench/serve.py --part ray "
        f"--rows {args.rows}` (about {args.rows * 3 / 600 / 60 + 1:.0f} minutes).\n"
        f"Ray Data, {args.rows:,} rows from parquet (the model of the serving section; a local\n"
        "`ray.init(num_cpus=2)`, start-up excluded), against the single-process CLI on the same texts\n"
        "as a text file:\n\n" + table(["engine", "rows/s", "ratio"], ray_rows) + "\n"
    )


if __name__ == "__main__":
    main()
