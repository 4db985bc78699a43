"""``perface.load``: one entry point for every kind of model PerFace understands.

* ``"base"``: dlib's face-recognition ResNet with its packaged weights (the default).
* a registry name with packaged weights (``BackboneSpec.packaged_weights``: ``"dlib_resnet"``).
* ``*.pt``: a model saved by :meth:`perface.model.PerFace.save`.
* ``*.ckpt``: a Lightning checkpoint written by ``scripts/train.py`` (loaded without Lightning).
* ``*.onnx``: a PerFace export (run with ONNX Runtime, no torch) or an insightface recognition model
  (weights imported into an iResNet).
* ``*.pth``: an insightface arcface_torch backbone state dict.
"""

from __future__ import annotations

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
        model: ``"base"``, a registry name, or a path (``.pt``, ``.ckpt``, ``.onnx``, ``.pth``).
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
