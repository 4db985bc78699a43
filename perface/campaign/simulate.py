"""Simulated annotators over HTTP: load tests and end-to-end checks of a running ``perface annotate`` server.

Each simulated annotator does what the judging page does: ``GET /api/next``, (optionally) fetches the three
images of the shown assignment, answers it with ``POST /api/judgments`` under a fresh submission id, and
repeats until its session is complete or nothing is left. Optionally a share of submissions is sent twice
with the same id (a retry / double click), which the server must store once.

Each annotator talks over its own keep-alive HTTP/1.1 connection, like a browser tab, with a minimal client
on asyncio streams (:class:`_Connection`) rather than httpx: on this 2-core machine httpx's AsyncClient spent
several milliseconds of CPU per request, so with 50 clients in one process the measured latency was the
client's own queueing, not the server's. The minimal client speaks just what the server answers (status
line, headers, ``content-length`` bodies).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import quote, urlsplit

__all__ = ["LoadResult", "run_annotators", "percentiles"]

#: ``choose(annotator, assignment) -> "left" | "right"``; ``assignment`` is the API's dict (id, image URLs).
Chooser = Callable[[str, dict], str]


@dataclass
class LoadResult:
    """What the simulated annotators did and how long the server took.

    Attributes:
        acknowledged: ``(annotator, assignment id, submission id, side)`` of every answer the server acknowledged
            (201 or 200), once per submission id.
        duplicates_sent: Submissions sent a second time with the same id.
        duplicates_acknowledged: Of those, answered 200 with ``duplicate: true``.
        refused: ``(annotator, assignment id, status, error)`` of answers refused with a 4xx.
        latency_ms: Per request kind (``next``, ``submit``, ``image``): seconds -> milliseconds of each request.
        completed: Annotators that reached the completion page, with their codes.
        elapsed_s: Wall time of the whole run.
        timed_out: The run hit ``time_limit_s`` before every annotator finished.
    """

    acknowledged: list[tuple[str, int, str, str]] = field(default_factory=list)
    duplicates_sent: int = 0
    duplicates_acknowledged: int = 0
    refused: list[tuple[str, int, int, str]] = field(default_factory=list)
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: {"next": [], "submit": [], "image": []})
    completed: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    timed_out: bool = False


def percentiles(values: list[float], qs=(50, 99)) -> dict[str, float | None]:
    """``{"p50": ..., "p99": ...}`` (nearest-rank on sorted values; None when empty)."""
    import numpy as np

    if not values:
        return {f"p{q}": None for q in qs}
    arr = np.sort(np.asarray(values, dtype=float))
    return {f"p{q}": float(np.percentile(arr, q, method="inverted_cdf")) for q in qs}


class _Connection:
    """One keep-alive HTTP/1.1 connection (reconnects once if the server closed it)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]):
        self.host, self.port = host, port
        self.extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.reader = self.writer = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
            self.reader = self.writer = None

    async def request(self, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
        for attempt in range(2):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            payload = b"" if body is None else json.dumps(body).encode()
            head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.extra}"
                    f"Content-Length: {len(payload)}\r\n"
                    + ("Content-Type: application/json\r\n" if body is not None else "") + "\r\n")
            try:
                self.writer.write(head.encode() + payload)
                raw = await self.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt:
                    raise
                continue
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length, close = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
            data = await self.reader.readexactly(length) if length else b""
            if close:
                await self.close()
            return status, data
        raise ConnectionError("no response")


