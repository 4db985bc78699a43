"""Simulated annotators over HTTP: load tests and end-to-end checks of a running ``perface annotate`` server.

Each simulated annotator does what the judging page does: ``GET /api/next``, (optionally) fetches the three
images of the shown assignment, answers it with ``POST /api/judgments`` under a fresh submission id, and
repeats until its session is complete or nothing is left. Optionally a share of submissions is sent twice
with the same id (a retry / double click), which the server must store once.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Callable

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


async def _annotator(client, name: str, choose: Chooser, result: LoadResult, *, max_answers: int | None,
                     fetch_images: bool, retry_every: int, think_s: float, deadline: float, counter: list[int],
                     total: int | None) -> None:
    answered = 0
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        r = await client.get("/api/next", params={"annotator": name})
        result.latency_ms["next"].append((time.perf_counter() - t0) * 1e3)
        if r.status_code != 200:
            result.errors.append(f"{name}: next -> {r.status_code} {r.text[:200]}")
            return
        data = r.json()
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
                img = await client.get(a[key])
                result.latency_ms["image"].append((time.perf_counter() - t0) * 1e3)
                if img.status_code != 200:
                    result.errors.append(f"{name}: image {a[key]} -> {img.status_code}")
        if think_s > 0:
            await asyncio.sleep(think_s)
        side = choose(name, a)
        body = {"annotator": name, "assignment": a["id"], "submission": secrets.token_hex(12), "side": side,
                "response_ms": 800.0}
        counter[0] += 1
        sends = 2 if retry_every and counter[0] % retry_every == 0 else 1
        for attempt in range(sends):
            t0 = time.perf_counter()
            r = await client.post("/api/judgments", json=body)
            result.latency_ms["submit"].append((time.perf_counter() - t0) * 1e3)
            if attempt == 0:
                if r.status_code in (200, 201):
                    result.acknowledged.append((name, a["id"], body["submission"], side))
                    answered += 1
                else:
                    result.refused.append((name, a["id"], r.status_code, r.text[:200]))
                    break
            else:
                result.duplicates_sent += 1
                if r.status_code == 200 and r.json().get("duplicate"):
                    result.duplicates_acknowledged += 1
                else:
                    result.errors.append(f"{name}: retry of {body['submission']} -> {r.status_code} {r.text[:200]}")


async def _run(base_url: str, names: list[str], choose: Chooser, *, token: str | None, max_answers: int | None,
               total: int | None, fetch_images: bool, retry_every: int, think_s: float, time_limit_s: float
               ) -> LoadResult:
    import httpx

    result = LoadResult()
    headers = {"X-PerFace-Token": token} if token else {}
    limits = httpx.Limits(max_connections=len(names) + 4, max_keepalive_connections=len(names) + 4)
    start = time.monotonic()
    deadline = start + time_limit_s
    counter = [0]
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=30.0) as client:
        tasks = [asyncio.create_task(_annotator(client, n, choose, result, max_answers=max_answers,
                                                fetch_images=fetch_images, retry_every=retry_every, think_s=think_s,
                                                deadline=deadline, counter=counter, total=total)) for n in names]
        await asyncio.gather(*tasks)
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
