"""Export a PerFace model to a single ONNX file that carries its own preprocessing.

The graph maps normalised chips ``chips``: float32 (N, 3, S, S) (dynamic batch axis N) to ``embedding``:
float32 (N, D), **L2-normalised** (the same as ``PerFace.forward``). Pixel normalisation
``(pixel - mean) / std`` stays outside the graph and is recorded in the metadata, together with everything
:func:`perface.load` needs to rebuild the preprocessing (``perface.config``) and explicit keys for other tools:

==========================  ===============================================================================
key                         value
==========================  ===============================================================================
``perface.config``          JSON of :meth:`perface.model.PerFace.config` (what ``perface.load`` reads)
``perface.name``            model name
``perface.backbone``        backbone registry name (``dlib_resnet``, ``iresnet50``, ...)
``perface.input_size``      chip side S in pixels (``150``)
``perface.input``           description of the input tensor
``perface.normalization``   JSON ``{"mean": [r, g, b], "std": [r, g, b]}`` on 0-255 RGB pixels
``perface.alignment``       JSON ``{"template": "dlib"|"arcface", "size": S, "padding": p}``
``perface.preprocessing``   :meth:`perface.preprocessing.Preprocessing.to_json`
``perface.face_options``    :meth:`perface.preprocessing.FaceOptions.to_json` (how faces are found and chosen)
``perface.identity``        the torch model's weights digest (caches are shared with it)
``perface.embedding_dim``   D
``perface.output``          description of the output (L2-normalised; cosine = dot product, higher = more similar)
``perface.version``         perface version that exported it
``perface.torch_version``   torch version that exported it
``perface.opset``           ONNX opset
``perface.parity_max_abs``  max |onnx - torch| measured after export
==========================  ===============================================================================

After writing, a parity check embeds chips with torch and ONNX Runtime (through
:class:`perface.onnx_model.OnnxPerFace`, i.e. through the metadata) and fails the export, deleting the file,
when they differ by more than the tolerance (1e-4).
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from perface.errors import ExportError, SettingsError

__all__ = ["DEFAULT_OPSET", "ExportError", "ExportResult", "TOLERANCE", "export_onnx", "parity_chips"]

DEFAULT_OPSET = 17
TOLERANCE = 1e-4
#: Largest cosine deviation from torch an int8 export may show on the check chips.
INT8_TOLERANCE = 0.02
INPUT_NAME = "chips"
OUTPUT_NAME = "embedding"


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote and measured."""

    path: Path
    max_abs_diff: float
    n_real_chips: int
    n_synthetic_chips: int
    opset: int
    metadata: dict

    def to_dict(self) -> dict:
        return {"path": str(self.path), "max_abs_diff": self.max_abs_diff, "n_real_chips": self.n_real_chips,
                "n_synthetic_chips": self.n_synthetic_chips, "opset": self.opset, "metadata": self.metadata}


