"""Embedding throughput, measured side by side in one run on the same LFW images.

(a) ``perface embed`` end to end (a subprocess: start-up, decoding, HOG detection, landmarks, alignment,
    batched torch network, Parquet output);
(b) the pipeline ``face_recognition`` uses: dlib HOG with one upsampling step (its default) + 5-point
    landmarks + ``compute_face_descriptor``, one image at a time; (b0) the same with no upsampling, which is
    perface's default detector setting, to separate detector settings from the rest;
(c) embedding only, on pre-aligned 150x150 chips: perface's torch model (batches of 64) vs dlib's
    ``compute_face_descriptor`` (batched call);
(d) the network on chips in ONNX Runtime vs torch eager, and (e) the cold start of ``perface score`` with
    an ``.onnx`` model vs the torch model (see scripts/benchmark_onnx.py, which runs these alone).

Usage: python scripts/benchmark_embed.py [--n 600] [--data $PERFACE_DATA]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def lfw_sample(data: Path, n: int) -> list[str]:
    files = sorted((data / "lfw" / "images").glob("*/*.jpg"))
    step = max(1, len(files) // n)
    return [str(f) for f in files[::step][:n]]


def bench_perface_cli(files: list[str]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        lst = Path(tmp) / "out.parquet"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "perface", "embed", *files, "--out", str(lst), "--no-progress"],
                       check=True, capture_output=True)
        dt = time.perf_counter() - t
        import pandas as pd

        faces = int((pd.read_parquet(lst).status == "ok").sum())
    return dt, faces


def bench_face_recognition_pipeline(files: list[str], upsample: int) -> tuple[float, int]:
    import dlib
    from PIL import Image

    from perface.dlib_files import LANDMARKS_5, RECOGNITION_RESNET, dlib_model_path

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_path(LANDMARKS_5)))
    encoder = dlib.face_recognition_model_v1(str(dlib_model_path(RECOGNITION_RESNET)))
    faces = 0
    t = time.perf_counter()
    for f in files:
        image = np.asarray(Image.open(f).convert("RGB"))
        for rect in detector(image, upsample):
            np.array(encoder.compute_face_descriptor(image, predictor(image, rect), 1))
            faces += 1
    return time.perf_counter() - t, faces


def bench_chips(files: list[str]) -> dict[str, float]:
    import dlib
    import torch

    import perface
    from perface.dlib_files import RECOGNITION_RESNET, dlib_model_path

    model = perface.load("base")
    chips = np.stack([a.chip for f in files for a in model.faces(f, on_no_face="whole-image")])
    model.embed_chips(chips[:8])  # warm-up
    t = time.perf_counter()
    model.embed_chips(chips, batch_size=64)
    torch_s = time.perf_counter() - t
    encoder = dlib.face_recognition_model_v1(str(dlib_model_path(RECOGNITION_RESNET)))
    t = time.perf_counter()
    encoder.compute_face_descriptor([c for c in chips])
    dlib_s = time.perf_counter() - t
    return {"chips": len(chips), "torch_faces_per_s": len(chips) / torch_s, "dlib_faces_per_s": len(chips) / dlib_s,
            "torch_threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600, help="number of LFW images")
    ap.add_argument("--data", default=os.environ.get("PERFACE_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "data")))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--skip-onnx", action="store_true", help="skip (d) ONNX Runtime vs torch and (e) cold start")
    args = ap.parse_args()
    files = lfw_sample(Path(args.data), args.n)
    a_s, a_faces = bench_perface_cli(files)
    b_s, b_faces = bench_face_recognition_pipeline(files, upsample=1)
    b0_s, b0_faces = bench_face_recognition_pipeline(files, upsample=0)
    c = bench_chips(files)
    res = {
        "images": len(files), "cpu_cores": os.cpu_count(),
        "a_perface_embed_faces_per_s": a_faces / a_s, "a_faces": a_faces,
        "b_face_recognition_faces_per_s": b_faces / b_s, "b_faces": b_faces,
        "b0_face_recognition_upsample0_faces_per_s": b0_faces / b0_s, "b0_faces": b0_faces,
        "c_torch_chip_faces_per_s": c["torch_faces_per_s"], "c_dlib_chip_faces_per_s": c["dlib_faces_per_s"],
    }
    res["ratio_a_over_b"] = res["a_perface_embed_faces_per_s"] / res["b_face_recognition_faces_per_s"]
    res["ratio_a_over_b0"] = res["a_perface_embed_faces_per_s"] / res["b0_face_recognition_upsample0_faces_per_s"]
    res["ratio_c_torch_over_dlib"] = c["torch_faces_per_s"] / c["dlib_faces_per_s"]
    onnx = None
    if not args.skip_onnx:  # (d) network on chips, ONNX Runtime vs torch eager; (e) cold start of perface score
        from benchmark_onnx import measure, print_result

        onnx = measure(files[:256], batch=32, threads=os.cpu_count() or 1, repeats=5)
        res["onnx"] = onnx
    if args.json:
        print(json.dumps(res, indent=2))
        return
    print(f"{len(files)} LFW images, {os.cpu_count()} cores")
    print(f"(a)  perface embed, end to end            {res['a_perface_embed_faces_per_s']:8.1f} faces/s ({a_faces} faces)")
    print(f"(b)  face_recognition pipeline (upsample 1) {res['b_face_recognition_faces_per_s']:8.1f} faces/s ({b_faces} faces)")
    print(f"(b0) same pipeline, upsample 0             {res['b0_face_recognition_upsample0_faces_per_s']:8.1f} faces/s ({b0_faces} faces)")
    print(f"(c)  chips only: torch {c['torch_faces_per_s']:.1f} faces/s vs dlib {c['dlib_faces_per_s']:.1f} faces/s")
    print(f"ratios: a/b = {res['ratio_a_over_b']:.2f}x, a/b0 = {res['ratio_a_over_b0']:.2f}x, "
          f"c torch/dlib = {res['ratio_c_torch_over_dlib']:.2f}x")
    if onnx is not None:
        print("(d)/(e) ONNX Runtime vs torch eager:")
        print_result(onnx)


if __name__ == "__main__":
    main()
