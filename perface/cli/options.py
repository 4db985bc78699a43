"""Command-line options shared by several sub-commands (model choice and face handling)."""

from __future__ import annotations

import argparse

from perface.face.detector import DETECTOR_CHOICES
from perface.face.pipeline import ON_NO_FACE, check_face_choice


def add_model_options(parser: argparse.ArgumentParser, multiple: bool = False) -> None:
    """``--model`` (and the face-detection options every model-using command takes)."""
    if multiple:
        parser.add_argument("--model", action="append", dest="models", metavar="M",
                            help="model name or file (repeat to compare); default: base")
    else:
        parser.add_argument("--model", default="base", metavar="M",
                            help="'base' (dlib ResNet), a registry name, or a .pt/.ckpt/.onnx/.pth file (default: base)")
    add_detector_option(parser)
    parser.add_argument("--upsample", type=int, default=0, metavar="N",
                        help="detector upsampling steps; 1 finds faces down to ~40 px (default: 0, ~80 px)")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="compute threads (default: all cores)")


def add_detector_option(parser: argparse.ArgumentParser) -> None:
    """``--detector``."""
    parser.add_argument("--detector", choices=DETECTOR_CHOICES, default="hog",
                        help="face detector; hog+cnn runs the CNN only where HOG finds no face (turned heads) "
                             "(default: hog)")


def add_face_options(parser: argparse.ArgumentParser, on_no_face_default: str, allow_all: bool = False) -> None:
    """``--face`` and ``--on-no-face``."""
    parser.add_argument("--face", default="largest", metavar="WHICH",
                        help="which face when there are several: largest, center (nearest the image centre), " +
                             ("all, " if allow_all else "") + "or an index k (largest first) (default: largest)")
    parser.add_argument("--on-no-face", choices=ON_NO_FACE, default=on_no_face_default,
                        help=f"what to do when no face is found; whole-image uses the whole image as the face box "
                             f"(for tight crops) (default: {on_no_face_default})")


def parse_face(value: str, allow_all: bool = False) -> str | int:
    """``--face`` value -> ``"largest"``, ``"center"``, ``"all"`` or an int index (see ``check_face_choice``)."""
    from perface.cli.main import UsageError

    try:
        return check_face_choice(int(value) if value.lstrip("-").isdigit() else value, allow_all=allow_all)
    except ValueError as exc:
        raise UsageError(f"--face: {exc}") from None


def load_model(args: argparse.Namespace, model: str | None = None):
    """``perface.load`` with the options of :func:`add_model_options`."""
    from perface.loading import load

    return load(model or args.model, detector=args.detector, upsample=args.upsample, threads=args.threads)


def add_batch_options(parser: argparse.ArgumentParser, cache: bool = False) -> None:
    """``--batch-size``, ``--workers``, ``--no-progress`` (and ``--no-cache`` for commands with caches)."""
    parser.add_argument("--batch-size", type=int, default=32, metavar="N", help="faces per network call (default: 32)")
    parser.add_argument("--workers", type=int, default=None, metavar="N",
                        help="processes for decoding and detection (default: number of cores; 0 = none)")
    if cache:
        parser.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