def _synthetic_chips(size: int, n: int, seed: int = 0) -> np.ndarray:
    """Smooth random colour fields (deterministic): network inputs with realistic value ranges."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, size=(n, 6, 6, 3))
    reps = -(-size // 6)
    up = np.kron(coarse, np.ones((1, reps, reps, 1)))[:, :size, :size]
    noise = rng.normal(0, 12, size=up.shape)
    return np.clip(up + noise, 0, 255).astype(np.uint8)


def parity_chips(model, images: Sequence[str | os.PathLike] = (), n_synthetic: int = 4, max_real: int = 16
                 ) -> tuple[np.ndarray, int]:
    """Chips for the parity check: faces of up to ``max_real`` images (a whole image stands in where no face is
    found) followed by ``n_synthetic`` synthetic chips.

    Returns:
        ``(uint8 (N, S, S, 3) chips, number of real chips)``.
    """
    from perface.errors import ImageLoadError

    real = []
    for image in images:
        if len(real) >= max_real:
            break
        try:
            real.append(model.faces(image, on_no_face="whole-image")[0].chip)
        except ImageLoadError as exc:
            raise ExportError(f"parity image {os.fspath(image)} cannot be read ({exc})") from None
    size = model.preprocessing.size
    parts = [np.stack(real)] if real else []
    if n_synthetic:
        parts.append(_synthetic_chips(size, n_synthetic))
    return np.concatenate(parts), len(real)


def _metadata(model, opset: int, parity: float | None) -> dict[str, str]:
    import torch

    from perface.version import __version__

    p = model.preprocessing
    meta = {
        "perface.config": json.dumps(model.config(), sort_keys=True),
        "perface.name": str(model.name),
        "perface.backbone": str(model.backbone_name),
        "perface.input_size": str(p.size),
        "perface.input": f"{INPUT_NAME}: float32 (N, 3, {p.size}, {p.size}) RGB aligned chips, (pixel - mean) / std "
                         "per channel on 0-255 values (see perface.normalization)",
        "perface.normalization": json.dumps({"mean": list(p.mean), "std": list(p.std)}),
        "perface.alignment": json.dumps({"template": p.alignment, "size": p.size, "padding": p.padding}),
        "perface.preprocessing": p.to_json(),
        "perface.face_options": model.face_options.to_json(),
        "perface.identity": model.identity(),
        "perface.embedding_dim": str(model.embedding_dim),
        "perface.output": f"{OUTPUT_NAME}: float32 (N, {model.embedding_dim}), L2-normalised; cosine similarity = dot "
                          "product, higher = more similar",
        "perface.version": __version__,
        "perface.torch_version": torch.__version__,
        "perface.opset": str(opset),
    }
    if parity is not None:
        meta["perface.parity_max_abs"] = f"{parity:.3e}"
    return meta


def _write_metadata(path: Path, meta: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    keep = [p for p in proto.metadata_props if p.key not in meta and not p.key.startswith("perface.")]
    del proto.metadata_props[:]
    proto.metadata_props.extend(keep)
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name = "perface"
    proto.doc_string = "PerFace face embedding model: " + meta["perface.output"]
    onnx.save(proto, str(path))


def export_onnx(model, out: str | os.PathLike, opset: int = DEFAULT_OPSET,
                images: Sequence[str | os.PathLike] = (), tolerance: float | None = None, n_synthetic: int = 4,
                quantize: str | None = None, calibration: Sequence[str | os.PathLike] = (),
                max_calibration: int = 256) -> ExportResult:
    """Export ``model`` to ``out`` and check ONNX Runtime against torch.

    Args:
        model: A torch :class:`perface.model.PerFace` (``perface.load(..., engine="torch")``).
        out: Destination ``.onnx`` path (written atomically: only a file that passed the check appears there).
        opset: ONNX opset.
        images: Real images whose faces are used in the parity check (recommended; up to 16 are used).
        tolerance: fp32: largest allowed max |onnx - torch| over the parity chips' embeddings (default 1e-4);
            int8: largest allowed cosine deviation ``1 - cos(int8, torch)`` (default 0.02).
        n_synthetic: Synthetic chips added to the parity check.
        quantize: None (float32) or ``"int8"``: ONNX Runtime static quantization (QDQ, per-channel int8
            weights, uint8 activations, MinMax ranges calibrated on the faces of ``calibration``).
        calibration: Images whose faces calibrate int8 activation ranges (required for int8; up to
            ``max_calibration`` faces).

    Returns:
        :class:`ExportResult` (path, measured difference, chips used, metadata).

    Raises:
        SettingsError: a bad output name, opset, tolerance or quantization, int8 without calibration images, or
            a model that is already an ONNX export.
        ExportError: the exporter fails, or the parity check fails (nothing is left at ``out``).
    """
    import torch

    if not isinstance(model, torch.nn.Module) or not hasattr(model, "embed_tensor") or not hasattr(model, "config"):
        raise SettingsError(f"cannot export {type(model).__name__} {getattr(model, 'name', '')}: it is already a "
                            "PerFace ONNX export; export the .pt/.ckpt it came from")
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise SettingsError(f"--out {out}: the output file must end in .onnx")
    if not 13 <= int(opset) <= 20:
        raise SettingsError(f"--opset {opset} is not supported; use 13 to 20 (default {DEFAULT_OPSET})")
    if quantize not in (None, "int8"):
        raise SettingsError(f"--quantize {quantize}: only int8 is supported")
    if tolerance is None:
        tolerance = INT8_TOLERANCE if quantize else TOLERANCE
    if not float(tolerance) > 0:
        raise SettingsError(f"--tolerance {tolerance} must be positive (default {TOLERANCE}, int8 {INT8_TOLERANCE})")
    if quantize and not calibration:
        raise SettingsError("--quantize int8 needs --calibrate IMAGES: face photos like the ones the model will see, "
                            "to calibrate activation ranges (a few hundred faces are plenty)")
    out.parent.mkdir(parents=True, exist_ok=True)
    chips, n_real = parity_chips(model, images, n_synthetic=n_synthetic)
    calibration_chips = parity_chips(model, calibration, n_synthetic=0, max_real=max_calibration)[0] if quantize else None
    if any(p.device.type != "cpu" for p in model.parameters()):
        model = copy.deepcopy(model).cpu()
    was_training = model.training
    model.eval()
    try:
        if not quantize:
            return _export(model, out, int(opset), chips, n_real, float(tolerance))
        fp32 = out.with_name(f".{out.name}.fp32-{os.getpid()}.onnx")
        try:
            _export(model, fp32, int(opset), chips, n_real, TOLERANCE)
            return _quantize_int8(model, fp32, out, calibration_chips, chips, n_real, int(opset), float(tolerance))
        finally:
            if fp32.exists():
                fp32.unlink()
    finally:
        model.train(was_training)


def _quantize_int8(model, fp32: Path, out: Path, calibration: np.ndarray, chips: np.ndarray, n_real: int,
                   opset: int, tolerance: float) -> ExportResult:
    """Static int8 quantization of an exported fp32 file, checked by cosine against torch."""
    import logging

    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class _Chips(CalibrationDataReader):
        def __init__(self):
            batches = [calibration[i : i + 16] for i in range(0, len(calibration), 16)]
            self._it = iter([{INPUT_NAME: model.preprocessing.normalize(b)} for b in batches])

        def get_next(self):
            return next(self._it, None)

    pre = out.with_name(f".{out.name}.pre-{os.getpid()}.onnx")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.onnx")
    level = logging.getLogger().level
    try:
        logging.getLogger().setLevel(logging.ERROR)  # the quantizer logs a warning per shape-only tensor
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                quant_pre_process(str(fp32), str(pre))
                quantize_static(str(pre), str(tmp), _Chips(), quant_format=QuantFormat.QDQ, per_channel=True,
                                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax)
            except Exception as exc:  # noqa: BLE001 - the quantizer raises many types
                raise ExportError(f"int8 quantization failed for {model.name} ({type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:300]})") from None
        torch_emb = model.embed_chips(chips)
        _write_metadata(tmp, _metadata(model, opset, None))  # OnnxPerFace reads the preprocessing from it
        int8_emb = _onnx_embeddings(tmp, chips)
        deviation = float(np.max(1.0 - np.sum(torch_emb.astype(np.float64) * int8_emb, axis=1)))
        if not np.isfinite(deviation) or deviation > tolerance:
            raise ExportError(f"int8 check failed: max cosine deviation from torch = {deviation:.3g} > {tolerance:g} on "
                              f"{len(chips)} chips; {out} was not written (calibrate on more or more typical faces)")
        meta = _metadata(model, opset, None)
        del meta["perface.identity"]  # other weights than the torch model's: identified by the file's digest
        meta["perface.quantization"] = (f"int8 static: ONNX Runtime QDQ, per-channel int8 weights, uint8 activations, "
                                        f"MinMax ranges from {len(calibration)} face chips")
        meta["perface.int8_max_cosine_deviation"] = f"{deviation:.3e}"
        _write_metadata(tmp, meta)
        os.replace(tmp, out)
    finally:
        logging.getLogger().setLevel(level)
        for f in (pre, tmp):
            if f.exists():
                f.unlink()
    return ExportResult(out, deviation, n_real, len(chips) - n_real, opset, meta)


def _export(model, out: Path, opset: int, chips: np.ndarray, n_real: int, tolerance: float) -> ExportResult:
    import torch

    class _Graph(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x):
            return self.m.embed_tensor(x)

    size = model.preprocessing.size
    dummy = torch.from_numpy(model.preprocessing.normalize(_synthetic_chips(size, 2, seed=1)))
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}.onnx")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(_Graph(model), (dummy,), str(tmp), dynamo=False, opset_version=int(opset),
                                  input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                  dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                                  do_constant_folding=True)
            except Exception as exc:  # noqa: BLE001 - the exporter raises many types
                raise ExportError(f"torch.onnx.export failed for {model.name} ({type(exc).__name__}: "
                                  f"{' '.join(str(exc).split())[:300]})") from None
        _write_metadata(tmp, _metadata(model, int(opset), None))
        diff = _parity(model, tmp, chips)
        if not np.isfinite(diff) or diff > tolerance:
            raise ExportError(f"parity check failed: max |onnx - torch| = {diff:.3g} > {tolerance:g} on {len(chips)} "
                              f"chips; {out} was not written (try another --opset)")
        meta = _metadata(model, int(opset), diff)
        _write_metadata(tmp, meta)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            tmp.unlink()
    return ExportResult(out, float(diff), n_real, len(chips) - n_real, int(opset), meta)


def _onnx_embeddings(path: Path, chips: np.ndarray) -> np.ndarray:
    """Embeddings of uint8 chips by the exported file, through its metadata (as ``perface.load`` would)."""
    from perface.onnx_model import OnnxPerFace

    return OnnxPerFace(path).embed_chips(chips)


def _parity(model, path: Path, chips: np.ndarray) -> float:
    torch_emb = model.embed_chips(chips)
    onnx_emb = _onnx_embeddings(path, chips)
    if onnx_emb.shape != torch_emb.shape:
        return float("inf")
    return float(np.max(np.abs(onnx_emb.astype(np.float64) - torch_emb)))
