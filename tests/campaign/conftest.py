"""Fixtures for ``perface annotate`` tests: task files over real LFW / UTKFace images, servers on free ports.

Task files live in ``tmp_path``; the dataset root is ``$PERFACE_DATA`` itself (read only), so no image is
copied or linked into the repository.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from perface.campaign import CampaignConfig, create_app
from perface.campaign.app import listen


@pytest.fixture(scope="session")
def lfw_paths(data_root) -> list[str]:
    """30 LFW images of 30 different people (root-relative), in a fixed order."""
    people = sorted(p.name for p in (data_root / "lfw" / "images").iterdir() if p.is_dir())[::150][:30]
    out = []
    for person in people:
        first = sorted((data_root / "lfw" / "images" / person).iterdir())[0]
        out.append(first.relative_to(data_root).as_posix())
    assert len(out) == 30
    return out


def _write_tasks(path: Path, images: list[str], n: int, *, seed: int = 0) -> pd.DataFrame:
    """``n`` distinct triplets over ``images`` (seeded), written as CSV ``anchor,a,b``."""
    rng = np.random.default_rng(seed)
    rows, seen = [], set()
    for _ in range(100 * n):
        anchor, a, b = (images[int(i)] for i in rng.choice(len(images), size=3, replace=False))
        key = (anchor, frozenset((a, b)))
        if key not in seen:
            seen.add(key)
            rows.append((anchor, a, b))
        if len(rows) == n:
            break
    assert len(rows) == n, f"could not draw {n} distinct triplets"
    frame = pd.DataFrame(rows, columns=["anchor", "a", "b"])
    frame.to_csv(path, index=False)
    return frame


class ServerThread:
    """A campaign app under uvicorn in a background thread, on a free loopback port."""

    def __init__(self, config: CampaignConfig):
        import uvicorn

        self.app = create_app(config)
        self.campaign = self.app.state.campaign
        self.sock = listen("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", access_log=False))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
        self.campaign.store.close()


@pytest.fixture(scope="session")
def write_tasks():
    """``write_tasks(path, images, n)``: n distinct triplets over the images, written as CSV anchor,a,b."""
    return _write_tasks


@pytest.fixture(scope="session")
def serve_thread():
    """``with serve_thread(config) as server: server.url``."""
    return ServerThread


def _free_port() -> int:
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()
    return port


@contextmanager
def _server_process(args: list[str], port: int, log: Path, token: str | None = None):
    """``python -m perface annotate serve ARGS --port PORT`` as a child process (output to ``log``); yields the
    Popen once it answers ``/api/health``; SIGTERM at the end if still running."""
    cmd = [sys.executable, "-m", "perface", "annotate", "serve", *args, "--port", str(port)]
    with open(log, "a") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log, token)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, token: str | None = None, timeout: float = 60.0) -> None:
    headers = {"X-PerFace-Token": token} if token else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {Path(log).read_text()}")
        try:
            if httpx.get(f"{url}/api/health", headers=headers, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("server did not become healthy")


@pytest.fixture(scope="session")
def server_process():
    """``with server_process(args, port) as proc``: ``perface annotate serve`` as a child process, healthy."""
    return _server_process


@pytest.fixture(scope="session")
def free_port():
    """``free_port()``: a TCP port free on loopback right now."""
    return _free_port
