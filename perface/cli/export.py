"""``perface export --model CKPT_OR_NAME --out model.onnx``: one ONNX file that carries all its preprocessing.

The export is checked against torch on real chips (``--check-images``) plus synthetic ones and fails, writing
nothing, when max |onnx - torch| exceeds ``--tolerance`` (1e-4). The model's face options (with any face option
given here) are written into the file.
"""

from __future__ import annotations

import argparse
import json
import sys

from perface.cli.commands import COMMANDS
from perface.cli.options import add_face_options, add_model_option, load_model
from perface.errors import UsageError
from perface.export import DEFAULT_OPSET, INT8_TOLERANCE, TOLERANCE, export_onnx
from perface.io.files import collect_images


def add_parser(sub) -> None:
    p = sub.add_parser("export", help=COMMANDS["export"].help,
                       description="Export a model to a single ONNX file: input normalised chips (N, 3, S, S) with a "
                                   "dynamic batch axis, output L2-normalised embeddings; the metadata records the "
                                   "backbone, input size, normalisation, alignment template, face options, embedding "
                                   "size and perface version, and perface.load reads it back. A parity check against "
                                   "torch fails the export if the outputs differ by more than --tolerance.")
    add_model_option(p, default=None, help="'base', a registry name with weights, or a .pt/.ckpt/.pth/insightface "
                                           ".onnx file (required)", engine=False)
    add_face_options(p)
    p.add_argument("--out", required=True, metavar="FILE.onnx", help="output ONNX file")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET, metavar="N",
                   help=f"ONNX opset, 13 to 20 (default: {DEFAULT_OPSET})")
    p.add_argument("--check-images", nargs="+", default=[], metavar="PATH",
                   help="images or folders whose faces (up to 16) are used in the parity check (recommended); "
                        "4 synthetic chips are always added")
    p.add_argument("--tolerance", type=float, default=None, metavar="T",
                   help=f"largest allowed max |onnx - torch| in the parity check (default: {TOLERANCE:g}); with "
                        f"--quantize int8 the largest cosine deviation 1 - cos(int8, torch) (default: {INT8_TOLERANCE:g})")
    p.add_argument("--quantize", choices=("int8",), default=None,
                   help="int8: ONNX Runtime static quantization (per-channel int8 weights, uint8 activations) calibrated "
                        "on the faces of --calibrate; faster on CPUs with VNNI, checked against torch by cosine")
    p.add_argument("--calibrate", nargs="+", default=[], metavar="PATH",
                   help="images or folders whose faces (up to 256) calibrate --quantize int8")
    p.add_argument("--json", action="store_true", help="print a JSON object: path, max_abs_diff, chips, metadata")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.model is None:
        raise UsageError("export needs --model (a .pt/.ckpt file, 'base', ...)")
    images = collect_images(args.check_images).files[:16] if args.check_images else []
    calibration = collect_images(args.calibrate).files if args.calibrate else []
    result = export_onnx(load_model(args, engine="torch"), args.out, opset=args.opset, images=images,
                         tolerance=args.tolerance, quantize=args.quantize, calibration=calibration)
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        meta = result.metadata
        print(f"perface: wrote {result.path} ({meta['perface.backbone']}, {meta['perface.input_size']}px "
              f"{json.loads(meta['perface.alignment'])['template']} chips, {meta['perface.embedding_dim']}-d, "
              f"opset {result.opset}{', int8' if args.quantize else ''}); "
              + ("max cosine deviation from torch = " if args.quantize else "parity max |onnx - torch| = ")
              + f"{result.max_abs_diff:.2e} on {result.n_real_chips} real + {result.n_synthetic_chips} synthetic chips")
    if not result.n_real_chips:
        print("perface: note: parity was checked on synthetic chips only; pass --check-images with a few face "
              "photos to check real faces", file=sys.stderr)
    return 0
