"""Inference engines: the same model run by ONNX Runtime (the default wherever it is installed) or torch.

A torch model (``base``, a ``.pt`` / ``.ckpt`` / ``.pth`` file, an insightface recognition ``.onnx``) is exported
once to ONNX (:func:`perface.export.export_onnx`, parity-checked against torch on synthetic chips, written
atomically) into ``cache_dir()/engines/``, keyed by the digest of its weights file and the export format, and
run by ONNX Runtime from then on: later loads find the file by that key without importing torch. The export
records the torch model's weight digest as its identity, so the embedding cache, galleries and thresholds are
shared between the two engines (their outputs agree to the export's tolerance, 1e-4). Training always uses
torch; ``engine="torch"`` gives the ``nn.Module``.

GPUs: ONNX Runtime's CUDA execution provider is used when the installed onnxruntime has it and ``device`` is
None or ``"cuda"``; with the torch engine, ``device="cuda"`` moves the model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Callable

from perface.errors import ExportError, SettingsError

__all__ = ["ENGINES", "ENGINE_FORMAT", "engine_file", "onnx_available", "onnx_providers", "resolve_engine",
           "source_digest"]

ENGINES = ("auto", "onnx", "torch")
#: Bumped whenever the engine export changes (old engine files are then simply not found).
ENGINE_FORMAT = 2


def onnx_available() -> bool:
    """Whether ONNX Runtime is installed (checked without importing it)."""
    return importlib.util.find_spec("onnxruntime") is not None


def resolve_engine(engine: str) -> str:
    """``"auto"`` -> ``"onnx"`` when ONNX Runtime is installed, else ``"torch"``.

    Raises:
        SettingsError: an unknown engine, or ``"onnx"`` without ONNX Runtime.
    """
    if engine not in ENGINES:
        raise SettingsError(f"engine {engine!r} is not known; use one of {', '.join(ENGINES)}")
    if engine == "auto":
        return "onnx" if onnx_available() else "torch"
    if engine == "onnx" and not onnx_available():
        raise SettingsError("engine 'onnx' needs ONNX Runtime: pip install onnxruntime (or onnxruntime-gpu)")
    return engine


def onnx_providers(device: str | None) -> list[str]:
    """ONNX Runtime execution providers for ``device``: CUDA first when available (``device`` None or ``cuda``)."""
    import onnxruntime as ort

    if device not in (None, "cpu") and not str(device).startswith("cuda"):
        raise SettingsError(f"device {device!r} is not supported by the onnx engine; use cpu or cuda")
    available = ort.get_available_providers()
    if device != "cpu" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device is not None and str(device).startswith("cuda"):
        raise SettingsError("device cuda: this onnxruntime has no CUDA execution provider (pip install onnxruntime-gpu), "
                            "or use --engine torch")
    return ["CPUExecutionProvider"]


def source_digest(name: str, weights: str | os.PathLike) -> str:
    """What an engine file is keyed by: the model's name and the SHA-256 of its weights file (remembered per
    file size and time, so start-up does not re-hash), plus :data:`ENGINE_FORMAT`."""
    from perface.version import __version__
    from perface.cache import cached_file_sha256

    key = {"name": name, "weights_sha256": cached_file_sha256(weights), "format": ENGINE_FORMAT,
           "perface": __version__}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()


def engine_file(name: str, weights: str | os.PathLike, build: Callable[[], object]) -> Path:
    """The cached ONNX export of a torch model, made with ``build()`` (which loads the torch model) when absent.

    Raises:
        ExportError: the model cannot be exported or fails the parity check.
    """
    from perface.cache import cache_dir

    path = cache_dir() / "engines" / f"{source_digest(name, weights)[:32]}.onnx"
    if not path.is_file():
        from perface.export import export_onnx

        model = build()
        try:
            export_onnx(model, path, n_synthetic=8)
        except ExportError as exc:
            raise ExportError(f"cannot run {name} with ONNX Runtime ({exc}); use --engine torch") from None
    return path
