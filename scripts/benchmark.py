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
* ``engines``: the network on chips in torch eager vs ONNX Runtime fp32 (the default engine) vs ONNX Runtime
  int8 (``perface export --quantize int8``, calibrated on other LFW faces), same chips, batch and threads,
  alternating runs, best of ``--repeats``.
* ``quality``: what int8 costs: LFW ``pairs.txt`` 10-fold accuracy and the proxy test-split agreement of the
  fp32 and int8 models (``perface eval``'s functions, each model its own cache), and the largest cosine
  deviation between their embeddings.
* ``coldstart``: process start to printed score of ``perface score A B`` with the default model and engine
  (ONNX Runtime, the engine file already in the cache) vs ``--engine torch``, median of ``--repeats``
  alternating runs.
* ``training``: triplets per second of ``scripts/train.py`` with ``configs/proxy_attributes.yaml`` (frozen
  stages cached), second epoch of a short run on 2,000 triplets.
* ``gpu`` (only when a GPU is present): the network on chips, batch 256, torch CUDA fp32 / fp16 and ONNX
  Runtime's CUDA provider.

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

SECTIONS = ("detect", "e2e", "chips", "engines", "quality", "coldstart", "training", "gpu")


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


def _int8(base, data: Path, tmp: Path, exclude: set[str]) -> Path:
    """An int8 export of ``base`` calibrated on 256 LFW faces not among ``exclude``."""
    from perface.export import export_onnx

    path = tmp / "base-int8.onnx"
    if not path.exists():
        calibration = [f for f in lfw_sample(data, 2000)[1::7] if f not in exclude][:256]
        export_onnx(base, path, quantize="int8", calibration=calibration)
    return path


def bench_engines(files: list[str], batch: int, threads: int, repeats: int, tmp: Path, data: Path) -> dict:
    import torch

    import perface

    torch.set_num_threads(threads)
    base = perface.load("base", engine="torch", threads=threads)
    fp32 = perface.load("base", engine="onnx", threads=threads)
    int8 = perface.load(_int8(base, data, tmp, set(files)), threads=threads)
    chips = _chips(files)
    ref = base.embed_chips(chips)
    diff = float(np.abs(fp32.embed_chips(chips) - ref).max())
    cos8 = float(np.max(1 - np.sum(int8.embed_chips(chips).astype(np.float64) * ref, axis=1)))
    models = {"torch": base, "onnx_fp32": fp32, "onnx_int8": int8}
    for m in models.values():  # warm-up
        m.embed_chips(chips[:batch], batch_size=batch)
    times: dict[str, list[float]] = {k: [] for k in models}
    for _ in range(repeats):  # alternate so that machine load affects all alike
        for k, m in models.items():
            times[k].append(_throughput(m, chips, batch))
    fps = {k: len(chips) / min(v) for k, v in times.items()}
    return {"chips": len(chips), "batch": batch, "threads": threads, "repeats": repeats, "fp32_max_abs_diff": diff,
            "int8_max_cosine_deviation": cos8, **{f"{k}_faces_per_s": v for k, v in fps.items()},
            "onnx_over_torch": fps["onnx_fp32"] / fps["torch"], "int8_over_fp32": fps["onnx_int8"] / fps["onnx_fp32"]}


# --- quality -----------------------------------------------------------------------------------------------
def bench_quality(data: Path, tmp: Path) -> dict:
    """LFW 10-fold accuracy and proxy test-split agreement of fp32 vs int8, and their largest cosine deviation."""
    import perface
    from perface.evaluation.evaluate import EmbedOptions, agreement_file, verification_file

    base = perface.load("base", engine="torch")
    fp32 = perface.load("base")
    int8 = perface.load(_int8(base, data, tmp, set()))
    models = {"fp32": fp32, "int8": int8}
    options = EmbedOptions(workers=None)
    lfw = verification_file(data / "lfw" / "pairs.txt", models, options=options)
    triplets = Path(__file__).resolve().parents[1] / "data" / "annotations" / "proxy_attributes_utkface_fairface_30k.parquet"
    agree = agreement_file(triplets, models, root=data, split="test", options=options)
    m = {r.label: r for r in lfw.runs}
    sims = {k: m[k].data["similarities"] for k in m}
    a = {r.label: r.metrics for r in agree.runs}
    return {
        "lfw_accuracy": {k: m[k].metrics["accuracy"] for k in m},
        "lfw_tar_at_far_1e-3": {k: m[k].metrics["tar_at_far"]["1e-03"] for k in m},
        "lfw_pairs": {k: m[k].metrics["n"] for k in m},
        "agreement": {k: a[k]["agreement"] for k in a}, "agreement_triplets": {k: a[k]["n"] for k in a},
        "agreement_difference": agree.comparisons[0]["difference"],
        "lfw_max_similarity_change": float(np.max(np.abs(sims["fp32"] - sims["int8"])))
        if len(sims["fp32"]) == len(sims["int8"]) else None,
    }


# --- coldstart ---------------------------------------------------------------------------------------------
def _cold(args: list[str]) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "perface", *args], capture_output=True, text=True)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"perface {' '.join(args)} failed: {proc.stderr.strip()}")
    float(proc.stdout.strip())  # a score was printed
    return dt


