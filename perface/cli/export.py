"""``perface export --model CKPT_OR_NAME --out model.onnx``: one ONNX file that carries its preprocessing.

The export is checked against torch on real chips (``--check-images``) plus synthetic ones and fails, writing
nothing, when max |onnx - torch| exceeds ``--tolerance`` (1e-4).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a model to ONNX (runs with onnxruntime, no torch)",
                       description="Export a model to a single ONNX file: input normalised chips (N, 3, S, S) with a "
                                   "dynamic batch axis, output L2-normalised embeddings; the metadata records the "
                                   "backbone, input size, normalisation, alignment template, embedding size and "
                                   "perface version, and perface.load reads it back. A parity check against torch "
                                   "fails the export if the outputs differ by more than --tolerance.")
    p.add_argument("--model", required=True, metavar="CKPT_OR_NAME",
                   help="'base', a registry name with weights, or a .pt/.ckpt/.pth/insightface .onnx file")
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="output ONNX file")
    p.add_argument("--opset", type=int, default=17, metavar="N", help="ONNX opset (default: 17)")
    p.add_argument("--check-images", nargs="+", default=[], metavar="PATH",
                   help="images or folders whose faces (up to 16) are used in the parity check (recommended); "
                        "4 synthetic chips are always added")
    p.add_argument("--tolerance", type=float, default=1e-4, metavar="T",
                   help="largest allowed max |onnx - torch| in the parity check (default: 1e-4)")
    p.add_argument("--json", action="store_true", help="print a JSON object: path, max_abs_diff, chips, metadata")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from perface.cli.main import UsageError

    out = Path(args.out)
    if out.suffix.lower() != ".onnx":
        raise UsageError(f"--out {args.out}: the output must be a .onnx file")
    if not 13 <= args.opset <= 20:
        raise UsageError(f"--opset {args.opset}: supported opsets are 13 to 20")
    if not args.tolerance > 0:
        raise UsageError("--tolerance must be positive")
    if args.model.lower().endswith(".onnx"):
        from perface.onnx_model import read_metadata

        if Path(args.model).is_file() and "perface.config" in read_metadata(args.model):
            raise UsageError(f"--model {args.model} is already a PerFace ONNX export; export the .pt/.ckpt it came from")
    images = _collect(args.check_images)
    from perface.export import export_onnx
    from perface.loading import load

    model = load(args.model)
    result = export_onnx(model, out, opset=args.opset, images=images, tolerance=args.tolerance)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        meta = result.metadata
        print(f"perface: wrote {result.path} ({meta['perface.backbone']}, {meta['perface.input_size']}px "
              f"{json.loads(meta['perface.alignment'])['template']} chips, {meta['perface.embedding_dim']}-d, "
              f"opset {result.opset}); parity max |onnx - torch| = {result.max_abs_diff:.2e} on "
              f"{result.n_real_chips} real + {result.n_synthetic_chips} synthetic chips")
    if not result.n_real_chips:
        print("perface: note: parity was checked on synthetic chips only; pass --check-images with a few face "
              "photos to check real faces", file=sys.stderr)
    return 0


def _collect(paths: list[str]) -> list[str]:
    from perface.cli.embed import collect_images

    images = collect_images(paths) if paths else []
    missing = [p for p in images if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(2, "--check-images file not found", missing[0])
    return images[:16]
