"""``selection_report``: how a selection policy behaves over many targets; its text (:func:`summary_lines`) and
its ``--report DIR`` folder (:func:`write_report`: ``report.md``, ``metrics.json``, ``selections.parquet``, a plot).

* **confusion share**: of all selected (target, candidate) pairs, the share the identity model would take for
  the same person, i.e. identity similarity ``>= T``, recomputed here from the target's and the gallery's
  identity embeddings, independently of the selection code. It must be 0 at the threshold used.
* **own identity selected**: selections whose identity name is the target's (must be 0).
* the **distribution of selected perceptual similarities** (and of their identity similarities);
* the **no-candidate rate**: the share of usable targets for which no gallery identity qualified;
* exclusion counts per reason, summed over targets, and how many targets had no usable face.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from perface.selection.band import Band
from perface.selection.gallery import Gallery
from perface.selection.select import EXCLUSION_REASONS, Selection
from perface.selection.threshold import ReidThreshold

__all__ = ["distribution", "selection_report", "selections_table", "summary_lines", "write_report"]

#: Targets listed in report.md (all are in selections.parquet and metrics.json).
MAX_MD_TARGETS = 100


def distribution(values, bins: int = 10, range_: tuple[float, float] | None = None) -> dict:
    """Summary statistics and a histogram of ``values`` (empty -> ``{"n": 0}``)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 0:
        return {"n": 0}
    q = np.quantile(v, [0.05, 0.25, 0.5, 0.75, 0.95])
    lo, hi = range_ if range_ else (float(v.min()), float(v.max()))
    if not hi > lo:
        hi = lo + 1e-9
    counts, edges = np.histogram(np.clip(v, lo, hi), bins=bins, range=(lo, hi))
    return {"n": int(len(v)), "mean": float(v.mean()), "std": float(v.std()), "min": float(v.min()),
            "p05": float(q[0]), "p25": float(q[1]), "median": float(q[2]), "p75": float(q[3]), "p95": float(q[4]),
            "max": float(v.max()),
            "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}}


def selection_report(selections: Sequence[Selection], gallery: Gallery, failures: Sequence[dict] = (),
                     per_target: bool = True, *, band: Band | None = None, threshold: ReidThreshold | None = None,
                     same: Sequence[str] = (), top: int | None = None) -> dict:
    """Aggregate :class:`Selection` results of many targets (see the module docstring).

    Args:
        selections: One per usable target (from :func:`perface.selection.select_many`).
        gallery: The gallery they were selected from.
        failures: Targets without a usable face (``{"path", "status", "error"}``), counted, not scored.
        per_target: Include one short row per target.
        band, threshold, same, top: The policy, reported when there is no selection to take it from.

    Returns:
        JSON-ready dict: ``n_targets``, ``n_usable``, ``unusable``, ``n_selections``, ``confusion``
        (``threshold``, ``confused``, ``share``), ``own_identity_selected``, ``no_candidate`` (``count``,
        ``rate``), ``selected_perceptual_similarity``, ``selected_identity_similarity``, ``qualified``,
        ``excluded``, ``band``, ``threshold``, ``same``, ``top``, ``gallery_size``, ``search`` and ``per_target``.
    """
    n_usable = len(selections)
    first = selections[0] if selections else None
    if first is not None:
        band, threshold, same, top = first.band, first.threshold, first.same, first.top
    t = threshold.value if threshold is not None else None
    perceptual, identity, confused, own, n_sel = [], [], 0, 0, 0
    excluded = dict.fromkeys(EXCLUSION_REASONS, 0)
    no_candidate = 0
    rows = []
    for sel in selections:
        tg = sel.target
        idx = np.array([c.row for c in sel.candidates], dtype=np.int64)
        if len(idx):
            # independent re-computation from the gallery, not the candidates' recorded values
            p = np.array([float(np.dot(gallery.perceptual[i].astype(np.float64), tg.perceptual.astype(np.float64)))
                          for i in idx])
            s = np.array([float(np.dot(gallery.identity[i].astype(np.float64),
                                       tg.identity_embedding.astype(np.float64))) for i in idx])
            perceptual.extend(p.tolist())
            identity.extend(s.tolist())
            confused += int((s >= sel.threshold.value).sum())
            own += sum(1 for c in sel.candidates if tg.identity is not None and c.identity == tg.identity)
            n_sel += len(idx)
        else:
            no_candidate += 1
        for k, v in sel.excluded.items():
            excluded[k] = excluded.get(k, 0) + int(v)
        if per_target:
            best = sel.candidates[0] if sel.candidates else None
            rows.append({"target": tg.name, "target_identity": tg.identity, "qualified": sel.qualified,
                         "candidates": len(sel.candidates), "best": best.identity if best else None,
                         "best_perceptual_similarity": best.perceptual_similarity if best else None})
    by_status: dict[str, int] = {}
    for f in failures:
        by_status[f.get("status", "error")] = by_status.get(f.get("status", "error"), 0) + 1
    report = {
        "n_targets": n_usable + len(failures),
        "n_usable": n_usable,
        "unusable": {"count": len(failures), "by_status": by_status, "files": [f.get("path") for f in failures]},
        "n_selections": n_sel,
        "confusion": {"threshold": t, "confused": confused, "share": (confused / n_sel) if n_sel else 0.0},
        "own_identity_selected": own,
        "no_candidate": {"count": no_candidate, "rate": (no_candidate / n_usable) if n_usable else None},
        "selected_perceptual_similarity": distribution(perceptual, range_=(band.lo, band.hi) if band else None),
        "selected_identity_similarity": distribution(identity),
        "qualified": distribution([s.qualified for s in selections]) if selections else {"n": 0},
        "excluded": excluded,
        "band": band.to_dict() if band else None,
        "threshold": threshold.to_dict() if threshold is not None else None,
        "same": list(same),
        "top": top,
        "gallery_size": len(gallery),
        "search": dict(first.search) if first else {},
    }
    if per_target:
        report["per_target"] = rows
    return report


def summary_lines(r: dict) -> list[str]:
    """The text ``perface select --summary`` prints for a :func:`selection_report` dict."""
    b = r["band"] or {}
    t = r["threshold"] or {}
    sp = r["selected_perceptual_similarity"]
    si = r["selected_identity_similarity"]
    conf = r["confusion"]
    nc = r["no_candidate"]
    left_out = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(r["unusable"]["by_status"].items()))
    band = f"{b['lo']:.4f}:{b['hi']:.4f}" if b else "none"
    out = [f"targets                 {r['n_targets']} ({r['n_usable']} used"
           + (f"; left out: {left_out})" if left_out else ")"),
           f"gallery                 {r['gallery_size']} identities; band {band}; "
           f"T {t.get('value', float('nan')):.5f}; top {r['top']}" + (f"; same {','.join(r['same'])}" if r["same"] else ""),
           f"selections              {r['n_selections']}",
           f"confused with target    {conf['confused']} ({conf['share']:.2%}) at identity similarity >= T",
           f"own identity selected   {r['own_identity_selected']}",
           f"no candidate            {nc['count']} targets ({nc['rate']:.2%})" if nc["rate"] is not None
           else "no candidate            -"]
    if sp.get("n"):
        out.append(f"selected perceptual sim mean {sp['mean']:.4f}, median {sp['median']:.4f}, p05 {sp['p05']:.4f}, "
                   f"p95 {sp['p95']:.4f}, min {sp['min']:.4f}, max {sp['max']:.4f}")
        out.append(f"selected identity sim   mean {si['mean']:.4f}, median {si['median']:.4f}, max {si['max']:.4f}")
    out.append("excluded (all targets)  " + ", ".join(f"{k} {v}" for k, v in r["excluded"].items()))
    return out