def bench_coldstart(files: list[str], repeats: int) -> dict:
    a, b = files[0], files[1]
    default_args, torch_args = ["score", a, b], ["score", "--engine", "torch", a, b]
    _cold(default_args), _cold(torch_args)  # the engine file and the page cache are warm, as for any later run
    c_default, c_torch = [], []
    for _ in range(repeats):
        c_default.append(_cold(default_args))
        c_torch.append(_cold(torch_args))
    return {"repeats": repeats, "default_s": statistics.median(c_default), "torch_s": statistics.median(c_torch),
            "default_all_s": c_default}


# --- training ----------------------------------------------------------------------------------------------
def bench_training(data: Path, tmp: Path) -> dict:
    import pandas as pd

    repo = Path(__file__).resolve().parents[1]
    cmd = [sys.executable, str(repo / "scripts" / "train.py"), "fit", "--config", str(repo / "configs" / "proxy_attributes.yaml"),
           f"--data.root={data}", "--data.max_train=2000", "--data.max_val=200", "--trainer.max_epochs=2",
           "--trainer.enable_progress_bar=false", f"--trainer.logger.init_args.save_dir={tmp / 'train'}",
           "--trainer.callbacks=[]", "--trainer.enable_checkpointing=false"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=repo)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    metrics = sorted((tmp / "train").rglob("metrics.csv"))[-1]
    rates = pd.read_csv(metrics)["train_triplets_per_s"].dropna().to_numpy()
    return {"triplets": 2000, "first_epoch_triplets_per_s": float(rates[0]), "triplets_per_s": float(rates[-1])}


# --- gpu ---------------------------------------------------------------------------------------------------
def bench_gpu(files: list[str], tmp: Path) -> dict:
    import torch

    import perface

    if not torch.cuda.is_available():
        return {"skipped": "no GPU"}
    chips = _chips(files)
    chips = np.concatenate([chips] * max(1, 2048 // len(chips)))[:2048]
    out = {"device": torch.cuda.get_device_name(0), "chips": len(chips), "batch": 256}
    model = perface.load("base", engine="torch", device="cuda")
    x = torch.from_numpy(model.preprocessing.normalize(chips)).cuda()
    for name, dtype in (("torch_fp32", torch.float32), ("torch_fp16", torch.float16)):
        m = model.to(dtype)
        with torch.inference_mode():
            m.embed_tensor(x[:256].to(dtype))
            torch.cuda.synchronize()
            t = time.perf_counter()
            for i in range(0, len(x), 256):
                m.embed_tensor(x[i : i + 256].to(dtype))
            torch.cuda.synchronize()
        out[f"{name}_faces_per_s"] = len(x) / (time.perf_counter() - t)
    model.float()
    try:
        onnx_model = perface.load("base", engine="onnx", device="cuda")
        onnx_model.embed_chips(chips[:256], batch_size=256)
        t = time.perf_counter()
        onnx_model.embed_chips(chips, batch_size=256)
        out["onnx_cuda_faces_per_s"] = len(chips) / (time.perf_counter() - t)
    except Exception as exc:  # noqa: BLE001 - report, do not fail the benchmark
        out["onnx_cuda"] = f"not available ({type(exc).__name__}: {exc})"
    return out


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
        print(f"\n[engines] {g['chips']} chips, batch {g['batch']}, {g['threads']} threads, best of {g['repeats']}; "
              f"max |onnx fp32 - torch| {g['fp32_max_abs_diff']:.1e}, int8 max cosine deviation "
              f"{g['int8_max_cosine_deviation']:.1e}")
        print(f"  torch eager {g['torch_faces_per_s']:8.1f} faces/s   ONNX Runtime fp32 {g['onnx_fp32_faces_per_s']:8.1f} "
              f"({g['onnx_over_torch']:.2f}x torch)   int8 {g['onnx_int8_faces_per_s']:8.1f} ({g['int8_over_fp32']:.2f}x fp32)")
    if "quality" in res:
        q = res["quality"]
        print("\n[quality] fp32 vs int8")
        print(f"  LFW 10-fold accuracy  {q['lfw_accuracy']['fp32']:.4f} vs {q['lfw_accuracy']['int8']:.4f}   "
              f"TAR@FAR1e-3 {q['lfw_tar_at_far_1e-3']['fp32']:.4f} vs {q['lfw_tar_at_far_1e-3']['int8']:.4f}")
        print(f"  proxy test agreement  {q['agreement']['fp32']:.4f} vs {q['agreement']['int8']:.4f} "
              f"(difference {q['agreement_difference']:+.4f})")
    if "coldstart" in res:
        c = res["coldstart"]
        print(f"\n[coldstart] perface score, process start to printed score, median of {c['repeats']}: "
              f"default (ONNX Runtime) {c['default_s']:.2f} s, --engine torch {c['torch_s']:.2f} s")
    if "training" in res:
        t = res["training"]
        print(f"\n[training] {t}")
    if "gpu" in res:
        print(f"\n[gpu] {res['gpu']}")


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
                                               Path(tmp), data)
            elif section == "quality":
                res["quality"] = bench_quality(data, Path(tmp))
            elif section == "coldstart":
                res["coldstart"] = bench_coldstart(lfw, args.repeats)
            elif section == "training":
                res["training"] = bench_training(data, Path(tmp))
            elif section == "gpu":
                res["gpu"] = bench_gpu(lfw_sample(data, args.n_chips), Path(tmp))
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        _print(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
