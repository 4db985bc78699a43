"""``--report DIR``: ``report.md``, ``metrics.json`` (the ``--json`` object) and PNG plots, drawn with
headless matplotlib (the Agg backend; no display needed).

Plots: ROC curves and same/different similarity histograms (verification), agreement by stratum with 95%
CIs (agreement), balanced accuracy per label with chance levels (attributes).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from perface.evaluation.evaluate import ModelRun

__all__ = ["write_report"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", os.path.basename(label.rstrip("/")) or label).strip("_") or "model"


def _ci(ci) -> str:
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]"


# --- plots -------------------------------------------------------------------------------------------------
def _roc_plot(runs: list[ModelRun], path: Path) -> None:
    from sklearn.metrics import roc_curve

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    for run in runs:
        fpr, tpr, _ = roc_curve(run.data["same"], run.data["similarities"])
        ax.plot(np.maximum(fpr, 1e-5), tpr, label=f"{run.label} (AUC {run.metrics['auc']:.4f})")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_xlabel("false accept rate (different people accepted)")
    ax.set_ylabel("true accept rate (same person accepted)")
    ax.set_title("ROC")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _hist_plot(run: ModelRun, path: Path) -> None:
    plt = _plt()
    s, y = run.data["similarities"], run.data["same"]
    fig, ax = plt.subplots(figsize=(6, 4))
    lo, hi = float(s.min()), float(s.max())
    pad = 0.02 * max(hi - lo, 1e-6)
    bins = np.linspace(lo - pad, hi + pad, 60)
    ax.hist(s[y], bins=bins, alpha=0.6, label=f"same person ({int(y.sum())})", color="tab:green")
    ax.hist(s[~y], bins=bins, alpha=0.6, label=f"different people ({int((~y).sum())})", color="tab:red")
    t = float(np.mean(run.metrics["thresholds"]))
    ax.axvline(t, color="k", ls="--", lw=1, label=f"mean threshold {t:.3f}")
    ax.set_xlabel("cosine similarity (higher = more similar)")
    ax.set_ylabel("pairs")
    ax.set_title(f"{run.label}: similarity of same vs different pairs")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _agreement_plot(runs: list[ModelRun], path: Path) -> None:
    plt = _plt()
    groups = ["all"] + sorted({s for r in runs for s in r.metrics.get("by_stratum", {})})
    width = 0.8 / max(1, len(runs))
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(groups) * max(1, len(runs)) * 0.6 + 3), 4.5))
    x = np.arange(len(groups))
    for k, run in enumerate(runs):
        vals, lo, hi = [], [], []
        for g in groups:
            m = run.metrics if g == "all" else run.metrics["by_stratum"].get(g)
            if m is None:
                vals.append(np.nan), lo.append(0), hi.append(0)
                continue
            vals.append(m["agreement"])
            lo.append(m["agreement"] - m["ci95"][0])
            hi.append(m["ci95"][1] - m["agreement"])
        ax.bar(x + (k - (len(runs) - 1) / 2) * width, vals, width, yerr=[lo, hi], capsize=3, label=run.label)
    ax.axhline(0.5, color="k", ls=":", lw=1, label="chance")
    _finish_bars(plt, fig, ax, x, groups, "2AFC agreement (95% CI)", "Agreement with judgments by stratum", path,
                 rotate=True)


def _finish_bars(plt, fig, ax, x, labels, ylabel: str, title: str, path: Path, rotate: bool = False) -> None:
    """Axis labels, [0, 1] range, legend; save the grouped bar chart to ``path`` and close it."""
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30 if rotate else 0, ha="right" if rotate else "center")
    ax.set_ylim(0, 1)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _attributes_plot(runs: list[ModelRun], path: Path) -> bool:
    cols = [c for c, v in runs[0].metrics.items() if isinstance(v, dict) and v.get("kind") == "classification"]
    if not cols:
        return False
    plt = _plt()
    width = 0.8 / len(runs)
    x = np.arange(len(cols))
    fig, ax = plt.subplots(figsize=(max(5, 1.5 * len(cols) + 3), 4.5))
    for k, run in enumerate(runs):
        vals = [run.metrics.get(c, {}).get("balanced_accuracy", np.nan) for c in cols]
        err = [run.metrics.get(c, {}).get("balanced_accuracy_std", 0) for c in cols]
        ax.bar(x + (k - (len(runs) - 1) / 2) * width, vals, width, yerr=err, capsize=3, label=run.label)
    for i, c in enumerate(cols):
        chance = runs[0].metrics[c]["chance_balanced"]
        ax.plot([i - 0.45, i + 0.45], [chance, chance], "k:", lw=1)
    _finish_bars(plt, fig, ax, x, cols, "balanced accuracy (5-fold, +- std; dotted: chance)",
                 "Linear attribute probes", path)
    return True


# --- markdown ----------------------------------------------------------------------------------------------
def _unusable_md(runs: list[ModelRun]) -> list[str]:
    lines = ["", "## Unusable images", ""]
    any_bad = False
    for run in runs:
        u = run.metrics["unusable"]
        lines.append(f"- **{run.label}**: {u['count']} image(s) without a usable face "
                     f"({', '.join(f'{k}: {v}' for k, v in u['by_status'].items()) or 'none'}); "
                     f"{run.metrics.get('n', '?')} of {run.metrics.get('n_total', '?')} items evaluated")
        for f in u["files"][:200]:
            any_bad = True
            lines.append(f"  - `{f}`: {u['errors'].get(f, '')}")
        if len(u["files"]) > 200:
            lines.append(f"  - ... and {len(u['files']) - 200} more (all listed in metrics.json)")
    if not any_bad:
        lines.append("")
        lines.append("Every image had a usable face.")
    return lines


def _verification_md(runs: list[ModelRun], files: dict[str, str]) -> list[str]:
    fars = list(runs[0].metrics["tar_at_far"])
    head = "| model | accuracy (10-fold) | AUC | EER | " + " | ".join(f"TAR@FAR={f}" for f in fars) + " | pairs |"
    lines = [head, "|" + "---|" * (5 + len(fars))]
    for r in runs:
        m = r.metrics
        lines.append(f"| {r.label} | {m['accuracy']:.4f} +- {m['accuracy_std']:.4f} | {m['auc']:.4f} | {m['eer']:.4f} | "
                     + " | ".join(f"{m['tar_at_far'][f]:.4f}" for f in fars) + f" | {m['n']} of {m['n_total']} |")
    lines += ["", f"![ROC]({files['roc']})", ""]
    for r in runs:
        lines.append(f"![{r.label} similarities]({files['hist:' + r.label]})")
    return lines


def _agreement_md(runs: list[ModelRun], comparisons: list[dict], files: dict[str, str]) -> list[str]:
    lines = ["| model | agreement | 95% CI | triplets | ceiling |", "|---|---|---|---|---|"]
    for r in runs:
        m = r.metrics
        lines.append(f"| {r.label} | {m['agreement']:.4f} | {_ci(m['ci95'])} | {m['n']} of {m['n_total']} | "
                     f"{m['ceiling']:.4f} |")
    strata = sorted({s for r in runs for s in r.metrics["by_stratum"]})
    if strata:
        lines += ["", "### By stratum", "", "| stratum | " + " | ".join(r.label for r in runs) + " |",
                  "|---|" + "---|" * len(runs)]
        for s in strata:
            cells = []
            for r in runs:
                m = r.metrics["by_stratum"].get(s)
                cells.append(f"{m['agreement']:.4f} {_ci(m['ci95'])} (n={m['n']})" if m else "-")
            lines.append(f"| {s} | " + " | ".join(cells) + " |")
    if comparisons:
        lines += ["", "### Differences (paired bootstrap)", "", "| model - baseline | difference | 95% CI | triplets |",
                  "|---|---|---|---|"]
        for c in comparisons:
            lines.append(f"| {c['model']} - {c['baseline']} | {c['difference']:+.4f} | {_ci(c['ci95'])} | {c['n']} |")
    lines += ["", f"![agreement by stratum]({files['agreement']})"]
    return lines


def _attributes_md(runs: list[ModelRun], files: dict[str, str]) -> list[str]:
    lines = ["| model | label | probe | result | chance / baseline | n |", "|---|---|---|---|---|---|"]
    for r in runs:
        for col, v in r.metrics.items():
            if not isinstance(v, dict) or "kind" not in v:
                continue
            if v["kind"] == "classification":
                lines.append(f"| {r.label} | {col} | logistic | acc {v['accuracy']:.4f} +- {v['accuracy_std']:.4f}, "
                             f"balanced {v['balanced_accuracy']:.4f} +- {v['balanced_accuracy_std']:.4f} | "
                             f"majority {v['chance_majority']:.4f}, balanced {v['chance_balanced']:.4f} | {v['n']} |")
            elif v["kind"] == "regression":
                lines.append(f"| {r.label} | {col} | ridge | MAE {v['mae']:.3f} +- {v['mae_std']:.3f} | "
                             f"median MAE {v['baseline_mae']:.3f} | {v['n']} |")
            else:
                lines.append(f"| {r.label} | {col} | skipped | {v.get('reason', '')} | | |")
    if "attributes" in files:
        lines += ["", f"![attribute probes]({files['attributes']})"]
    return lines


def write_report(directory: str | os.PathLike, command: str, payload: dict, runs: list[ModelRun],
                 comparisons: list[dict] | None = None) -> Path:
    """Write ``report.md``, ``metrics.json`` (``payload``) and the plots of one eval command into ``directory``.

    Returns:
        Path of ``report.md``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(payload, indent=2) + "\n")
    files: dict[str, str] = {}
    if command == "verification":
        files["roc"] = "roc.png"
        _roc_plot(runs, out / files["roc"])
        for r in runs:
            name = f"similarity_hist_{_slug(r.label)}.png"
            files["hist:" + r.label] = name
            _hist_plot(r, out / name)
        body = _verification_md(runs, files)
    elif command == "agreement":
        files["agreement"] = "agreement_by_stratum.png"
        _agreement_plot(runs, out / files["agreement"])
        body = _agreement_md(runs, comparisons or [], files)
    elif command == "attributes":
        if _attributes_plot(runs, out / "attributes.png"):
            files["attributes"] = "attributes.png"
        body = _attributes_md(runs, files)
    else:
        raise ValueError(f"unknown eval command {command!r}")
    source = {k: v for k, v in payload.items() if k not in ("models", "comparisons")}
    head = [f"# perface eval {command}", ""] + [f"- {k}: `{v}`" for k, v in source.items()] + [""]
    (out / "report.md").write_text("\n".join(head + body + _unusable_md(runs)) + "\n")
    return out / "report.md"
