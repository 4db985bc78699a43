"""Command-line options declared once: every sub-command that takes one of these takes it with the same name,
meaning and default.

* ``--model M`` (repeatable where several models are compared), ``--threads N``;
* the face options ``--detector``, ``--upsample``, ``--max-side``, ``--face``, ``--on-no-face``: unset means
  *the model's own* (recorded with its weights, see :class:`perface.preprocessing.FaceOptions`); set, they
  override it for this run;
* ``--root DIR``: the folder image paths in the input file are relative to (see
  :func:`perface.io.files.resolve_root` for the default);
* ``--json``, ``--report DIR``; ``--batch-size``, ``--workers``, ``--no-progress``, ``--no-cache``.
"""

from __future__ import annotations

import argparse

from perface.engine import ENGINES
from perface.errors import SettingsError, UsageError
from perface.preprocessing import DETECTOR_CHOICES, ON_NO_FACE, parse_face, parse_upsample

FACE_OPTION_NAMES = ("detector", "upsample", "max_side", "face", "on_no_face")


def _checked(parse):
    def convert(value: str):
        try:
            return parse(value)
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def add_model_option(parser: argparse.ArgumentParser, multiple: bool = False, default: str | None = "base",
                     help: str | None = None, engine: bool = True) -> None:
    """``--model M`` (``multiple``: repeatable, collected in ``args.models``), ``--threads N`` and (``engine``)
    ``--engine auto|onnx|torch``."""
    what = "'base' (dlib ResNet), a registry name, or a .pt/.ckpt/.onnx/.pth file"
    if multiple:
        parser.add_argument("--model", action="append", dest="models", metavar="M",
                            help=help or f"model to evaluate: {what}; repeat to compare (the first is the baseline) "
                                         "(default: base)")
    else:
        parser.add_argument("--model", default=default, metavar="M",
                            help=help or f"{what} (default: {default})")
    parser.add_argument("--threads", type=int, default=None, metavar="N", help="compute threads (default: all cores)")
    if engine:
        parser.add_argument("--engine", choices=ENGINES, default="auto",
                            help="auto (default): ONNX Runtime when installed (a torch model is exported once into the "
                                 "cache and run from there), else torch; onnx or torch to choose")


def add_id_model_option(parser: argparse.ArgumentParser, default: str = "base") -> None:
    """``--id-model M``: the identity model of evaluations that judge identity beside perceptual similarity."""
    parser.add_argument("--id-model", default=default, metavar="M",
                        help=f"identity model: 'base' (dlib ResNet), a registry name, or a .pt/.ckpt/.onnx/.pth file "
                             f"(default: {default})")


def add_bootstrap_option(parser: argparse.ArgumentParser, default: int = 2000) -> None:
    """``--bootstrap N``: resamples of bootstrap confidence intervals (the library checks N >= 100)."""
    parser.add_argument("--bootstrap", type=int, default=default, metavar="N",
                        help=f"bootstrap resamples, at least 100 (default: {default})")


def add_face_options(parser: argparse.ArgumentParser, allow_all: bool = False) -> None:
    """The face options; unset = the model's own (recorded with its weights)."""
    g = parser.add_argument_group("face options (default: the model's own, recorded with its weights; base: "
                                  "hog+cnn, upsample auto, max side 1024, largest face, skip images without one)")
    g.add_argument("--detector", choices=DETECTOR_CHOICES, default=None,
                   help="face detector; hog+cnn runs the MMOD CNN only where HOG finds no face (turned heads)")
    g.add_argument("--upsample", type=_checked(parse_upsample), default=None, metavar="N|auto",
                   help="detector upsampling steps (each halves the smallest face found, ~80 px at 0, and costs "
                        "~4x); auto retries with 1 step only where 0 found nothing on small images")
    g.add_argument("--max-side", type=int, default=None, metavar="PX",
                   help="detect on a copy at most this many pixels on its longer side")
    g.add_argument("--face", type=_checked(lambda v: parse_face(v, allow_all=allow_all)), default=None,
                   metavar="WHICH", help="which face when there are several: largest, center (nearest the image "
                                         "centre), " + ("all, " if allow_all else "") + "or an index k (largest first)")
    g.add_argument("--on-no-face", choices=ON_NO_FACE, default=None,
                   help="when no face is found: error (stop), skip (leave the image out and list it), whole-image "
                        "(use the whole image as the face box, for tight crops such as UTKFace)")


