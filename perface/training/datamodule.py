"""LightningDataModule over canonical triplet files (see data/annotations/README.md)."""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pandas as pd
from torch.utils.data import DataLoader

from perface.annotations.schema import read_triplets
from perface.errors import AnnotationError, SettingsError
from perface.io.files import data_root
from perface.preprocessing import AUTO, FaceOptions, Preprocessing
from perface.training.augment import chip_augmentation
from perface.training.chip_cache import ChipCache
from perface.training.triplet_dataset import TripletDataset


def _rows(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    """The rows of ``split`` in a file with a ``split`` column; all rows of a file without one."""
    return frame[frame["split"] == split] if "split" in frame.columns else frame


class TripletDataModule(pl.LightningDataModule):
    """Train/val triplets with chips detected and aligned once (cached on disk, keyed by image content).

    The chip geometry and normalisation come from the model being trained (``trainer.lightning_module.model
    .preprocessing``), or from ``preprocessing`` when the data module is used on its own.

    Args:
        train: Triplet file (CSV or Parquet). With a ``split`` column, rows ``train`` train and rows ``val``
            validate (unless ``val`` is given); other rows (``test``) are never read.
        val: Separate validation triplet file (with a ``split`` column: its ``val`` rows).
        root: Dataset root the image paths are relative to (default: ``$PERFACE_DATA``).
        batch_size: Triplets per batch.
        num_workers: DataLoader workers.
        augment: Augmentation strength for training chips (0 = none, which also lets the model cache the
            output of its frozen stages).
        flip: Probability of mirroring each training image, drawn per image. Cache-friendly (a chip has two
            versions), so it works with ``augment: 0`` and cached frozen features.
        views: Fixed augmented views per image (0: none), drawn once (seeded by ``seed``) with
            :func:`~perface.training.augment.chip_augmentation` at ``view_strength``; each training triplet
            then carries one view of its anchor for the module's ``invariance_weight`` term. Fixed views keep
            the frozen-feature cache usable (K more cached versions per image).
        view_strength: Augmentation strength of the views.
        reference_images: Text file (relative to the working directory, like ``train``) of unlabelled
            images, one path per line relative to ``reference_root`` (``#`` comments and blank lines ignored). Each
            training triplet then carries one of them, drawn at random, for the module's ``reference_weight``
            term: their embeddings are held at the base model's, e.g. in-the-wild photos of the kind identity is
            verified on (``data/reference/lfw_outside_protocols.txt``: LFW people in no pairs file). Images
            without a chip are listed in :attr:`skipped`, like training images.
        reference_root: Folder the reference paths are relative to (default: ``root``), e.g. the folder
            holding ``lfw/`` when ``root`` points at your own images.
        max_train: Use at most this many training triplets (seeded sample; for smoke runs).
        max_val: Likewise for validation.
        on_no_face: Policy for images where no face is detected (``whole-image`` for tight crops).
        detector: ``hog``, ``cnn`` or ``hog+cnn`` (the CNN only where HOG finds no face).
        upsample: Detector upsampling steps, or ``auto``.
        max_side: Detection runs on a copy at most this many pixels on its longer side.
        face: Which face of an image with several: ``largest`` or ``center`` (datasets that centre the
            labelled face, e.g. FairFace).

        These five are the chips' :class:`~perface.preprocessing.FaceOptions` (:attr:`face_options`); the
        trained model records them, so evaluating it needs no face flags.
        prep_workers: Processes for the one-time chip preparation.
        cache_dir: Cache root (default: ``$PERFACE_CACHE`` or the user cache dir).
        seed: Seed for ``max_*`` sampling.
    """

    def __init__(self, train: str, val: str | None = None, root: str | None = None, batch_size: int = 64,
                 num_workers: int = 0, augment: float = 1.0, flip: float = 0.0, views: int = 0, view_strength: float = 2.0,
                 reference_images: str | None = None, reference_root: str | None = None,
                 max_train: int | None = None,
                 max_val: int | None = None, on_no_face: str = "whole-image", detector: str = "hog+cnn",
                 upsample: int | str = AUTO, max_side: int = 1024, face: str | int = "largest", prep_workers: int = 2,
                 cache_dir: str | None = None,
                 seed: int = 0, preprocessing: Preprocessing | None = None):
        super().__init__()
        self.train_file = train
        self.val_file = val
        self.root = data_root(root)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augment = float(augment)
        self.flip = float(flip)
        if views < 0 or view_strength <= 0:
            raise SettingsError(f"data.views must be >= 0 and data.view_strength > 0, got {views} and {view_strength}")
        self.views, self.view_strength = int(views), float(view_strength)
        self.reference_file = reference_images
        self.reference_root = self.root if reference_root is None else Path(reference_root)
        self.reference_paths = self._reference_images()  # read now: a bad list fails when the config is read
        self.reference_chips: np.ndarray | None = None
        self.max_train, self.max_val = max_train, max_val
        # bad settings fail when the config is read, not after the model is built
        self.face_options = FaceOptions(detector=detector, upsample=upsample, max_side=max_side, face=face,
                                        on_no_face=on_no_face)
        if self.face_options.face == "all":
            raise SettingsError("data.face: one face per image is used for training; 'all' is not possible")
        self.prep_workers = prep_workers
        self.cache_dir = cache_dir
        self.seed = seed
        self._preprocessing = preprocessing
        self.skipped: dict[str, str] = {}
        self.strata: list[str] | None = None  # names of the stratum codes (files with a stratum column)

    # --- data ------------------------------------------------------------------------------------------
    @property
    def preprocessing(self) -> Preprocessing:
        if self._preprocessing is not None:
            return self._preprocessing
        trainer = getattr(self, "trainer", None)
        if trainer is None or trainer.lightning_module is None:
            raise RuntimeError("TripletDataModule needs a preprocessing: attach it to a Trainer with a PerFace "
                               "module or pass preprocessing=")
        return trainer.lightning_module.model.preprocessing

    def _frames(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        train = read_triplets(self.train_file)
        if self.val_file:
            val = _rows(read_triplets(self.val_file), "val")
        elif "split" in train.columns:
            val = train[train["split"] == "val"]
        else:
            raise AnnotationError(f"{self.train_file}: no 'split' column and no val file; give data.val or split "
                                  "the file with 'perface triplets split'")
        train = _rows(train, "train")  # a split file's val and test rows never train, val file or not
        train = self._limit(train.reset_index(drop=True), self.max_train)
        val = self._limit(val.reset_index(drop=True), self.max_val)
        if len(train) == 0 or len(val) == 0:
            raise AnnotationError(f"{self.train_file}: {len(train)} train and {len(val)} val triplets; need both")
        return train, val

    def _limit(self, frame: pd.DataFrame, n: int | None) -> pd.DataFrame:
        if n is None or len(frame) <= n:
            return frame
        return frame.sample(n=n, random_state=self.seed).sort_index().reset_index(drop=True)

    def _chip_cache(self) -> ChipCache:
        return ChipCache(self.preprocessing, self.face_options, self.cache_dir)

    def _images(self, frames) -> list[str]:
        names = pd.unique(pd.concat([f[c] for f in frames for c in ("anchor", "a", "b")]))
        return [str(self.root / n) for n in names]

    def _reference_images(self) -> list[str]:
        """The reference images' paths (under ``reference_root``); none without ``reference_images``."""
        if not self.reference_file:
            return []
        try:
            lines = Path(self.reference_file).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise SettingsError(f"data.reference_images: {self.reference_file}: cannot read it "
                                f"({getattr(e, 'strerror', None) or type(e).__name__}); give a text file of image "
                                "paths relative to data.reference_root (default data.root), one per line") from None
        names = [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
        if not names:
            raise SettingsError(f"data.reference_images: {self.reference_file} lists no image; give a text file of "
                                "image paths relative to data.reference_root (default data.root), one per line")
        return [str(self.reference_root / n) for n in dict.fromkeys(names)]

    def prepare_data(self) -> None:
        # Runs once per node (local rank 0): detection + alignment into the disk cache.
        from perface.progress import bars

        images = self._images(self._frames()) + self.reference_paths
        with bars() as bar:
            self._chip_cache().prepare(images, workers=self.prep_workers,
                                       progress=bar("aligning faces (once)", len(images)))

    def setup(self, stage: str | None = None) -> None:
        train, val = self._frames()
        cache = self._chip_cache()
        images = self._images((train, val))
        self.skipped = cache.prepare(images, workers=self.prep_workers)  # no-op when prepare_data ran
        usable = [p for p in images if p not in self.skipped]
        position = {p: i for i, p in enumerate(usable)}
        self.chips = np.stack([cache.load(p) for p in usable]) if usable else None
        self.image_paths = usable
        self.strata = (sorted(set(train["stratum"].dropna().astype(str)) | set(val["stratum"].dropna().astype(str)))
                       if "stratum" in train.columns and "stratum" in val.columns else None)
        self.view_chips = self._views(self.chips) if self.views and self.chips is not None else None
        reference = self.reference_paths
        if reference:
            self.skipped.update(cache.prepare(reference, workers=self.prep_workers))
            usable_reference = [p for p in reference if p not in self.skipped]
            if not usable_reference:
                raise SettingsError(f"data.reference_images: none of the {len(reference)} images of "
                                    f"{self.reference_file} has a chip (e.g. {reference[0]}: "
                                    f"{self.skipped[reference[0]]}); check the paths against data.reference_root "
                                    f"{self.reference_root}")
            self.reference_chips = np.stack([cache.load(p) for p in usable_reference])
        self.train_set = self._dataset(train, position, training=True)
        self.val_set = self._dataset(val, position, training=False)

    def _views(self, chips: np.ndarray) -> np.ndarray:
        """uint8 (views, N, S, S, 3): each chip augmented ``views`` times, the same draws on every run."""
        augment = chip_augmentation(self.view_strength)
        augment.set_random_seed(self.seed)
        return np.stack([np.stack([augment(image=c)["image"] for c in chips]) for _ in range(self.views)])

    def _dataset(self, frame: pd.DataFrame, position: dict[str, int], training: bool) -> TripletDataset:
        cols = [frame[c].map(lambda n: position.get(str(self.root / n), -1)).to_numpy() for c in ("anchor", "a", "b")]
        index = np.stack(cols, axis=1).astype(np.int64)
        keep = (index >= 0).all(axis=1)
        p_a = frame["p_a"].to_numpy(dtype=np.float32)
        strata = None
        if self.strata is not None:
            code = {name: i for i, name in enumerate(self.strata)}
            strata = frame["stratum"].map(lambda v: code.get(str(v), -1) if isinstance(v, str) else -1).to_numpy()[keep]
        return TripletDataset(index[keep], p_a[keep], self.chips,
                              chip_augmentation(self.augment) if training and self.augment > 0 else None,
                              flip=self.flip if training else 0.0, strata=strata,
                              views=self.view_chips if training else None,
                              reference=self.reference_chips if training else None)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          drop_last=len(self.train_set) > self.batch_size, persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)