def selections_table(selections: Sequence[Selection], failures: Sequence[dict] = ()) -> pd.DataFrame:
    """One row per (target, candidate), one per target without a candidate and one per unusable target.

    Columns: ``target``, ``status`` (``ok``, ``no_candidate``, or why the target was unusable: ``no_face``,
    ``error``, ``attribute_unknown``), ``error``, ``target_identity``, ``rank`` (1 = best), ``identity``,
    ``perceptual_similarity``, ``identity_similarity``, ``n_images`` and ``candidate_<attribute>`` per gallery
    attribute (null where there is no candidate).
    """
    rows = []
    for sel in selections:
        base = {"target": sel.target.name, "status": "ok" if sel.candidates else "no_candidate", "error": "",
                "target_identity": sel.target.identity}
        if not sel.candidates:
            rows.append(base)
        for c in sel.candidates:
            rows.append({**base, "rank": c.rank, "identity": c.identity,
                         "perceptual_similarity": c.perceptual_similarity,
                         "identity_similarity": c.identity_similarity, "n_images": c.n_images,
                         **{f"candidate_{k}": v for k, v in c.attributes.items()}})
    for f in failures:
        rows.append({"target": f.get("path"), "status": f.get("status", "error"), "error": f.get("error", ""),
                     "target_identity": None})
    columns = ["target", "status", "error", "target_identity", "rank", "identity", "perceptual_similarity",
               "identity_similarity", "n_images"]
    frame = pd.DataFrame(rows)
    for c in columns:
        if c not in frame.columns:
            frame[c] = None
    frame = frame[columns + sorted(c for c in frame.columns if c not in columns)]
    frame["rank"] = frame["rank"].astype("Int64")
    frame["n_images"] = frame["n_images"].astype("Int64")
    for c in ("perceptual_similarity", "identity_similarity"):
        frame[c] = frame[c].astype(float)
    return frame


