"""``--report DIR`` for the evaluations of generated faces: ``report.md``, ``metrics.json`` (the ``--json``
object), a per-row (or per-frame) Parquet table, histograms and contact sheets, drawn with headless
matplotlib (Agg).

* swap: ``rows.parquet``, ``identity.png`` (identity similarity to source vs target), ``attributes.png`` (pose
  errors, expression error, attribute score), ``contact_sheet.png`` (the best and worst rows by identity
  margin: source | target | result with their numbers).
* anonymization: ``rows.parquet``, ``identity.png`` (identity cosines with the threshold T),
  ``contact_sheet.png`` (the most and least re-identifiable rows: original | anonymised).
* video: ``frames.parquet``, ``similarity_over_time.png`` (per video: identity and perceptual similarity to
  the reference and to the previous frame; frames without a face marked).
* distribution: the side-by-side table of every feature extractor.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

__all__ = ["write_report"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _stat_line(name: str, s: dict, digits: int = 4) -> str:
    ci = s.get("ci95")
    ci_text = f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else "-"
    return (f"| {name} | {_fmt(s.get('mean'), digits)} | {_fmt(s.get('std'), digits)} | "
            f"{_fmt(s.get('median'), digits)} | {ci_text} | {s.get('n', 0)} |")


def _summary_table(summary: dict) -> list[str]:
    lines = ["| measure | mean | std | median | 95% CI of mean | n |", "|---|---|---|---|---|---|"]
    for key, s in summary.items():
        if key == "pose_error_deg":
            for angle, sa in s.items():
                lines.append(_stat_line(f"pose_error_deg.{angle}", sa, 2))
        elif isinstance(s, dict) and "mean" in s:
            lines.append(_stat_line(key, s))
    return lines


def _save(fig, path: Path, top: float = 1.0) -> None:
    plt = _plt()
    fig.tight_layout(rect=(0, 0, 1, top))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _hist(ax, values, label: str, color: str, bins: int = 30) -> None:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v):
        ax.hist(v, bins=bins, alpha=0.6, label=f"{label} (n={len(v)})", color=color)


def _contact_sheet(rows: list[dict], records: dict, columns: list[str], caption, path: Path, title: str) -> None:
    plt = _plt()
    n = max(1, len(rows))
    fig, axes = plt.subplots(n, len(columns), figsize=(2.2 * len(columns), 2.5 * n), squeeze=False)
    for i, row in enumerate(rows):
        for j, col in enumerate(columns):
            ax = axes[i][j]
            rec = records.get(row[col])
            if rec is not None and rec.thumb is not None:
                ax.imshow(rec.thumb)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(col, fontsize=10)
        axes[i][0].set_ylabel(f"row {row['row']}", fontsize=8)
        axes[i][-1].set_xlabel(caption(row), fontsize=7)
    fig.suptitle(title, fontsize=10)
    _save(fig, path, top=1 - 0.35 / (2.5 * n))


def _best_worst(rows: list[dict], key: str, k: int = 4) -> list[dict]:
    ordered = sorted((r for r in rows if r.get(key) is not None), key=lambda r: r[key], reverse=True)
    if len(ordered) <= 2 * k:
        return ordered
    return ordered[:k] + ordered[-k:]


def _write_rows(rows: list[dict], path: Path) -> None:
    import pandas as pd

    pd.DataFrame(rows).to_parquet(path, index=False)


def _input(info: dict) -> str:
    """``pairs `FILE``` or ``folders source `A`, target `B`, ...``."""
    if info.get("folders"):
        return "folders " + ", ".join(f"{role} `{folder}`" for role, folder in info["folders"].items())
    return f"pairs `{info['pairs']}`"


def _unusable_lines(unusable: list[dict]) -> list[str]:
    if not unusable:
        return ["No unusable rows."]
    lines = [f"{len(unusable)} unusable (left out of every number):", ""]
    lines += [f"- row {u.get('row', '-')}: {u['reason']}" for u in unusable]
    return lines


# --- per command -------------------------------------------------------------------------------------------
def _swap(report, out: Path) -> list[str]:
    plt = _plt()
    rows = report.rows
    _write_rows(rows, out / "rows.parquet")
    fig, ax = plt.subplots(figsize=(6, 4))
    _hist(ax, [r["identity_similarity"] for r in rows], "result vs source (identity transfer)", "tab:green")
    _hist(ax, [r["target_leakage"] for r in rows], "result vs target (leakage)", "tab:red")
    ax.set_xlabel(f"identity cosine ({report.info['id_model']}; higher = more alike)")
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)
    _save(fig, out / "identity.png")
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for angle, color in (("yaw", "tab:blue"), ("pitch", "tab:orange"), ("roll", "tab:purple")):
        _hist(axes[0], [r[f"{angle}_error"] for r in rows], angle, color)
    axes[0].set_xlabel("|pose error| target vs result (degrees)")
    axes[0].legend(fontsize=8)
    _hist(axes[1], [r["expression_error"] for r in rows], "expression error", "tab:brown")
    axes[1].set_xlabel("expression error (x inter-ocular distance)")
    _hist(axes[2], [r["attribute_score_100"] for r in rows], "attribute score", "tab:gray")
    axes[2].set_xlabel("attribute score (0-100)")
    _save(fig, out / "attributes.png")
    if rows:
        _contact_sheet(_best_worst(rows, "identity_margin"), report.records, ["source", "target", "result"],
                       lambda r: (f"id {r['identity_similarity']:.3f} leak {r['target_leakage']:.3f}\n"
                                  f"pose {np.mean([r['yaw_error'], r['pitch_error'], r['roll_error']]):.1f}deg "
                                  f"attr {r['attribute_score_100']:.0f}"),
                       out / "contact_sheet.png", "best and worst rows by identity margin (source - target)")
    lines = ["# Face swap evaluation", "",
             f"{_input(report.info)}, perceptual model `{report.info['model']}`, identity model "
             f"`{report.info['id_model']}`; {report.info['n']} of {report.info['n_total']} rows evaluated, "
             f"{report.info['source_identities']} source identities.", ""]
    lines += _summary_table(report.summary)
    lines += ["", "![identity](identity.png)", "", "![attributes](attributes.png)", "",
              "![contact sheet](contact_sheet.png)", "", "## Unusable rows", ""] + _unusable_lines(report.unusable)
    return lines


def _anonymization(report, out: Path) -> list[str]:
    plt = _plt()
    rows = report.rows
    _write_rows(rows, out / "rows.parquet")
    t = report.summary["threshold"]["value"]
    fig, ax = plt.subplots(figsize=(6, 4))
    _hist(ax, [r["identity_similarity"] for r in rows], "original vs anonymised", "tab:blue")
    ax.axvline(t, color="k", ls="--", lw=1, label=f"T = {t:.4f} (re-identified at or above)")
    ax.set_xlabel(f"identity cosine ({report.info['id_model']})")
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)
    _save(fig, out / "identity.png")
    if rows:
        _contact_sheet(_best_worst(rows, "identity_similarity"), report.records, ["original", "anonymized"],
                       lambda r: (f"id {r['identity_similarity']:.3f}{' RE-ID' if r['reidentified'] else ''}\n"
                                  f"perc {r['perceptual_similarity']:.3f} attr {r['attribute_score_100']:.0f}"),
                       out / "contact_sheet.png", "most and least re-identifiable rows")
    lines = ["# Anonymisation evaluation", "", f"{_input(report.info)}, perceptual model `{report.info['model']}`, "
             f"identity model `{report.info['id_model']}`.", "", report.verdict, ""] + _summary_table(report.summary)
    lines += ["", "![identity](identity.png)", "", "![contact sheet](contact_sheet.png)", "", "## Unusable rows", ""]
    return lines + _unusable_lines(report.unusable)


def _video(report, out: Path) -> list[str]:
    import pandas as pd

    plt = _plt()
    frames = [{"video": v["video"], **f} for v in report.videos for f in v["per_frame"]]
    pd.DataFrame(frames).to_parquet(out / "frames.parquet", index=False)
    n = max(1, len(report.videos))
    fig, axes = plt.subplots(n, 1, figsize=(8, 2.8 * n), squeeze=False)
    for ax, v in zip(axes[:, 0], report.videos):
        pf = v["per_frame"]
        x = [f["frame"] for f in pf]
        for key, color in (("identity", "tab:blue"), ("perceptual", "tab:orange")):
            ax.plot(x, [np.nan if f[f"{key}_to_reference"] is None else f[f"{key}_to_reference"] for f in pf],
                    "-o", ms=3, color=color, label=f"{key}: to reference")
            ax.plot(x, [np.nan if f[f"{key}_to_previous"] is None else f[f"{key}_to_previous"] for f in pf],
                    ":", color=color, label=f"{key}: to previous frame")
        for i in v["frames_without_face"]:
            ax.axvline(i, color="red", alpha=0.3, lw=2)
        ax.set_title(f"{Path(v['video']).name}: consistency {_fmt(v['consistency'])}, subject consistency "
                     f"{_fmt(v['subject_consistency'])} (red: no face)", fontsize=9)
        ax.set_xlabel("frame")
        ax.set_ylabel("cosine")
        ax.legend(fontsize=7, loc="lower left")
    _save(fig, out / "similarity_over_time.png")
    lines = ["# Video evaluation", "", f"identity model `{report.info['id_model']}`, perceptual model "
             f"`{report.info['model']}`", "",
             "| video | frames | without face | mean | std | min | consistency | frame-to-frame | subject consistency "
             "| change point |", "|---|---|---|---|---|---|---|---|---|---|"]
    for v in report.videos:
        cp = v["change_point"]
        lines.append(f"| {v['video']} | {v['frames']} | {len(v['frames_without_face'])} | {_fmt(v['mean'])} | "
                     f"{_fmt(v['std'])} | {_fmt(v['min'])} | {_fmt(v['consistency'])} | {_fmt(v['frame_to_frame'])} | "
                     f"{_fmt(v['subject_consistency'])} | {cp['frame'] if cp else '-'} |")
    lines += ["", "![similarity over time](similarity_over_time.png)", "", "## Unusable videos", ""]
    lines += [f"- {u['video']}: {u['reason']}" for u in report.unusable] or ["None."]
    return lines


def _distribution(report, out: Path) -> list[str]:
    lines = ["# Distribution evaluation", "", f"real `{report.info['real']}` vs fake `{report.info['fake']}`", "",
             "| features | FD | KID mean | KID std | precision | recall | density | coverage | n real | n fake |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for label, m in report.features.items():
        flag = " (random weights: not meaningful)" if m.get("random_weights") else ""
        lines.append(f"| {label}{flag} | {m['fd']:.5g} | {m['kid']['mean']:.5g} | {m['kid']['std']:.3g} | "
                     f"{m['precision']:.4f} | {m['recall']:.4f} | {m['density']:.4f} | {m['coverage']:.4f} | "
                     f"{m['n_real']} | {m['n_fake']} |")
    notes = [f"- {label}: {n}" for label, m in report.features.items() for n in m.get("notes", [])]
    return lines + (["", "Notes:", ""] + notes if notes else [])


_WRITERS = {"swap": _swap, "anonymization": _anonymization, "video": _video, "distribution": _distribution}


def write_report(report, out_dir) -> Path:
    """Write the report of a :class:`~perface.evaluation.swap.SwapReport` (or anonymization / video /
    distribution report) to ``out_dir``; returns the path of ``report.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = report.to_dict()
    (out / "metrics.json").write_text(json.dumps(payload, indent=2, default=_json_default))
    lines = _WRITERS[payload["command"]](report, out)
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _json_default(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, float) and math.isnan(v):
        return None
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")
