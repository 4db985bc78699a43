"""ONNX Runtime vs torch eager, measured side by side in one run on the same LFW chips.

(a) Network throughput on pre-aligned chips (faces/s): the base model in torch eager
    (``torch.inference_mode``) vs its ``perface export`` ONNX file in ONNX Runtime (graph optimisations on),
    same chips, same batch size, same thread count; runs alternate and the best of ``--repeats`` is kept.
(b) Cold start: wall time from process start to the printed score of ``perface score A B`` with the torch
    base model vs ``perface score --model base.onnx A B`` (each warmed up once, then the median of
    ``--repeats`` alternating runs).

Usage: python scripts/benchmark_onnx.py [--n 256] [--batch 32] [--threads N] [--repeats 5] [--json]
       (images from $PERFACE_DATA/lfw, default ../shared/data beside the repository)
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_embed import lfw_sample  # noqa: E402  (same LFW sample as the end-to-end benchmark)


def throughput(model, chips: np.ndarray, batch: int, repeats: int) -> list[float]:
    model.embed_chips(chips[:batch], batch_size=batch)  # warm-up (allocations, ORT first-run)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        model.embed_chips(chips, batch_size=batch)
        times.append(time.perf_counter() - t)
    return times


def cold_start(args: list[str], env: dict) -> float:
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "perface", *args], capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"perface {' '.join(args)} failed: {proc.stderr.strip()}")
    float(proc.stdout.strip())  # a score was printed
    return dt


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=256, help="chips for the throughput test (default: 256)")
    parser.add_argument("--batch", type=int, default=32, help="chips per network call (default: 32)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both runtimes (default: all cores)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (default: 5)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("PERFACE_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--onnx", type=Path, default=None, help="use this export instead of exporting base now")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    args = parser.parse_args()
    result = measure(lfw_sample(args.data, args.n), args.batch, args.threads, args.repeats, args.onnx)
    if args.json:
        print(json.dumps(result))
        return 0
    print_result(result)
    return 0


def measure(files: list[str], batch: int, threads: int, repeats: int, onnx: Path | None = None) -> dict:
    """Throughput of torch vs ONNX Runtime on the chips of ``files`` and cold start of ``perface score``."""
    import torch

    import perface
    from perface.export import export_onnx

    args = argparse.Namespace(batch=batch, threads=threads, repeats=repeats, onnx=onnx)
    torch.set_num_threads(args.threads)
    base = perface.load("base", threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = args.onnx or Path(tmp) / "base.onnx"
        if args.onnx is None:
            export = export_onnx(base, onnx_path, images=files[:16])
            parity = export.max_abs_diff
        else:
            parity = float("nan")
        onnx_model = perface.load(onnx_path, threads=args.threads)
        chips = np.stack([base.faces(f, on_no_face="whole-image")[0].chip for f in files])
        diff = float(np.abs(onnx_model.embed_chips(chips) - base.embed_chips(chips)).max())

        # (a) alternate torch / ORT runs so machine load affects both alike
        t_torch, t_onnx = [], []
        for _ in range(args.repeats):
            t_torch += throughput(base, chips, args.batch, 1)
            t_onnx += throughput(onnx_model, chips, args.batch, 1)
        fps_torch = len(chips) / min(t_torch)
        fps_onnx = len(chips) / min(t_onnx)

        # (b) cold start of `perface score` (process start -> printed score)
        env = dict(os.environ)
        a, b = files[0], files[1]
        torch_args = ["score", "--threads", str(args.threads), a, b]
        onnx_args = ["score", "--threads", str(args.threads), "--model", str(onnx_path), a, b]
        cold_start(torch_args, env), cold_start(onnx_args, env)  # warm the page cache and weight caches
        c_torch, c_onnx = [], []
        for _ in range(args.repeats):
            c_torch.append(cold_start(torch_args, env))
            c_onnx.append(cold_start(onnx_args, env))

    result = {
        "chips": len(chips), "batch": args.batch, "threads": args.threads, "repeats": args.repeats,
        "parity_max_abs_export": parity, "parity_max_abs_lfw_chips": diff,
        "torch_faces_per_s": fps_torch, "onnx_faces_per_s": fps_onnx, "onnx_over_torch_throughput": fps_onnx / fps_torch,
        "cold_start_torch_s": statistics.median(c_torch), "cold_start_onnx_s": statistics.median(c_onnx),
        "cold_start_torch_over_onnx": statistics.median(c_torch) / statistics.median(c_onnx),
        "torch_version": torch.__version__, "onnxruntime_version": __import__("onnxruntime").__version__,
        "cpu_count": os.cpu_count(),
    }
    return result


def print_result(result: dict) -> None:
    chips, diff, fps_torch, fps_onnx = (result["chips"], result["parity_max_abs_lfw_chips"], result["torch_faces_per_s"],
                                        result["onnx_faces_per_s"])
    args = argparse.Namespace(batch=result["batch"], threads=result["threads"], repeats=result["repeats"])
    print(f"{chips} LFW chips (150x150), batch {args.batch}, {args.threads} thread(s), best of {args.repeats}; "
          f"max |onnx - torch| = {diff:.2e}")
    print(f"  network, torch eager      : {fps_torch:8.1f} faces/s")
    print(f"  network, ONNX Runtime     : {fps_onnx:8.1f} faces/s   (x{fps_onnx / fps_torch:.2f} torch)")
    print(f"cold start, perface score (process start -> printed score), median of {args.repeats}:")
    print(f"  torch base model          : {result['cold_start_torch_s']:8.2f} s")
    print(f"  base.onnx (no torch)      : {result['cold_start_onnx_s']:8.2f} s   "
          f"(torch takes x{result['cold_start_torch_over_onnx']:.2f} as long)")


if __name__ == "__main__":
    sys.exit(main())
