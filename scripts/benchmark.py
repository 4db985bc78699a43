"""PerFace benchmarks, measured side by side in one run (ratios, not absolute times, are what travel between
machines). Every figure in README's Performance section comes from one run of this script.

Sections (``--sections`` picks some; default: all):

* ``detect``: face finding with the old default (``hog``, upsample 0), the default (``hog+cnn``, upsample
  ``auto``) and the reference ``--detector hog+cnn --upsample 1``, on ``photos/images`` and an LFW sample:
  images where a face is found and milliseconds per image (detection + landmarks on decoded images; the
  three settings run on each image in turn, so machine load hits them alike).
* ``e2e``: ``perface embed`` end to end (a subprocess: start-up, decoding, face finding, alignment, network,
  Parquet) vs the pipeline ``face_recognition`` uses (dlib HOG upsample 1 + 5-point landmarks +
  ``compute_face_descriptor``, one image at a time), on the same LFW images.
* ``chips``: the network alone on aligned 150x150 chips: perface torch (batch 64) vs dlib's batched
  ``compute_face_descriptor``.
* ``engines``: the network on chips in torch eager vs ONNX Runtime (``perface export``), same chips, batch and
  threads, alternating runs, best of ``--repeats``.
* ``coldstart``: process start to printed score of ``perface score A B`` with the torch base model vs an
  ``.onnx`` export, median of ``--repeats`` alternating runs.

Usage: python scripts/benchmark.py [--sections detect,e2e,...] [--n 600] [--json]
Images come from the dataset root (``$PERFACE_DATA``, default ``../shared/data``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SECTIONS = ("detect", "e2e", "chips", "engines", "coldstart")


def lfw_sample(data: Path, n: int) -> list[str]:
    """``n`` LFW images spread evenly over the sorted file list (the same sample in every section)."""
    files = sorted((data / "lfw" / "images").glob("*/*.jpg"))
    step = max(1, len(files) // n)
    return [str(f) for f in files[::step][:n]]


# --- detect ------------------------------------------------------------------------------------------------
def bench_detect(sets: dict[str, list[str]]) -> dict:
    from perface.face import FacePipeline
    from perface.io.image import load_image
    from perface.preprocessing import DLIB, LEGACY_FACE_OPTIONS, FaceOptions

    settings = {"old default (hog, upsample 0)": LEGACY_FACE_OPTIONS,
                "default (hog+cnn, upsample auto)": FaceOptions(),
                "hog+cnn, upsample 1": FaceOptions(detector="hog+cnn", upsample=1)}
    pipelines = {k: FacePipeline(DLIB, o) for k, o in settings.items()}
    out = {}
    for name, files in sets.items():
        found = {k: 0 for k in settings}
        seconds = {k: 0.0 for k in settings}
        for f in files:
            image = load_image(f)
            for k, pipe in pipelines.items():
                t = time.perf_counter()
                faces = pipe.detect(image)
                seconds[k] += time.perf_counter() - t
                found[k] += bool(faces)
        out[name] = {k: {"images": len(files), "found": found[k], "ms_per_image": 1000 * seconds[k] / len(files)}
                     for k in settings}
    return out


# --- e2e ---------------------------------------------------------------------------------------------------
def bench_perface_embed(files: list[str]) -> tuple[float, int]:
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.parquet"
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "perface", "embed", *files, "--out", str(out), "--no-progress"],
                       check=True, capture_output=True)
        dt = time.perf_counter() - t
        faces = int((pd.read_parquet(out).status == "ok").sum())
    return dt, faces


def bench_face_recognition_pipeline(files: list[str], upsample: int = 1) -> tuple[float, int]:
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


def bench_e2e(files: list[str]) -> dict:
    a_s, a_faces = bench_perface_embed(files)
    b_s, b_faces = bench_face_recognition_pipeline(files, upsample=1)
    res = {"images": len(files), "perface_embed_faces_per_s": a_faces / a_s, "perface_embed_faces": a_faces,
           "face_recognition_faces_per_s": b_faces / b_s, "face_recognition_faces": b_faces}
    res["ratio"] = res["perface_embed_faces_per_s"] / res["face_recognition_faces_per_s"]
    return res


# --- chips -------------------------------------------------------------------------------------------------
def _chips(files: list[str]) -> np.ndarray:
    import perface

    model = perface.load("base", on_no_face="whole-image")
    return np.stack([model.faces(f)[0].chip for f in files])


def bench_chips(files: list[str]) -> dict:
    import dlib

    import perface
    from perface.dlib_files import RECOGNITION_RESNET, dlib_model_path

    model = perface.load("base")
    chips = _chips(files)
    model.embed_chips(chips[:8])  # warm-up
    t = time.perf_counter()
    model.embed_chips(chips, batch_size=64)
    torch_s = time.perf_counter() - t
    encoder = dlib.face_recognition_model_v1(str(dlib_model_path(RECOGNITION_RESNET)))
    t = time.perf_counter()
    encoder.compute_face_descriptor([c for c in chips])
    dlib_s = time.perf_counter() - t
    return {"chips": len(chips), "torch_faces_per_s": len(chips) / torch_s, "dlib_faces_per_s": len(chips) / dlib_s,
            "ratio": dlib_s / torch_s}


# --- engines -----------------------------------------------------------------------------------------------
def _throughput(model, chips: np.ndarray, batch: int) -> float:
    t = time.perf_counter()
    model.embed_chips(chips, batch_size=batch)
    return time.perf_counter() - t


def bench_engines(files: list[str], batch: int, threads: int, repeats: int, tmp: Path) -> dict:
    import torch

    import perface
    from perface.export import export_onnx

    torch.set_num_threads(threads)
    base = perface.load("base", threads=threads)
    onnx_path = tmp / "base.onnx"
    export_onnx(base, onnx_path, images=files[:16])
    onnx_model = perface.load(onnx_path, threads=threads)
    chips = _chips(files)
    diff = float(np.abs(onnx_model.embed_chips(chips) - base.embed_chips(chips)).max())
    for m in (base, onnx_model):  # warm-up
        m.embed_chips(chips[:batch], batch_size=batch)
    t_torch, t_onnx = [], []
    for _ in range(repeats):  # alternate so that machine load affects both alike
        t_torch.append(_throughput(base, chips, batch))
        t_onnx.append(_throughput(onnx_model, chips, batch))
    return {"chips": len(chips), "batch": batch, "threads": threads, "repeats": repeats, "max_abs_diff": diff,
            "torch_faces_per_s": len(chips) / min(t_torch), "onnx_faces_per_s": len(chips) / min(t_onnx),
            "ratio": min(t_torch) / min(t_onnx)}


# --- coldstart ---------------------------------------------------------------------------------------------
def _cold(args: list[str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "perface", *args], capture_output=True, text=True)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"perface {' '.join(args)} failed: {proc.stderr.strip()}")
    float(proc.stdout.strip())  # a score was printed
    return dt


def bench_coldstart(files: list[str], repeats: int, tmp: Path) -> dict:
    import perface
    from perface.export import export_onnx

    onnx_path = tmp / "cold.onnx"
    if not onnx_path.exists():
        export_onnx(perface.load("base"), onnx_path)
    a, b = files[0], files[1]
    torch_args, onnx_args = ["score", a, b], ["score", "--model", str(onnx_path), a, b]
    _cold(torch_args), _cold(onnx_args)  # warm the page cache and the weight caches
    c_torch, c_onnx = [], []
    for _ in range(repeats):
        c_torch.append(_cold(torch_args))
        c_onnx.append(_cold(onnx_args))
    return {"repeats": repeats, "torch_s": statistics.median(c_torch), "onnx_s": statistics.median(c_onnx)}


# --- main --------------------------------------------------------------------------------------------------
def _print(res: dict) -> None:
    print(f"machine: {res['cpu_count']} CPU cores; torch {res['torch']}, onnxruntime {res['onnxruntime']}")
    if "detect" in res:
        print("\n[detect] images with a face found, and ms per image (detection + landmarks)")
        for set_name, rows in res["detect"].items():
            for k, v in rows.items():
                print(f"  {set_name:8s} {k:34s} {v['found']:5d}/{v['images']:<5d} {v['ms_per_image']:8.1f} ms")
    if "e2e" in res:
        e = res["e2e"]
        print(f"\n[e2e] {e['images']} LFW images")
        print(f"  perface embed (end to end)        {e['perface_embed_faces_per_s']:8.1f} faces/s ({e['perface_embed_faces']} faces)")
        print(f"  face_recognition pipeline         {e['face_recognition_faces_per_s']:8.1f} faces/s ({e['face_recognition_faces']} faces)")
        print(f"  ratio                             {e['ratio']:8.2f}x")
    if "chips" in res:
        c = res["chips"]
        print(f"\n[chips] {c['chips']} chips: torch {c['torch_faces_per_s']:.1f} faces/s vs dlib "
              f"{c['dlib_faces_per_s']:.1f} faces/s = {c['ratio']:.2f}x")
    if "engines" in res:
        g = res["engines"]
        print(f"\n[engines] {g['chips']} chips, batch {g['batch']}, {g['threads']} threads, best of {g['repeats']}, "
              f"max |onnx - torch| {g['max_abs_diff']:.1e}")
        print(f"  torch eager {g['torch_faces_per_s']:8.1f} faces/s   ONNX Runtime {g['onnx_faces_per_s']:8.1f} faces/s "
              f"({g['ratio']:.2f}x)")
    if "coldstart" in res:
        c = res["coldstart"]
        print(f"\n[coldstart] perface score, process start to printed score, median of {c['repeats']}: "
              f"torch {c['torch_s']:.2f} s, .onnx {c['onnx_s']:.2f} s")


def main() -> int:
    from perface.io.files import data_root

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated, from {', '.join(SECTIONS)}")
    parser.add_argument("--n", type=int, default=600, help="LFW images for e2e (default: 600)")
    parser.add_argument("--n-detect", type=int, default=400, help="LFW images for detect (default: 400)")
    parser.add_argument("--n-chips", type=int, default=256, help="chips for chips/engines (default: 256)")
    parser.add_argument("--batch", type=int, default=32, help="batch for engines (default: 32)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for engines (default: all)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats for engines / coldstart (default: 5)")
    parser.add_argument("--data", default=None, help="dataset root (default: $PERFACE_DATA or ../shared/data)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = [s for s in sections if s not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; choose from {', '.join(SECTIONS)}")
    data = data_root(args.data)
    import onnxruntime
    import torch

    res: dict = {"cpu_count": os.cpu_count(), "torch": torch.__version__, "onnxruntime": onnxruntime.__version__}
    lfw = lfw_sample(data, max(args.n, args.n_detect, args.n_chips))
    with tempfile.TemporaryDirectory() as tmp:
        for section in sections:
            if section == "detect":
                photos = sorted(str(p) for p in (data / "photos" / "images").iterdir())
                res["detect"] = bench_detect({"photos": photos, "lfw": lfw_sample(data, args.n_detect)})
            elif section == "e2e":
                res["e2e"] = bench_e2e(lfw_sample(data, args.n))
            elif section == "chips":
                res["chips"] = bench_chips(lfw_sample(data, args.n_chips))
            elif section == "engines":
                res["engines"] = bench_engines(lfw_sample(data, args.n_chips), args.batch, args.threads, args.repeats,
                                               Path(tmp))
            elif section == "coldstart":
                res["coldstart"] = bench_coldstart(lfw, args.repeats, Path(tmp))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        _print(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