async def _annotator(conn: _Connection, name: str, choose: Chooser, result: LoadResult, *,
                     max_answers: int | None, fetch_images: bool, retry_every: int, think_s: float, deadline: float,
                     counter: list[int], total: int | None, token_query: str) -> None:
    answered = 0
    try:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            status, raw = await conn.request("GET", f"/api/next?annotator={quote(name, safe='')}")
            result.latency_ms["next"].append((time.perf_counter() - t0) * 1e3)
            if status != 200:
                result.errors.append(f"{name}: next -> {status} {raw[:200]!r}")
                return
            data = json.loads(raw)
            if data["complete"]:
                result.completed[name] = data["completion_code"]
                return
            if not data["assignments"]:
                return
            if total is not None and counter[0] >= total:
                return
            if max_answers is not None and answered >= max_answers:
                return
            a = data["assignments"][0]
            if fetch_images:
                for key in ("anchor", "left", "right"):
                    t0 = time.perf_counter()
                    status, img = await conn.request("GET", a[key] + token_query)
                    result.latency_ms["image"].append((time.perf_counter() - t0) * 1e3)
                    if status != 200 or not img:
                        result.errors.append(f"{name}: image {a[key]} -> {status}")
            if think_s > 0:
                await asyncio.sleep(think_s)
            side = choose(name, a)
            body = {"annotator": name, "assignment": a["id"], "submission": secrets.token_hex(12), "side": side,
                    "response_ms": 800.0}
            counter[0] += 1
            sends = 2 if retry_every and counter[0] % retry_every == 0 else 1
            for attempt in range(sends):
                t0 = time.perf_counter()
                status, raw = await conn.request("POST", "/api/judgments", body)
                result.latency_ms["submit"].append((time.perf_counter() - t0) * 1e3)
                if attempt == 0:
                    if status in (200, 201):
                        result.acknowledged.append((name, a["id"], body["submission"], side))
                        answered += 1
                    else:
                        result.refused.append((name, a["id"], status, raw[:200].decode("utf-8", "replace")))
                        break
                else:
                    result.duplicates_sent += 1
                    if status == 200 and json.loads(raw).get("duplicate"):
                        result.duplicates_acknowledged += 1
                    else:
                        result.errors.append(f"{name}: retry of {body['submission']} -> {status} {raw[:200]!r}")
    finally:
        await conn.close()


async def _run(base_url: str, names: list[str], choose: Chooser, *, token: str | None, max_answers: int | None,
               total: int | None, fetch_images: bool, retry_every: int, think_s: float, time_limit_s: float
               ) -> LoadResult:
    url = urlsplit(base_url)
    if url.scheme != "http" or not url.hostname:
        raise ValueError(f"base URL must be http://HOST:PORT (got {base_url!r})")
    headers = {"X-PerFace-Token": token} if token else {}
    token_query = f"?token={quote(token, safe='')}" if token else ""
    result = LoadResult()
    start = time.monotonic()
    deadline = start + time_limit_s
    counter = [0]
    tasks = [asyncio.create_task(_annotator(_Connection(url.hostname, url.port or 80, headers), n, choose, result,
                                            max_answers=max_answers, fetch_images=fetch_images,
                                            retry_every=retry_every, think_s=think_s, deadline=deadline,
                                            counter=counter, total=total, token_query=token_query))
             for n in names]
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    result.errors.extend(f"{n}: {type(o).__name__}: {o}" for n, o in zip(names, outcomes) if isinstance(o, BaseException))
    result.elapsed_s = time.monotonic() - start
    result.timed_out = time.monotonic() >= deadline
    return result


def run_annotators(base_url: str, names: list[str], choose: Chooser, *, token: str | None = None,
                   max_answers: int | None = None, total: int | None = None, fetch_images: bool = True,
                   retry_every: int = 0, think_s: float = 0.0, time_limit_s: float = 600.0) -> LoadResult:
    """Run one simulated annotator per name, all at once, against ``base_url`` (e.g. ``http://127.0.0.1:8000``).

    Args:
        choose: Picks the side for each assignment.
        max_answers: Per annotator, stop after this many answers (default: until the session is complete).
        total: Stop starting new answers once this many were started overall.
        fetch_images: Fetch the three images of each assignment before answering, as a browser does.
        retry_every: Send every N-th submission twice with the same submission id (0: never).
        think_s: Pause before each answer.
        time_limit_s: Stop starting new requests after this.
    """
    return asyncio.run(_run(base_url.rstrip("/"), list(names), choose, token=token, max_answers=max_answers,
                            total=total, fetch_images=fetch_images, retry_every=retry_every, think_s=think_s,
                            time_limit_s=time_limit_s))