def _plot(report: dict, table: pd.DataFrame, path: Path) -> None:
    """Histograms of the selected candidates' perceptual similarity (with the band) and identity similarity
    (with T). Drawn on a bare matplotlib Figure: no display or pyplot backend needed."""
    from matplotlib.figure import Figure

    ok = table[table["status"] == "ok"]
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    band, t = report["band"], report["threshold"]
    left.hist(ok["perceptual_similarity"].to_numpy(), bins=30, color="tab:blue")
    if band:
        for x in (band["lo"], band["hi"]):
            left.axvline(x, color="k", ls="--", lw=1)
    left.set_xlabel("perceptual similarity to the target (band dashed)")
    left.set_ylabel("selected candidates")
    right.hist(ok["identity_similarity"].to_numpy(), bins=30, color="tab:orange")
    if t:
        right.axvline(t["value"], color="tab:red", ls="--", lw=1, label=f"T = {t['value']:.4f}")
        right.legend()
    right.set_xlabel("identity similarity to the target (must stay < T)")
    fig.suptitle(f"{report['n_selections']} selections for {report['n_usable']} targets")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_report(directory: str | os.PathLike, report: dict, selections: Sequence[Selection],
                 failures: Sequence[dict] = ()) -> Path:
    """Write ``report.md``, ``metrics.json`` (``report``, the ``--json`` object), ``selections.parquet``
    (:func:`selections_table`) and ``selected_similarity.png`` into ``directory``.

    Returns:
        Path of ``report.md``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    table = selections_table(selections, failures)
    table.to_parquet(out / "selections.parquet", index=False)
    files = ["metrics.json", "selections.parquet"]
    if report["n_selections"]:
        _plot(report, table, out / "selected_similarity.png")
        files.append("selected_similarity.png")
    lines = ["# perface select", "", "```", *summary_lines(report), "```", ""]
    if report["n_selections"]:
        lines += ["![selected similarities](selected_similarity.png)", ""]
    per_target = report.get("per_target") or []
    if per_target:
        shown = per_target[:MAX_MD_TARGETS]
        if len(shown) < len(per_target):
            lines += [f"First {len(shown)} of {len(per_target)} targets (all of them: selections.parquet):", ""]
        lines += ["| target | identity | qualified | candidates | best | best perceptual similarity |",
                  "|---|---|---|---|---|---|"]
        for row in shown:
            best = row["best_perceptual_similarity"]
            lines.append(f"| {row['target']} | {row['target_identity'] or ''} | {row['qualified']} | "
                         f"{row['candidates']} | {row['best'] or ''} | {'' if best is None else f'{best:.4f}'} |")
        lines.append("")
    if failures:
        lines += [f"Targets left out ({len(failures)}):", ""]
        lines += [f"- {f.get('path')}: {f.get('status')}: {f.get('error')}" for f in failures]
        lines.append("")
    lines.append("Files: " + ", ".join(f"[{f}]({f})" for f in files) + ".")
    (out / "report.md").write_text("\n".join(lines) + "\n")
    return out / "report.md"
