"""A gallery of candidate replacement identities: one row per identity, embedded by two models.

Each identity's images are embedded with the **perceptual model** (how alike faces look; the model under
``--model``) and the **identity model** (``base``: dlib's face-recognition ResNet, which decides whether two faces
are the same person). Per identity, the image embeddings are averaged and re-normalised (one mean per model).

File format (Parquet, one row per identity, sorted by identity name):

============================  =============================================================================
``identity``                  string, unique
``n_images``                  int32, images averaged
``perceptual``                fixed-size list<float32>, L2-normalised mean perceptual embedding
``identity_embedding``        fixed-size list<float32>, L2-normalised mean identity embedding
``images``                    list<string>, the images used (as given)
one column per attribute      string or null (from the label file: most common value among the identity's
                              images, ties broken alphabetically)
============================  =============================================================================

The schema metadata key ``perface.gallery`` holds JSON: both models (name, how to load them, SHA-256 of their
weights), the re-identification threshold (:mod:`perface.selection.threshold`), the default band and the
between-identity similarity quantiles (:mod:`perface.selection.band`), the attribute names, and every image
left out with its reason (``failures``).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from perface.errors import GalleryError, SelectionError, SettingsError
from perface.evaluation.embedding_cache import embed_paths
from perface.face.batch import auto_workers
from perface.io.files import collect_images
from perface.io.labels import LabelTable, identity_from_path, read_labels
from perface.loading import list_models, load
from perface.selection.band import Band, gallery_band
from perface.selection.search import EXACT_LIMIT, FaissSearch, faiss_available, make_search
from perface.progress import bars
from perface.selection.threshold import DEFAULT_FAR, ReidThreshold, reid_threshold

__all__ = ["GALLERY_FORMAT", "Gallery", "GalleryBuild", "build_gallery_file", "model_record"]

GALLERY_FORMAT = 1
META_KEY = b"perface.gallery"
#: Gallery columns a label attribute may not be called.
RESERVED_COLUMNS = ("identity", "n_images", "perceptual", "identity_embedding", "images")

ProgressFactory = Callable[[str, int], Callable[[int], None] | None]


def _model_slots(model, identity_model):
    return ((model, "perceptual_model", "--model"), (identity_model, "identity_model", "--identity-model"))


def model_record(model, source: str | None = None) -> dict:
    """What a gallery remembers about a model: ``name``, ``source`` (how to load it again: a model name or an
    absolute file path, None if unknown), ``identity`` (hash of its weights) and ``embedding_dim``."""
    if source is None:
        name = getattr(model, "name", "")
        path = getattr(model, "path", None)
        source = name if name in list_models() else (str(Path(path).resolve()) if path else None)
    elif Path(str(source)).expanduser().is_file():
        source = str(Path(str(source)).expanduser().resolve())
    return {"name": getattr(model, "name", ""), "source": source, "identity": model.identity(),
            "embedding_dim": int(model.embedding_dim)}


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _mode(values: list[str]) -> str | None:
    values = [v for v in values if v]
    if not values:
        return None
    counts = Counter(values)
    top = max(counts.values())
    return min(v for v, c in counts.items() if c == top)


class Gallery:
    """Candidate identities with perceptual and identity embeddings (see the module docstring).

    Attributes:
        identities: (N,) identity names, sorted.
        n_images: (N,) images averaged per identity.
        perceptual: (N, Dp) float32, L2-normalised.
        identity: (N, Di) float32, L2-normalised.
        attributes: DataFrame (N rows) of attribute strings (None = unknown).
        images: Per identity, the images used.
        info: The metadata (models, threshold, band, failures, ...).
        path: The file it was loaded from or saved to.
    """

    def __init__(self, identities: Sequence[str], n_images, perceptual: np.ndarray, identity: np.ndarray,
                 attributes: pd.DataFrame | None = None, images: Sequence[Sequence[str]] | None = None,
                 info: dict | None = None, path: str | os.PathLike | None = None):
        self.identities = np.asarray(list(identities), dtype=object)
        n = len(self.identities)
        self.n_images = np.asarray(n_images, dtype=np.int32).reshape(n)
        self.perceptual = np.ascontiguousarray(perceptual, dtype=np.float32).reshape(n, -1)
        self.identity = np.ascontiguousarray(identity, dtype=np.float32).reshape(n, -1)
        if attributes is None:
            attributes = pd.DataFrame(index=range(n))
        self.attributes = attributes.reset_index(drop=True)
        self.images = [list(x) for x in images] if images is not None else [[] for _ in range(n)]
        self.info = dict(info or {})
        self.path = Path(path) if path is not None else None
        if len(set(self.identities.tolist())) != n:
            dup = [k for k, c in Counter(self.identities.tolist()).items() if c > 1][0]
            raise GalleryError(f"gallery{' ' + str(path) if path else ''}: identity {dup!r} appears more than once")
        self._row = {name: i for i, name in enumerate(self.identities.tolist())}
        self._searches: dict = {}

    # --- basics -----------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.identities)

    def __repr__(self) -> str:
        return (f"Gallery({len(self)} identities, perceptual={self.info.get('perceptual_model', {}).get('name')!r}, "
                f"identity={self.info.get('identity_model', {}).get('name')!r}, attributes={self.attribute_names})")

    @property
    def attribute_names(self) -> list[str]:
        return list(self.attributes.columns)

    def row_of(self, identity: str | None) -> int | None:
        """Row of an identity name, None if absent."""
        return self._row.get(identity) if identity else None

    def attributes_of(self, row: int) -> dict[str, str | None]:
        return {c: (None if pd.isna(v) else str(v)) for c, v in self.attributes.iloc[row].items()}

    @property
    def default_band(self) -> Band | None:
        """The documented default band (:mod:`perface.selection.band`), None for galleries of one identity."""
        band = self.info.get("band")
        return Band.from_dict(band) if band else None

    @property
    def threshold(self) -> ReidThreshold | None:
        """The re-identification threshold stored at build time, if any."""
        t = self.info.get("reid_threshold")
        return ReidThreshold.from_dict(t) if t else None

    @property
    def failures(self) -> list[dict]:
        """Images left out at build time: ``{"path", "identity", "status", "error"}``."""
        return list(self.info.get("failures", []))

    # --- search -----------------------------------------------------------------------------------------------
    def search(self, kind: str = "auto", **options):
        """The perceptual-embedding search (:func:`perface.selection.search.make_search`), built once per kind."""
        resolved = kind
        if kind == "auto":
            resolved = "faiss" if len(self) > EXACT_LIMIT and faiss_available() else "exact"
        key = (resolved, tuple(sorted(options.items())))
        if key not in self._searches:
            search = None
            sidecar = self.index_path() if resolved == "faiss" else None
            content = self.info.get("content_sha256")
            if sidecar is not None and content:
                search = FaissSearch.load(sidecar, self.perceptual, content, **options) if sidecar.is_file() else None
                if search is None:
                    search = make_search(self.perceptual, resolved, **options)
                    try:
                        search.save(sidecar, content)
                    except (OSError, RuntimeError):
                        pass  # read-only folder: train again next time
            self._searches[key] = search or make_search(self.perceptual, resolved, **options)
        return self._searches[key]

    def index_path(self) -> Path | None:
        """Where the FAISS index of this gallery is kept (``<gallery file>.faiss``), None before it is saved."""
        return self.path.with_name(self.path.name + ".faiss") if self.path is not None else None

    # --- models -----------------------------------------------------------------------------------------------
    def check_models(self, model=None, identity_model=None) -> None:
        """Raise :class:`GalleryError` if a model's weights differ from those the gallery was built with."""
        for given, key, option in _model_slots(model, identity_model):
            if given is None:
                continue
            rec = self.info.get(key) or {}
            if rec.get("identity") and given.identity() != rec["identity"]:
                raise GalleryError(
                    f"gallery {self.path or ''} was built with {key.replace('_', ' ')} {rec.get('name')!r}"
                    f"{' (' + rec['source'] + ')' if rec.get('source') else ''}, not {getattr(given, 'name', '?')!r}: "
                    f"pass {option} {rec.get('source') or rec.get('name')} or rebuild the gallery with this model")

    def load_models(self, model=None, identity_model=None, loader: Callable[[str], object] | None = None,
                    **load_options) -> tuple:
        """``(perceptual model, identity model)``: the given ones, else the ones recorded in the gallery, loaded
        with ``loader(source)`` (default :func:`perface.load` with ``load_options``: ``threads``, face options);
        checked against the gallery either way.

        Raises:
            GalleryError: the gallery does not record how to load a model, or a model does not match it.
        """
        if loader is None:
            def loader(source: str):
                return load(source, **load_options)

        out = []
        for given, key, option in _model_slots(model, identity_model):
            if given is None:
                rec = self.info.get(key) or {}
                source = rec.get("source")
                if not source:
                    raise GalleryError(f"gallery {self.path or ''} does not record how to load its "
                                       f"{key.replace('_', ' ')} {rec.get('name')!r}; pass {option}")
                shared = (self.info.get("perceptual_model") or {}).get("identity") == rec.get("identity")
                if key == "identity_model" and out and shared:
                    given = out[0]
                else:
                    given = loader(source)
            out.append(given)
        self.check_models(*out)
        return tuple(out)

    # --- build ------------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, images: Sequence[str | os.PathLike], model, identity_model=None, *,
              labels: LabelTable | str | os.PathLike | None = None,
              max_identity_sim: float | ReidThreshold | None = None, far: float = DEFAULT_FAR,
              pairs: str | os.PathLike | None = None, pairs_root: str | os.PathLike | None = None,
              measure_threshold: bool = True, model_source: str | None = None,
              identity_model_source: str | None = None, batch_size: int = 32, workers: int = 0,
              cache: bool = True, progress: ProgressFactory | None = None) -> "Gallery":
        """Embed candidate images and average them per identity.

        Args:
            images: Image files. Identity: the label file's ``identity`` if listed, else the folder name.
            model: The perceptual model (loaded, :func:`perface.load`).
            identity_model: The identity model; default ``perface.load("base")`` (reused when ``model`` is it).
            labels: A label file (path or :class:`LabelTable`) giving identities and attributes.
            max_identity_sim: Store this re-identification threshold instead of measuring one.
            far, pairs, pairs_root: Where and at which FAR to measure the threshold (default: LFW pairs.txt
                under ``$PERFACE_DATA``, FAR 1e-3; measured once per identity model and cached).
            measure_threshold: False stores no threshold (selection then needs one given explicitly).
            model_source, identity_model_source: How to load the models again (a name or file); default: the
                model's name when it is a packaged model, else its file.
            batch_size, workers, cache: Embedding options (the embedding cache is shared with ``perface eval``).
            progress: ``(label, total) -> advance`` factory for progress bars.

        Raises:
            GalleryError: no image with a usable face; a label file problem.
        """
        files = [os.fspath(p) for p in images]
        if not files:
            raise GalleryError("no images to build a gallery from")
        if labels is not None and not isinstance(labels, LabelTable):
            labels = read_labels(labels)
        if labels is not None:
            reserved = [c for c in labels.attributes if c in RESERVED_COLUMNS]
            if reserved:
                raise GalleryError(f"{labels.source}:1: column {reserved[0]!r} is reserved for the gallery itself; "
                                   "rename it")
        if identity_model is None:
            identity_model = load("base")
            identity_model.configure_faces(model.face_options)
            identity_model_source = identity_model_source or "base"
        p_rec = model_record(model, model_source)
        i_rec = model_record(identity_model, identity_model_source)
        same_model = p_rec["identity"] == i_rec["identity"]

        def embed(m, label):
            advance = progress(label, len(files)) if progress else None
            return embed_paths(m, files, face="largest", on_no_face="skip", batch_size=batch_size, workers=workers,
                               cache=cache, progress=advance)

        p_results = embed(model, "perceptual embeddings")
        i_results = p_results if same_model else embed(identity_model, "identity embeddings")

        who = [(labels.identity(f), labels.attributes_of(f)) if labels is not None else (identity_from_path(f), {})
               for f in files]
        failures, groups = [], {}
        for k, (f, rp, ri) in enumerate(zip(files, p_results, i_results)):
            name = who[k][0]
            bad = rp if rp.status != "ok" else (ri if ri.status != "ok" else None)
            if bad is not None:
                failures.append({"path": f, "identity": name, "status": bad.status,
                                 "error": " ".join(str(bad.error).split())})
            elif not name:
                failures.append({"path": f, "identity": "", "status": "error", "error": "no identity (empty name)"})
            else:
                groups.setdefault(name, []).append(k)
        if not groups:
            first = "; ".join(f"{x['path']}: {x['error']}" for x in failures[:2])
            raise GalleryError(f"none of the {len(files)} images has a usable face ({first}); "
                               "nothing to put in the gallery")

        names = sorted(groups)
        attr_names = list(labels.attributes) if labels is not None else []
        perceptual, identity, n_images, used, attrs = [], [], [], [], {a: [] for a in attr_names}
        for name in names:
            ks = groups[name]
            perceptual.append(np.mean([p_results[k].embedding for k in ks], axis=0))
            identity.append(np.mean([i_results[k].embedding for k in ks], axis=0))
            n_images.append(len(ks))
            used.append([files[k] for k in ks])
            for a in attr_names:
                attrs[a].append(_mode([who[k][1].get(a, "") for k in ks]))
        perceptual = _normalize_rows(np.stack(perceptual))
        identity = _normalize_rows(np.stack(identity))
        attributes = pd.DataFrame({a: pd.array(attrs[a], dtype="object") for a in attr_names}, index=range(len(names)))

        image_rows = [(row, k) for row, name in enumerate(names) for k in groups[name]]
        band, distribution = gallery_band(perceptual, np.stack([p_results[k].embedding for _, k in image_rows]),
                                          np.array([row for row, _ in image_rows], dtype=np.int64))
        info = {
            "format": GALLERY_FORMAT,
            "perceptual_model": p_rec,
            "identity_model": i_rec,
            "face": model.face_options.override(face="largest", on_no_face="skip").to_dict(),
            "labels": labels.source if labels is not None else None,
            "attributes": attr_names,
            "n_images_given": len(files),
            "n_images_used": int(sum(n_images)),
            "failures": failures,
            "band": band.to_dict() if band else None,
            "between_identity_similarity": distribution,
            "reid_threshold": None,
            "reid_threshold_error": None,
        }
        if isinstance(max_identity_sim, ReidThreshold):
            info["reid_threshold"] = max_identity_sim.to_dict()
        elif max_identity_sim is not None:
            info["reid_threshold"] = ReidThreshold.given(max_identity_sim, i_rec["name"]).to_dict()
        elif measure_threshold:
            try:
                info["reid_threshold"] = reid_threshold(identity_model, far=far, pairs=pairs, root=pairs_root,
                                                        cache=cache, batch_size=batch_size, workers=workers,
                                                        progress=progress).to_dict()
            except SelectionError as exc:
                info["reid_threshold_error"] = str(exc)
        gallery = cls(names, n_images, perceptual, identity, attributes, used, info)
        gallery.info["content_sha256"] = gallery._content_hash()
        return gallery

    def _content_hash(self) -> str:
        h = hashlib.sha256()
        h.update("\n".join(self.identities.tolist()).encode())
        h.update(self.perceptual.tobytes())
        h.update(self.identity.tobytes())
        return h.hexdigest()

    # --- files ------------------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write the gallery as Parquet (atomically: a temporary file renamed into place)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        dp, di = self.perceptual.shape[1], self.identity.shape[1]
        def fixed(x: np.ndarray, d: int):
            return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1), pa.float32()), d)

        columns = {
            "identity": pa.array(self.identities.tolist(), pa.string()),
            "n_images": pa.array(self.n_images, pa.int32()),
            "perceptual": fixed(self.perceptual, dp),
            "identity_embedding": fixed(self.identity, di),
            "images": pa.array(self.images, pa.list_(pa.string())),
        }
        for name in self.attribute_names:
            columns[name] = pa.array([None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                                      for v in self.attributes[name]], pa.string())
        table = pa.table(columns)
        info = {**self.info, "format": GALLERY_FORMAT, "attributes": self.attribute_names}
        table = table.replace_schema_metadata({META_KEY: json.dumps(info).encode(),
                                               b"perface.similarity": b"cosine (dot product); higher = more similar"})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Gallery":
        """Read a gallery written by :meth:`save` / ``perface gallery build``.

        Raises:
            FileNotFoundError: no such file.
            GalleryError: not a Parquet file, or not a PerFace gallery (message says what is missing).
        """
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(2, "gallery file not found", str(path))
        try:
            table = pq.read_table(path)
        except (pa.ArrowException, OSError) as exc:
            raise GalleryError(f"{path}: not a readable Parquet file ({' '.join(str(exc).split())}); build one with "
                               "'perface gallery build'") from None
        meta = table.schema.metadata or {}
        if META_KEY not in meta:
            raise GalleryError(f"{path}: not a PerFace gallery (no {META_KEY.decode()} metadata); build one with "
                               "'perface gallery build'")
        try:
            info = json.loads(meta[META_KEY])
        except ValueError:
            raise GalleryError(f"{path}: damaged gallery metadata; rebuild it with 'perface gallery build'") from None
        if info.get("format") != GALLERY_FORMAT:
            raise GalleryError(f"{path}: gallery format {info.get('format')!r} is not {GALLERY_FORMAT}; rebuild it "
                               "with this version of perface")
        missing = [c for c in RESERVED_COLUMNS if c not in table.column_names]
        if missing:
            raise GalleryError(f"{path}: gallery is missing column(s) {', '.join(missing)}; rebuild it")
        n = table.num_rows
        if n == 0:
            raise GalleryError(f"{path}: the gallery has no identities; rebuild it from images with faces")

        def matrix(name: str) -> np.ndarray:
            col = table.column(name).combine_chunks()
            values = col.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
            if col.null_count or len(values) % n:
                raise GalleryError(f"{path}: column {name} has missing or ragged embeddings; rebuild the gallery")
            return values.reshape(n, -1)

        attr_names = [a for a in info.get("attributes", []) if a in table.column_names]
        attributes = pd.DataFrame({a: pd.array(table.column(a).to_pylist(), dtype="object") for a in attr_names},
                                  index=range(n))
        return cls(table.column("identity").to_pylist(), table.column("n_images").to_numpy(), matrix("perceptual"),
                   matrix("identity_embedding"), attributes, table.column("images").to_pylist(), info, path)

    def summary(self) -> dict:
        """JSON-ready description (``perface gallery info``)."""
        t = self.threshold
        return {
            "path": str(self.path) if self.path else None,
            "identities": len(self),
            "images_used": int(self.n_images.sum()),
            "images_left_out": len(self.failures),
            "perceptual_model": self.info.get("perceptual_model"),
            "identity_model": self.info.get("identity_model"),
            "attributes": {a: {str(k): int(v) for k, v in self.attributes[a].value_counts(dropna=False).items()}
                           for a in self.attribute_names},
            "band": self.default_band.to_dict() if self.default_band else None,
            "reid_threshold": t.to_dict() if t else None,
            "reid_threshold_error": self.info.get("reid_threshold_error"),
            "between_identity_similarity": self.info.get("between_identity_similarity"),
        }

    def summary_lines(self) -> list[str]:
        """What ``perface gallery info`` prints."""
        summary = self.summary()
        t, band = self.threshold, self.default_band
        pm, im = summary["perceptual_model"] or {}, summary["identity_model"] or {}
        out = [f"gallery          {self.path}",
               f"identities       {summary['identities']} ({summary['images_used']} images, "
               f"{summary['images_left_out']} left out)",
               f"perceptual model {pm.get('name')} ({pm.get('source')})",
               f"identity model   {im.get('name')} ({im.get('source')})"]
        out += [f"attribute        {a}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                for a, counts in summary["attributes"].items()]
        out.append(f"threshold        {t.describe() if t else 'none (' + str(summary['reid_threshold_error']) + ')'}")
        out.append(f"default band     {f'{band.lo:.4f}:{band.hi:.4f} ({band.source})' if band else 'none'}")
        return out


@dataclass
class GalleryBuild:
    """What :func:`build_gallery_file` made.

    Attributes:
        gallery: The gallery (saved to ``out``).
        out: The gallery file.
        n_images: Images found under the inputs.
        search: ``"exact"``, or ``"faiss"`` when a FAISS index was trained and kept beside the gallery.
        notes: Things found while listing the images (link loops, duplicate files).
    """

    gallery: Gallery
    out: Path
    n_images: int
    search: str = "exact"
    nlist: int | None = None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What ``perface gallery build`` reports (on stderr: the gallery file is the output)."""
        g = self.gallery
        out = [f"{self.n_images} images -> {len(g)} identities ({int(g.n_images.sum())} images used, "
               f"{len(g.failures)} left out); wrote {self.out}"]
        t = g.threshold
        out.append(f"re-identification threshold {t.describe()}" if t else
                   f"warning: no re-identification threshold stored ({g.info.get('reid_threshold_error')}); "
                   "'perface select' will need --max-identity-sim")
        if g.default_band:
            out.append(f"default band {g.default_band.lo:.4f}:{g.default_band.hi:.4f} ({g.default_band.source})")
        if self.search == "faiss":
            out.append(f"FAISS index ({self.nlist} lists) kept in {g.index_path()}")
        return out


def build_gallery_file(paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, model: object = "base",
                       identity_model: object = "base", loader: Callable[[str], object] | None = None,
                       labels: str | os.PathLike | None = None, max_identity_sim: float | None = None,
                       far: float = DEFAULT_FAR, pairs: str | os.PathLike | None = None,
                       pairs_root: str | os.PathLike | None = None, index: str = "auto", batch_size: int = 32,
                       workers: int | None = None, cache: bool = True, progress: bool | None = None) -> GalleryBuild:
    """``perface gallery build``: check the request, embed the images (:meth:`Gallery.build`) and save the gallery.

    Args:
        paths: Image files and folders (searched recursively, following links).
        out: The gallery file (``.parquet``); a FAISS index, when one is used, is kept beside it.
        model, identity_model: Perceptual and identity model: a loaded model or a name / file (loaded with
            ``loader``; the identity model is the perceptual one when both name the same).
        loader: ``loader(source) -> model`` (default :func:`perface.load`).
        labels, max_identity_sim, far, pairs, pairs_root: See :meth:`Gallery.build`.
        index: ``auto``, ``exact`` or ``faiss`` (train the FAISS index now and keep it beside the gallery).
        batch_size, workers, cache, progress: Embedding options (``workers`` None: one per core for large jobs;
            ``progress`` None: bars when stderr is a terminal).

    Raises:
        SettingsError: ``out`` not ``.parquet``; ``far`` not in (0, 1); ``max_identity_sim`` not in [-1, 1].
        FileNotFoundError: a missing input, label or pairs file.
        FileCollectionError: no image file in the inputs.
        GalleryError: no image with a usable face, a bad label file.
    """
    out = Path(out)
    if out.suffix.lower() != ".parquet":
        raise SettingsError(f"--out {out}: the gallery must be a .parquet file")
    if not 0.0 < far < 1.0:
        raise SettingsError(f"--far {far:g}: expected a rate strictly between 0 and 1, e.g. 1e-3")
    if max_identity_sim is not None and not -1.0 <= max_identity_sim <= 1.0:
        raise SettingsError(f"--max-identity-sim {max_identity_sim:g}: a cosine similarity in [-1, 1]")
    if labels and not Path(labels).is_file():
        raise FileNotFoundError(2, "label file not found", os.fspath(labels))
    if pairs and not Path(pairs).is_file():
        raise FileNotFoundError(2, "pairs file not found", os.fspath(pairs))
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise FileNotFoundError(2, "no such file or folder", os.fspath(missing[0]))
    found = collect_images(paths)
    loader = loader or load
    perceptual = loader(model) if isinstance(model, (str, os.PathLike)) else model
    if identity_model is None or identity_model == model:
        identity = perceptual
    else:
        identity = loader(identity_model) if isinstance(identity_model, (str, os.PathLike)) else identity_model
    with bars(progress) as factory:
        gallery = Gallery.build(found.files, perceptual, identity, labels=labels, max_identity_sim=max_identity_sim,
                                far=far, pairs=pairs, pairs_root=pairs_root,
                                model_source=model if isinstance(model, str) else None,
                                identity_model_source=identity_model if isinstance(identity_model, str) else None,
                                batch_size=batch_size, workers=auto_workers(len(found.files), workers), cache=cache,
                                progress=factory)
    gallery.save(out)
    search = gallery.search(index)  # trains and keeps the FAISS index when one is used
    return GalleryBuild(gallery, out, len(found.files), search.kind, getattr(search, "nlist", None), found.notes())
