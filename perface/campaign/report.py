"""Reading a campaign database: judgments as canonical tables, progress and annotator quality, export.

Export (``perface annotate export``) writes the canonical judgments format of ``data/annotations/README.md``
with ``source`` = ``perface-annotate``: regular triplets and gold triplets (``is_gold`` true and
``gold_choice`` on gold rows), in the orientation of the task file (``a``/``b`` as listed, whatever side each
was shown on). Catch trials are never in that file: they go to a separate file in the same format
(``anchor`` = ``a``, ``is_gold`` true, ``gold_choice`` ``a``, ``source`` = ``perface-annotate-catch``), by default
beside it as ``<name>_catch.<ext>``, or nowhere with ``catch_out=False``.

**Flag rule** (``status``): an annotator is flagged when catch-trial accuracy is below
``min_catch_accuracy`` (default 0.8) over at least ``min_catch`` (3) catch trials, or gold accuracy is below
``min_gold_accuracy`` (0.6) over at least ``min_gold`` (3) gold triplets, or the median response time is
below ``min_median_ms`` (300 ms) over at least 10 judgments (clicking through).
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from perface.annotations.aggregate import agreement, annotator_quality
from perface.annotations.schema import write_judgments
from perface.campaign.store import CampaignStore, completion_code
from perface.errors import CampaignError

__all__ = ["SOURCE", "CATCH_SOURCE", "campaign_status", "export_judgments", "judgment_tables"]

SOURCE = "perface-annotate"
CATCH_SOURCE = "perface-annotate-catch"
_MIN_JUDGMENTS_FOR_SPEED = 10


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def judgment_tables(store: CampaignStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(judgments, catch)``: canonical judgment tables of the stored answers, in commit order.

    Both have ``anchor, a, b, choice, annotator_id, response_ms, timestamp, is_gold, gold_choice, source``
    plus ``side`` and ``left_is`` (how it was shown; not part of the canonical format, dropped on writing).
    """
    rows = store.query(
        "SELECT ia.path, ib.path, ic.path, j.choice, n.external_id, j.response_ms, j.server_time, t.kind, "
        "t.gold_choice, j.side, j.left_is FROM judgments j JOIN tasks t ON t.id = j.task "
        "JOIN annotators n ON n.id = j.annotator JOIN images ia ON ia.id = t.anchor JOIN images ib ON ib.id = t.a "
        "JOIN images ic ON ic.id = t.b ORDER BY j.id")
    cols = ["anchor", "a", "b", "choice", "annotator_id", "response_ms", "timestamp", "kind", "gold_choice",
            "side", "left_is"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["response_ms"] = frame["response_ms"].astype(float)
    frame["timestamp"] = [_iso(t) for t in frame["timestamp"]]
    frame["is_gold"] = frame["kind"].isin(["gold", "catch"])
    frame["gold_choice"] = frame["gold_choice"].fillna("").astype(str)
    frame["source"] = np.where(frame["kind"] == "catch", CATCH_SOURCE, SOURCE)
    order = ["anchor", "a", "b", "choice", "annotator_id", "response_ms", "timestamp", "is_gold", "gold_choice",
             "source", "side", "left_is"]
    catch = frame[frame["kind"] == "catch"][order].reset_index(drop=True)
    judgments = frame[frame["kind"] != "catch"][order].reset_index(drop=True)
    return judgments, catch


def _catch_path(out: Path) -> Path:
    suffix = "".join(out.suffixes[-1:]) or ".csv"
    return out.with_name(out.name[: len(out.name) - len(suffix)] + "_catch" + suffix)


def export_judgments(db: str | os.PathLike, out: str | os.PathLike, catch_out: str | os.PathLike | bool | None = None
                     ) -> dict:
    """Write the campaign's judgments in the canonical format (see the module doc).

    Args:
        out: ``.csv`` or ``.parquet`` file.
        catch_out: Catch-trial file; None: ``<out name>_catch.<ext>`` beside ``out``; False: not written.

    Returns:
        ``{"out", "judgments", "gold", "triplets", "annotators", "catch_out", "catch"}`` (counts; ``catch_out``
        None when not written).

    Raises:
        CampaignError: not a campaign database, or it holds no judgment yet.
    """
    store = CampaignStore(db, readonly=True)
    try:
        judgments, catch = judgment_tables(store)
    finally:
        store.close()
    if not len(judgments):
        raise CampaignError(f"{db}: no judgments of triplets yet ({len(catch)} catch-trial answers); nothing "
                            "to export")
    out = Path(out)
    canonical = judgments.drop(columns=["side", "left_is"])
    write_judgments(canonical, out)
    catch_path = None
    if catch_out is not False:
        catch_path = _catch_path(out) if catch_out in (None, True) else Path(catch_out)
        if len(catch):
            write_judgments(catch.drop(columns=["side", "left_is"]), catch_path)
        else:
            catch_path = None
    return {"out": str(out), "judgments": int(len(judgments)), "gold": int(judgments["is_gold"].sum()),
            "triplets": int(judgments.groupby(["anchor", "a", "b"]).ngroups),
            "annotators": int(judgments["annotator_id"].nunique()),
            "catch_out": str(catch_path) if catch_path else None, "catch": int(len(catch))}


def _num(value):
    """JSON-friendly number: None for NaN."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def campaign_status(db: str | os.PathLike, *, min_catch_accuracy: float = 0.8, min_catch: int = 3,
                    min_gold_accuracy: float = 0.6, min_gold: int = 3, min_median_ms: float = 300.0,
                    per_triplet: bool = True) -> dict:
    """Progress, quality and pace of a campaign (read-only; works while the server runs).

    Returns:
        A dict: ``settings`` (of the last start), ``triplets`` (``total, target_per_triplet, complete, partial,
        untouched, judgments, needed, open``, ``by_count`` {judgments: triplets}), ``per_triplet`` (list of
        ``{anchor, a, b, judgments, open}``; with ``per_triplet``), ``annotators`` (list: ``annotator_id,
        judgments, n_catch, catch_accuracy, n_gold, gold_accuracy, loo_agreement, n_compared,
        median_response_ms, first_seen, last_seen, completed, completion_code, flagged, reasons``),
        ``flag_rule``, ``flagged`` (ids), ``agreement`` (overall, :func:`perface.annotations.agreement`),
        ``pace`` (``judgments_last_hour``, ``judgments_per_hour`` over the span from the first to the last
        answer, counted as at least one hour, ``by_hour`` {ISO hour: n}, ``first``, ``last``).
    """
    store = CampaignStore(db, readonly=True)
    try:
        judgments, catch = judgment_tables(store)
        settings = {k[len("setting."):]: v for k, v in store.query("SELECT key, value FROM meta WHERE key LIKE "
                                                                       "'setting.%' ORDER BY key")}
        k = int(settings.get("judgments_per_triplet", "1") or 1)
        tasks = store.query(
            "SELECT ia.path, ib.path, ic.path, t.n_done, t.n_open FROM tasks t JOIN images ia ON ia.id = t.anchor "
            "JOIN images ib ON ib.id = t.a JOIN images ic ON ic.id = t.b WHERE t.kind = 'triplet' AND t.active = 1 "
            "ORDER BY t.id")
        people = store.query("SELECT external_id, first_seen, last_seen, n_done, completed_at FROM annotators "
                             "ORDER BY external_id")
        times = [r[0] for r in store.query("SELECT server_time FROM judgments ORDER BY server_time")]
        secret = store.secret
    finally:
        store.close()

    done = np.array([t[3] for t in tasks], dtype=int)
    counts = {int(c): int(n) for c, n in zip(*np.unique(done, return_counts=True))} if len(done) else {}
    triplets = {"total": len(tasks), "target_per_triplet": k, "complete": int((done >= k).sum()),
                "partial": int(((done > 0) & (done < k)).sum()), "untouched": int((done == 0).sum()),
                "judgments": int(done.sum()), "needed": int(np.clip(k - done, 0, None).sum()),
                "open": int(sum(t[4] for t in tasks)), "by_count": counts}

    quality = annotator_quality(judgments.drop(columns=["side", "left_is"])).set_index("annotator_id") \
        if len(judgments) else pd.DataFrame()
    catch_q = annotator_quality(catch.drop(columns=["side", "left_is"])).set_index("annotator_id") \
        if len(catch) else pd.DataFrame()
    all_rows = pd.concat([judgments, catch])
    median_ms = all_rows.groupby("annotator_id")["response_ms"].median() if len(all_rows) else pd.Series(dtype=float)
    annotators, flagged = [], []
    for external_id, first_seen, last_seen, n_done, completed_at in people:
        q = quality.loc[external_id] if external_id in quality.index else None
        c = catch_q.loc[external_id] if external_id in catch_q.index else None
        n_catch = int(c["n_gold"]) if c is not None else 0
        catch_acc = _num(c["gold_accuracy"]) if c is not None else None
        n_gold = int(q["n_gold"]) if q is not None else 0
        gold_acc = _num(q["gold_accuracy"]) if q is not None else None
        med = _num(median_ms.get(external_id)) if external_id in median_ms.index else None
        reasons = []
        if catch_acc is not None and n_catch >= min_catch and catch_acc < min_catch_accuracy:
            reasons.append(f"catch accuracy {catch_acc:.2f} < {min_catch_accuracy:g} over {n_catch} catch trials")
        if gold_acc is not None and n_gold >= min_gold and gold_acc < min_gold_accuracy:
            reasons.append(f"gold accuracy {gold_acc:.2f} < {min_gold_accuracy:g} over {n_gold} gold triplets")
        if med is not None and n_done >= _MIN_JUDGMENTS_FOR_SPEED and med < min_median_ms:
            reasons.append(f"median response {med:.0f} ms < {min_median_ms:g} ms")
        if reasons:
            flagged.append(external_id)
        annotators.append({
            "annotator_id": external_id, "judgments": int(n_done), "n_catch": n_catch, "catch_accuracy": catch_acc,
            "n_gold": n_gold, "gold_accuracy": gold_acc,
            "loo_agreement": _num(q["loo_agreement"]) if q is not None else None,
            "n_compared": int(q["n_compared"]) if q is not None else 0, "median_response_ms": med,
            "first_seen": _iso(first_seen), "last_seen": _iso(last_seen), "completed": completed_at is not None,
            "completion_code": completion_code(secret, external_id) if completed_at is not None else None,
            "flagged": bool(reasons), "reasons": reasons})

    now = datetime.now(timezone.utc).timestamp()
    by_hour: dict[str, int] = {}
    for t in times:
        hour = datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:00Z")
        by_hour[hour] = by_hour.get(hour, 0) + 1
    span_h = (times[-1] - times[0]) / 3600.0 if len(times) > 1 else 0.0
    pace = {"judgments_last_hour": int(sum(1 for t in times if t >= now - 3600)),
            "judgments_per_hour": (len(times) / max(span_h, 1.0)) if times else None, "by_hour": by_hour,
            "first": _iso(times[0]) if times else None, "last": _iso(times[-1]) if times else None}
    overall = agreement(judgments.drop(columns=["side", "left_is"])) if len(judgments) else {}
    rule = (f"flagged when catch accuracy < {min_catch_accuracy:g} over >= {min_catch} catch trials, or gold accuracy "
            f"< {min_gold_accuracy:g} over >= {min_gold} gold triplets, or median response time < {min_median_ms:g} "
            f"ms over >= {_MIN_JUDGMENTS_FOR_SPEED} judgments")
    out = {"db": str(db), "settings": settings, "triplets": triplets, "annotators": annotators,
           "flag_rule": rule, "flagged": flagged, "catch_judgments": int(len(catch)),
           "gold_judgments": int(judgments["is_gold"].sum()) if len(judgments) else 0,
           "agreement": {key: _num(v) if isinstance(v, float) else v for key, v in overall.items()}, "pace": pace}
    if per_triplet:
        out["per_triplet"] = [{"anchor": t[0], "a": t[1], "b": t[2], "judgments": int(t[3]), "open": int(t[4])}
                              for t in tasks]
    return out
