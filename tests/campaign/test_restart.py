"""Killing the server (SIGKILL) in the middle of a campaign loses no acknowledged judgment, and a restart resumes
assignment where it stopped. The server is the real ``perface annotate serve`` command in a child process."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time

import httpx

from perface.campaign import campaign_status, export_judgments


def test_sigkill_and_restart(tmp_path, data_root, lfw_paths, write_tasks, server_process, free_port):
    tasks = tmp_path / "tasks.csv"
    frame = write_tasks(tasks, lfw_paths, 60)
    with open(tasks, "a") as f:  # one row with a missing image: reported, left out with --skip-bad
        f.write(f"{lfw_paths[0]},lfw/images/Nobody_Here/Nobody_Here_0001.jpg,{lfw_paths[1]}\n")
    db = tmp_path / "campaign.sqlite"
    log = tmp_path / "serve.log"
    args = ["--tasks", str(tasks), "--root", str(data_root), "--db", str(db), "--skip-bad", "-k", "3",
            "--per-annotator", "30", "--catch-rate", "0.1"]
    acked: list[tuple[str, int, str]] = []
    lock = threading.Lock()

    def answer(client, name) -> dict | None:
        nxt = client.get("/api/next", params={"annotator": name})
        nxt.raise_for_status()
        items = nxt.json()["assignments"]
        if not items:
            return None
        sub = f"{name}-{items[0]['id']}-{time.monotonic_ns()}"
        r = client.post("/api/judgments", json={"annotator": name, "assignment": items[0]["id"], "submission": sub,
                                                "side": "left", "response_ms": 700})
        if r.status_code == 201:
            with lock:
                acked.append((name, items[0]["id"], sub))
        return r.json()

    port = free_port()
    with server_process(args, port, log) as proc:
        url = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=url) as c:
            for _ in range(3):
                answer(c, "resumer")
            before = c.get("/api/next", params={"annotator": "resumer"}).json()
        assert before["done"] == 3 and len(before["assignments"]) == 2

        def writer(name):
            with httpx.Client(base_url=url, timeout=5) as client:
                while True:
                    try:
                        if answer(client, name) is None:
                            return
                    except (httpx.HTTPError, ValueError):
                        return  # the server is gone

        threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(acked) < 3 + 40 and time.monotonic() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)  # in the middle of the writes
        proc.wait()
        for t in threads:
            t.join()
    assert proc.returncode == -signal.SIGKILL
    assert "--skip-bad: left out 1 row(s)" in log.read_text() and "missing-image" in log.read_text()
    assert len(acked) >= 43

    # status and export read the killed server's database as it is (the log is recovered, nothing written)
    status = campaign_status(db, per_triplet=False)
    exported = export_judgments(db, tmp_path / "after_kill.csv", catch_out=False)
    con = sqlite3.connect(db)
    try:
        stored = {r[0] for r in con.execute("SELECT submission_id FROM judgments")}
    finally:
        con.close()
    assert {sub for _, _, sub in acked} <= stored  # every acknowledged judgment survived the kill
    n_catch = status["catch_judgments"]
    assert status["triplets"]["judgments"] + n_catch == len(stored) == exported["judgments"] + exported["catch"]

    port = free_port()
    with server_process(args, port, log):
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
            after = c.get("/api/next", params={"annotator": "resumer"}).json()
            assert after["done"] == 3
            assert [a["id"] for a in after["assignments"]] == [a["id"] for a in before["assignments"]]
            assert after["assignments"] == before["assignments"]  # same triplets, same sides: resumed exactly
            body = answer(c, "resumer")
            assert body["done"] == 4 and body["judgment"]["assignment"] == before["assignments"][0]["id"]
            again = c.get("/api/next", params={"annotator": "resumer"}).json()
            assert again["assignments"][0] == before["assignments"][1]
            # bound to loopback: a request naming another host (DNS rebinding) is refused
            rebound = c.get("/api/next", params={"annotator": "resumer"}, headers={"Host": "evil.example:80"})
            assert rebound.status_code == 400 and "host" in rebound.json()["error"]
        assert campaign_status(db)["annotators"]  # read while the server runs
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        bad = con.execute(
            "SELECT t.id FROM tasks t WHERE t.n_done != (SELECT COUNT(*) FROM judgments j WHERE j.task = t.id) OR "
            "t.n_open != (SELECT COUNT(*) FROM assignments s WHERE s.task = t.id AND s.status = 'open')").fetchall()
        assert not bad  # counters consistent with the rows after the kill
        assert con.execute("SELECT COUNT(*) FROM tasks WHERE kind = 'triplet'").fetchone()[0] == len(frame)
        over = con.execute("SELECT COUNT(*) FROM tasks WHERE kind = 'triplet' AND n_done > 3").fetchone()[0]
        assert over == 0
    finally:
        con.close()
