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
from pathlib import Path

from perface.backbones.registry import backbone_for_weights, get_backbone_spec, list_backbones
from perface.errors import ModelLoadError, UnknownBackboneError

BASE = "base"
#: The backbone ``"base"`` stands for.
BASE_BACKBONE = "dlib_resnet"


def list_models() -> list[str]:
    """Names :func:`load` accepts without a file (files are accepted too)."""
    return [BASE, *list_backbones()]


def load(model: str | os.PathLike = BASE, *, device: str | None = None, threads: int | None = None,
         detector: str | None = None, upsample: int | str | None = None, max_side: int | None = None,
         face: str | int | None = None, on_no_face: str | None = None):
    """Load a model with all of its preprocessing: how faces are found and chosen, and how chips are made.

    Face options recorded with the weights (``.pt``, ``.ckpt``, PerFace ONNX) are used as they are; the
    keyword arguments below override them (None keeps the recorded or default value, see
    :class:`perface.preprocessing.FaceOptions`).

    Args:
        model: ``"base"``, a registry name, or a path (``.pt``, ``.ckpt``, ``.onnx``, ``.pth``).
        device: torch device (``"cpu"``, ``"cuda"``); default: CPU. Ignored for ONNX models.
        threads: Intra-op threads (ONNX Runtime session / torch); None keeps the library default.
        detector: ``"hog"``, ``"cnn"`` or ``"hog+cnn"`` (the CNN only where HOG finds none).
        upsample: Detector upsampling steps, or ``"auto"``.
        max_side: Detection runs on a copy at most this many pixels on its longer side.
        face: ``"largest"``, ``"center"``, ``"all"`` or an index.
        on_no_face: ``"error"``, ``"skip"`` or ``"whole-image"``.

    Returns:
        A :class:`perface.model.PerFace` (torch) or :class:`perface.onnx_model.OnnxPerFace`; both offer
        ``embed``, ``score``, ``compare``, ``detect``, ``embed_faces`` and ``face_options``.

    Raises:
        UnknownBackboneError: an unknown name that is not a file.
        ModelLoadError: a file that cannot be read as a model.
        SettingsError: an invalid face option.
    """
    overrides = {"detector": detector, "upsample": upsample, "max_side": max_side, "face": face,
                 "on_no_face": on_no_face}
    text = os.fspath(model)
    path = Path(text).expanduser()
    if not path.exists() and not any(sep in text for sep in ("/", os.sep)) and "." not in Path(text).name:
        result = _load_named(text)
    elif not path.is_file():
        raise ModelLoadError(f"model file {text} not found; pass an existing .pt/.ckpt/.onnx/.pth file or one of: "
                             f"{', '.join(list_models())}")
    else:
        suffix = path.suffix.lower()
        if suffix == ".onnx":
            result = _load_onnx(path, threads)
        elif suffix in (".pt", ".ckpt", ".pth"):
            result = _load_torch_file(path)
        else:
            raise ModelLoadError(f"{path}: unknown model file type {suffix!r}; expected .pt, .ckpt, .onnx or .pth")
    if hasattr(result, "state_dict"):  # a torch model; ONNX models take threads in their session
        import torch

        if threads is not None:
            torch.set_num_threads(int(threads))
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


def _load_onnx(path: Path, threads: int | None):
    try:
        import onnx

        meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    except Exception as exc:  # onnx raises several unrelated types for a bad file
        raise ModelLoadError(f"{path}: not a readable ONNX file ({type(exc).__name__}: {exc}); re-export or re-download it") from None
    if "perface.config" in meta:
        from perface.onnx_model import OnnxPerFace

        return OnnxPerFace(path, threads=threads)
    return _load_backbone_weights(path)


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
