"""Start a server subprocess on a free loopback port and wait until it answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(args: list[str], port: int, health: str, timeout: float = 120.0):
    log = tempfile.TemporaryFile()  # noqa: SIM115  (a pipe nobody reads would fill up and block a chatty server)
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"server exited: {log.read().decode(errors='replace')[-2000:]}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{health}", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start in time") from None
                time.sleep(0.3)
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=30)
        log.close()
