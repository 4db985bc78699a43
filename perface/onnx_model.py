"""A PerFace model exported to ONNX (``perface export``), run with ONNX Runtime: no torch needed.

The file carries its preprocessing in its metadata (``perface.config``, written by
:func:`perface.export.export_onnx`), so alignment and normalisation cannot drift from what the weights were
trained with. The graph maps normalised chips float32 (N, 3, S, S) to L2-normalised embeddings (N, D);
normalisation ``(pixel - mean) / std`` happens outside the graph, in :class:`perface.preprocessing.Preprocessing`.

This module must not import torch (``perface score --model x.onnx`` runs without it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from perface.cache import file_sha256
from perface.embedder import FaceEmbedder
from perface.errors import ModelLoadError, NotPerFaceExport
from perface.preprocessing import FaceOptions, Preprocessing

__all__ = ["OnnxPerFace", "read_metadata"]

#: Metadata key holding ``json.dumps(PerFace.config())``.
CONFIG_KEY = "perface.config"
#: Metadata key holding the weights digest of the model the file was exported from.
IDENTITY_KEY = "perface.identity"


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict (read with ONNX Runtime, no graph optimisation)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ModelLoadError(f"{path}: ONNX Runtime cannot load it ({' '.join(str(exc).split())[:200]})") from None
    return dict(session.get_modelmeta().custom_metadata_map)


class OnnxPerFace(FaceEmbedder):
    """An exported PerFace model.

    Args:
        path: ``.onnx`` file written by ``perface export``.
        threads: ONNX Runtime intra-op threads (None: ONNX Runtime's default, one per physical core).
        providers: Execution providers (default: CPU).

    Offers the same face-level API as the torch model (``embed``, ``score``, ``compare``, ``detect``,
    ``embed_faces``, ``embed_chips``); embeddings are L2-normalised and similarity is their cosine
    (higher = more similar).
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None, providers: list[str] | None = None):
        import onnxruntime as ort

        self.path = Path(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            if int(threads) < 1:
                raise ValueError(f"threads must be at least 1, got {threads}")
            options.intra_op_num_threads = int(threads)
            options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(self.path), options,
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001
            raise ModelLoadError(f"{self.path}: ONNX Runtime cannot load it ({' '.join(str(exc).split())[:200]}); "
                                 "re-export it with 'perface export'") from None
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        if CONFIG_KEY not in self.metadata:
            raise NotPerFaceExport(f"{self.path}: no '{CONFIG_KEY}' metadata, so not a PerFace export; export it with "
                                 "'perface export' (insightface models load with perface.load directly)")
        try:
            self._config = json.loads(self.metadata[CONFIG_KEY])
            self.preprocessing = Preprocessing.from_dict(self._config["preprocessing"])
            self.embedding_dim = int(self._config["embedding_dim"])
            self.face_options = FaceOptions.from_dict(self._config.get("face_options"))
            self.flip_tta = bool(self._config.get("flip_tta", False))
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{self.path}: damaged '{CONFIG_KEY}' metadata ({type(exc).__name__}: {exc}); "
                                 "re-export it with 'perface export'") from None
        self.name = str(self._config.get("name") or self.path.stem)
        self.backbone_name = self._config.get("backbone")
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ModelLoadError(f"{self.path}: expected one input (chips) and one output (embedding), found "
                                 f"{len(inputs)} and {len(outputs)}")
        self._input = inputs[0].name
        self._output = outputs[0].name
        shape = inputs[0].shape
        s = self.preprocessing.size
        if len(shape) != 4 or list(shape[1:]) != [3, s, s]:
            raise ModelLoadError(f"{self.path}: graph input shape {shape} does not match the recorded "
                                 f"{s}x{s} preprocessing; the file is inconsistent, re-export it")
        self._identity: str | None = None

    def _embed_normalized(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self._output], {self._input: np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def config(self) -> dict:
        """The exported model's :meth:`perface.model.PerFace.config`."""
        return json.loads(json.dumps(self._config))

    def identity(self) -> str:
        """The weights digest the export recorded (``perface.identity``: the torch model's, so both engines share
        caches), else the SHA-256 of the ONNX file."""
        if self._identity is None:
            self._identity = self.metadata.get(IDENTITY_KEY) or "onnx-sha256:" + file_sha256(self.path)
        return self._identity

    def __repr__(self) -> str:
        return (f"OnnxPerFace({str(self.path)!r}, name={self.name!r}, backbone={self._config.get('backbone')!r}, "
                f"embedding_dim={self.embedding_dim})")
