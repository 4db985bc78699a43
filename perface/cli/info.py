"""``perface info``: model, versions and cache paths."""

from __future__ import annotations

import argparse
import json
import platform

from perface.cli.commands import COMMANDS
from perface.cli.options import add_face_options, add_model_option, load_model


def add_parser(sub) -> None:
    p = sub.add_parser("info", help=COMMANDS["info"].help)
    add_model_option(p, help="model to describe (default: base)")
    add_face_options(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def run(args: argparse.Namespace) -> int:
    from perface.version import __version__
    from perface.backbones.registry import get_backbone_spec
    from perface.cache import cache_dir
    from perface.dlib_files import RECOGNITION_RESNET, dlib_model_path
    from perface.loading import list_models

    model = load_model(args)
    info = {
        "perface": __version__,
        "python": platform.python_version(),
        "model": {
            "name": model.name,
            "class": type(model).__name__,
            "backbone": getattr(model, "backbone_name", None),
            "embedding_dim": model.embedding_dim,
            "preprocessing": model.preprocessing.to_dict(),
            "face_options": model.face_options.to_dict(),
        },
        "models_available": list_models(),
        "cache_dir": str(cache_dir(create=False)),
        "dlib_weights": str(dlib_model_path(RECOGNITION_RESNET)),
        "versions": {d: _version(d) for d in ("torch", "dlib-bin", "onnxruntime", "onnx", "numpy", "opencv-python-headless")},
    }
    backbone = info["model"]["backbone"]
    if backbone:
        info["model"]["description"] = get_backbone_spec(backbone).description
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(show_header=False, box=None)
    for key, value in info.items():
        if isinstance(value, dict):
            for k2, v2 in value.items():
                table.add_row(f"{key}.{k2}", str(v2))
        else:
            table.add_row(key, str(value))
    Console().print(table)
    return 0