def face_overrides(args: argparse.Namespace) -> dict:
    """The face options given on the command line (``None`` for unset ones)."""
    return {name: getattr(args, name, None) for name in FACE_OPTION_NAMES}


def load_model(args: argparse.Namespace, model: str | None = None, engine: str | None = None):
    """``perface.load`` of ``model`` (default ``args.model``) with ``--engine``, ``--threads`` and the face option
    overrides; ``engine`` forces one (``perface export`` needs the torch model)."""
    from perface.loading import load

    return load(model or args.model, engine=engine or getattr(args, "engine", "auto"),
                threads=getattr(args, "threads", None), **face_overrides(args))


def add_root_option(parser: argparse.ArgumentParser, what: str = "the input file", dataset_root: bool = False) -> None:
    """``--root DIR``: the folder the image paths in ``what`` are relative to. Its default is the
    :func:`perface.io.files.resolve_root` rule, or (``dataset_root``, for annotation files, whose paths are
    relative to a dataset) :func:`perface.io.files.data_root`."""
    default = ("the dataset root, $PERFACE_DATA" if dataset_root else
               f"the first of {what}'s folder, its images/ subfolder and $PERFACE_DATA that holds the first image")
    parser.add_argument("--root", default=None, metavar="DIR",
                        help=f"folder the image paths in {what} are relative to (default: {default})")


def add_output_options(parser: argparse.ArgumentParser, report: bool = True) -> None:
    """``--json`` and (``report``) ``--report DIR``."""
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    if report:
        parser.add_argument("--report", metavar="DIR", help="also write report.md, metrics.json and plots to DIR")


def add_batch_options(parser: argparse.ArgumentParser, cache: bool = False, workers: bool = True) -> None:
    """``--batch-size``, ``--workers`` (unless ``workers`` is False: commands that find faces in this process),
    ``--no-progress`` (and ``--no-cache`` for commands with caches)."""
    parser.add_argument("--batch-size", type=_checked(_positive("--batch-size")), default=32, metavar="N",
                        help="faces per network call (default: 32)")
    if workers:
        parser.add_argument("--workers", type=int, default=None, metavar="N",
                            help="processes for decoding and face finding (default: number of cores; 0 = none)")
    if cache:
        parser.add_argument("--no-cache", action="store_true", help="do not read or write the embedding cache")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _positive(name: str):
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise SettingsError(f"{name} must be a whole number of at least 1, got {value!r}")
        return n

    return parse


def pool_workers(args: argparse.Namespace, n_images: int, per_worker: int = 64) -> int:
    """Worker processes for ``n_images`` with ``--workers`` (see :func:`perface.face.batch.auto_workers`)."""
    from perface.face.batch import auto_workers

    return auto_workers(n_images, getattr(args, "workers", None), per_worker)


def models_argument(args: argparse.Namespace) -> list[str]:
    """The ``--model`` values of a repeatable option (default ``["base"]``), each at most once."""
    models = getattr(args, "models", None) or ["base"]
    dup = sorted({m for m in models if models.count(m) > 1})
    if dup:
        raise UsageError(f"--model {dup[0]} given twice")
    return models


def progress_enabled(args: argparse.Namespace) -> bool | None:
    """False with ``--no-progress``, else None (bars when stderr is a terminal)."""
    return False if getattr(args, "no_progress", False) else None
