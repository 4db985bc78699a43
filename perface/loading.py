"""``perface.load``: one entry point for every kind of model PerFace understands.

* ``"base"``: dlib's face-recognition ResNet with its packaged weights (the default).
* a registry name with packaged weights (``BackboneSpec.packaged_weights``: ``"dlib_resnet"``).
* ``*.pt``: a model saved by :meth:`perface.model.PerFace.save`.
* ``*.ckpt``: a Lightning checkpoint written by ``scripts/train.py`` (loaded without Lightning).
* ``*.onnx``: a PerFace export (run with ONNX Runtime, no torch) or an insightface recognition model
  (weights imported into an iResNet).
* ``*.pth``: an insightface arcface_torch backbone state dict.
* a folder: an insightface model pack (``~/.insightface/models/buffalo_l``); its recognition model is loaded
  as an insightface ``.onnx`` (chosen by insightface's own rule, see :func:`pack_recognition_model`).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

from perface.backbones.registry import backbone_for_weights, get_backbone_spec, list_backbones
from perface.engine import engine_file, onnx_providers, resolve_engine
from perface.errors import ExportError, ModelLoadError, NotPerFaceExport, UnknownBackboneError

BASE = "base"
#: The backbone ``"base"`` stands for.
BASE_BACKBONE = "dlib_resnet"


def list_models() -> list[str]:
    """Names :func:`load` accepts without a file (files are accepted too)."""
    return [BASE, *list_backbones()]


def load(model: str | os.PathLike = BASE, *, engine: str = "auto", device: str | None = None,
         threads: int | None = None, detector: str | None = None, upsample: int | str | None = None,
         max_side: int | None = None, face: str | int | None = None, on_no_face: str | None = None):
    """Load a model with all of its preprocessing: how faces are found and chosen, and how chips are made.

    Face options recorded with the weights (``.pt``, ``.ckpt``, PerFace ONNX) are used as they are; the
    keyword arguments below override them (None keeps the recorded or default value, see
    :class:`perface.preprocessing.FaceOptions`).

    Args:
        model: ``"base"``, a registry name, a path (``.pt``, ``.ckpt``, ``.onnx``, ``.pth``), or an insightface
            model-pack folder (its recognition model, see :func:`pack_recognition_model`).
        engine: ``"auto"`` (ONNX Runtime when installed, else torch), ``"onnx"`` or ``"torch"``: with ONNX Runtime
            a torch model is exported once into the cache and run from there (see :mod:`perface.engine`);
            ``"torch"`` returns the ``nn.Module`` (training, gradients).
        device: ``"cpu"`` or ``"cuda"``; default: the GPU when there is one the engine can use (ONNX Runtime's
            CUDA provider, torch CUDA), else CPU.
        threads: Intra-op threads (ONNX Runtime session / torch); None keeps the library default.
        detector: ``"hog"``, ``"cnn"`` or ``"hog+cnn"`` (the CNN only where HOG finds none).
        upsample: Detector upsampling steps, or ``"auto"``.
        max_side: Detection runs on a copy at most this many pixels on its longer side.
        face: ``"largest"``, ``"center"``, ``"all"`` or an index.
        on_no_face: ``"error"``, ``"skip"`` or ``"whole-image"``.

    Returns:
        A :class:`perface.onnx_model.OnnxPerFace` (ONNX Runtime) or :class:`perface.model.PerFace` (torch); both
        offer ``embed``, ``score``, ``compare``, ``detect``, ``embed_faces`` and ``face_options``.

    Raises:
        UnknownBackboneError: an unknown name that is not a file.
        ModelLoadError: a file that cannot be read as a model.
        SettingsError: an invalid face option, engine or device.
        ExportError: ``engine="onnx"`` and the model cannot be exported (``"auto"`` falls back to torch).
    """
    overrides = {"detector": detector, "upsample": upsample, "max_side": max_side, "face": face,
                 "on_no_face": on_no_face}
    requested = engine
    engine = resolve_engine(engine)
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.is_dir():  # an insightface model pack: load its recognition model
        path = pack_recognition_model(path)
        text = str(path)
    if not path.exists() and not any(sep in text for sep in ("/", os.sep)) and "." not in Path(text).name:
        spec = get_backbone_spec(text) if text != BASE else get_backbone_spec(BASE_BACKBONE)
        build, weights, key = (lambda: _load_named(text)), (spec.weights_locator and spec.packaged_weights_file()), text
        if not weights:
            build()  # raises the error that says where to get weights
    elif not path.is_file():
        raise ModelLoadError(f"model file {text} not found; pass an existing .pt/.ckpt/.onnx/.pth file or one of: "
                             f"{', '.join(list_models())}")
    else:
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            try:
                return _onnx_model(path, threads, device).configure_faces(**overrides)
            except NotPerFaceExport:  # an insightface recognition model: import its weights
                pass
            build = lambda: _load_backbone_weights(path)  # noqa: E731
        elif suffix in (".pt", ".ckpt", ".pth"):
            build = lambda: _load_torch_file(path)  # noqa: E731
        else:
            raise ModelLoadError(f"{path}: unknown model file type {suffix!r}; expected .pt, .ckpt, .onnx or .pth")
        weights, key = path, f"file:{path.stem if suffix in ('.onnx', '.pth') else ''}"
    if engine == "onnx":
        try:
            return _onnx_model(engine_file(key, weights, build), threads, device).configure_faces(**overrides)
        except ExportError:
            if requested == "onnx":
                raise
            warnings.warn(f"{text} cannot run with ONNX Runtime; using torch", stacklevel=2)
    result = build()
    if hasattr(result, "state_dict"):  # a torch model; ONNX models take threads in their session
        import torch

        if threads is not None:
            torch.set_num_threads(int(threads))
        if device is None and torch.cuda.is_available():
            device = "cuda"
        if device is not None:
            result = result.to(device)
    return result.configure_faces(**overrides)


#: The one task of an insightface model-pack file perface loads (ArcFaceONNX's ``taskname``).
RECOGNITION = "recognition"


def pack_recognition_model(folder: str | os.PathLike) -> Path:
    """The recognition model of an insightface model-pack folder, chosen as insightface chooses it.

    insightface's ``FaceAnalysis`` follows a ``manifest.json`` with ``manifest_version`` 2 (its
    ``tasks.recognition.file``); without one it routes every ``*.onnx`` of the folder by its graph's
    inputs and outputs (``model_zoo.ModelRouter``) and keeps the first recognition model in sorted
    order. This re-implements both without importing insightface: ``buffalo_l`` holds ``det_10g.onnx``
    (detection: 9 outputs), ``1k3d68.onnx`` and ``2d106det.onnx`` (landmarks: 192x192 input),
    ``genderage.onnx`` (attributes: 96x96) and ``w600k_r50.onnx``, the recognition model.

    Args:
        folder: The model-pack folder (``~`` is expanded).

    Returns:
        The recognition model's ``.onnx`` path.

    Raises:
        ModelLoadError: no recognition model in the folder (the message names every ``.onnx`` file found and
            what insightface would take it for), or a version-2 manifest that perface cannot follow.
    """
    folder = Path(folder).expanduser()
    manifest = _pack_manifest(folder)
    if manifest is not None:
        return _manifest_recognition_model(folder, manifest)
    files = sorted(folder.glob("*.onnx"))
    tasks = {path: _insightface_task(path) for path in files}
    chosen = [path for path, (task, _) in tasks.items() if task == RECOGNITION]
    if not chosen:
        found = ", ".join(f"{path.name} ({task}: {why})" for path, (task, why) in tasks.items()) or "no .onnx files"
        raise ModelLoadError(
            f"{folder}: no insightface recognition model (an ONNX file with one output and one square input of at "
            f"least 112 px, a multiple of 16) in this folder; found {found}. Pass a model-pack folder such as "
            f"~/.insightface/models/buffalo_l or the recognition model's .onnx file")
    if len(chosen) > 1:
        warnings.warn(f"{folder} holds {len(chosen)} recognition models; using {chosen[0].name} (the first in "
                      f"sorted order, as insightface does), not {', '.join(p.name for p in chosen[1:])}",
                      stacklevel=3)
    return chosen[0]


def _pack_manifest(folder: Path) -> dict | None:
    """The folder's ``manifest.json`` when it opts into insightface's manifest routing (version 2), else None."""
    try:
        document = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeError, ValueError):
        return None  # insightface too ignores a missing or unreadable manifest
    if not isinstance(document, dict) or type(document.get("manifest_version")) is not int \
            or document["manifest_version"] != 2:
        return None  # unversioned, version 1 or unknown: insightface routes the files by shape
    return document


def _manifest_recognition_model(folder: Path, manifest: dict) -> Path:
    where = folder / "manifest.json"
    tasks = manifest.get("tasks")
    task = tasks.get(RECOGNITION) if isinstance(tasks, dict) else None
    if not isinstance(task, dict) or not isinstance(task.get("file"), str):
        declared = ", ".join(tasks) if isinstance(tasks, dict) and tasks else "none"
        raise ModelLoadError(f"{where}: declares no recognition task with a file (tasks: {declared}); pass the "
                             f"recognition model's .onnx file instead")
    path = (folder / task["file"]).resolve()
    if not path.is_relative_to(folder.resolve()) or path.suffix.lower() != ".onnx":
        raise ModelLoadError(f"{where}: tasks.recognition.file {task['file']!r} is not an .onnx file inside the "
                             f"package folder")
    if not path.is_file():
        raise ModelLoadError(f"{where}: tasks.recognition.file {task['file']} not found in {folder}")
    preprocessing = task.get("preprocessing", {"mean": 127.5, "std": 127.5})
    size = task.get("input_size", [112, 112])
    if preprocessing != {"mean": 127.5, "std": 127.5} or list(size) != [112, 112]:
        raise ModelLoadError(f"{where}: the recognition model takes preprocessing {preprocessing!r} at input size "
                             f"{size}; perface imports insightface recognition models for 112x112 chips normalised "
                             f"with mean 127.5 and std 127.5 only")
    return path


def _insightface_task(path: Path) -> tuple[str, str]:
    """What insightface's ``model_zoo.ModelRouter`` takes an ONNX file for, from its graph alone.

    Returns:
        (task, reason): task is ``"detection"``, ``"landmarks"``, ``"attributes"``, ``"face swapper"``,
        ``"recognition"``, ``"unrouted"`` (insightface returns None for it) or ``"unreadable"``.
    """
    import onnx
    from google.protobuf.message import DecodeError

    try:
        graph = onnx.load_model(str(path), load_external_data=False).graph
    except (DecodeError, OSError, ValueError) as exc:
        return "unreadable", type(exc).__name__
    weights = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in weights]  # as ONNX Runtime lists them
    dims = [dim.dim_value if dim.HasField("dim_value") else None
            for dim in inputs[0].type.tensor_type.shape.dim] if inputs else []
    height, width = dims[2:4] if len(dims) == 4 else (None, None)
    shape = "x".join("?" if d is None else str(d) for d in dims) or "none"
    if len(graph.output) >= 5:
        return "detection", f"{len(graph.output)} outputs"
    if (height, width) == (192, 192):
        return "landmarks", f"input {shape}"
    if (height, width) == (96, 96):
        return "attributes", f"input {shape}"
    if len(inputs) == 2 and (height, width) == (128, 128):
        return "face swapper", f"2 inputs, {shape}"
    if height is not None and height == width and height >= 112 and height % 16 == 0:
        if len(graph.output) == 1:
            return RECOGNITION, f"input {shape}"
        return "unrouted", f"input {shape} but {len(graph.output)} outputs"
    return "unrouted", f"input {shape}, {len(graph.output)} output{'s' * (len(graph.output) != 1)}"


def _load_named(name: str):
    from perface.model import PerFace

    if name == BASE:
        return PerFace(backbone=BASE_BACKBONE, name=BASE)
    spec = get_backbone_spec(name)  # raises UnknownBackboneError with suggestions
    if spec.packaged_weights:
        return PerFace(backbone=name, name=name)
    raise UnknownBackboneError(
        f"{name!r} has no packaged weights ({spec.description}); load a weights file instead, e.g. "
        f"perface.load('w600k_r50.onnx') for insightface's buffalo_l, or an arcface_torch backbone .pth"
    )


def _onnx_model(path: Path, threads: int | None, device: str | None):
    from perface.onnx_model import OnnxPerFace

    return OnnxPerFace(path, threads=threads, providers=onnx_providers(device))


def _load_torch_file(path: Path):
    import torch

    from perface.model import PerFace

    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise ModelLoadError(f"{path}: cannot be read by torch.load ({type(exc).__name__}: {str(exc).splitlines()[0]}); "
                             "is it a PerFace .pt/.ckpt or an arcface_torch .pth?") from None
    if isinstance(obj, dict) and "perface" in obj:
        config = obj["perface"]
        state = obj.get("state_dict", {})
        if path.suffix.lower() == ".ckpt":  # Lightning: the PerFace model sits under the "model." prefix
            state = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
        try:
            return PerFace.from_config(config, state)
        except (RuntimeError, KeyError) as exc:
            raise ModelLoadError(f"{path}: weights do not fit the recorded config ({exc}); the file is damaged") from None
    if path.suffix.lower() == ".ckpt":
        raise ModelLoadError(f"{path}: Lightning checkpoint without PerFace metadata; it was not written by scripts/train.py")
    return _load_backbone_weights(path)


def _load_backbone_weights(path: Path):
    """A bare backbone weights file (insightface ``.onnx``, arcface_torch ``.pth``) as a PerFace model, built
    by the registry with ``weights=path``."""
    from perface.model import PerFace

    return PerFace(backbone=backbone_for_weights(path), pretrained=False, backbone_kwargs={"weights": path},
                   name=path.stem)
