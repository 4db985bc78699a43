"""Load test of ``perface annotate serve``: simulated annotators against a real server process on loopback.

Starts ``python -m perface annotate serve`` (a child process, the real command) over real LFW images from
``$PERFACE_DATA``, then runs ``--annotators`` simulated annotators at once (asyncio + httpx, one process)
until ``--judgments`` answers were given (bounded by ``--time-limit`` too). Each annotator does what the page
does: GET /api/next, fetch the three images (unless ``--no-images``), POST the answer; every
``--retry-every``-th answer is sent twice with the same submission id (a retry / double click). By default
annotators answer at once (no think time): a saturation test, far harsher than people (who take seconds).

Then it checks the database: zero lost (every acknowledged answer stored), zero duplicated (each stored
once, retries not stored twice, no annotator twice on a task, no triplet over K), and prints p50 / p99
latency of next-triplet, submit and image requests as the client saw them (``--json`` for one object).

Usage: python scripts/benchmark_annotate.py [--annotators 50] [--judgments 10000] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd

from perface.campaign.simulate import percentiles, run_annotators


def lfw_images(data: Path, n: int) -> list[str]:
    people = sorted(p for p in (data / "lfw" / "images").iterdir() if p.is_dir())
    out = []
    for person in people:
        out.extend(f.relative_to(data).as_posix() for f in sorted(person.glob("*.jpg"))[:2])
        if len(out) >= n:
            break
    return out[:n]


def make_tasks(path: Path, images: list[str], n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    rows, seen = [], set()
    while len(rows) < n:
        anchor, a, b = rng.sample(images, 3)
        key = (anchor, frozenset((a, b)))
        if key not in seen:
            seen.add(key)
            rows.append((anchor, a, b))
    pd.DataFrame(rows, columns=["anchor", "a", "b"]).to_csv(path, index=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 300) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            sys.exit(f"benchmark: server exited ({proc.returncode}): {log.read_text()}")
        try:
            if httpx.get(url + "/api/health", timeout=1).status_code == 200:
                return time.monotonic() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    sys.exit("benchmark: server did not start")


def verify(db: Path, result, k: int) -> dict:
    con = sqlite3.connect(db)
    try:
        stored = con.execute("SELECT submission_id, assignment, side FROM judgments").fetchall()
        twice = con.execute("SELECT COUNT(*) FROM (SELECT task, annotator FROM assignments GROUP BY task, annotator "
                            "HAVING COUNT(*) > 1)").fetchone()[0]
        over = con.execute("SELECT COUNT(*) FROM tasks t WHERE t.kind = 'triplet' AND (SELECT COUNT(*) FROM judgments j "
                           "WHERE j.task = t.id) > ?", (k,)).fetchone()[0]
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()
    acked = {(sub, aid, side) for _, aid, sub, side in result.acknowledged}
    stored_set = set(stored)
    return {"acknowledged": len(result.acknowledged), "stored": len(stored),
            "lost": len(acked - stored_set), "unacknowledged_stored": len(stored_set - acked),
            "duplicated": len(stored) - len(stored_set) + (len(result.acknowledged) - len(acked)),
            "retries_sent": result.duplicates_sent, "retries_answered_as_duplicate": result.duplicates_acknowledged,
            "annotator_twice_on_a_task": twice, "triplets_over_k": over, "integrity": integrity}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--annotators", type=int, default=50)
    ap.add_argument("--judgments", type=int, default=10_000, help="answers in total (catch trials included)")
    ap.add_argument("--k", type=int, default=3, help="judgments per triplet")
    ap.add_argument("--catch-rate", type=float, default=0.1)
    ap.add_argument("--retry-every", type=int, default=50, help="send every N-th answer twice (0: never)")
    ap.add_argument("--no-images", action="store_true", help="do not fetch the images of each trial")
    ap.add_argument("--think-ms", type=float, default=0.0, help="pause before each answer (0: saturation)")
    ap.add_argument("--time-limit", type=float, default=600.0, help="seconds; stop starting requests after this")
    ap.add_argument("--data", default=os.environ.get("PERFACE_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    data = Path(args.data).resolve()
    if not (data / "lfw" / "images").is_dir():
        sys.exit(f"benchmark: no LFW images under {data}; set PERFACE_DATA or --data")
    per_annotator = math.ceil(args.judgments / args.annotators)
    n_triplets = math.ceil(args.judgments * (1 - args.catch_rate) / args.k * 1.05) + args.annotators
    with tempfile.TemporaryDirectory(prefix="perface-bench-annotate-") as tmp:
        tmp = Path(tmp)
        images = lfw_images(data, 2000)
        make_tasks(tmp / "tasks.csv", images, n_triplets)
        db, log, port = tmp / "campaign.sqlite", tmp / "serve.log", free_port()
        cmd = [sys.executable, "-m", "perface", "annotate", "serve", "--tasks", str(tmp / "tasks.csv"), "--root",
               str(data), "--db", str(db), "--port", str(port), "-k", str(args.k), "--per-annotator",
               str(per_annotator), "--catch-rate", str(args.catch_rate)]
        with open(log, "w") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            startup_s = wait_healthy(url, proc, log)
            rng = random.Random(0)
            names = [f"sim-{i:03d}" for i in range(args.annotators)]
            result = run_annotators(url, names, lambda name, a: rng.choice(("left", "right")),
                                    total=args.judgments, fetch_images=not args.no_images,
                                    retry_every=args.retry_every, think_s=args.think_ms / 1000,
                                    time_limit_s=args.time_limit)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        checks = verify(db, result, args.k)
    lat = {kind: {**percentiles(v), "n": len(v)} for kind, v in result.latency_ms.items()}
    report = {"annotators": args.annotators, "target_judgments": args.judgments, "triplets": n_triplets,
              "images": len(images), "k": args.k, "catch_rate": args.catch_rate, "fetch_images": not args.no_images,
              "think_ms": args.think_ms, "server_startup_s": round(startup_s, 2), "elapsed_s": round(result.elapsed_s, 2),
              "judgments_per_s": round(len(result.acknowledged) / result.elapsed_s, 1), "timed_out": result.timed_out,
              "errors": result.errors[:5], "refused": len(result.refused), "checks": checks, "latency_ms": lat,
              "cpus": os.cpu_count()}
    ok = (checks["lost"] == 0 and checks["duplicated"] == 0 and checks["annotator_twice_on_a_task"] == 0
          and checks["triplets_over_k"] == 0 and checks["integrity"] == "ok" and not result.errors
          and checks["retries_answered_as_duplicate"] == checks["retries_sent"])
    report["ok"] = ok
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"{args.annotators} annotators, {checks['acknowledged']} judgments acknowledged in {result.elapsed_s:.1f} s "
              f"({report['judgments_per_s']}/s) on {os.cpu_count()} CPUs; {n_triplets} triplets x K={args.k} over "
              f"{len(images)} LFW images; server start-up (image check) {startup_s:.1f} s")
        print(f"stored {checks['stored']}: lost {checks['lost']}, duplicated {checks['duplicated']}, retries "
              f"{checks['retries_sent']} (answered as duplicate: {checks['retries_answered_as_duplicate']}), annotator "
              f"twice on a task {checks['annotator_twice_on_a_task']}, triplets over K {checks['triplets_over_k']}")
        for kind in ("next", "submit", "image"):
            v = lat[kind]
            if v["n"]:
                print(f"{kind:<7} n={v['n']:>6}  p50 {v['p50']:6.1f} ms  p99 {v['p99']:6.1f} ms")
        print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
