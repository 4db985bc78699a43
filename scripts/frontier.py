"""Post-hoc moves along a trained model's agreement / identity trade-off, measured as a sweep trial is.

    python scripts/frontier.py CHECKPOINT --alpha 0,1,1.3,1.6 --mix 0.6,0.8,1.0

For a checkpoint fine-tuned from the config's base model (``--config``, default
``configs/proxy_attributes.yaml``) it measures

* **weight-space interpolation** with the base model (WiSE-FT; Wortsman et al., "Robust fine-tuning of
  zero-shot models", CVPR 2022): parameters ``base + alpha * (trained - base)`` for each ``--alpha``
  (0: the base model, 1: the checkpoint, above 1: extrapolated past it), and
* an **output-space mixture** of each such model with the base model: similarity
  ``(1 - w) * cos_base + w * cos_model`` for each ``--mix`` weight ``w`` (a two-branch model whose branches
  are the base model and the fine-tuned one),

each on the training file's val split (2AFC soft credit, overall and per stratum, as training logs it) and on
LFW's development view (accuracy and TAR@FAR1e-3, :class:`sweep.LfwDev`), so the rows compare with the sweep
report's. If these moves trace the same curve as the sweep's retention weights, the trade-off is set by the
representation, not by where a recipe stops on it. One JSON line per (alpha, w) on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sweep  # noqa: E402  (the sweep's CLI construction and LFW development-view measurement)

def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def weights(text: str) -> list[float]:
    values = floats(text)
    if any(not 0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"mixture weights must lie in [0, 1], got {text}")
    return values


def trained_state(path: Path, base: dict, config: Path) -> dict:
    """The state dict of the Lightning checkpoint ``path``, checked to hold every entry of the base model's
    ``model.*`` (the PerFace model; a training module's frozen base copy may differ) with the same shape: a
    checkpoint of another backbone or head cannot be interpolated with it."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
    except Exception as e:  # not a torch file, or no Lightning state dict in it
        raise SystemExit(f"frontier.py: {path}: not a Lightning checkpoint ({type(e).__name__}: {e}); give a .ckpt "
                         "that scripts/train.py wrote") from None
    odd = [k for k, v in base.items() if k.startswith("model.") and (k not in state or state[k].shape != v.shape)]
    if odd:
        raise SystemExit(f"frontier.py: {path} was not fine-tuned from the model of {config} ({len(odd)} entries "
                         f"missing or of another shape, e.g. {odd[0]}); give --config the config it was trained with")
    return state


def interpolate(base: dict, trained: dict, alpha: float) -> dict:
    """``base + alpha * (trained - base)`` for floating-point entries of two state dicts; other entries are
    trained's, and entries ``trained`` lacks stay the base's."""
    def one(k, v):
        if k not in trained:
            return v
        return v + alpha * (trained[k].to(v.dtype) - v) if v.is_floating_point() else trained[k]

    return {k: one(k, v) for k, v in base.items()}


def mixed_embeddings(base: np.ndarray, model: np.ndarray, w: float) -> np.ndarray:
    """(N, D1) and (N, D2) unit vectors -> (N, D1 + D2) unit vectors ``[sqrt(1-w) base, sqrt(w) model]``, whose
    cosines are the mixed similarity ``(1 - w) cos_base + w cos_model``."""
    return np.concatenate([np.sqrt(1 - w) * base, np.sqrt(w) * model], axis=1)


def lfw_distribution(lfw, emb: np.ndarray) -> dict:
    """Where identity is lost: the FAR-1e-3 threshold over all different-person pairs of LFW dev, their mean and
    spread, and the 5th percentile of its same-person pairs (cosines of the unit vectors ``emb``)."""
    genuine, impostor = lfw.genuine_impostor(emb)
    return {"threshold_far1e-3": float(np.quantile(impostor, 1 - 1e-3)), "impostor_mean": float(impostor.mean()),
            "impostor_std": float(impostor.std()), "genuine_p05": float(np.quantile(genuine, 0.05))}


def val_similarities(module, datamodule) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(sim_a, sim_b, p_a, stratum code) of every val triplet, embedded as validation embeds them."""
    import torch

    module.eval()
    parts: list[list[np.ndarray]] = [[], [], [], []]
    with torch.no_grad():
        for batch in datamodule.val_dataloader():
            anchor, a, b, _ = module.triplet_embeddings(batch, training=False)
            stratum = batch.get("stratum", torch.full((len(anchor),), -1))
            for part, v in zip(parts, ((anchor * a).sum(1), (anchor * b).sum(1), batch["p_a"], stratum)):
                part.append(v.cpu().numpy())
    sa, sb, p, st = (np.concatenate(part) for part in parts)
    return sa, sb, p, st


def agreement(sa: np.ndarray, sb: np.ndarray, p: np.ndarray, st: np.ndarray, names: list[str] | None) -> dict:
    from perface.evaluation.agreement import triplet_credit

    credit = triplet_credit(sa, sb, p)
    out = {"val_agreement": float(credit.mean())}
    for code, name in enumerate(names or []):
        if name in sweep.SINGLE and np.any(st == code):
            out[f"val_agreement/{name}"] = float(credit[st == code].mean())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", type=Path, help="a .ckpt fine-tuned from --config's base model")
    ap.add_argument("--config", type=Path, default=sweep.REPO / "configs" / "proxy_attributes.yaml")
    ap.add_argument("--alpha", type=floats, default=[0.0, 1.0], help="interpolation factors (comma-separated)")
    ap.add_argument("--mix", type=weights, default=[1.0], help="output-mixture weights w of the model (comma-separated)")
    ap.add_argument("--distribution", action="store_true",
                    help="also the LFW dev cosine distributions (FAR-1e-3 threshold, impostor mean / std, "
                         "genuine 5th percentile)")
    ap.add_argument("--root", default=None, help="dataset root (default: $PERFACE_DATA)")
    args = ap.parse_args(argv)
    if not args.checkpoint.is_file():
        raise SystemExit(f"frontier.py: {args.checkpoint}: no such checkpoint; give a .ckpt that scripts/train.py wrote")
    if argv is None:
        sys.argv = sys.argv[:1]  # LightningCLI reads only the arguments given below
    runner = sweep.Runner(args.config, Path(os.environ.get("TMPDIR", "/tmp")) / "perface_frontier", args.root, [])
    cli = runner.cli([f"--trainer.logger.init_args.save_dir={runner.workdir}", "--trainer.logger.init_args.name=frontier",
                      "--model.perceptual_weight=null"])
    module, dm = cli.model, cli.datamodule
    base_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    trained = trained_state(args.checkpoint, base_state, args.config)  # before the slow part: bad input fails fast
    runner.share_caches(module, dm)
    cli.trainer.validate(module, datamodule=dm, verbose=False)  # attaches the data module (its val split, strata)
    lfw = sweep.LfwDev(Path(dm.root) / "lfw", dm, module.model.preprocessing)

    base_val, base_lfw = val_similarities(module, dm), lfw.embeddings(module)
    for alpha in args.alpha:
        module.load_state_dict(interpolate(base_state, trained, alpha))
        (sa, sb, p, st), emb = val_similarities(module, dm), lfw.embeddings(module)
        for w in args.mix:
            mixed_a = (1 - w) * base_val[0] + w * sa
            mixed_b = (1 - w) * base_val[1] + w * sb
            joint = mixed_embeddings(base_lfw, emb, w)
            row = {"alpha": alpha, "w": w, **agreement(mixed_a, mixed_b, p, st, dm.strata), **lfw.metrics(joint)}
            if args.distribution:
                row.update(lfw_distribution(lfw, joint))
            print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())
