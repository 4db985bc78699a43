"""Throughput of the generated-face evaluations: swap rows per second and video frames per second.

(a) ``perface.evaluation.swap.evaluate`` on ``--rows`` rows built from real LFW photos (source, target and a
    classical landmark face swap of the two as result: three distinct images per row), with the base model as
    both perceptual and identity model, already loaded with its own face options: everything per row is timed
    (decode, one detection per image: HOG, the MMOD CNN only where HOG finds none; 68 + 5 landmarks, head pose,
    alignment, batched embedding, the metrics, ID retrieval, bootstrap).
(b) ``perface.evaluation.video.evaluate`` on a ``--frames`` frame MP4 (160 px, written with OpenCV from one LFW
    person's photos): decode (PyAV), detection, landmarks, pose, alignment and embedding per frame.

Best of ``--repeats`` runs each. Usage: python scripts/benchmark_generated.py [--rows 60] [--frames 120]
[--repeats 3] [--json] [--keep DIR] (images from the dataset root, :func:`perface.io.files.data_root`:
$PERFACE_DATA, default ../shared/data beside the repository). The swaps are made with
:mod:`perface.evaluation.classical_swap`.
``--keep DIR`` writes the inputs instead of a temporary folder, for trying the commands by hand:
``DIR/pairs.csv`` (source,target,result), ``DIR/anonymization.csv`` (original = target, anonymized = result),
the swaps ``DIR/swap_*.png`` and ``DIR/clip.mp4``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import pandas as pd
import torch
from PIL import Image

from perface.errors import NoFaceError
from perface.evaluation.classical_swap import face_swap
from perface.io.files import data_root
from perface.io.image import load_image


def _people(lfw: Path, min_photos: int) -> list[str]:
    names = sorted(p.name for p in (lfw / "images").iterdir() if p.is_dir())
    return [n for n in names if len(list((lfw / "images" / n).glob("*.jpg"))) >= min_photos]


def build_rows(lfw: Path, n: int, out: Path) -> pd.DataFrame:
    if not (out / "lfw").exists():
        (out / "lfw").symlink_to(lfw / "images")
    people = _people(lfw, 2)
    rows, i = [], 0
    while len(rows) < n and 2 * i + 1 < len(people):
        s, t = people[2 * i], people[2 * i + 1]
        i += 1
        src, tgt = lfw / "images" / s / f"{s}_0001.jpg", lfw / "images" / t / f"{t}_0002.jpg"
        try:
            swapped = face_swap(load_image(src), load_image(tgt))
        except NoFaceError:  # no face for the classical swap
            continue
        result = out / f"swap_{len(rows)}.png"
        Image.fromarray(swapped).save(result)
        rows.append({"source": f"lfw/{s}/{src.name}", "target": f"lfw/{t}/{tgt.name}", "result": result.name})
    return pd.DataFrame(rows)  # paths relative to ``out``, where lfw/ links to LFW's images


def build_clip(lfw: Path, n: int, out: Path) -> Path:
    person = "George_W_Bush"
    photos = sorted((lfw / "images" / person).glob("*.jpg"))[:n]
    path = out / "clip.mp4"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (160, 160))
    for k in range(n):
        w.write(cv2.cvtColor(load_image(photos[k % len(photos)])[45:205, 45:205], cv2.COLOR_RGB2BGR))
    w.release()
    return path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=60)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", metavar="DIR", help="write the generated inputs to DIR and keep them")
    args = ap.parse_args()
    lfw = data_root() / "lfw"
    import perface
    from perface.evaluation import swap, video

    model = perface.load("base")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp)
        out.mkdir(parents=True, exist_ok=True)
        rows = build_rows(lfw, args.rows, out)
        clip = build_clip(lfw, args.frames, out)
        if args.keep:
            rows.to_csv(out / "pairs.csv", index=False)
            rows.rename(columns={"target": "original", "result": "anonymized"})[["original", "anonymized"]].to_csv(
                out / "anonymization.csv", index=False)
        swap.evaluate(rows.iloc[:3], root=out, model=model, id_model=model, n_boot=200)  # warm-up (predictors, torch)
        t_swap, t_video = [], []
        for _ in range(args.repeats):
            t = time.perf_counter()
            rep = swap.evaluate(rows, root=out, model=model, id_model=model)
            t_swap.append(time.perf_counter() - t)
            t = time.perf_counter()
            vrep = video.evaluate(clip, model=model, id_model=model)
            t_video.append(time.perf_counter() - t)
    result = {"swap_rows": len(rows), "swap_rows_evaluated": rep.info["n"], "swap_seconds": min(t_swap),
              "swap_rows_per_s": len(rows) / min(t_swap), "video_frames": vrep.videos[0]["frames"],
              "video_seconds": min(t_video), "frames_per_s": vrep.videos[0]["frames"] / min(t_video),
              "threads": torch.get_num_threads(), "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"(a) eval swap:  {result['swap_rows']} rows ({3 * result['swap_rows']} images) in "
              f"{result['swap_seconds']:.2f} s = {result['swap_rows_per_s']:.1f} rows/s")
        print(f"(b) eval video: {result['video_frames']} frames of 160 px in {result['video_seconds']:.2f} s = "
              f"{result['frames_per_s']:.1f} frames/s")
        print(f"best of {args.repeats}; {result['cpus']} CPUs, torch threads {result['threads']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
