"""The face-level API shared by the torch model (:class:`perface.model.PerFace`) and the ONNX Runtime
model (:class:`perface.onnx_model.OnnxPerFace`). Nothing here imports torch.

Similarity is the cosine of L2-normalised embeddings, in [-1, 1]; higher means more similar.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from perface.cache import cache_key
from perface.errors import NoFaceError, SettingsError
from perface.face.batch import align_many, image_name
from perface.face.pipeline import AlignedFace, FacePipeline
from perface.io.image import load_image
from perface.preprocessing import FaceOptions, Preprocessing

ImageLike = Any  # str | os.PathLike | bytes | PIL.Image.Image | np.ndarray (uint8 RGB)


@dataclass
class FaceResult:
    """One row of a batch embedding run (``perface embed``).

    Attributes:
        path: The input as given (path string, or ``"<array i>"`` for in-memory images).
        face_index: Index of the face among the image's faces, largest first (-1 when none was used).
        box: (x0, y0, x1, y1) pixels, or None.
        embedding: float32 (D,) L2-normalised, or None when ``status`` is not ``"ok"``.
        status: ``"ok"``, ``"no_face"`` or ``"error"``.
        error: Why the item failed (empty when ok).
        detector: Which detector produced the box (``"hog"``, ``"cnn"`` or ``"whole-image"``).
    """

    path: str
    face_index: int = -1
    box: tuple[float, float, float, float] | None = None
    embedding: np.ndarray | None = None
    status: str = "ok"
    error: str = ""
    detector: str = ""


class FaceEmbedder:
    """Mixin: image-level embedding on top of a chip-level network.

    Subclasses set ``name`` (str), ``preprocessing`` (:class:`Preprocessing`), ``embedding_dim`` and, when the
    weights recorded them, ``face_options`` (:class:`FaceOptions`), and implement :meth:`_embed_normalized`
    and :meth:`identity`.
    """

    name: str
    preprocessing: Preprocessing
    embedding_dim: int

    # --- to implement -------------------------------------------------------------------------------
    def _embed_normalized(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 3, S, S) normalised chips -> float32 (N, D) embeddings (:meth:`embed_chips` L2-normalises
        the rows; a model whose similarity is not a plain cosine of its raw output, e.g. a two-branch
        :class:`~perface.model.PerFace`, returns its own unit vectors)."""
        raise NotImplementedError

    def identity(self) -> str:
        """A string that changes whenever the weights change (the SHA-256 of the weights)."""
        raise NotImplementedError

    # --- faces ----------------------------------------------------------------------------------------
    @property
    def face_options(self) -> FaceOptions:
        """How this model finds and chooses faces (recorded with the weights; :meth:`configure_faces` overrides)."""
        return self.__dict__.get("_face_options") or FaceOptions()

    @face_options.setter
    def face_options(self, options: FaceOptions) -> None:
        if not isinstance(options, FaceOptions):
            raise SettingsError(f"face_options must be a FaceOptions, got {type(options).__name__}")
        self.__dict__["_face_options"] = options

    def configure_faces(self, options: FaceOptions | None = None, **overrides) -> "FaceEmbedder":
        """Change how faces are found and chosen (returns self).

        Args:
            options: New options (default: the current ones).
            **overrides: Fields of :class:`FaceOptions` to change (``detector``, ``upsample``, ``max_side``,
                ``face``, ``on_no_face``); ``None`` keeps a field.
        """
        self.face_options = (options or self.face_options).override(**overrides)
        return self

    @property
    def pipeline(self) -> FacePipeline:
        """The face pipeline of the current :attr:`face_options` (built once, rebuilt when they change)."""
        current = self.__dict__.get("_pipeline")
        if current is None or current.options != self.face_options or current.preprocessing != self.preprocessing:
            current = FacePipeline.like(current, self.preprocessing, self.face_options)
            self.__dict__["_pipeline"] = current
        return current

    def cache_key(self, **extra) -> str:
        """Key of everything derived from this model's embeddings: weights digest, preprocessing, face options
        (see :func:`perface.cache.cache_key`); ``extra`` adds what else the derived value depends on."""
        return cache_key(self.preprocessing, self.face_options, weights=self.identity(),
                         flip_tta=bool(getattr(self, "flip_tta", False)), **extra)

    def detect(self, image: ImageLike) -> list:
        """All faces of one image, largest first (:class:`perface.face.Face`: box, score, landmarks)."""
        return self.pipeline.detect(load_image(image))

    def faces(self, image: ImageLike, face: str | int | None = None, on_no_face: str | None = None
              ) -> list[AlignedFace]:
        """Aligned faces of one image (see :meth:`perface.face.FacePipeline.select`); ``None`` = the model's
        :attr:`face_options`."""
        return self.pipeline(load_image(image), face=face, on_no_face=on_no_face, name=image_name(image, 0))

    # --- embeddings -----------------------------------------------------------------------------------
    def embed_chips(self, chips: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Embed aligned chips.

        Args:
            chips: uint8 (N, S, S, 3) RGB chips from this model's preprocessing.

        Returns:
            float32 (N, D), rows L2-normalised.
        """
        chips = np.asarray(chips)
        if chips.ndim == 3:
            chips = chips[None]
        s = self.preprocessing.size
        if chips.shape[1:] != (s, s, 3) or chips.dtype != np.uint8:
            raise ValueError(f"chips must be uint8 (N, {s}, {s}, 3) for {self.name}, got {chips.dtype} {chips.shape}")
        out = np.empty((len(chips), self.embedding_dim), dtype=np.float32)
        for i in range(0, len(chips), batch_size):
            raw = self._embed_normalized(self.preprocessing.normalize(chips[i : i + batch_size]))
            out[i : i + batch_size] = raw
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def _single(self, face: str | int | None, on_no_face: str | None) -> FaceOptions:
        """Options for calls that return one embedding per image: ``skip`` cannot skip, so it raises."""
        options = self.face_options.override(face=face, on_no_face=on_no_face)
        if options.face == "all":
            raise SettingsError("face='all' gives several embeddings per image; use embed_faces() for it")
        return options.override(on_no_face="error") if options.on_no_face == "skip" else options

    def embed(self, images: ImageLike | Sequence[ImageLike], face: str | int | None = None,
              on_no_face: str | None = None, batch_size: int = 32) -> np.ndarray:
        """One embedding per image.

        Args:
            images: A path, PIL image, uint8 RGB array, or a sequence of them.
            face: ``"largest"``, ``"center"`` or an index k (faces sorted largest first); None: the model's.
            on_no_face: ``"error"`` or ``"skip"`` (both raise :class:`perface.errors.NoFaceError`: there is no
                row to skip) or ``"whole-image"``; None: the model's.
            batch_size: Chips per network call.

        Returns:
            float32 (N, D), rows L2-normalised; cosine similarity = dot product, higher = more similar.
        """
        options = self._single(face, on_no_face)
        if isinstance(images, (str, os.PathLike, bytes)) or not isinstance(images, Sequence):
            images = [images]
        chips = []
        for i, image in enumerate(images):
            (aligned,) = self.pipeline(load_image(image), face=options.face, on_no_face=options.on_no_face,
                                       name=image_name(image, i))
            chips.append(aligned.chip)
        if not chips:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        return self.embed_chips(np.stack(chips), batch_size=batch_size)

    def embed_faces(self, images: Iterable[ImageLike], face: str | int | None = None, on_no_face: str | None = None,
                    batch_size: int = 32, workers: int = 0,
                    progress: Callable[[int], None] | None = None) -> list[FaceResult]:
        """Embed many images without stopping at bad ones: every input yields at least one :class:`FaceResult`.

        Args:
            images: Paths or in-memory images.
            face: ``"largest"``, ``"center"``, ``"all"`` or an index k; None: the model's.
            on_no_face: ``"skip"`` or ``"error"`` (record a ``no_face`` row) or ``"whole-image"``; None: the model's.
            batch_size: Chips per network call.
            workers: Processes for decoding + detection + alignment (0: in this process).
            progress: Called with the number of images finished since the last call.

        Returns:
            Results in input order (several per image with ``face="all"``); see :meth:`iter_embed_faces` for
            the streaming form.
        """
        return list(self.iter_embed_faces(images, face=face, on_no_face=on_no_face, batch_size=batch_size,
                                          workers=workers, progress=progress))

    def iter_embed_faces(self, images: Iterable[ImageLike], face: str | int | None = None,
                         on_no_face: str | None = None, batch_size: int = 32, workers: int = 0,
                         progress: Callable[[int], None] | None = None) -> Iterator[FaceResult]:
        """:meth:`embed_faces` as a stream: results in input order as soon as their batch is embedded, holding
        at most ``batch_size`` chips (plus the worker pool's bounded window) whatever the number of images."""
        options = self.face_options.override(face=face, on_no_face=on_no_face)
        ready: list[FaceResult] = []  # results in order; the ones with chips wait for their batch
        pending: list[tuple[FaceResult, np.ndarray]] = []

        def flush() -> Iterator[FaceResult]:
            if pending:
                emb = self.embed_chips(np.stack([c for _, c in pending]), batch_size=batch_size)
                for (res, _), e in zip(pending, emb):
                    res.embedding = e
                pending.clear()
            yield from ready
            ready.clear()

        for name, aligned, exc in align_many(images, self.preprocessing, options, workers=workers,
                                             pipeline=None if workers else self.pipeline):
            if exc is not None:
                status = "no_face" if isinstance(exc, NoFaceError) else "error"
                ready.append(FaceResult(path=name, status=status, error=str(exc)))
            elif not aligned:
                ready.append(FaceResult(path=name, status="no_face", error=f"no face found in {name}"))
            else:
                for a in aligned:
                    res = FaceResult(path=name, face_index=a.index, box=tuple(float(v) for v in a.face.box),
                                     detector=a.face.detector)
                    ready.append(res)
                    pending.append((res, a.chip))
            if progress:
                progress(1)
            if len(pending) >= batch_size or not pending:  # nothing waits for the network: pass rows on now
                yield from flush()
        yield from flush()

    # --- similarity -----------------------------------------------------------------------------------
    def compare(self, a: ImageLike, b: ImageLike, face: str | int | None = None, on_no_face: str | None = None
                ) -> dict:
        """Similarity of the faces in two images, with the faces used.

        Args:
            a, b: Images (path, PIL image, uint8 RGB array).
            face, on_no_face: Override the model's :attr:`face_options` (see :meth:`embed`).

        Returns:
            ``{"score": float, "model": str, "face_options": dict, "faces": [face dict of a, face dict of b]}``;
            each face dict has ``image``, ``face_index``, ``faces_found``, ``box``, ``score``, ``detector``.

        Raises:
            NoFaceError: an image without a usable face (unless ``on_no_face="whole-image"``).
        """
        options = self._single(face, on_no_face)
        chips, faces = [], []
        for i, img in enumerate((a, b)):
            array = load_image(img)
            all_faces = self.pipeline.detect(array)
            (aligned,) = self.pipeline.select(array, all_faces, face=options.face, on_no_face=options.on_no_face,
                                              name=image_name(img, i))
            chips.append(aligned.chip)
            faces.append({"image": image_name(img, i), "face_index": aligned.index, "faces_found": len(all_faces),
                          **{k: v for k, v in aligned.face.to_dict().items() if k != "landmarks"}})
        emb = self.embed_chips(np.stack(chips))
        return {"score": float(np.dot(emb[0], emb[1])), "model": self.name, "face_options": options.to_dict(),
                "faces": faces}

    def score(self, a: ImageLike, b: ImageLike, face: str | int | None = None, on_no_face: str | None = None
              ) -> float:
        """Cosine similarity of the faces in ``a`` and ``b`` in [-1, 1]; higher = more similar."""
        return self.compare(a, b, face=face, on_no_face=on_no_face)["score"]
